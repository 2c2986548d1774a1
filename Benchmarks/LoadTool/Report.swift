import Foundation
import Histogram
import Protocol

/// What one run measured; printed as the contract's JSON line or as a readable summary.
struct BenchResult {
    var scenario: Scenario
    var url: String
    /// Payload bytes per message (the mean alert length for falco).
    var size: Int
    var msgs: Int
    var subs: Int
    /// First publish to last delivery (to the publisher's flush for pub; first request to last reply for reqrep).
    var seconds: Double
    var delivered: Int
    var lost: Int
    var duplicated: Int
    var reordered: Int
    var latency: Histogram<UInt64>?
    /// Messages (requests) published, and from the first publish to the end of the publisher's flush.
    var published: Int
    var publishSeconds: Double
    /// Payload bytes of the counted messages (published for pub, delivered otherwise).
    var countedBytes: Double
    /// Disconnects, slow-consumer reports, server errors, foreign messages, skipped alert lines.
    var notes: [String]
    /// Scenario-specific JSON fields (name, JSON value text), appended after the standard ones.
    var extras: [(String, String)] = []
    /// Failures beyond lost/duplicated/reordered that fail the run's integrity (falcohttp: non-200 answers;
    /// falcopipe: alerts the pipe reports rejected, dropped or undelivered), each also a note.
    var failures = 0

    var countedMessages: Int { scenario == .pub ? published : delivered }
    var msgsPerSec: Double { seconds > 0 ? Double(countedMessages) / seconds : 0 }
    var mbPerSec: Double { seconds > 0 ? countedBytes / seconds / 1_000_000 : 0 }
    var publishRate: Double { publishSeconds > 0 ? Double(published) / publishSeconds : 0 }
    var integrityFailed: Bool { lost > 0 || duplicated > 0 || reordered > 0 || failures > 0 }

    /// Percentiles in microseconds (the histogram holds nanoseconds).
    func percentile(_ p: Double) -> Double? {
        guard let latency, latency.totalCount > 0 else { return nil }
        return Double(latency.valueAtPercentile(p)) / 1000
    }

    func json() -> String {
        var fields: [(String, String)] = [
            ("scenario", Self.quote(scenario.rawValue)),
            ("size", String(size)),
            ("msgs", String(msgs)),
            ("subs", String(subs)),
            ("seconds", Self.number(seconds, digits: 6)),
            ("msgs_per_sec", Self.number(msgsPerSec, digits: 1)),
            ("mb_per_sec", Self.number(mbPerSec, digits: 3)),
            ("delivered", String(delivered)),
            ("lost", String(lost)),
            ("duplicated", String(duplicated)),
            ("reordered", String(reordered)),
        ]
        if let p50 = percentile(50), let p90 = percentile(90), let p99 = percentile(99), let p999 = percentile(99.9) {
            fields.append(("latency_us", "{\"p50\": \(Self.number(p50, digits: 3)), \"p90\": \(Self.number(p90, digits: 3)), "
                                         + "\"p99\": \(Self.number(p99, digits: 3)), \"p999\": \(Self.number(p999, digits: 3))}"))
        } else {
            fields.append(("latency_us", "null"))
        }
        // Extras beyond the contract (readers ignore unknown keys).
        fields.append(("published", String(published)))
        fields.append(("publish_seconds", Self.number(publishSeconds, digits: 6)))
        fields.append(("publish_msgs_per_sec", Self.number(publishRate, digits: 1)))
        fields.append(("latency_max_us", percentile(100).map { Self.number($0, digits: 3) } ?? "null"))
        fields.append(("notes", "[" + notes.map(Self.quote).joined(separator: ", ") + "]"))
        fields += extras
        return "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
    }

    func summary() -> String {
        var lines: [String] = []
        let subsText = switch scenario {
        case .pub: "no subscribers"
        case .jspub: "window \(extras.first { $0.0 == "window" }?.1 ?? "?") PubAcks"
        case .jsconsume: "1 durable push consumer, explicit acks"
        case .jsacksync: "1 durable push consumer, confirmed acks (ack_sync)"
        case .kvput: "window \(extras.first { $0.0 == "window" }?.1 ?? "?") PubAcks, \(extras.first { $0.0 == "keys" }?.1 ?? "?") keys"
        case .kvget: "direct gets, one at a time"
        case .kvwatch: "1 watcher (push consumer, last_per_subject, ack none)"
        case .objput: "one object in chunks, window \(extras.first { $0.0 == "window" }?.1 ?? "?") PubAcks"
        case .objget: "one object, 1 push consumer on its chunks"
        case .reqrep: "1 responder"
        case .falcohttp: "\(extras.first { $0.0 == "conns" }?.1 ?? "?") HTTP connections, 1 subscriber on FALCO.*"
        case .falcopipe: "brokerd falco-pipe, 1 subscriber on FALCO.*"
        case .queue: "a queue group of \(subs)"
        default: "\(subs) subscriber\(subs == 1 ? "" : "s")"
        }
        lines.append("brokerd-bench \(scenario.rawValue) against \(url): \(Self.grouped(msgs)) msgs of \(size) B, \(subsText)")
        let verb = scenario == .reqrep ? "requested" : "published"
        lines.append("  \(verb)    \(Self.grouped(published)) in \(Self.fixed(publishSeconds, 3)) s "
                     + "(\(Self.grouped(Int(publishRate.rounded()))) msgs/s, to the end of the flush)")
        if scenario != .pub {
            let what = [.reqrep, .kvget].contains(scenario) ? "replies  " : ([.jspub, .kvput, .objput].contains(scenario) ? "acked    " : "delivered")
            lines.append("  \(what)    \(Self.grouped(delivered)) in \(Self.fixed(seconds, 3)) s")
        }
        lines.append("  throughput   \(Self.grouped(Int(msgsPerSec.rounded()))) msgs/s, \(Self.fixed(mbPerSec, 2)) MB/s"
                     + (scenario == .pub ? " (published)" : ([.jspub, .kvput, .objput].contains(scenario) ? " (acked)" : " (delivered)")))
        var integrity = "lost \(Self.grouped(lost)), duplicated \(Self.grouped(duplicated)), reordered \(Self.grouped(reordered))"
        if failures > 0 { integrity += ", other failures \(Self.grouped(failures)) (see the notes)" }
        lines.append("  integrity    \(integrityFailed ? "FAILED" : "ok"): \(integrity)")
        if let p50 = percentile(50), let p90 = percentile(90), let p99 = percentile(99), let p999 = percentile(99.9),
           let max = percentile(100) {
            let label = [.reqrep, .kvget].contains(scenario) ? "round trip"
                : ([.jspub, .kvput].contains(scenario) ? "pub->ack  " : ([.objput, .objget].contains(scenario) ? "object    " : "latency   "))
            lines.append("  \(label)   p50 \(Self.fixed(p50, 1)) us, p90 \(Self.fixed(p90, 1)) us, p99 \(Self.fixed(p99, 1)) us, "
                         + "p99.9 \(Self.fixed(p999, 1)) us, max \(Self.fixed(max, 1)) us")
        }
        for (name, value) in extras { lines.append("  \(name): \(value)") }
        for note in notes { lines.append("  note: \(note)") }
        return lines.joined(separator: "\n")
    }

    /// A JSON string literal (the same escaping INFO uses).
    static func quote(_ s: String) -> String { JSONString.quoted(s) }

    /// A JSON number: finite, rounded to `digits` decimals.
    static func number(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return "0" }
        return String(format: "%.\(digits)f", value)
    }

    static func fixed(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }

    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }
}
