import CoreMetrics
import Foundation
import NIOConcurrencyHelpers

/// brokerd's metrics as swift-metrics handles (counters, gauges, a timer), made once from the factory the
/// caller gives (brokerd bootstraps a swift-prometheus one; a test passes its own registry's factory).
///
/// Why the values are pushed at scrape time: the publish path keeps its plain per-loop counters (`Router.inMsgs`,
/// `outMsgs`, ..., no atomic or lock per message), and the Falco and bridge counters stay where they are. When
/// /metrics or /varz is served, `MonitorServer` sums them once (`Snapshot`) and `record(_:)` moves the handles
/// to those values: gauges are set, and a counter is incremented by what its total grew since the last scrape.
/// /varz and /metrics read the same snapshot, so they cannot disagree.
final class BrokerMetrics: Sendable {
    /// Everything a scrape publishes, summed over the event loops once.
    struct Snapshot {
        var connections = 0
        var totalConnections: UInt64 = 0
        var subscriptions = 0
        var inMsgs: UInt64 = 0, inBytes: UInt64 = 0, outMsgs: UInt64 = 0, outBytes: UInt64 = 0
        var slowConsumers: UInt64 = 0
        /// For /subsz only (not exported).
        var cacheEntries = 0, cacheHits: UInt64 = 0, cacheMisses: UInt64 = 0
        var lameDuck = false
        var uptime: TimeInterval = 0
        var bridges: [BridgeStats.Snapshot] = []
        var falco: FalcoIngest.Snapshot?
    }

    private let factory: any MetricsFactory
    private let connections: Gauge
    private let subscriptions: Gauge
    private let lameDuck: Gauge
    private let uptime: Gauge
    private let totals: NIOLockedValueBox<[String: MirroredCounter]>
    private let gauges: NIOLockedValueBox<[String: Gauge]>
    private let timers = NIOLockedValueBox<[String: CoreMetrics.Timer]>([:])

    init(factory: any MetricsFactory) {
        self.factory = factory
        connections = Gauge(label: "brokerd_connections", factory: factory)
        subscriptions = Gauge(label: "brokerd_subscriptions", factory: factory)
        lameDuck = Gauge(label: "brokerd_lame_duck", factory: factory)
        uptime = Gauge(label: "brokerd_uptime_seconds", factory: factory)
        totals = NIOLockedValueBox([:])
        gauges = NIOLockedValueBox([:])
    }

    /// Moves every handle to the snapshot's values (called per scrape, never per message).
    func record(_ s: Snapshot) {
        connections.record(s.connections)
        subscriptions.record(s.subscriptions)
        lameDuck.record(s.lameDuck ? 1 : 0)
        uptime.record(s.uptime)
        total("brokerd_connections_total", [], s.totalConnections)
        total("brokerd_in_msgs_total", [], s.inMsgs)
        total("brokerd_in_bytes_total", [], s.inBytes)
        total("brokerd_out_msgs_total", [], s.outMsgs)
        total("brokerd_out_bytes_total", [], s.outBytes)
        total("brokerd_slow_consumers_total", [], s.slowConsumers)
        for b in s.bridges {
            let labels = [("topic", b.topic), ("project", b.project)]
            total("brokerd_bridge_messages_total", labels, b.bridged)
            total("brokerd_bridge_retries_total", labels, b.retried)
            total("brokerd_bridge_dead_lettered_total", labels, b.deadLettered)
            gauge("brokerd_bridge_lag", labels, Double(b.lag))
            gauge("brokerd_bridge_degraded", labels, b.degraded() ? 1 : 0)
        }
        if let f = s.falco {
            for path in FalcoIngest.Path.allCases {
                total("brokerd_falco_alerts_accepted_total", [("path", path.name)], f.accepted[path.name] ?? 0)
                for reason in FalcoIngest.reasons {
                    total("brokerd_falco_alerts_rejected_total", [("path", path.name), ("reason", reason)],
                          f.rejected[path.name]?[reason] ?? 0)
                }
            }
            gauge("brokerd_falco_alerts_waiting_for_store", [], Double(f.inFlight))
        }
    }

    /// How long a monitoring request took, by endpoint (`path` from a bounded set; a handle made on first use).
    func recordRequest(path: String, nanoseconds: Int64) {
        let factory = self.factory
        let timer = timers.withLockedValue { timers in
            let timer = timers[path]
                ?? CoreMetrics.Timer(label: "brokerd_monitor_request_duration_seconds", dimensions: [("path", path)], factory: factory)
            timers[path] = timer
            return timer
        }
        timer.recordNanoseconds(nanoseconds)
    }

    private static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        dimensions.reduce(label) { $0 + "|" + $1.0 + "=" + $1.1 }
    }

    private func total(_ label: String, _ dimensions: [(String, String)], _ value: some BinaryInteger) {
        let key = Self.key(label, dimensions)
        let factory = self.factory
        totals.withLockedValue { handles in
            let handle = handles[key] ?? MirroredCounter(Counter(label: label, dimensions: dimensions, factory: factory))
            handles[key] = handle
            handle.set(UInt64(value))
        }
    }

    private func gauge(_ label: String, _ dimensions: [(String, String)], _ value: Double) {
        let key = Self.key(label, dimensions)
        let factory = self.factory
        gauges.withLockedValue { handles in
            let handle = handles[key] ?? Gauge(label: label, dimensions: dimensions, factory: factory)
            handles[key] = handle
            handle.record(value)
        }
    }
}

/// A swift-metrics counter that follows a monotonic total kept elsewhere (used under BrokerMetrics' lock).
final class MirroredCounter: @unchecked Sendable {
    let counter: Counter
    private(set) var published: UInt64 = 0

    init(_ counter: Counter) { self.counter = counter }

    func set(_ total: UInt64) {
        if total < published {
            // The source started again (a bridge restarted, say): follow it, as a Prometheus counter reset.
            counter.reset()
            published = 0
        }
        if total > published { counter.increment(by: Int64(clamping: total - published)) }
        published = total
    }
}
