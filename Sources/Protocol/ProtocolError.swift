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
    /// A PUB/HPUB to a subject the user may not publish to (nothing is delivered; the connection stays open).
    case publishViolation(subject: [UInt8])
    /// A PUB with a reserved reply subject (`_R_.`, `$JS.ACK.`, `_GR_.`): nats-server refuses these from clients.
    case replyViolation(reply: [UInt8])
    /// A SUB the user may not make (with its queue group when it has one).
    case subscriptionViolation(subject: [UInt8], queue: [UInt8]?)
    /// After a reload, an existing subscription the new permissions no longer allow (it is removed).
    case subscriptionRevoked(subject: [UInt8], queue: [UInt8]?, sid: [UInt8])

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
        // nats-server formats these with Go's %q (nats.go parses them with regular expressions).
        case .publishViolation(let subject):
            return "Permissions Violation for Publish to \(GoQuote.quote(subject))"
        case .replyViolation(let reply):
            return "Permissions Violation for Publish with Reply of \(GoQuote.quote(reply))"
        case .subscriptionViolation(let subject, nil):
            return "Permissions Violation for Subscription to \(GoQuote.quote(subject))"
        case .subscriptionViolation(let subject, let queue?):
            return "Permissions Violation for Subscription to \(GoQuote.quote(subject)) using queue \(GoQuote.quote(queue))"
        case .subscriptionRevoked(let subject, nil, let sid):
            return "Permissions Violation for Subscription to \(GoQuote.quote(subject)) (sid \(GoQuote.quote(sid)))"
        case .subscriptionRevoked(let subject, let queue?, let sid):
            return "Permissions Violation for Subscription to \(GoQuote.quote(subject)) using queue \(GoQuote.quote(queue)) (sid \(GoQuote.quote(sid)))"
        }
    }

    /// Whether nats-server closes the connection after this error.
    public var closesConnection: Bool {
        switch self {
        case .invalidSubject, .invalidPublishSubject, .publishViolation, .replyViolation, .subscriptionViolation,
             .subscriptionRevoked:
            return false
        case .unknownOperation, .maxPayloadViolation, .maxControlLineExceeded, .authorizationViolation,
             .authenticationTimeout, .staleConnection, .maxConnectionsExceeded, .noRespondersRequiresHeaders,
             .invalidClientProtocol, .protocolViolation:
            return true
        }
    }
}
