import Foundation

/// The parts of INFO a client uses.
public struct ServerInfoDocument: Decodable, Sendable, Equatable {
    public var serverID: String?
    public var serverName: String?
    public var version: String?
    public var maxPayload: Int?
    public var headers: Bool?
    public var authRequired: Bool?
    public var connectURLs: [String]?
    public var ldm: Bool?

    enum CodingKeys: String, CodingKey {
        case serverID = "server_id", serverName = "server_name", version, maxPayload = "max_payload", headers
        case authRequired = "auth_required", connectURLs = "connect_urls", ldm
    }
}

/// `nats://[user:pass@|token@]host:port`, or `host:port`.
struct ServerAddress {
    var host: String
    var port: Int
    var user: String?
    var password: String?
    var token: String?

    init(_ string: String) throws {
        let full = string.contains("://") ? string : "nats://\(string)"
        guard let url = URLComponents(string: full), let host = url.host, !host.isEmpty else {
            throw NATSError.connectionFailed("invalid server URL \(string)")
        }
        self.host = host
        self.port = url.port ?? 4222
        if let user = url.user, let password = url.password {
            self.user = user
            self.password = password
        } else if let user = url.user {
            self.token = user
        }
    }
}
