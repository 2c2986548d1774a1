import Broker
import ClientLib
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
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
/// and as `brokerd bridge -c file`. It is a `Service`: on graceful shutdown it drains (see `run()`).
public final class PubSubBridge: Service, Sendable {
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
    /// After graceful shutdown, how long the batches in flight get to be taken by Pub/Sub and acked.
    static let drainTimeout: Duration = .seconds(5)
    /// Reaching brokerd (connect, dead-letter store): 200 ms doubling up to 5 s.
    static let brokerBackoff = Backoff(initial: .milliseconds(200), factor: 2, cap: .seconds(5))
    /// Setting up the stream and consumer: 200 ms doubling up to 10 s.
    static let setupBackoff = Backoff(initial: .milliseconds(200), factor: 2, cap: .seconds(10))
    /// Set on graceful shutdown: no new pull requests, batches or retries.
    private let draining = Atomic<Bool>(false)
    var isDraining: Bool { draining.load(ordering: .relaxed) }
    /// Wakes the pump (see `Inbox`).
    let doorbell = Doorbell()

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

    /// Runs until graceful shutdown or cancellation. Graceful shutdown drains: no new messages are pulled or
    /// sent, the batches already sent to Pub/Sub get up to `drainTimeout` to be taken and acked to brokerd, then
    /// the rest is cancelled. What was not acked is redelivered to the next run (at least once).
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.work() }
            group.addTask {
                // Throws when cancelled: then the bridge is being cancelled anyway.
                guard (try? await gracefulShutdown()) != nil else { return }
                self.draining.store(true, ordering: .relaxed)
                self.doorbell.ring()
                self.logger.info("Bridge draining")
                try? await Task.sleep(for: Self.drainTimeout)
            }
            await group.next()  // the work ended (drained, or cancelled), or the drain ran out of time
            group.cancelAll()
        }
    }

    private var stopping: Bool { Task.isCancelled || isDraining }

    private func work() async {
        var options = natsOptions
        options.name = options.name ?? "brokerd-bridge-\(config.topic)"
        options.maxReconnectAttempts = -1
        let client = await untilSuccess(Self.brokerBackoff) {
            try await NATSClient.connect(options)
        } failed: { error in
            self.stats.failed("cannot connect to brokerd: \(error)")
            self.logger.warning("Bridge cannot connect to brokerd yet", metadata: ["error": "\(error)"])
        }
        guard let client else { return }
        await withTaskGroup(of: Void.self) { group in
            // An -ERR from brokerd (a permission the bridge's user lacks, say) is the reason it makes no progress:
            // say so in the log and in /varz and /healthz.
            group.addTask {
                for await event in client.events {
                    guard case .serverError(let text) = event else { continue }
                    self.stats.failed("brokerd: \(text)")
                    self.logger.error("Bridge got an error from brokerd", metadata: ["error": "\(text)"])
                }
            }
            await bridge(client)
            // The acks sent meanwhile reach brokerd before the connection closes.
            try? await client.flush(timeout: .seconds(2))
            await client.close()
            group.cancelAll()
        }
    }

    private func bridge(_ client: NATSClient) async {
        var stream = await untilSuccess(Self.setupBackoff) { try await self.setUp(client) } failed: { error in
            self.stats.failed("setup: \(error)")
            self.logger.error("Bridge setup failed; retrying", metadata: ["error": "\(error)"])
        }
        while let current = stream, !stopping {
            stats.setReady(true)
            logger.info("Bridge running", metadata: ["stream": "\(current)", "consumer": "\(config.durableName)",
                                                     "subjects": "\(config.subjects)"])
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.pump(client, stream: current) }
                group.addTask { await self.watchLag(client, stream: current) }
                await group.next()
                group.cancelAll()
            }
            guard !stopping else { return }
            // The pump stopped: its consumer is gone (or it could not subscribe). Set up again.
            stats.setReady(false)
            stats.failed("consumer \(config.durableName) is gone; setting up again")
            logger.warning("Bridge consumer gone; setting up again")
            stream = await untilSuccess(Self.setupBackoff) { try await self.setUp(client) } failed: { error in
                self.stats.failed("setup: \(error)")
            }
        }
    }

    /// Tries `body` until it succeeds, waiting `backoff` between failures; nil once the bridge stops.
    private func untilSuccess<T: Sendable>(_ backoff: Backoff, _ body: () async throws -> T,
                                           failed: (any Error) -> Void) async -> T? {
        var attempt = 0
        while !stopping {
            do {
                return try await body()
            } catch {
                failed(error)
                attempt += 1
                try? await Task.sleep(for: backoff.delay(attempt: attempt))
            }
        }
        return nil
    }

    // MARK: - The flow

    private func pump(_ client: NATSClient, stream: String) async {
        let batchSize = min(config.batchMessages, PubSubLimits.maxRequestMessages)
        let inbox = Inbox(doorbell: doorbell, batchMessages: batchSize, batchBytes: config.batchBytes,
                          batchDelay: config.batchDelay)
        let inboxSubject = "_BRIDGE.\(NATSClient.randomToken())"
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
        await withDiscardingTaskGroup { deliveries in
            await feed(inbox, client: client, stream: stream, inboxSubject: inboxSubject, deliveries: &deliveries)
            // Stopping (or the consumer went away): what is still held is not acked and comes again later.
            // Draining lets the deliveries under way finish (run() cancels them after the drain timeout).
            if !isDraining { deliveries.cancelAll() }
        }
        try? await subscription.unsubscribe()
    }

    /// Pulls from the consumer, batches, and starts one delivery per batch (at most `maxInFlight` at once; with
    /// an ordering key, one per key at a time), until the bridge stops or the consumer is gone.
    private func feed(_ inbox: Inbox, client: NATSClient, stream: String, inboxSubject: String,
                      deliveries: inout DiscardingTaskGroup) async {
        let slots = AsyncSemaphore(config.maxInFlight)
        let chains = KeyChains()
        let pullBatch = min(inbox.batchMessages * config.maxInFlight * 2, Self.maxAckPending)
        while !stopping {
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
            guard let batch = inbox.take() else {
                if inbox.consumerMissing { break }
                await doorbell.wait(until: inbox.nextDeadline())
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
                let previous = key.flatMap { chains.last(for: $0) }
                let done = Latch()
                if let key { chains.set(done, for: key) }
                deliveries.addTask { [self] in
                    // With an ordering key, one batch per key in flight: wait for the one before.
                    await previous?.wait()
                    await deliver(items, client: client)
                    inbox.release(items.map(\.streamSequence))
                    done.open()
                    slots.release()
                }
            }
            if inbox.consumerMissing { break }
        }
    }
}
