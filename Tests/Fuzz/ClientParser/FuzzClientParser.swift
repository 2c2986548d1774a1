// libFuzzer target: the NATS client protocol parser (Sources/Protocol/ClientParser.swift) with the server's
// limits, fed arbitrary bytes in arbitrary read splits, and CONNECT's JSON through ConnectOptions.decode.
//
// The input is what a client sends. It is parsed three ways: in one read, one byte per read (1-16 bytes per
// read past 256 bytes), and in reads of pseudo-random sizes (drawn from a hash of the input, so a crash
// reproduces from the file alone), each split read handled as ClientConnection.channelRead handles it (an op
// split across reads is completed by copying only its missing bytes, the rest parsed in place). Beyond "no crash, no hang, no leak, no huge allocation":
// - every split sees the same ops, byte for byte, as the one-read parse (or a prefix of them, when it fails early
//   on an incomplete line as nats-server does), the same error when both fail at the same op, and the same bytes
//   left over when none fails;
// - every op respects the limits (payload <= max_payload, header size <= total size, fields without blanks);
// - a CONNECT document that decodes, written again with ConnectOptions.json(), decodes to the same options.
import Foundation
import NIOCore
import Protocol

private let maxPayload = Limits.defaultMaxPayload
private let maxControlLine = Limits.defaultMaxControlLine
private let allocator = ByteBufferAllocator()

/// What one way of reading produced.
private struct Outcome {
    var ops: [ClientOp] = []
    var error: ProtocolError?
    var leftover: [UInt8] = []
}

/// The connection's side of the parser: the parser, its cumulation buffer and what CONNECT switches.
private struct Connection {
    var parser: ClientParser
    var cumulation: ByteBuffer?
    var outcome = Outcome()

    init(requireConnectFirst: Bool, headersEnabled: Bool) {
        parser = ClientParser(maxPayload: maxPayload, maxControlLine: maxControlLine,
                              requireConnectFirst: requireConnectFirst, headersEnabled: headersEnabled)
    }

    var isClosed: Bool { outcome.error != nil }

    /// ClientConnection.channelRead, without the server around it.
    mutating func read(_ bytes: UnsafeRawBufferPointer) {
        guard !isClosed else { return }
        var incoming = allocator.buffer(capacity: bytes.count)
        incoming.writeBytes(bytes)
        if var pending = cumulation {
            cumulation = nil
            while pending.readableBytes > 0, incoming.readableBytes > 0, !isClosed {
                let take: Int
                if let needed = parser.payloadBytesNeeded {
                    take = min(max(needed - pending.readableBytes, 1), incoming.readableBytes)
                } else if let newline = incoming.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                    take = newline - incoming.readerIndex + 1
                } else {
                    take = incoming.readableBytes
                }
                var piece = incoming.readSlice(length: take)!
                pending.writeBuffer(&piece)
                process(&pending)
            }
            if pending.readableBytes > 0 {
                keepRemainder(pending)
            } else {
                process(&incoming)
                keepRemainder(incoming)
            }
        } else {
            process(&incoming)
            keepRemainder(incoming)
        }
    }

    mutating func keepRemainder(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0, !isClosed else { return }
        var rest = buffer
        if rest.readerIndex > 64 * 1024 { rest.discardReadBytes() }
        cumulation = rest
    }

    mutating func process(_ buffer: inout ByteBuffer) {
        while !isClosed {
            let op: ClientOp?
            do {
                op = try parser.next(&buffer)
            } catch {
                outcome.error = error
                return
            }
            guard let op else { return }
            check(op)
            outcome.ops.append(op)
            if case .connect(let json) = op {
                // As ClientConnection.handleConnect: a bad document closes; a good one lifts the CONNECT-first rule
                // and switches HPUB on or off (the session's own checks are not the parser's business).
                do {
                    let options = try ConnectOptions.decode(json)
                    checkRoundTrip(options)
                    parser.requireConnectFirst = false
                    parser.headersEnabled = options.headers
                } catch {
                    outcome.error = error
                    return
                }
            }
        }
    }

    mutating func finish() {
        if !isClosed, let rest = cumulation { outcome.leftover = Array(rest.readableBytesView) }
    }
}

private func hasBlankOrNewline(_ buffer: ByteBuffer) -> Bool {
    buffer.readableBytesView.contains { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A }
}

/// The limits every op must respect, whatever the bytes.
private func check(_ op: ClientOp) {
    switch op {
    case .pub(let publish):
        precondition(publish.payload.readableBytes <= maxPayload, "payload over max_payload")
        if let headerLength = publish.headerLength {
            precondition(headerLength >= 0 && headerLength <= publish.payload.readableBytes, "bad header length")
        }
        precondition(publish.subject.readableBytes > 0 && !hasBlankOrNewline(publish.subject), "bad subject field")
        if let reply = publish.reply { precondition(reply.readableBytes > 0 && !hasBlankOrNewline(reply), "bad reply field") }
    case .sub(let subject, let queue, let sid):
        for field in [subject, sid] + (queue.map { [$0] } ?? []) {
            precondition(field.readableBytes > 0 && !hasBlankOrNewline(field), "bad SUB field")
        }
    case .unsub(let sid, _):
        precondition(sid.readableBytes > 0 && !hasBlankOrNewline(sid), "bad UNSUB field")
    case .connect(let arg), .info(let arg), .err(let arg):
        precondition(arg.readableBytes <= maxControlLine, "argument over max_control_line")
        precondition(!arg.readableBytesView.contains(0x0A), "argument holds a newline")
    case .ping, .pong, .ok:
        break
    }
}

/// CONNECT both ways: what brokerd decodes, ClientLib writes back the same.
private func checkRoundTrip(_ options: ConnectOptions) {
    let again = try? ConnectOptions.decode(ByteBuffer(string: options.json()))
    precondition(again == options, "ConnectOptions.json() does not decode to the same options: \(options.json())")
}

/// SplitMix64, seeded from the input: the read sizes for the pseudo-random split.
private struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h
}

private func parse(_ bytes: UnsafeRawBufferPointer, reads sizes: [Int], requireConnectFirst: Bool, headersEnabled: Bool) -> Outcome {
    var connection = Connection(requireConnectFirst: requireConnectFirst, headersEnabled: headersEnabled)
    var offset = 0
    for size in sizes where !connection.isClosed {
        connection.read(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + size)]))
        offset += size
    }
    connection.finish()
    return connection.outcome
}

/// The failures nats-server (and the parser) may raise on an incomplete line, before the rest arrives.
private func isEarlyFailure(_ error: ProtocolError) -> Bool {
    error == .unknownOperation || error == .authorizationViolation || error == .maxControlLineExceeded
}

private func compare(_ split: Outcome, with whole: Outcome, _ how: String) {
    precondition(split.ops.count <= whole.ops.count && zip(split.ops, whole.ops).allSatisfy(==),
                 "\(how): the ops differ from the one-read parse")
    guard let error = split.error else {
        precondition(whole.error == nil, "\(how): no error, the one-read parse failed with \(whole.error!)")
        precondition(split.ops.count == whole.ops.count, "\(how): fewer ops than the one-read parse")
        precondition(split.leftover == whole.leftover, "\(how): different bytes left over")
        return
    }
    if split.ops.count == whole.ops.count, let wholeError = whole.error {
        precondition(error == wholeError || isEarlyFailure(error), "\(how): \(error), the one-read parse: \(wholeError)")
    } else {
        precondition(isEarlyFailure(error), "\(how): failed with \(error) where the one-read parse did not")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzClientParser(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    var random = SplitMix64(state: fnv1a(bytes))
    let flags = random.next()
    let requireConnectFirst = flags & 1 != 0
    let headersEnabled = flags & 2 != 0

    // CONNECT's document on its own, when the input looks like one.
    if bytes.first == UInt8(ascii: "{") {
        var json = allocator.buffer(capacity: count)
        json.writeBytes(bytes)
        if let options = try? ConnectOptions.decode(json) { checkRoundTrip(options) }
    }

    let whole = parse(bytes, reads: count > 0 ? [count] : [], requireConnectFirst: requireConnectFirst, headersEnabled: headersEnabled)
    // One byte per read for short inputs; small reads (1-16 bytes) for longer ones, which would cost too many
    // executions per second a byte at a time.
    var small: [Int] = []
    var left = count
    while left > 0 {
        let size = count <= 256 ? 1 : min(left, 1 + Int(random.next() % 16))
        small.append(size)
        left -= size
    }
    compare(parse(bytes, reads: small, requireConnectFirst: requireConnectFirst, headersEnabled: headersEnabled), with: whole,
            count <= 256 ? "one byte per read" : "reads of 1-16 bytes")
    var sizes: [Int] = []
    left = count
    while left > 0 {
        let size = min(left, 1 + Int(random.next() % UInt64(max(1, count / 3))))
        sizes.append(size)
        left -= size
    }
    let randomly = parse(bytes, reads: sizes, requireConnectFirst: requireConnectFirst, headersEnabled: headersEnabled)
    compare(randomly, with: whole, "reads of \(sizes)")
    return 0
}
