import NIOCore

/// Up to five blank-separated fields of a control line, as offsets from the line start (no slices, so no
/// retains until a caller asks for one). `count` is `Fields.max + 1` when there are more than five.
struct Fields {
    static let max = 5
    var count = 0
    private var starts: (Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0)
    private var lengths: (Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0)

    init() {}

    /// Splits `raw[offset...]` on spaces and tabs.
    @inline(__always)
    init(_ raw: UnsafeRawBufferPointer, from offset: Int) {
        guard let base = raw.baseAddress else { return }
        let n = raw.count
        var start = -1
        var i = offset
        while i <= n {
            if i == n || isBlank(base.load(fromByteOffset: i, as: UInt8.self)) {
                if start >= 0 {
                    if count == Self.max { count = Self.max + 1; return }
                    store(start: start, length: i &- start)
                    start = -1
                }
            } else if start < 0 {
                start = i
            }
            i &+= 1
        }
    }

    @inline(__always)
    private mutating func store(start: Int, length: Int) {
        switch count {
        case 0: starts.0 = start; lengths.0 = length
        case 1: starts.1 = start; lengths.1 = length
        case 2: starts.2 = start; lengths.2 = length
        case 3: starts.3 = start; lengths.3 = length
        default: starts.4 = start; lengths.4 = length
        }
        count += 1
    }

    @inline(__always)
    func field(_ index: Int) -> (start: Int, length: Int) {
        switch index {
        case 0: return (starts.0, lengths.0)
        case 1: return (starts.1, lengths.1)
        case 2: return (starts.2, lengths.2)
        case 3: return (starts.3, lengths.3)
        default: return (starts.4, lengths.4)
        }
    }

    /// Field `index` as a slice of `buffer`, whose reader index is still at the line start.
    @inline(__always)
    func slice(_ index: Int, of buffer: ByteBuffer) -> ByteBuffer {
        let f = field(index)
        return buffer.getSlice(at: buffer.readerIndex + f.start, length: f.length)!
    }

    /// Field `index` read as a size (nats-server's parseSize: -1 unless plain decimal digits).
    @inline(__always)
    func size(_ index: Int, of buffer: ByteBuffer) -> Int {
        let f = field(index)
        return buffer.withUnsafeReadableBytes {
            ClientParser.parseSize(UnsafeRawBufferPointer(rebasing: $0[f.start..<(f.start + f.length)]))
        }
    }
}
