import Foundation
import NIOCore
import Protocol

/// A consumer on a stream: its configuration (as the client sent it), its delivery state machine, and for
/// pull consumers the requests waiting for messages. Touched only on the JetStream queue.
final class ConsumerEntry {
    struct PullRequest {
        var reply: String
        var remaining: Int
        var expires: Int64?
        var noWait: Bool
    }

    let stream: String
    let name: String
    let durable: Bool
    var config: APIConsumerConfig
    var machine: ConsumerStateMachine
    let filter: [UInt8]?
    let deliverSubject: String?
    let created: Date
    var waiting: [PullRequest] = []
    var dirty = false
    /// How many of `machine.exhausted` have had their max-deliveries advisory.
    var advised = 0
    /// Deliver policy last_per_subject: up to `lastPerSubjectBound` (the stream's last sequence when the
    /// consumer was created) only these sequences are delivered; everything after it is.
    var lastPerSubjectBound: UInt64 = 0
    var lastPerSubject: Set<UInt64> = [] {
        didSet { lastPerSubjectSorted = lastPerSubject.sorted() }
    }
    /// `lastPerSubject` in order (pending counts).
    private(set) var lastPerSubjectSorted: [UInt64] = []

    init(stream: String, name: String, durable: Bool, config: APIConsumerConfig, machine: ConsumerStateMachine,
         filter: [UInt8]?, deliverSubject: String?, created: Date) {
        self.stream = stream
        self.name = name
        self.durable = durable
        self.config = config
        self.machine = machine
        self.filter = filter
        self.deliverSubject = deliverSubject
        self.created = created
    }
}

extension ConsumerEntry {
    /// Messages the consumer has still to deliver (its filter; under last_per_subject, only the newest of each
    /// subject up to its bound): the `pending` of each delivery's ack subject, which clients read to know when
    /// they have caught up (a KV watch's "done" marker).
    func pending(in stream: DurableStream) -> UInt64 {
        let delivered = machine.deliveredStream
        let bound = lastPerSubjectBound
        var pending = stream.countMatching(filter: filter, after: max(delivered, bound))
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
        let expires = request.expires.map { now() + $0 }
        consumer.waiting.append(.init(reply: reply, remaining: request.batch, expires: expires, noWait: request.noWait))
        pump(consumer)
    }

    // MARK: - Acks

    /// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` with +ACK/-NAK/+WPI/+TERM/+NXT.
    @discardableResult
    func handleAck(subject: String, payload: [UInt8], reply: String?, pumpAfter: Bool = true) -> ConsumerEntry? {
        let tokens = subject.split(separator: ".")
        guard tokens.count >= 9, let sequence = UInt64(tokens[5]),
              let consumer = consumers[String(tokens[2])]?[String(tokens[3])] else { return nil }
        // Most acks are empty (nats-py's msg.ack()): no String work for those.
        let body = payload.isEmpty ? "" : String(decoding: payload, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        let time = now()
        if body.isEmpty || body.hasPrefix("+ACK") || body.hasPrefix("+NXT") {
            let floorBefore = consumer.machine.ackFloorStream
            consumer.machine.ack(sequence)
            if let entry = streamEntry(consumer.stream), entry.stream.config.retention != .limits {
                // Under ack policy all one ack covers everything below it: each of those is done too.
                var done: [UInt64] = [sequence]
                let floor = consumer.machine.ackFloorStream
                if consumer.machine.configuration.ackPolicy == .all, floor > floorBefore {
                    let store = entry.stream.store
                    done = (floorBefore + 1...min(floor, floorBefore + 100_000)).filter { s in
                        guard s != sequence, let m = try? store.load(s) else { return s == sequence }
                        return consumer.filter.map { Subject.matches(filter: $0, subject: m.subject) } ?? true
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
                        // A message every consumer has acknowledged leaves the stream.
                        let everyone = all.allSatisfy { $0.machine.ackFloorStream >= s || ($0.machine.pending[s] == nil && $0.machine.deliveredStream >= s) }
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
        if let reply { publish(reply, nil, [], []) }  // a double-ack (ack_sync) waits for this
        if pumpAfter { pump(consumer) }
        return consumer
    }

    // MARK: - Delivery

    /// Delivers what the consumer may deliver now: push to its deliver subject, pull to waiting requests.
    func pump(_ consumer: ConsumerEntry) {
        guard let entry = streamEntry(consumer.stream) else { return }
        let store = entry.stream.store
        let time = now()
        // Only what is on disk is handed out (see durableLast).
        let lastDurable = min(store.state.lastSequence, durableLast[consumer.stream] ?? store.state.lastSequence)
        let filter = consumer.filter
        let bound = consumer.lastPerSubjectBound
        let only = consumer.lastPerSubject
        // The message `available` loaded is the one `send` delivers next: load it once.
        let loaded = LoadedMessage()
        let available: (UInt64) -> Bool = { sequence in
            if sequence <= bound, !only.contains(sequence) { return false }
            guard let message = try? store.load(sequence) else { return false }
            loaded.sequence = sequence
            loaded.message = message
            return filter.map { Subject.matches(filter: $0, subject: message.subject) } ?? true
        }
        if let deliverSubject = consumer.deliverSubject {
            // As nats-server: a push consumer delivers only while someone listens on its deliver subject
            // (clients often create the consumer before subscribing); the tick checks again.
            guard hasInterest(deliverSubject) else { return }
            // Bounded per call, so one consumer cannot hold the JetStream queue; the tick continues.
            var budget = 10_000
            while budget > 0, let delivery = consumer.machine.next(now: time, lastSequence: lastDurable, available: available) {
                send(delivery, of: consumer, to: deliverSubject, store: store, loaded: loaded)
                budget -= 1
            }
        } else {
            while !consumer.waiting.isEmpty {
                guard let delivery = consumer.machine.next(now: time, lastSequence: lastDurable, available: available) else {
                    // Nothing now: a no_wait request is answered at once.
                    if consumer.waiting[0].noWait {
                        let request = consumer.waiting.removeFirst()
                        deliverStatus(to: request.reply, code: 404, description: "No Messages")
                        continue
                    }
                    break
                }
                send(delivery, of: consumer, to: consumer.waiting[0].reply, store: store, loaded: loaded)
                consumer.waiting[0].remaining -= 1
                if consumer.waiting[0].remaining == 0 { consumer.waiting.removeFirst() }
            }
        }
        adviseExhausted(consumer)
        consumer.dirty = true
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

    private func send(_ delivery: ConsumerStateMachine.Delivery, of consumer: ConsumerEntry, to subject: String,
                      store: any MessageStore, loaded: LoadedMessage) {
        let cached = loaded.sequence == delivery.streamSequence ? loaded.message : nil
        guard let message = cached ?? (try? store.load(delivery.streamSequence)) else { return }
        let pending = streamEntry(consumer.stream).map { consumer.pending(in: $0.stream) } ?? 0
        let ack = "$JS.ACK.\(consumer.stream).\(consumer.name).\(delivery.deliveryCount).\(delivery.streamSequence)."
            + "\(delivery.consumerSequence).\(message.timestamp).\(pending)"
        publish(subject, ack, message.headers, message.payload, originalSubject: message.subject)
    }

    func deliverStatus(to subject: String, code: Int, description: String) {
        publish(subject, nil, Array("NATS/1.0 \(code) \(description)\r\n\r\n".utf8), [])
    }

    /// Every 100 ms: redeliveries that fell due, expired pull requests (408), and consumer state to disk.
    func tick() {
        let time = now()
        for (_, byName) in consumers {
            for consumer in byName.values {
                consumer.waiting.removeAll { request in
                    guard let expires = request.expires, expires <= time else { return false }
                    deliverStatus(to: request.reply, code: 408, description: "Request Timeout")
                    return true
                }
                if consumer.deliverSubject != nil || !consumer.waiting.isEmpty { pump(consumer) }
                if consumer.dirty && consumer.durable {
                    consumer.dirty = false
                    persistConsumerState(consumer)
                }
            }
        }
    }

    // MARK: - Persistence

    func persistConsumerState(_ consumer: ConsumerEntry) {
        registry.saveState(of: consumer)
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
