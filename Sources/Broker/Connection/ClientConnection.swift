import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Protocol
import Synchronization

/// One client connection: the NIO handler that turns bytes into protocol operations and runs them.
///
/// Everything here runs on the connection's own event loop, except `deliver(...)`, which publishers on any loop
/// call: it writes into `out` when the publisher shares this loop, and otherwise into the publisher loop's
/// `StagingSlot`, which that loop hands over once per read. No lock is taken per message.
final class ClientConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let id: UInt64
    let server: BrokerServer
    let loop: LoopContext
    let settings: ConnectionSettings
    /// One slot per event loop; the slot of this connection's own loop is unused (it writes `out` directly).
    let staging: [StagingSlot]
    let logger: Logger

    private var machine: ConnectionStateMachine
    private var context: ChannelHandlerContext?
    private var parser: ClientParser
    private var cumulation: ByteBuffer?
    private(set) var options = ConnectOptions()
    private(set) var subscriptions: [ByteBuffer: Subscription] = [:]
    /// Batches other loops encoded for this client, waiting for this loop (see `enqueueFromOtherLoop`).
    private let inbox = NIOLockedValueBox(Inbox())
    struct Inbox {
        var batches: [ByteBuffer] = []
        var messages = 0
        var bytes = 0
        var drainScheduled = false
    }
    /// Bytes for this client produced on its own loop; flushed once per read by `LoopContext.flushPending`.
    var out: ByteBuffer
    var queuedForFlush = false

    // Statistics for /connz.
    let started = Date()
    private(set) var lastActivity = Date()
    var inMsgs: UInt64 = 0
    var inBytes: UInt64 = 0
    var outMsgs: UInt64 = 0
    var outBytes: UInt64 = 0
    private(set) var remoteHost = ""
    private(set) var remotePort = 0

    // Liveness.
    private var lastIn = NIODeadline.now()
    private var pingTask: RepeatedTask?
    private var authTimer: Scheduled<Void>?
    /// Bytes handed to the channel, and the last time the socket took some: for the write deadline.
    private var writeStall: (since: NIODeadline, written: UInt64)?

    init(id: UInt64, server: BrokerServer, loop: LoopContext, settings: ConnectionSettings, loopCount: Int, logger: Logger) {
        self.id = id
        self.server = server
        self.loop = loop
        self.settings = settings
        self.staging = (0..<loopCount).map { _ in StagingSlot() }
        self.parser = ClientParser(
            maxPayload: settings.maxPayload,
            maxControlLine: settings.maxControlLine,
            requireConnectFirst: settings.authRequired
        )
        self.out = ByteBufferAllocator().buffer(capacity: 4096)
        var logger = logger
        logger[metadataKey: "cid"] = "\(id)"
        self.logger = logger
        self.machine = ConnectionStateMachine(authRequired: settings.authRequired, pingMax: settings.pingMax)
    }

    var isClosed: Bool { machine.isClosed }
    var name: String? { options.name }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Breaks the handler <-> context cycle, or every connection would stay in memory after it closes.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if let address = context.channel.remoteAddress {
            remoteHost = address.ipAddress ?? ""
            remotePort = address.port ?? 0
        }
        loop.connections[id] = self
        ServerEncoder.writeInfo(into: &out, json: server.infoJSON(clientID: id, clientIP: remoteHost))
        if server.connectionAccepted() == false {
            fail(.maxConnectionsExceeded)
            return
        }
        logger.debug("Client connection created", metadata: ["addr": "\(remoteHost):\(remotePort)"])
        if settings.authRequired {
            authTimer = context.eventLoop.scheduleTask(in: settings.authTimeout) { [self] in
                if machine.authTimerExpired() { fail(.authenticationTimeout) }
            }
        }
        pingTask = context.eventLoop.scheduleRepeatedTask(initialDelay: settings.pingInterval, delay: settings.pingInterval) { [self] _ in
            pingTimerFired()
        }
        flushOut()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        guard !machine.isClosed else { return }
        lastActivity = Date()
        lastIn = .now()
        // Messages other loops queued for us before this read go out before anything this read produces.
        drainInbox()
        if var pending = cumulation {
            // Complete the op split across reads by copying only its missing bytes, then parse the rest of this
            // read in place (copying the whole read behind a small remainder cost a memcpy per read).
            cumulation = nil
            while pending.readableBytes > 0, incoming.readableBytes > 0, !machine.isClosed {
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
        if machine.isClosed { loop.flushPending() }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        loop.flushPending()
        if let target = stallTarget {
            stallTarget = nil
            stallProducer(context: context, behind: target)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Past 75% of max_pending this client falls behind: publishers feeding it pause briefly (see
        // `stallProducer`). Below 50% it has caught up. Past max_pending it is cut off (`checkPending`).
        stallGate.store(!context.channel.isWritable, ordering: .relaxed)
    }

    // MARK: - Fast-producer stall (nats-server's stalledWait)

    /// Set while this client's outbound bytes are above 75% of max_pending; publishers on any loop read it.
    let stallGate = Atomic<Bool>(false)
    /// A client this read delivered to while it was behind its gate.
    private var stallTarget: ClientConnection?
    /// nats-server: stallClientMinDuration 2 ms per check, stallTotalAllowed 10 ms per read.
    static let stallCheck: TimeAmount = .milliseconds(2)
    static let stallMaximum = 5  // checks, 10 ms in all

    /// Stops reading from this publisher until the subscriber that is behind has caught up (its gate opens)
    /// or 10 ms have passed, so it can catch up instead of being cut off. Bounded, as nats-server's stall.
    private func stallProducer(context: ChannelHandlerContext, behind target: ClientConnection) {
        guard !machine.isClosed, let sync = context.channel.syncOptions else { return }
        try? sync.setOption(.autoRead, value: false)
        scheduleStallCheck(on: context.eventLoop, behind: target, remaining: Self.stallMaximum)
    }

    private func scheduleStallCheck(on eventLoop: any EventLoop, behind target: ClientConnection, remaining: Int) {
        eventLoop.scheduleTask(in: Self.stallCheck) { [self] in
            guard !machine.isClosed, let sync = self.context?.channel.syncOptions else { return }
            if remaining > 1 && target.stallGate.load(ordering: .relaxed) && !target.machine.isClosed {
                scheduleStallCheck(on: eventLoop, behind: target, remaining: remaining - 1)
            } else {
                try? sync.setOption(.autoRead, value: true)  // resumes reading at once
            }
        }
    }

    /// After handing bytes to the channel: past max_pending, the client is a slow consumer.
    private func checkPending(_ context: ChannelHandlerContext) {
        guard let buffered = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes),
              buffered > settings.maxPending else { return }
        slowConsumer(reason: "max_pending of \(settings.maxPending) bytes exceeded")
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("Client connection error", metadata: ["error": "\(error)"])
        close()
    }

    private func keepRemainder(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0, !machine.isClosed else { return }
        var rest = buffer
        // Don't let a long-lived remainder pin a large, mostly consumed read buffer.
        if rest.readerIndex > 64 * 1024 { rest.discardReadBytes() }
        cumulation = rest
    }

    // MARK: - Operations

    private func process(_ buffer: inout ByteBuffer) {
        while !machine.isClosed {
            let op: ClientOp?
            do {
                op = try parser.next(&buffer)
            } catch {
                fail(error)
                return
            }
            guard let op else { return }
            handle(op)
        }
    }

    private func handle(_ op: ClientOp) {
        switch op {
        case .pub(let publish):
            handlePublish(publish)
        case .ping:
            ServerEncoder.writePong(into: &out)
            markForFlush()
        case .pong:
            machine.pongReceived()
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
        options = decoded
        switch machine.connectReceived(decoded, authRequired: server.authRequired, authenticated: server.authenticate(decoded)) {
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
    }

    private func handleSubscribe(subject: ByteBuffer, queue: ByteBuffer?, sid: ByteBuffer) {
        if subscriptions[sid] != nil {
            // nats-server keeps the first subscription for a reused sid.
            if options.verbose { writeOK() }
            return
        }
        let sub = Subscription(
            client: self,
            subject: Array(subject.readableBytesView),
            queue: queue.map { Array($0.readableBytesView) },
            sid: Self.compact(sid),
            acceptsHeaders: options.headers
        )
        do {
            try server.sublist.insert(sub)
        } catch {
            fail(.invalidSubject)
            return
        }
        subscriptions[sub.sid] = sub
        if options.verbose { writeOK() }
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
        if options.verbose { writeOK() }
    }

    /// Removes this very subscription. A delayed removal (auto-unsubscribe) must not take a newer subscription
    /// that reuses the sid, so the identity is checked, not only the sid.
    func removeSubscription(_ sub: Subscription) {
        guard let current = subscriptions[sub.sid], current === sub else { return }
        subscriptions[sub.sid] = nil
        server.sublist.remove(sub)
    }

    // MARK: - Publish path

    private func handlePublish(_ publish: Publish) {
        inMsgs &+= 1
        inBytes &+= UInt64(publish.payload.readableBytes)
        loop.inMsgs &+= 1
        loop.inBytes &+= UInt64(publish.payload.readableBytes)
        if options.pedantic && !Subject.isValidPublish(publish.subject) {
            // nats-server reports it and still delivers the message (client.go processPub).
            fail(.invalidPublishSubject)
        }
        if options.verbose { writeOK() }
        var publish = publish
        if let mapper = server.subjectMapper, let mapped = mapper.map(publish.subject) {
            publish.subject = mapped
        }
        let first = publish.subject.readableBytes > 6 ? publish.subject.getInteger(at: publish.subject.readerIndex, as: UInt8.self) : nil
        if first == UInt8(ascii: "$") || first == UInt8(ascii: "f"), let falco = server.falcoIngest {
            if publish.subject.hasPrefix("$FALCO.INGEST") {
                ingestFromPipe(publish, falco)
                return
            }
            if server.mapSidekickSubjects && publish.subject.hasPrefix("falco.") {
                guard let mapped = mapSidekick(publish, falco) else { return }
                publish = mapped
            }
        }
        var captured = false
        if let jetStream = server.jetStream {
            switch handleJetStream(publish, jetStream) {
            case .consumed: return
            case .captured: captured = true
            case .none: break
            }
        }
        // A stream that captured it answers the request (the PubAck): no no-responders status then.
        route(publish, noResponders: !captured)
    }

    // MARK: - Falco ingest

    /// falcosidekick's NATS output publishes on `falco.<lower-case priority>.<rule slug>` with no headers: the
    /// alert is checked as every ingest path checks it and goes on as `FALCO.<Priority>` with the Falco
    /// headers. A bad alert is counted, logged and not routed (nil).
    private func mapSidekick(_ publish: Publish, _ falco: FalcoIngest) -> Publish? {
        let body = publish.payload.readableBytesView.dropFirst(publish.headerLength ?? 0)
        let result = body.withContiguousStorageIfAvailable { FalcoAlert.validate(UnsafeRawBufferPointer($0)) }
            ?? FalcoAlert.validate(Array(body))
        switch result {
        case .failure(let rejection):
            falco.countRejected(.sidekick, reason: rejection.reason.rawValue, detail: rejection.detail)
            return nil
        case .success(let alert):
            falco.countAccepted(.sidekick)
            return Self.falcoPublish(alert, body: body, reply: publish.reply)
        }
    }

    static func falcoPublish(_ alert: FalcoAlert, body: some Collection<UInt8>, reply: ByteBuffer?) -> Publish {
        let headers = alert.headerBlock()
        var payload = ByteBufferAllocator().buffer(capacity: headers.count + body.count)
        payload.writeBytes(headers)
        payload.writeBytes(body)
        return Publish(subject: ByteBuffer(string: alert.subject), reply: reply, headerLength: headers.count, payload: payload)
    }

    /// `falco-pipe` sends each line it reads to `$FALCO.INGEST` with a reply subject: brokerd checks it,
    /// publishes it, and answers once it is accepted (stored and synced when a stream captures FALCO.>):
    /// `{"ok":true,"subject":...}`, or `{"error":...,"reason":...,"retry":bool}`.
    private func ingestFromPipe(_ publish: Publish, _ falco: FalcoIngest) {
        let replyTo = publish.reply.map(Self.compact)
        let answer: @Sendable (String) -> Void = { [self] text in
            guard let replyTo else { return }
            loop.eventLoop.execute { [self] in deliverFromServer(subject: replyTo, payload: ByteBuffer(string: text)) }
        }
        let body = Array(publish.payload.readableBytesView.dropFirst(publish.headerLength ?? 0))
        switch FalcoAlert.validate(body) {
        case .failure(let rejection):
            falco.countRejected(.pipe, reason: rejection.reason.rawValue, detail: rejection.detail)
            answer(#"{"error":\#(ServerInfo.quote(rejection.detail)),"reason":"\#(rejection.reason.rawValue)","retry":false}"#)
        case .success(let alert):
            ingest(alert, body: body, path: .pipe, falco) { outcome in
                switch outcome {
                case .accepted:
                    answer(#"{"ok":true,"subject":"\#(alert.subject)","id":\#(ServerInfo.quote(alert.messageID))}"#)
                case .failed(let description, let overloaded):
                    answer(#"{"error":\#(ServerInfo.quote(description)),"reason":"\#(overloaded ? "overloaded" : "store_failed")","retry":true}"#)
                }
            }
        }
    }

    /// Publishes a checked alert as the server (runs on this connection's loop): routed to subscribers at
    /// once and, when a stream captures its subject, stored; `completion` runs once it is accepted (after
    /// the stream's fsync) or refused. Counts the outcome for `path`.
    func ingest(_ alert: FalcoAlert, body: some Collection<UInt8>, path: FalcoIngest.Path, _ falco: FalcoIngest,
                completion: @escaping @Sendable (FalcoIngest.Outcome) -> Void) {
        let publish = Self.falcoPublish(alert, body: body, reply: nil)
        if let jetStream = server.jetStream, streamCaptures(publish.subject, jetStream) {
            falco.inFlight.add(1, ordering: .relaxed)
            capture(publish, in: jetStream, ack: JetStream.AckSink(eventLoop: nil) { response in
                falco.inFlight.subtract(1, ordering: .relaxed)
                let outcome = FalcoIngest.outcome(ofPubAck: response)
                switch outcome {
                case .accepted: falco.countAccepted(path)
                case .failed(let description, let overloaded):
                    falco.countRejected(path, reason: overloaded ? "overloaded" : "store_failed", detail: description)
                }
                completion(outcome)
            })
            route(publish, fromServer: true, noResponders: false)
            loop.flushPending()
            return
        }
        route(publish, fromServer: true, noResponders: false)
        loop.flushPending()
        falco.countAccepted(path)
        completion(.accepted)
    }

    // MARK: - JetStream

    private var jsFilters: [[UInt8]] = []
    private var jsFiltersGeneration: UInt64 = 0

    private enum JetStreamOutcome { case none, captured, consumed }

    /// API requests go to JetStream (and are not routed); published messages a stream captures are stored
    /// (and routed as usual) with a PubAck to the reply subject once durable.
    private func handleJetStream(_ publish: Publish, _ jetStream: JetStream) -> JetStreamOutcome {
        if publish.subject.hasPrefix("$JS.API.") {
            guard let reply = publish.reply else { return .consumed }
            let replyTo = Self.compact(reply)
            jetStream.handleAPI(subject: String(buffer: publish.subject), payload: Array(publish.payload.readableBytesView),
                                reply: String(buffer: reply)) { [self] response in
                loop.eventLoop.execute { [self] in deliverFromServer(subject: replyTo, payload: response) }
            }
            return .consumed
        }
        if publish.subject.hasPrefix("$JS.ACK.") {
            jetStream.acknowledge(subject: String(buffer: publish.subject), payload: Array(publish.payload.readableBytesView),
                                  reply: publish.reply.map { String(buffer: $0) })
            return .consumed
        }
        guard streamCaptures(publish.subject, jetStream) else { return .none }
        let ack: JetStream.AckSink? = publish.reply.map { reply in
            let replyTo = Self.compact(reply)
            let loop = self.loop
            return JetStream.AckSink(eventLoop: loop.eventLoop,
                                     deliver: { [self] response in deliverFromServer(subject: replyTo, payload: response, flush: false) },
                                     flush: { loop.flushPending() })
        }
        capture(publish, in: jetStream, ack: ack)
        return .captured
    }

    /// Whether a stream captures `subject`, with this connection's copy of the filters (refreshed when the
    /// generation moves, so no lock per publish).
    private func streamCaptures(_ subject: ByteBuffer, _ jetStream: JetStream) -> Bool {
        let generation = jetStream.filtersGeneration.load(ordering: .acquiring)
        if generation != jsFiltersGeneration {
            jsFilters = jetStream.currentFilters()
            jsFiltersGeneration = generation
        }
        return JetStream.captures(subject, filters: jsFilters)
    }

    /// Hands `publish` to JetStream to store (subject, headers and payload copied once each).
    private func capture(_ publish: Publish, in jetStream: JetStream, ack: JetStream.AckSink?) {
        let bytes = publish.payload.readableBytesView
        let headerLength = publish.headerLength ?? 0
        jetStream.capture(subject: Array(publish.subject.readableBytesView), headers: Array(bytes.prefix(headerLength)),
                          payload: Array(bytes.dropFirst(headerLength)), deliverAck: ack)
    }

    /// A message the server itself publishes (API responses, PubAcks): routed like any other, echo aside.
    func deliverFromServer(subject: ByteBuffer, payload: ByteBuffer, flush: Bool = true) {
        guard !machine.isClosed else { return }
        route(Publish(subject: subject, reply: nil, headerLength: nil, payload: payload), fromServer: true, uncached: true)
        if flush { loop.flushPending() }
    }

    // The last subject this client published to and what it matched: a publisher usually repeats its subject,
    // and then one generation load and one memcmp replace hashing into the loop's cache (as nats-server's
    // per-client cache does).
    private var lastSubject = ByteBuffer()
    private var lastResult = SublistResult.empty
    private var lastGeneration: UInt64 = .max

    @inline(__always)
    private func match(_ subject: ByteBuffer) -> SublistResult {
        let generation = server.sublist.generation.load(ordering: .acquiring)
        if generation == lastGeneration && subject == lastSubject { return lastResult }
        let result = loop.cache.match(subject, in: server.sublist)
        lastGeneration = generation
        lastSubject.clear()  // reuses its storage: no allocation per change of subject
        lastSubject.writeImmutableBuffer(subject)
        lastResult = result
        return result
    }

    /// Delivers `publish` to every matching subscription: all plain ones, one member of each queue group.
    /// `matchSubject` routes by another subject than the one shown in MSG (JetStream deliveries: routed to
    /// the deliver subject or pull inbox, shown with the stored message's subject).
    func route(_ publish: Publish, fromServer: Bool = false, noResponders: Bool = true, matchSubject: ByteBuffer? = nil,
               uncached: Bool = false) {
        let echo = fromServer || options.echo
        // Replies (PubAcks, API responses) go to a new inbox subject each time: caching them would only
        // evict the loop's useful entries.
        let result = uncached ? server.sublist.match(Array(publish.subject.readableBytesView)) : match(matchSubject ?? publish.subject)
        var delivered = false
        for sub in result.plain {
            if sub.client === self && !echo { continue }
            if deliver(publish, to: sub) { delivered = true }
        }
        for group in result.queues {
            // A random member, as nats-server; one that has reached its delivery limit passes to the next.
            let start = Int(loop.random.next() % UInt64(group.count))
            for offset in 0..<group.count {
                let sub = group[(start + offset) % group.count]
                if sub.client === self && !echo { continue }
                if deliver(publish, to: sub) { delivered = true; break }
            }
        }
        if !delivered, noResponders, let reply = publish.reply, options.noResponders {
            sendNoResponders(to: reply)
        }
    }

    /// Encodes one message for `sub`'s connection. Returns false when the subscription has reached its limit.
    @inline(__always)
    private func deliver(_ publish: Publish, to sub: Subscription) -> Bool {
        let limit = sub.maxDeliveries.load(ordering: .relaxed)
        if limit > 0 {
            let n = sub.delivered.add(1, ordering: .relaxed).newValue
            if n >= limit { sub.client.scheduleRemoval(sub) }  // idempotent; >= covers a limit set late
            if n > limit { return false }
        } else {
            sub.delivered.add(1, ordering: .relaxed)
        }
        let target = sub.client
        if target.stallGate.load(ordering: .relaxed) { stallTarget = target }
        if target.loop === loop {
            guard !target.machine.isClosed else { return false }
            Self.encode(publish, for: sub, into: &target.out)
            target.outMsgs &+= 1
            target.outBytes &+= UInt64(publish.payload.readableBytes)
            target.markForFlush()
        } else {
            let slot = target.staging[loop.index]
            // First message of this read's batch: size the (idle, empty) buffer like the last batch.
            if !slot.queued { slot.buffer.reserveCapacity(slot.sizeHint) }
            Self.encode(publish, for: sub, into: &slot.buffer)
            slot.messages &+= 1
            if !slot.queued {
                slot.queued = true
                loop.remoteFlush.append(target)
            }
        }
        loop.outMsgs &+= 1
        loop.outBytes &+= UInt64(publish.payload.readableBytes)
        return true
    }

    /// MSG or HMSG for one subscriber. A subscriber that did not ask for headers gets MSG with the body only, and
    /// an empty header block (HPUB x 0 n) is no header at all, as with nats-server.
    @inline(__always)
    static func encode(_ publish: Publish, for sub: Subscription, into out: inout ByteBuffer) {
        if let headerLength = publish.headerLength, headerLength > 0 {
            if sub.acceptsHeaders {
                ServerEncoder.writeMessage(into: &out, subject: publish.subject, sid: sub.sid, reply: publish.reply,
                                           headerLength: headerLength, payload: publish.payload)
            } else {
                let body = publish.payload.getSlice(at: publish.payload.readerIndex + headerLength,
                                                    length: publish.payload.readableBytes - headerLength)!
                ServerEncoder.writeMessage(into: &out, subject: publish.subject, sid: sub.sid, reply: publish.reply,
                                           headerLength: nil, payload: body)
            }
        } else {
            ServerEncoder.writeMessage(into: &out, subject: publish.subject, sid: sub.sid, reply: publish.reply,
                                       headerLength: nil, payload: publish.payload)
        }
    }

    /// The 503 status a requester gets when nobody is subscribed to the request subject.
    private func sendNoResponders(to reply: ByteBuffer) {
        // nats-server sends the status to the requester's first subscription on the reply subject, without
        // counting it against that subscription's UNSUB limit.
        let result = loop.cache.match(reply, in: server.sublist)
        guard let sub = result.plain.first(where: { $0.client === self })
            ?? result.queues.lazy.compactMap({ $0.first { $0.client === self } }).first
        else { return }
        var status = ByteBufferAllocator().buffer(capacity: 16)
        status.writeString(ServerEncoder.noRespondersHeader)
        ServerEncoder.writeMessage(into: &out, subject: reply, sid: sub.sid, reply: nil,
                                   headerLength: status.readableBytes, payload: status)
        outMsgs &+= 1
        markForFlush()
    }

    func scheduleRemoval(_ sub: Subscription) {
        loop.eventLoop.execute { [self] in removeSubscription(sub) }
    }

    /// Bytes published on another loop, handed over once per read there (called on the publisher's loop).
    ///
    /// They wait in `inbox` rather than in a plain task so that this connection's next read takes them first:
    /// a publisher that got its PONG knows its messages are queued ahead of anything the subscriber sends
    /// afterwards (a subscriber's PING then gets its PONG after those messages, as with nats-server).
    func enqueueFromOtherLoop(_ bytes: ByteBuffer, messages: Int) {
        let (scheduleDrain, backlog) = inbox.withLockedValue { box -> (Bool, Int) in
            box.batches.append(bytes)
            box.messages += messages
            box.bytes += bytes.readableBytes
            if box.drainScheduled { return (false, box.bytes) }
            box.drainScheduled = true
            return (true, box.bytes)
        }
        // A backlog this loop has not written yet counts as falling behind too: close the gate so publishers
        // pause (drainInbox reopens it from the channel's writability once the backlog is written).
        if backlog > settings.maxPending / 4 { stallGate.store(true, ordering: .relaxed) }
        if scheduleDrain {
            loop.eventLoop.execute { [self] in
                drainInbox()
                context?.flush()
            }
        }
    }

    /// Moves what other loops handed over onto the channel, behind what `out` already holds. No flush: the
    /// caller flushes (the drain task at once, a read at its end).
    private func drainInbox() {
        let (batches, messages) = inbox.withLockedValue { box -> ([ByteBuffer], Int) in
            defer { box.batches.removeAll(keepingCapacity: true); box.messages = 0; box.bytes = 0; box.drainScheduled = false }
            return (box.batches, box.messages)
        }
        guard !batches.isEmpty, !machine.isClosed, let context else { return }
        writeOut(flush: false)
        outMsgs &+= UInt64(messages)
        for bytes in batches {
            outBytes &+= UInt64(bytes.readableBytes)
            handedToChannel &+= UInt64(bytes.readableBytes)
            context.write(wrapOutboundOut(bytes), promise: nil)
        }
        stallGate.store(!context.channel.isWritable, ordering: .relaxed)
        checkPending(context)
    }

    // MARK: - Output

    /// Bytes given to the channel so far (for the write-deadline check).
    private var handedToChannel: UInt64 = 0

    @inline(__always)
    func markForFlush() {
        if !queuedForFlush {
            queuedForFlush = true
            loop.localFlush.append(self)
        }
    }

    private func writeOK() {
        ServerEncoder.writeOK(into: &out)
        markForFlush()
    }

    func flushOut() {
        queuedForFlush = false
        writeOut(flush: true)
    }

    /// Hands `out` to the channel.
    private func writeOut(flush: Bool) {
        guard !machine.isClosed, let context else { return }
        guard out.readableBytes > 0 else {
            if flush { context.flush() }
            return
        }
        let bytes = out
        handedToChannel &+= UInt64(bytes.readableBytes)
        // Reuse a working-size buffer; after a burst, start small again rather than keep a big one per client.
        if out.capacity > 64 * 1024 {
            out = context.channel.allocator.buffer(capacity: 4096)
        } else {
            out.clear()
        }
        if flush {
            context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
        } else {
            context.write(wrapOutboundOut(bytes), promise: nil)
        }
        stallGate.store(!context.channel.isWritable, ordering: .relaxed)
        checkPending(context)
    }

    /// Sends an error as nats-server would and closes the connection when nats-server would.
    private func fail(_ error: ProtocolError) {
        if let text = error.wireText {
            ServerEncoder.writeError(into: &out, text)
        }
        if error.closesConnection {
            if case .protocolViolation(let why) = error {
                logger.info("Closing connection: protocol violation", metadata: ["reason": "\(why)"])
            } else {
                logger.debug("Closing connection", metadata: ["error": "\(error.wireText ?? "")"])
            }
            close()
        } else {
            markForFlush()
        }
    }

    /// Flushes what is pending and closes the connection.
    func close() {
        guard !machine.isClosed else { return }
        flushOut()
        tearDown()
        context?.close(promise: nil)
    }

    /// Cut off without flushing: the client cannot keep up (nats-server sends no -ERR for this).
    private func slowConsumer(reason: String) {
        guard !machine.isClosed else { return }
        loop.slowConsumers &+= 1
        server.countSlowConsumer()
        logger.warning("Slow Consumer Detected", metadata: ["reason": "\(reason)", "addr": "\(remoteHost):\(remotePort)"])
        tearDown()
        context?.close(promise: nil)
    }

    /// After a reload: a client the new authorization would not admit is told so and closed (as nats-server).
    func recheckAuthorization() {
        guard !machine.isClosed, server.authRequired, !server.authenticate(options) else { return }
        logger.info("Authorization Violation after reload", metadata: ["addr": "\(remoteHost):\(remotePort)"])
        fail(.authorizationViolation)
    }

    /// Sends the lame-duck INFO (`ldm: true`).
    func sendInfo(_ json: String) {
        guard !machine.isClosed else { return }
        ServerEncoder.writeInfo(into: &out, json: json)
        flushOut()
    }

    private func tearDown() {
        guard machine.close() else { return }
        authTimer?.cancel()
        pingTask?.cancel()
        for sub in subscriptions.values { server.sublist.remove(sub) }
        subscriptions.removeAll()
        cumulation = nil
        loop.connections[id] = nil
        server.connectionClosed()
        logger.debug("Client connection closed")
    }

    // MARK: - Liveness

    private func pingTimerFired() {
        switch machine.pingTimerFired(idle: NIODeadline.now() - lastIn, interval: settings.pingInterval) {
        case .none:
            break
        case .closeStale:
            logger.debug("Stale Client Connection - Closing")
            fail(.staleConnection)
        case .sendPing:
            ServerEncoder.writePing(into: &out)
            flushOut()
        }
    }

    /// Called about once a second by the server: cuts off a client whose socket took no bytes for longer than
    /// write_deadline while we had bytes for it (nats-server's write deadline, a slow consumer too).
    func checkWriteDeadline(now: NIODeadline) {
        guard !machine.isClosed, let context else { return }
        let buffered = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        if buffered == 0 {
            writeStall = nil
            return
        }
        let written = handedToChannel &- UInt64(buffered)
        if let stall = writeStall, stall.written == written {
            if now - stall.since > settings.writeDeadline {
                slowConsumer(reason: "write_deadline of \(settings.writeDeadline) exceeded")
            }
        } else {
            writeStall = (now, written)
        }
    }

    static func compact(_ slice: ByteBuffer) -> ByteBuffer {
        var copy = ByteBufferAllocator().buffer(capacity: slice.readableBytes)
        copy.writeImmutableBuffer(slice)
        return copy
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
}
