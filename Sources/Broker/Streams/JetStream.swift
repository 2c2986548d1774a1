import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Protocol
import Synchronization

/// brokerd's JetStream: the streams, their API (`$JS.API.*`) and the capture of published messages.
///
/// All stream work runs on one serial queue, off the event loops. Captured messages are appended in arrival
/// order; one `sync()` (fsync) covers every append queued before it (group commit), and only then do the
/// publishers get their PubAcks: an acknowledged message is on disk.
public final class JetStream: @unchecked Sendable {
    let storeDirectory: URL
    let logger: Logger
    private let queue = DispatchQueue(label: "brokerd.jetstream")
    let now: @Sendable () -> Int64

    // Touched only on `queue`.
    private var streams: [String: Entry] = [:]
    var consumers: [String: [String: ConsumerEntry]] = [:]
    private var ticking = false
    /// Where JetStream lives in the subject space (set by `attach(to:)`): its API, ack and stream-capture
    /// subscriptions, the interest push consumers wait for, and the deliveries it publishes.
    private var space: SubjectSpace?
    /// The capture subscription of each stream subject (kept in step with the streams by `subscribeCaptures`).
    private var captureSubscriptions: [String: Subscription] = [:]
    private lazy var captureSubscriber = StreamCaptureSubscriber(jetStream: self)
    private var pendingAcks: [(ack: PubAck, answer: PublishAnswer, stream: String)] = []
    /// Per stream: the last sequence known to be on disk (consumers deliver nothing beyond it, so a message
    /// a crash could still take is never handed out, and no consumer state can point past the stream).
    var durableLast: [String: UInt64] = [:]
    private var syncScheduled = false
    private var syncedStreams: Set<String> = []
    private var apiTotal = 0
    private var apiErrors = 0


    struct Entry {
        var stream: DurableStream
        /// The configuration as the client sent it, with defaults filled in (echoed in responses).
        var config: [String: Any]
        var created: Date
        /// The stream's subjects as bytes, made once (capture matches every stored message against them).
        let subjectFilters: [[UInt8]]

        init(stream: DurableStream, config: [String: Any], created: Date) {
            self.stream = stream
            self.config = config
            self.created = created
            self.subjectFilters = stream.config.subjects.map { Array($0.utf8) }
        }
    }

    /// The durability policy (see BrokerOptions.JetStreamSync); set before the first publish.
    var syncPolicy: BrokerOptions.JetStreamSync = .batch
    var syncInterval: Int64 = 120_000_000_000
    /// Server-wide byte limits for memory and file streams (`max_memory_store`, `max_file_store`); nil = none.
    var maxMemory: Int64?
    var maxStore: Int64?
    private var lastIntervalSync: Int64 = 0

    public init(storeDirectory: URL, logger: Logger, now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1e9) }) throws {
        self.storeDirectory = storeDirectory
        self.logger = logger
        self.now = now
        try FileManager.default.createDirectory(at: streamsDirectory, withIntermediateDirectories: true)
        try queue.sync { try loadStreams() }
    }

    /// Plugs JetStream into the subject space: `$JS.API.>` (requests), `$JS.ACK.>` (consumer acks) and every
    /// stream's subjects (capture), then starts the 100 ms tick (redeliveries, pull expiry, consumer state to
    /// disk). Call once, before clients connect.
    func attach(to space: SubjectSpace) throws {
        try queue.sync { () throws in
            self.space = space
            try space.subscribe("$JS.API.>", JetStreamAPISubscriber(jetStream: self))
            try space.subscribe("$JS.ACK.>", JetStreamAckSubscriber(jetStream: self))
            subscribeCaptures()
        }
        queue.async { [self] in
            guard !ticking else { return }
            ticking = true
            scheduleTick()
        }
    }

    private func scheduleTick() {
        queue.asyncAfter(deadline: .now() + .milliseconds(100)) { [self] in
            guard ticking else { return }
            tick()
            if syncPolicy == .interval, now() - lastIntervalSync >= syncInterval {
                lastIntervalSync = now()
                for entry in streams.values { try? entry.stream.store.sync() }
            }
            scheduleTick()
        }
    }

    func streamEntry(_ name: String) -> Entry? { streams[name] }

    /// Publishes a message of JetStream's (a delivery, a status, an advisory) routed by `subject` and shown in
    /// MSG with `originalSubject` (the stored message's subject) when given.
    func publish(_ subject: String, _ reply: String?, _ headers: [UInt8], _ payload: [UInt8], originalSubject: [UInt8]? = nil) {
        space?.publish(.init(route: Array(subject.utf8), shown: originalSubject, reply: reply.map { Array($0.utf8) },
                             headers: headers, payload: payload))
    }

    /// Whether anyone listens on `subject` (push consumers wait for interest).
    func hasInterest(_ subject: String) -> Bool { space?.hasInterest(subject) ?? true }

    /// An ack from a client (`$JS.ACK.…`), handled on the queue.
    func acknowledge(subject: String, payload: [UInt8], reply: String?) {
        // Acks arrive one message each: gather them and handle them in one task on the queue, then pump
        // each consumer they touched once (not once per ack).
        guard ackInbox.append((subject, payload, reply)).schedule else { return }
        queue.async { [self] in
            var touched: [ObjectIdentifier: ConsumerEntry] = [:]
            for (subject, payload, reply) in ackInbox.drain() {
                if let consumer = handleAck(subject: subject, payload: payload, reply: reply, pumpAfter: false) {
                    touched[ObjectIdentifier(consumer)] = consumer
                }
            }
            for consumer in touched.values { pump(consumer) }
        }
    }

    private let ackInbox = HandOff<(String, [UInt8], String?)>()

    var streamsDirectory: URL { storeDirectory.appendingPathComponent("jetstream/streams") }

    // MARK: - Publish path

    /// Sends `ack` where the publisher wants it.
    private func send(_ ack: PubAck, to answer: PublishAnswer?) {
        switch answer {
        case nil: break
        case .callback(let deliver): deliver(ack)
        case .reply(let router, let subject):
            router.eventLoop.execute {
                router.reply(to: subject, ack.json)
                router.flushPending()
            }
        }
    }

    /// Stores a published message in the stream that captures its subject and, when `answer` is given,
    /// sends the PubAck once the message is durable.
    func capture(subject: [UInt8], headers: [UInt8], payload: [UInt8], answer: PublishAnswer?) {
        queue.async { [self] in
            guard let (name, entry) = streams.first(where: { _, e in
                e.subjectFilters.contains { Subject.matches(filter: $0, subject: subject) }
            }) else {
                // The stream went away between the publisher's match and now: say so rather than stay silent.
                send(.failed(code: 503, errorCode: 10077, description: "no stream captures this subject"), to: answer)
                return
            }
            let response: PubAck
            if let limit = limit(for: entry.stream.config.storage),
               usage(of: entry.stream.config.storage) + UInt64(subject.count + headers.count + payload.count + 16) > UInt64(limit) {
                // nats-server's answer once the server's store limit is reached: nothing is stored.
                logger.warning("JetStream resource limit reached: publish refused", metadata: [
                    "stream": "\(name)", "storage": "\(entry.stream.config.storage.rawValue)", "limit": "\(limit)"])
                send(.failed(code: 503, errorCode: 10023, description: "insufficient resources"), to: answer)
                return
            }
            do {
                let id = DurableStream.messageID(in: headers)
                switch try entry.stream.publish(subject: subject, headers: headers, payload: payload, messageID: id) {
                case .stored(let sequence):
                    response = .stored(stream: name, sequence: sequence, duplicate: false)
                case .duplicate(let sequence):
                    response = .stored(stream: name, sequence: sequence, duplicate: true)
                }
            } catch {
                let description = (error as? DurableStream.PublishError)?.description ?? "\(error)"
                send(.failed(code: 503, errorCode: 10077, description: description), to: answer)
                return
            }
            switch syncPolicy {
            case .always:
                do {
                    try entry.stream.store.sync()
                    durableLast[name] = entry.stream.store.state.lastSequence
                } catch {
                    send(.failed(code: 503, errorCode: 10077, description: "storage failure: \(error)"), to: answer)
                    return
                }
                send(response, to: answer)
                for consumer in (consumers[name] ?? [:]).values { pump(consumer) }
            case .batch:
                if let answer { pendingAcks.append((response, answer, name)) }
                syncedStreams.insert(name)
                scheduleSync()
            case .interval:
                // Acked before the disk has it (as nats-server's default), but at least in the kernel's hands,
                // so a crash of brokerd alone loses nothing acknowledged.
                do {
                    try entry.stream.store.flushWrites()
                } catch {
                    send(.failed(code: 503, errorCode: 10077, description: "storage failure: \(error)"), to: answer)
                    return
                }
                // Interval: acknowledged before the disk has it (as nats-server's default); consumers may see it.
                durableLast[name] = entry.stream.store.state.lastSequence
                send(response, to: answer)
                for consumer in (consumers[name] ?? [:]).values { pump(consumer) }
                let time = now()
                if time - lastIntervalSync >= syncInterval {
                    lastIntervalSync = time
                    try? entry.stream.store.sync()
                }
            }
        }
    }

    /// Group commit: one fsync per stream for everything appended before it, then all those acks.
    private func scheduleSync() {
        guard !syncScheduled else { return }
        syncScheduled = true
        queue.async { [self] in
            syncScheduled = false
            var failed: [String: String] = [:]
            for (name, entry) in streams {
                do {
                    try entry.stream.store.sync()
                    durableLast[name] = entry.stream.store.state.lastSequence
                } catch {
                    failed[name] = "\(error)"
                    logger.error("JetStream sync failed: the messages it covers are not acknowledged",
                                 metadata: ["stream": "\(name)", "error": "\(error)"])
                }
            }
            // One task per publisher event loop for the whole batch, then one flush there.
            var byLoop: [ObjectIdentifier: (router: Router, replies: [(ByteBuffer, ByteBuffer)])] = [:]
            for (ack, answer, stream) in pendingAcks {
                // Never a success PubAck for what did not reach the disk.
                let outcome = failed[stream].map { PubAck.failed(code: 503, errorCode: 10077, description: "storage failure: \($0)") } ?? ack
                switch answer {
                case .callback(let deliver):
                    deliver(outcome)
                case .reply(let router, let subject):
                    byLoop[ObjectIdentifier(router), default: (router, [])].replies.append((subject, outcome.json))
                }
            }
            pendingAcks.removeAll(keepingCapacity: true)
            for (router, replies) in byLoop.values {
                router.eventLoop.execute {
                    for (subject, json) in replies { router.reply(to: subject, json) }
                    router.flushPending()
                }
            }
            // Consumers see a message once it is durable.
            for name in syncedStreams { for consumer in (consumers[name] ?? [:]).values { pump(consumer) } }
            syncedStreams.removeAll()
        }
    }

    // MARK: - API

    /// Handles a request to `$JS.API.<...>`; the response goes to `respond`.
    func handleAPI(subject: String, payload: [UInt8], reply: String?, respond: @escaping @Sendable (ByteBuffer) -> Void) {
        queue.async { [self] in
            apiTotal += 1
            guard let response = api(subject: subject, payload: payload, reply: reply) else { return }
            if response.contains(#""error":"#) { apiErrors += 1 }
            respond(ByteBuffer(string: response))
        }
    }

    private func api(subject: String, payload: [UInt8], reply: String?) -> String? {
        let prefix = "$JS.API."
        let operation = String(subject.dropFirst(prefix.count))
        let body = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any] ?? [:]
        if operation == "INFO" { return accountInfo() }
        if operation.hasPrefix("CONSUMER.MSG.NEXT.") {
            return pullNext(String(operation.dropFirst("CONSUMER.MSG.NEXT.".count)), payload: payload, reply: reply)
        }
        if operation.hasPrefix("CONSUMER.DURABLE.CREATE.") {
            return createConsumer(String(operation.dropFirst("CONSUMER.DURABLE.CREATE.".count)), body, durableForm: true)
        }
        if operation.hasPrefix("CONSUMER.CREATE.") {
            return createConsumer(String(operation.dropFirst("CONSUMER.CREATE.".count)), body, durableForm: false)
        }
        if operation.hasPrefix("CONSUMER.INFO.") { return consumerInfoRequest(String(operation.dropFirst("CONSUMER.INFO.".count))) }
        if operation.hasPrefix("CONSUMER.DELETE.") { return deleteConsumer(String(operation.dropFirst("CONSUMER.DELETE.".count))) }
        if operation.hasPrefix("CONSUMER.NAMES.") { return consumerNames(String(operation.dropFirst("CONSUMER.NAMES.".count))) }
        if operation.hasPrefix("CONSUMER.LIST.") { return consumerList(String(operation.dropFirst("CONSUMER.LIST.".count))) }
        for (verb, handler) in [
            ("STREAM.CREATE.", createStream), ("STREAM.UPDATE.", updateStream), ("STREAM.INFO.", streamInfo),
            ("STREAM.DELETE.", deleteStream), ("STREAM.PURGE.", purgeStream), ("STREAM.MSG.GET.", getMessage),
        ] as [(String, (String, [String: Any]) -> String)] where operation.hasPrefix(verb) {
            return handler(String(operation.dropFirst(verb.count)), body)
        }
        if operation == "STREAM.NAMES" { return streamNames(body) }
        if operation == "STREAM.LIST" { return streamList(body) }
        return Self.errorJSON(code: 400, errCode: 10003, description: "bad request")
    }

    private func accountInfo() -> String {
        let consumerCount = consumers.values.reduce(0) { $0 + $1.count }
        return #"{"type":"io.nats.jetstream.api.v1.account_info_response","memory":\#(usage(of: .memory)),"storage":\#(usage(of: .file)),"#
            + #""streams":\#(streams.count),"consumers":\#(consumerCount),"limits":{"max_memory":-1,"max_storage":-1,"max_streams":-1,"#
            + #""max_consumers":-1,"max_ack_pending":-1,"memory_max_stream_bytes":-1,"storage_max_stream_bytes":-1,"#
            + #""max_bytes_required":false},"api":{"total":\#(apiTotal),"errors":\#(apiErrors)}}"#
    }

    private func createStream(_ name: String, _ body: [String: Any]) -> String {
        createOrUpdate(name, body, update: false)
    }

    private func updateStream(_ name: String, _ body: [String: Any]) -> String {
        createOrUpdate(name, body, update: true)
    }

    private func createOrUpdate(_ name: String, _ body: [String: Any], update: Bool) -> String {
        let type = update ? "stream_update_response" : "stream_create_response"
        guard Self.isValidStreamName(name) else {
            return Self.errorJSON(code: 400, errCode: 10042, description: "invalid stream name", type: type)
        }
        var config = body
        if let given = config["name"] as? String, given != name {
            return Self.errorJSON(code: 400, errCode: 10056, description: "stream name in subject does not match request", type: type)
        }
        config["name"] = name
        if (config["subjects"] as? [String])?.isEmpty ?? true { config["subjects"] = [name] }
        for subject in config["subjects"] as? [String] ?? [] where !Subject.isValidSubscription(subject) {
            return Self.errorJSON(code: 400, errCode: 10052, description: "invalid subject", type: type)
        }
        Self.fillDefaults(&config)
        if let existing = streams[name] {
            if Self.canonical(existing.config) == Self.canonical(config) {
                // nats-server: creating an identical stream again is not an error.
                return info(name, type: type, didCreate: false)
            }
            if update {
                if (config["storage"] as? String) != (existing.config["storage"] as? String) {
                    return Self.errorJSON(code: 500, errCode: 10052, description: "stream configuration update can not change storage type", type: type)
                }
                if let refusal = reservationRefusal(config, replacing: name, type: type) { return refusal }
                do {
                    let data = try JSONSerialization.data(withJSONObject: config)
                    let streamConfig = try JSONDecoder().decode(StreamConfig.self, from: data)
                    let stream = try DurableStream(config: streamConfig, store: existing.stream.store, now: now)
                    try stream.enforceLimits(at: now())
                    let entry = Entry(stream: stream, config: config, created: existing.created)
                    streams[name] = entry
                    try persist(name: name, entry: entry)
                    subscribeCaptures()
                    return info(name, type: type, didCreate: nil)
                } catch {
                    return Self.errorJSON(code: 500, errCode: 10052, description: "stream update failed: \(error)", type: type)
                }
            }
            return Self.errorJSON(code: 400, errCode: 10058, description: "stream name already in use with a different configuration", type: type)
        }
        if update { return Self.errorJSON(code: 404, errCode: 10059, description: "stream not found", type: type) }
        // Overlapping subjects with another stream: nats-server refuses.
        let newSubjects = config["subjects"] as? [String] ?? []
        for entry in streams.values {
            for a in entry.stream.config.subjects {
                for b in newSubjects where Subject.overlaps(a, b) {
                    return Self.errorJSON(code: 400, errCode: 10065, description: "subjects overlap with an existing stream", type: type)
                }
            }
        }
        if let refusal = reservationRefusal(config, replacing: nil, type: type) { return refusal }
        do {
            let entry = try openStream(name: name, config: config, created: Date())
            streams[name] = entry
            durableLast[name] = entry.stream.store.state.lastSequence
            try persist(name: name, entry: entry)
            subscribeCaptures()
            logger.info("JetStream stream created", metadata: ["stream": "\(name)", "subjects": "\(newSubjects)"])
            return info(name, type: type, didCreate: true)
        } catch {
            return Self.errorJSON(code: 500, errCode: 10049, description: "stream create failed: \(error)", type: type)
        }
    }

    private func limit(for storage: StreamConfig.Storage) -> Int64? {
        storage == .memory ? maxMemory : maxStore
    }

    /// Bytes held by every stream of one storage type.
    private func usage(of storage: StreamConfig.Storage) -> UInt64 {
        var total: UInt64 = 0
        for entry in streams.values where entry.stream.config.storage == storage { total += entry.stream.state.bytes }
        return total
    }

    /// nats-server reserves each stream's max_bytes against the server's limit: a stream that does not fit
    /// is refused (500, 10028 memory / 10047 storage).
    private func reservationRefusal(_ config: [String: Any], replacing name: String?, type: String) -> String? {
        let storage: StreamConfig.Storage = (config["storage"] as? String) == "memory" ? .memory : .file
        guard let limit = limit(for: storage) else { return nil }
        func reserved(_ c: [String: Any]) -> Int64 { max((c["max_bytes"] as? NSNumber)?.int64Value ?? -1, 0) }
        var total: Int64 = 0
        for (other, entry) in streams where other != name && entry.stream.config.storage == storage {
            total += reserved(entry.config)
        }
        let wanted = max(reserved(config), 1)
        guard total + wanted > limit else { return nil }
        return storage == .memory
            ? Self.errorJSON(code: 500, errCode: 10028, description: "insufficient memory resources available", type: type)
            : Self.errorJSON(code: 500, errCode: 10047, description: "insufficient storage resources available", type: type)
    }

    private func streamInfo(_ name: String, _ body: [String: Any]) -> String {
        guard streams[name] != nil else {
            return Self.errorJSON(code: 404, errCode: 10059, description: "stream not found", type: "stream_info_response")
        }
        return info(name, type: "stream_info_response", didCreate: nil)
    }

    private func deleteStream(_ name: String, _ body: [String: Any]) -> String {
        guard let entry = streams.removeValue(forKey: name) else {
            return Self.errorJSON(code: 404, errCode: 10059, description: "stream not found", type: "stream_delete_response")
        }
        consumers[name] = nil
        try? entry.stream.store.close()
        try? FileManager.default.removeItem(at: streamsDirectory.appendingPathComponent(name))
        subscribeCaptures()
        return #"{"type":"io.nats.jetstream.api.v1.stream_delete_response","success":true}"#
    }

    private func purgeStream(_ name: String, _ body: [String: Any]) -> String {
        guard let entry = streams[name] else {
            return Self.errorJSON(code: 404, errCode: 10059, description: "stream not found", type: "stream_purge_response")
        }
        let purged = entry.stream.state.messages
        do { try entry.stream.store.purge() } catch {
            return Self.errorJSON(code: 500, errCode: 10063, description: "purge failed: \(error)", type: "stream_purge_response")
        }
        return #"{"type":"io.nats.jetstream.api.v1.stream_purge_response","success":true,"purged":\#(purged)}"#
    }

    private func getMessage(_ name: String, _ body: [String: Any]) -> String {
        let type = "stream_msg_get_response"
        guard let entry = streams[name] else {
            return Self.errorJSON(code: 404, errCode: 10059, description: "stream not found", type: type)
        }
        var message: StoredMessage?
        if let seq = (body["seq"] as? NSNumber)?.uint64Value {
            message = try? entry.stream.store.load(seq)
        } else if let last = body["last_by_subj"] as? String {
            var s = entry.stream.state.lastSequence
            while s >= entry.stream.state.firstSequence, s > 0 {
                if let m = try? entry.stream.store.load(s), Subject.matches(filter: Array(last.utf8), subject: m.subject) {
                    message = m
                    break
                }
                s -= 1
            }
        }
        guard let message else { return Self.errorJSON(code: 404, errCode: 10037, description: "no message found", type: type) }
        var fields = [
            "\"subject\":\(JSONString.quoted(String(decoding: message.subject, as: UTF8.self)))",
            "\"seq\":\(message.sequence)",
            "\"data\":\"\(Data(message.payload).base64EncodedString())\"",
            "\"time\":\"\(Self.timestamp(nanoseconds: message.timestamp))\"",
        ]
        if !message.headers.isEmpty { fields.append("\"hdrs\":\"\(Data(message.headers).base64EncodedString())\"") }
        return #"{"type":"io.nats.jetstream.api.v1.\#(type)","message":{\#(fields.joined(separator: ","))}}"#
    }

    private func streamNames(_ body: [String: Any]) -> String {
        var names = streams.keys.sorted()
        if let filter = body["subject"] as? String {
            names = names.filter { name in streams[name]!.stream.config.subjects.contains { Subject.overlaps($0, filter) } }
        }
        let quoted = names.map(JSONString.quoted).joined(separator: ",")
        return #"{"type":"io.nats.jetstream.api.v1.stream_names_response","total":\#(names.count),"offset":0,"limit":1024,"streams":[\#(quoted)]}"#
    }

    private func streamList(_ body: [String: Any]) -> String {
        let infos = streams.keys.sorted().map { infoBody($0, didCreate: nil) }
        return #"{"type":"io.nats.jetstream.api.v1.stream_list_response","total":\#(infos.count),"offset":0,"limit":256,"streams":[\#(infos.joined(separator: ","))]}"#
    }

    private func info(_ name: String, type: String, didCreate: Bool?) -> String {
        var body = infoBody(name, didCreate: didCreate)
        body.removeFirst()
        return #"{"type":"io.nats.jetstream.api.v1.\#(type)",\#(body)"#
    }

    private func infoBody(_ name: String, didCreate: Bool?) -> String {
        let entry = streams[name]!
        let state = entry.stream.state
        let configJSON = (try? JSONSerialization.data(withJSONObject: entry.config, options: [.sortedKeys]))
            .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        var firstTime = "0001-01-01T00:00:00Z", lastTime = "0001-01-01T00:00:00Z"
        if state.messages > 0 {
            if let first = try? entry.stream.store.load(state.firstSequence) { firstTime = Self.timestamp(nanoseconds: first.timestamp) }
            if let last = try? entry.stream.store.load(state.lastSequence) { lastTime = Self.timestamp(nanoseconds: last.timestamp) }
        }
        var out = #"{"config":\#(configJSON),"created":"\#(Self.timestamp(entry.created))","#
            + #""state":{"messages":\#(state.messages),"bytes":\#(state.bytes),"first_seq":\#(state.firstSequence),"#
            + #""first_ts":"\#(firstTime)","last_seq":\#(state.lastSequence),"last_ts":"\#(lastTime)","consumer_count":\#(consumers[name]?.count ?? 0)}"#
        if let didCreate { out += #","did_create":\#(didCreate)"# }
        return out + "}"
    }

    // MARK: - Persistence

    private func openStream(name: String, config: [String: Any], created: Date) throws -> Entry {
        let data = try JSONSerialization.data(withJSONObject: config)
        let streamConfig = try JSONDecoder().decode(StreamConfig.self, from: data)
        let store: any MessageStore = streamConfig.storage == .memory
            ? MemoryStore()
            : try FileStore(directory: streamsDirectory.appendingPathComponent(name).appendingPathComponent("msgs"))
        if let file = store as? FileStore, file.recovery.truncatedBytes > 0 {
            logger.warning("JetStream stream recovered: cut a torn or corrupt tail", metadata: [
                "stream": "\(name)", "block": "\(file.recovery.truncatedBlock ?? "")",
                "offset": "\(file.recovery.truncatedAt ?? 0)", "bytes": "\(file.recovery.truncatedBytes)",
            ])
        }
        let clock = now
        let stream = try DurableStream(config: streamConfig, store: store, now: clock)
        return Entry(stream: stream, config: config, created: created)
    }

    private func persist(name: String, entry: Entry) throws {
        let dir = streamsDirectory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let meta: [String: Any] = ["config": entry.config, "created": entry.created.timeIntervalSince1970]
        let data = try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys])
        // Written whole (write + fsync + rename inside `.atomic`), so a crash leaves the old or the new file.
        try data.write(to: dir.appendingPathComponent("meta.json"), options: .atomic)
    }

    private func loadStreams() throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: streamsDirectory.path)) ?? []
        for name in names.sorted() {
            let metaURL = streamsDirectory.appendingPathComponent(name).appendingPathComponent("meta.json")
            guard let data = try? Data(contentsOf: metaURL),
                  let meta = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let config = meta["config"] as? [String: Any] else { continue }
            let created = Date(timeIntervalSince1970: meta["created"] as? Double ?? 0)
            let entry = try openStream(name: name, config: config, created: created)
            streams[name] = entry
            loadConsumers(name)
            logger.info("JetStream stream restored", metadata: ["stream": "\(name)", "messages": "\(entry.stream.state.messages)",
                                                                 "consumers": "\(consumers[name]?.count ?? 0)"])
        }
        subscribeCaptures()
    }

    /// Keeps one capture subscription per stream subject, after streams were created, changed or deleted
    /// (before `attach`, there is no subject space yet: `attach` subscribes them).
    private func subscribeCaptures() {
        guard let space else { return }
        let wanted = Set(streams.values.flatMap(\.stream.config.subjects))
        for (subject, sub) in captureSubscriptions where !wanted.contains(subject) {
            space.unsubscribe(sub)
            captureSubscriptions[subject] = nil
        }
        for subject in wanted where captureSubscriptions[subject] == nil {
            do {
                captureSubscriptions[subject] = try space.subscribe(subject, captureSubscriber)
            } catch {
                logger.error("JetStream: cannot capture subject", metadata: ["subject": "\(subject)", "error": "\(error)"])
            }
        }
    }

    /// Totals for /jsz.
    public struct Summary: Sendable {
        public var streams = 0
        public var messages: UInt64 = 0
        public var bytes: UInt64 = 0
        public var memory: UInt64 = 0
        public var storage: UInt64 = 0
        public var consumers = 0
        public var apiTotal = 0
        public var apiErrors = 0
    }

    public func summary() -> Summary {
        queue.sync {
            var s = Summary(streams: streams.count, apiTotal: apiTotal, apiErrors: apiErrors)
            for entry in streams.values {
                s.messages += entry.stream.state.messages
                s.bytes += entry.stream.state.bytes
                if entry.stream.config.storage == .memory { s.memory += entry.stream.state.bytes } else { s.storage += entry.stream.state.bytes }
            }
            s.consumers = consumers.values.reduce(0) { $0 + $1.count }
            return s
        }
    }

    func close() {
        queue.sync {
            ticking = false
            for byName in consumers.values { for c in byName.values where c.durable { persistConsumerState(c) } }
            for entry in streams.values { try? entry.stream.store.close() }
        }
    }

    // MARK: - Helpers

    static func fillDefaults(_ config: inout [String: Any]) {
        let defaults: [String: Any] = [
            "retention": "limits", "max_consumers": -1, "max_msgs": -1, "max_bytes": -1, "max_age": 0,
            "max_msgs_per_subject": -1, "max_msg_size": -1, "discard": "old", "storage": "file", "num_replicas": 1,
            "duplicate_window": 120_000_000_000, "allow_direct": false, "mirror_direct": false, "sealed": false,
            "deny_delete": false, "deny_purge": false, "allow_rollup_hdrs": false,
        ]
        for (key, value) in defaults where config[key] == nil || config[key] is NSNull { config[key] = value }
        if (config["duplicate_window"] as? NSNumber)?.int64Value == 0 { config["duplicate_window"] = 120_000_000_000 }
    }

    /// A configuration as sorted-key JSON, so two requests compare equal when their JSON is the same.
    static func canonical(_ config: [String: Any]) -> String {
        (try? JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    static func isValidStreamName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains { " \t\r\n.*>/\\".contains($0) }
    }

    static func errorJSON(code: Int, errCode: Int, description: String, type: String? = nil) -> String {
        let typeField = type.map { #""type":"io.nats.jetstream.api.v1.\#($0)","# } ?? ""
        return #"{\#(typeField)"error":{"code":\#(code),"err_code":\#(errCode),"description":\#(JSONString.quoted(description))}}"#
    }

    static func timestamp(_ date: Date) -> String { timestamp(nanoseconds: Int64(date.timeIntervalSince1970 * 1e9)) }

    /// RFC 3339 in UTC with nanoseconds and `Z` (nats-py's parser needs the `Z`).
    static func timestamp(nanoseconds: Int64) -> String {
        let seconds = nanoseconds / 1_000_000_000
        let nanos = nanoseconds % 1_000_000_000
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, Int(nanos))
    }
}
