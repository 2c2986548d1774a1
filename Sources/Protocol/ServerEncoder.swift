import NIOCore

/// Writes what a server sends to a client. Everything appends to a caller-owned buffer: no allocation once
/// the buffer has grown to its working size.
public enum ServerEncoder {
    /// `MSG <subject> <sid> [reply] <size>\r\n<payload>\r\n`, or HMSG with the header size when
    /// `headerLength` is set. One reservation and one pass of copies: this runs once per delivered message.
    @inlinable
    public static func writeMessage(
        into out: inout ByteBuffer, subject: ByteBuffer, sid: ByteBuffer, reply: ByteBuffer?,
        headerLength: Int?, payload: ByteBuffer
    ) {
        let size = payload.readableBytes
        // "HMSG " + subject + ' ' + sid + ' ' + [reply ' '] + [hdr ' '] + size + CRLF + payload + CRLF
        let upperBound = 5 + subject.readableBytes + 1 + sid.readableBytes + 1 + (reply.map { $0.readableBytes + 1 } ?? 0)
            + 21 + 21 + 2 + size + 2
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: upperBound) { raw in
            let base = raw.baseAddress!
            var i = 0
            @inline(__always) func byte(_ b: UInt8) { base.storeBytes(of: b, toByteOffset: i, as: UInt8.self); i += 1 }
            @inline(__always) func bytes(_ buffer: ByteBuffer) {
                buffer.withUnsafeReadableBytes { src in
                    if let s = src.baseAddress, src.count > 0 { (base + i).copyMemory(from: s, byteCount: src.count) }
                    i += src.count
                }
            }
            @inline(__always) func decimal(_ value: Int) {
                if value < 10 { byte(UInt8(truncatingIfNeeded: value) &+ 48); return }
                var digits = 0
                var v = value
                while v > 0 { digits += 1; v /= 10 }
                v = value
                var j = i + digits - 1
                while v > 0 {
                    base.storeBytes(of: UInt8(truncatingIfNeeded: v % 10) &+ 48, toByteOffset: j, as: UInt8.self)
                    v /= 10
                    j -= 1
                }
                i += digits
            }
            if headerLength != nil { byte(UInt8(ascii: "H")) }
            byte(UInt8(ascii: "M")); byte(UInt8(ascii: "S")); byte(UInt8(ascii: "G")); byte(UInt8(ascii: " "))
            bytes(subject); byte(UInt8(ascii: " "))
            bytes(sid); byte(UInt8(ascii: " "))
            if let reply { bytes(reply); byte(UInt8(ascii: " ")) }
            if let headerLength { decimal(headerLength); byte(UInt8(ascii: " ")) }
            decimal(size)
            byte(UInt8(ascii: "\r")); byte(UInt8(ascii: "\n"))
            bytes(payload)
            byte(UInt8(ascii: "\r")); byte(UInt8(ascii: "\n"))
            return i
        }
    }

    /// Appends `value` (>= 0) in decimal without going through String.
    @inlinable
    public static func writeDecimal(into out: inout ByteBuffer, _ value: Int) {
        if value < 10 {
            out.writeInteger(UInt8(truncatingIfNeeded: value) &+ UInt8(ascii: "0"))
            return
        }
        var digits = 0
        var v = value
        while v > 0 { digits += 1; v /= 10 }
        let start = out.writerIndex
        out.writeRepeatingByte(UInt8(ascii: "0"), count: digits)
        v = value
        var i = start + digits - 1
        while v > 0 {
            out.setInteger(UInt8(truncatingIfNeeded: v % 10) &+ UInt8(ascii: "0"), at: i)
            v /= 10
            i -= 1
        }
    }

    public static func writeError(into out: inout ByteBuffer, _ text: String) {
        out.writeStaticString("-ERR '")
        out.writeString(text)
        out.writeStaticString("'\r\n")
    }

    public static func writePing(into out: inout ByteBuffer) { out.writeStaticString("PING\r\n") }
    public static func writePong(into out: inout ByteBuffer) { out.writeStaticString("PONG\r\n") }
    public static func writeOK(into out: inout ByteBuffer) { out.writeStaticString("+OK\r\n") }

    /// `INFO <json> \r\n`, with the space before CRLF as nats-server writes it.
    public static func writeInfo(into out: inout ByteBuffer, json: String) {
        out.writeStaticString("INFO ")
        out.writeString(json)
        out.writeStaticString(" \r\n")
    }

    /// The no-responders status a requester gets when nobody listens (headers + no_responders on).
    public static let noRespondersHeader = "NATS/1.0 503\r\n\r\n"
}
