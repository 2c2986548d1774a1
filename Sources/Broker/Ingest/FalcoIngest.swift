import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Protocol
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

    /// The outcome of a stream's answer.
    static func outcome(of ack: PubAck) -> Outcome {
        switch ack {
        case .stored: return .accepted
        case .failed(_, _, let description, _): return .failed(description, overloaded: ack.isOverloaded)
        }
    }

    // MARK: - Who the ingest publishes as

    /// `falco { user: NAME }`: the ingest publishes as that user of `authorization`, with its publish
    /// permissions (nil: no user, no restrictions). Replaced on reload.
    private let rules = NIOLockedValueBox<PermissionRules?>(nil)

    func publishAs(_ rules: PermissionRules?) {
        self.rules.withLockedValue { $0 = rules }
    }

    /// nil when the ingest's user may publish the alert's subject, else nats-server's error text.
    func permissionViolation(for alert: FalcoAlert) -> String? {
        guard let rules = rules.withLockedValue({ $0 }), rules.restrictsPublish else { return nil }
        let subject = ByteBuffer(string: alert.subject)
        return rules.allowsPublish(subject) ? nil : ProtocolError.publishViolation(subject: Array(alert.subject.utf8)).wireText
    }

    // MARK: - Publishing

    /// Plugs the ingest's NATS paths into the subject space: `$FALCO.INGEST` (falco-pipe) always, and
    /// falcosidekick's `falco.>` when `mapSidekickSubjects`.
    func attach(to space: SubjectSpace, mapSidekickSubjects: Bool) throws {
        try space.subscribe("$FALCO.INGEST", FalcoPipeSubscriber(ingest: self))
        if mapSidekickSubjects { try space.subscribe("falco.>", SidekickSubscriber(ingest: self)) }
    }

    /// Publishes a checked alert as the server on `router`'s loop (where the caller runs): routed to subscribers
    /// at once and, when a stream captures its subject, stored; `completion` runs once it is accepted (after the
    /// stream's fsync) or refused. Counts the outcome for `path`. `flush: false` leaves the routed bytes in the
    /// router's batch for the caller's `router.flushPending()` (the HTTP endpoint flushes once per read, not per alert).
    func publish(_ alert: FalcoAlert, body: some Collection<UInt8>, path: Path, via router: Router, flush: Bool = true,
                 completion: @escaping @Sendable (Outcome) -> Void) {
        inFlight.add(1, ordering: .relaxed)
        let stored = router.publishFromServer(Self.message(alert, body: body, reply: nil), toServices: true, answer: .callback { [self] ack in
            inFlight.subtract(1, ordering: .relaxed)
            let outcome = Self.outcome(of: ack)
            switch outcome {
            case .accepted: countAccepted(path)
            case .failed(let description, let overloaded):
                countRejected(path, reason: overloaded ? "overloaded" : "store_failed", detail: description)
            }
            completion(outcome)
        })
        if flush { router.flushPending() }
        if !stored {
            // No stream captures it: delivered is accepted.
            inFlight.subtract(1, ordering: .relaxed)
            countAccepted(path)
            completion(.accepted)
        }
    }

    /// The alert as the message brokerd publishes: `FALCO.<Priority>` with the Falco headers, body unchanged.
    static func message(_ alert: FalcoAlert, body: some Collection<UInt8>, reply: ByteBuffer?) -> Publish {
        let headers = alert.headerBlock()
        var payload = ByteBufferAllocator().buffer(capacity: headers.count + body.count)
        payload.writeBytes(headers)
        payload.writeBytes(body)
        return Publish(subject: ByteBuffer(string: alert.subject), reply: reply, headerLength: headers.count, payload: payload)
    }
}
