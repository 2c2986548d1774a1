import Foundation
import NIOCore
import Protocol

/// The parts of INFO a client uses (Protocol's `ServerInfo.Received`; this name is ClientLib's public API).
public typealias ServerInfoDocument = ServerInfo.Received

/// `nats://[user:pass@|token@]host:port`, `tls://...` (TLS), or `host:port`.
struct ServerAddress {
    var host: String
    var port: Int
    var user: String?
    var password: String?
    var token: String?
    /// The URL's scheme is `tls`.
    var secure = false

    init(_ string: String) throws {
        let full = string.contains("://") ? string : "nats://\(string)"
        guard let url = URLComponents(string: full), let host = url.host, !host.isEmpty else {
            throw NATSError.connectionFailed("invalid server URL \(string)")
        }
        switch url.scheme?.lowercased() {
        case "nats": break
        case "tls": secure = true
        default: throw NATSError.connectionFailed("invalid server URL \(string): the scheme must be nats:// or tls://")
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

    /// Whether `string` is a `tls://` URL.
    static func isSecure(_ string: String) -> Bool {
        string.lowercased().hasPrefix("tls://")
    }

    /// Whether the host is an IP address literal (no SNI then; the certificate's IP addresses are checked).
    var hostIsIPAddress: Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}
