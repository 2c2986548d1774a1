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
    let queue = DispatchQueue(label: "brokerd.jetstream")
    let now: @Sendable () -> Int64

    // Touched only on `queue`.
    /// The streams and consumers, and the API's decisions about them.
    let registry: StreamRegistry
    private var streams: [String: StreamEntry] { registry.streams }
    var consumers: [String: [String: ConsumerEntry]] { registry.consumers }
    private var ticking = false
    /// Where JetStream lives in the subject space (set by `attach(to:)`): its API, ack and stream-capture
    /// subscriptions, the interest push consumers wait for, and the deliveries it publishes.
    private var space: SubjectSpace?
    /// The capture subscription of each stream subject, by stream (kept in step with the streams by
    /// `subscribeCaptures`): the trie says which stream takes a message, so capture does not search again.
    private var captureSubscriptions: [String: [String: Subscription]] = [:]
    /// The direct-get subscriptions of each stream with `allow_direct`.
    private var directSubscriptions: [String: [Subscription]] = [:]
    /// PubAcks waiting for the fsync that covers their message (`syncPolicy` batch).
    private var groupCommit = GroupCommit()
    var storageFaults = StorageFaults()
    /// The consumer of the last ack handled: the next ack names it again most of the time (`handleAck`).
    weak var lastAcked: ConsumerEntry?
    /// Per stream: the last sequence known to be on disk (consumers deliver nothing beyond it, so a message
    /// a crash could still take is never handed out, and no consumer state can point past the stream).
    var durableLast: [String: UInt64] = [:]
    /// The mirrors and sources being run, by stream (JetStream+Sources.swift).
    var runningSourcing: [String: StreamSourcing] = [:]
    var subjectSpace: SubjectSpace? { space }
    private var apiTotal = 0
    private var apiErrors = 0


    /// The durability policy (see BrokerOptions.JetStreamSync); set before the first publish.
    var syncPolicy: BrokerOptions.JetStreamSync = .batch
    var syncInterval: Int64 = 120_000_000_000
    /// Server-wide byte limits for memory and file streams (`max_memory_store`, `max_file_store`); nil = none.
    var maxMemory: Int64? {
        get { registry.maxMemory }
        set { registry.maxMemory = newValue }
    }
    var maxStore: Int64? {
        get { registry.maxStore }
        set { registry.maxStore = newValue }
    }
    private var lastIntervalSync: Int64 = 0

    public init(storeDirectory: URL, logger: Logger, now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1e9) }) throws {
        self.storeDirectory = storeDirectory
        self.logger = logger
        self.now = now
        let storage = try FileJetStreamStorage(directory: storeDirectory.appendingPathComponent("jetstream/streams"), logger: logger)
        registry = StreamRegistry(storage: storage, now: now)
        try queue.sync { try loadStreams() }
    }

    /// Plugs JetStream into the subject space: `$JS.API.>` (requests), `$JS.ACK.>` (consumer acks) and every
    /// stream's subjects (capture), then starts the 100 ms tick (redeliveries, pull expiry, consumer state to
    /// disk). Call once, before clients connect.
    func attach(to space: SubjectSpace) throws {
        try queue.sync { () throws in
            self.space = space
            registry.hasInterest = { [unowned self] subject in hasInterest(subject) }
            try space.subscribe("$JS.API.>", JetStreamAPISubscriber(jetStream: self))
            try space.subscribe("$JS.ACK.>", JetStreamAckSubscriber(jetStream: self))
            try space.subscribe("$JS.FC.>", FlowControlSubscriber(jetStream: self))
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
            expireMessages()
            tick()
            tickSources()
            if syncPolicy == .interval, now() - lastIntervalSync >= syncInterval {
                lastIntervalSync = now()
                for entry in streams.values { try? entry.stream.store.sync() }
            } else {
                // Removals (acks under workqueue or interest, deletes, expiry) leave the process within a tick
                // even when no publish follows them: a killed brokerd does not bring acknowledged work back.
                for entry in streams.values { try? entry.stream.store.flushWrites() }
            }
            scheduleTick()
        }
    }

    func streamEntry(_ name: String) -> StreamEntry? { streams[name] }

    /// Messages whose TTL or max_age passed go (with their subject delete markers); markers are acknowledged
    /// to nobody, so the next group commit covers them.
    private func expireMessages() {
        let time = now()
        for (name, entry) in streams {
            let changed: Bool
            do {
                changed = try entry.stream.expire(at: time)
            } catch {
                logger.error("JetStream: expiring messages failed", metadata: ["stream": "\(name)", "error": "\(error)"])
                continue
            }
            guard changed, entry.stream.state.lastSequence > (durableLast[name] ?? 0) else { continue }
            // A delete marker was appended: make it durable before consumers see it.
            do {
                try entry.stream.store.sync()
                durableLast[name] = entry.stream.store.state.lastSequence
                for consumer in (consumers[name] ?? [:]).values { pump(consumer) }
            } catch {
                syncFailed(name, entry, error)
            }
        }
    }

    /// A direct get (`$JS.API.DIRECT.GET.<stream>…`), answered on the queue; `respond` gets the messages.
    func directGet(stream: String, body: [UInt8], lastBySubject: String?,
                   respond: @escaping @Sendable ([(headers: [UInt8], payload: [UInt8])]) -> Void) {
        queue.async { [self] in
            respond(registry.directGet(in: stream, request: body, lastBySubject: lastBySubject))
        }
    }

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

    /// A flow-control answer (`$JS.FC.…`), handled on the queue.
    func flowControlReply(subject: String) {
        queue.async { [self] in flowControlAnswered(subject) }
    }

    // MARK: - Publish path

    /// A publish a stream captured, on its way to the JetStream queue.
    struct Capture {
        let stream: String
        let subject: [UInt8]
        let headers: [UInt8]
        let payload: [UInt8]
        let answer: PublishAnswer?
    }

    /// The captures one event loop made during its current tick, handed to the JetStream queue at once at the
    /// end of it: one hop (and one wake-up of the queue) per read rather than per message. Each batch is touched
    /// only by its own loop.
    final class CaptureBatch: @unchecked Sendable {
        var items: [Capture] = []
    }

    /// One batch per event loop (by the router's index), made before any traffic; without them (a JetStream
    /// made outside a server) every capture hops on its own.
    private var captureBatches: [CaptureBatch] = []

    public func prepareCaptureBatches(loopCount: Int) {
        captureBatches = (0..<loopCount).map { _ in CaptureBatch() }
    }

    /// Stores a message the trie matched to stream `name` and, when `answer` is given, sends the PubAck once
    /// the message is durable. Called on `router`'s loop.
    func capture(into name: String, subject: [UInt8], headers: [UInt8], payload: [UInt8], answer: PublishAnswer?, on router: Router) {
        let capture = Capture(stream: name, subject: subject, headers: headers, payload: payload, answer: answer)
        guard router.index < captureBatches.count else {
            queue.async { [self] in store(capture) }
            return
        }
        assert(router.eventLoop.inEventLoop, "a capture off its router's loop would race on the loop's batch")
        let batch = captureBatches[router.index]
        if batch.items.isEmpty {
            // Runs after this tick's reads: everything they captured goes in one hop, in order.
            router.eventLoop.execute { [self] in
                let items = batch.items
                batch.items = []
                queue.async { [self] in for capture in items { store(capture) } }
            }
        }
        batch.items.append(capture)
    }

    /// A captured publish, on the JetStream queue: checked, stored, and answered after the group commit.
    private func store(_ capture: Capture) {
        let name = capture.stream, headers = capture.headers, payload = capture.payload
        var answer = capture.answer
        // no_ack: clients get no PubAck (the server's own publishers still get their typed answer).
        if case .reply? = answer, streams[name]?.config.noAck == true { answer = nil }
        guard let entry = streams[name] else {
            // The stream went away between the publisher's match and now: say so rather than stay silent.
            answer?.send(.failed(code: 503, errorCode: 10077, description: "no stream captures this subject"))
            return
        }
        let response: PubAck
        if let limit = limit(for: entry.stream.config.storage),
           usage(of: entry.stream.config.storage) + UInt64(capture.subject.count + headers.count + payload.count + 16) > UInt64(limit) {
            // nats-server's answer once the server's store limit is reached: nothing is stored.
            logger.warning("JetStream resource limit reached: publish refused", metadata: [
                "stream": "\(name)", "storage": "\(entry.stream.config.storage.rawValue)", "limit": "\(limit)"])
            answer?.send(.failed(code: 503, errorCode: 10023, description: "insufficient resources"))
            return
        }
        // subject_transform and republish (StreamIngest.swift): one nil check when the stream has neither.
        let subject = entry.ingest?.storedSubject(capture.subject) ?? capture.subject
        let previous = entry.ingest?.republishes == true ? entry.stream.lastSequence(on: subject) : 0
        do {
            switch try entry.stream.publish(subject: subject, headers: headers, payload: payload, parsed: PublishHeaders(headers: headers)) {
            case .stored(let sequence):
                response = .stored(stream: name, sequence: sequence, duplicate: false)
                if entry.ingest?.republishes == true {
                    let time = (try? entry.stream.store.load(sequence))?.timestamp ?? now()
                    republish(entry, subject: subject, sequence: sequence, timestamp: time, previous: previous, headers: headers, payload: payload)
                }
            case .duplicate(let sequence):
                response = .stored(stream: name, sequence: sequence, duplicate: true)
            }
        } catch let error as DurableStream.PublishError {
            answer?.send(.failed(code: error.codes.code, errorCode: error.codes.errorCode, description: error.description, stream: name))
            return
        } catch {
            answer?.send(.failed(code: 503, errorCode: 10077, description: "\(error)"))
            return
        }
        switch syncPolicy {
        case .always:
            do {
                try entry.stream.store.sync()
                durableLast[name] = entry.stream.store.state.lastSequence
            } catch {
                syncFailed(name, entry, error)
                answer?.send(.failed(code: 503, errorCode: 10077, description: "storage failure: \(error)"))
                return
            }
            answer?.send(response)
            for consumer in (consumers[name] ?? [:]).values { pump(consumer) }
        case .batch:
            if groupCommit.appended(to: name, ack: response, answer: answer) { scheduleSync() }
        case .interval:
            // Acked before the disk has it (as nats-server's default), but at least in the kernel's hands,
            // so a crash of brokerd alone loses nothing acknowledged.
            do {
                try entry.stream.store.flushWrites()
            } catch {
                answer?.send(.failed(code: 503, errorCode: 10077, description: "storage failure: \(error)"))
                return
            }
            // Interval: acknowledged before the disk has it (as nats-server's default); consumers may see it.
            durableLast[name] = entry.stream.store.state.lastSequence
            answer?.send(response)
            for consumer in (consumers[name] ?? [:]).values { pump(consumer) }
            let time = now()
            if time - lastIntervalSync >= syncInterval {
                lastIntervalSync = time
                try? entry.stream.store.sync()
            }
        }
    }

    /// A sync that failed (a full disk, a failing fsync): nothing it covered was acknowledged, so under the
    /// batch and always policies the stream takes it all back (the store cuts its block to the last good sync),
    /// and brokerd goes on: later publishes are tried again and succeed once there is room. Under the interval
    /// policy the messages were acknowledged already: they stay and are written again at the next sync.
    func syncFailed(_ name: String, _ entry: StreamEntry, _ error: any Error) {
        storageFaults.syncFailures += 1
        storageFaults.last = .init(stream: name, error: "\(error)", at: JetStream.timestamp(nanoseconds: now()))
        guard syncPolicy != .interval else {
            logger.error("JetStream sync failed: kept for the next sync", metadata: ["stream": "\(name)", "error": "\(error)"])
            return
        }
        let (taken, restored) = entry.stream.rollBackUnsynced()
        storageFaults.messagesTakenBack += taken
        // Publishes waiting for the group commit were among what went: they must not be answered as stored.
        groupCommit.fail(stream: name, reason: "\(error)", lastKept: entry.stream.store.state.lastSequence)
        logger.error("JetStream sync failed: the messages it covered were not acknowledged and are taken back", metadata: [
            "stream": "\(name)", "error": "\(error)", "messages": "\(taken)", "displaced_restored": "\(restored)"])
        if taken > 0, let sourcing = runningSourcing[name] { restartSourcing(sourcing, after: entry) }
    }

    /// Group commit: one fsync per stream for everything appended before it, then all those acks.
    private func scheduleSync() {
        queue.async { [self] in
            var failed: [String: String] = [:]
            for (name, entry) in streams {
                do {
                    try entry.stream.store.sync()
                    durableLast[name] = entry.stream.store.state.lastSequence
                } catch {
                    failed[name] = "\(error)"
                    syncFailed(name, entry, error)
                }
            }
            let batch = groupCommit.synced(failed: failed)
            PublishAnswer.send(batch.answers)
            confirmAcks(batch.confirmations)
            // Consumers see a message once it is durable.
            for name in batch.streams { for consumer in (consumers[name] ?? [:]).values { pump(consumer) } }
        }
    }

    /// Confirmed acks (an ack with a reply: ack_sync, AckSync): each consumer's state is written and fsynced
    /// once for all its acks in the batch, then they are answered; an ack whose state could not be written is
    /// not answered (the client's ack_sync fails: nothing is confirmed that is not on disk).
    private func confirmAcks(_ confirmations: [(stream: String, consumer: String, reply: String)]) {
        guard !confirmations.isEmpty else { return }
        var saved: [String: Bool] = [:]
        for (stream, name, reply) in confirmations {
            let key = stream + "/" + name
            if saved[key] == nil {
                guard let consumer = consumers[stream]?[name] else {
                    saved[key] = false
                    continue
                }
                // A state the tick wrote without an fsync is not yet a promise: it is written again, fsynced.
                let durable = !consumer.dirty && !registry.storage.hasUnsyncedState(stream: stream, name: name)
                saved[key] = durable || persistConsumerState(consumer)
            }
            if saved[key] == true { publish(reply, nil, [], []) }
        }
    }

    /// An ack with a reply waits for the next group commit (scheduled now when none is).
    func awaitCommit(stream: String, consumer: String, reply: String) {
        if groupCommit.confirming(stream: stream, consumer: consumer, reply: reply) { scheduleSync() }
    }

    // MARK: - API

    /// Handles a request to `$JS.API.<...>`; the response goes to `respond`.
    func handleAPI(subject: String, payload: [UInt8], reply: String?, respond: @escaping @Sendable (ByteBuffer) -> Void) {
        queue.async { [self] in
            apiTotal += 1
            guard let (response, isError) = api(subject: subject, payload: payload, reply: reply) else { return }
            if isError { apiErrors += 1 }
            respond(ByteBuffer(bytes: response))
        }
    }

    /// The reply to an API request (nil: none now, a pull request), after acting on what it changed.
    private func api(subject: String, payload: [UInt8], reply: String?) -> (reply: [UInt8], isError: Bool)? {
        let responder = JetStreamAPIResponder(registry: registry)
        switch responder.respond(subject: subject, payload: payload, stats: .init(total: apiTotal, errors: apiErrors)) {
        case .pull(let consumer, let request):
            pullNext(consumer, request, reply: reply)
            return nil
        case .reply(let response, let isError, let change):
            switch change {
            case .none:
                break
            case .streamCreated(let name):
                durableLast[name] = streams[name]?.stream.store.state.lastSequence
                subscribeCaptures()
                logger.info("JetStream stream created", metadata: ["stream": "\(name)", "subjects": "\(streams[name]?.config.subjects ?? [])"])
            case .streamUpdated, .streamDeleted:
                subscribeCaptures()
            case .consumerReady(let consumer):
                pump(consumer)
            }
            return (response, isError)
        }
    }

    /// Bytes held by every stream of one storage type.
    private func usage(of storage: StreamConfig.Storage) -> UInt64 { registry.usage(of: storage) }

    private func limit(for storage: StreamConfig.Storage) -> Int64? { registry.limit(for: storage) }

    // MARK: - Persistence

    private func loadStreams() throws {
        for name in try registry.restore() {
            logger.info("JetStream stream restored", metadata: ["stream": "\(name)", "messages": "\(streams[name]?.stream.state.messages ?? 0)",
                                                                 "consumers": "\(consumers[name]?.count ?? 0)"])
        }
        subscribeCaptures()
    }

    /// Keeps one capture subscription per stream subject, after streams were created, changed or deleted
    /// (before `attach`, there is no subject space yet: `attach` subscribes them).
    private func subscribeCaptures() {
        guard let space else { return }
        for (name, subscriptions) in captureSubscriptions {
            let wanted = Set(streams[name]?.stream.config.subjects ?? [])
            for (subject, sub) in subscriptions where !wanted.contains(subject) {
                space.unsubscribe(sub)
                captureSubscriptions[name]?[subject] = nil
            }
            if captureSubscriptions[name]?.isEmpty == true { captureSubscriptions[name] = nil }
        }
        for (name, subs) in directSubscriptions where streams[name]?.config.allowDirect != true {
            for sub in subs { space.unsubscribe(sub) }
            directSubscriptions[name] = nil
        }
        for (name, entry) in streams where entry.config.allowDirect && directSubscriptions[name] == nil {
            let subscriber = DirectGetSubscriber(jetStream: self, stream: name)
            do {
                directSubscriptions[name] = [try space.subscribe("$JS.API.DIRECT.GET.\(name)", subscriber),
                                             try space.subscribe("$JS.API.DIRECT.GET.\(name).>", subscriber)]
            } catch {
                logger.error("JetStream: cannot serve direct gets", metadata: ["stream": "\(name)", "error": "\(error)"])
            }
        }
        for (name, entry) in streams {
            // One subscriber per stream: a message matching several of its subjects is captured once.
            let subscriber = captureSubscriptions[name]?.values.first.flatMap(\.service) ?? StreamCaptureSubscriber(jetStream: self, stream: name)
            for subject in entry.stream.config.subjects where captureSubscriptions[name]?[subject] == nil {
                do {
                    captureSubscriptions[name, default: [:]][subject] = try space.subscribe(subject, subscriber)
                } catch {
                    logger.error("JetStream: cannot capture subject", metadata: ["stream": "\(name)", "subject": "\(subject)", "error": "\(error)"])
                }
            }
        }
        reconcileSources()
    }

    /// Storage faults since start-up, for /jsz: failed syncs (the messages they took back) and the damage the
    /// store found at start-up.
    public struct StorageFaults: Sendable {
        public struct Last: Sendable {
            public var stream: String
            public var error: String
            public var at: String
        }
        public var syncFailures = 0
        public var messagesTakenBack = 0
        public var last: Last?
        public var damage: [StorageDamage] = []
    }

    /// Totals for /jsz.
    public struct Summary: Sendable {
        public var faults = StorageFaults()
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
            s.faults = storageFaults
            s.faults.damage = registry.storage.damageFound
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
            for byName in consumers.values {
                for c in byName.values where c.durable && (c.dirty || registry.storage.hasUnsyncedState(stream: c.stream, name: c.name)) {
                    persistConsumerState(c)
                }
            }
            for entry in streams.values { try? entry.stream.store.close() }
        }
    }

    // MARK: - Helpers

    static func timestamp(_ date: Date) -> String { timestamp(nanoseconds: Int64(date.timeIntervalSince1970 * 1e9)) }

    /// RFC 3339 in UTC with nanoseconds and `Z` (nats-py's parser needs the `Z`).
    static func timestamp(nanoseconds: Int64) -> String {
        let seconds = nanoseconds / 1_000_000_000
        let nanos = nanoseconds % 1_000_000_000
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        // Written digit by digit: String(format:) went through Foundation's formatter (a third of /varz's time).
        var out = [UInt8](repeating: UInt8(ascii: "0"), count: 30)
        func put(_ value: Int, _ width: Int, at end: Int) {
            var v = value
            for i in stride(from: end - 1, through: end - width, by: -1) {
                out[i] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            }
        }
        put(Int(parts.tm_year) + 1900, 4, at: 4)
        out[4] = UInt8(ascii: "-")
        put(Int(parts.tm_mon) + 1, 2, at: 7)
        out[7] = UInt8(ascii: "-")
        put(Int(parts.tm_mday), 2, at: 10)
        out[10] = UInt8(ascii: "T")
        put(Int(parts.tm_hour), 2, at: 13)
        out[13] = UInt8(ascii: ":")
        put(Int(parts.tm_min), 2, at: 16)
        out[16] = UInt8(ascii: ":")
        put(Int(parts.tm_sec), 2, at: 19)
        out[19] = UInt8(ascii: ".")
        put(Int(nanos), 9, at: 29)
        out[29] = UInt8(ascii: "Z")
        return String(decoding: out, as: UTF8.self)
    }
}
