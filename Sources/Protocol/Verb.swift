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

    /// Whether the argument is a list of blank-separated fields (CONNECT, INFO and -ERR take it whole).
    var hasFields: Bool {
        switch self {
        case .pub, .hpub, .sub, .unsub: return true
        case .ping, .pong, .connect, .info, .ok, .err: return false
        }
    }

    /// The verb a complete control line starts with, decided from its first bytes with no loop over the verb
    /// table (the publish path comes here for every PUB).
    @inline(__always)
    static func classify(_ raw: UnsafeRawBufferPointer) -> Verb? {
        let n = raw.count
        @inline(__always) func lower(_ i: Int) -> UInt8 { i < n ? raw[i] | 0x20 : 0 }
        @inline(__always) func blank(_ i: Int) -> Bool { i < n && isBlank(raw[i]) }
        switch lower(0) {
        case UInt8(ascii: "p"):
            switch lower(1) {
            case UInt8(ascii: "u"): return lower(2) == UInt8(ascii: "b") && blank(3) ? .pub : nil
            case UInt8(ascii: "i"): return lower(2) == UInt8(ascii: "n") && lower(3) == UInt8(ascii: "g") ? .ping : nil
            case UInt8(ascii: "o"): return lower(2) == UInt8(ascii: "n") && lower(3) == UInt8(ascii: "g") ? .pong : nil
            default: return nil
            }
        case UInt8(ascii: "h"):
            return lower(1) == UInt8(ascii: "p") && lower(2) == UInt8(ascii: "u") && lower(3) == UInt8(ascii: "b") && blank(4) ? .hpub : nil
        case UInt8(ascii: "s"):
            return lower(1) == UInt8(ascii: "u") && lower(2) == UInt8(ascii: "b") && blank(3) ? .sub : nil
        default:
            // The rare verbs: compare against the table.
            for verb in [Verb.unsub, .connect, .info, .ok, .err] where n >= verb.length {
                var matches = true
                verb.spelling.withUTF8Buffer { word in
                    for i in 0..<word.count {
                        let w = word[i], b = raw[i]
                        if w == UInt8(ascii: " ") {
                            if !isBlank(b) { matches = false; return }
                        } else if b != w && b != (w | 0x20) {
                            matches = false; return
                        }
                    }
                }
                if matches { return verb }
            }
            return nil
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
