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
        guard !dimensions.isEmpty else { return label }
        var key = label
        key.reserveCapacity(dimensions.reduce(label.utf8.count) { $0 + $1.0.utf8.count + $1.1.utf8.count + 2 })
        for (name, value) in dimensions {
            key += "|"
            key += name
            key += "="
            key += value
        }
        return key
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

extension BrokerMetrics {
    /// What each metric means, as `# HELP` lines. swift-metrics has no place for help text (the Prometheus factory
    /// registers every metric with an empty one), so the rendered text gets them here, before each `# TYPE`.
    static let help: [String: String] = [
        "brokerd_connections": "Open client connections.",
        "brokerd_connections_total": "Client connections accepted since start.",
        "brokerd_subscriptions": "Active subscriptions.",
        "brokerd_in_msgs_total": "Messages received from clients.",
        "brokerd_in_bytes_total": "Payload bytes received from clients.",
        "brokerd_out_msgs_total": "Messages delivered to clients.",
        "brokerd_out_bytes_total": "Payload bytes delivered to clients.",
        "brokerd_slow_consumers_total": "Clients cut off as slow consumers.",
        "brokerd_lame_duck": "1 while in lame-duck mode.",
        "brokerd_uptime_seconds": "Seconds since start.",
        "brokerd_bridge_messages_total": "Messages Pub/Sub accepted (acked to brokerd).",
        "brokerd_bridge_retries_total": "Publish requests retried.",
        "brokerd_bridge_dead_lettered_total": "Messages sent to BRIDGE.DLQ.<topic>.",
        "brokerd_bridge_lag": "Messages in the bridge's durable consumer not yet acked.",
        "brokerd_bridge_degraded": "1 when the bridge has been failing for over a minute.",
        "brokerd_falco_alerts_accepted_total": "Falco alerts accepted, by ingest path.",
        "brokerd_falco_alerts_rejected_total": "Falco alerts rejected, by ingest path and reason.",
        "brokerd_falco_alerts_waiting_for_store": "Falco alerts published and waiting for their stream's fsync.",
        "brokerd_monitor_request_duration_seconds": "Time to serve a monitoring request, by path.",
    ]

    /// `text` (Prometheus exposition) with a `# HELP` line before the `# TYPE` line of every metric in `help`.
    static func withHelp(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count + help.count * 64)
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE "), let name = line.dropFirst(7).split(separator: " ").first,
               let text = help[String(name)] {
                out += "# HELP \(name) \(text)\n"
            }
            out += line
            out += "\n"
        }
        if out.hasSuffix("\n\n") { out.removeLast() }
        return out
    }
}

