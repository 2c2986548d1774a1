import Foundation

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
    /// TLS on the client port, as nats-server sets them: `tls_required` unless allow_non_tls (and always after a
    /// handshake_first handshake), `tls_available` with allow_non_tls, `tls_verify` with verify.
    public var tlsRequired: Bool? = nil
    public var tlsVerify: Bool? = nil
    public var tlsAvailable: Bool? = nil
    public var maxPayload: Int
    public var clientID: UInt64
    public var clientIP: String
    public var jetstream: Bool? = nil
    public var ldm: Bool? = nil
    /// Random, per connection, when nkey users exist: the client signs it with its nkey (CONNECT's `sig`).
    public var nonce: String? = nil
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
        if let tlsRequired { fields.append("\"tls_required\":\(tlsRequired)") }
        if let tlsVerify { fields.append("\"tls_verify\":\(tlsVerify)") }
        if let tlsAvailable { fields.append("\"tls_available\":\(tlsAvailable)") }
        fields.append("\"max_payload\":\(maxPayload)")
        fields.append("\"client_id\":\(clientID)")
        fields.append("\"client_ip\":\(JSONString.quoted(clientIP))")
        if let nonce { fields.append("\"nonce\":\(JSONString.quoted(nonce))") }
        if let jetstream { fields.append("\"jetstream\":\(jetstream)") }
        if let ldm { fields.append("\"ldm\":\(ldm)") }
        fields.append("\"brokerd_version\":\(JSONString.quoted(brokerdVersion))")
        return "{" + fields.joined(separator: ",") + "}"
    }
}

extension ServerInfo {
    /// The parts of INFO a client reads (ClientLib), every field optional: servers differ in what they send.
    public struct Received: Decodable, Sendable, Equatable {
        public var serverID: String?
        public var serverName: String?
        public var version: String?
        public var maxPayload: Int?
        public var headers: Bool?
        public var authRequired: Bool?
        public var connectURLs: [String]?
        public var ldm: Bool?
        /// The server takes only TLS connections: the client starts TLS after this INFO.
        public var tlsRequired: Bool?
        /// The server takes TLS and plain connections (`allow_non_tls`).
        public var tlsAvailable: Bool?

        public init() {}

        enum CodingKeys: String, CodingKey {
            case serverID = "server_id", serverName = "server_name", version, maxPayload = "max_payload", headers
            case authRequired = "auth_required", connectURLs = "connect_urls", ldm
            case tlsRequired = "tls_required", tlsAvailable = "tls_available"
        }
    }
}
