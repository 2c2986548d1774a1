import NIOCore
import Protocol

/// The routing half of one event loop, touched only on that loop: the match cache, the queue-member pick, the
/// encoding of MSG/HMSG into each subscriber's outbound buffer, and the list of outbounds to flush at the end
/// of the current read. Being loop-confined is what lets the publish path run without locks.
///
/// A message reaches its subscribers in one of two ways: a client's subscription gets the encoded bytes (in its
/// `Outbound` when it lives on this loop, else in that outbound's staging slot for this loop, handed over once
/// per read), an internal subscription gets the message as a value (`InternalSubscriber.receive`).
final class Router: @unchecked Sendable {
    let index: Int
    let eventLoop: any EventLoop
    let sublist: Sublist<Subscription>
    private(set) var cache = MatchCache<Subscription>()
    /// Outbounds on this loop with bytes in `out` to flush.
    private var localFlush: [Outbound] = []
    /// Outbounds on other loops whose staging slot for this loop holds bytes to hand over.
    private var remoteFlush: [Outbound] = []
    private var random: any RandomNumberGenerator & Sendable
    /// An outbound the current client read delivered to while it was behind its gate (that publisher then
    /// pauses: see `ClientConnection.stallProducer`). Only client publishes set it: the server's own never
    /// stall a client. The reading connection clears it when its read starts.
    var stallTarget: Outbound?

    // This loop's share of the server statistics (summed by the monitor, which hops onto each loop).
    var inMsgs: UInt64 = 0
    var inBytes: UInt64 = 0
    var outMsgs: UInt64 = 0
    var outBytes: UInt64 = 0
    var slowConsumers: UInt64 = 0

    init(index: Int, eventLoop: any EventLoop, sublist: Sublist<Subscription>, random: any RandomNumberGenerator & Sendable) {
        self.index = index
        self.eventLoop = eventLoop
        self.sublist = sublist
        self.random = random
    }

    /// The last subject one publisher sent and what it matched: a publisher usually repeats its subject, and
    /// then one generation load and one memcmp replace hashing into the loop's cache (as nats-server's
    /// per-client cache does). Kept by the publisher, passed in.
    struct LastMatch {
        fileprivate var subject = ByteBuffer()
        fileprivate var result: SublistResult<Subscription>?
        fileprivate var generation: UInt64 = .max
        init() {}
    }

    @inline(__always)
    private func match(_ subject: ByteBuffer, last: inout LastMatch) -> SublistResult<Subscription> {
        let generation = sublist.generation.load(ordering: .acquiring)
        if generation == last.generation, subject == last.subject, let result = last.result { return result }
        let result = cache.match(subject, in: sublist)
        last.generation = generation
        last.subject.clear()  // reuses its storage: no allocation per change of subject
        last.subject.writeImmutableBuffer(subject)
        last.result = result
        return result
    }

    /// Delivers `publish` from a client (`origin`) to every matching subscription: all plain ones, one member of
    /// each queue group. Without `echo`, the origin's own subscriptions are skipped. Sends the no-responders
    /// status when nobody took a request and the client asked for it.
    @inline(__always)
    func routeFromClient(_ publish: Publish, origin: Outbound, echo: Bool, noResponders: Bool, last: inout LastMatch) {
        let result = match(publish.subject, last: &last)
        var answered = false
        let delivered = deliver(publish, to: result, origin: origin, echo: echo, toServices: true, answer: nil, answered: &answered)
        if !delivered, noResponders, let reply = publish.reply {
            sendNoResponders(to: reply, origin: origin)
        }
    }

    /// A message the server publishes itself (API responses, PubAcks, JetStream deliveries, Falco alerts).
    /// `matchSubject` routes by another subject than the one shown in MSG (JetStream deliveries: routed to the
    /// deliver subject or pull inbox, shown with the stored message's subject). Replies go to a new inbox each
    /// time, so they bypass the cache (`uncached`): caching them would only evict the loop's useful entries.
    /// Returns true when an internal subscriber (a stream) took `answer` and will call it.
    ///
    /// Only a message the server publishes *into* the subject space (a Falco alert) reaches internal subscribers
    /// (`toServices`); replies and JetStream's deliveries go to clients only, as they always did, so a stream
    /// whose subjects take in a deliver subject does not capture deliveries.
    @discardableResult
    func publishFromServer(_ publish: Publish, matchSubject: ByteBuffer? = nil, uncached: Bool = false,
                           toServices: Bool = false, answer: PublishAnswer? = nil) -> Bool {
        let subject = matchSubject ?? publish.subject
        let result = uncached ? sublist.match(Array(subject.readableBytesView)) : cache.match(subject, in: sublist)
        var answered = false
        _ = deliver(publish, to: result, origin: nil, echo: true, toServices: toServices, answer: answer, answered: &answered)
        return answered
    }

    /// Routes a reply (`payload` to `subject`) as the server, to clients.
    func reply(to subject: ByteBuffer, _ payload: ByteBuffer) {
        publishFromServer(Publish(subject: subject, reply: nil, headerLength: nil, payload: payload), uncached: true)
    }

    @inline(__always)
    private func deliver(_ publish: Publish, to result: SublistResult<Subscription>, origin: Outbound?, echo: Bool,
                         toServices: Bool, answer: PublishAnswer?, answered: inout Bool) -> Bool {
        var delivered = false
        for (position, sub) in result.plain.enumerated() {
            switch sub.target {
            case .client(let target):
                if target === origin && !echo { continue }
                if deliver(publish, to: sub, target, from: origin) { delivered = true }
            case .service(let service):
                guard toServices || service.receivesServerMessages else { continue }
                // One feature subscribed to overlapping subjects gets the message once.
                if position > 0, Self.seen(service, in: result.plain[..<position]) { continue }
                if service.receive(publish, via: self, answer: answer) { answered = true }
                if service.isResponder(for: publish.subject) { delivered = true }
            }
        }
        for group in result.queues {
            // A random member, as nats-server; one that has reached its delivery limit passes to the next.
            let start = Int(random.next() % UInt64(group.count))
            for offset in 0..<group.count {
                let sub = group[(start + offset) % group.count]
                switch sub.target {
                case .client(let target):
                    if target === origin && !echo { continue }
                    guard deliver(publish, to: sub, target, from: origin) else { continue }
                case .service(let service):
                    guard toServices || service.receivesServerMessages else { continue }
                    if service.receive(publish, via: self, answer: answer) { answered = true }
                }
                delivered = true
                break
            }
        }
        return delivered
    }

    private static func seen(_ service: any InternalSubscriber, in earlier: ArraySlice<Subscription>) -> Bool {
        earlier.contains { if case .service(let s) = $0.target { return s === service } else { return false } }
    }

    /// Encodes one message for `sub`'s client. Returns false when the subscription has reached its limit.
    @inline(__always)
    private func deliver(_ publish: Publish, to sub: Subscription, _ target: Outbound, from origin: Outbound?) -> Bool {
        let limit = sub.maxDeliveries.load(ordering: .relaxed)
        if limit > 0 {
            let n = sub.delivered.add(1, ordering: .relaxed).newValue
            if n >= limit { target.scheduleRemoval(sub) }  // idempotent; >= covers a limit set late
            if n > limit { return false }
        } else {
            sub.delivered.add(1, ordering: .relaxed)
        }
        if origin != nil, target.stallGate.load(ordering: .relaxed) { stallTarget = target }
        if target.router === self {
            guard !target.isClosed else { return false }
            Self.encode(publish, for: sub, into: &target.out)
            target.outMsgs &+= 1
            target.outBytes &+= UInt64(publish.payload.readableBytes)
            markForFlush(target)
        } else {
            let slot = target.staging[index]
            // First message of this read's batch: size the (idle, empty) buffer like the last batch.
            if !slot.queued { slot.buffer.reserveCapacity(slot.sizeHint) }
            Self.encode(publish, for: sub, into: &slot.buffer)
            slot.messages &+= 1
            if !slot.queued {
                slot.queued = true
                remoteFlush.append(target)
            }
        }
        outMsgs &+= 1
        outBytes &+= UInt64(publish.payload.readableBytes)
        if let permits = sub.replyPermits, let reply = publish.reply { permits.requestDelivered(replyTo: reply) }
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
    private func sendNoResponders(to reply: ByteBuffer, origin: Outbound) {
        // nats-server sends the status to the requester's first subscription on the reply subject, without
        // counting it against that subscription's UNSUB limit.
        let result = cache.match(reply, in: sublist)
        guard let sub = result.plain.first(where: { $0.outbound === origin })
            ?? result.queues.lazy.compactMap({ $0.first { $0.outbound === origin } }).first
        else { return }
        var status = ByteBufferAllocator().buffer(capacity: 16)
        status.writeString(ServerEncoder.noRespondersHeader)
        ServerEncoder.writeMessage(into: &origin.out, subject: reply, sid: sub.sid, reply: nil,
                                   headerLength: status.readableBytes, payload: status)
        origin.outMsgs &+= 1
        markForFlush(origin)
    }

    // MARK: - Flushing

    @inline(__always)
    func markForFlush(_ outbound: Outbound) {
        if !outbound.queuedForFlush {
            outbound.queuedForFlush = true
            localFlush.append(outbound)
        }
    }

    /// Writes out everything the current read produced: one flush per local outbound, one hop per remote
    /// outbound (not one per message).
    func flushPending() {
        // Other loops first: their batches must be queued before a PONG below tells a publisher "done".
        if !remoteFlush.isEmpty {
            for outbound in remoteFlush { outbound.staging[index].handOver(to: outbound) }
            remoteFlush.removeAll(keepingCapacity: true)
        }
        if !localFlush.isEmpty {
            for outbound in localFlush { outbound.flush() }
            localFlush.removeAll(keepingCapacity: true)
        }
    }

    // MARK: - Statistics

    var cacheEntries: Int { cache.count }
    var cacheHits: UInt64 { cache.hits }
    var cacheMisses: UInt64 { cache.misses }
}

/// A small, fast generator for queue-member picks (SplitMix64). Seedable, so tests are deterministic.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
