import Foundation

/// A durable consumer's delivery state on disk: two slot files (`state.a`, `state.b`) written in turn, each a
/// record of magic, generation, length and CRC-32C before the state (a slot is rewritten in place, so bytes may
/// follow the record: an older, longer state's). A save writes the slot that does not hold
/// the newest state and fsyncs it before it counts, so a crash in the middle of a save leaves the newest
/// complete state in the other slot; at start-up the newest whole slot wins and a torn or flipped one is
/// reported and passed over. (brokerd before this kept one `state` file: read when no slot is there.)
enum ConsumerStateFile {
    static let slotNames = ["state.a", "state.b"]
    static let legacyName = "state"
    private static let magic = Array("BKCS".utf8)
    private static let headerSize = 4 + 8 + 4 + 4

    /// The slot a generation is written to (generations alternate between the two).
    static func slot(for generation: UInt64) -> String { slotNames[Int(generation % 2)] }

    static func record(generation: UInt64, state: [UInt8]) -> [UInt8] {
        var out = magic
        out.reserveCapacity(headerSize + state.count)
        withUnsafeBytes(of: generation.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(state.count).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: CRC32C.checksum(state).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: state)
        return out
    }

    /// The generation and state in a slot's bytes; nil when they are not one whole record.
    static func decode(_ bytes: [UInt8]) -> (generation: UInt64, state: [UInt8])? {
        guard bytes.count >= headerSize, Array(bytes[0..<4]) == magic else { return nil }
        func integer<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            var v: T = 0
            for i in 0..<MemoryLayout<T>.size { v |= T(bytes[at + i]) << (8 * i) }
            return v
        }
        let generation = integer(4, UInt64.self)
        let length = Int(integer(12, UInt32.self))
        let crc = integer(16, UInt32.self)
        // Bytes past the record are what a longer, older state left: a slot is rewritten in place, not truncated.
        guard bytes.count >= headerSize + length else { return nil }
        let state = Array(bytes[headerSize..<(headerSize + length)])
        guard CRC32C.checksum(state) == crc else { return nil }
        return (generation, state)
    }

    /// What a consumer directory holds: the newest whole state and its generation (0 for the legacy file), and
    /// the slot files that were there but not whole (to report).
    static func newest(in slots: [(name: String, bytes: [UInt8]?)]) -> (state: [UInt8]?, generation: UInt64, damaged: [String]) {
        var best: (generation: UInt64, state: [UInt8])?
        var damaged: [String] = []
        var highest: UInt64 = 0
        for (name, bytes) in slots {
            guard let bytes else { continue }
            if name == legacyName {
                if best == nil { best = (0, bytes) }
                continue
            }
            guard let decoded = decode(bytes) else {
                damaged.append(name)
                continue
            }
            highest = max(highest, decoded.generation)
            if best == nil || decoded.generation >= best!.generation { best = decoded }
        }
        return (best?.state, max(highest, best?.generation ?? 0), damaged)
    }
}
