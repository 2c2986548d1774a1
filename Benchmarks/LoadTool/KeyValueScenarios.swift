import ClientLib
import Foundation
import NIOCore
import NIOPosix

// kvput, kvget and kvwatch: a Key-Value bucket as nats.go and nats-py drive it, through the plain NATS protocol
// (`$KV.<bucket>.<key>` publishes with PubAcks, `$JS.API.DIRECT.GET`, a push consumer), so the same code runs
// against brokerd and nats-server.

extension Runner {
    static let kvBucket = "bench"
    static let kvStream = "KV_bench"

    /// `$KV.bench.k0` ... `$KV.bench.k<count-1>`.
    static func kvSubjects(count: Int) -> [String] { (0..<count).map { "$KV.\(kvBucket).k\($0)" } }

    /// The bucket as `CreateKeyValue` / `create_key_value` make it (history 1, file storage, no TTL): stream
    /// KV_bench on `$KV.bench.>`, rollups allowed, deletes denied, direct gets, discard new, 2 min duplicate window.
    func createKVBucket(_ client: NATSClient) async throws {
        let body = "{\"name\":\"\(Self.kvStream)\",\"subjects\":[\"$KV.\(Self.kvBucket).>\"],\"retention\":\"limits\","
            + "\"max_consumers\":-1,\"max_msgs\":-1,\"max_bytes\":-1,\"max_age\":0,\"max_msgs_per_subject\":1,"
            + "\"max_msg_size\":-1,\"discard\":\"new\",\"storage\":\"file\",\"num_replicas\":1,"
            + "\"duplicate_window\":120000000000,\"allow_rollup_hdrs\":true,\"deny_delete\":true,\"deny_purge\":false,"
            + "\"allow_direct\":true,\"mirror_direct\":false,\"allow_msg_ttl\":true}"
        try await recreateStream(client, name: Self.kvStream, body: body)
    }

    /// Puts one value per subject (window 256, not timed); fails unless every put got a good PubAck.
    func fillKV(_ client: NATSClient, subjects: [String], count: Int) async throws -> Double {
        let started = monotonicNanos()
        let fill = PubAckTracker(expected: count, window: 256)
        _ = try await publishWindowed(client, source: .keys(subjects), tracker: fill)
        let s = fill.snapshot()
        guard s.ok == count else {
            throw BenchError.failed("filling bucket \(Self.kvBucket): \(s.ok) of \(count) PubAcks ok (\(s.errors) errors: \(s.firstError ?? "-"))")
        }
        let seconds = Double(monotonicNanos() &- started) / 1e9
        if config.progress { FileHandle.standardError.write(Data("bucket \(Self.kvBucket) filled with \(count) values in \(BenchResult.fixed(seconds, 2)) s\n".utf8)) }
        return seconds
    }

    // MARK: - kvput

    /// `--msgs` puts of `--size` bytes round-robin over `--keys` keys, at most `--window` PubAcks outstanding
    /// (run_bench.py: 1, a synchronous `kv.put`).
    func runKVPut() async throws -> BenchResult {
        let n = config.msgs
        let client = try await connect("pub")
        try await createKVBucket(client)
        let tracker = PubAckTracker(expected: n, window: config.window)
        let progress = startProgress(label: "acked") { tracker.okCount }
        let (start, bytes) = try await publishWindowed(client, source: .keys(Self.kvSubjects(count: config.keys)), tracker: tracker)
        progress.cancel()
        let end = monotonicNanos()
        let s = tracker.snapshot()
        if let firstError = s.firstError { note("\(s.errors) PubAcks were errors (counted as lost), the first: \(firstError.prefix(200))") }
        if s.foreign > 0 { note("\(s.foreign) replies did not match a put sent") }
        await deleteStream(client, name: Self.kvStream)

        let seconds = Double((s.lastAckAt > start ? s.lastAckAt : end) &- start) / 1e9
        var result = BenchResult(
            scenario: .kvput, url: config.url, size: config.size, msgs: n, subs: 0, seconds: seconds,
            delivered: s.ok, lost: n - s.ok, duplicated: s.duplicated, reordered: s.reordered,
            latency: s.latency, published: publishedCount.load(ordering: .relaxed), publishSeconds: Double(end &- start) / 1e9,
            countedBytes: Double(s.ok) * Double(bytes) / Double(max(n, 1)), notes: notes.withLock { $0 })
        result.extras = [("window", String(config.window)), ("keys", String(config.keys)),
                         ("pub_ack_errors", String(s.errors)), ("stream", BenchResult.quote(Self.kvStream))]
        return result
    }

    // MARK: - kvget

    /// Puts `--keys` values (not timed), then `--msgs` gets round-robin over them, one at a time, each a direct
    /// get `$JS.API.DIRECT.GET.KV_bench.$KV.bench.<key>` with an empty body (what `kv.get` sends to a bucket
    /// with allow_direct). Requester task and connection on one event loop thread, as for reqrep.
    func runKVGet() async throws -> BenchResult {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        groups.append(group)
        let executor = LoopExecutor(group.next())
        return try await withTaskExecutorPreference(executor) {
            try await kvGet(group: group)
        }
    }

    private func kvGet(group: MultiThreadedEventLoopGroup) async throws -> BenchResult {
        let n = config.msgs, keys = config.keys
        let subjects = Self.kvSubjects(count: keys)
        let filler = try await connect("pub")
        try await createKVBucket(filler)
        let fillSeconds = try await fillKV(filler, subjects: subjects, count: keys)

        let getter = try await connect("get", group: group)
        let requests = subjects.map { "$JS.API.DIRECT.GET.\(Self.kvStream).\($0)" }
        // The first request sets up the client's reply inbox (one SUB): before the clock starts.
        _ = try? await getter.request(requests[0], timeout: config.requestTimeout)

        let tracker = Tracker(name: "get", expected: n)
        let progress = startProgress(trackers: [tracker])
        var lost = 0, consecutiveTimeouts = 0, mismatched = 0
        var firstBad: String?
        let start = monotonicNanos()
        var i = 0
        while i < n {
            let key = i % keys
            let sentAt = monotonicNanos()
            do {
                let reply = try await getter.request(requests[key], timeout: config.requestTimeout)
                let now = monotonicNanos()
                consecutiveTimeouts = 0
                // The stored message: no status line, Nats-Sequence (and the other Nats-* headers), and the
                // value put for this key (its stamp's sequence is the key's index).
                if reply.status == nil, reply.headers?["Nats-Sequence"] != nil,
                   let (seq, _) = Stamp.read(reply.payload), seq == UInt64(key) {
                    tracker.record(seq: UInt64(i), sentAt: sentAt, now: now)
                } else {
                    mismatched += 1
                    tracker.recordForeign()
                    if firstBad == nil {
                        firstBad = "status \(reply.status.map(String.init) ?? "none") \(reply.headers?.statusDescription ?? ""), "
                            + "headers \(reply.headers?.fields.map(\.name) ?? []), \(reply.payload.readableBytes) B"
                    }
                }
            } catch NATSError.timeout {
                lost += 1
                consecutiveTimeouts += 1
                if consecutiveTimeouts >= 5 {
                    note("5 gets in a row timed out: stopped, the remaining \(n - i - 1) counted as lost")
                    lost += n - i - 1
                    i = n
                    break
                }
            } catch NATSError.noResponders {
                throw BenchError.failed("get \(i): no responders (direct get not enabled on \(Self.kvStream)?)")
            } catch {
                throw BenchError.failed("get \(i) failed: \(Self.describe(error))")
            }
            i += 1
            publishedCount.store(i, ordering: .relaxed)
        }
        let end = monotonicNanos()
        progress.cancel()
        if let firstBad { note("\(mismatched) replies were not the value put for their key, the first: \(firstBad)") }
        await deleteStream(filler, name: Self.kvStream)
        let s = tracker.snapshot()
        let seconds = Double((s.lastAt > start ? s.lastAt : end) &- start) / 1e9
        var result = BenchResult(
            scenario: .kvget, url: config.url, size: config.size, msgs: n, subs: 1, seconds: seconds,
            delivered: s.distinct, lost: lost + mismatched, duplicated: s.duplicated, reordered: s.reordered,
            latency: s.latency, published: n, publishSeconds: Double(end &- start) / 1e9,
            countedBytes: Double(s.distinct) * Double(config.size), notes: notes.withLock { $0 })
        result.extras = [("keys", String(keys)), ("fill_seconds", BenchResult.number(fillSeconds, digits: 6)),
                         ("stream", BenchResult.quote(Self.kvStream))]
        return result
    }

    // MARK: - kvwatch

    /// Puts `--msgs` values, each under its own key (not timed), then watches the bucket as `kv.watch(">")`
    /// does: an ephemeral push consumer on `$KV.bench.>`, deliver policy last_per_subject, ack none,
    /// max_deliver 1, memory storage, no flow control. Timed from the consumer's creation to the last value.
    func runKVWatch() async throws -> BenchResult {
        let n = config.msgs
        let filler = try await connect("pub")
        try await createKVBucket(filler)
        let fillSeconds = try await fillKV(filler, subjects: Self.kvSubjects(count: n), count: n)

        let watcher = try await connect("watch")
        let tracker = DeliveryTracker(expected: n)
        let deliverSubject = "_BW.\(Self.randomToken())"
        try await watcher.subscribe(deliverSubject) { message in
            tracker.record(reply: message.reply, payload: message.payload, now: monotonicNanos())
        }
        try await watcher.flush()
        publishedCount.store(0, ordering: .relaxed)
        let progress = startProgress(label: "delivered") { tracker.distinct }
        let body = "{\"stream_name\":\"\(Self.kvStream)\",\"config\":{\"deliver_subject\":\"\(deliverSubject)\","
            + "\"deliver_policy\":\"last_per_subject\",\"ack_policy\":\"none\",\"max_deliver\":1,"
            + "\"filter_subject\":\"$KV.\(Self.kvBucket).>\",\"replay_policy\":\"instant\",\"flow_control\":false,"
            + "\"mem_storage\":true,\"num_replicas\":1}}"
        let start = monotonicNanos()
        let response = try await jsAPI(watcher, "CONSUMER.CREATE.\(Self.kvStream)", body)
        if response.contains("\"error\"") { throw BenchError.failed("cannot create the watcher: \(response.prefix(300))") }
        await waitForDeliveries(tracker)
        progress.cancel()
        let s = tracker.snapshot()
        if s.redelivered > 0 { note("\(s.redelivered) deliveries were redeliveries (delivered count > 1)") }
        if s.foreign > 0 { note("\(s.foreign) deliveries without a parsable $JS.ACK reply or with a sequence outside 1...\(n)") }
        if s.mismatched > 0 { note("\(s.mismatched) deliveries whose value is not the one put at their stream sequence") }
        await deleteStream(watcher, name: Self.kvStream)

        let seconds = Double((s.lastAt > start ? s.lastAt : monotonicNanos()) &- start) / 1e9
        var result = BenchResult(
            scenario: .kvwatch, url: config.url, size: config.size, msgs: n, subs: 1, seconds: seconds,
            delivered: s.distinct, lost: n - s.distinct, duplicated: s.duplicated, reordered: s.reordered + s.mismatched,
            latency: nil, published: n, publishSeconds: fillSeconds,
            countedBytes: Double(s.distinct) * Double(config.size), notes: notes.withLock { $0 })
        result.extras = [("fill_seconds", BenchResult.number(fillSeconds, digits: 6)), ("redelivered", String(s.redelivered)),
                         ("stream", BenchResult.quote(Self.kvStream))]
        return result
    }

    /// Waits until the tracker has every stream sequence, at most drainTimeout without a new delivery.
    func waitForDeliveries(_ tracker: DeliveryTracker) async {
        await waitWhileProgressing(until: { tracker.distinct >= tracker.expected }, progress: { tracker.received }) {
            "no delivery for \(config.drainTimeout): \(tracker.expected - tracker.distinct) messages never came"
        }
    }

    /// Waits until `done`, at most drainTimeout without `progress` moving; then notes what never came.
    func waitWhileProgressing(until done: () -> Bool, progress: () -> Int, missing: () -> String) async {
        var last = -1
        var idleSince = ContinuousClock.now
        while !done() {
            let now = progress()
            if now != last {
                last = now
                idleSince = .now
            } else if ContinuousClock.now - idleSince >= config.drainTimeout {
                note(missing())
                break
            }
            try? await Task.sleep(for: .microseconds(500))
        }
    }

}
