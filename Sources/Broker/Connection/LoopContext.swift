import NIOCore

/// State that belongs to one event loop and is only touched on it: the match cache, the connections whose
/// output must be flushed at the end of the current read, the loop's share of the statistics and the random
/// generator for queue picks. Being loop-confined is what lets the publish path run without locks.
final class LoopContext: @unchecked Sendable {
    let index: Int
    let eventLoop: any EventLoop
    var cache = MatchCache()
    /// Connections on this loop with bytes in `out` to flush.
    var localFlush: [ClientConnection] = []
    /// Connections on other loops whose staging slot for this loop holds bytes to hand over.
    var remoteFlush: [ClientConnection] = []
    var connections: [UInt64: ClientConnection] = [:]
    var random: any RandomNumberGenerator & Sendable

    // This loop's share of the server statistics (summed by the monitor, which hops onto each loop).
    var inMsgs: UInt64 = 0
    var inBytes: UInt64 = 0
    var outMsgs: UInt64 = 0
    var outBytes: UInt64 = 0
    var slowConsumers: UInt64 = 0

    init(index: Int, eventLoop: any EventLoop, random: any RandomNumberGenerator & Sendable) {
        self.index = index
        self.eventLoop = eventLoop
        self.random = random
    }

    /// Writes out everything the current read produced: one flush per local connection, one hop per remote
    /// connection (not one per message).
    func flushPending() {
        // Other loops first: their batches must be queued before a PONG below tells a publisher "done".
        if !remoteFlush.isEmpty {
            for connection in remoteFlush { connection.staging[index].handOver(to: connection) }
            remoteFlush.removeAll(keepingCapacity: true)
        }
        if !localFlush.isEmpty {
            for connection in localFlush { connection.flushOut() }
            localFlush.removeAll(keepingCapacity: true)
        }
    }
}

/// Bytes that publishers on one loop have encoded for a connection living on another loop. Touched only on the
/// publishers' loop until handed over, in one task, to the connection's own loop.
final class StagingSlot: @unchecked Sendable {
    /// Empty (no storage) between batches, so idle connections hold no staging memory.
    var buffer = ByteBuffer()
    /// The size the next batch probably needs (the last one's, bounded).
    var sizeHint = 1024
    var messages = 0
    var queued = false

    init() {}

    func handOver(to target: ClientConnection) {
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
