import ClientLib
import Foundation
import Histogram
import NIOCore
import Synchronization

// jspub and jsconsume: JetStream through the plain NATS protocol (the `$JS.API` requests and PubAcks any
// client library uses), so the same code runs against brokerd and nats-server.

/// What a windowed JetStream publisher saw: one PubAck per message (matched by the reply subject's last
/// token, the message's index), at most `window` outstanding.
///
/// `ack` runs on the publisher connection's event loop, `acquire` in the publishing task, `watch` in a
/// watchdog task; one lock (uncontended but for the hand-off when the window is full).
final class PubAckTracker: @unchecked Sendable {
    let expected: Int
    let window: Int
    private let state: Mutex<State>

    struct State {
        /// Send time of each message (0: not sent yet).
        var sentAt: [UInt64]
        var acked: [UInt64]
        var outstanding = 0
        var ok = 0
        var errors = 0
        var duplicated = 0
        var foreign = 0
        /// PubAcks whose stream sequence does not grow with the publish order.
        var reordered = 0
        var lastIndex = -1
        var lastStreamSeq: UInt64 = 0
        var firstError: String?
        var lastAckAt: UInt64 = 0
        /// Last ack or send: the watchdog's idea of progress.
        var progressAt: UInt64 = 0
        var waiter: CheckedContinuation<Bool, Never>?
        var stalled = false
        var latency = Tracker.makeHistogram()
    }

    /// Confirmed acks (jsacksync): the answer is an empty message, not a PubAck.
    let confirmations: Bool

    init(expected: Int, window: Int, confirmations: Bool = false) {
        self.expected = expected
        self.window = window
        self.confirmations = confirmations
        state = Mutex(State(sentAt: [UInt64](repeating: 0, count: expected), acked: [UInt64](repeating: 0, count: (expected + 63) / 64)))
    }

    /// Takes a window slot for message `index` and stamps its send time; waits while `window` PubAcks are
    /// outstanding. False when the watchdog gave up (no PubAck for the stall timeout).
    func acquire(index: Int) async -> Bool {
        while true {
            let now = monotonicNanos()
            let got: Bool? = state.withLock { s in
                if s.stalled { return false }
                if s.outstanding < window {
                    s.outstanding += 1
                    s.sentAt[index] = now
                    s.progressAt = now
                    return true
                }
                return nil
            }
            if let got { return got }
            let resumed = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
                let now = state.withLock { s -> Bool? in
                    if s.stalled { return false }
                    if s.outstanding < window { return true }
                    s.waiter = c
                    return nil
                }
                if let now { c.resume(returning: now) }
            }
            if !resumed { return false }
        }
    }

    /// One PubAck (on the event loop): `index` from the reply subject, the JSON payload.
    func ack(index: Int?, payload: ByteBuffer, now: UInt64) {
        let parsed = confirmations ? (seq: payload.readableBytes == 0 ? UInt64(index ?? 0) + 1 : nil, error: payload.readableBytes != 0)
            : JSParse.pubAck(payload)
        let waiter: CheckedContinuation<Bool, Never>? = state.withLock { s in
            guard let index, index >= 0, index < expected, s.sentAt[index] != 0 else {
                s.foreign += 1
                return nil
            }
            let word = index >> 6, bit = UInt64(1) << UInt64(index & 63)
            if s.acked[word] & bit != 0 {
                s.duplicated += 1
                return nil
            }
            s.acked[word] |= bit
            s.outstanding -= 1
            s.lastAckAt = now
            s.progressAt = now
            if let seq = parsed.seq, !parsed.error {
                s.ok += 1
                s.latency.record(min(now &- min(s.sentAt[index], now), Tracker.maxLatencyNanos))
                if s.lastIndex >= 0, (index > s.lastIndex) != (seq > s.lastStreamSeq) { s.reordered += 1 }
                s.lastIndex = index
                s.lastStreamSeq = seq
            } else {
                s.errors += 1
                if s.firstError == nil { s.firstError = String(buffer: payload) }
            }
            guard s.outstanding < window, let w = s.waiter else { return nil }
            s.waiter = nil
            return w
        }
        waiter?.resume(returning: true)
    }

    /// Watchdog: when nothing moved for `timeout`, fail the waiting publisher (the PubAcks it waits for are lost).
    func checkStall(timeout: Duration) -> Bool {
        let limit = UInt64(timeout.components.seconds) * 1_000_000_000 + UInt64(timeout.components.attoseconds / 1_000_000_000)
        let waiter: CheckedContinuation<Bool, Never>?? = state.withLock { s in
            // The clock is read under the lock: an ack stamped after a reading taken outside it would make
            // `now - progressAt` negative (a false stall).
            let now = monotonicNanos()
            guard s.outstanding > 0, now > s.progressAt, now - s.progressAt > limit else { return .none }
            s.stalled = true
            defer { s.waiter = nil }
            return .some(s.waiter)
        }
        guard let waiter else { return false }
        waiter?.resume(returning: false)
        return true
    }

    var outstanding: Int { state.withLock { $0.outstanding } }
    var okCount: Int { state.withLock { $0.ok } }
    func snapshot() -> State { state.withLock { $0 } }
}

/// What a JetStream push consumer saw, by stream sequence (1...expected).
final class DeliveryTracker: @unchecked Sendable {
    let expected: Int
    private let state: Mutex<State>

    struct State {
        var seen: [UInt64]
        var received = 0
        var distinct = 0
        var duplicated = 0
        /// Deliveries the server marked as redeliveries (delivered count > 1).
        var redelivered = 0
        var reordered = 0
        /// No parsable `$JS.ACK` reply subject, or a stream sequence outside 1...expected.
        var foreign = 0
        /// The payload's stamp is not message (stream sequence - 1).
        var mismatched = 0
        var lastSeq: UInt64 = 0
        var lastAt: UInt64 = 0
    }

    init(expected: Int) {
        self.expected = expected
        state = Mutex(State(seen: [UInt64](repeating: 0, count: (expected + 64) / 64)))
    }

    func record(reply: String?, payload: ByteBuffer, now: UInt64) {
        let meta = reply.flatMap(JSParse.ackReply)
        let stamp = Stamp.read(payload)
        state.withLock { s in
            s.received += 1
            guard let meta, meta.streamSeq >= 1, meta.streamSeq <= UInt64(expected) else {
                s.foreign += 1
                return
            }
            s.lastAt = now
            if meta.delivered > 1 { s.redelivered += 1 }
            if stamp?.seq != meta.streamSeq - 1 { s.mismatched += 1 }
            let seq = meta.streamSeq
            let word = Int(seq >> 6), bit = UInt64(1) << (seq & 63)
            if s.seen[word] & bit != 0 {
                s.duplicated += 1
                return
            }
            s.seen[word] |= bit
            s.distinct += 1
            if meta.delivered == 1 {
                if seq < s.lastSeq { s.reordered += 1 }
                s.lastSeq = seq
            }
        }
    }

    var distinct: Int { state.withLock { $0.distinct } }
    var received: Int { state.withLock { $0.received } }
    func snapshot() -> State { state.withLock { $0 } }
}

/// Byte-level parsing of PubAcks and `$JS.ACK` reply subjects (no JSON decoder on the hot path).
enum JSParse {
    /// `{"stream":"BENCH","seq":12}` or `{"error":{...}}` (brokerd and nats-server; "duplicate" may follow).
    static func pubAck(_ payload: ByteBuffer) -> (seq: UInt64?, error: Bool) {
        let bytes = payload.readableBytesView
        let error = find(Array("\"error\"".utf8), in: bytes) != nil
        guard let at = find(Array("\"seq\":".utf8), in: bytes) else { return (nil, error) }
        var i = bytes.index(bytes.startIndex, offsetBy: at + 6)
        while i < bytes.endIndex, bytes[i] == UInt8(ascii: " ") { i = bytes.index(after: i) }
        var value: UInt64 = 0, digits = 0
        while i < bytes.endIndex, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
            value = value &* 10 &+ UInt64(bytes[i] - UInt8(ascii: "0"))
            digits += 1
            i = bytes.index(after: i)
        }
        return (digits > 0 ? value : nil, error)
    }

    static func find<C: Collection>(_ needle: [UInt8], in haystack: C) -> Int? where C.Element == UInt8 {
        let hay = Array(haystack)
        guard hay.count >= needle.count else { return nil }
        outer: for start in 0...(hay.count - needle.count) {
            for j in 0..<needle.count where hay[start + j] != needle[j] { continue outer }
            return start
        }
        return nil
    }

    /// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (9 tokens) or the form with a
    /// domain and account hash after `$JS.ACK` and a random token at the end (12 tokens; 11 without the token).
    static func ackReply(_ subject: String) -> (delivered: UInt64, streamSeq: UInt64)? {
        var tokens: [Substring.UTF8View] = []
        tokens.reserveCapacity(12)
        let utf8 = subject.utf8
        var start = utf8.startIndex
        var i = utf8.startIndex
        while i < utf8.endIndex {
            if utf8[i] == UInt8(ascii: ".") {
                tokens.append(Substring(subject)[start..<i].utf8)
                start = utf8.index(after: i)
            }
            i = utf8.index(after: i)
        }
        tokens.append(Substring(subject)[start..<utf8.endIndex].utf8)
        guard tokens.count >= 9, tokens[0].elementsEqual("$JS".utf8), tokens[1].elementsEqual("ACK".utf8) else { return nil }
        let base = tokens.count == 9 ? 4 : 6
        guard tokens.count == 9 || tokens.count >= 11,
              let delivered = number(tokens[base]), let sseq = number(tokens[base + 1]) else { return nil }
        return (delivered, sseq)
    }

    static func number(_ token: Substring.UTF8View) -> UInt64? {
        guard !token.isEmpty else { return nil }
        var value: UInt64 = 0
        for b in token {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            value = value &* 10 &+ UInt64(b - UInt8(ascii: "0"))
        }
        return value
    }

    /// The index at the end of a `_BA.<run>.<index>` reply subject.
    static func lastTokenNumber(_ subject: String) -> Int? {
        var value = 0, scale = 1, digits = 0
        for b in subject.utf8.reversed() {
            if b == UInt8(ascii: ".") { break }
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9"), digits < 18 else { return nil }
            value += Int(b - UInt8(ascii: "0")) * scale
            scale *= 10
            digits += 1
        }
        return digits > 0 ? value : nil
    }
}

extension Runner {
    static let benchStream = "BENCH"
    static let falcoStream = "BENCHFALCO"

    static func randomToken() -> String { String(UInt64.random(in: 1...UInt64.max), radix: 36) }

    // MARK: - JetStream API

    /// One `$JS.API` request; the reply's JSON text. No responders: JetStream is not enabled.
    func jsAPI(_ client: NATSClient, _ subject: String, _ body: String = "") async throws -> String {
        do {
            let reply = try await client.request("$JS.API." + subject, payload: ByteBuffer(string: body), timeout: .seconds(30))
            return reply.string
        } catch NATSError.noResponders {
            throw BenchError.failed("$JS.API.\(subject): no responders (is JetStream enabled? brokerd/nats-server -js -sd DIR)")
        } catch {
            throw BenchError.failed("$JS.API.\(subject) failed: \(Self.describe(error))")
        }
    }

    /// Deletes the stream if it exists (a leftover of an earlier run), then creates it with file storage.
    func recreateStream(_ client: NATSClient, name: String, subjects: [String]) async throws {
        let subjectList = subjects.map { "\"\($0)\"" }.joined(separator: ",")
        try await recreateStream(client, name: name, body: "{\"name\":\"\(name)\",\"subjects\":[\(subjectList)],\"storage\":\"file\"}")
    }

    /// Deletes the stream if it exists, then creates it from `body` (a whole STREAM.CREATE request).
    func recreateStream(_ client: NATSClient, name: String, body: String) async throws {
        _ = try await jsAPI(client, "STREAM.DELETE.\(name)")
        let response = try await jsAPI(client, "STREAM.CREATE.\(name)", body)
        if response.contains("\"error\"") || !response.contains("\"config\"") {
            throw BenchError.failed("cannot create stream \(name): \(response.prefix(300))")
        }
    }

    func deleteStream(_ client: NATSClient, name: String) async {
        guard !config.keepStream else { return }
        do {
            let response = try await jsAPI(client, "STREAM.DELETE.\(name)")
            if response.contains("\"error\"") { note("deleting stream \(name): \(response.prefix(200))") }
        } catch {
            note("deleting stream \(name): \(error)")
        }
    }

    /// What a windowed publish sends: sized stamped messages to one subject, or alerts to FALCO.<priority>.
    enum JSSource {
        case sized(subject: String)
        case alerts([Alerts.Alert])
        /// Sized stamped messages going round these subjects (kvput, kvget, kvwatch: `$KV.<bucket>.<key>`).
        case keys([String])
    }

    /// PubAcks come back on `<prefix>.<index>` into `tracker`; the watchdog marks the run stalled after
    /// `drainTimeout` without any (cancel it when done).
    func ackInbox(_ client: NATSClient, _ tracker: PubAckTracker) async throws -> (prefix: String, watchdog: Task<Void, Never>) {
        let prefix = "_BA.\(Self.randomToken())"
        try await client.subscribe(prefix + ".*") { message in
            tracker.ack(index: JSParse.lastTokenNumber(message.subject), payload: message.payload, now: monotonicNanos())
        }
        try await client.flush()
        let timeout = config.drainTimeout
        let watchdog = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                if tracker.checkStall(timeout: timeout) { return }
            }
        }
        return (prefix, watchdog)
    }

    /// Publishes `n` messages, each with the reply subject `<prefix>.<index>`, keeping at most `window`
    /// PubAcks outstanding; then waits for the last PubAcks (at most `drainTimeout` without any).
    /// Returns the tracker, the start time and the payload bytes sent.
    func publishWindowed(_ client: NATSClient, source: JSSource, tracker: PubAckTracker) async throws
        -> (start: UInt64, bytes: Int) {
        let n = tracker.expected
        let (prefix, watchdog) = try await ackInbox(client, tracker)
        defer { watchdog.cancel() }
        let timeout = config.drainTimeout

        var payload = Stamp.makePayload(size: config.size)
        var bytes = 0
        var stalledAt: Int?
        let start = monotonicNanos()
        var alertIndex = 0
        for index in 0..<n {
            guard await tracker.acquire(index: index) else {
                stalledAt = index
                break
            }
            do {
                switch source {
                case .sized(let subject):
                    Stamp.write(seq: UInt64(index), sentAt: monotonicNanos(), into: &payload)
                    try await client.publish(subject, payload: payload, reply: "\(prefix).\(index)")
                    bytes += payload.readableBytes
                case .alerts(let alerts):
                    let alert = alerts[alertIndex]
                    alertIndex += 1
                    if alertIndex == alerts.count { alertIndex = 0 }
                    try await client.publish(alert.subject, payload: alert.payload, reply: "\(prefix).\(index)")
                    bytes += alert.payload.readableBytes
                case .keys(let subjects):
                    Stamp.write(seq: UInt64(index), sentAt: monotonicNanos(), into: &payload)
                    try await client.publish(subjects[index % subjects.count], payload: payload, reply: "\(prefix).\(index)")
                    bytes += payload.readableBytes
                }
            } catch {
                throw BenchError.failed("publishing message \(index + 1) of \(n) failed: \(Self.describe(error))")
            }
            if index & 255 == 0 { publishedCount.store(index, ordering: .relaxed) }
        }
        publishedCount.store(stalledAt ?? n, ordering: .relaxed)
        if let stalledAt {
            note("no PubAck for \(timeout) with \(tracker.outstanding) outstanding: stopped after \(stalledAt) of \(n) messages (the rest count as lost)")
        } else {
            // The last window: wait until every PubAck is in, or none came for drainTimeout.
            while tracker.outstanding > 0 {
                if tracker.checkStall(timeout: timeout) {
                    note("no PubAck for \(timeout): \(tracker.outstanding) PubAcks never came")
                    break
                }
                try? await Task.sleep(for: .microseconds(200))
            }
        }
        return (start, bytes)
    }

    // MARK: - jspub

    func runJetStreamPublish() async throws -> BenchResult {
        let n = config.msgs
        let source: JSSource
        let stream: String
        let streamSubject: String
        var size = config.size
        if let path = config.alertsPath {
            let loaded = try Alerts.load(path: path, limit: config.cycleAlerts ? .max : n)
            for (line, reason) in loaded.skipped.prefix(5) { note("\(path):\(line) skipped: \(reason)") }
            guard !loaded.alerts.isEmpty else { throw BenchError.failed("no valid alerts in \(path)") }
            source = .alerts(loaded.alerts)
            stream = Self.falcoStream
            streamSubject = "FALCO.>"
        } else {
            source = .sized(subject: "bench.js.x")
            stream = Self.benchStream
            streamSubject = "bench.js.>"
        }
        let count: Int
        if case .alerts(let alerts) = source, !config.cycleAlerts { count = min(n, alerts.count) } else { count = n }

        let client = try await connect("pub")
        try await recreateStream(client, name: stream, subjects: [streamSubject])
        let tracker = PubAckTracker(expected: count, window: config.window)
        let progress = startProgress(label: "acked") { tracker.okCount }
        let (start, bytes) = try await publishWindowed(client, source: source, tracker: tracker)
        progress.cancel()
        let end = monotonicNanos()
        let s = tracker.snapshot()
        if let firstError = s.firstError { note("\(s.errors) PubAcks were errors (counted as lost), the first: \(firstError.prefix(200))") }
        if s.foreign > 0 { note("\(s.foreign) replies did not match a message sent") }
        if case .alerts = source { size = Int((Double(bytes) / Double(count)).rounded()) }
        await deleteStream(client, name: stream)

        let seconds = Double((s.lastAckAt > start ? s.lastAckAt : end) &- start) / 1e9
        var result = BenchResult(
            scenario: .jspub, url: config.url, size: size, msgs: count, subs: 0, seconds: seconds,
            delivered: s.ok, lost: count - s.ok, duplicated: s.duplicated, reordered: s.reordered,
            latency: s.latency, published: publishedCount.load(ordering: .relaxed), publishSeconds: Double(end &- start) / 1e9,
            countedBytes: Double(s.ok) * Double(bytes) / Double(max(count, 1)), notes: notes.withLock { $0 })
        result.extras = [("window", String(config.window)), ("pub_ack_errors", String(s.errors)),
                         ("stream", BenchResult.quote(stream))]
        return result
    }

    // MARK: - jsconsume, jsacksync

    /// jsconsume: plain acks; jsacksync (`confirm`): each ack carries a reply, as ack_sync / AckSync send it, and
    /// counts once the server answered it (brokerd: once the consumer state holding it is on disk), at most
    /// `--window` confirmations outstanding. The rate is then the confirmed acks per second.
    func runJetStreamConsume(confirm: Bool = false) async throws -> BenchResult {
        let n = config.msgs
        let stream = Self.benchStream
        let filler = try await connect("pub")
        try await recreateStream(filler, name: stream, subjects: ["bench.js.>"])
        let fillStart = monotonicNanos()
        let fill = PubAckTracker(expected: n, window: max(config.window, 256))
        _ = try await publishWindowed(filler, source: .sized(subject: "bench.js.x"), tracker: fill)
        let filled = fill.snapshot()
        let fillSeconds = Double(monotonicNanos() &- fillStart) / 1e9
        guard filled.ok == n else {
            throw BenchError.failed("filling the stream: \(filled.ok) of \(n) PubAcks ok (\(filled.errors) errors: \(filled.firstError ?? "-"))")
        }
        if config.progress { FileHandle.standardError.write(Data("stream \(stream) filled with \(n) messages in \(BenchResult.fixed(fillSeconds, 2)) s\n".utf8)) }

        let consumer = try await connect("consumer")
        let tracker = DeliveryTracker(expected: n)
        let (acks, acksIn) = AsyncStream<String>.makeStream()
        let deliverSubject = "_BD.\(Self.randomToken())"
        try await consumer.subscribe(deliverSubject) { message in
            tracker.record(reply: message.reply, payload: message.payload, now: monotonicNanos())
            if let reply = message.reply, reply.hasPrefix("$JS.ACK.") { acksIn.yield(reply) }
        }
        try await consumer.flush()
        let confirmations = PubAckTracker(expected: n, window: max(config.window, 1), confirmations: true)
        let (confirmPrefix, watchdog) = confirm ? try await ackInbox(consumer, confirmations) : ("", Task {})
        defer { watchdog.cancel() }
        let acker = Task {
            var sent = 0
            for await reply in acks {
                do {
                    if confirm {
                        guard sent < n, await confirmations.acquire(index: sent) else { return sent }
                        try await consumer.publish(reply, reply: "\(confirmPrefix).\(sent)")
                    } else {
                        try await consumer.publish(reply)
                    }
                } catch { return sent }
                sent += 1
            }
            return sent
        }
        publishedCount.store(0, ordering: .relaxed)
        let progress = startProgress(label: "delivered") { tracker.distinct }
        let maxAckPending = 8192
        let body = "{\"stream_name\":\"\(stream)\",\"config\":{\"durable_name\":\"bench\",\"deliver_subject\":\"\(deliverSubject)\","
            + "\"ack_policy\":\"explicit\",\"max_ack_pending\":\(maxAckPending),\"ack_wait\":30000000000}}"
        let start = monotonicNanos()
        let response = try await jsAPI(consumer, "CONSUMER.CREATE.\(stream).bench", body)
        if response.contains("\"error\"") {
            acksIn.finish()
            throw BenchError.failed("cannot create the consumer: \(response.prefix(300))")
        }
        await waitForDeliveries(tracker)
        if confirm {
            // Then every confirmation, at most drainTimeout without one.
            await waitWhileProgressing(until: { confirmations.okCount + confirmations.snapshot().errors >= tracker.distinct },
                                       progress: { confirmations.okCount }) {
                "no ack confirmation for \(config.drainTimeout): \(tracker.distinct - confirmations.okCount) never came"
            }
        }
        progress.cancel()
        let s = tracker.snapshot()
        acksIn.finish()
        let acked = await acker.value
        do { try await consumer.flush(timeout: .seconds(30)) } catch { note("consumer flush (the last acks) failed: \(error)") }
        if s.redelivered > 0 { note("\(s.redelivered) deliveries were redeliveries (delivered count > 1)") }
        if s.foreign > 0 { note("\(s.foreign) deliveries without a parsable $JS.ACK reply or with a sequence outside 1...\(n)") }
        if s.mismatched > 0 { note("\(s.mismatched) deliveries whose payload is not the message of their stream sequence") }
        await deleteStream(consumer, name: stream)

        if confirm {
            let c = confirmations.snapshot()
            if c.errors > 0 { note("\(c.errors) ack confirmations were not empty: \(c.firstError ?? "-")") }
            let seconds = Double((c.lastAckAt > start ? c.lastAckAt : monotonicNanos()) &- start) / 1e9
            var result = BenchResult(
                scenario: .jsacksync, url: config.url, size: config.size, msgs: n, subs: 1, seconds: seconds,
                delivered: c.ok, lost: n - c.ok, duplicated: s.duplicated, reordered: s.reordered + s.mismatched,
                latency: c.latency, published: n, publishSeconds: fillSeconds,
                countedBytes: Double(c.ok) * Double(config.size), notes: notes.withLock { $0 })
            result.extras = [("fill_seconds", BenchResult.number(fillSeconds, digits: 6)), ("window", String(config.window)),
                             ("acks_sent", String(acked)), ("redelivered", String(s.redelivered))]
            return result
        }
        let seconds = Double((s.lastAt > start ? s.lastAt : monotonicNanos()) &- start) / 1e9
        var result = BenchResult(
            scenario: .jsconsume, url: config.url, size: config.size, msgs: n, subs: 1, seconds: seconds,
            delivered: s.distinct, lost: n - s.distinct, duplicated: s.duplicated, reordered: s.reordered + s.mismatched,
            latency: nil, published: n, publishSeconds: fillSeconds,
            countedBytes: Double(s.distinct) * Double(config.size), notes: notes.withLock { $0 })
        result.extras = [("fill_seconds", BenchResult.number(fillSeconds, digits: 6)), ("acks_sent", String(acked)),
                         ("redelivered", String(s.redelivered)), ("max_ack_pending", String(maxAckPending))]
        return result
    }
}
