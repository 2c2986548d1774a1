import Foundation
import NIOCore

/// The JSON a client sends with CONNECT. Absent fields mean what they mean to nats-server: verbose, pedantic
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

    public init() {}

    enum CodingKeys: String, CodingKey {
        case verbose, pedantic, echo, headers, user, pass, name, lang, version
        case noResponders = "no_responders"
        case authToken = "auth_token"
        case protocolVersion = "protocol"
        case tlsRequired = "tls_required"
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

/// The INFO document. Field names and meanings as nats-server's Info struct (server/server.go).
public struct ServerInfo: Sendable {
    public var serverID: String
    public var serverName: String
    /// The NATS protocol level we speak, as a nats-server version: clients (nats-py, nats.go) choose
    /// features such as the JetStream consumer-create API from it, so it must be valid SemVer >= 2.9.0.
    public var version: String
    public var proto: Int = 1
    public var host: String
    public var port: Int
    public var headers: Bool = true
    public var authRequired: Bool? = nil
    public var maxPayload: Int
    public var clientID: UInt64
    public var clientIP: String
    public var jetstream: Bool? = nil
    public var ldm: Bool? = nil
    /// brokerd's own version, in a field of its own.
    public var brokerdVersion: String

    public init(serverID: String, serverName: String, version: String, host: String, port: Int,
                authRequired: Bool, maxPayload: Int, clientID: UInt64, clientIP: String, brokerdVersion: String) {
        self.serverID = serverID
        self.serverName = serverName
        self.version = version
        self.host = host
        self.port = port
        self.authRequired = authRequired ? true : nil
        self.maxPayload = maxPayload
        self.clientID = clientID
        self.clientIP = clientIP
        self.brokerdVersion = brokerdVersion
    }


    /// The document in nats-server's field order (server_id first), so INFO reads the same as nats-server's.
    public func json() -> String {
        var fields: [String] = [
            "\"server_id\":\(JSONString.quoted(serverID))",
            "\"server_name\":\(JSONString.quoted(serverName))",
            "\"version\":\(JSONString.quoted(version))",
            "\"proto\":\(proto)",
            "\"host\":\(JSONString.quoted(host))",
            "\"port\":\(port)",
            "\"headers\":\(headers)",
        ]
        if let authRequired { fields.append("\"auth_required\":\(authRequired)") }
        fields.append("\"max_payload\":\(maxPayload)")
        fields.append("\"client_id\":\(clientID)")
        fields.append("\"client_ip\":\(JSONString.quoted(clientIP))")
        if let jetstream { fields.append("\"jetstream\":\(jetstream)") }
        if let ldm { fields.append("\"ldm\":\(ldm)") }
        fields.append("\"brokerd_version\":\(JSONString.quoted(brokerdVersion))")
        return "{" + fields.joined(separator: ",") + "}"
    }
}
