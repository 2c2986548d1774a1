import NIOCore

/// One operation a server sends to a client.
public enum ServerOp: Equatable, Sendable {
    case info(ByteBuffer)
    case msg(ServerMessage)
    case ping
    case pong
    case ok
    /// The text between the quotes of `-ERR '<text>'`.
    case err(String)
}

/// A MSG or HMSG. For HMSG, `payload` holds the header block followed by the body, as on the wire.
public struct ServerMessage: Equatable, Sendable {
    public var subject: ByteBuffer
    public var sid: Int
    public var reply: ByteBuffer?
    public var headerLength: Int?
    public var payload: ByteBuffer

    public init(subject: ByteBuffer, sid: Int, reply: ByteBuffer?, headerLength: Int?, payload: ByteBuffer) {
        self.subject = subject
        self.sid = sid
        self.reply = reply
        self.headerLength = headerLength
        self.payload = payload
    }
}

/// Incremental parser for what a NATS server sends (the client side of the protocol). Same contract as
/// `ClientParser`: one op per call, nil when more bytes are needed, slices instead of copies, no rescans.
public struct ServerParser: Sendable {
    public enum Error: Swift.Error, Equatable, Sendable {
        case malformed(String)
    }

    /// Generous: a client must accept whatever control lines the server sends (INFO can be long).
    public var maxControlLine: Int

    private var pending: (ServerMessage, wireSize: Int)?
    private var scanned = 0

    public init(maxControlLine: Int = 1024 * 1024) {
        self.maxControlLine = maxControlLine
    }

    public mutating func next(_ buffer: inout ByteBuffer) throws(Error) -> ServerOp? {
        if let (message, wireSize) = pending {
            guard buffer.readableBytes >= wireSize + 2 else { return nil }
            pending = nil
            return .msg(try takePayload(message, wireSize: wireSize, from: &buffer))
        }
        let readable = buffer.readableBytes
        if readable == 0 { return nil }
        guard let newline = buffer.newlineOffset(from: scanned) else {
            if readable > maxControlLine { throw .malformed("control line longer than \(maxControlLine) bytes") }
            scanned = readable
            return nil
        }
        scanned = 0
        let lineLength = buffer.controlLineLength(newline: newline)
        let lineStart = buffer.readerIndex
        let first = buffer.getInteger(at: lineStart, as: UInt8.self).map { $0 | 0x20 } ?? 0
        let consumed = newline + 1
        switch first {
        case UInt8(ascii: "m"), UInt8(ascii: "h"):
            let headers = first == UInt8(ascii: "h")
            let verbLength = headers ? 5 : 4  // "HMSG " / "MSG "
            let fields = buffer.withUnsafeReadableBytes {
                Fields(UnsafeRawBufferPointer(rebasing: $0[..<lineLength]), from: min(verbLength, lineLength))
            }
            let replyIndex: Int?, headerLength: Int?, size: Int
            switch (headers, fields.count) {
            case (false, 3): replyIndex = nil; headerLength = nil; size = fields.size(2, of: buffer)
            case (false, 4): replyIndex = 2; headerLength = nil; size = fields.size(3, of: buffer)
            case (true, 4): replyIndex = nil; headerLength = fields.size(2, of: buffer); size = fields.size(3, of: buffer)
            case (true, 5): replyIndex = 2; headerLength = fields.size(3, of: buffer); size = fields.size(4, of: buffer)
            default: throw .malformed("bad \(headers ? "HMSG" : "MSG") arguments")
            }
            let sid = fields.size(1, of: buffer)
            guard sid >= 0, size >= 0, (headerLength ?? 0) >= 0, (headerLength ?? 0) <= size else {
                throw .malformed("bad \(headers ? "HMSG" : "MSG") sizes")
            }
            let message = ServerMessage(subject: fields.slice(0, of: buffer), sid: sid,
                                        reply: replyIndex.map { fields.slice($0, of: buffer) },
                                        headerLength: headerLength, payload: ByteBuffer())
            buffer.moveReaderIndex(forwardBy: consumed)
            if buffer.readableBytes >= size + 2 {
                return .msg(try takePayload(message, wireSize: size, from: &buffer))
            }
            pending = (message, size)
            return nil
        case UInt8(ascii: "p"):
            let second = buffer.getInteger(at: lineStart + 1, as: UInt8.self).map { $0 | 0x20 } ?? 0
            buffer.moveReaderIndex(forwardBy: consumed)
            if second == UInt8(ascii: "i") { return .ping }
            if second == UInt8(ascii: "o") { return .pong }
            throw .malformed("unknown operation")
        case UInt8(ascii: "i"):
            // "INFO {json} "
            var json = buffer.getSlice(at: lineStart, length: lineLength)!
            json.moveReaderIndex(forwardBy: min(4, json.readableBytes))
            buffer.moveReaderIndex(forwardBy: consumed)
            return .info(Self.trimmed(json))
        case UInt8(ascii: "+"):
            buffer.moveReaderIndex(forwardBy: consumed)
            return .ok
        case UInt8(ascii: "-"):
            let line = buffer.getString(at: lineStart, length: lineLength) ?? ""
            buffer.moveReaderIndex(forwardBy: consumed)
            var text = line.dropFirst(4).drop { $0 == " " || $0 == "\t" }
            if text.hasPrefix("'") { text = text.dropFirst() }
            if text.hasSuffix("'") { text = text.dropLast() }
            return .err(String(text))
        default:
            throw .malformed("unknown operation")
        }
    }

    private func takePayload(_ message: ServerMessage, wireSize: Int, from buffer: inout ByteBuffer) throws(Error) -> ServerMessage {
        let start = buffer.readerIndex
        guard buffer.getInteger(at: start + wireSize, as: UInt16.self) == UInt16(0x0D0A) else {
            throw .malformed("payload not followed by CRLF")
        }
        var complete = message
        complete.payload = buffer.getSlice(at: start, length: wireSize)!
        buffer.moveReaderIndex(forwardBy: wireSize + 2)
        return complete
    }

    private static func trimmed(_ slice: ByteBuffer) -> ByteBuffer {
        var s = slice
        while let b = s.getInteger(at: s.readerIndex, as: UInt8.self), isBlank(b) { s.moveReaderIndex(forwardBy: 1) }
        while s.readableBytes > 0, let b = s.getInteger(at: s.writerIndex - 1, as: UInt8.self), isBlank(b) {
            s.moveWriterIndex(to: s.writerIndex - 1)
        }
        return s
    }
}
