import Foundation
import Protocol

/// The parts of INFO a client uses (Protocol's `ServerInfo.Received`; this name is ClientLib's public API).
public typealias ServerInfoDocument = ServerInfo.Received

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
