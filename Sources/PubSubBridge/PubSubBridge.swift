import ClientLib
import Foundation
import Logging
import NIOCore
import Synchronization

/// Sends one publish request to Pub/Sub: the message ids in request order, or why it failed.
public protocol PubSubTransport: Sendable {
    func publish(_ messages: [PubSubMessage]) async -> Result<[String], PublishFailure>
}

/// The Pub/Sub bridge: reads a durable consumer on the stream that captures its subjects, publishes to
/// the topic in batches, and acknowledges each message to brokerd only once Pub/Sub has returned a message
/// id for it. Outages of Pub/Sub, the network, brokerd or the bridge delay messages; none is lost. A message
/// Pub/Sub will never take goes to `BRIDGE.DLQ.<topic>` (kept by the BRIDGE_DLQ stream) with the reason.
///
/// It speaks to brokerd through ClientLib, so the same code runs inside brokerd (connected over loopback)
/// and as `brokerd bridge -c file`.
public final class PubSubBridge: Sendable {
    public let config: BridgeConfig
    public let stats: BridgeStats
    let natsOptions: NATSOptions
    let transport: any PubSubTransport
    let logger: Logger
    let policy: RetryPolicy
    /// Ack wait of the durable consumer; held messages get +WPI well before it runs out.
    static let ackWait: Int64 = 60_000_000_000
    static let progressEvery: Duration = .seconds(20)
    static let maxAckPending = 20_000
    static let dlqStream = "BRIDGE_DLQ"

    public init(config: BridgeConfig, nats: NATSOptions, transport: any PubSubTransport, logger: Logger,
                policy: RetryPolicy = RetryPolicy()) {
        self.config = config
        self.stats = BridgeStats(project: config.project, topic: config.topic)
        self.natsOptions = nats
        self.transport = transport
        var logger = logger
        logger[metadataKey: "bridge"] = "\(config.project)/\(config.topic)"
        self.logger = logger
        self.policy = policy
    }

    /// Runs until the task is cancelled.
    public func run() async {
        var options = natsOptions
        options.name = options.name ?? "brokerd-bridge-\(config.topic)"
        options.maxReconnectAttempts = -1
        var client: NATSClient?
        var wait = 0.2
        while client == nil && !Task.isCancelled {
            do {
                client = try await NATSClient.connect(options)
            } catch {
                stats.failed("cannot connect to brokerd: \(error)")
                logger.warning("Bridge cannot connect to brokerd yet", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
                wait = min(wait * 2, 5)
            }
        }
        guard let client else { return }
        defer { Task { await client.close() } }
        var stream: String?
        wait = 0.2
        while stream == nil && !Task.isCancelled {
            do {
                stream = try await setUp(client)
            } catch {
                stats.failed("setup: \(error)")
                logger.error("Bridge setup failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
                wait = min(wait * 2, 10)
            }
        }
        guard var stream else { return }
        while !Task.isCancelled {
            stats.setReady(true)
            logger.info("Bridge running", metadata: ["stream": "\(stream)", "consumer": "\(config.durableName)",
                                                     "subjects": "\(config.subjects)"])
            let current = stream
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.pump(client, stream: current) }
                group.addTask { await self.watchLag(client, stream: current) }
                await group.next()
                group.cancelAll()
            }
            guard !Task.isCancelled else { return }
            // The pump stopped: its consumer is gone (or it could not subscribe). Set up again.
            stats.setReady(false)
            stats.failed("consumer \(config.durableName) is gone; setting up again")
            logger.warning("Bridge consumer gone; setting up again")
            var next: String?
            var wait = 0.2
            while next == nil && !Task.isCancelled {
                do {
                    next = try await setUp(client)
                } catch {
                    stats.failed("setup: \(error)")
                    try? await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
                    wait = min(wait * 2, 10)
                }
            }
            guard let next else { return }
            stream = next
        }
    }

    // MARK: - Setup

    struct SetupError: Error, CustomStringConvertible {
        var description: String
    }

    private func api(_ client: NATSClient, _ subject: String, _ body: [String: Any]) async throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: body)
        let reply: NATSMessage
        do {
            reply = try await client.request("$JS.API." + subject, payload: ByteBuffer(bytes: data), timeout: .seconds(5))
        } catch NATSError.noResponders {
            throw SetupError(description: "JetStream is not enabled on brokerd (start it with -js or a jetstream block)")
        }
        guard let object = try JSONSerialization.jsonObject(with: Data(reply.payload.readableBytesView)) as? [String: Any] else {
            throw SetupError(description: "bad JetStream response to \(subject)")
        }
        return object
    }

    private static func errorCode(_ response: [String: Any]) -> (Int, String)? {
        guard let error = response["error"] as? [String: Any] else { return nil }
        return ((error["err_code"] as? NSNumber)?.intValue ?? 0, error["description"] as? String ?? "error")
    }

    /// The stream to read (found or created), with the durable consumer and the dead-letter stream in place.
    func setUp(_ client: NATSClient) async throws -> String {
        var streamName = config.stream
        if streamName == nil {
            let names = try await api(client, "STREAM.NAMES", ["subject": config.subjects[0]])
            streamName = (names["streams"] as? [String])?.first
        }
        let name = streamName ?? config.defaultStreamName
        let info = try await api(client, "STREAM.INFO.\(name)", [:])
        var streamSubjects: [String] = []
        if let (code, _) = Self.errorCode(info), code == 10059 {
            let created = try await api(client, "STREAM.CREATE.\(name)", ["name": name, "subjects": config.subjects, "storage": "file"])
            if let (_, description) = Self.errorCode(created) {
                throw SetupError(description: "cannot create stream \(name) for \(config.subjects): \(description)")
            }
            logger.info("Bridge created its stream", metadata: ["stream": "\(name)", "subjects": "\(config.subjects)"])
            streamSubjects = config.subjects
        } else if let (_, description) = Self.errorCode(info) {
            throw SetupError(description: "stream \(name): \(description)")
        } else {
            streamSubjects = ((info["config"] as? [String: Any])?["subjects"] as? [String]) ?? []
            if Set(streamSubjects) != Set(config.subjects) && config.subjects.count > 1 {
                // One consumer filter can select one subject set only: several subjects need a stream of
                // exactly those subjects (else some would be missed, or others bridged).
                throw SetupError(description: "stream \(name) captures \(streamSubjects), the bridge wants \(config.subjects): give the bridge a stream of exactly these subjects (gcp_pubsub.stream) or one subject")
            }
        }
        var consumer: [String: Any] = [
            "durable_name": config.durableName, "ack_policy": "explicit", "deliver_policy": "all",
            "ack_wait": Self.ackWait, "max_ack_pending": Self.maxAckPending, "max_deliver": -1,
        ]
        if streamSubjects != config.subjects, config.subjects.count == 1 { consumer["filter_subject"] = config.subjects[0] }
        let created = try await api(client, "CONSUMER.DURABLE.CREATE.\(name).\(config.durableName)",
                                    ["stream_name": name, "config": consumer])
        if let (code, description) = Self.errorCode(created) {
            // An existing durable with another configuration (an older version, or set up by hand): use it.
            guard code == 10148 || code == 10013 else {
                throw SetupError(description: "consumer \(config.durableName) on \(name): \(description)")
            }
            logger.warning("Bridge uses the existing consumer as it is", metadata: ["consumer": "\(config.durableName)", "note": "\(description)"])
        }
        // Explicit acks, one per message: under ack policy all an ack would also cover deliveries the bridge
        // never received (lost with a connection, or held by a previous run), and lose them.
        let consumerInfo = try await api(client, "CONSUMER.INFO.\(name).\(config.durableName)", [:])
        if let policy = (consumerInfo["config"] as? [String: Any])?["ack_policy"] as? String, policy != "explicit" {
            throw SetupError(description: "consumer \(config.durableName) on \(name) has ack policy \(policy); the bridge needs explicit acks (delete the consumer or set another `durable`)")
        }
        let dlq = try await api(client, "STREAM.INFO.\(Self.dlqStream)", [:])
        if let (code, _) = Self.errorCode(dlq), code == 10059 {
            let made = try await api(client, "STREAM.CREATE.\(Self.dlqStream)", ["name": Self.dlqStream, "subjects": ["BRIDGE.DLQ.>"], "storage": "file"])
            if let (code, description) = Self.errorCode(made), code != 10058 {
                throw SetupError(description: "cannot create \(Self.dlqStream): \(description)")
            }
        }
        return name
    }

    // MARK: - The flow

    /// One message from the consumer, as long as the bridge holds it.
    struct Held: Sendable {
        var message: PubSubMessage
        var ackSubject: String
        var streamSequence: UInt64
        var original: NATSMessage
        /// `message.encodedSize`, counted once.
        var size: Int

        init(message: PubSubMessage, ackSubject: String, streamSequence: UInt64, original: NATSMessage) {
            self.message = message
            self.ackSubject = ackSubject
            self.streamSequence = streamSequence
            self.original = original
            self.size = message.encodedSize
        }
    }

    /// Messages from the pull subscription, waiting to be batched.
    final class Inbox: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [Held] = []
        private var firstArrival: ContinuousClock.Instant?
        /// Stream sequences the bridge holds: a redelivery of one of them is ignored.
        private var held: Set<UInt64> = []
        private var done = true
        private var outstanding = 0
        /// Encoded bytes of `items`.
        private var bytes = 0
        private var missing = false
        func markConsumerMissing() { lock.withLock { missing = true } }
        var consumerMissing: Bool { lock.withLock { missing } }
        private var requestStarted = ContinuousClock.now
        /// The pull request ended (a status came), or it is long past its expiry: a request lost with a
        /// connection (brokerd restarted) must not stop the flow.
        var requestDone: Bool {
            lock.withLock { done || requestStarted.duration(to: .now) > .seconds(3) }
        }

        @discardableResult
        func add(_ item: Held) -> Bool {
            lock.lock()
            // Every delivery counts against the pull request's batch: when it is full the request is over
            // (the server sends no status then).
            outstanding -= 1
            if outstanding <= 0 { done = true }
            guard held.insert(item.streamSequence).inserted else { lock.unlock(); return false }
            if items.isEmpty { firstArrival = .now }
            items.append(item)
            bytes += item.size
            lock.unlock()
            return true
        }

        func endOfRequest() {
            lock.withLock { done = true }
        }

        func startRequest(batch: Int) {
            lock.withLock {
                done = false
                outstanding = batch
                requestStarted = .now
            }
        }

        func release(_ sequences: [UInt64]) {
            lock.withLock { for s in sequences { held.remove(s) } }
        }

        var heldCount: Int { lock.withLock { held.count } }

        /// Waits a little for messages (polling keeps this simple; 1 ms steps cost nothing measurable).
        func wait(timeout: Duration) async {
            try? await Task.sleep(for: timeout)
        }

        /// Takes up to `max` messages once `count` are there or the oldest has waited `delay`.
        func take(max: Int, bytes: Int, delay: Duration) -> [Held]? {
            lock.lock()
            defer { lock.unlock() }
            guard !items.isEmpty, let first = firstArrival else { return nil }
            guard items.count >= max || self.bytes >= bytes || first.duration(to: .now) >= delay else { return nil }
            var count = 0
            var total = 0
            while count < items.count && count < max {
                let next = items[count].size
                if count > 0 && total + next > bytes { break }
                count += 1
                total += next
            }
            let taken = Array(items.prefix(count))
            items.removeFirst(count)
            self.bytes -= total
            firstArrival = items.isEmpty ? nil : .now
            return taken
        }
    }

    private func pump(_ client: NATSClient, stream: String) async {
        let inbox = Inbox()
        let inboxSubject = "_BRIDGE.\(NATSInboxToken.make())"
        let subscription: NATSSubscription
        do {
            subscription = try await client.subscribe(inboxSubject) { [self] message in
                if let status = message.status {
                    // 408 request expired / 409 limits: the pull request is over. 404 to a request that is not
                    // no_wait means the consumer is gone (deleted, or a new store): set up again.
                    if status == 404 { inbox.markConsumerMissing() }
                    if status >= 400 { inbox.endOfRequest() }
                    return
                }
                guard let ack = message.reply, let sequence = Self.streamSequence(ack) else { return }
                let headers = message.headers?.fields.map { ($0.name, $0.value) } ?? []
                let m = PubSubMessage.make(subject: message.subject, headers: headers, payload: message.bytes,
                                           orderingKey: config.orderingKey, staticAttributes: config.attributes)
                inbox.add(Held(message: m, ackSubject: ack, streamSequence: sequence, original: message))
            }
        } catch {
            logger.error("Bridge cannot subscribe; retrying", metadata: ["error": "\(error)"])
            try? await Task.sleep(for: .seconds(1))
            return
        }
        defer { Task { try? await subscription.unsubscribe() } }
        let slots = AsyncSemaphore(config.maxInFlight)
        let chains = KeyChains()
        let running = TaskSet()
        let batchSize = min(config.batchMessages, PubSubLimits.maxRequestMessages)
        let pullBatch = min(batchSize * config.maxInFlight * 2, Self.maxAckPending)
        while !Task.isCancelled {
            if inbox.requestDone && inbox.heldCount < pullBatch {
                // Ask for more: up to `pullBatch`, waiting at most 1 s (then 408 and a new request).
                let want = pullBatch - inbox.heldCount
                inbox.startRequest(batch: want)
                let body = #"{"batch":\#(want),"expires":1000000000}"#
                do {
                    try await client.publish("$JS.API.CONSUMER.MSG.NEXT.\(stream).\(config.durableName)",
                                             payload: ByteBuffer(string: body), reply: inboxSubject)
                } catch {
                    inbox.endOfRequest()
                    try? await Task.sleep(for: .milliseconds(200))
                    continue
                }
            }
            guard let batch = inbox.take(max: batchSize, bytes: config.batchBytes, delay: config.batchDelay) else {
                await inbox.wait(timeout: .milliseconds(1))
                continue
            }
            // Messages over Pub/Sub's limits never go out: straight to the dead-letter subject.
            var sendable: [Held] = []
            for item in batch {
                if let reason = item.message.limitViolation {
                    await deadLetter(item, reason: reason, client: client)
                    inbox.release([item.streamSequence])
                } else {
                    sendable.append(item)
                }
            }
            // One request per ordering key (all messages of a request share its key).
            var groups: [(String?, [Held])] = []
            for item in sendable {
                if let i = groups.firstIndex(where: { $0.0 == item.message.orderingKey }) {
                    groups[i].1.append(item)
                } else {
                    groups.append((item.message.orderingKey, [item]))
                }
            }
            for (key, items) in groups {
                guard await slots.acquire() else { break }
                let previous = key.map { chains.last(for: $0) } ?? nil
                let token = chains.token()
                let task = Task { [self] in
                    // With an ordering key, one batch per key in flight: wait for the one before.
                    await previous?.value
                    await deliver(items, client: client)
                    inbox.release(items.map(\.streamSequence))
                    chains.finish(token)
                    await slots.release()
                }
                running.add(task)
                if let key { chains.set(task, for: key, token: token) }
            }
            if inbox.consumerMissing { break }
        }
        // Stopping (or the consumer went away): what is still held is not acked and comes again later.
        running.cancelAll()
        await running.waitAll()
    }

    /// Publishes `items` until Pub/Sub takes them (then acks each to brokerd) or refuses them for good
    /// (then each goes to the dead-letter subject).
    func deliver(_ items: [Held], client: NATSClient) async {
        var attempt = 0
        var lastProgress = ContinuousClock.now
        while !Task.isCancelled {
            let result = await transport.publish(items.map(\.message))
            switch result {
            case .success(let ids) where ids.count == items.count:
                await confirm(items, client: client)
                stats.bridged.add(UInt64(items.count), ordering: .relaxed)
                stats.succeeded()
                return
            case .success(let ids):
                // Should not happen; treat as retryable so nothing is acked without its id.
                record(.http(code: 500, status: "INTERNAL", message: "\(ids.count) ids for \(items.count) messages"), attempt: attempt + 1)
                attempt += 1
                try? await Task.sleep(for: .nanoseconds(policy.delay(attempt: attempt, random: Double.random(in: 0..<1))))
            case .failure(let failure):
                attempt += 1
                switch policy.decide(failure, attempt: attempt, random: Double.random(in: 0..<1)) {
                case .retry(let after):
                    record(failure, attempt: attempt)
                    await sleepKeepingHold(after, items: items, client: client, lastProgress: &lastProgress)
                case .misconfigured(let reason):
                    record(failure, attempt: attempt)
                    logger.error("Pub/Sub refuses the bridge (credentials, permission or topic); retrying", metadata: ["error": "\(reason)"])
                    await sleepKeepingHold(min(policy.delay(attempt: attempt, random: 1), 30_000_000_000), items: items,
                                           client: client, lastProgress: &lastProgress)
                case .reject(let reason):
                    if items.count > 1 {
                        // A batch was refused: find the culprit by sending each message alone.
                        for item in items { await deliver([item], client: client) }
                    } else {
                        await deadLetter(items[0], reason: "Pub/Sub refused it: \(reason)", client: client)
                    }
                    return
                }
            }
        }
    }

    private func record(_ failure: PublishFailure, attempt: Int) {
        stats.retried.add(1, ordering: .relaxed)
        stats.failed(failure.description)
        if attempt == 1 || attempt % 10 == 0 {
            logger.warning("Pub/Sub publish failed; retrying", metadata: ["error": "\(failure.description)", "attempt": "\(attempt)"])
        }
    }

    /// Sleeps for a retry; held messages get +WPI meanwhile so brokerd does not redeliver them.
    private func sleepKeepingHold(_ nanoseconds: Int64, items: [Held], client: NATSClient, lastProgress: inout ContinuousClock.Instant) async {
        var remaining = Duration.nanoseconds(nanoseconds)
        while remaining > .zero && !Task.isCancelled {
            let step = min(remaining, .seconds(5))
            try? await Task.sleep(for: step)
            remaining -= step
            if lastProgress.duration(to: .now) >= Self.progressEvery {
                lastProgress = .now
                for item in items { try? await client.publish(item.ackSubject, "+WPI") }
            }
        }
    }

    /// Pub/Sub has these (or they were dead-lettered): one ack each to brokerd (ClientLib coalesces the
    /// writes). A lost ack only means a redelivery later (at least once).
    private func confirm(_ items: [Held], client: NATSClient) async {
        for item in items { try? await client.publish(item.ackSubject, payload: ByteBuffer()) }
    }

    /// To `BRIDGE.DLQ.<topic>` with the reason, stored by BRIDGE_DLQ (PubAck awaited), then acked.
    func deadLetter(_ item: Held, reason: String, client: NATSClient) async {
        var headers = NATSHeaders()
        for (name, value) in item.original.headers?.fields ?? [] {
            // The dead-letter stream is shared by every bridge: keep the id, but not as its dedupe key.
            headers.append(name.lowercased() == "nats-msg-id" ? "Bridge-Msg-Id" : name, value)
        }
        headers.append("Bridge-Reason", reason.replacingOccurrences(of: "\r", with: " ").replacingOccurrences(of: "\n", with: " "))
        headers.append("Bridge-Subject", item.original.subject)
        headers.append("Bridge-Topic", "projects/\(config.project)/topics/\(config.topic)")
        var wait = 200
        while !Task.isCancelled {
            do {
                let reply = try await client.request(config.deadLetterSubject, payload: item.original.payload, headers: headers,
                                                     timeout: .seconds(5))
                if !String(buffer: reply.payload).contains("\"error\"") { break }
                logger.error("Dead-letter stream refused a message; retrying", metadata: ["reply": "\(String(buffer: reply.payload))"])
            } catch {
                logger.error("Cannot dead-letter a message yet; retrying", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(wait))
            wait = min(wait * 2, 5_000)
        }
        await confirm([item], client: client)
        stats.deadLettered.add(1, ordering: .relaxed)
        logger.warning("Message dead-lettered", metadata: ["subject": "\(item.original.subject)", "reason": "\(reason)",
                                                          "to": "\(config.deadLetterSubject)"])
    }

    /// Lag: what the durable consumer still has for the bridge, once a second.
    private func watchLag(_ client: NATSClient, stream: String) async {
        while !Task.isCancelled {
            if let info = try? await api(client, "CONSUMER.INFO.\(stream).\(config.durableName)", [:]), Self.errorCode(info) == nil {
                let pending = (info["num_pending"] as? NSNumber)?.int64Value ?? 0
                let acking = (info["num_ack_pending"] as? NSNumber)?.int64Value ?? 0
                stats.lag.store(pending + acking, ordering: .relaxed)
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (or the 12-token form).
    static func streamSequence(_ ack: String) -> UInt64? {
        // Read on the bytes (this runs for every message the bridge receives): the 6th or 8th token.
        var dots = 0
        var starts: [Int] = []
        starts.reserveCapacity(13)
        starts.append(0)
        var index = 0
        for byte in ack.utf8 {
            index += 1
            if byte == UInt8(ascii: ".") {
                dots += 1
                starts.append(index)
            }
        }
        let tokenCount = dots + 1
        let wanted = tokenCount == 9 ? 5 : tokenCount >= 12 ? 7 : -1
        guard wanted >= 0 else { return nil }
        var value: UInt64 = 0
        var digits = 0
        for byte in ack.utf8.dropFirst(starts[wanted]) {
            if byte == UInt8(ascii: ".") { break }
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(byte - 0x30))
            guard !o1 && !o2 else { return nil }
            value = a
            digits += 1
        }
        return digits > 0 ? value : nil
    }
}

/// At most `n` holders at once.
actor AsyncSemaphore {
    private var available: Int

    init(_ n: Int) { available = n }

    /// False when the task was cancelled while waiting (polls, so cancellation is always seen).
    func acquire() async -> Bool {
        while available == 0 {
            if Task.isCancelled { return false }
            try? await Task.sleep(for: .milliseconds(1))
        }
        available -= 1
        return true
    }

    func release() {
        available += 1
    }
}

/// The last task per ordering key, so the next batch of that key waits for it. Finished ones are dropped
/// (keys come from alert content: hostnames, rules).
final class KeyChains: @unchecked Sendable {
    private let lock = NSLock()
    private var tasks: [String: (task: Task<Void, Never>, token: UInt64)] = [:]
    private var finished: Set<UInt64> = []
    private var nextToken: UInt64 = 0

    func last(for key: String) -> Task<Void, Never>? { lock.withLock { tasks[key]?.task } }

    func token() -> UInt64 { lock.withLock { nextToken += 1; return nextToken } }

    func set(_ task: Task<Void, Never>, for key: String, token: UInt64) {
        lock.withLock {
            tasks[key] = (task, token)
            if tasks.count > 1024 {
                tasks = tasks.filter { !finished.contains($0.value.token) }
                finished.removeAll()
            }
        }
    }

    func finish(_ token: UInt64) { lock.withLock { _ = finished.insert(token) } }
}

/// The delivery tasks in flight, so stopping cancels and awaits them.
final class TaskSet: @unchecked Sendable {
    private let lock = NSLock()
    private var tasks: [Task<Void, Never>] = []

    func add(_ task: Task<Void, Never>) {
        lock.withLock {
            tasks.append(task)
            if tasks.count > 256 { tasks = Array(tasks.suffix(128)) }  // old ones are long done (4 in flight)
        }
    }

    func cancelAll() { lock.withLock { for t in tasks { t.cancel() } } }

    func waitAll() async {
        for t in lock.withLock({ tasks }) { await t.value }
    }
}
