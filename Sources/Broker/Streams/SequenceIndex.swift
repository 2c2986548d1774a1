/// Where each stored message of a file store is, by sequence. Sequences are mostly dense, so they are kept in
/// chunks of 1,024 slots found by `sequence / 1024` in a small table: a million messages take a thousand table
/// entries instead of a million hashed ones, neighbours share cache lines (recovery and sequential reads walk
/// them in order), and a gap (a mirror's skip, `first_seq`, deleted ranges) costs nothing. A chunk goes when
/// its last message does. The chunk last used is kept at hand, so a walk in order hashes once per chunk.
/// A class: the store owns one and reads update that cache. Used on the stream's queue only.
final class SequenceIndex {
    struct Location: Equatable {
        var block: UInt32
        var offset: Int
        var length: Int
    }

    /// A slot, compact: length 0 is an empty slot (a record is never empty).
    private struct Slot {
        var block: UInt32
        var offset: UInt32
        var length: UInt32
        static let empty = Slot(block: 0, offset: 0, length: 0)
    }

    private final class Chunk {
        var slots = [Slot](repeating: .empty, count: SequenceIndex.chunkSize)
        var live = 0
    }

    private static let bits: UInt64 = 10
    private static let chunkSize = 1 << 10
    private static let mask: UInt64 = UInt64(chunkSize - 1)
    private var chunks: [UInt64: Chunk] = [:]
    /// The keys of `chunks`, ascending: a gap is passed over by a binary search, not a scan of every key.
    private var keys: [UInt64] = []
    private(set) var count = 0
    private var cachedKey: UInt64 = .max
    private var cachedChunk: Chunk?

    private func chunk(_ key: UInt64) -> Chunk? {
        if key == cachedKey { return cachedChunk }
        guard let chunk = chunks[key] else { return nil }
        cachedKey = key
        cachedChunk = chunk
        return chunk
    }

    subscript(sequence: UInt64) -> Location? {
        get {
            guard let chunk = chunk(sequence >> Self.bits) else { return nil }
            let slot = chunk.slots[Int(sequence & Self.mask)]
            return slot.length == 0 ? nil : Location(block: slot.block, offset: Int(slot.offset), length: Int(slot.length))
        }
        set {
            let key = sequence >> Self.bits
            let i = Int(sequence & Self.mask)
            if let newValue {
                precondition(newValue.length > 0 && newValue.offset <= Int(UInt32.max) && newValue.length <= Int(UInt32.max))
                let slot = Slot(block: newValue.block, offset: UInt32(newValue.offset), length: UInt32(newValue.length))
                let target: Chunk
                if let existing = chunk(key) {
                    target = existing
                } else {
                    target = Chunk()
                    chunks[key] = target
                    if let last = keys.last, last > key { keys.insert(key, at: keys.firstIndex(atLeast: key)) } else { keys.append(key) }
                    cachedKey = key
                    cachedChunk = target
                }
                if target.slots[i].length == 0 {
                    target.live += 1
                    count += 1
                }
                target.slots[i] = slot
            } else {
                guard let target = chunk(key), target.slots[i].length != 0 else { return }
                count -= 1
                target.slots[i] = .empty
                target.live -= 1
                if target.live == 0 {
                    chunks[key] = nil
                    let at = keys.firstIndex(atLeast: key)
                    if at < keys.count, keys[at] == key { keys.remove(at: at) }
                    cachedKey = .max
                    cachedChunk = nil
                }
            }
        }
    }

    func removeAll() {
        chunks.removeAll()
        keys.removeAll()
        count = 0
        cachedKey = .max
        cachedChunk = nil
    }

    /// The lowest sequence held at or after `sequence`, not beyond `limit` (nil: none). Empty chunks are
    /// passed over whole.
    func first(atOrAfter sequence: UInt64, limit: UInt64 = .max) -> UInt64? {
        guard count > 0 else { return nil }
        var s = sequence
        while s <= limit {
            let key = s >> Self.bits
            guard let chunk = chunk(key) else {
                // No chunk here: the next one that exists (a purge can leave a long gap).
                let at = keys.firstIndex(atLeast: key + 1)
                guard at < keys.count else { return nil }
                s = keys[at] << Self.bits
                continue
            }
            var i = Int(s & Self.mask)
            while i < Self.chunkSize {
                if chunk.slots[i].length != 0 {
                    let found = (key << Self.bits) | UInt64(i)
                    return found <= limit ? found : nil
                }
                i += 1
            }
            s = (key + 1) << Self.bits
        }
        return nil
    }

    /// The lowest sequence held (nil: none).
    var first: UInt64? {
        guard let key = keys.first else { return nil }
        return first(atOrAfter: key << Self.bits)
    }
}
