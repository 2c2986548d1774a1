import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Protocol

/// A NATS client: async/await, `AsyncSequence` subscriptions, request/reply, reconnects.
///
/// ```swift
/// let nc = try await NATSClient.connect(NATSOptions(servers: ["nats://127.0.0.1:4222"]))
/// let alerts = try await nc.subscribe("FALCO.*")
/// try await nc.publish("FALCO.Critical", payload: ByteBuffer(string: "{}"))
/// for await alert in alerts { print(alert.subject, alert.string) }
/// ```
///
/// Publishing is buffered and flushed in batches by the event loop; `flush()` waits until the server has
/// processed everything sent before it. While disconnected, publishes are kept (up to
/// `reconnectBufferSize`) and subscriptions are restored on reconnect.
public final class NATSClient: @unchecked Sendable {
    public let options: NATSOptions
    /// Connection events: connected, disconnected, reconnected, slow consumer, server errors, lame duck, closed.
    public let events: AsyncStream<NATSEvent>
    private let eventsContinuation: AsyncStream<NATSEvent>.Continuation
    let group: any EventLoopGroup

    private let lock = ClientLock()
    // Everything below is guarded by `lock`.
    private var status: Status = .connecting
    private var channel: (any Channel)?
    /// Bytes for the server not yet handed to the channel.
    private var outbound = ByteBuffer()
    private var flushScheduled = false
    /// Bytes handed to the channel whose write has not completed.
    private var inFlight = 0
    private var capacityWaiters: [CheckedContinuation<Void, Never>] = []
    /// Publishes made while disconnected.
    private var reconnectBuffer = ByteBuffer()
    private var subscriptions: [Int: NATSSubscription] = [:]
    private var nextSid = 1
    /// What each outstanding PING is for, in order (PONGs come back in order).
    private var pongQueue: [PongWaiter] = []
    private var nextWaiterID: UInt64 = 0
    private var requests: [String: EventLoopPromise<NATSMessage>] = [:]
    private var requestMux: (subscription: NATSSubscription, prefix: String)?
    private var nextRequestID: UInt64 = 0
    private var serverInfoValue: ServerInfoDocument?
    private var servers: [String]
    private var currentServer = ""
    private var keepaliveTask: RepeatedTask?

    enum Status: Equatable { case connecting, connected, reconnecting, closed }

    enum PongWaiter {
        case flush(id: UInt64, EventLoopPromise<Void>)
        case keepalive
    }

    private init(options: NATSOptions, group: any EventLoopGroup) {
        self.options = options
        self.group = group
        self.servers = options.servers
        (events, eventsContinuation) = AsyncStream.makeStream(of: NATSEvent.self, bufferingPolicy: .bufferingNewest(1024))
    }

    /// Connects to the first reachable server of `options.servers`.
    public static func connect(_ options: NATSOptions, group: (any EventLoopGroup)? = nil) async throws -> NATSClient {
        let client = NATSClient(options: options, group: group ?? MultiThreadedEventLoopGroup.singleton)
        var failures: [String] = []
        for server in options.servers {
            do {
                let channel = try await client.establish(server)
                client.didConnect(channel, server: server, reconnected: false)
                return client
            } catch NATSError.authorizationViolation {
                throw NATSError.authorizationViolation
            } catch {
                failures.insert("\(server): \(error)", at: 0)
            }
        }
        client.lock.withLock { client.status = .closed }
        throw NATSError.connectionFailed(failures.joined(separator: "; "))
    }


    /// The INFO the current server sent.
    public var serverInfo: ServerInfoDocument? { lock.withLock { serverInfoValue } }
    public var isConnected: Bool { lock.withLock { status == .connected } }
    public var connectedServer: String? { lock.withLock { status == .connected ? currentServer : nil } }
    /// Servers known for reconnects: the configured ones plus those the servers advertised.
    public var knownServers: [String] { lock.withLock { servers } }

    // MARK: - Publish

    public func publish(_ subject: String, payload: ByteBuffer = ByteBuffer(), reply: String? = nil,
                        headers: NATSHeaders? = nil) async throws {
        let headerBlock = headers?.encoded()
        let size = payload.readableBytes + (headerBlock?.readableBytes ?? 0)
        let mustWait: Bool = try lock.withLock {
            if let limit = serverInfoValue?.maxPayload, size > limit {
                throw NATSError.maxPayloadExceeded(size: size, limit: limit)
            }
            switch status {
            case .connected:
                PublishEncoding.write(into: &outbound, subject: subject, reply: reply, headers: headerBlock, payload: payload)
                scheduleFlushLocked()
                return outbound.readableBytes + inFlight > options.maxPendingOutboundBytes
            case .connecting, .reconnecting:
                let before = reconnectBuffer.writerIndex
                PublishEncoding.write(into: &reconnectBuffer, subject: subject, reply: reply, headers: headerBlock, payload: payload)
                if reconnectBuffer.readableBytes > options.reconnectBufferSize {
                    reconnectBuffer.moveWriterIndex(to: before)
                    throw NATSError.reconnectBufferFull
                }
                return false
            case .closed:
                throw NATSError.closed
            }
        }
        if mustWait { await waitForCapacity() }
    }

    public func publish(_ subject: String, _ string: String, reply: String? = nil, headers: NATSHeaders? = nil) async throws {
        try await publish(subject, payload: ByteBuffer(string: string), reply: reply, headers: headers)
    }

    private func waitForCapacity() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = lock.withLock { () -> Bool in
                if status != .connected || outbound.readableBytes + inFlight <= options.maxPendingOutboundBytes / 2 {
                    return true
                }
                capacityWaiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// Called with the lock held: makes sure one flush of `outbound` is on its way to the event loop.
    private func scheduleFlushLocked() {
        guard !flushScheduled, let channel else { return }
        flushScheduled = true
        channel.eventLoop.execute { self.flushOutbound(channel) }
    }

    private func flushOutbound(_ channel: any Channel) {
        let (bytes, count): (ByteBuffer?, Int) = lock.withLock {
            flushScheduled = false
            guard self.channel === channel, outbound.readableBytes > 0 else { return (nil, 0) }
            let bytes = outbound
            outbound = channel.allocator.buffer(capacity: min(max(bytes.readableBytes, 4096), 1 << 20))
            inFlight += bytes.readableBytes
            return (bytes, bytes.readableBytes)
        }
        guard let bytes else { return }
        channel.writeAndFlush(bytes).whenComplete { _ in
            let waiters: [CheckedContinuation<Void, Never>] = self.lock.withLock {
                self.inFlight -= count
                guard self.outbound.readableBytes + self.inFlight <= self.options.maxPendingOutboundBytes / 2 else { return [] }
                defer { self.capacityWaiters.removeAll() }
                return self.capacityWaiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    // MARK: - Subscribe

    /// Subscribes to `subject` (wildcards allowed); iterate the result to receive messages.
    public func subscribe(_ subject: String, queue: String? = nil, pendingLimit: Int? = nil) async throws -> NATSSubscription {
        try makeSubscription(subject, queue: queue, pendingLimit: pendingLimit, handler: nil)
    }

    /// Subscribes with a callback, called on the connection's event loop for each message: the fastest way to
    /// consume (no buffering, no task hop). The callback must not block.
    @discardableResult
    public func subscribe(_ subject: String, queue: String? = nil,
                          handler: @escaping @Sendable (NATSMessage) -> Void) async throws -> NATSSubscription {
        try makeSubscription(subject, queue: queue, pendingLimit: nil, handler: handler)
    }

    private func makeSubscription(_ subject: String, queue: String?, pendingLimit: Int?,
                                  handler: (@Sendable (NATSMessage) -> Void)?) throws -> NATSSubscription {
        guard Subject.isValidSubscription(subject) else { throw NATSError.invalidSubject(subject) }
        if let queue, queue.isEmpty || queue.contains(where: { $0 == " " || $0 == "\t" }) {
            throw NATSError.invalidSubject(queue)
        }
        return try lock.withLock {
            guard status != .closed else { throw NATSError.closed }
            let sid = nextSid
            nextSid += 1
            let sub = NATSSubscription(client: self, subject: subject, queue: queue, sid: sid,
                                       pendingLimit: pendingLimit ?? options.subscriptionPendingLimit, handler: handler)
            subscriptions[sid] = sub
            if status == .connected {
                ClientEncoder.writeSubscribe(into: &outbound, subject: subject, queue: queue, sid: sid)
                scheduleFlushLocked()
            }
            return sub
        }
    }

    func unsubscribe(_ sub: NATSSubscription, after count: Int?) async throws {
        let finishNow: Bool = try lock.withLock {
            guard status != .closed else { throw NATSError.closed }
            guard subscriptions[sub.sid] != nil else { return false }
            if let count, !sub.setMax(count) {
                if status == .connected {
                    ClientEncoder.writeUnsubscribe(into: &outbound, sid: sub.sid, max: count)
                    scheduleFlushLocked()
                }
                return false
            }
            subscriptions[sub.sid] = nil
            if status == .connected {
                ClientEncoder.writeUnsubscribe(into: &outbound, sid: sub.sid, max: nil)
                scheduleFlushLocked()
            }
            return true
        }
        if finishNow { sub.finish() }
    }

    // MARK: - Request / reply

    /// Sends a request and waits for the first reply. Fails at once with `noResponders` when nobody is
    /// subscribed to `subject`, and with `timeout` when no reply comes in time.
    public func request(_ subject: String, payload: ByteBuffer = ByteBuffer(), headers: NATSHeaders? = nil,
                        timeout: Duration = .seconds(2)) async throws -> NATSMessage {
        let prefix = try ensureRequestMux()
        let loop = group.next()
        let promise = loop.makePromise(of: NATSMessage.self)
        let token: String = lock.withLock {
            nextRequestID += 1
            let token = String(nextRequestID, radix: 36)
            requests[token] = promise
            return token
        }
        let timer = loop.scheduleTask(in: TimeAmount(timeout)) { [self] in
            if let p = lock.withLock({ requests.removeValue(forKey: token) }) { p.fail(NATSError.timeout) }
        }
        do {
            try await publish(subject, payload: payload, reply: prefix + token, headers: headers)
        } catch {
            timer.cancel()
            if let p = lock.withLock({ requests.removeValue(forKey: token) }) { p.fail(error) }
        }
        defer { timer.cancel() }
        return try await promise.futureResult.get()
    }

    public func request(_ subject: String, _ string: String, timeout: Duration = .seconds(2)) async throws -> NATSMessage {
        try await request(subject, payload: ByteBuffer(string: string), timeout: timeout)
    }

    /// One wildcard inbox subscription serves every request (no SUB/UNSUB per request).
    private func ensureRequestMux() throws -> String {
        if let mux = lock.withLock({ requestMux }) { return mux.prefix }
        let base = "\(options.inboxPrefix).\(Self.randomToken())"
        let sub = try makeSubscription(base + ".*", queue: nil, pendingLimit: nil) { [weak self] message in
            self?.resolveRequest(message, prefixLength: base.utf8.count + 1)
        }
        return lock.withLock {
            if let existing = requestMux {
                // Lost a race with another first request: keep the first mux.
                subscriptions[sub.sid] = nil
                return existing.prefix
            }
            requestMux = (sub, base + ".")
            return base + "."
        }
    }

    private func resolveRequest(_ message: NATSMessage, prefixLength: Int) {
        let token = String(message.subject.utf8.dropFirst(prefixLength)) ?? ""
        guard let promise = lock.withLock({ requests.removeValue(forKey: token) }) else { return }
        if message.status == 503 {
            promise.fail(NATSError.noResponders)
        } else {
            promise.succeed(message)
        }
    }

    // MARK: - Flush, drain, close

    /// Waits until the server has processed everything this client sent before the call.
    public func flush(timeout: Duration = .seconds(10)) async throws {
        let loop = group.next()
        let promise = loop.makePromise(of: Void.self)
        let id: UInt64 = try lock.withLock {
            guard status == .connected, let channel else {
                throw status == .closed ? NATSError.closed : NATSError.connectionFailed("not connected")
            }
            nextWaiterID += 1
            let id = nextWaiterID
            pongQueue.append(.flush(id: id, promise))
            // PING goes through `outbound`, after everything published before it.
            outbound.writeStaticString("PING\r\n")
            scheduleFlushLocked()
            _ = channel
            return id
        }
        let timer = loop.scheduleTask(in: TimeAmount(timeout)) { [self] in
            let removed = lock.withLock { () -> Bool in
                guard let index = pongQueue.firstIndex(where: { if case .flush(id, _) = $0 { return true } else { return false } }) else { return false }
                // Keep the slot (a PONG is still owed) but make it a keepalive so the order stays right.
                pongQueue[index] = .keepalive
                return true
            }
            if removed { promise.fail(NATSError.timeout) }
        }
        defer { timer.cancel() }
        try await promise.futureResult.get()
    }

    /// Unsubscribes everything, lets the messages already sent to us reach their subscriptions, flushes what
    /// we published, then closes. Subscriptions end after their buffered messages.
    public func drain(timeout: Duration = .seconds(10)) async throws {
        let subs: [NATSSubscription] = try lock.withLock {
            guard status != .closed else { throw NATSError.closed }
            let all = Array(subscriptions.values)
            if status == .connected {
                for sub in all where sub !== requestMux?.subscription {
                    ClientEncoder.writeUnsubscribe(into: &outbound, sid: sub.sid, max: nil)
                }
                scheduleFlushLocked()
            }
            return all
        }
        if isConnected { try? await flush(timeout: timeout) }
        for sub in subs { sub.finish() }
        await close()
    }

    /// Closes the connection now. Pending requests and flushes fail with `closed`.
    public func close() async {
        let (channel, subs, flushes, reqs, waiters): (Channel?, [NATSSubscription], [EventLoopPromise<Void>],
                                                      [EventLoopPromise<NATSMessage>], [CheckedContinuation<Void, Never>]) = lock.withLock {
            if status == .closed { return (nil, [], [], [], []) }
            status = .closed
            keepaliveTask?.cancel()
            let ch = self.channel
            self.channel = nil
            let subs = Array(subscriptions.values)
            subscriptions.removeAll()
            let flushes = pongQueue.compactMap { if case .flush(_, let p) = $0 { return p } else { return nil } }
            pongQueue.removeAll()
            let reqs = Array(requests.values)
            requests.removeAll()
            let waiters = capacityWaiters
            capacityWaiters.removeAll()
            return (ch, subs, flushes, reqs, waiters)
        }
        for sub in subs { sub.finish() }
        for p in flushes { p.fail(NATSError.closed) }
        for p in reqs { p.fail(NATSError.closed) }
        for w in waiters { w.resume() }
        if let channel {
            // Give what was published a chance to leave before the socket closes.
            if let pending = lock.withLock({ () -> ByteBuffer? in
                guard outbound.readableBytes > 0 else { return nil }
                defer { outbound.clear() }
                return outbound
            }) {
                try? await channel.writeAndFlush(pending).get()
            }
            try? await channel.close().get()
        }
        eventsContinuation.yield(.closed)
        eventsContinuation.finish()
    }

    // MARK: - Connection management

    /// TCP connect plus the INFO / CONNECT / PING / PONG handshake.
    private func establish(_ server: String) async throws -> any Channel {
        let target = try ServerAddress(server)
        let handshake = group.next().makePromise(of: Void.self)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(TimeAmount(options.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16384, maximum: 1 << 20))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ClientHandler(client: self, connectJSON: connectJSON(for: target), handshake: handshake))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: target.host, port: target.port).get()
        } catch {
            handshake.fail(error)  // every promise must be completed, or NIO reports it as leaked
            throw NATSError.connectionFailed("\(target.host):\(target.port): \(error)")
        }
        let timeout = channel.eventLoop.scheduleTask(in: TimeAmount(options.connectTimeout)) {
            handshake.fail(NATSError.timeout)
        }
        do {
            try await handshake.futureResult.get()
            timeout.cancel()
        } catch {
            timeout.cancel()
            try? await channel.close().get()
            throw error
        }
        lock.withLock { currentServer = server }
        return channel
    }

    private func connectJSON(for target: ServerAddress) -> String {
        var fields: [String] = [
            #""verbose":false"#, #""pedantic":false"#, #""headers":true"#, #""no_responders":true"#,
            #""protocol":1"#, #""lang":"swift""#, #""version":"0.1.0""#, "\"echo\":\(options.echo)",
        ]
        if let name = options.name { fields.append("\"name\":\(JSONString.quoted(name))") }
        if let token = options.token ?? target.token { fields.append("\"auth_token\":\(JSONString.quoted(token))") }
        if let user = options.user ?? target.user { fields.append("\"user\":\(JSONString.quoted(user))") }
        if let pass = options.password ?? target.password { fields.append("\"pass\":\(JSONString.quoted(pass))") }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// A handshake completed: this channel is now the connection. Replays subscriptions, then what was published
    /// while disconnected.
    private func didConnect(_ channel: any Channel, server: String, reconnected: Bool) {
        let abandoned: Bool = lock.withLock {
            if status == .closed { return true }
            var replay = channel.allocator.buffer(capacity: 4096)
            for sub in subscriptions.values.sorted(by: { $0.sid < $1.sid }) {
                ClientEncoder.writeSubscribe(into: &replay, subject: sub.subject, queue: sub.queue, sid: sub.sid)
                if let max = sub.maxMessages {
                    ClientEncoder.writeUnsubscribe(into: &replay, sid: sub.sid, max: max)
                }
            }
            replay.writeImmutableBuffer(reconnectBuffer)
            reconnectBuffer = ByteBuffer()
            replay.writeImmutableBuffer(outbound)
            outbound = replay
            self.channel = channel
            status = .connected
            scheduleFlushLocked()
            startKeepaliveLocked(channel)
            return false
        }
        if abandoned {
            channel.close(promise: nil)
            return
        }
        eventsContinuation.yield(reconnected ? .reconnected(server: server) : .connected(server: server))
    }

    private func startKeepaliveLocked(_ channel: any Channel) {
        keepaliveTask?.cancel()
        let interval = TimeAmount(options.pingInterval)
        keepaliveTask = channel.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] task in
            guard let self else { return task.cancel() }
            let stale: Bool = self.lock.withLock {
                guard self.channel === channel else { return false }
                let outstanding = self.pongQueue.count
                if outstanding >= self.options.maxPingsOut { return true }
                self.pongQueue.append(.keepalive)
                self.outbound.writeStaticString("PING\r\n")
                self.scheduleFlushLocked()
                return false
            }
            if stale { channel.close(promise: nil) }
        }
    }

    /// The connection went away (closed by the server, reset, stale). Reconnects unless closing.
    func connectionLost(_ channel: any Channel, reason: String) {
        enum Next { case ignore, reconnect, close }
        let (next, flushes, waiters): (Next, [EventLoopPromise<Void>], [CheckedContinuation<Void, Never>]) = lock.withLock {
            // Not the current connection (an old one, or we are closing on purpose): nothing to do.
            guard self.channel === channel, status == .connected else { return (.ignore, [], []) }
            self.channel = nil
            keepaliveTask?.cancel()
            inFlight = 0
            flushScheduled = false
            let flushes = pongQueue.compactMap { if case .flush(_, let p) = $0 { return p } else { return nil } }
            pongQueue.removeAll()
            let waiters = capacityWaiters
            capacityWaiters.removeAll()
            guard options.allowReconnect else { return (.close, flushes, waiters) }  // close() does the rest
            status = .reconnecting
            // Unsent publishes wait for the next connection (control lines in them are harmless to repeat).
            reconnectBuffer = outbound
            outbound = ByteBuffer()
            return (.reconnect, flushes, waiters)
        }
        if next == .ignore { return }
        for p in flushes { p.fail(NATSError.connectionFailed("disconnected: \(reason)")) }
        for w in waiters { w.resume() }
        eventsContinuation.yield(.disconnected(reason: reason))
        switch next {
        case .reconnect: Task { await self.reconnectLoop() }
        case .close: Task { await self.close() }
        case .ignore: break
        }
    }

    private func reconnectLoop() async {
        var attempt = 0
        var index = 0
        while options.maxReconnectAttempts < 0 || attempt < options.maxReconnectAttempts {
            let candidates = lock.withLock { servers }
            let (isClosed, current) = lock.withLock { (status == .closed, currentServer) }
            if isClosed { return }
            // Start with the server after the one we lost.
            if attempt == 0, let i = candidates.firstIndex(of: current) { index = i + 1 }
            let server = candidates[index % candidates.count]
            index += 1
            try? await Task.sleep(for: backoff(attempt: attempt))
            attempt += 1
            do {
                let channel = try await establish(server)
                didConnect(channel, server: server, reconnected: true)
                return
            } catch {
                continue
            }
        }
        await close()
    }

    /// Exponential backoff with jitter: reconnectWait * 2^attempt, capped, plus up to reconnectJitter.
    func backoff(attempt: Int) -> Duration {
        if attempt == 0 { return .zero }
        let base = options.reconnectWait * (1 << min(attempt - 1, 16))
        let capped = min(base, options.maxReconnectWait)
        let jitterNanos = Int64(options.reconnectJitter.components.seconds * 1_000_000_000
                                + options.reconnectJitter.components.attoseconds / 1_000_000_000)
        return capped + .nanoseconds(jitterNanos > 0 ? Int64.random(in: 0...jitterNanos) : 0)
    }

    // MARK: - Inbound (called by ClientHandler on the event loop)

    /// `subject` is `message.subject` as a String (the handler reuses it across messages).
    func received(_ message: ServerMessage, subject: String) {
        guard let sub = lock.withLock({ subscriptions[message.sid] }) else { return }
        var payload = message.payload
        var headers: NATSHeaders?
        if let headerLength = message.headerLength {
            headers = payload.readSlice(length: headerLength).flatMap(NATSHeaders.parse)
        }
        let natsMessage = NATSMessage(subject: subject, reply: message.reply.map { String(buffer: $0) },
                                      headers: headers, payload: payload)
        let (done, droppedNow) = sub.deliver(natsMessage)
        if done { lock.withLock { if subscriptions[sub.sid] === sub { subscriptions[sub.sid] = nil } } }
        if let droppedNow { eventsContinuation.yield(.slowConsumer(subject: sub.subject, dropped: droppedNow)) }
    }

    func receivedPong() {
        let waiter: PongWaiter? = lock.withLock { pongQueue.isEmpty ? nil : pongQueue.removeFirst() }
        if case .flush(_, let promise) = waiter { promise.succeed(()) }
    }

    func receivedInfo(_ info: ServerInfoDocument) {
        let lameDuck: Bool = lock.withLock {
            serverInfoValue = info
            for url in info.connectURLs ?? [] {
                let full = url.contains("://") ? url : "nats://\(url)"
                if !servers.contains(full) { servers.append(full) }
            }
            return info.ldm ?? false
        }
        if lameDuck { eventsContinuation.yield(.lameDuck) }
    }

    func receivedError(_ text: String) {
        eventsContinuation.yield(.serverError(text))
    }

    static func randomToken() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<22).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
    }
}

/// The parts of INFO a client uses.
public struct ServerInfoDocument: Decodable, Sendable, Equatable {
    public var serverID: String?
    public var serverName: String?
    public var version: String?
    public var maxPayload: Int?
    public var headers: Bool?
    public var authRequired: Bool?
    public var connectURLs: [String]?
    public var ldm: Bool?

    enum CodingKeys: String, CodingKey {
        case serverID = "server_id", serverName = "server_name", version, maxPayload = "max_payload", headers
        case authRequired = "auth_required", connectURLs = "connect_urls", ldm
    }
}

/// `nats://[user:pass@|token@]host:port`, or `host:port`.
struct ServerAddress {
    var host: String
    var port: Int
    var user: String?
    var password: String?
    var token: String?

    init(_ string: String) throws {
        let full = string.contains("://") ? string : "nats://\(string)"
        guard let url = URLComponents(string: full), let host = url.host, !host.isEmpty else {
            throw NATSError.connectionFailed("invalid server URL \(string)")
        }
        self.host = host
        self.port = url.port ?? 4222
        if let user = url.user, let password = url.password {
            self.user = user
            self.password = password
        } else if let user = url.user {
            self.token = user
        }
    }
}
