import ClientLib
import Crypto
import Foundation
import NIOCore
import Synchronization

// objput and objget: one object in an Object Store bucket as nats.go puts and gets it (ADR-20), through the plain
// NATS protocol, so the same code runs against brokerd and nats-server. The object is `--msgs` chunks of
// `--size` bytes; each chunk starts with the stamp of its index (send time 0), so its content is fixed and
// objget can tell each chunk's place.

/// The SHA-256 of the chunks, in order (objget: fed on the subscriber's event loop).
final class ObjectDigest: @unchecked Sendable {
    private let hasher = Mutex(SHA256())

    func update(_ chunk: ByteBuffer) {
        hasher.withLock { h in chunk.withUnsafeReadableBytes { h.update(bufferPointer: $0) } }
    }

    /// `SHA-256=<base64url of the digest>`, the form of ObjectInfo's "digest" (nats.go: base64.URLEncoding).
    func value() -> String {
        let digest = hasher.withLock { $0.finalize() }
        return "SHA-256=" + Runner.base64url(Data(digest))
    }
}

extension Runner {
    static let objBucket = "bench"
    static let objStream = "OBJ_bench"
    static let objName = "bench-object"
    static var objMetaSubject: String { "$O.\(objBucket).M.\(base64url(Data(objName.utf8)))" }

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    /// A NUID-like token: 22 characters of [0-9A-Za-z].
    static func nuid() -> String {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        return String((0..<22).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
    }

    /// The bucket as `CreateObjectStore` makes it: stream OBJ_bench on `$O.bench.C.>` and `$O.bench.M.>`, file
    /// storage, discard new, rollups allowed, direct gets.
    func createObjectBucket(_ client: NATSClient) async throws {
        let body = "{\"name\":\"\(Self.objStream)\",\"subjects\":[\"$O.\(Self.objBucket).C.>\",\"$O.\(Self.objBucket).M.>\"],"
            + "\"retention\":\"limits\",\"max_consumers\":-1,\"max_msgs\":-1,\"max_bytes\":-1,\"max_age\":0,"
            + "\"max_msgs_per_subject\":-1,\"max_msg_size\":-1,\"discard\":\"new\",\"storage\":\"file\",\"num_replicas\":1,"
            + "\"duplicate_window\":120000000000,\"allow_rollup_hdrs\":true,\"allow_direct\":true,\"mirror_direct\":false}"
        try await recreateStream(client, name: Self.objStream, body: body)
    }

    /// `GetInfo`: the newest meta message by a direct get (`{"last_by_subj": "$O.bench.M.<name>"}`); nil when
    /// there is none (404).
    func objectInfo(_ client: NATSClient) async throws -> [String: Any]? {
        let reply: NATSMessage
        do {
            reply = try await client.request("$JS.API.DIRECT.GET.\(Self.objStream)",
                                             payload: ByteBuffer(string: "{\"last_by_subj\":\"\(Self.objMetaSubject)\"}"),
                                             timeout: .seconds(30))
        } catch {
            throw BenchError.failed("object info (direct get of \(Self.objMetaSubject)) failed: \(Self.describe(error))")
        }
        if reply.status == 404 { return nil }
        guard reply.status == nil,
              let doc = try? JSONSerialization.jsonObject(with: Data(reply.payload.readableBytesView)) as? [String: Any] else {
            throw BenchError.failed("object info: unexpected reply (status \(reply.status.map(String.init) ?? "none")): \(reply.string.prefix(200))")
        }
        return doc
    }

    struct ObjectPut {
        var start: UInt64
        var end: UInt64
        var acks: PubAckTracker.State
        var metaOK: Bool
        var bytes: Int
    }

    /// Puts the object as nats.go's `Put` does: GetInfo, then every chunk to `$O.bench.C.<nuid>` with at most
    /// `window` PubAcks outstanding (PublishMsgAsync), the digest computed on the way, then the meta message
    /// (`Nats-Rollup: sub`) to `$O.bench.M.<base64url name>` as a request, then the wait for every PubAck.
    func putObject(_ client: NATSClient, chunks: Int, chunkSize: Int, window: Int) async throws -> ObjectPut {
        let tracker = PubAckTracker(expected: chunks, window: window)
        let (prefix, watchdog) = try await ackInbox(client, tracker)
        defer { watchdog.cancel() }
        let timeout = config.drainTimeout

        let start = monotonicNanos()
        let existing = try await objectInfo(client)
        if existing != nil { note("the object existed before the put") }
        let nuid = Self.nuid()
        let chunkSubject = "$O.\(Self.objBucket).C.\(nuid)"
        let digest = ObjectDigest()
        var payload = Stamp.makePayload(size: chunkSize)
        var bytes = 0
        var stalledAt: Int?
        for index in 0..<chunks {
            guard await tracker.acquire(index: index) else {
                stalledAt = index
                break
            }
            Stamp.write(seq: UInt64(index), sentAt: 0, into: &payload)
            digest.update(payload)
            do {
                try await client.publish(chunkSubject, payload: payload, reply: "\(prefix).\(index)")
            } catch {
                throw BenchError.failed("publishing chunk \(index + 1) of \(chunks) failed: \(Self.describe(error))")
            }
            bytes += payload.readableBytes
            publishedCount.store(index + 1, ordering: .relaxed)
        }
        var metaOK = false
        if let stalledAt {
            note("no PubAck for \(timeout) with \(tracker.outstanding) outstanding: stopped after \(stalledAt) of \(chunks) chunks")
        } else {
            let mtime = ISO8601DateFormatter.string(from: Date(), timeZone: TimeZone(identifier: "UTC")!,
                                                    formatOptions: [.withInternetDateTime, .withFractionalSeconds])
            let meta = "{\"name\":\"\(Self.objName)\",\"description\":\"\",\"headers\":{},\"options\":{\"max_chunk_size\":\(chunkSize)},"
                + "\"bucket\":\"\(Self.objBucket)\",\"nuid\":\"\(nuid)\",\"size\":\(bytes),\"mtime\":\"\(mtime)\","
                + "\"chunks\":\(chunks),\"digest\":\"\(digest.value())\"}"
            do {
                let ack = try await client.request(Self.objMetaSubject, payload: ByteBuffer(string: meta),
                                                   headers: NATSHeaders([("Nats-Rollup", "sub")]), timeout: .seconds(30))
                let parsed = JSParse.pubAck(ack.payload)
                metaOK = parsed.seq != nil && !parsed.error
                if !metaOK { note("the meta message's PubAck: \(ack.string.prefix(200))") }
            } catch {
                note("the meta message got no PubAck: \(Self.describe(error))")
            }
            while tracker.outstanding > 0 {
                if tracker.checkStall(timeout: timeout) {
                    note("no PubAck for \(timeout): \(tracker.outstanding) chunk PubAcks never came")
                    break
                }
                try? await Task.sleep(for: .microseconds(200))
            }
        }
        let end = monotonicNanos()
        let acks = tracker.snapshot()
        if let firstError = acks.firstError { note("\(acks.errors) chunk PubAcks were errors, the first: \(firstError.prefix(200))") }
        if acks.foreign > 0 { note("\(acks.foreign) replies did not match a chunk sent") }
        return ObjectPut(start: start, end: end, acks: acks, metaOK: metaOK, bytes: bytes)
    }

    // MARK: - objput

    func runObjectPut() async throws -> BenchResult {
        let chunks = config.msgs
        let client = try await connect("pub")
        try await createObjectBucket(client)
        let progress = startProgress(label: nil) { 0 }
        let put = try await putObject(client, chunks: chunks, chunkSize: config.size, window: config.window)
        progress.cancel()
        await deleteStream(client, name: Self.objStream)

        let s = put.acks
        let nanos = put.end &- put.start
        var latency = Tracker.makeHistogram()
        latency.record(min(nanos, Tracker.maxLatencyNanos))
        var result = BenchResult(
            scenario: .objput, url: config.url, size: config.size, msgs: chunks, subs: 0, seconds: Double(nanos) / 1e9,
            delivered: s.ok, lost: chunks - s.ok, duplicated: s.duplicated, reordered: s.reordered,
            latency: latency, published: publishedCount.load(ordering: .relaxed), publishSeconds: Double(nanos) / 1e9,
            countedBytes: Double(s.ok) * Double(config.size), notes: notes.withLock { $0 })
        result.failures = put.metaOK ? 0 : 1
        result.extras = [("window", String(config.window)), ("object_bytes", String(put.bytes)),
                         ("object_seconds", BenchResult.number(Double(nanos) / 1e9, digits: 6)),
                         ("meta_ok", put.metaOK ? "true" : "false"), ("pub_ack_errors", String(s.errors)),
                         ("stream", BenchResult.quote(Self.objStream))]
        return result
    }

    // MARK: - objget

    /// Puts the object (not timed), then gets it as nats.go's `Get` does: GetInfo, then a push consumer on
    /// `$O.bench.C.<nuid>` (ephemeral, deliver all, ack none, max_deliver 1, memory storage, no flow control)
    /// receiving every chunk; the digest is checked at the end. Timed from GetInfo to the last chunk.
    func runObjectGet() async throws -> BenchResult {
        let chunks = config.msgs
        let putter = try await connect("pub")
        try await createObjectBucket(putter)
        let put = try await putObject(putter, chunks: chunks, chunkSize: config.size, window: max(config.window, 256))
        guard put.acks.ok == chunks, put.metaOK else {
            throw BenchError.failed("putting the object: \(put.acks.ok) of \(chunks) chunk PubAcks ok, meta \(put.metaOK ? "ok" : "failed")")
        }
        let putSeconds = Double(put.end &- put.start) / 1e9
        if config.progress { FileHandle.standardError.write(Data("object of \(put.bytes) B put in \(BenchResult.fixed(putSeconds, 2)) s\n".utf8)) }

        let getter = try await connect("get")
        let tracker = DeliveryTracker(expected: chunks)
        let digest = ObjectDigest()
        let deliverSubject = "_BO.\(Self.randomToken())"
        try await getter.subscribe(deliverSubject) { message in
            tracker.record(reply: message.reply, payload: message.payload, now: monotonicNanos())
            digest.update(message.payload)
        }
        try await getter.flush()
        _ = try? await getter.request("_BO.warmup", timeout: .milliseconds(1))  // the reply inbox's SUB, before the clock
        publishedCount.store(0, ordering: .relaxed)
        let progress = startProgress(label: "chunks") { tracker.distinct }

        let start = monotonicNanos()
        guard let info = try await objectInfo(getter), let nuid = info["nuid"] as? String else {
            throw BenchError.failed("object info: no meta message for \(Self.objName)")
        }
        let body = "{\"stream_name\":\"\(Self.objStream)\",\"config\":{\"deliver_subject\":\"\(deliverSubject)\","
            + "\"deliver_policy\":\"all\",\"ack_policy\":\"none\",\"max_deliver\":1,"
            + "\"filter_subject\":\"$O.\(Self.objBucket).C.\(nuid)\",\"replay_policy\":\"instant\",\"flow_control\":false,"
            + "\"mem_storage\":true,\"num_replicas\":1}}"
        let response = try await jsAPI(getter, "CONSUMER.CREATE.\(Self.objStream)", body)
        if response.contains("\"error\"") { throw BenchError.failed("cannot create the chunk consumer: \(response.prefix(300))") }
        await waitForDeliveries(tracker)
        progress.cancel()
        let s = tracker.snapshot()
        var failures = 0
        let expectedDigest = info["digest"] as? String
        let gotDigest = digest.value()
        if s.distinct == chunks, s.duplicated == 0, gotDigest != expectedDigest {
            failures += 1
            note("digest mismatch: got \(gotDigest), meta says \(expectedDigest ?? "none")")
        }
        if (info["chunks"] as? Int) != chunks { note("meta says \(info["chunks"] ?? "no") chunks, \(chunks) were put") }
        if s.redelivered > 0 { note("\(s.redelivered) deliveries were redeliveries (delivered count > 1)") }
        if s.foreign > 0 { note("\(s.foreign) deliveries without a parsable $JS.ACK reply or with a sequence outside 1...\(chunks)") }
        if s.mismatched > 0 { note("\(s.mismatched) chunks whose content is not the chunk of their stream sequence") }
        await deleteStream(getter, name: Self.objStream)

        let nanos = (s.lastAt > start ? s.lastAt : monotonicNanos()) &- start
        var latency = Tracker.makeHistogram()
        if s.distinct == chunks { latency.record(min(nanos, Tracker.maxLatencyNanos)) }
        var result = BenchResult(
            scenario: .objget, url: config.url, size: config.size, msgs: chunks, subs: 1, seconds: Double(nanos) / 1e9,
            delivered: s.distinct, lost: chunks - s.distinct, duplicated: s.duplicated, reordered: s.reordered + s.mismatched,
            latency: latency, published: chunks, publishSeconds: putSeconds,
            countedBytes: Double(s.distinct) * Double(config.size), notes: notes.withLock { $0 })
        result.failures = failures
        result.extras = [("object_bytes", String(put.bytes)), ("object_seconds", BenchResult.number(Double(nanos) / 1e9, digits: 6)),
                         ("put_seconds", BenchResult.number(putSeconds, digits: 6)),
                         ("digest_ok", failures == 0 && s.distinct == chunks ? "true" : "false"),
                         ("stream", BenchResult.quote(Self.objStream))]
        return result
    }
}
