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
    /// The streams and consumers, and the API's decisions about them.
    let registry: StreamRegistry
    private var streams: [String: StreamEntry] { registry.streams }
    var consumers: [String: [String: ConsumerEntry]] { registry.consumers }
    private var ticking = false
    /// Set by the server: publish a message routed by `route`, shown in MSG with `shown` (the stored
    /// message's original subject) or `route`.
    /// Set by the server: whether anyone is subscribed to a subject (push consumers wait for interest).
    var interestHook: (@Sendable (String) -> Bool)?
    var deliverHook: (@Sendable (_ route: String, _ reply: String?, _ headers: [UInt8], _ payload: [UInt8], _ shown: [UInt8]?) -> Void)?
    private var pendingAcks: [(ack: ByteBuffer, sink: AckSink, stream: String)] = []
    /// Per stream: the last sequence known to be on disk (consumers deliver nothing beyond it, so a message
    /// a crash could still take is never handed out, and no consumer state can point past the stream).
    var durableLast: [String: UInt64] = [:]
    private var syncScheduled = false
    private var syncedStreams: Set<String> = []
    private var apiTotal = 0
    private var apiErrors = 0

    /// What the publish path checks: stream subject filters (as bytes), replaced whole when streams change.
    private let filters = NIOLockedValueBox<[[UInt8]]>([])
    /// Bumped when `filters` changes, so a connection can keep its own copy and skip the lock.
    let filtersGeneration = Atomic<UInt64>(1)

    /// Where a PubAck goes: `deliver` runs on `eventLoop` (the publisher's), and `flush` once after a batch
    /// of them, so a group commit costs one write per publisher, not one per message. Without an event loop
    /// `deliver` is called directly.
    struct AckSink: Sendable {
        var eventLoop: (any EventLoop)?
        var deliver: @Sendable (ByteBuffer) -> Void
        var flush: (@Sendable () -> Void)?

        func send(_ ack: ByteBuffer) {
            guard let eventLoop else { return deliver(ack) }
            eventLoop.execute {
                deliver(ack)
                flush?()
            }
        }
    }

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

    /// Starts the 100 ms tick (redeliveries, pull expiry, consumer state to disk). Call once delivery works.
    func startTicking() {
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

    func streamEntry(_ name: String) -> StreamEntry? { streams[name] }

    func publish(_ subject: String, _ reply: String?, _ headers: [UInt8], _ payload: [UInt8], originalSubject: [UInt8]? = nil) {
        deliverHook?(subject, reply, headers, payload, originalSubject)
    }

    /// An ack from a client (`$JS.ACK.…`), handled on the queue.
    func acknowledge(subject: String, payload: [UInt8], reply: String?) {
        // Acks arrive one message each: gather them and handle them in one task on the queue, then pump
        // each consumer they touched once (not once per ack).
        guard ackInbox.append((subject, payload, reply)) else { return }
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

    // MARK: - Publish path

    /// The current subject filters (callers cache them per `filtersGeneration`).
    func currentFilters() -> [[UInt8]] { filters.withLockedValue { $0 } }

    /// Whether `subject` is captured by one of `filters` (a connection's cached copy).
    static func captures(_ subject: ByteBuffer, filters: [[UInt8]]) -> Bool {
        guard !filters.isEmpty else { return false }
        return subject.withUnsafeReadableBytes { raw in
            filters.contains { filter in filter.withUnsafeBytes { matches(filter: $0, subject: raw) } }
        }
    }

    /// Stores a published message in the stream that captures its subject and, when `deliverAck` is given,
    /// sends the PubAck once the message is durable.
    func capture(subject: [UInt8], headers: [UInt8], payload: [UInt8], deliverAck: AckSink?) {
        queue.async { [self] in
            guard let (name, entry) = streams.first(where: { _, e in
                e.subjectFilters.contains { Self.subjectMatches(filter: $0, subject: subject) }
            }) else {
                // The stream went away between the publisher's check and now: say so rather than stay silent.
                deliverAck?.send(ByteBuffer(string: Self.errorJSON(code: 503, errCode: 10077, description: "no stream captures this subject")))
                return
            }
            let response: String
            if let limit = limit(for: entry.stream.config.storage),
               usage(of: entry.stream.config.storage) + UInt64(subject.count + headers.count + payload.count + 16) > UInt64(limit) {
                // nats-server's answer once the server's store limit is reached: nothing is stored.
                logger.warning("JetStream resource limit reached: publish refused", metadata: [
                    "stream": "\(name)", "storage": "\(entry.stream.config.storage.rawValue)", "limit": "\(limit)"])
                deliverAck?.send(ByteBuffer(string: Self.errorJSON(code: 503, errCode: 10023, description: "insufficient resources")))
                return
            }
            do {
                let id = DurableStream.messageID(in: headers)
                switch try entry.stream.publish(subject: subject, headers: headers, payload: payload, messageID: id) {
                case .stored(let sequence):
                    response = #"{"stream":\#(ServerInfo.quote(name)),"seq":\#(sequence)}"#
                case .duplicate(let sequence):
                    response = #"{"stream":\#(ServerInfo.quote(name)),"seq":\#(sequence),"duplicate":true}"#
                }
            } catch {
                let description = (error as? DurableStream.PublishError)?.description ?? "\(error)"
                response = Self.errorJSON(code: 503, errCode: 10077, description: description)
                deliverAck?.send(ByteBuffer(string: response))
                return
            }
            switch syncPolicy {
            case .always:
                do {
                    try entry.stream.store.sync()
                    durableLast[name] = entry.stream.store.state.lastSequence
                } catch {
                    deliverAck?.send(ByteBuffer(string: Self.errorJSON(code: 503, errCode: 10077, description: "storage failure: \(error)")))
                    return
                }
                deliverAck?.send(ByteBuffer(string: response))
                for consumer in (consumers[name] ?? [:]).values { pump(consumer) }
            case .batch:
                if let deliverAck { pendingAcks.append((ByteBuffer(string: response), deliverAck, name)) }
                syncedStreams.insert(name)
                scheduleSync()
            case .interval:
                // Acked before the disk has it (as nats-server's default), but at least in the kernel's hands,
                // so a crash of brokerd alone loses nothing acknowledged.
                do {
                    try entry.stream.store.flushWrites()
                } catch {
                    deliverAck?.send(ByteBuffer(string: Self.errorJSON(code: 503, errCode: 10077, description: "storage failure: \(error)")))
                    return
                }
                // Interval: acknowledged before the disk has it (as nats-server's default); consumers may see it.
                durableLast[name] = entry.stream.store.state.lastSequence
                deliverAck?.send(ByteBuffer(string: response))
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
            let acks = pendingAcks.map { ack, sink, stream in
                // Never a success PubAck for what did not reach the disk.
                (failed[stream].map { ByteBuffer(string: Self.errorJSON(code: 503, errCode: 10077, description: "storage failure: \($0)")) } ?? ack, sink)
            }
            pendingAcks.removeAll(keepingCapacity: true)
            // One task per publisher event loop for the whole batch, then one flush there.
            var byLoop: [ObjectIdentifier: [(ByteBuffer, AckSink)]] = [:]
            for (ack, sink) in acks {
                if let loop = sink.eventLoop {
                    byLoop[ObjectIdentifier(loop as AnyObject), default: []].append((ack, sink))
                } else {
                    sink.deliver(ack)
                }
            }
            for group in byLoop.values {
                group[0].1.eventLoop!.execute {
                    for (ack, sink) in group { sink.deliver(ack) }
                    var flushed: Set<ObjectIdentifier> = []
                    for (_, sink) in group {
                        // Sinks of one loop share its flush; call it once.
                        if let flush = sink.flush, flushed.insert(ObjectIdentifier(sink.eventLoop! as AnyObject)).inserted { flush() }
                    }
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
                publishFilters()
                logger.info("JetStream stream created", metadata: ["stream": "\(name)", "subjects": "\(streams[name]?.config.subjects ?? [])"])
            case .streamUpdated, .streamDeleted:
                publishFilters()
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
        publishFilters()
    }

    private func publishFilters() {
        let all = streams.values.flatMap(\.subjectFilters)
        filters.withLockedValue { $0 = all }
        filtersGeneration.add(1, ordering: .releasing)
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

    /// Literal `subject` against a filter with `*` and `>`.
    static func subjectMatches(filter: [UInt8], subject: [UInt8]) -> Bool {
        filter.withUnsafeBytes { f in subject.withUnsafeBytes { s in matches(filter: f, subject: s) } }
    }

    /// Token by token over the raw bytes: no splitting, no allocation (this runs for every publish).
    static func matches(filter f: UnsafeRawBufferPointer, subject s: UnsafeRawBufferPointer) -> Bool {
        let dot = UInt8(ascii: ".")
        var fi = 0, si = 0
        while true {
            var fe = fi
            while fe < f.count && f[fe] != dot { fe += 1 }
            var se = si
            while se < s.count && s[se] != dot { se += 1 }
            let length = fe - fi
            // Reaching here, the subject has a token at this position: ">" takes it and the rest.
            if length == 1 && f[fi] == UInt8(ascii: ">") { return true }
            if !(length == 1 && f[fi] == UInt8(ascii: "*")) {
                guard length == se - si else { return false }
                for k in 0..<length where f[fi + k] != s[si + k] { return false }
            }
            let lastInFilter = fe >= f.count, lastInSubject = se >= s.count
            if lastInFilter || lastInSubject { return lastInFilter && lastInSubject }
            fi = fe + 1
            si = se + 1
        }
    }

    static func errorJSON(code: Int, errCode: Int, description: String, type: String? = nil) -> String {
        let typeField = type.map { #""type":"io.nats.jetstream.api.v1.\#($0)","# } ?? ""
        return #"{\#(typeField)"error":{"code":\#(code),"err_code":\#(errCode),"description":\#(ServerInfo.quote(description))}}"#
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
