import Foundation
import Synchronization

/// A bridge's counters for /varz, /metrics and /healthz: all that the broker knows of a bridge. The bridge
/// (the PubSubBridge target, a client of the broker) writes them; the server holds the ones registered with
/// `BrokerServer.register(bridge:)` and the monitor reads their snapshots.
public final class BridgeStats: Sendable {
    public let topic: String
    public let project: String
    private let bridged = Atomic<UInt64>(0)
    private let retried = Atomic<UInt64>(0)
    private let deadLettered = Atomic<UInt64>(0)
    /// Messages in the durable consumer not yet acknowledged to brokerd (pending + awaiting ack).
    private let lag = Atomic<Int64>(-1)
    private let state = Mutex<(lastError: String?, lastErrorAt: Date?, failingSince: Date?, ready: Bool)>((nil, nil, nil, false))

    public init(project: String, topic: String) {
        self.project = project
        self.topic = topic
    }

    /// Pub/Sub took `count` messages (and they were acked to brokerd).
    public func addBridged(_ count: Int) { bridged.add(UInt64(count), ordering: .relaxed) }

    public func addRetry() { retried.add(1, ordering: .relaxed) }

    public func addDeadLettered() { deadLettered.add(1, ordering: .relaxed) }

    public func setLag(_ messages: Int64) { lag.store(messages, ordering: .relaxed) }

    public func succeeded() {
        state.withLock { $0.failingSince = nil }
    }

    public func failed(_ error: String) {
        state.withLock {
            $0.lastError = error
            $0.lastErrorAt = Date()
            if $0.failingSince == nil { $0.failingSince = Date() }
        }
    }

    public func setReady(_ ready: Bool) { state.withLock { $0.ready = ready } }

    /// Failing without a single success for longer than this: /healthz says "degraded".
    public static let degradedAfter: TimeInterval = 60

    public struct Snapshot: Sendable {
        public var project: String
        public var topic: String
        public var bridged: UInt64
        public var retried: UInt64
        public var deadLettered: UInt64
        public var lag: Int64
        public var lastError: String?
        public var lastErrorAt: Date?
        public var failingSince: Date?
        public var ready: Bool

        public func degraded(now: Date = Date()) -> Bool {
            guard let since = failingSince else { return false }
            return now.timeIntervalSince(since) > BridgeStats.degradedAfter
        }
    }

    public func snapshot() -> Snapshot {
        let s = state.withLock { $0 }
        return Snapshot(project: project, topic: topic, bridged: bridged.load(ordering: .relaxed),
                        retried: retried.load(ordering: .relaxed), deadLettered: deadLettered.load(ordering: .relaxed),
                        lag: lag.load(ordering: .relaxed), lastError: s.lastError, lastErrorAt: s.lastErrorAt,
                        failingSince: s.failingSince, ready: s.ready)
    }
}
