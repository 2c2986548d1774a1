import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Incremental parser for the client side of the NATS protocol (what a server reads).
///
/// Feed it the connection's cumulation buffer: `next(_:)` consumes exactly one operation and returns it, or
/// returns nil when more bytes are needed (the reader index is then left where the unfinished op starts).
/// It never rescans bytes already known to hold no newline, and it never copies: the op's fields are slices of
/// the buffer. It behaves as nats-server's parser.go does, including where that parser fails early:
/// a verb that cannot be one is rejected at its first bad byte, before any newline arrives.
public struct ClientParser: Sendable {
    public var maxPayload: Int
    public var maxControlLine: Int
    /// Set while the server waits for CONNECT on a server that requires auth: then anything but CONNECT is an
    /// 'Authorization Violation' at its first byte (nats-server parser.go, OP_START with authSet).
    public var requireConnectFirst: Bool
    /// Whether HPUB is accepted (the client's CONNECT said headers:true).
    public var headersEnabled: Bool

    private enum State: Sendable {
        case controlLine
        case payload(Publish, wireSize: Int)
    }

    private var state: State = .controlLine
    /// Bytes after the reader index already known to contain no newline.
    private var scanned = 0

    public init(
        maxPayload: Int = Limits.defaultMaxPayload,
        maxControlLine: Int = Limits.defaultMaxControlLine,
        requireConnectFirst: Bool = false,
        headersEnabled: Bool = false
    ) {
        self.maxPayload = maxPayload
        self.maxControlLine = maxControlLine
        self.requireConnectFirst = requireConnectFirst
        self.headersEnabled = headersEnabled
    }

    /// Parses one operation from `buffer`. Returns nil when more bytes are needed.
    public mutating func next(_ buffer: inout ByteBuffer) throws(ProtocolError) -> ClientOp? {
        switch state {
        case .payload(let publish, let wireSize):
            return try readPayload(publish, wireSize: wireSize, from: &buffer)
        case .controlLine:
            break
        }

        let readable = buffer.readableBytes
        if readable == 0 { return nil }
        guard let newline = findNewline(buffer, from: scanned) else {
            try checkIncompleteLine(buffer)
            scanned = readable
            return nil
        }
        scanned = 0
        // The control line, without its "\r\n" (or bare "\n", which nats-server accepts too).
        var lineLength = newline
        if lineLength > 0, buffer.getInteger(at: buffer.readerIndex + lineLength - 1, as: UInt8.self) == UInt8(ascii: "\r") {
            lineLength -= 1
        }
        let lineStart = buffer.readerIndex
        // With auth pending, nats-server judges the first byte before the verb: "FOO" is an auth violation.
        if requireConnectFirst && buffer.getInteger(at: lineStart, as: UInt8.self)! | 0x20 != UInt8(ascii: "c") {
            throw .authorizationViolation
        }
        guard let verb = Verb.match(buffer, at: lineStart, length: lineLength, complete: true) else {
            throw .unknownOperation
        }
        if requireConnectFirst && verb != .connect { throw .authorizationViolation }
        // The argument: after the verb and any blanks.
        var argStart = lineStart + verb.length
        let lineEnd = lineStart + lineLength
        while argStart < lineEnd, isBlank(buffer.getInteger(at: argStart, as: UInt8.self)!) { argStart += 1 }
        let argLength = lineEnd - argStart
        if verb.takesArgument && argLength > maxControlLine { throw .maxControlLineExceeded }
        let arg = buffer.getSlice(at: argStart, length: argLength)!
        buffer.moveReaderIndex(to: lineStart + newline + 1)

        switch verb {
        case .ping: return .ping
        case .pong: return .pong
        case .ok: return .ok
        case .info: return .info(arg)
        case .err: return .err(arg)
        case .connect: return .connect(arg)
        case .sub: return try parseSub(arg)
        case .unsub: return try parseUnsub(arg)
        case .pub, .hpub:
            let (pending, wireSize) = try parsePub(arg, headers: verb == .hpub)
            state = .payload(pending, wireSize: wireSize)
            return try readPayload(pending, wireSize: wireSize, from: &buffer)
        }
    }

    // MARK: - Payload

    private mutating func readPayload(_ publish: Publish, wireSize: Int, from buffer: inout ByteBuffer) throws(ProtocolError) -> ClientOp? {
        guard buffer.readableBytes >= wireSize + 2 else { return nil }
        let start = buffer.readerIndex
        guard buffer.getInteger(at: start + wireSize, as: UInt8.self) == UInt8(ascii: "\r"),
              buffer.getInteger(at: start + wireSize + 1, as: UInt8.self) == UInt8(ascii: "\n")
        else {
            throw .unknownOperation  // nats-server: MSG_END_R/MSG_END_N mismatch is a parse error
        }
        var complete = publish
        complete.payload = buffer.getSlice(at: start, length: wireSize)!
        buffer.moveReaderIndex(forwardBy: wireSize + 2)
        state = .controlLine
        return .pub(complete)
    }

    // MARK: - Arguments

    /// Splits `arg` on blanks into at most `Max` fields; returns the count, or nil when there are more.
    @inline(__always)
    private func split(_ arg: ByteBuffer, into fields: inout (ByteBuffer, ByteBuffer, ByteBuffer, ByteBuffer), max: Int) -> Int? {
        var count = 0
        var start = -1
        let base = arg.readerIndex
        let end = base + arg.readableBytes
        var i = base
        var overflow = false
        arg.withUnsafeReadableBytes { bytes in
            var j = 0
            while i < end {
                let b = bytes[j]
                if b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") {
                    if start >= 0 {
                        if count == max { overflow = true; return }
                        Self.store(arg.getSlice(at: start, length: i - start)!, at: count, in: &fields)
                        count += 1
                        start = -1
                    }
                } else if start < 0 {
                    start = i
                }
                i += 1
                j += 1
            }
        }
        if overflow { return nil }
        if start >= 0 {
            if count == max { return nil }
            Self.store(arg.getSlice(at: start, length: end - start)!, at: count, in: &fields)
            count += 1
        }
        return count
    }

    @inline(__always)
    private static func store(_ slice: ByteBuffer, at index: Int, in fields: inout (ByteBuffer, ByteBuffer, ByteBuffer, ByteBuffer)) {
        switch index {
        case 0: fields.0 = slice
        case 1: fields.1 = slice
        case 2: fields.2 = slice
        default: fields.3 = slice
        }
    }

    /// PUB <subject> [reply] <size> / HPUB <subject> [reply] <header size> <total size>.
    /// Returns the publish (payload still empty) and the total payload size on the wire.
    private func parsePub(_ arg: ByteBuffer, headers: Bool) throws(ProtocolError) -> (Publish, Int) {
        if headers && !headersEnabled { throw .protocolViolation("HPUB without headers support") }
        var f = (ByteBuffer(), ByteBuffer(), ByteBuffer(), ByteBuffer())
        let count = split(arg, into: &f, max: headers ? 4 : 3)
        let subject: ByteBuffer, reply: ByteBuffer?, size: Int, headerSize: Int?
        switch (headers, count) {
        case (false, 2): subject = f.0; reply = nil; headerSize = nil; size = Self.parseSize(f.1)
        case (false, 3): subject = f.0; reply = f.1; headerSize = nil; size = Self.parseSize(f.2)
        case (true, 3): subject = f.0; reply = nil; headerSize = Self.parseSize(f.1); size = Self.parseSize(f.2)
        case (true, 4): subject = f.0; reply = f.1; headerSize = Self.parseSize(f.2); size = Self.parseSize(f.3)
        default: throw .protocolViolation("\(headers ? "HPUB" : "PUB") parse error")
        }
        if let headerSize {
            if headerSize < 0 { throw .protocolViolation("HPUB bad or missing header size") }
            if size < 0 { throw .protocolViolation("HPUB bad or missing total size") }
            if headerSize > size { throw .protocolViolation("HPUB header size larger than total size") }
        } else if size < 0 {
            throw .protocolViolation("PUB bad or missing size")
        }
        if size > maxPayload { throw .maxPayloadViolation }
        return (Publish(subject: subject, reply: reply, headerLength: headerSize, payload: ByteBuffer()), size)
    }

    private func parseSub(_ arg: ByteBuffer) throws(ProtocolError) -> ClientOp {
        var f = (ByteBuffer(), ByteBuffer(), ByteBuffer(), ByteBuffer())
        switch split(arg, into: &f, max: 3) {
        case 2: return .sub(subject: f.0, queue: nil, sid: f.1)
        case 3: return .sub(subject: f.0, queue: f.1, sid: f.2)
        default: throw .protocolViolation("SUB parse error")
        }
    }

    private func parseUnsub(_ arg: ByteBuffer) throws(ProtocolError) -> ClientOp {
        var f = (ByteBuffer(), ByteBuffer(), ByteBuffer(), ByteBuffer())
        switch split(arg, into: &f, max: 2) {
        case 1: return .unsub(sid: f.0, max: nil)
        case 2: return .unsub(sid: f.0, max: Self.parseSize(f.1))
        default: throw .protocolViolation("UNSUB parse error")
        }
    }

    /// nats-server's parseSize: decimal digits only, -1 for anything else (empty, sign, overflow).
    public static func parseSize(_ bytes: ByteBuffer) -> Int {
        let count = bytes.readableBytes
        if count == 0 || count > 18 { return -1 }  // 18 digits cannot overflow Int64
        return bytes.withUnsafeReadableBytes { raw in
            var n = 0
            for b in raw {
                guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return -1 }
                n = n &* 10 &+ Int(b &- UInt8(ascii: "0"))
            }
            return n
        }
    }

    // MARK: - Scanning

    private func findNewline(_ buffer: ByteBuffer, from offset: Int) -> Int? {
        buffer.withUnsafeReadableBytes { raw -> Int? in
            guard offset < raw.count, let base = raw.baseAddress else { return nil }
            guard let hit = memchr(base + offset, Int32(UInt8(ascii: "\n")), raw.count - offset) else { return nil }
            return base.distance(to: UnsafeRawPointer(hit))
        }
    }

    /// With no newline yet: fail as early as nats-server does (a verb that cannot be one, a non-CONNECT first op
    /// when auth is required, or a line already longer than the control-line limit).
    private func checkIncompleteLine(_ buffer: ByteBuffer) throws(ProtocolError) {
        let readable = buffer.readableBytes
        if scanned < Verb.longest {
            if requireConnectFirst {
                let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self)! | 0x20
                if first != UInt8(ascii: "c") { throw .authorizationViolation }
            }
            if Verb.match(buffer, at: buffer.readerIndex, length: readable, complete: false) == nil {
                throw .unknownOperation
            }
        }
        if readable > maxControlLine + Verb.longest { throw .maxControlLineExceeded }
    }
}

@inline(__always)
func isBlank(_ b: UInt8) -> Bool { b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") }

