import NIOCore

/// Writes what a client sends to a server, appending to a caller-owned buffer.
public enum ClientEncoder {
    /// `PUB <subject> [reply] <size>\r\n<payload>\r\n`, or HPUB when `headers` (a complete header block) is set.
    public static func writePublish(into out: inout ByteBuffer, subject: String, reply: String?,
                                    headers: ByteBuffer?, payload: ByteBuffer) {
        let headerLength = headers?.readableBytes ?? 0
        out.reserveCapacity(minimumWritableBytes: subject.utf8.count + (reply?.utf8.count ?? 0) + 48 + headerLength + payload.readableBytes)
        out.writeStaticString(headers == nil ? "PUB " : "HPUB ")
        out.writeString(subject)
        out.writeInteger(UInt8(ascii: " "))
        if let reply {
            out.writeString(reply)
            out.writeInteger(UInt8(ascii: " "))
        }
        if let headers {
            ServerEncoder.writeDecimal(into: &out, headerLength)
            out.writeInteger(UInt8(ascii: " "))
            ServerEncoder.writeDecimal(into: &out, headerLength + payload.readableBytes)
            out.writeStaticString("\r\n")
            out.writeImmutableBuffer(headers)
        } else {
            ServerEncoder.writeDecimal(into: &out, payload.readableBytes)
            out.writeStaticString("\r\n")
        }
        out.writeImmutableBuffer(payload)
        out.writeStaticString("\r\n")
    }

    public static func writeSubscribe(into out: inout ByteBuffer, subject: String, queue: String?, sid: Int) {
        out.writeStaticString("SUB ")
        out.writeString(subject)
        out.writeInteger(UInt8(ascii: " "))
        if let queue {
            out.writeString(queue)
            out.writeInteger(UInt8(ascii: " "))
        }
        ServerEncoder.writeDecimal(into: &out, sid)
        out.writeStaticString("\r\n")
    }

    public static func writeUnsubscribe(into out: inout ByteBuffer, sid: Int, max: Int?) {
        out.writeStaticString("UNSUB ")
        ServerEncoder.writeDecimal(into: &out, sid)
        if let max {
            out.writeInteger(UInt8(ascii: " "))
            ServerEncoder.writeDecimal(into: &out, max)
        }
        out.writeStaticString("\r\n")
    }

    public static func writeConnect(into out: inout ByteBuffer, json: String) {
        out.writeStaticString("CONNECT ")
        out.writeString(json)
        out.writeStaticString("\r\n")
    }
}
