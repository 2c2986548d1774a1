import NIOCore

/// `tls { connection_rate_limit: N }`: at most N TLS handshakes begin per second; the others are refused with
/// nats-server's -ERR (server/rate_counter.go, the same window: the first connection after the last window ended
/// opens a new one-second window). Plain values with the clock passed in; `BrokerServer` keeps one under a lock.
struct TLSRateLimit: Sendable, Equatable {
    let limit: Int64
    private var count: Int64 = 0
    private var windowEnd: NIODeadline = .uptimeNanoseconds(0)
    /// Refused since the last `takeBlocked()` (logged once a second, as nats-server).
    private var blocked: UInt64 = 0

    static let interval: TimeAmount = .seconds(1)
    /// nats-server's text.
    static let errorText = "Connection throttling is active. Please try again later."

    init(limit: Int64) { self.limit = limit }

    mutating func allow(now: NIODeadline) -> Bool {
        if now > windowEnd {
            count = 0
            windowEnd = now + Self.interval
        } else {
            count += 1
        }
        let allowed = count < limit
        if !allowed { blocked += 1 }
        return allowed
    }

    mutating func takeBlocked() -> UInt64 {
        defer { blocked = 0 }
        return blocked
    }
}
