import Crypto
import Foundation
import XCTest
@testable import Broker
import Protocol

/// `Authenticator` (nats-server's processClientOrLeafAuthentication), `NKey` and `Secrets`.
final class AuthenticatorTests: XCTestCase {
    private func connect(_ json: String) throws -> ConnectOptions {
        try JSONDecoder().decode(ConnectOptions.self, from: Data(json.utf8))
    }

    private func user(_ result: Authenticator.Result) -> String?? {
        if case .allowed(let user, _) = result { return .some(user) }
        return .none
    }

    // A bcrypt hash of "s3cret" (cost 4), made with Python's bcrypt.
    static let bcryptHash = "$2b$04$XlQLOvIk2SqbrjMv69VPhujvoMcKStDUvpO2FDuo.dsUjkuwpKq.G"

    func testNoAuthorizationAdmitsEveryone() throws {
        let auth = Authenticator(options: BrokerOptions())
        XCTAssertFalse(auth.required)
        XCTAssertTrue(auth.authenticate(try connect(#"{"user":"x","pass":"y"}"#), nonce: []).isAllowed)
    }

    func testUsersPasswordsAndPermissions() throws {
        var options = BrokerOptions()
        options.authorization = .init(users: [
            .init(name: "falco", password: "pw", permissions: Permissions(publish: SubjectPermission(allow: ["FALCO.>"]))),
            .init(name: "ws-only", password: "pw", connectionTypes: ["WEBSOCKET"]),
        ])
        let auth = Authenticator(options: options)
        XCTAssertTrue(auth.required)
        XCTAssertTrue(auth.infoAuthRequired)
        XCTAssertTrue(auth.hasPlaintextPasswords)
        guard case .allowed(let name, let rules) = auth.authenticate(try connect(#"{"user":"falco","pass":"pw"}"#), nonce: []) else {
            return XCTFail("falco should be admitted")
        }
        XCTAssertEqual(name, "falco")
        XCTAssertFalse(try XCTUnwrap(rules).allowsPublish(.init(string: "cmd")))
        XCTAssertFalse(auth.authenticate(try connect(#"{"user":"falco","pass":"nope"}"#), nonce: []).isAllowed)
        XCTAssertFalse(auth.authenticate(try connect(#"{"user":"ghost","pass":"pw"}"#), nonce: []).isAllowed)
        XCTAssertFalse(auth.authenticate(try connect(#"{}"#), nonce: []).isAllowed)
        XCTAssertFalse(auth.authenticate(try connect(#"{"user":"ws-only","pass":"pw"}"#), nonce: []).isAllowed,
                       "a user without STANDARD among its connection types cannot use the client port")
    }

    func testNoAuthUserTakesCredentialFreeConnects() throws {
        var options = BrokerOptions()
        options.authorization = .init(users: [.init(name: "guest", password: "x"), .init(name: "admin", password: "y")])
        options.noAuthUser = "guest"
        let auth = Authenticator(options: options)
        XCTAssertFalse(auth.infoAuthRequired, "INFO says no auth is required, as nats-server")
        XCTAssertEqual(user(auth.authenticate(try connect("{}"), nonce: [])), .some("guest"))
        XCTAssertEqual(user(auth.authenticate(try connect(#"{"user":"admin","pass":"y"}"#), nonce: [])), .some("admin"))
        XCTAssertFalse(auth.authenticate(try connect(#"{"user":"admin","pass":"wrong"}"#), nonce: []).isAllowed)
    }

    func testCertificateMappedUsersAreFoundByTheirFirstMatchingIdentity() throws {
        var options = BrokerOptions()
        options.authorization = .init(users: [.init(name: "CN=falco,O=sec"), .init(name: "bridge@example.com")])
        let auth = Authenticator(options: options, mapsCertificates: true)
        XCTAssertEqual(user(auth.authenticate(try connect("{}"), nonce: [], certificateIdentities: ["x.example.com", "CN=falco,O=sec"])),
                       .some("CN=falco,O=sec"))
        XCTAssertEqual(user(auth.authenticate(try connect("{}"), nonce: [], certificateIdentities: ["bridge@example.com", "CN=other"])),
                       .some("bridge@example.com"))
        XCTAssertFalse(auth.authenticate(try connect("{}"), nonce: [], certificateIdentities: ["CN=nobody"]).isAllowed)
        XCTAssertFalse(auth.authenticate(try connect(#"{"user":"CN=falco,O=sec"}"#), nonce: [], certificateIdentities: nil).isAllowed,
                       "without a certificate there is no user")
    }

    func testBcryptHashesAreComparedWithBcryptAndOffTheLoop() throws {
        XCTAssertTrue(Secrets.isBcrypt(Self.bcryptHash))
        XCTAssertFalse(Secrets.isBcrypt("$2z$04$abc"))
        XCTAssertFalse(Secrets.isBcrypt("plain"))
        XCTAssertTrue(Secrets.matches(configured: Self.bcryptHash, given: "s3cret"))
        XCTAssertFalse(Secrets.matches(configured: Self.bcryptHash, given: "s3cret!"))
        XCTAssertFalse(Secrets.matches(configured: Self.bcryptHash, given: ""))
        XCTAssertFalse(Secrets.matches(configured: "$2a$04$short", given: "x"), "a malformed hash admits no one")
        var options = BrokerOptions()
        options.authorization = .init(users: [.init(name: "a", password: Self.bcryptHash)])
        let auth = Authenticator(options: options)
        XCTAssertFalse(auth.hasPlaintextPasswords)
        XCTAssertTrue(auth.isExpensive(try connect(#"{"user":"a","pass":"x"}"#)))
        XCTAssertFalse(auth.isExpensive(try connect(#"{"user":"b","pass":"x"}"#)))
        XCTAssertTrue(auth.authenticate(try connect(#"{"user":"a","pass":"s3cret"}"#), nonce: []).isAllowed)
    }

    func testNKeysDecodeCheckAndVerify() throws {
        let key = Curve25519.Signing.PrivateKey()
        let publicKey = NKey.encodeUserPublicKey(Array(key.publicKey.rawRepresentation))
        XCTAssertTrue(publicKey.hasPrefix("U"))
        XCTAssertEqual(publicKey.count, 56)
        XCTAssertTrue(NKey.isValidPublicUserKey(publicKey))
        XCTAssertTrue(NKey.isValidPublicUserKey("UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"), "nkeys' own test key")
        var corrupted = Array(publicKey)
        corrupted[10] = corrupted[10] == "A" ? "B" : "A"
        XCTAssertFalse(NKey.isValidPublicUserKey(String(corrupted)), "the CRC catches a changed character")
        XCTAssertFalse(NKey.isValidPublicUserKey("ADXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"), "an account key is not a user key")
        XCTAssertFalse(NKey.isValidPublicUserKey("u-not-base32"))

        let nonce = Array("abcdefghijklmno".utf8)
        let signature = try key.signature(for: Data(nonce))
        let sig = signature.base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        XCTAssertTrue(NKey.verify(publicKey: publicKey, signature: sig, nonce: nonce))
        XCTAssertTrue(NKey.verify(publicKey: publicKey, signature: signature.base64EncodedString(), nonce: nonce), "standard base64 too")
        XCTAssertFalse(NKey.verify(publicKey: publicKey, signature: sig, nonce: Array("other-nonce-xyz".utf8)))

        var options = BrokerOptions()
        options.authorization = .init(nkeys: [.init(publicKey: publicKey)])
        let auth = Authenticator(options: options)
        XCTAssertTrue(auth.nonceRequired)
        XCTAssertTrue(auth.authenticate(try connect(#"{"nkey":"\#(publicKey)","sig":"\#(sig)"}"#), nonce: nonce).isAllowed)
        XCTAssertFalse(auth.authenticate(try connect(#"{"nkey":"\#(publicKey)"}"#), nonce: nonce).isAllowed)
        XCTAssertFalse(auth.authenticate(try connect(#"{"nkey":"\#(publicKey)","sig":"\#(sig)"}"#), nonce: Array("x".utf8)).isAllowed)
    }

    func testGoQuoteAsNatsServersErrorsShowSubjects() {
        XCTAssertEqual(GoQuote.quote(Array("FALCO.>".utf8)), #""FALCO.>""#)
        XCTAssertEqual(GoQuote.quote(Array(#"a"b\c"#.utf8)), #""a\"b\\c""#)
        XCTAssertEqual(GoQuote.quote(Array("café".utf8)), "\"café\"")
        XCTAssertEqual(GoQuote.quote([0x61, 0xFF, 0x01, 0x09]), #""a\xff\x01\t""#)
        XCTAssertEqual(GoQuote.quote(Array("\u{85}\u{200B}".utf8)), #""\u0085\u200b""#)
    }
}
