import NIOCore

/// How a `NATSClient` connects, authenticates, reconnects and buffers.
public struct NATSOptions: Sendable {
    /// Servers to try, in order (`nats://host:port`, `tls://host:port`, `host:port`; credentials in the URL are
    /// used too). One `tls://` URL makes every connection TLS, as in nats.go.
    /// Servers a connected server advertises (INFO `connect_urls`) are added for reconnects.
    public var servers: [String]
    public var name: String?
    public var token: String?
    public var user: String?
    public var password: String?
    /// TLS: CA file, client certificate and key, handshake first (see `NATSTLSOptions`; `tls://` URLs turn it on).
    public var tls = NATSTLSOptions()
    /// Time allowed for TCP connect plus the INFO/CONNECT/PONG handshake, per attempt.
    public var connectTimeout: Duration = .seconds(2)
    /// Reconnect after a lost connection (not after `close()`).
    public var allowReconnect = true
    /// Attempts per outage before giving up (each attempt tries the next server); -1 means forever.
    public var maxReconnectAttempts = 60
    /// First wait between reconnect attempts; doubles per attempt up to `maxReconnectWait`, plus jitter.
    public var reconnectWait: Duration = .milliseconds(100)
    public var maxReconnectWait: Duration = .seconds(2)
    /// Up to this much jitter is added to each reconnect wait (so a fleet does not reconnect in lockstep).
    public var reconnectJitter: Duration = .milliseconds(100)
    /// Bytes of publishes kept while disconnected; past this, `publish` throws `reconnectBufferFull`.
    public var reconnectBufferSize = 8 * 1024 * 1024
    /// Outbound bytes not yet written to the socket at which `publish` waits (backpressure).
    public var maxPendingOutboundBytes = 32 * 1024 * 1024
    /// Default per-subscription limit of messages buffered for the reader; past it messages are dropped and
    /// reported (`NATSEvent.slowConsumer`, `NATSSubscription.dropped`).
    public var subscriptionPendingLimit = 512 * 1024
    public var echo = true
    /// Server-side PING from us to detect dead connections.
    public var pingInterval: Duration = .seconds(120)
    public var maxPingsOut = 2
    /// Prefix of reply subjects for `request`.
    public var inboxPrefix = "_INBOX"

    public init(servers: [String] = ["nats://127.0.0.1:4222"]) {
        self.servers = servers
    }
}
