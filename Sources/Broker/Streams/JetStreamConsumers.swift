import Foundation
import NIOCore
import NATSConfig
import Protocol

/// A consumer on a stream: its configuration (as the client sent it), its delivery state machine, and for
/// pull consumers the requests waiting for messages. Touched only on the JetStream queue.
final class ConsumerEntry {
    struct PullRequest {
        var reply: String
        var remaining: Int
        var expires: Int64?
        var noWait: Bool
        /// Bytes the request may still take (max_bytes); nil = no limit.
        var remainingBytes: Int? = nil
        /// idle_heartbeat: nanoseconds between heartbeats while the request waits; nil = none.
        var heartbeat: Int64? = nil
        var lastActivity: Int64 = 0
    }

    let stream: String
    let name: String
    let durable: Bool
    var config: APIConsumerConfig
    var machine: ConsumerStateMachine
    /// filter_subject / filter_subjects as bytes; empty = every message.
    var filters: [[UInt8]]
    var deliverSubject: String?
    let created: Date
    var waiting: [PullRequest] = []
    var dirty = false
    /// When the consumer last sent something to its deliver subject (idle heartbeats count from it).
    var lastActivity: Int64 = 0
    /// Flow control (push): the reply subject of the request not yet answered, and bytes sent since it.
    var flowControlPending: String?
    var bytesSinceFlowControl = 0
    /// A pump that ran out of its budget scheduled the next one.
    var continuationScheduled = false
    /// When the consumer was last seen in use (interest on its deliver subject, a waiting pull request).
    var lastSeen: Int64 = 0
    /// Nanoseconds of inactivity after which the consumer is deleted: inactive_threshold, or nats-server's 5 s
    /// for ephemerals; nil = never.
    var inactiveThreshold: Int64? {
        if let t = config.inactiveThreshold, t > 0 { return t }
        return durable ? nil : 5_000_000_000
    }
    /// pause_until in nanoseconds (nil: not paused).
    var pausedUntil: Int64?

    /// A pull consumer with deliveries still inside their ack wait (plus the threshold) is in use, though
    /// nobody asks for more: nats-server counts inactivity from the last ack deadline.
    func awaitsAcks(at time: Int64, threshold: Int64) -> Bool {
        deliverSubject == nil && machine.pending.values.contains { $0.deadline.saturatingAdd(threshold) > time }
    }
    /// The last pending count, valid while the stream's last sequence and removals and the consumer's
    /// delivered sequence are as recorded: each first delivery takes one off, so a long catch-up (a KV watch
    /// over many keys) counts once instead of once per message.
    var pendingCache: (delivered: UInt64, last: UInt64, removals: Int, value: UInt64)?
    /// How many of `machine.exhausted` have had their max-deliveries advisory.
    var advised = 0
    /// Deliver policy last_per_subject: up to `lastPerSubjectBound` (the stream's last sequence when the
    /// consumer was created) only these sequences are delivered; everything after it is.
    var lastPerSubjectBound: UInt64 = 0
    /// Past the bound: the set is gone and no longer consulted (the bound stays: it is saved with the consumer).
    var lastPerSubjectDone = false
    var lastPerSubject: Set<UInt64> = [] {
        didSet { lastPerSubjectSorted = lastPerSubject.sorted() }
    }
    /// `lastPerSubject` in order (pending counts).
    private(set) var lastPerSubjectSorted: [UInt64] = []

    init(stream: String, name: String, durable: Bool, config: APIConsumerConfig, machine: ConsumerStateMachine,
         filters: [[UInt8]], deliverSubject: String?, created: Date) {
        self.stream = stream
        self.name = name
        self.durable = durable
        self.config = config
        self.machine = machine
        self.filters = filters
        self.deliverSubject = deliverSubject
        self.created = created
    }
}

extension ConsumerEntry {
    /// Messages the consumer has still to deliver (its filter; under last_per_subject, only the newest of each
    /// subject up to its bound): the `pending` of each delivery's ack subject, which clients read to know when
    /// they have caught up (a KV watch's "done" marker).
    /// Whether a message on `subject` passes the consumer's filters.
    @inline(__always)
    func accepts(_ subject: [UInt8]) -> Bool {
        if filters.isEmpty { return true }
        for filter in filters where Subject.matches(filter: filter, subject: subject) { return true }
        return false
    }

    func pending(in stream: DurableStream) -> UInt64 {
        let last = stream.state.lastSequence
        if let c = pendingCache, c.delivered == machine.deliveredStream, c.last == last, c.removals == stream.removals {
            return c.value
        }
        let value = countPending(in: stream)
        pendingCache = (machine.deliveredStream, last, stream.removals, value)
        return value
    }

    /// After a first delivery of `sequence` (the next matching one after the cached position): one less.
    func delivered(_ sequence: UInt64, in stream: DurableStream) {
        guard let c = pendingCache, c.last == stream.state.lastSequence, c.removals == stream.removals,
              c.delivered < sequence, machine.deliveredStream == sequence else { return }
        pendingCache = (sequence, c.last, c.removals, c.value > 0 ? c.value - 1 : 0)
    }

    private func countPending(in stream: DurableStream) -> UInt64 {
        let delivered = machine.deliveredStream
        let bound = lastPerSubjectBound
        let after = max(delivered, bound)
        // The filters never overlap (a create refuses that), so their counts add up.
        var pending = filters.isEmpty ? stream.countMatching(filter: nil, after: after)
            : filters.reduce(0) { $0 + stream.countMatching(filter: $1, after: after) }
        if delivered < bound {
            let sorted = lastPerSubjectSorted
            var lo = 0, hi = sorted.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if sorted[mid] <= delivered { lo = mid + 1 } else { hi = mid }
            }
            pending += UInt64(sorted.count - lo)
        }
        return pending
    }

}

/// The last message `pump`'s availability check loaded (the next to send, most of the time).
final class LoadedMessage {
    var sequence: UInt64 = 0
    var message: StoredMessage?
}

extension JetStream {
    // MARK: - Pull requests

    /// CONSUMER.MSG.NEXT.<stream>.<consumer>: a pull request for `batch` messages to `reply`.
    func pullNext(_ consumer: ConsumerEntry?, _ request: PullNextRequest, reply: String?) {
        guard let reply else { return }
        guard let consumer else {
            deliverStatus(to: reply, code: 404, description: "No Messages")
            return
        }
        if consumer.deliverSubject != nil {
            deliverStatus(to: reply, code: 409, description: "Consumer is push based")
            return
        }
        // The consumer's limits on requests, with nats-server's statuses.
        let config = consumer.config
        if let max = config.maxBatch, max > 0, request.batch > max {
            deliverStatus(to: reply, code: 409, description: "Exceeded MaxRequestBatch of \(max)")
            return
        }
        if let max = config.maxExpires, max > 0, let expires = request.expires, expires > max {
            deliverStatus(to: reply, code: 409, description: "Exceeded MaxRequestExpires of \(GoDuration.text(nanoseconds: max))")
            return
        }
        if let max = config.maxBytes, max > 0, let bytes = request.maxBytes, bytes > max {
            deliverStatus(to: reply, code: 409, description: "Exceeded MaxRequestMaxBytes of \(max)")
            return
        }
        if let max = config.maxWaiting, max > 0, consumer.waiting.count >= max {
            deliverStatus(to: reply, code: 409, description: "Exceeded MaxWaiting")
            return
        }
        let time = now()
        consumer.lastSeen = time
        let expires = request.expires.map { time.saturatingAdd($0) }
        consumer.waiting.append(.init(reply: reply, remaining: request.batch, expires: expires, noWait: request.noWait,
                                      remainingBytes: request.maxBytes.flatMap { $0 > 0 ? $0 : nil },
                                      heartbeat: request.idleHeartbeat.flatMap { $0 > 0 ? $0 : nil }, lastActivity: time))
        pump(consumer)
    }

    // MARK: - Acks

    /// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` with +ACK/-NAK/+WPI/+TERM/+NXT.
    @discardableResult
    func handleAck(subject: String, payload: [UInt8], reply: String?, pumpAfter: Bool = true) -> ConsumerEntry? {
        // One pass over the bytes for the tokens, the sequence read from its digits, and the consumer of the last
        // ack reused when the subject names it again: no String and no array made per ack (perf of jsconsume and
        // the bridge, where splitting the subject was half of this function).
        var subject = subject
        subject.makeContiguousUTF8()
        let found: (consumer: ConsumerEntry, sequence: UInt64)? = subject.utf8.withContiguousStorageIfAvailable { bytes in
            guard let ack = AckSubject(bytes) else { return nil }
            if let last = lastAcked, ack.equals(ack.stream, last.stream), ack.equals(ack.consumer, last.name),
               consumers[last.stream]?[last.name] === last {
                return (last, ack.sequence)
            }
            guard let entry = consumers[ack.string(ack.stream)]?[ack.string(ack.consumer)] else { return nil }
            lastAcked = entry
            return (entry, ack.sequence)
        } ?? nil
        guard let (consumer, sequence) = found else { return nil }
        // Most acks are empty (nats-py's msg.ack()): no String work for those.
        let body = payload.isEmpty ? "" : String(decoding: payload, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        let time = now()
        consumer.lastSeen = time
        if body.isEmpty || body.hasPrefix("+ACK") || body.hasPrefix("+NXT") {
            let floorBefore = consumer.machine.ackFloorStream
            consumer.machine.ack(sequence)
            if let entry = streamEntry(consumer.stream), entry.stream.config.retention != .limits {
                // Under ack policy all one ack covers everything below it: each of those is done too.
                var done: [UInt64] = [sequence]
                let floor = consumer.machine.ackFloorStream
                if consumer.machine.configuration.ackPolicy == .all, floor > floorBefore {
                    // Only the sequences still held (from the index), and a message read only when the consumer
                    // filters (one that takes every subject needs no subject).
                    let store = entry.stream.store
                    done = []
                    var next = store.firstStored(atOrAfter: floorBefore + 1)
                    while let s = next, s <= floor {
                        if s == sequence || consumer.filters.isEmpty || (try? store.load(s)).map({ consumer.accepts($0.subject) }) == true {
                            done.append(s)
                        }
                        next = s < floor ? store.firstStored(atOrAfter: s + 1) : nil
                    }
                    if !done.contains(sequence) { done.append(sequence) }
                }
                let all = (consumers[consumer.stream] ?? [:]).values
                for s in done {
                    switch entry.stream.config.retention {
                    case .workqueue:
                        // An acknowledged message is done and leaves the stream.
                        _ = try? entry.stream.removeMessage(s)
                    case .interest:
                        // A message every consumer interested in its subject has acknowledged leaves the stream
                        // (a consumer whose filters pass it by never will).
                        guard let subject = (try? entry.stream.store.load(s))?.subject else { continue }
                        let everyone = all.allSatisfy {
                            !$0.accepts(subject) || $0.machine.ackFloorStream >= s || ($0.machine.pending[s] == nil && $0.machine.deliveredStream >= s)
                        }
                        if everyone { _ = try? entry.stream.removeMessage(s) }
                    case .limits:
                        break
                    }
                }
            }
        } else if body.hasPrefix("-NAK") {
            var delay: Int64 = 0
            if let brace = body.firstIndex(of: "{"),
               let object = try? JSONSerialization.jsonObject(with: Data(body[brace...].utf8)) as? [String: Any] {
                delay = (object["delay"] as? NSNumber)?.int64Value ?? 0
            }
            consumer.machine.nak(sequence, delay: delay, now: time)
        } else if body.hasPrefix("+WPI") {
            consumer.machine.inProgress(sequence, now: time)
        } else if body.hasPrefix("+TERM") {
            consumer.machine.terminate(sequence)
        }
        consumer.dirty = true
        if let reply {
            // A double ack (ack_sync): answered once the state holding it is on disk (durable consumers of file
            // streams; the others keep nothing across a restart, so they are answered at once).
            if consumer.durable, streamEntry(consumer.stream)?.config.storage == .file {
                awaitCommit(stream: consumer.stream, consumer: consumer.name, reply: reply)
            } else {
                publish(reply, nil, [], [])
            }
        }
        if pumpAfter { pump(consumer) }
        return consumer
    }

    // MARK: - Delivery

    /// Delivers what the consumer may deliver now: push to its deliver subject, pull to waiting requests.
    func pump(_ consumer: ConsumerEntry) {
        guard let entry = streamEntry(consumer.stream) else { return }
        let store = entry.stream.store
        let time = now()
        if let until = consumer.pausedUntil {
            guard time >= until else { return }  // paused: the tick pumps again once the pause is over
            consumer.pausedUntil = nil
        }
        let revision = consumer.machine.revision
        // Only what is on disk is handed out (see durableLast).
        let lastDurable = min(store.state.lastSequence, durableLast[consumer.stream] ?? store.state.lastSequence)
        let bound = consumer.lastPerSubjectDone ? 0 : consumer.lastPerSubjectBound
        let only = consumer.lastPerSubject
        // The message `available` loaded is the one `send` delivers next: load it once.
        let loaded = LoadedMessage()
        let available: (UInt64) -> Bool = { sequence in
            if sequence <= bound, !only.contains(sequence) { return false }
            guard let message = try? store.load(sequence) else { return false }
            loaded.sequence = sequence
            loaded.message = message
            return consumer.accepts(message.subject)
        }
        // A consumer of literal subjects jumps from one of its messages to the next through the stream's
        // per-subject index: the other subjects' messages are never read (a KV history, an ordered consumer
        // of one key, were a read of every message after the start, holding the queue).
        let literal = !consumer.filters.isEmpty && !consumer.filters.contains(where: Subject.hasWildcard)
        let stream = entry.stream
        let skipTo: ((UInt64) -> UInt64?)? = literal ? { stream.firstSequence(on: consumer.filters, atOrAfter: $0) } : nil
        if let deliverSubject = consumer.deliverSubject {
            // As nats-server: a push consumer delivers only while someone listens on its deliver subject
            // (clients often create the consumer before subscribing); the tick checks again.
            guard hasInterest(deliverSubject) else { return }
            // Bounded per call, so one consumer cannot hold the JetStream queue; the tick continues.
            var budget = 10_000
            let flowControl = consumer.config.flowControl == true
            while budget > 0 {
                // Flow control: past the window with the last request unanswered, wait for the client.
                if flowControl, consumer.flowControlPending != nil, consumer.bytesSinceFlowControl >= Self.flowControlWindow { break }
                guard let delivery = consumer.machine.next(now: time, lastSequence: lastDurable, available: available, skipTo: skipTo) else { break }
                let size = send(delivery, of: consumer, to: deliverSubject, store: store, loaded: loaded)
                consumer.lastActivity = time
                budget -= 1
                if flowControl {
                    consumer.bytesSinceFlowControl += size
                    if consumer.flowControlPending == nil, consumer.bytesSinceFlowControl >= Self.flowControlWindow / 2 {
                        sendFlowControl(consumer, to: deliverSubject)
                    }
                }
            }
            if budget == 0, !consumer.continuationScheduled {
                // More to send: go on in a task of its own (other work on the queue runs in between), rather
                // than wait for the tick (which capped a backlog without acks at 100,000 messages a second).
                consumer.continuationScheduled = true
                let (stream, name) = (consumer.stream, consumer.name)
                queue.async { [self] in
                    guard let again = consumers[stream]?[name] else { return }
                    again.continuationScheduled = false
                    pump(again)
                }
            }
        } else {
            while !consumer.waiting.isEmpty {
                guard let delivery = consumer.machine.next(now: time, lastSequence: lastDurable, available: available, skipTo: skipTo) else {
                    // Nothing now: a no_wait request is answered at once.
                    if consumer.waiting[0].noWait {
                        let request = consumer.waiting.removeFirst()
                        deliverStatus(to: request.reply, code: 404, description: "No Messages")
                        continue
                    }
                    break
                }
                if let left = consumer.waiting[0].remainingBytes {
                    let size = loaded.sequence == delivery.streamSequence ? loaded.message.map(Self.size) ?? 0
                        : (try? store.load(delivery.streamSequence)).map(Self.size) ?? 0
                    if size > left {
                        // As nats-server: the request ends; the message goes to the next one.
                        let request = consumer.waiting.removeFirst()
                        consumer.machine.undeliver(delivery, now: time)
                        deliverStatus(to: request.reply, code: 409, description: "Message Size Exceeds MaxBytes",
                                      pending: (request.remaining, left))
                        continue
                    }
                    consumer.waiting[0].remainingBytes = left - size
                    if left - size == 0 { consumer.waiting[0].remaining = 1 }
                }
                send(delivery, of: consumer, to: consumer.waiting[0].reply, store: store, loaded: loaded)
                consumer.waiting[0].remaining -= 1
                consumer.waiting[0].lastActivity = time
                if consumer.waiting[0].remaining == 0 {
                    let request = consumer.waiting.removeFirst()
                    if let bytes = request.remainingBytes, bytes > 0 {
                        deliverStatus(to: request.reply, code: 409, description: "Batch Completed", pending: (0, bytes))
                    }
                }
            }
        }
        adviseExhausted(consumer)
        if !consumer.lastPerSubjectDone, consumer.lastPerSubjectBound > 0, consumer.machine.deliveredStream >= consumer.lastPerSubjectBound {
            // Past the last-per-subject part: its set (a sequence per subject, a KV bucket's keys for a watch)
            // is no longer consulted, so it goes (as nats-server drops its list). The bound itself stays: the
            // consumer's saved record keeps it for a restart.
            consumer.lastPerSubjectDone = true
            consumer.lastPerSubject = []
        }
        // Written again by the tick only when this changed it: an idle consumer (a push consumer with a listener,
        // a pull consumer with a waiting request) was rewritten every 100 ms.
        if consumer.machine.revision != revision { consumer.dirty = true }
    }

    /// `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>` for each message that hit max_deliver.
    private func adviseExhausted(_ consumer: ConsumerEntry) {
        while consumer.advised < consumer.machine.exhausted.count {
            let sequence = consumer.machine.exhausted[consumer.advised]
            consumer.advised += 1
            let deliveries = consumer.machine.configuration.maxDeliver
            let advisory = #"{"type":"io.nats.jetstream.advisory.v1.max_deliver","id":"\#(NATSInboxToken.make())","#
                + #""timestamp":"\#(Self.timestamp(nanoseconds: now()))","stream":\#(JSONString.quoted(consumer.stream)),"#
                + #""consumer":\#(JSONString.quoted(consumer.name)),"stream_seq":\#(sequence),"deliveries":\#(deliveries)}"#
            publish("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.\(consumer.stream).\(consumer.name)", nil, [], Array(advisory.utf8))
        }
    }

    /// The size a pull request's max_bytes counts (nats-server: subject, headers and payload).
    static func size(_ m: StoredMessage) -> Int { m.subject.count + m.headers.count + m.payload.count }

    /// Push flow control: bytes a consumer sends past an unanswered request before it waits.
    static let flowControlWindow = 4 * 1024 * 1024

    @discardableResult
    private func send(_ delivery: ConsumerStateMachine.Delivery, of consumer: ConsumerEntry, to subject: String,
                      store: any MessageStore, loaded: LoadedMessage) -> Int {
        let cached = loaded.sequence == delivery.streamSequence ? loaded.message : nil
        guard let message = cached ?? (try? store.load(delivery.streamSequence)) else { return 0 }
        var pending: UInt64 = 0
        if let stream = streamEntry(consumer.stream)?.stream {
            if delivery.deliveryCount == 1 { consumer.delivered(delivery.streamSequence, in: stream) }
            pending = consumer.pending(in: stream)
        }
        let ack = "$JS.ACK.\(consumer.stream).\(consumer.name).\(delivery.deliveryCount).\(delivery.streamSequence)."
            + "\(delivery.consumerSequence).\(message.timestamp).\(pending)"
        if consumer.config.headersOnly == true {
            // headers_only: the payload's size instead of the payload.
            var headers = message.headers.isEmpty ? Array("NATS/1.0\r\n".utf8) : Array(message.headers.dropLast(2))
            headers += Array("Nats-Msg-Size: \(message.payload.count)\r\n\r\n".utf8)
            publish(subject, ack, headers, [], originalSubject: message.subject)
        } else {
            publish(subject, ack, message.headers, message.payload, originalSubject: message.subject)
        }
        return Self.size(message)
    }

    /// `NATS/1.0 100 FlowControl Request` with a reply the client answers (`$JS.FC.<stream>.<consumer>.<id>`).
    private func sendFlowControl(_ consumer: ConsumerEntry, to deliverSubject: String) {
        let reply = "$JS.FC.\(consumer.stream).\(consumer.name).\(NATSInboxToken.make().prefix(4))"
        consumer.flowControlPending = reply
        publish(deliverSubject, reply, Array("NATS/1.0 100 FlowControl Request\r\n\r\n".utf8), [])
    }

    /// The tokens of `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` an ack needs, found
    /// in one pass (empty tokens are passed over, as `split` does): at least nine tokens, the sixth a number.
    struct AckSubject {
        let bytes: UnsafeBufferPointer<UInt8>
        var stream: Range<Int> = 0..<0
        var consumer: Range<Int> = 0..<0
        var sequence: UInt64 = 0

        init?(_ bytes: UnsafeBufferPointer<UInt8>) {
            self.bytes = bytes
            var count = 0
            var start = 0
            var sequence: UInt64?
            for i in 0...bytes.count where i == bytes.count || bytes[i] == UInt8(ascii: ".") {
                if i > start {
                    switch count {
                    case 2: stream = start..<i
                    case 3: consumer = start..<i
                    case 5: sequence = JetStream.decimal(UnsafeBufferPointer(rebasing: bytes[start..<i]))
                    default: break
                    }
                    count += 1
                }
                start = i + 1
            }
            guard count >= 9, let sequence else { return nil }
            self.sequence = sequence
        }

        func equals(_ range: Range<Int>, _ name: String) -> Bool {
            var name = name
            return name.withUTF8 { $0.count == range.count && memcmp($0.baseAddress!, bytes.baseAddress! + range.lowerBound, range.count) == 0 }
        }

        func string(_ range: Range<Int>) -> String {
            String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }
    }

    /// A decimal number of at most 19 digits (nil: not one).
    static func decimal(_ token: UnsafeBufferPointer<UInt8>) -> UInt64? {
        guard !token.isEmpty, token.count <= 19 else { return nil }
        var value: UInt64 = 0
        for byte in token {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
        }
        return value
    }

    /// A client answered a flow-control request: delivery goes on.
    func flowControlAnswered(_ subject: String) {
        let tokens = subject.split(separator: ".")
        guard tokens.count >= 5, let consumer = consumers[String(tokens[2])]?[String(tokens[3])],
              consumer.flowControlPending == subject else { return }
        consumer.flowControlPending = nil
        consumer.bytesSinceFlowControl = 0
        pump(consumer)
    }

    /// `NATS/1.0 100 Idle Heartbeat` with the last consumer and stream sequences (and the stalled flow control).
    private func sendHeartbeat(_ consumer: ConsumerEntry, to subject: String) {
        var text = "NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: \(consumer.machine.deliveredConsumer)\r\n"
            + "Nats-Last-Stream: \(consumer.machine.deliveredStream)\r\n"
        if let pending = consumer.flowControlPending { text += "Nats-Consumer-Stalled: \(pending)\r\n" }
        publish(subject, nil, Array((text + "\r\n").utf8), [])
    }

    func deliverStatus(to subject: String, code: Int, description: String, pending: (messages: Int, bytes: Int)? = nil) {
        var text = "NATS/1.0 \(code) \(description)\r\n"
        if let pending { text += "Nats-Pending-Messages: \(pending.messages)\r\nNats-Pending-Bytes: \(pending.bytes)\r\n" }
        publish(subject, nil, Array((text + "\r\n").utf8), [])
    }

    /// Every 100 ms: redeliveries that fell due, expired pull requests (408), and consumer state to disk.
    func tick() {
        let time = now()
        var inactive: [ConsumerEntry] = []
        for (_, byName) in consumers {
            for consumer in byName.values {
                // inactive_threshold (ephemerals: 5 s by default, as nats-server): a push consumer nobody listens
                // to, or a pull consumer nobody asks, for that long is deleted.
                if let threshold = consumer.inactiveThreshold {
                    let active = consumer.deliverSubject.map(hasInterest) ?? !consumer.waiting.isEmpty
                    if active || consumer.lastSeen == 0 {
                        consumer.lastSeen = time
                    } else if time - consumer.lastSeen >= threshold, !consumer.awaitsAcks(at: time, threshold: threshold) {
                        inactive.append(consumer)
                        continue
                    }
                }
                consumer.waiting.removeAll { request in
                    guard let expires = request.expires, expires <= time else { return false }
                    deliverStatus(to: request.reply, code: 408, description: "Request Timeout",
                                  pending: (request.remaining, request.remainingBytes ?? 0))
                    return true
                }
                if consumer.deliverSubject != nil || !consumer.waiting.isEmpty { pump(consumer) }
                // Idle heartbeats: to a push consumer's deliver subject (while someone listens), and to each
                // waiting pull request that asked for them.
                if let deliverSubject = consumer.deliverSubject, let hb = consumer.config.idleHeartbeat, hb > 0,
                   time - consumer.lastActivity >= hb, hasInterest(deliverSubject) {
                    sendHeartbeat(consumer, to: deliverSubject)
                    consumer.lastActivity = time
                }
                for i in consumer.waiting.indices {
                    if let hb = consumer.waiting[i].heartbeat, time - consumer.waiting[i].lastActivity >= hb {
                        sendHeartbeat(consumer, to: consumer.waiting[i].reply)
                        consumer.waiting[i].lastActivity = time
                    }
                }
                if consumer.dirty && consumer.durable { persistConsumerState(consumer, sync: false) }
            }
        }
        removeInactive(inactive)
    }

    /// Deletes consumers that passed their inactive threshold (after the tick's pass over them).
    func removeInactive(_ inactive: [ConsumerEntry]) {
        for consumer in inactive {
            _ = registry.deleteConsumer(stream: consumer.stream, name: consumer.name)
            logger.debug("JetStream consumer removed after inactivity", metadata: ["stream": "\(consumer.stream)", "consumer": "\(consumer.name)"])
        }
    }

    // MARK: - Persistence

    /// Writes a durable consumer's state (fsynced unless `sync` is false: the tick's save of plain acks, which
    /// must not hold the JetStream queue for an fsync per consumer every 100 ms); true when it is written. A
    /// failure is logged and the consumer stays dirty, so the next tick tries again.
    @discardableResult
    func persistConsumerState(_ consumer: ConsumerEntry, sync: Bool = true) -> Bool {
        do {
            try registry.saveState(of: consumer, sync: sync)
            return true
        } catch {
            logger.error("JetStream consumer state not saved", metadata: [
                "stream": "\(consumer.stream)", "consumer": "\(consumer.name)", "error": "\(error)"])
            return false
        }
    }

}

/// Random tokens for ephemeral consumer names.
enum NATSInboxToken {
    static func make() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        var g = SystemRandomNumberGenerator()
        return String((0..<8).map { _ in alphabet[Int(g.next() % UInt64(alphabet.count))] })
    }
}
