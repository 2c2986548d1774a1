import NIOCore

/// Writes what a server sends to a client. Everything appends to a caller-owned buffer: no allocation once
/// the buffer has grown to its working size.
public enum ServerEncoder {
    /// `MSG <subject> <sid> [reply] <size>\r\n<payload>\r\n`, or HMSG with the header size when
    /// `headerLength` is set.
    @inlinable
    public static func writeMessage(
        into out: inout ByteBuffer, subject: ByteBuffer, sid: ByteBuffer, reply: ByteBuffer?,
        headerLength: Int?, payload: ByteBuffer
    ) {
        if let headerLength {
            out.writeStaticString("HMSG ")
            writeArgs(into: &out, subject: subject, sid: sid, reply: reply)
            writeDecimal(into: &out, headerLength)
            out.writeInteger(UInt8(ascii: " "))
        } else {
            out.writeStaticString("MSG ")
            writeArgs(into: &out, subject: subject, sid: sid, reply: reply)
        }
        writeDecimal(into: &out, payload.readableBytes)
        out.writeStaticString("\r\n")
        out.writeImmutableBuffer(payload)
        out.writeStaticString("\r\n")
    }

    @inlinable
    static func writeArgs(into out: inout ByteBuffer, subject: ByteBuffer, sid: ByteBuffer, reply: ByteBuffer?) {
        out.writeImmutableBuffer(subject)
        out.writeInteger(UInt8(ascii: " "))
        out.writeImmutableBuffer(sid)
        out.writeInteger(UInt8(ascii: " "))
        if let reply {
            out.writeImmutableBuffer(reply)
            out.writeInteger(UInt8(ascii: " "))
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
