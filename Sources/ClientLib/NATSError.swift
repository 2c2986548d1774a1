/// Errors a `NATSClient` reports.
public enum NATSError: Error, Equatable, Sendable {
    /// No server could be reached (each attempt's reason, last first).
    case connectionFailed(String)
    /// The server refused the credentials ('Authorization Violation').
    case authorizationViolation
    /// An operation did not complete in time.
    case timeout
    /// A request found nobody subscribed to its subject (status 503): fails at once, not after the timeout.
    case noResponders
    /// The client was closed (by `close()`, `drain()` or after reconnects were exhausted).
    case closed
    /// Disconnected, and the reconnect buffer cannot take this publish.
    case reconnectBufferFull
    /// The payload is larger than the server's max_payload.
    case maxPayloadExceeded(size: Int, limit: Int)
    /// The subject (or queue) is not valid for this operation.
    case invalidSubject(String)
    /// The server sent -ERR with this text.
    case serverError(String)
    /// TLS was asked for (a `tls://` URL, a CA file, a client certificate) but the server offers none
    /// (nats.go's "secure connection not available").
    case secureConnectionNotAvailable
    /// The TLS options cannot be used: an unreadable or empty CA, certificate or key file, a certificate
    /// without its key. Retrying does not help.
    case tlsConfiguration(String)
}

extension NATSError {
    var isTLSConfiguration: Bool {
        if case .tlsConfiguration = self { return true }
        return false
    }
}

/// What happens to a connection, observable through `NATSClient.events`.
public enum NATSEvent: Sendable, Equatable {
    case connected(server: String)
    case disconnected(reason: String)
    case reconnected(server: String)
    /// A subscription's pending limit was reached and messages were dropped (the count so far).
    case slowConsumer(subject: String, dropped: Int)
    case serverError(String)
    /// The server is in lame-duck mode and will close us soon (we will reconnect elsewhere).
    case lameDuck
    case closed
}
