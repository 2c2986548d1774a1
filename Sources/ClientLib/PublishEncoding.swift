import NIOCore
import Protocol

/// `PUB`/`HPUB` encoding for `NATSClient.publish`: the same bytes as `ClientEncoder.writePublish`, written with
/// one `ByteBuffer` access instead of eight.
///
/// Why: each `ByteBuffer` write (NIOCore is built with dynamic exclusivity checks) costs a `swift_beginAccess`
/// plus a capacity check; per 16 B publish they were ~30% of the publishing thread in perf. Debug builds check
/// every encoding against `ClientEncoder.writePublish`, so the two cannot drift apart unnoticed.
enum PublishEncoding {
    /// Longest decimal of an Int, plus separators and the two CRLFs: an upper bound of the fixed part.
    private static let overhead = "HPUB ".utf8.count + 1 + 1 + 20 + 1 + 20 + 2 + 2

    static func write(into out: inout ByteBuffer, subject: String, reply: String?, headers: ByteBuffer?,
                      payload: ByteBuffer) {
        #if DEBUG
        let start = out.writerIndex
        defer {
            var expected = ByteBuffer()
            ClientEncoder.writePublish(into: &expected, subject: subject, reply: reply, headers: headers, payload: payload)
            assert(out.getSlice(at: start, length: out.writerIndex - start) == expected,
                   "PublishEncoding differs from ClientEncoder.writePublish")
        }
        #endif
        let headerLength = headers?.readableBytes ?? 0
        let bound = overhead + subject.utf8.count + (reply?.utf8.count ?? 0) + headerLength + payload.readableBytes
        let done: Bool? = subject.utf8.withContiguousStorageIfAvailable { subjectBytes in
            if let reply {
                return reply.utf8.withContiguousStorageIfAvailable { replyBytes in
                    encode(into: &out, bound: bound, subject: UnsafeRawBufferPointer(subjectBytes),
                           reply: UnsafeRawBufferPointer(replyBytes), headers: headers, payload: payload)
                } != nil
            }
            encode(into: &out, bound: bound, subject: UnsafeRawBufferPointer(subjectBytes), reply: nil,
                   headers: headers, payload: payload)
            return true
        }
        if done != true {
            // Strings without contiguous UTF-8 (bridged): the general encoder.
            ClientEncoder.writePublish(into: &out, subject: subject, reply: reply, headers: headers, payload: payload)
        }
    }

    private static func encode(into out: inout ByteBuffer, bound: Int, subject: UnsafeRawBufferPointer,
                               reply: UnsafeRawBufferPointer?, headers: ByteBuffer?, payload: ByteBuffer) {
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { buffer in
            guard let base = buffer.baseAddress else { return 0 }
            var p = base
            @inline(__always) func put(_ byte: UInt8) {
                p.storeBytes(of: byte, as: UInt8.self)
                p += 1
            }
            @inline(__always) func put(_ bytes: UnsafeRawBufferPointer) {
                guard let source = bytes.baseAddress, bytes.count > 0 else { return }
                p.copyMemory(from: source, byteCount: bytes.count)
                p += bytes.count
            }
            @inline(__always) func putDecimal(_ value: Int) {
                var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for any Int
                var v = UInt(value)
                var count = 0
                withUnsafeMutableBytes(of: &digits) { scratch in
                    repeat {
                        scratch[23 - count] = UInt8(ascii: "0") &+ UInt8(v % 10)
                        v /= 10
                        count += 1
                    } while v > 0
                    p.copyMemory(from: scratch.baseAddress! + 24 - count, byteCount: count)
                }
                p += count
            }
            if headers == nil {
                put(UInt8(ascii: "P")); put(UInt8(ascii: "U")); put(UInt8(ascii: "B"))
            } else {
                put(UInt8(ascii: "H")); put(UInt8(ascii: "P")); put(UInt8(ascii: "U")); put(UInt8(ascii: "B"))
            }
            put(UInt8(ascii: " "))
            put(subject)
            put(UInt8(ascii: " "))
            if let reply {
                put(reply)
                put(UInt8(ascii: " "))
            }
            if let headers {
                putDecimal(headers.readableBytes)
                put(UInt8(ascii: " "))
                putDecimal(headers.readableBytes + payload.readableBytes)
                put(UInt8(ascii: "\r")); put(UInt8(ascii: "\n"))
                headers.withUnsafeReadableBytes { put($0) }
            } else {
                putDecimal(payload.readableBytes)
                put(UInt8(ascii: "\r")); put(UInt8(ascii: "\n"))
            }
            payload.withUnsafeReadableBytes { put($0) }
            put(UInt8(ascii: "\r")); put(UInt8(ascii: "\n"))
            return p - base
        }
    }
}
