import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import XCTest
import _CryptoExtras
@testable import Broker
@testable import PubSubBridge

/// The bridge's credentials: service-account JWTs (structure, RS256 signature), how `resolve` picks, and
/// `TokenProvider`'s caching and renewal with an injected clock, against a local stand-in metadata server.
final class CredentialsTests: XCTestCase {
    /// A throwaway 2048-bit key made for these tests (`openssl genpkey -algorithm RSA`); it guards nothing.
    static let testKeyPEM = """
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDBCd4PcjGFanis
Z5HruFlHBR0NwmpVViWt4hWkGtMOW9duZ8Fq4J5oubs6GO5N2U/q3puxe0yb19+E
NlTLNkqEIDAQMzVVAkX9BwAOvNUMlVQ+e3g3/wQ4Odm6WuR6yFS4T/B609thKOcT
7Nl9fMAsIxHIcbGabfqkS4ZARSpQVMUIGQXNu5jijFdl42CKlwDVNstXV9qHChTd
W8YDmajXx/9172yiiuJB7jE6YgdBRwL+MJWGTgKnePQ5tai6z8VHzUvZhAJGVMlO
jyQxozlgoOzN3aConI5rRTV32q0rdQnxSt5HcIz0aub6d9OmR7hW0vmUJbiX7Czg
QczPOAE3AgMBAAECggEAHDD3uCPCLazN8MezXMxwZVnO02qYItxQ5mMFLBEqz4cE
IECQ0634FG1DdYmci8v3yuI1tKbAGmZdYy6YFZFZMpCM1GDWIhMR65DxJjXXm13X
jsRzWyIoGJoCPR/3DCNjlANAqH92I2tYy+UkIhps6kU43KAWAuqa1xGciphPRKnL
awfalHJhFIhR7McJ8g8dlsVJVPPEzKRy53vexXcyq2Ltmz4rZNS9el5ROYtJojek
K8y3VO/zUh7/glgF+sL6PFcq8K+ZGbheRE8tAE/NxqhqiIdnIWeKTJISpdvXMYwE
baB+kk9niBTxCuUUJhVHLP9z61A7PXppNvaE2upasQKBgQDykX1e2UE/45J9tyXA
ndCjn5/mMAlk4RqDHN55VDr64GrNnawJdVPhVhVgPwGHhRw72Hsc+RIxzWo/bHqC
qPl4tICQp2YKrwzGKRf5XqSkmkye28Bv7NjeawAYNirEFBJavLRoY54hoIh5dnVX
pmLSTty5dZj1RC+Wl/1vM0VueQKBgQDLukWW2FBd5KVQ65C/9ztCi48iuEZqS9f9
fhTe4LFn5iZBbxki2VTKwTeKPRTuwBCbxyICNBOpNcrwJSmX/i3KR6yBo55w4dc3
9FhmPniS8YxO/YlyS/EqhzpNbjxAyTJuwOgyCW31wnIje6lHyMGVwSvax4lMOng6
jiN4nMxBLwKBgQC0TlddyKpK3lOG5TvHyMdMyRunlG93MChv62an02egEm7xdlFq
Gm+GYWG0UEFHxjcteQZSjAXtRR7EFFOgihAenDWw0O315Rbeua8bazGBNTzdHMYX
rHusIOdKGAGEDNNz5S9JJTtnDZhEiTxCMejlIT/LD9HqBoxFKad2ICttKQKBgEdG
E7KCWxt+Mpfs0edXB1RwntL2xSvK/PWidorC8U34JsodpB2dCx0kG9oxJHGioCzf
rfY3YemA+E6rsbGLK1npWWDBbVzwperdgU/D60r9VqkL6loiV20Zgjw0pL/Fo+87
bgCTa/Te4i+nw8FpatCJlF4mENKqYgWaVK6NrKfhAoGAEB72MtVXQYoEWTYhQUsJ
miDO0b6iSYoWERTScah2fCjBTwbsLLmA6IppMNMAGuIy91Eku+sGPkbaHDC7ILoY
qfd3rM83kp8nF6TSiVmju9H6dx94QQ29suwV2xbjeHIeJfM+TfY/Gv7iz0tr6WI2
JRowH9p5ngjVqPkoBb1O1zE=
-----END PRIVATE KEY-----
"""

    static func keyJSON(email: String = "bridge@proj.iam.gserviceaccount.com", extra: [String: Any] = [:],
                        dropping: String? = nil) -> [UInt8] {
        var fields: [String: Any] = [
            "type": "service_account", "project_id": "proj", "private_key_id": "kid-1",
            "private_key": testKeyPEM + "\n", "client_email": email, "client_id": "123",
        ]
        fields.merge(extra) { $1 }
        if let dropping { fields[dropping] = nil }
        return Array(try! JSONSerialization.data(withJSONObject: fields))
    }

    private var httpClient: HTTPClient!
    private var tempDirectory: URL!

    override func setUpWithError() throws {
        httpClient = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
        tempDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("brokerd-creds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tempDirectory, withIntermediateDirectories: true)
    }

    override func tearDown() async throws {
        try await httpClient.shutdown()
        try? FileManager.default.removeItem(at: tempDirectory)
    }

    // MARK: ServiceAccountKey

    func testJWTHasRS256HeaderPubSubClaimsAndAValidSignature() throws {
        let key = try ServiceAccountKey(json: Self.keyJSON())
        XCTAssertEqual(key.clientEmail, "bridge@proj.iam.gserviceaccount.com")
        XCTAssertEqual(key.privateKeyID, "kid-1")
        XCTAssertEqual(key.projectID, "proj")
        XCTAssertFalse(key.description.contains("PRIVATE"))

        let token = try key.jwt(issuedAt: 1_700_000_000)
        let segments = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(segments.count, 3)
        XCTAssertNil(token.rangeOfCharacter(from: CharacterSet(charactersIn: "+/= ")), "base64url without padding")

        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: base64URLDecode(segments[0])) as? [String: Any])
        XCTAssertEqual(header as NSDictionary, ["alg": "RS256", "typ": "JWT", "kid": "kid-1"] as NSDictionary)
        let claims = try XCTUnwrap(JSONSerialization.jsonObject(with: base64URLDecode(segments[1])) as? [String: Any])
        XCTAssertEqual(claims as NSDictionary, [
            "iss": "bridge@proj.iam.gserviceaccount.com", "sub": "bridge@proj.iam.gserviceaccount.com",
            "aud": "https://pubsub.googleapis.com/", "iat": 1_700_000_000, "exp": 1_700_003_600,
        ] as NSDictionary)

        let publicKey = try _RSA.Signing.PublicKey(pemRepresentation: key.privateKey.publicKey.pemRepresentation)
        let signature = _RSA.Signing.RSASignature(rawRepresentation: try base64URLDecode(segments[2]))
        XCTAssertEqual(signature.rawRepresentation.count, 256)
        let signed = Array((segments[0] + "." + segments[1]).utf8)
        XCTAssertTrue(publicKey.isValidSignature(signature, for: signed, padding: .insecurePKCS1v1_5))
        XCTAssertFalse(publicKey.isValidSignature(signature, for: signed, padding: .PSS), "RS256 is PKCS#1 v1.5")
        let forged = try key.jwt(issuedAt: 1_700_000_001).split(separator: ".").map(String.init)
        XCTAssertFalse(publicKey.isValidSignature(signature, for: Array((forged[0] + "." + forged[1]).utf8),
                                                  padding: .insecurePKCS1v1_5))
    }

    func testBadKeysAreRejectedWithClearErrors() {
        XCTAssertThrowsError(try ServiceAccountKey(json: Array("not json".utf8))) {
            guard case .keyNotJSON = $0 as? PubSubCredentialsError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try ServiceAccountKey(json: Array("[1]".utf8))) {
            guard case .keyNotJSON = $0 as? PubSubCredentialsError else { return XCTFail("\($0)") }
        }
        for field in ["client_email", "private_key_id", "private_key"] {
            XCTAssertThrowsError(try ServiceAccountKey(json: Self.keyJSON(dropping: field))) {
                XCTAssertEqual($0 as? PubSubCredentialsError, .keyFieldMissing(field))
                XCTAssertTrue("\($0)".contains("\"\(field)\""), "\($0)")
            }
        }
        XCTAssertThrowsError(try ServiceAccountKey(json: Self.keyJSON(extra: ["type": "authorized_user"]))) {
            XCTAssertEqual($0 as? PubSubCredentialsError, .keyWrongType("authorized_user"))
        }
        let garbled = Self.testKeyPEM.replacingOccurrences(of: "M", with: "!")
        XCTAssertThrowsError(try ServiceAccountKey(json: Self.keyJSON(extra: ["private_key": garbled]))) {
            guard case .keyBadPEM = $0 as? PubSubCredentialsError else { return XCTFail("\($0)") }
            XCTAssertTrue("\($0)".contains("PEM"), "\($0)")
        }
    }

    // MARK: resolve

    func testResolvePicksEmulatorThenKeyFileThenMetadataServer() throws {
        let keyFile = tempDirectory.appendingPathComponent("key.json")
        try Data(Self.keyJSON()).write(to: keyFile)

        guard case .none = try PubSubCredentials.resolve(
            keyPath: keyFile.path, environment: ["PUBSUB_EMULATOR_HOST": "127.0.0.1:8085"]) else { return XCTFail() }
        guard case .serviceAccount(let key) = try PubSubCredentials.resolve(keyPath: keyFile.path, environment: [:]) else {
            return XCTFail()
        }
        XCTAssertEqual(key.privateKeyID, "kid-1")
        guard case .metadataServer(let host) = try PubSubCredentials.resolve(keyPath: nil, environment: [:]) else {
            return XCTFail()
        }
        XCTAssertEqual(host, "metadata.google.internal")
        guard case .metadataServer(let override) = try PubSubCredentials.resolve(
            keyPath: nil, environment: ["GCE_METADATA_HOST": "127.0.0.1:9999"]) else { return XCTFail() }
        XCTAssertEqual(override, "127.0.0.1:9999")

        let missing = tempDirectory.appendingPathComponent("missing.json").path
        XCTAssertThrowsError(try PubSubCredentials.resolve(keyPath: missing, environment: [:])) {
            guard case .keyFileUnreadable(let path, _) = $0 as? PubSubCredentialsError else { return XCTFail("\($0)") }
            XCTAssertEqual(path, missing)
        }
        let bad = tempDirectory.appendingPathComponent("bad.json")
        try Data(Self.keyJSON(dropping: "client_email")).write(to: bad)
        XCTAssertThrowsError(try PubSubCredentials.resolve(keyPath: bad.path, environment: [:])) {
            XCTAssertEqual($0 as? PubSubCredentialsError, .keyFileInvalid(path: bad.path, .keyFieldMissing("client_email")))
            XCTAssertTrue("\($0)".contains(bad.path) && "\($0)".contains("client_email"), "\($0)")
        }
    }

    // MARK: TokenProvider

    func testNoCredentialsGiveNoToken() async throws {
        let provider = TokenProvider(credentials: .none, httpClient: httpClient)
        let token = try await provider.token()
        XCTAssertNil(token)
        let expiry = await provider.expiry
        XCTAssertNil(expiry)
    }

    func testServiceAccountTokenIsReusedUntilRenewBeforeThenReissued() async throws {
        let clock = TestClock(1_700_000_000)
        let key = try ServiceAccountKey(json: Self.keyJSON())
        let provider = TokenProvider(credentials: .serviceAccount(key), httpClient: httpClient, now: clock.read)

        let first = try await provider.token()
        XCTAssertEqual(first, try key.jwt(issuedAt: 1_700_000_000))
        var expiry = await provider.expiry
        XCTAssertEqual(expiry, 1_700_003_600)

        clock.set(1_700_003_600 - 301)  // 301 s left: more than renewBefore (300)
        let same = try await provider.token()
        XCTAssertEqual(same, first)

        clock.set(1_700_003_600 - 300)
        let renewed = try await provider.token()
        XCTAssertNotEqual(renewed, first)
        XCTAssertEqual(try claims(of: XCTUnwrap(renewed))["iat"] as? Int, 1_700_003_300)
        expiry = await provider.expiry
        XCTAssertEqual(expiry, 1_700_006_900)
    }

    func testMetadataTokenIsCachedUntilExpiryMinusRenewBeforeThenFetchedAgain() async throws {
        let server = try MetadataStub.start(responses: [
            (.ok, #"{"access_token":"t1","expires_in":3600,"token_type":"Bearer"}"#),
            (.ok, #"{"access_token":"t2","expires_in":3600,"token_type":"Bearer"}"#),
        ])
        defer { server.stop() }
        let clock = TestClock(1_000)
        let provider = TokenProvider(credentials: .metadataServer(host: server.host), httpClient: httpClient, now: clock.read)

        let t1 = try await provider.token()
        XCTAssertEqual(t1, "t1")
        XCTAssertEqual(server.requests, [MetadataStub.Request(
            path: "/computeMetadata/v1/instance/service-accounts/default/token", metadataFlavor: "Google")])
        let expiry = await provider.expiry
        XCTAssertEqual(expiry, 4_600)

        clock.set(4_600 - 301)
        let cached = try await provider.token()
        XCTAssertEqual(cached, "t1")
        XCTAssertEqual(server.requests.count, 1)

        clock.set(4_600 - 300)
        let t2 = try await provider.token()
        XCTAssertEqual(t2, "t2")
        XCTAssertEqual(server.requests.count, 2)
    }

    func testShortLivedMetadataTokenIsRenewedAtHalfLife() async throws {
        // The metadata server may hand out a cached token with less than renewBefore left.
        let server = try MetadataStub.start(responses: [(.ok, #"{"access_token":"t1","expires_in":200,"token_type":"Bearer"}"#)])
        defer { server.stop() }
        let clock = TestClock(1_000)
        let provider = TokenProvider(credentials: .metadataServer(host: server.host), httpClient: httpClient, now: clock.read)
        _ = try await provider.token()
        clock.set(1_099)
        _ = try await provider.token()
        XCTAssertEqual(server.requests.count, 1)
        clock.set(1_100)
        _ = try await provider.token()
        XCTAssertEqual(server.requests.count, 2)
    }

    func testMetadataErrorStatusIsThrownAtOnceWithTheServersWords() async throws {
        let server = try MetadataStub.start(responses: [(.notFound, "no service account for this pod")])
        defer { server.stop() }
        let provider = TokenProvider(credentials: .metadataServer(host: server.host), httpClient: httpClient,
                                     now: { 1_000 }, renewBefore: 300, retryDelays: [.milliseconds(10)])
        do {
            _ = try await provider.token()
            XCTFail("expected an error")
        } catch let error as PubSubCredentialsError {
            guard case .metadataStatus(_, 404, "no service account for this pod") = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("HTTP 404"), "\(error)")
        }
        XCTAssertEqual(server.requests.count, 1, "a 404 is not retried")
    }

    func testFirstMetadataCallIsRetriedWhileTheServerIsNotReady() async throws {
        let server = try MetadataStub.start(responses: [
            (.serviceUnavailable, "starting"), (.serviceUnavailable, "starting"),
            (.ok, #"{"access_token":"t1","expires_in":3600,"token_type":"Bearer"}"#),
        ])
        defer { server.stop() }
        let provider = TokenProvider(credentials: .metadataServer(host: server.host), httpClient: httpClient,
                                     now: { 1_000 }, renewBefore: 300, retryDelays: Array(repeating: .milliseconds(10), count: 3))
        let token = try await provider.token()
        XCTAssertEqual(token, "t1")
        XCTAssertEqual(server.requests.count, 3)
    }

    func testUnreachableMetadataServerGivesUpAfterTheRetries() async throws {
        let server = try MetadataStub.start(responses: [])
        let host = server.host
        server.stop()  // nothing listens on the port any more
        let provider = TokenProvider(credentials: .metadataServer(host: host), httpClient: httpClient,
                                     now: { 1_000 }, renewBefore: 300, retryDelays: [.milliseconds(10), .milliseconds(10)],
                                     requestTimeout: .milliseconds(300))
        do {
            _ = try await provider.token()
            XCTFail("expected an error")
        } catch let error as PubSubCredentialsError {
            guard case .metadataUnreachable(_, 3, _) = error else { return XCTFail("\(error)") }
        }
    }

    func testFailedRenewalKeepsUsingTheUnexpiredToken() async throws {
        let server = try MetadataStub.start(responses: [
            (.ok, #"{"access_token":"t1","expires_in":3600,"token_type":"Bearer"}"#), (.internalServerError, "oops"),
            (.badRequest, #"{"error":"nope"}"#),
        ])
        defer { server.stop() }
        let clock = TestClock(1_000)
        let provider = TokenProvider(credentials: .metadataServer(host: server.host), httpClient: httpClient, now: clock.read)
        _ = try await provider.token()
        clock.set(4_400)  // renewal due, token still valid until 4_600
        let kept = try await provider.token()
        XCTAssertEqual(kept, "t1")
        XCTAssertEqual(server.requests.count, 2, "a renewal is tried once per call, not retried")
        clock.set(4_600)  // expired: the failure surfaces
        do {
            _ = try await provider.token()
            XCTFail("expected an error")
        } catch let error as PubSubCredentialsError {
            guard case .metadataStatus(_, 400, _) = error else { return XCTFail("\(error)") }
        }
    }

    func testMalformedMetadataAnswerIsAClearError() async throws {
        let server = try MetadataStub.start(responses: [(.ok, #"{"expires_in":3600}"#)])
        defer { server.stop() }
        let provider = TokenProvider(credentials: .metadataServer(host: server.host), httpClient: httpClient)
        do {
            _ = try await provider.token()
            XCTFail("expected an error")
        } catch let error as PubSubCredentialsError {
            XCTAssertTrue("\(error)".contains("access_token"), "\(error)")
        }
    }

    // MARK: Helpers

    private func claims(of token: String) throws -> [String: Any] {
        let segment = String(token.split(separator: ".")[1])
        return try XCTUnwrap(JSONSerialization.jsonObject(with: base64URLDecode(segment)) as? [String: Any])
    }

    private func base64URLDecode(_ text: String) throws -> Data {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return try XCTUnwrap(Data(base64Encoded: base64), "not base64url: \(text)")
    }
}

/// A settable unix-seconds clock for `TokenProvider(now:)`.
private final class TestClock: Sendable {
    private let value: Mutex<Int64>
    init(_ start: Int64) { value = Mutex(start) }
    func set(_ time: Int64) { value.withLock { $0 = time } }
    var read: @Sendable () -> Int64 { { self.value.withLock { $0 } } }
}

/// A stand-in GCE metadata server on 127.0.0.1: answers each request with the next scripted response (the last one
/// repeats) and records what it was asked.
private final class MetadataStub: Sendable {
    struct Request: Equatable, Sendable {
        let path: String
        let metadataFlavor: String?
    }

    private struct State {
        var responses: [(HTTPResponseStatus, String)]
        var requests: [Request] = []
    }

    private let state: Mutex<State>
    private let channel: Channel
    let host: String

    var requests: [Request] { state.withLock { $0.requests } }

    private init(responses: [(HTTPResponseStatus, String)], channel: Channel, host: String) {
        self.state = Mutex(State(responses: responses))
        self.channel = channel
        self.host = host
    }

    static func start(responses: [(HTTPResponseStatus, String)]) throws -> MetadataStub {
        let box = Mutex<MetadataStub?>(nil)
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(stub: box.withLock { $0! }))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        let stub = MetadataStub(responses: responses, channel: channel, host: "127.0.0.1:\(channel.localAddress!.port!)")
        box.withLock { $0 = stub }
        return stub
    }

    func stop() { try? channel.close().wait() }

    fileprivate func answer(_ request: Request) -> (HTTPResponseStatus, String) {
        state.withLock { state in
            state.requests.append(request)
            let index = min(state.requests.count, state.responses.count) - 1
            return index >= 0 ? state.responses[index] : (.internalServerError, "no scripted response")
        }
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let stub: MetadataStub
        var head: HTTPRequestHead?
        init(stub: MetadataStub) { self.stub = stub }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): self.head = head
            case .body: break
            case .end:
                guard let head else { return }
                let (status, body) = stub.answer(Request(path: head.uri, metadataFlavor: head.headers.first(name: "Metadata-Flavor")))
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Content-Length", value: "\(body.utf8.count)")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
