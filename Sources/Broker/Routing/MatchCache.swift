import NIOCore

/// A per-event-loop cache of sublist results keyed by subject bytes. Owned by one loop, so no lock: a hit costs
/// one atomic load (the sublist generation) and one dictionary lookup with the subject slice, no allocation.
/// Any change to the sublist empties it, as a generation bump tells us the stored results may be stale.
package struct MatchCache<Entry: SublistEntry> {
    /// nats-server's slCacheMax: past this many subjects the cache starts over.
    static var maxEntries: Int { 1024 }

    private var entries: [ByteBuffer: SublistResult<Entry>] = [:]
    private var generation: UInt64 = .max
    package private(set) var hits: UInt64 = 0
    package private(set) var misses: UInt64 = 0

    var count: Int { entries.count }

    package init() {}

    package mutating func match(_ subject: ByteBuffer, in sublist: Sublist<Entry>) -> SublistResult<Entry> {
        let current = sublist.generation.load(ordering: .acquiring)
        if current != generation {
            entries.removeAll(keepingCapacity: true)
            generation = current
        } else if let hit = entries[subject] {
            hits &+= 1
            return hit
        }
        misses &+= 1
        let result = sublist.match(Array(subject.readableBytesView))
        if entries.count >= Self.maxEntries { entries.removeAll(keepingCapacity: true) }
        // Keep a compact copy of the key: the slice would pin the whole read buffer.
        var key = ByteBufferAllocator().buffer(capacity: subject.readableBytes)
        key.writeImmutableBuffer(subject)
        entries[key] = result
        return result
    }
}
