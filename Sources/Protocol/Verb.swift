import NIOCore

/// The verbs a client may send, matched case-insensitively as nats-server's parser.go does.
enum Verb: CaseIterable, Sendable {
    case pub, hpub, sub, unsub, ping, pong, connect, info, ok, err

    /// Spelling; a trailing space stands for "one blank (space or tab) must follow".
    var spelling: StaticString {
        switch self {
        case .pub: return "PUB "
        case .hpub: return "HPUB "
        case .sub: return "SUB "
        case .unsub: return "UNSUB "
        case .ping: return "PING"
        case .pong: return "PONG"
        case .connect: return "CONNECT"
        case .info: return "INFO"
        case .ok: return "+OK"
        case .err: return "-ERR"
        }
    }

    var length: Int { spelling.utf8CodeUnitCount }

    var takesArgument: Bool {
        switch self {
        case .pub, .hpub, .sub, .unsub, .connect, .info, .err: return true
        case .ping, .pong, .ok: return false
        }
    }

    /// Longest spelling: once this many bytes matched a verb's prefix, the early check is done.
    static let longest = 7

    /// The verb that the `length` bytes at `index` start with. With `complete: false` the bytes may be a
    /// prefix of a verb still arriving; returns nil only when they cannot start any verb.
    static func match(_ buffer: ByteBuffer, at index: Int, length: Int, complete: Bool) -> Verb? {
        buffer.withUnsafeReadableBytes { raw -> Verb? in
            let offset = index - buffer.readerIndex
            for verb in Verb.allCases {
                let spelling = verb.spelling
                let n = spelling.utf8CodeUnitCount
                if complete && length < n { continue }
                let compare = Swift.min(n, length)
                var ok = true
                spelling.withUTF8Buffer { word in
                    for i in 0..<compare {
                        let b = raw[offset + i]
                        let w = word[i]
                        if w == UInt8(ascii: " ") {
                            if !isBlank(b) { ok = false; return }
                        } else if b != w && b != (w | 0x20) {  // letters: either case; '+'/'-' are unchanged by | 0x20
                            ok = false; return
                        }
                    }
                }
                if ok { return verb }
            }
            return nil
        }
    }
}
