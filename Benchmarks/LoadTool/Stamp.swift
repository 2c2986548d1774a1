#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// Monotonic nanoseconds (CLOCK_MONOTONIC, vDSO: no syscall). Send and receive stamps are taken in the same
/// process, so their difference is a true end-to-end latency.
@inline(__always)
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// The 16 bytes every sized message starts with: sequence number, then send time, both 8-byte big-endian.
enum Stamp {
    static let size = 16

    /// A payload of `size` bytes (at least 16): the stamp, then a fixed filler pattern.
    static func makePayload(size: Int) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: max(size, Self.size))
        buffer.writeInteger(UInt64(0))
        buffer.writeInteger(UInt64(0))
        for i in 0..<(max(size, Self.size) - Self.size) {
            buffer.writeInteger(UInt8(ascii: "a") &+ UInt8(i % 26))
        }
        return buffer
    }

    /// Overwrites the stamp in place (no copy while the buffer is uniquely referenced).
    @inline(__always)
    static func write(seq: UInt64, sentAt: UInt64, into buffer: inout ByteBuffer) {
        buffer.setInteger(seq, at: buffer.readerIndex)
        buffer.setInteger(sentAt, at: buffer.readerIndex + 8)
    }

    @inline(__always)
    static func read(_ payload: ByteBuffer) -> (seq: UInt64, sentAt: UInt64)? {
        guard payload.readableBytes >= size,
              let seq = payload.getInteger(at: payload.readerIndex, as: UInt64.self),
              let sentAt = payload.getInteger(at: payload.readerIndex + 8, as: UInt64.self)
        else { return nil }
        return (seq, sentAt)
    }

    // falco: the alert JSON is sent untouched and the stamp travels in one header, `Bench-Stamp: <seq> <sent ns>`.
    static let headerName = "Bench-Stamp"

    /// Parses the decimal pair of a `Bench-Stamp` value without allocating.
    static func parseHeaderValue(_ value: String) -> (seq: UInt64, sentAt: UInt64)? {
        var numbers: (UInt64, UInt64) = (0, 0)
        var index = 0
        var digits = 0
        for byte in value.utf8 {
            if byte == UInt8(ascii: " ") {
                guard index == 0, digits > 0 else { return nil }
                index = 1
                digits = 0
                continue
            }
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let d = UInt64(byte - UInt8(ascii: "0"))
            if index == 0 { numbers.0 = numbers.0 &* 10 &+ d } else { numbers.1 = numbers.1 &* 10 &+ d }
            digits += 1
        }
        guard index == 1, digits > 0 else { return nil }
        return numbers
    }
}
