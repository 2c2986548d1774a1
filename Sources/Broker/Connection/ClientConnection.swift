import Foundation
import Logging
import NIOCore
import NIOTLS
import Protocol

/// One client connection's NIO handler: it turns bytes into protocol operations (cumulating an op split across
/// reads), asks the `ClientSession` what each means, and carries out the answer: routing through its loop's
/// `Router`, writing through its `Outbound`. It keeps the client's subscription table and its timers.
///
/// Everything here runs on the connection's own event loop.
final class ClientConnection: ChannelInboundHandler, OutboundOwner, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let id: UInt64
    let server: BrokerServer
    let router: Router
    let outbound: Outbound
    let settings: ConnectionSettings
    let logger: Logger

    private var session: ClientSession
    private var context: ChannelHandlerContext?
    private var parser: ClientParser
    private var cumulation: ByteBuffer?
    private(set) var subscriptions: [ByteBuffer: Subscription] = [:]
    /// What this client last published to, and what it matched (see `Router.LastMatch`).
    private var lastMatch = Router.LastMatch()

    // Statistics for /connz.
    let started = Date()
    private(set) var lastActivity = Date()
    var inMsgs: UInt64 = 0
    var inBytes: UInt64 = 0
    private(set) var remoteHost = ""
    private(set) var remotePort = 0

    /// INFO's nonce (nkey users sign it), empty when no nkey users exist.
    private var nonce: [UInt8] = []
    /// With verify_and_map: the client certificate's names, in the order users are looked up by.
    var certificateIdentities: [String]?
    /// A CONNECT is being checked off the loop (bcrypt): what arrives meanwhile waits in `cumulation`.
    private var authPending = false

    // Liveness.
    private var lastIn = NIODeadline.now()
    private var pingTask: RepeatedTask?
    private var authTimer: Scheduled<Void>?

    // TLS (only on a TLS client port).
    /// In front of this handler until the connection's TLS (or plain, with allow_non_tls) start is settled.
    var tlsNegotiator: TLSNegotiationHandler?
    /// Whether the client speaks TLS.
    private(set) var isTLS = false
    /// With verify_and_map: who the client certificate says the client is (candidate user names).
    private(set) var tlsIdentities: CertificateIdentities?

    init(id: UInt64, server: BrokerServer, router: Router, settings: ConnectionSettings, loopCount: Int, logger: Logger) {
        self.id = id
        self.server = server
        self.router = router
        self.settings = settings
        self.outbound = Outbound(id: id, router: router, loopCount: loopCount, maxPending: settings.maxPending)
        self.parser = ClientParser(
            maxPayload: settings.maxPayload,
            maxControlLine: settings.maxControlLine,
            requireConnectFirst: settings.authRequired
        )
        var logger = logger
        logger[metadataKey: "cid"] = "\(id)"
        self.logger = logger
        self.session = ClientSession(authRequired: settings.authRequired, pingMax: settings.pingMax)
        outbound.owner = self
    }

    var isClosed: Bool { session.isClosed }
    var options: ConnectOptions { session.options }
    var name: String? { session.options.name }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        outbound.context = context
    }

    /// Breaks the handler <-> context cycle, or every connection would stay in memory after it closes.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        tlsNegotiator = nil
        outbound.close()
    }

    func channelActive(context: ChannelHandlerContext) {
        if let address = context.channel.remoteAddress {
            remoteHost = address.ipAddress ?? ""
            remotePort = address.port ?? 0
        }
        server.register(self)
        if server.authenticator.nonceRequired { nonce = Self.makeNonce() }
        // With handshake_first, INFO waits for the handshake (the TLS negotiator says when).
        if settings.infoFirst {
            ServerEncoder.writeInfo(into: &outbound.out, json: infoJSON())
        }
        if server.connectionAccepted() == false {
            fail(.maxConnectionsExceeded)
            return
        }
        logger.debug("Client connection created", metadata: ["addr": "\(remoteHost):\(remotePort)"])
        // On a TLS port the session's timers start once the handshake is done, as nats-server does (its auth
        // timer must not fire into a handshake).
        if !settings.awaitsTLS { startSession(context.eventLoop) }
        outbound.flush()
    }

    private func startSession(_ eventLoop: any EventLoop) {
        if settings.authRequired {
            authTimer = eventLoop.scheduleTask(in: settings.authTimeout) { [self] in
                if session.authTimerExpired() { fail(.authenticationTimeout) }
            }
        }
        pingTask = eventLoop.scheduleRepeatedTask(initialDelay: settings.pingInterval, delay: settings.pingInterval) { [self] _ in
            pingTimerFired()
        }
    }

    /// This connection's INFO: its nonce (nkey users), and `tls_required` overridden after handshake_first.
    private func infoJSON(tlsRequired: Bool? = nil) -> String {
        server.infoJSON(clientID: id, clientIP: remoteHost, nonce: nonce.isEmpty ? nil : String(decoding: nonce, as: UTF8.self),
                        tlsRequired: tlsRequired)
    }

    // MARK: - TLS start (called by the TLSNegotiationHandler in front of this one)

    /// handshake_first's fallback: INFO in the clear after all, with the server's own `tls_required`.
    func sendInitialInfo() {
        guard !session.isClosed else { return }
        ServerEncoder.writeInfo(into: &outbound.out, json: infoJSON())
        outbound.flush()
    }

    /// Refused before its handshake (`connection_rate_limit`): the error in the clear, then closed.
    func refuse(_ text: String) {
        guard !session.isClosed else { return }
        ServerEncoder.writeError(into: &outbound.out, text)
        close()
    }

    /// The connection's start is settled: over TLS (`secure`) or plain (allow_non_tls). After handshake_first,
    /// INFO goes out now, over TLS, with `tls_required: true` (as nats-server).
    func tlsEstablished(secure: Bool, identities: CertificateIdentities?, sendInfo: Bool) {
        tlsNegotiator = nil
        guard !session.isClosed, let context else { return }
        isTLS = secure
        tlsIdentities = identities
        // verify_and_map: the names users are looked up by, in nats-server's order (the DN comparison included).
        certificateIdentities = identities.map { $0.candidateNames(users: server.authenticator.users.keys) }
        if sendInfo {
            ServerEncoder.writeInfo(into: &outbound.out, json: infoJSON(tlsRequired: true))
        }
        startSession(context.eventLoop)
        outbound.flush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent {
            tlsNegotiator?.handshakeCompleted()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        guard !session.isClosed else { return }
        if authPending {
            // Reads already under way while the CONNECT is checked: kept, in order, for afterwards, up to one
            // largest op's worth (reading is paused, so only what was in flight arrives; more is hostile).
            if cumulation == nil { cumulation = incoming } else { cumulation!.writeBuffer(&incoming) }
            if cumulation!.readableBytes > settings.maxControlLine + settings.maxPayload + 64 * 1024 {
                logger.info("Closing connection: too much data while its CONNECT is checked",
                            metadata: ["addr": "\(remoteHost):\(remotePort)"])
                close()
            }
            return
        }
        lastActivity = Date()
        lastIn = .now()
        router.stallTarget = nil  // only what this read delivers may pause this publisher
        // Messages other loops queued for us before this read go out before anything this read produces.
        outbound.drainInbox()
        if var pending = cumulation {
            // Complete the op split across reads by copying only its missing bytes, then parse the rest of this
            // read in place (copying the whole read behind a small remainder cost a memcpy per read).
            cumulation = nil
            while pending.readableBytes > 0, incoming.readableBytes > 0, !session.isClosed {
                let take: Int
                if let needed = parser.payloadBytesNeeded {
                    take = min(max(needed - pending.readableBytes, 1), incoming.readableBytes)
                } else if let newline = incoming.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                    take = newline - incoming.readerIndex + 1
                } else {
                    take = incoming.readableBytes
                }
                var piece = incoming.readSlice(length: take)!
                pending.writeBuffer(&piece)
                process(&pending)
            }
            if pending.readableBytes > 0 {
                keepRemainder(pending)  // this read did not complete it
            } else {
                process(&incoming)
                keepRemainder(incoming)
            }
        } else {
            process(&incoming)
            keepRemainder(incoming)
        }
        // A read that ended in a close gets no channelReadComplete: what it published must still go out.
        if session.isClosed { router.flushPending() }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        router.flushPending()
        if let target = router.stallTarget {
            router.stallTarget = nil
            stallProducer(context: context, behind: target)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        outbound.writabilityChanged(context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tlsNegotiator, tlsNegotiator.handshakeFailed(error) { return }
        logger.debug("Client connection error", metadata: ["error": "\(error)"])
        close()
    }

    private func keepRemainder(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0, !session.isClosed else { return }
        var rest = buffer
        // Don't let a long-lived remainder pin a large, mostly consumed read buffer.
        if rest.readerIndex > 64 * 1024 { rest.discardReadBytes() }
        cumulation = rest
    }

    // MARK: - Fast-producer stall (nats-server's stalledWait)

    /// nats-server: stallClientMinDuration 2 ms per check, stallTotalAllowed 10 ms per read.
    static let stallCheck: TimeAmount = .milliseconds(2)
    static let stallMaximum = 5  // checks, 10 ms in all

    /// Stops reading from this publisher until the subscriber that is behind has caught up (its gate opens)
    /// or 10 ms have passed, so it can catch up instead of being cut off. Bounded, as nats-server's stall.
    private func stallProducer(context: ChannelHandlerContext, behind target: Outbound) {
        guard !session.isClosed, let sync = context.channel.syncOptions else { return }
        try? sync.setOption(.autoRead, value: false)
        scheduleStallCheck(on: context.eventLoop, behind: target, remaining: Self.stallMaximum)
    }

    private func scheduleStallCheck(on eventLoop: any EventLoop, behind target: Outbound, remaining: Int) {
        eventLoop.scheduleTask(in: Self.stallCheck) { [self] in
            guard !session.isClosed, let sync = self.context?.channel.syncOptions else { return }
            if remaining > 1 && target.stallGate.load(ordering: .relaxed) && !target.isClosed {
                scheduleStallCheck(on: eventLoop, behind: target, remaining: remaining - 1)
            } else if !authPending {
                try? sync.setOption(.autoRead, value: true)  // resumes reading at once (not while a CONNECT is checked)
            }
        }
    }

    // MARK: - Operations

    private func process(_ buffer: inout ByteBuffer) {
        while !session.isClosed && !authPending {
            var op = ClientOp.ok
            do {
                guard try parser.next(&buffer, into: &op) else { return }
            } catch {
                fail(error)
                return
            }
            handle(consume op)
        }
    }

    /// `consuming`: the op's buffers move into the handler (a PUB's subject and payload are not copied, which
    /// cost retains and releases per message).
    private func handle(_ op: consuming ClientOp) {
        switch consume op {
        case .pub(let publish):
            handlePublish(publish)
        case .ping:
            ServerEncoder.writePong(into: &outbound.out)
            router.markForFlush(outbound)
        case .pong:
            session.pongReceived()
        case .sub(let subject, let queue, let sid):
            handleSubscribe(subject: subject, queue: queue, sid: sid)
        case .unsub(let sid, let max):
            handleUnsubscribe(sid: sid, max: max)
        case .connect(let json):
            handleConnect(json)
        case .ok:
            break  // nats-server ignores it from a client
        case .info(let json):
            // nats-server parses a client's INFO and closes the connection when it is not JSON.
            if (try? JSONSerialization.jsonObject(with: Data(json.readableBytesView))) == nil {
                fail(.protocolViolation("INFO: invalid JSON"))
            }
        case .err(let text):
            // nats-server logs a client's -ERR and closes the connection.
            logger.info("Client sent -ERR, closing", metadata: ["error": "\(String(buffer: text))"])
            close()
        }
    }

    private func handleConnect(_ json: ByteBuffer) {
        let decoded: ConnectOptions
        do {
            decoded = try ConnectOptions.decode(json)
        } catch {
            fail(error)
            return
        }
        checkConnect(decoded)
    }

    /// Authenticates `decoded` (on the pool when it takes bcrypt). A verdict that comes back after a reload
    /// replaced the configuration it was made under is thrown away and the check runs again.
    private func checkConnect(_ decoded: ConnectOptions) {
        guard let eventLoop = context?.eventLoop else { return }
        let generation = server.authGeneration
        let verdict = server.authenticate(decoded, nonce: nonce, certificateIdentities: certificateIdentities,
                                          on: eventLoop) { verdict in
            if self.server.authGeneration != generation, !self.session.isClosed {
                self.checkConnect(decoded)
            } else {
                self.connectChecked(decoded, verdict: verdict)
            }
        }
        if let verdict {
            connectChecked(decoded, verdict: verdict)
        } else {
            // bcrypt, off the loop: stop reading; what follows CONNECT is processed once the verdict is in.
            authPending = true
            try? context?.channel.syncOptions?.setOption(.autoRead, value: false)
        }
    }

    private func connectChecked(_ decoded: ConnectOptions, verdict: Authenticator.Result) {
        let resume = authPending
        authPending = false
        guard !session.isClosed else { return }
        switch session.connectReceived(decoded, verdict: verdict) {
        case .reject(let error):
            if error == .authorizationViolation {
                logger.info("Authorization Violation", metadata: ["addr": "\(remoteHost):\(remotePort)"])
            }
            fail(error)
        case .accept(let sendOK):
            authTimer?.cancel()
            authTimer = nil
            parser.requireConnectFirst = false
            parser.headersEnabled = decoded.headers
            if sendOK { writeOK() }
        }
        guard resume else { return }
        // Back from the pool: process what arrived after CONNECT, then read on.
        if !session.isClosed, var pending = cumulation {
            cumulation = nil
            process(&pending)
            keepRemainder(pending)
        }
        router.flushPending()
        // A further CONNECT in what was pending may be under check again: then reading stays paused.
        if !session.isClosed && !authPending { try? context?.channel.syncOptions?.setOption(.autoRead, value: true) }
    }

    private func handleSubscribe(subject: ByteBuffer, queue: ByteBuffer?, sid: ByteBuffer) {
        switch session.subscribeReceived(subject: subject, queue: queue, sidInUse: subscriptions[sid] != nil) {
        case .reject(let error):
            if case .subscriptionViolation = error {
                logger.error("Subscription Violation", metadata: [
                    "subject": "\(String(buffer: subject))", "queue": "\(queue.map { String(buffer: $0) } ?? "")",
                    "sid": "\(String(buffer: sid))", "user": "\(session.user ?? "")"])
            }
            fail(error)
        case .keepExisting(let sendOK):
            if sendOK { writeOK() }
        case .subscribe(let sendOK):
            let subjectBytes = Array(subject.readableBytesView)
            let queueBytes = queue.map { Array($0.readableBytesView) }
            let sub = Subscription(
                client: outbound,
                subject: subjectBytes,
                queue: queueBytes,
                sid: ByteBuffer.compactCopy(of: sid),
                acceptsHeaders: session.options.headers,
                deliveryFilter: session.rules?.deliveryFilter(subject: subjectBytes, queue: queueBytes),
                replyPermits: session.replyPermits
            )
            do {
                try server.sublist.insert(sub)
            } catch {
                fail(.invalidSubject)
                return
            }
            subscriptions[sub.sid] = sub
            if sendOK { writeOK() }
        }
    }

    private func handleUnsubscribe(sid: ByteBuffer, max: Int?) {
        if let sub = subscriptions[sid] {
            if let max, max > 0, max > sub.delivered.load(ordering: .relaxed) {
                sub.maxDeliveries.store(max, ordering: .relaxed)
                // Deliveries on other loops may have counted past the new limit before they could see it.
                if sub.delivered.load(ordering: .relaxed) >= max { removeSubscription(sub) }
            } else {
                removeSubscription(sub)
            }
        }
        if session.unsubscribeReceived() { writeOK() }
    }

    /// Removes this very subscription. A delayed removal (auto-unsubscribe) must not take a newer subscription
    /// that reuses the sid, so the identity is checked, not only the sid.
    func removeSubscription(_ sub: Subscription) {
        guard let current = subscriptions[sub.sid], current === sub else { return }
        subscriptions[sub.sid] = nil
        server.sublist.remove(sub)
    }

    // MARK: - Publish path

    @inline(__always)
    private func handlePublish(_ publish: consuming Publish) {
        let size = UInt64(publish.payload.readableBytes)
        inMsgs &+= 1
        inBytes &+= size
        router.inMsgs &+= 1
        router.inBytes &+= size
        // As nats-server, mappings apply first and permissions judge the subject the message will really have.
        if let mapper = server.subjectMapper, let mapped = mapper.map(publish.subject) {
            publish.subject = mapped
        }
        let action = session.publishReceived(subject: publish.subject, reply: publish.reply, now: .now())
        if let error = action.error { fail(error) }
        if let violation = action.violation {
            logger.error("Publish Violation", metadata: [
                "subject": "\(String(buffer: publish.subject))", "user": "\(session.user ?? "")"])
            fail(violation)
            return
        }
        if action.sendOK { writeOK() }
        router.routeFromClient(publish, origin: outbound, echo: session.options.echo,
                               noResponders: session.options.noResponders, last: &lastMatch)
    }

    // MARK: - Output and closing

    private func writeOK() {
        ServerEncoder.writeOK(into: &outbound.out)
        router.markForFlush(outbound)
    }

    /// Sends an error as nats-server would and closes the connection when nats-server would.
    private func fail(_ error: ProtocolError) {
        if let text = error.wireText {
            ServerEncoder.writeError(into: &outbound.out, text)
        }
        if error.closesConnection {
            if case .protocolViolation(let why) = error {
                logger.info("Closing connection: protocol violation", metadata: ["reason": "\(why)"])
            } else {
                logger.debug("Closing connection", metadata: ["error": "\(error.wireText ?? "")"])
            }
            close()
        } else {
            router.markForFlush(outbound)
        }
    }

    /// Flushes what is pending and closes the connection.
    func close() {
        guard !session.isClosed else { return }
        outbound.flush()
        let context = self.context
        tearDown()
        context?.close(promise: nil)
    }

    /// Cut off without flushing: the client cannot keep up (nats-server sends no -ERR for this).
    func cutOff(slowConsumer reason: String) {
        guard !session.isClosed else { return }
        router.slowConsumers &+= 1
        server.countSlowConsumer()
        logger.warning("Slow Consumer Detected", metadata: ["reason": "\(reason)", "addr": "\(remoteHost):\(remotePort)"])
        let context = self.context
        tearDown()
        context?.close(promise: nil)
    }

    /// After a reload: a client the new authorization would not admit is told so and closed; one it admits
    /// takes its user's new permissions, and loses the subscriptions they no longer allow (as nats-server's
    /// reload: 'Permissions Violation for Subscription to "x" (sid "1")').
    func recheckAuthorization() {
        // As nats-server, a client still to send CONNECT is checked too (without credentials it is closed).
        guard !session.isClosed, !authPending, let eventLoop = context?.eventLoop else { return }
        let generation = server.authGeneration
        let verdict = server.authenticate(session.options, nonce: nonce, certificateIdentities: certificateIdentities,
                                          on: eventLoop) { verdict in
            // A later reload's own re-check decides (verdicts may come back out of order).
            guard self.server.authGeneration == generation else { return }
            self.authorizationRechecked(verdict)
        }
        if let verdict { authorizationRechecked(verdict) }
    }

    private func authorizationRechecked(_ verdict: Authenticator.Result) {
        guard !session.isClosed else { return }
        defer { router.flushPending() }  // not in a read: what this writes goes out now
        guard case .allowed(_, let rules) = verdict else {
            logger.info("Authorization Violation after reload", metadata: ["addr": "\(remoteHost):\(remotePort)"])
            fail(.authorizationViolation)
            return
        }
        if rules === session.rules { return }
        session.setPermissions(rules)
        for sub in subscriptions.values.sorted(by: { $0.sidString < $1.sidString }) {
            if let rules, !rules.allowsSubscribe(subject: sub.subjectBytes, queue: sub.queueBytes) {
                removeSubscription(sub)
                fail(.subscriptionRevoked(subject: sub.subjectBytes, queue: sub.queueBytes, sid: Array(sub.sid.readableBytesView)))
                continue
            }
            // The delivery filter and reply permits belong to the subscription: replace it with one made
            // under the new rules (same sid, same delivery count and limit).
            let replacement = Subscription(
                client: outbound, subject: sub.subjectBytes, queue: sub.queueBytes, sid: sub.sid,
                acceptsHeaders: sub.acceptsHeaders,
                deliveryFilter: rules?.deliveryFilter(subject: sub.subjectBytes, queue: sub.queueBytes),
                replyPermits: session.replyPermits)
            replacement.maxDeliveries.store(sub.maxDeliveries.load(ordering: .relaxed), ordering: .relaxed)
            replacement.delivered.store(sub.delivered.load(ordering: .relaxed), ordering: .relaxed)
            guard (try? server.sublist.insert(replacement)) != nil else { continue }
            server.sublist.remove(sub)
            subscriptions[sub.sid] = replacement
        }
    }

    /// nats-server's nonce: 11 random bytes, base64url without padding (15 characters).
    static func makeNonce() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        let raw = (0..<11).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Array(Data(raw).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "").utf8)
    }

    /// Sends the lame-duck INFO (`ldm: true`).
    func sendInfo(_ json: String) {
        guard !session.isClosed else { return }
        ServerEncoder.writeInfo(into: &outbound.out, json: json)
        outbound.flush()
    }

    private func tearDown() {
        guard session.close() else { return }
        authTimer?.cancel()
        pingTask?.cancel()
        for sub in subscriptions.values { server.sublist.remove(sub) }
        subscriptions.removeAll()
        cumulation = nil
        outbound.close()
        server.unregister(self)
        server.connectionClosed()
        logger.debug("Client connection closed")
    }

    // MARK: - Liveness

    private func pingTimerFired() {
        switch session.pingTimerFired(idle: NIODeadline.now() - lastIn, interval: settings.pingInterval) {
        case .none:
            break
        case .closeStale:
            logger.debug("Stale Client Connection - Closing")
            fail(.staleConnection)
        case .sendPing:
            ServerEncoder.writePing(into: &outbound.out)
            outbound.flush()
        }
    }

    /// Called about once a second by the server: cuts off a client whose socket took no bytes for longer than
    /// write_deadline while we had bytes for it (nats-server's write deadline, a slow consumer too).
    func checkWriteDeadline(now: NIODeadline) {
        if outbound.writeDeadlinePassed(now: now, deadline: settings.writeDeadline) {
            cutOff(slowConsumer: "write_deadline of \(settings.writeDeadline) exceeded")
        }
    }
}

/// The per-connection snapshot of server options (taken at accept; a reload affects new connections).
struct ConnectionSettings: Sendable {
    var maxPayload: Int
    var maxControlLine: Int
    var maxPending: Int
    var pingInterval: TimeAmount
    var pingMax: Int
    var writeDeadline: TimeAmount
    var authTimeout: TimeAmount
    var authRequired: Bool
    /// False with handshake_first: INFO waits for the TLS handshake.
    var infoFirst: Bool = true
    /// A TLS port: the session starts when `TLSNegotiationHandler` says so.
    var awaitsTLS: Bool = false
}
