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

    /// While a PUB's payload is incomplete: how many bytes (payload + CRLF) it needs from the reader index on.
    /// Lets a caller holding a partial op append only what completes it, instead of the whole next read.
    public var payloadBytesNeeded: Int? {
        switch state {
        case .payload(_, let wireSize): return wireSize + 2
        case .controlLine: return nil
        }
    }

    /// Parses one operation from `buffer`. Returns nil when more bytes are needed.
    public mutating func next(_ buffer: inout ByteBuffer) throws(ProtocolError) -> ClientOp? {
        var op = ClientOp.ok
        return try next(&buffer, into: &op) ? op : nil
    }

    /// Parses one operation from `buffer` into `op`; false when more bytes are needed. The connection's form:
    /// a PUB is built in place (returned as an optional, it was copied and destroyed once more: perf).
    public mutating func next(_ buffer: inout ByteBuffer, into op: inout ClientOp) throws(ProtocolError) -> Bool {
        switch state {
        case .payload(let publish, let wireSize):
            return try readPayload(publish, wireSize: wireSize, from: &buffer, into: &op)
        case .controlLine:
            break
        }

        let readable = buffer.readableBytes
        if readable == 0 { return false }
        guard let newline = buffer.newlineOffset(from: scanned) else {
            try checkIncompleteLine(buffer)
            scanned = readable
            return false
        }
        scanned = 0
        let lineLength = buffer.controlLineLength(newline: newline)
        let lineStart = buffer.readerIndex
        // One pass over the raw line: verb, argument bounds and blank-separated fields, as plain offsets.
        // (Offsets, not slices: building ByteBuffer slices we might not need costs retains and releases.)
        let line = buffer.withUnsafeReadableBytes { ControlLine(UnsafeRawBufferPointer(rebasing: $0[..<lineLength])) }
        // With auth pending, nats-server judges the first byte before the verb: "FOO" is an auth violation.
        if requireConnectFirst && line.firstByte | 0x20 != UInt8(ascii: "c") { throw .authorizationViolation }
        guard let verb = line.verb else { throw .unknownOperation }
        if requireConnectFirst && verb != .connect { throw .authorizationViolation }
        if verb.takesArgument && line.argLength > maxControlLine { throw .maxControlLineExceeded }
        let consumed = newline + 1

        switch verb {
        case .ping:
            buffer.moveReaderIndex(forwardBy: consumed)
            op = .ping
            return true
        case .pong:
            buffer.moveReaderIndex(forwardBy: consumed)
            op = .pong
            return true
        case .ok:
            buffer.moveReaderIndex(forwardBy: consumed)
            op = .ok
            return true
        case .info, .err, .connect:
            let arg = buffer.getSlice(at: lineStart + line.argStart, length: line.argLength)!
            buffer.moveReaderIndex(forwardBy: consumed)
            op = verb == .info ? .info(arg) : verb == .err ? .err(arg) : .connect(arg)
            return true
        case .sub:
            switch line.count {
            case 2: op = .sub(subject: line.slice(0, of: buffer), queue: nil, sid: line.slice(1, of: buffer))
            case 3: op = .sub(subject: line.slice(0, of: buffer), queue: line.slice(1, of: buffer), sid: line.slice(2, of: buffer))
            default: throw .protocolViolation("SUB parse error")
            }
            buffer.moveReaderIndex(forwardBy: consumed)
            return true
        case .unsub:
            switch line.count {
            case 1: op = .unsub(sid: line.slice(0, of: buffer), max: nil)
            case 2: op = .unsub(sid: line.slice(0, of: buffer), max: line.size(1, of: buffer))
            default: throw .protocolViolation("UNSUB parse error")
            }
            buffer.moveReaderIndex(forwardBy: consumed)
            return true
        case .pub, .hpub:
            let headers = verb == .hpub
            if headers && !headersEnabled { throw .protocolViolation("HPUB without headers support") }
            let replyIndex: Int?, headerSize: Int?, size: Int
            switch (headers, line.count) {
            case (false, 2): replyIndex = nil; headerSize = nil; size = line.size(1, of: buffer)
            case (false, 3): replyIndex = 1; headerSize = nil; size = line.size(2, of: buffer)
            case (true, 3): replyIndex = nil; headerSize = line.size(1, of: buffer); size = line.size(2, of: buffer)
            case (true, 4): replyIndex = 1; headerSize = line.size(2, of: buffer); size = line.size(3, of: buffer)
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
            let subject = line.slice(0, of: buffer)
            let reply = replyIndex.map { line.slice($0, of: buffer) }
            // Fast path: the payload is already here (the common case with pipelined publishes). Build the
            // Publish once, with its payload, rather than parking it in `state` and copying it out again.
            if buffer.readableBytes >= consumed + size + 2 {
                let payloadStart = lineStart + consumed
                try checkPayloadEnd(buffer, at: payloadStart + size)
                let payload = buffer.getSlice(at: payloadStart, length: size)!
                buffer.moveReaderIndex(forwardBy: consumed + size + 2)
                op = .pub(Publish(subject: subject, reply: reply, headerLength: headerSize, payload: payload))
                return true
            }
            buffer.moveReaderIndex(forwardBy: consumed)
            state = .payload(Publish(subject: subject, reply: reply, headerLength: headerSize, payload: ByteBuffer()), wireSize: size)
            return false
        }
    }

    // MARK: - Payload

    private mutating func readPayload(_ publish: Publish, wireSize: Int, from buffer: inout ByteBuffer, into op: inout ClientOp) throws(ProtocolError) -> Bool {
        guard buffer.readableBytes >= wireSize + 2 else { return false }
        let start = buffer.readerIndex
        try checkPayloadEnd(buffer, at: start + wireSize)
        var complete = publish
        complete.payload = buffer.getSlice(at: start, length: wireSize)!
        buffer.moveReaderIndex(forwardBy: wireSize + 2)
        state = .controlLine
        op = .pub(complete)
        return true
    }

    /// The payload must be followed by CRLF; anything else is nats-server's MSG_END_R/MSG_END_N parse error.
    @inline(__always)
    private func checkPayloadEnd(_ buffer: ByteBuffer, at index: Int) throws(ProtocolError) {
        guard buffer.getInteger(at: index, as: UInt16.self) == UInt16(0x0D0A) else { throw .unknownOperation }
    }

    // MARK: - Arguments

    /// nats-server's parseSize: decimal digits only, -1 for anything else (empty, sign, overflow).
    public static func parseSize(_ bytes: ByteBuffer) -> Int {
        bytes.withUnsafeReadableBytes { parseSize($0) }
    }

    @inline(__always)
    static func parseSize(_ raw: UnsafeRawBufferPointer) -> Int {
        if raw.count == 0 || raw.count > 18 { return -1 }  // 18 digits cannot overflow Int64
        var n = 0
        for b in raw {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return -1 }
            n = n &* 10 &+ Int(b &- UInt8(ascii: "0"))
        }
        return n
    }

    // MARK: - Scanning


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


/// A complete client control line, scanned once: the verb, where its argument is, and its blank-separated
/// fields (offsets relative to the line start).
struct ControlLine {
    var firstByte: UInt8 = 0
    var verb: Verb?
    var argStart = 0
    var argLength = 0
    var fields = Fields()

    var count: Int { fields.count }

    @inline(__always)
    init(_ raw: UnsafeRawBufferPointer) {
        guard !raw.isEmpty else { return }
        firstByte = raw[0]
        verb = Verb.classify(raw)
        guard let verb else { return }
        var i = verb.length
        while i < raw.count, isBlank(raw[i]) { i += 1 }
        argStart = i
        argLength = raw.count - i
        if verb.hasFields { fields = Fields(raw, from: i) }
    }

    @inline(__always)
    func slice(_ index: Int, of buffer: ByteBuffer) -> ByteBuffer { fields.slice(index, of: buffer) }

    @inline(__always)
    func size(_ index: Int, of buffer: ByteBuffer) -> Int { fields.size(index, of: buffer) }
}

extension ByteBuffer {
    /// Length of the control line ending at the newline `newline` bytes from the reader index, without its
    /// "\r\n" (or the bare "\n" nats-server accepts too).
    @inline(__always)
    func controlLineLength(newline: Int) -> Int {
        if newline > 0, getInteger(at: readerIndex + newline - 1, as: UInt8.self) == UInt8(ascii: "\r") {
            return newline - 1
        }
        return newline
    }

    /// Whether the readable bytes start with `prefix` (ASCII), without building a String.
    @inline(__always)
    public func hasPrefix(_ prefix: StaticString) -> Bool {
        guard readableBytes >= prefix.utf8CodeUnitCount else { return false }
        return withUnsafeReadableBytes { raw in
            prefix.withUTF8Buffer { p in memcmp(raw.baseAddress!, p.baseAddress!, p.count) == 0 }
        }
    }

    /// Offset (from the reader index) of the first `\n` at or after `offset`, found with memchr.
    @inline(__always)
    func newlineOffset(from offset: Int) -> Int? {
        withUnsafeReadableBytes { raw -> Int? in
            guard offset < raw.count, let base = raw.baseAddress else { return nil }
            guard let hit = memchr(base + offset, Int32(UInt8(ascii: "\n")), raw.count - offset) else { return nil }
            return base.distance(to: UnsafeRawPointer(hit))
        }
    }
}
