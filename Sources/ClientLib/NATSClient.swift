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
    let eventsContinuation: AsyncStream<NATSEvent>.Continuation
    let group: any EventLoopGroup
    /// TLS as the options and the URLs ask for it (nil: none, unless a server requires it).
    let tls: ClientTLS?

    let lock = ClientLock()
    // Everything below is guarded by `lock`.
    var status: Status = .connecting
    var channel: (any Channel)?
    /// Bytes for the server not yet handed to the channel.
    var outbound = ByteBuffer()
    var flushScheduled = false
    /// Bytes handed to the channel whose write has not completed.
    var inFlight = 0
    var capacityWaiters: [CheckedContinuation<Void, Never>] = []
    /// Publishes made while disconnected.
    var reconnectBuffer = ByteBuffer()
    var subscriptions: [Int: NATSSubscription] = [:]
    var nextSid = 1
    /// What each outstanding PING is for, in order (PONGs come back in order).
    var pongQueue: [PongWaiter] = []
    var nextWaiterID: UInt64 = 0
    var requests: [String: EventLoopPromise<NATSMessage>] = [:]
    var requestMux: (subscription: NATSSubscription, prefix: String)?
    var nextRequestID: UInt64 = 0
    var serverInfoValue: ServerInfoDocument?
    var servers: [String]
    var currentServer = ""
    var keepaliveTask: RepeatedTask?
    /// The reconnect loop while one runs: started by `connectionLost`, stopped and awaited by `close()`.
    var reconnectTask: Task<Void, Never>?

    enum Status: Equatable { case connecting, connected, reconnecting, closed }

    enum PongWaiter {
        case flush(id: UInt64, EventLoopPromise<Void>)
        case keepalive
    }

    private init(options: NATSOptions, group: any EventLoopGroup, tls: ClientTLS?) {
        self.options = options
        self.group = group
        self.tls = tls
        self.servers = options.servers
        (events, eventsContinuation) = AsyncStream.makeStream(of: NATSEvent.self, bufferingPolicy: .bufferingNewest(1024))
    }

    /// Connects to the first reachable server of `options.servers`.
    public static func connect(_ options: NATSOptions, group: (any EventLoopGroup)? = nil) async throws -> NATSClient {
        let tls = try ClientTLS.make(options.tls, servers: options.servers)
        let client = NATSClient(options: options, group: group ?? MultiThreadedEventLoopGroup.singleton, tls: tls)
        var failures: [String] = []
        for server in options.servers {
            do {
                let channel = try await client.establish(server)
                client.didConnect(channel, server: server, reconnected: false)
                return client
            } catch NATSError.authorizationViolation {
                throw NATSError.authorizationViolation
            } catch let error as NATSError where error.isTLSConfiguration {
                client.lock.withLock { client.status = .closed }
                throw error
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

    func waitForCapacity() async {
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
    func scheduleFlushLocked() {
        guard !flushScheduled, let channel else { return }
        flushScheduled = true
        channel.eventLoop.execute { self.flushOutbound(channel) }
    }

    func flushOutbound(_ channel: any Channel) {
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

    func makeSubscription(_ subject: String, queue: String?, pendingLimit: Int?,
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
    func ensureRequestMux() throws -> String {
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

    func resolveRequest(_ message: NATSMessage, prefixLength: Int) {
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

    /// Closes the connection now. Pending requests and flushes fail with `closed`; a reconnect loop in
    /// progress is stopped and awaited (the client owns it: nothing runs on after `close()` returns).
    public func close() async {
        await close(stoppingReconnect: true)
    }

    /// `stoppingReconnect` is false only for the reconnect loop itself, when it gives up.
    func close(stoppingReconnect: Bool) async {
        let (channel, reconnect) = closeNow()
        if stoppingReconnect, let reconnect {
            reconnect.cancel()
            await reconnect.value
        }
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

    /// Marks the client closed and fails or ends everything waiting on it. Returns the channel still to close
    /// and the reconnect loop still to stop.
    func closeNow() -> ((any Channel)?, Task<Void, Never>?) {
        let (channel, reconnect, subs, flushes, reqs, waiters): ((any Channel)?, Task<Void, Never>?, [NATSSubscription],
                                                                  [EventLoopPromise<Void>], [EventLoopPromise<NATSMessage>],
                                                                  [CheckedContinuation<Void, Never>]) = lock.withLock {
            if status == .closed { return (nil, nil, [], [], [], []) }
            status = .closed
            keepaliveTask?.cancel()
            let ch = self.channel
            self.channel = nil
            let reconnect = reconnectTask
            reconnectTask = nil
            let subs = Array(subscriptions.values)
            subscriptions.removeAll()
            let flushes = pongQueue.compactMap { if case .flush(_, let p) = $0 { return p } else { return nil } }
            pongQueue.removeAll()
            let reqs = Array(requests.values)
            requests.removeAll()
            let waiters = capacityWaiters
            capacityWaiters.removeAll()
            return (ch, reconnect, subs, flushes, reqs, waiters)
        }
        for sub in subs { sub.finish() }
        for p in flushes { p.fail(NATSError.closed) }
        for p in reqs { p.fail(NATSError.closed) }
        for w in waiters { w.resume() }
        return (channel, reconnect)
    }
}
