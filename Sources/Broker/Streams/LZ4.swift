import CCRC32C
import CLZ4

/// Block compression with the system liblz4 (sealed stream blocks are written once and read rarely).
enum LZ4 {
    enum Error: Swift.Error, Equatable { case tooLarge, corrupt }

    static func compress(_ input: [UInt8]) throws(Error) -> [UInt8] {
        try compress(input, reserving: 0)
    }

    /// Compresses `input` into a new array after `prefix` bytes left for the caller (a sealed block's header):
    /// written in place, not zeroed first, not copied behind a header afterwards (the sealer's profile showed both).
    static func compress(_ input: [UInt8], reserving prefix: Int) throws(Error) -> [UInt8] {
        guard input.count <= Int(LZ4_MAX_INPUT_SIZE) else { throw .tooLarge }
        let bound = max(Int(LZ4_compressBound(Int32(input.count))), 1)
        var written: Int32 = 0
        let output = [UInt8](unsafeUninitializedCapacity: prefix + bound) { dst, count in
            written = input.withUnsafeBytes { src in
                LZ4_compress_default(src.baseAddress?.assumingMemoryBound(to: CChar.self),
                                     UnsafeMutableRawPointer(dst.baseAddress! + prefix).assumingMemoryBound(to: CChar.self),
                                     Int32(input.count), Int32(bound))
            }
            if prefix > 0 { (dst.baseAddress!).initialize(repeating: 0, count: prefix) }
            count = prefix + Int(max(written, 0))
        }
        guard written > 0 || input.isEmpty else { throw .tooLarge }
        return output
    }

    /// Decompresses `input`, which must expand to exactly `originalSize` bytes.
    static func decompress(_ input: ArraySlice<UInt8>, originalSize: Int) throws(Error) -> [UInt8] {
        // LZ4 expands at most 255 times: a larger claimed size is damage, never an allocation of gigabytes.
        guard originalSize >= 0, originalSize <= Int(LZ4_MAX_INPUT_SIZE), originalSize <= input.count * 255 + 16 else { throw .corrupt }
        if originalSize == 0 { return [] }
        // Not zeroed first (LZ4 writes every byte it reports; a block's worth of memset showed in recovery).
        var read: Int32 = 0
        let output = [UInt8](unsafeUninitializedCapacity: originalSize) { dst, count in
            read = input.withUnsafeBytes { src in
                LZ4_decompress_safe(src.baseAddress?.assumingMemoryBound(to: CChar.self),
                                    UnsafeMutableRawPointer(dst.baseAddress!).assumingMemoryBound(to: CChar.self),
                                    Int32(input.count), Int32(originalSize))
            }
            count = read == Int32(originalSize) ? originalSize : 0
        }
        guard read == Int32(originalSize) else { throw .corrupt }
        return output
    }
}

/// CRC-32C (Castagnoli), table-driven: every stored record carries one, so a torn or corrupt record is
/// recognised and never served.
enum CRC32C {
    /// CRC-32C (hardware crc32 instruction where the CPU has it; see CCRC32C).
    static func checksum<C: Collection>(_ bytes: C, seed: UInt32 = 0) -> UInt32 where C.Element == UInt8 {
        if let crc = bytes.withContiguousStorageIfAvailable({ brokerd_crc32c(seed, $0.baseAddress, $0.count) }) {
            return crc
        }
        return Array(bytes).withUnsafeBytes { brokerd_crc32c(seed, $0.baseAddress, $0.count) }
    }
}
