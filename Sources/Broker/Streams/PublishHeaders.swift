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

/// A per-message TTL (`Nats-TTL`) as nats-server reads it: a Go duration ("90s", "1h30m") of at least a
/// second, a whole number of seconds, or "never".
enum MessageTTL: Equatable, Sendable {
    case seconds(Int64)
    case never

    /// nil: the value is invalid (nats-server's 10165 "invalid per-message TTL").
    init?(_ text: String) {
        if text.lowercased() == "never" {
            self = .never
            return
        }
        if let n = Int64(text) {
            guard n >= 0 else { return nil }
            self = .seconds(n)
            return
        }
        guard let nanoseconds = Self.goDuration(text), nanoseconds >= 1_000_000_000 else { return nil }
        self = .seconds(nanoseconds / 1_000_000_000)
    }

    /// Go's time.Duration text ("1.5s", "500ms", "2m0s", "1h0m0s"), as nats-server prints durations in statuses.
    static func goDurationText(nanoseconds n: Int64) -> String {
        if n == 0 { return "0s" }
        if n < 1_000 { return "\(n)ns" }
        func trimmed(_ value: Int64, _ scale: Int64, _ unit: String) -> String {
            var fraction = String(value % scale)
            fraction = String(repeating: "0", count: String(scale).count - 1 - fraction.count) + fraction
            while fraction.hasSuffix("0") { fraction.removeLast() }
            return "\(value / scale)" + (fraction.isEmpty ? "" : "." + fraction) + unit
        }
        if n < 1_000_000 { return trimmed(n, 1_000, "µs") }
        if n < 1_000_000_000 { return trimmed(n, 1_000_000, "ms") }
        let seconds = trimmed(n % 60_000_000_000, 1_000_000_000, "s")
        let minutes = n / 60_000_000_000
        if minutes == 0 { return seconds }
        if minutes < 60 { return "\(minutes)m" + seconds }
        return "\(minutes / 60)h\(minutes % 60)m" + seconds
    }

    /// Go's time.ParseDuration for the units a TTL uses (ns, us, ms, s, m, h), in nanoseconds.
    static func goDuration(_ text: String) -> Int64? {
        var s = Substring(text)
        guard !s.isEmpty, s != "-", s != "+" else { return nil }
        var negative = false
        if s.first == "-" || s.first == "+" {
            negative = s.first == "-"
            s = s.dropFirst()
        }
        if s == "0" { return 0 }
        var total: Double = 0
        while !s.isEmpty {
            let number = s.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            s = s.dropFirst(number.count)
            let unit = s.prefix { !$0.isNumber && $0 != "." }
            s = s.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs", "μs": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            default: return nil
            }
            total += value * scale
        }
        guard total < 9.2e18 else { return nil }
        return Int64(total) * (negative ? -1 : 1)
    }
}
