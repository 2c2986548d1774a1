import NATSConfig

/// The headers of a published message that JetStream acts on (nats-server's `Nats-Msg-Id`, the
/// `Nats-Expected-*` publish expectations, `Nats-Rollup` and `Nats-TTL`), read from the header block in one
/// pass. A message without headers costs nothing: `init(headers:)` returns at once.
struct PublishHeaders: Equatable, Sendable {
    var messageID: String?
    var expectedStream: String?
    var expectedLastMsgID: String?
    /// The raw texts: an unparsable number is nats-server's "not present" for the sequence checks.
    var expectedLastSequence: UInt64?
    var expectedLastSubjectSequence: UInt64?
    var expectedLastSubjectSequenceSubject: String?
    var rollup: String?
    var ttl: String?
    /// `Nats-Stream-Source`: only a stream's own sourcing may set it.
    var hasStreamSource = false
    /// Any of the headers nats-server's batching, counters and schedules use (brokerd has none of these).
    var unsupported: String?

    static let none = PublishHeaders()

    init() {}

    init(headers: [UInt8]) {
        guard !headers.isEmpty else { return }
        Self.forEachHeader(in: headers) { name, value in
            switch name.count {
            case Self.msgID.count where Self.same(name, Self.msgID):
                if messageID == nil, !value.isEmpty { messageID = String(decoding: value, as: UTF8.self) }
            case Self.expectedStream.count where Self.same(name, Self.expectedStream):
                expectedStream = String(decoding: value, as: UTF8.self)
            case Self.expectedLastMsgID.count where Self.same(name, Self.expectedLastMsgID):
                expectedLastMsgID = String(decoding: value, as: UTF8.self)
            case Self.expectedLastSequence.count where Self.same(name, Self.expectedLastSequence):
                expectedLastSequence = UInt64(String(decoding: value, as: UTF8.self)) ?? .max
            case Self.expectedLastSubjectSequence.count where Self.same(name, Self.expectedLastSubjectSequence):
                expectedLastSubjectSequence = UInt64(String(decoding: value, as: UTF8.self)) ?? .max
            case Self.expectedLastSubjectSequenceSubject.count where Self.same(name, Self.expectedLastSubjectSequenceSubject):
                expectedLastSubjectSequenceSubject = String(decoding: value, as: UTF8.self)
            case Self.rollup.count where Self.same(name, Self.rollup):
                rollup = String(decoding: value, as: UTF8.self)
            case Self.ttl.count where Self.same(name, Self.ttl):
                ttl = String(decoding: value, as: UTF8.self)
            case Self.streamSource.count where Self.same(name, Self.streamSource):
                hasStreamSource = true
            default:
                for other in Self.unsupportedNames where name.count == other.count && Self.same(name, other) {
                    unsupported = String(decoding: name, as: UTF8.self)
                }
            }
        }
    }

    /// The value of one header (the first one with that name, case-insensitive), trimmed; nil when absent or empty.
    static func value(of lowercasedName: String, in headers: [UInt8]) -> String? {
        guard !headers.isEmpty else { return nil }
        let wanted = Array(lowercasedName.utf8)
        var found: String?
        forEachHeader(in: headers) { name, value in
            if found == nil, name.count == wanted.count, same(name, wanted), !value.isEmpty {
                found = String(decoding: value, as: UTF8.self)
            }
        }
        return found
    }

    // MARK: - The header block

    /// Calls `body` with each header's name and trimmed value (the status line is skipped).
    static func forEachHeader(in headers: [UInt8], _ body: (ArraySlice<UInt8>, ArraySlice<UInt8>) -> Void) {
        let n = headers.count
        var i = 0
        while i + 1 < n, !(headers[i] == 0x0D && headers[i + 1] == 0x0A) { i += 1 }
        i += 2
        while i < n {
            var end = i
            while end + 1 < n, !(headers[end] == 0x0D && headers[end + 1] == 0x0A) { end += 1 }
            if end + 1 >= n { end = n }
            var colon = i
            while colon < end, headers[colon] != UInt8(ascii: ":") { colon += 1 }
            if colon < end, colon > i {
                var a = colon + 1
                var b = end
                while a < b, headers[a] == 0x20 || headers[a] == 0x09 { a += 1 }
                while b > a, headers[b - 1] == 0x20 || headers[b - 1] == 0x09 { b -= 1 }
                body(headers[i..<colon], headers[a..<b])
            }
            i = end + 2
        }
    }

    /// ASCII case-insensitive comparison with a lowercased name of the same length.
    @inline(__always)
    static func same(_ name: ArraySlice<UInt8>, _ lowercased: [UInt8]) -> Bool {
        var k = 0
        for b in name {
            guard (b >= 0x41 && b <= 0x5A ? b | 0x20 : b) == lowercased[k] else { return false }
            k += 1
        }
        return true
    }

    private static let msgID = Array("nats-msg-id".utf8)
    private static let expectedStream = Array("nats-expected-stream".utf8)
    private static let expectedLastMsgID = Array("nats-expected-last-msg-id".utf8)
    private static let expectedLastSequence = Array("nats-expected-last-sequence".utf8)
    private static let expectedLastSubjectSequence = Array("nats-expected-last-subject-sequence".utf8)
    private static let expectedLastSubjectSequenceSubject = Array("nats-expected-last-subject-sequence-subject".utf8)
    private static let rollup = Array("nats-rollup".utf8)
    private static let ttl = Array("nats-ttl".utf8)
    private static let streamSource = Array("nats-stream-source".utf8)
    private static let unsupportedNames = ["nats-incr", "nats-batch-id", "nats-schedule"].map { Array($0.utf8) }
}

/// A per-message TTL (`Nats-TTL`) as nats-server reads it (parseMessageTTL): "never", a Go duration of at least
/// a second ("90s", "1h30m"; "0" and "500ms" are invalid), or a whole number of seconds ("0": none).
enum MessageTTL: Equatable, Sendable {
    case seconds(Int64)
    case never

    /// nil: the value is invalid (nats-server's 10165 "invalid per-message TTL").
    init?(_ text: String) {
        if text.lowercased() == "never" {
            self = .never
            return
        }
        if case .success(let nanoseconds) = GoDuration.parse(text) {
            guard nanoseconds >= 1_000_000_000 else { return nil }
            self = .seconds(nanoseconds / 1_000_000_000)
            return
        }
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int64(text) else { return nil }
        self = .seconds(n)
    }

    /// Whether it asks for expiry at all (nats-server refuses only those on a stream without TTLs).
    var isSet: Bool { self != .seconds(0) }
}
