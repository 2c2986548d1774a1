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
    var config: [String: Any]
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
    var lastPerSubject: Set<UInt64> = []

    init(stream: String, name: String, durable: Bool, config: [String: Any], machine: ConsumerStateMachine,
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

/// The last message `pump`'s availability check loaded (the next to send, most of the time).
final class LoadedMessage {
    var sequence: UInt64 = 0
    var message: StoredMessage?
}

extension JetStream {
    // MARK: - API

    /// CONSUMER.CREATE.<stream>[.<name>[.<filter>]] and CONSUMER.DURABLE.CREATE.<stream>.<durable>.
    func createConsumer(_ rest: String, _ body: [String: Any], durableForm: Bool, restoredBound: UInt64? = nil) -> String {
        let type = "consumer_create_response"
        let parts = rest.split(separator: ".", maxSplits: 2).map(String.init)
        guard let streamName = parts.first, let entry = streamEntry(streamName) else {
            return Self.errorJSON(code: 404, errCode: 10059, description: "stream not found", type: type)
        }
        var config = body["config"] as? [String: Any] ?? [:]
        let nameFromSubject = parts.count > 1 ? parts[1] : nil
        let durableName = (config["durable_name"] as? String) ?? (durableForm ? nameFromSubject : nil)
        let name = durableName ?? (config["name"] as? String) ?? nameFromSubject ?? NATSInboxToken.make()
        if let d = durableName, let n = nameFromSubject, d != n {
            return Self.errorJSON(code: 400, errCode: 10017, description: "consumer name in subject does not match durable name in request", type: type)
        }
        config["name"] = name
        if durableName != nil { config["durable_name"] = name }
        // CONSUMER.CREATE.<stream>.<name>.<filter>: the filter may come in the subject.
        if parts.count > 2, (config["filter_subject"] as? String ?? "").isEmpty { config["filter_subject"] = parts[2] }
        Self.fillConsumerDefaults(&config)
        if let existing = consumers[streamName]?[name] {
            // Same configuration again: fine (nats-py re-binds durables this way); otherwise an error.
            if Self.canonical(Self.comparable(existing.config)) == Self.canonical(Self.comparable(config)) || body["action"] as? String == "" {
                return consumerInfo(existing, type: type)
            }
            return Self.errorJSON(code: 400, errCode: 10148, description: "consumer already exists", type: type)
        }
        let ackPolicy = ConsumerStateMachine.AckPolicy(rawValue: config["ack_policy"] as? String ?? "explicit") ?? .explicit
        if entry.stream.config.retention == .workqueue, ackPolicy != .explicit {
            return Self.errorJSON(code: 400, errCode: 10098, description: "workqueue stream requires explicit ack", type: type)
        }
        var machineConfig = ConsumerStateMachine.Configuration()
        machineConfig.ackPolicy = ackPolicy
        machineConfig.ackWait = (config["ack_wait"] as? NSNumber)?.int64Value ?? 30_000_000_000
        machineConfig.backoff = (config["backoff"] as? [NSNumber])?.map(\.int64Value) ?? []
        machineConfig.maxDeliver = (config["max_deliver"] as? NSNumber)?.intValue ?? -1
        machineConfig.maxAckPending = (config["max_ack_pending"] as? NSNumber)?.intValue ?? 1000
        let state = entry.stream.state
        var start: UInt64
        switch config["deliver_policy"] as? String ?? "all" {
        case "last": start = max(state.lastSequence, 1)
        case "new": start = state.lastSequence + 1
        case "by_start_sequence": start = max((config["opt_start_seq"] as? NSNumber)?.uint64Value ?? 1, 1)
        case "by_start_time":
            // The first message stored at or after opt_start_time (RFC 3339).
            let since = (config["opt_start_time"] as? String).flatMap(Self.parseTimestamp) ?? 0
            var s = max(state.firstSequence, 1)
            while s <= state.lastSequence, let m = try? entry.stream.store.load(s), m.timestamp < since { s += 1 }
            start = s
        default: start = max(state.firstSequence, 1)
        }
        let filter = (config["filter_subject"] as? String).flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        var bound: UInt64 = 0
        var lastPerSubject: Set<UInt64> = []
        if config["deliver_policy"] as? String == "last_per_subject" {
            // The newest message of each subject, then everything new. A restored durable keeps its bound.
            bound = restoredBound ?? state.lastSequence
            lastPerSubject = entry.stream.lastSequencesPerSubject(filter: filter, upTo: bound)
            start = lastPerSubject.min() ?? bound + 1
        }
        let consumer = ConsumerEntry(stream: streamName, name: name, durable: durableName != nil, config: config,
                                     machine: ConsumerStateMachine(configuration: machineConfig, startSequence: start),
                                     filter: filter, deliverSubject: config["deliver_subject"] as? String, created: Date())
        consumer.lastPerSubjectBound = bound
        consumer.lastPerSubject = lastPerSubject
        consumers[streamName, default: [:]][name] = consumer
        if consumer.durable { persistConsumer(consumer) }
        pump(consumer)
        return consumerInfo(consumer, type: type)
    }

    func consumerInfoRequest(_ rest: String) -> String {
        let type = "consumer_info_response"
        guard let consumer = lookupConsumer(rest) else {
            return Self.errorJSON(code: 404, errCode: 10014, description: "consumer not found", type: type)
        }
        return consumerInfo(consumer, type: type)
    }

    func deleteConsumer(_ rest: String) -> String {
        let type = "consumer_delete_response"
        guard let consumer = lookupConsumer(rest) else {
            return Self.errorJSON(code: 404, errCode: 10014, description: "consumer not found", type: type)
        }
        consumers[consumer.stream]?[consumer.name] = nil
        try? FileManager.default.removeItem(at: consumerDirectory(consumer.stream, consumer.name))
        return #"{"type":"io.nats.jetstream.api.v1.\#(type)","success":true}"#
    }

    func consumerNames(_ stream: String) -> String {
        let names = (consumers[stream] ?? [:]).keys.sorted()
        return #"{"type":"io.nats.jetstream.api.v1.consumer_names_response","total":\#(names.count),"offset":0,"limit":1024,"consumers":[\#(names.map(JSONString.quoted).joined(separator: ","))]}"#
    }

    func consumerList(_ stream: String) -> String {
        let infos = (consumers[stream] ?? [:]).values.sorted { $0.name < $1.name }.map { consumerInfoBody($0) }
        return #"{"type":"io.nats.jetstream.api.v1.consumer_list_response","total":\#(infos.count),"offset":0,"limit":256,"consumers":[\#(infos.joined(separator: ","))]}"#
    }

    /// CONSUMER.MSG.NEXT.<stream>.<consumer>: a pull request for `batch` messages to `reply`.
    func pullNext(_ rest: String, payload: [UInt8], reply: String?) -> String? {
        guard let reply else { return nil }
        guard let consumer = lookupConsumer(rest) else {
            deliverStatus(to: reply, code: 404, description: "No Messages")
            return nil
        }
        var batch = 1, expires: Int64?, noWait = false
        if let body = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any] {
            batch = max((body["batch"] as? NSNumber)?.intValue ?? 1, 1)
            if let ns = (body["expires"] as? NSNumber)?.int64Value, ns > 0 { expires = now() + ns }
            noWait = body["no_wait"] as? Bool ?? false
        } else if let n = Int(String(decoding: payload, as: UTF8.self).trimmingCharacters(in: .whitespaces)), n > 0 {
            batch = n
        }
        consumer.waiting.append(.init(reply: reply, remaining: batch, expires: expires, noWait: noWait))
        pump(consumer)
        return nil
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
        let pending = store.state.lastSequence > consumer.machine.deliveredStream
            ? store.state.lastSequence - consumer.machine.deliveredStream : 0
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

    // MARK: - Info and persistence

    func consumerInfo(_ consumer: ConsumerEntry, type: String) -> String {
        var body = consumerInfoBody(consumer)
        body.removeFirst()
        return #"{"type":"io.nats.jetstream.api.v1.\#(type)",\#(body)"#
    }

    func consumerInfoBody(_ c: ConsumerEntry) -> String {
        let m = c.machine
        let configJSON = Self.canonical(c.config)
        let last = streamEntry(c.stream)?.stream.state.lastSequence ?? 0
        let numPending = last > m.deliveredStream ? last - m.deliveredStream : 0
        let redelivered = m.deliveryCounts.values.filter { $0 > 1 }.count
        return #"{"stream_name":\#(JSONString.quoted(c.stream)),"name":\#(JSONString.quoted(c.name)),"#
            + #""created":"\#(Self.timestamp(c.created))","config":\#(configJSON),"#
            + #""delivered":{"consumer_seq":\#(m.deliveredConsumer),"stream_seq":\#(m.deliveredStream)},"#
            + #""ack_floor":{"consumer_seq":\#(m.ackFloorStream),"stream_seq":\#(m.ackFloorStream)},"#
            + #""num_ack_pending":\#(m.pending.count),"num_redelivered":\#(redelivered),"#
            + #""num_waiting":\#(c.waiting.count),"num_pending":\#(numPending)}"#
    }

    func lookupConsumer(_ rest: String) -> ConsumerEntry? {
        let parts = rest.split(separator: ".", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return nil }
        return consumers[parts[0]]?[parts[1]]
    }

    func consumerDirectory(_ stream: String, _ name: String) -> URL {
        streamsDirectory.appendingPathComponent(stream).appendingPathComponent("consumers").appendingPathComponent(name)
    }

    func persistConsumer(_ consumer: ConsumerEntry) {
        let dir = consumerDirectory(consumer.stream, consumer.name)
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var meta: [String: Any] = ["config": consumer.config, "created": consumer.created.timeIntervalSince1970]
        if consumer.lastPerSubjectBound > 0 { meta["last_per_subject_bound"] = consumer.lastPerSubjectBound }
        if let data = try? JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys]) {
            try? data.write(to: dir.appendingPathComponent("meta.json"), options: .atomic)
        }
        persistConsumerState(consumer)
    }

    func persistConsumerState(_ consumer: ConsumerEntry) {
        let dir = consumerDirectory(consumer.stream, consumer.name)
        try? Data(consumer.machine.encoded()).write(to: dir.appendingPathComponent("state"), options: .atomic)
    }

    /// Restores the durable consumers of `stream` from disk (after the stream itself).
    func loadConsumers(_ stream: String) {
        let dir = streamsDirectory.appendingPathComponent(stream).appendingPathComponent("consumers")
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted() {
            guard let data = try? Data(contentsOf: dir.appendingPathComponent(name).appendingPathComponent("meta.json")),
                  let meta = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let config = meta["config"] as? [String: Any] else { continue }
            // Read the saved state before re-creating the consumer (creating it writes a fresh state file).
            let saved = try? Data(contentsOf: dir.appendingPathComponent(name).appendingPathComponent("state"))
            let body: [String: Any] = ["config": config]
            _ = createConsumer("\(stream).\(name)", body, durableForm: true,
                               restoredBound: (meta["last_per_subject_bound"] as? NSNumber)?.uint64Value)
            if let consumer = consumers[stream]?[name], let saved,
               var restored = ConsumerStateMachine(configuration: consumer.machine.configuration, decoding: [UInt8](saved)) {
                // State saved after a delivery whose message a crash then took (it was not fsynced yet) must not
                // point past the stream: that sequence will be used again by the next message.
                restored.clamp(toLastSequence: streamEntry(stream)?.stream.state.lastSequence ?? 0)
                consumer.machine = restored
                persistConsumerState(consumer)
            }
        }
    }

    /// RFC 3339 ("2026-11-23T04:00:00.123456789Z") to nanoseconds since 1970.
    static func parseTimestamp(_ text: String) -> Int64? {
        let formatter = ISO8601DateFormatter()
        var main = text
        var fraction: Int64 = 0
        if let dot = text.firstIndex(of: "."), let zone = text[dot...].firstIndex(where: { $0 == "Z" || $0 == "+" || $0 == "-" }) {
            let digits = String(text[text.index(after: dot)..<zone].prefix(9))
            fraction = (Int64(digits) ?? 0) * Int64(pow(10.0, Double(9 - digits.count)))
            main = String(text[..<dot]) + String(text[zone...])
        }
        guard let date = formatter.date(from: main) else { return nil }
        return Int64(date.timeIntervalSince1970) * 1_000_000_000 + fraction
    }

    static func fillConsumerDefaults(_ config: inout [String: Any]) {
        let defaults: [String: Any] = [
            "deliver_policy": "all", "ack_policy": "explicit", "ack_wait": 30_000_000_000, "max_deliver": -1,
            "replay_policy": "instant", "max_ack_pending": 1000, "num_replicas": 0,
        ]
        for (key, value) in defaults where config[key] == nil || config[key] is NSNull { config[key] = value }
    }

    /// The parts of a consumer config that decide whether a second CREATE is the same consumer.
    static func comparable(_ config: [String: Any]) -> [String: Any] {
        var c = config
        for key in ["deliver_subject", "description", "metadata", "name"] { c[key] = nil }
        return c
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
