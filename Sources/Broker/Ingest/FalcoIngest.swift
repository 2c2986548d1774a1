import Foundation
import Logging
import NIOCore
import Synchronization

/// Falco ingestion: every path by which alerts arrive (HTTP `http_output`, `falco-pipe`, falcosidekick's
/// NATS output) validates with `FalcoAlert.validate`, publishes on `FALCO.<Priority>` with the Falco headers,
/// and counts what it accepted and rejected, by reason.
public final class FalcoIngest: @unchecked Sendable {
    public enum Path: Int, CaseIterable, Sendable {
        case http, pipe, sidekick
        public var name: String { ["http", "pipe", "sidekick"][rawValue] }
    }

    /// Rejection reasons: an alert's (FalcoAlert.Rejection.Reason) and the transport's.
    public static let reasons: [String] = FalcoAlert.Rejection.Reason.allCases.map(\.rawValue)
        + ["unsupported_media_type", "overloaded", "store_failed"]

    final class Counter: Sendable {
        let value = Atomic<UInt64>(0)
        func add(_ n: UInt64 = 1) { value.add(n, ordering: .relaxed) }
        var current: UInt64 { value.load(ordering: .relaxed) }
    }

    private let accepted: [Counter] = Path.allCases.map { _ in Counter() }
    private let rejected: [[Counter]] = Path.allCases.map { _ in FalcoIngest.reasons.map { _ in Counter() } }
    /// Alerts published and waiting for their stream's PubAck (HTTP answers only then).
    let inFlight = Atomic<Int>(0)
    let maxInFlight: Int
    let logger: Logger
    private let lastWarning = Atomic<Int64>(0)

    public init(maxInFlight: Int = 16_384, logger: Logger) {
        self.maxInFlight = maxInFlight
        self.logger = logger
    }

    func countAccepted(_ path: Path, _ n: UInt64 = 1) { accepted[path.rawValue].add(n) }

    func countRejected(_ path: Path, reason: String, detail: String) {
        let index = Self.reasons.firstIndex(of: reason) ?? 0
        rejected[path.rawValue][index].add()
        // Rejections are logged, at most about one a second per server, so a flood of bad input cannot
        // flood the log too; the counters keep the full count.
        let now = Int64(Date().timeIntervalSince1970)
        let last = lastWarning.load(ordering: .relaxed)
        if now > last, lastWarning.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged {
            logger.warning("Falco alert rejected", metadata: ["path": "\(path.name)", "reason": "\(reason)", "detail": "\(detail)"])
        }
    }

    /// Counters for /varz and /metrics.
    public struct Snapshot: Sendable {
        public var accepted: [String: UInt64] = [:]
        public var rejected: [String: [String: UInt64]] = [:]
        public var inFlight = 0
    }

    public func snapshot() -> Snapshot {
        var s = Snapshot()
        for path in Path.allCases {
            s.accepted[path.name] = accepted[path.rawValue].current
            var byReason: [String: UInt64] = [:]
            for (i, reason) in Self.reasons.enumerated() {
                let n = rejected[path.rawValue][i].current
                if n > 0 { byReason[reason] = n }
            }
            s.rejected[path.name] = byReason
        }
        s.inFlight = inFlight.load(ordering: .relaxed)
        return s
    }

    /// How a publish ended: delivered to subscribers (and stored and synced, when a stream captures it), or
    /// refused by the stream (`overloaded` when it is a resource limit: worth retrying later).
    public enum Outcome: Sendable, Equatable {
        case accepted
        case failed(String, overloaded: Bool)
    }

    /// Reads a PubAck: `{"stream":..,"seq":..}` or `{"error":{"code":503,...,"description":"..."}}`.
    static func outcome(ofPubAck response: ByteBuffer) -> Outcome {
        let text = String(buffer: response)
        guard text.contains("\"error\"") else { return .accepted }
        var description = "storage failure"
        if let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
           let error = object["error"] as? [String: Any], let d = error["description"] as? String {
            description = d
        }
        return .failed(description, overloaded: text.contains("\"code\":503"))
    }
}
