/// Errors the client-protocol parser and connection can raise.
///
/// `wireText` is nats-server's exact text (sent as `-ERR '<text>'\r\n`); `nil` means nats-server closes the
/// connection without sending any -ERR (it only logs), and so do we.
public enum ProtocolError: Error, Equatable, Sendable {
    case unknownOperation
    case maxPayloadViolation
    case maxControlLineExceeded
    case authorizationViolation
    case authenticationTimeout
    case staleConnection
    case invalidSubject
    case invalidPublishSubject
    case maxConnectionsExceeded
    case noRespondersRequiresHeaders
    /// CONNECT with a `protocol` other than 0 or 1.
    case invalidClientProtocol
    /// A malformed argument list (wrong arity, bad size, header size > total, bad CONNECT JSON, HPUB without
    /// headers support...). nats-server closes these connections silently: see processPub in client.go.
    case protocolViolation(String)

    public var wireText: String? {
        switch self {
        case .unknownOperation: return "Unknown Protocol Operation"
        case .maxPayloadViolation: return "Maximum Payload Violation"
        case .maxControlLineExceeded: return "maximum control line exceeded"
        case .authorizationViolation: return "Authorization Violation"
        case .authenticationTimeout: return "Authentication Timeout"
        case .staleConnection: return "Stale Connection"
        case .invalidSubject: return "Invalid Subject"
        case .invalidPublishSubject: return "Invalid Publish Subject"
        case .maxConnectionsExceeded: return "maximum connections exceeded"
        case .noRespondersRequiresHeaders: return "no responders requires headers support"
        case .invalidClientProtocol: return "invalid client protocol"
        case .protocolViolation: return nil
        }
    }

    /// Whether nats-server closes the connection after this error.
    public var closesConnection: Bool {
        switch self {
        case .invalidSubject, .invalidPublishSubject: return false
        case .unknownOperation, .maxPayloadViolation, .maxControlLineExceeded, .authorizationViolation,
             .authenticationTimeout, .staleConnection, .maxConnectionsExceeded, .noRespondersRequiresHeaders,
             .invalidClientProtocol, .protocolViolation:
            return true
        }
    }
}
