import Foundation
import NIOCore

/// CONNECT's document, both ways: what brokerd reads from clients, and what ClientLib writes. Absent fields mean what they mean to nats-server: verbose, pedantic
/// and echo default to true; headers and no_responders to false.
public struct ConnectOptions: Decodable, Equatable, Sendable {
    public var verbose: Bool = true
    public var pedantic: Bool = true
    public var echo: Bool = true
    public var headers: Bool = false
    public var noResponders: Bool = false
    public var user: String?
    public var pass: String?
    public var authToken: String?
    public var name: String?
    public var lang: String?
    public var version: String?
    public var protocolVersion: Int = 0
    public var tlsRequired: Bool = false
    /// An nkey user's public key, and its signature of INFO's nonce (base64url, Ed25519).
    public var nkey: String?
    public var sig: String?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case verbose, pedantic, echo, headers, user, pass, name, lang, version
        case noResponders = "no_responders"
        case authToken = "auth_token"
        case protocolVersion = "protocol"
        case tlsRequired = "tls_required"
        case nkey, sig
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        verbose = try c.decodeIfPresent(Bool.self, forKey: .verbose) ?? true
        pedantic = try c.decodeIfPresent(Bool.self, forKey: .pedantic) ?? true
        echo = try c.decodeIfPresent(Bool.self, forKey: .echo) ?? true
        headers = try c.decodeIfPresent(Bool.self, forKey: .headers) ?? false
        noResponders = try c.decodeIfPresent(Bool.self, forKey: .noResponders) ?? false
        user = try c.decodeIfPresent(String.self, forKey: .user)
        pass = try c.decodeIfPresent(String.self, forKey: .pass)
        authToken = try c.decodeIfPresent(String.self, forKey: .authToken)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        lang = try c.decodeIfPresent(String.self, forKey: .lang)
        version = try c.decodeIfPresent(String.self, forKey: .version)
        protocolVersion = try c.decodeIfPresent(Int.self, forKey: .protocolVersion) ?? 0
        tlsRequired = try c.decodeIfPresent(Bool.self, forKey: .tlsRequired) ?? false
        nkey = try c.decodeIfPresent(String.self, forKey: .nkey)
        sig = try c.decodeIfPresent(String.self, forKey: .sig)
    }

    /// The document a client sends (ClientLib), with the fields it sets; absent optionals are left out.
    public func json() -> String {
        var fields: [String] = [
            "\"verbose\":\(verbose)", "\"pedantic\":\(pedantic)", "\"headers\":\(headers)",
            "\"no_responders\":\(noResponders)", "\"protocol\":\(protocolVersion)",
        ]
        if let lang { fields.append("\"lang\":\(JSONString.quoted(lang))") }
        if let version { fields.append("\"version\":\(JSONString.quoted(version))") }
        fields.append("\"echo\":\(echo)")
        if let name { fields.append("\"name\":\(JSONString.quoted(name))") }
        if let authToken { fields.append("\"auth_token\":\(JSONString.quoted(authToken))") }
        if let user { fields.append("\"user\":\(JSONString.quoted(user))") }
        if let pass { fields.append("\"pass\":\(JSONString.quoted(pass))") }
        if tlsRequired { fields.append("\"tls_required\":true") }
        if let nkey { fields.append("\"nkey\":\(JSONString.quoted(nkey))") }
        if let sig { fields.append("\"sig\":\(JSONString.quoted(sig))") }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// Decodes CONNECT's argument; a malformed document is a protocol violation (nats-server closes silently).
    public static func decode(_ json: ByteBuffer) throws(ProtocolError) -> ConnectOptions {
        do {
            return try JSONDecoder().decode(ConnectOptions.self, from: Data(json.readableBytesView))
        } catch {
            throw .protocolViolation("CONNECT: invalid JSON")
        }
    }
}
