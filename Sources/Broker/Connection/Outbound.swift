import NIOCore
import Synchronization

/// What owns an outbound: told to remove a subscription that reached its limit, and to cut the client off.
protocol OutboundOwner: AnyObject, Sendable {
    func removeSubscription(_ sub: Subscription)
    func cutOff(slowConsumer reason: String)
}

/// One client's way out: the bytes waiting for its socket, flushed once per read; what publishers on other loops
/// encoded for it (handed over once per read through `StagingSlot`s and the `inbox`); the fast-producer gate
/// (`stallGate`), and the slow-consumer rules (max_pending, write_deadline).
///
/// Loop-confined to the client's loop, except `staging[i]` (touched by loop i only), `inbox` (locked) and
/// `stallGate` (atomic), which publishers on any loop use.
final class Outbound: @unchecked Sendable {
    let id: UInt64
    /// The client's own loop.
    let router: Router
    let maxPending: Int
    /// One slot per event loop; the slot of this client's own loop is unused (it writes `out` directly).
    let staging: [StagingSlot]
    weak var owner: (any OutboundOwner)?
    var context: ChannelHandlerContext?
    private(set) var isClosed = false

    /// Bytes for this client produced on its own loop; flushed once per read by `Router.flushPending`.
    var out: ByteBuffer
    var queuedForFlush = false

    // Statistics for /connz.
    var outMsgs: UInt64 = 0
    var outBytes: UInt64 = 0

    /// Set while this client's outbound bytes are above 75% of max_pending; publishers on any loop read it.
    let stallGate = Atomic<Bool>(false)

    /// Batches other loops encoded for this client (bytes, message count), waiting for this loop (see
    /// `enqueueFromOtherLoop`).
    private let inbox = HandOff<(bytes: ByteBuffer, messages: Int)>()

    /// Bytes given to the channel so far, and the last time the socket took some: for the write deadline.
    private var handedToChannel: UInt64 = 0
    private var writeStall: (since: NIODeadline, written: UInt64)?

    init(id: UInt64, router: Router, loopCount: Int, maxPending: Int) {
        self.id = id
        self.router = router
        self.maxPending = maxPending
        self.staging = (0..<loopCount).map { _ in StagingSlot() }
        self.out = ByteBufferAllocator().buffer(capacity: 4096)
    }

    /// Marks the outbound closed: nothing more is written (idempotent).
    func close() {
        isClosed = true
        context = nil
    }

    /// Bytes queued for the client on its own loop, not yet handed to the channel.
    var pendingBytes: Int { out.readableBytes }

    // MARK: - Writing

    /// Hands `out` to the channel and flushes.
    func flush() {
        queuedForFlush = false
        writeOut(flush: true)
    }

    /// Hands `out` to the channel.
    func writeOut(flush: Bool) {
        guard !isClosed, let context else { return }
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
            context.writeAndFlush(NIOAny(bytes), promise: nil)
        } else {
            context.write(NIOAny(bytes), promise: nil)
        }
        stallGate.store(!context.channel.isWritable, ordering: .relaxed)
        checkPending(context)
    }

    /// After handing bytes to the channel: past max_pending, the client is a slow consumer.
    private func checkPending(_ context: ChannelHandlerContext) {
        guard let buffered = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes),
              buffered > maxPending else { return }
        owner?.cutOff(slowConsumer: "max_pending of \(maxPending) bytes exceeded")
    }

    /// The channel's writability changed: past 75% of max_pending this client falls behind and publishers
    /// feeding it pause briefly; below 50% it has caught up. Past max_pending it is cut off (`checkPending`).
    func writabilityChanged(_ writable: Bool) {
        stallGate.store(!writable, ordering: .relaxed)
    }

    // MARK: - From other loops

    /// Bytes published on another loop, handed over once per read there (called on the publisher's loop).
    ///
    /// They wait in `inbox` rather than in a plain task so that this client's next read takes them first:
    /// a publisher that got its PONG knows its messages are queued ahead of anything the subscriber sends
    /// afterwards (a subscriber's PING then gets its PONG after those messages, as with nats-server).
    func enqueueFromOtherLoop(_ bytes: ByteBuffer, messages: Int) {
        let (scheduleDrain, backlog) = inbox.append((bytes, messages), weight: bytes.readableBytes)
        // A backlog this loop has not written yet counts as falling behind too: close the gate so publishers
        // pause (drainInbox reopens it from the channel's writability once the backlog is written).
        if backlog > maxPending / 4 { stallGate.store(true, ordering: .relaxed) }
        if scheduleDrain {
            router.eventLoop.execute { [self] in
                drainInbox()
                context?.flush()
            }
        }
    }

    /// Moves what other loops handed over onto the channel, behind what `out` already holds. No flush: the
    /// caller flushes (the drain task at once, a read at its end).
    func drainInbox() {
        let batches = inbox.drain()
        guard !batches.isEmpty, !isClosed, let context else { return }
        writeOut(flush: false)
        for (bytes, messages) in batches {
            outMsgs &+= UInt64(messages)
            outBytes &+= UInt64(bytes.readableBytes)
            handedToChannel &+= UInt64(bytes.readableBytes)
            context.write(NIOAny(bytes), promise: nil)
        }
        stallGate.store(!context.channel.isWritable, ordering: .relaxed)
        checkPending(context)
    }

    /// Removes `sub` on this client's loop (a publisher on any loop saw it reach its delivery limit).
    func scheduleRemoval(_ sub: Subscription) {
        router.eventLoop.execute { [self] in owner?.removeSubscription(sub) }
    }

    // MARK: - Write deadline

    /// Called about once a second: true when the socket took no bytes for longer than `deadline` while we had
    /// bytes for it (nats-server's write deadline: a slow consumer too).
    func writeDeadlinePassed(now: NIODeadline, deadline: TimeAmount) -> Bool {
        guard !isClosed, let context else { return false }
        let buffered = (try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
        if buffered == 0 {
            writeStall = nil
            return false
        }
        let written = handedToChannel &- UInt64(buffered)
        if let stall = writeStall, stall.written == written {
            return now - stall.since > deadline
        }
        writeStall = (now, written)
        return false
    }
}

/// Bytes that publishers on one loop have encoded for an outbound living on another loop. Touched only on the
/// publishers' loop until handed over, in one task, to the outbound's own loop.
final class StagingSlot: @unchecked Sendable {
    /// Empty (no storage) between batches, so idle clients hold no staging memory.
    var buffer = ByteBuffer()
    /// The size the next batch probably needs (the last one's, bounded).
    var sizeHint = 1024
    var messages = 0
    var queued = false

    init() {}

    func handOver(to target: Outbound) {
        let bytes = buffer
        let count = messages
        queued = false
        messages = 0
        // `bytes` is now in flight: the next batch starts a fresh buffer, allocated when it begins.
        buffer = ByteBuffer()
        sizeHint = Swift.min(Swift.max(bytes.readableBytes, 1024), 64 * 1024)
        target.enqueueFromOtherLoop(bytes, messages: count)
    }
}
