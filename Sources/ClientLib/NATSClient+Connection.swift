import Foundation
import NIOCore
import NIOPosix
import Protocol

extension NATSClient {
    // MARK: - Connection management

    /// TCP connect plus the INFO / CONNECT / PING / PONG handshake.
    func establish(_ server: String) async throws -> any Channel {
        let target = try ServerAddress(server)
        let handshake = group.next().makePromise(of: Void.self)
        let tls = self.tls
        let handshakeFirst = tls?.handshakeFirst ?? false
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(TimeAmount(options.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16384, maximum: 1 << 20))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    if handshakeFirst, let tls {
                        // handshake_first: TLS before the server's INFO.
                        try channel.pipeline.syncOperations.addHandler(tls.makeHandler(for: target))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ClientHandler(client: self, connect: connectOptions(for: target), target: target, tls: tls,
                                      secured: handshakeFirst, handshake: handshake))
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

    func connectOptions(for target: ServerAddress) -> ConnectOptions {
        var connect = ConnectOptions()
        connect.verbose = false
        connect.pedantic = false
        connect.headers = true
        connect.noResponders = true
        connect.protocolVersion = 1
        connect.lang = "swift"
        connect.version = "0.1.0"
        connect.echo = options.echo
        connect.name = options.name
        connect.authToken = options.token ?? target.token
        connect.user = options.user ?? target.user
        connect.pass = options.password ?? target.password
        return connect
    }

    /// A handshake completed: this channel is now the connection. Replays subscriptions, then what was published
    /// while disconnected.
    func didConnect(_ channel: any Channel, server: String, reconnected: Bool) {
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

    func startKeepaliveLocked(_ channel: any Channel) {
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
            guard options.allowReconnect else { return (.close, flushes, waiters) }  // closeNow() does the rest
            status = .reconnecting
            // Unsent publishes wait for the next connection (control lines in them are harmless to repeat).
            reconnectBuffer = outbound
            outbound = ByteBuffer()
            // Started under the lock, so a `close()` from now on finds it, stops it and waits for it.
            reconnectTask = Task { await self.reconnectLoop() }
            return (.reconnect, flushes, waiters)
        }
        if next == .ignore { return }
        for p in flushes { p.fail(NATSError.connectionFailed("disconnected: \(reason)")) }
        for w in waiters { w.resume() }
        eventsContinuation.yield(.disconnected(reason: reason))
        if next == .close {
            // No channel is left to close: closing needs no task.
            _ = closeNow()
            eventsContinuation.yield(.closed)
            eventsContinuation.finish()
        }
    }

    func reconnectLoop() async {
        var attempt = 0
        var index = 0
        while options.maxReconnectAttempts < 0 || attempt < options.maxReconnectAttempts {
            let candidates = lock.withLock { servers }
            let (isClosed, current) = lock.withLock { (status == .closed, currentServer) }
            if isClosed || Task.isCancelled { return }
            // Start with the server after the one we lost.
            if attempt == 0, let i = candidates.firstIndex(of: current) { index = i + 1 }
            let server = candidates[index % candidates.count]
            index += 1
            try? await Task.sleep(for: backoff(attempt: attempt))
            if Task.isCancelled { return }  // close() stopped us
            attempt += 1
            do {
                let channel = try await establish(server)
                didConnect(channel, server: server, reconnected: true)
                return
            } catch {
                continue
            }
        }
        await close(stoppingReconnect: false)
    }

    /// reconnectWait x 2^(attempt-1), capped at maxReconnectWait, plus up to reconnectJitter; none before the
    /// first attempt.
    func backoff(attempt: Int) -> Duration {
        if attempt == 0 { return .zero }
        return Backoff(initial: options.reconnectWait, factor: 2, cap: options.maxReconnectWait,
                       extra: options.reconnectJitter).delay(attempt: attempt)
    }
}
