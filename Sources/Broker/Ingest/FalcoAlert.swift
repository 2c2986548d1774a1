import Crypto
import Protocol

/// One Falco alert (Falco's `json_output`), checked and ready to publish on `FALCO.<Priority>`.
///
/// Every ingest path (HTTP `http_output`, `falco-pipe`, falcosidekick's NATS output) goes through `validate`,
/// so they accept and reject exactly the same alerts. The alert's bytes are published unchanged; what brokerd
/// reads out of them goes into headers, so consumers can filter and dedupe without parsing JSON.
public struct FalcoAlert: Sendable, Equatable {
    /// Falco's priorities, in its own order and spelling.
    public static let priorities = ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"]

    /// The canonical priority ("Notice" for "notice" or "NOTICE").
    public var priority: String
    public var rule: String?
    public var hostname: String?
    public var source: String?
    /// Falcosidekick adds a uuid; otherwise the id is a hash of the alert's bytes.
    public var uuid: String?
    /// `Nats-Msg-Id`: the uuid, or `sha256:<first 16 bytes of SHA-256 of the alert, hex>`.
    public var messageID: String

    /// `FALCO.<Priority>`.
    public var subject: String { "FALCO." + priority }

    /// Why an alert was refused. `reason` is the counter label; `description` is what the sender is told.
    public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: Reason
        public var detail: String

        public enum Reason: String, Sendable, CaseIterable {
            case empty = "empty"
            case invalidJSON = "invalid_json"
            case notAnObject = "not_an_object"
            case missingPriority = "missing_priority"
            case badPriority = "bad_priority"
            case unknownPriority = "unknown_priority"
            case badField = "bad_field"
            case duplicateKey = "duplicate_key"
            case tooLarge = "too_large"
        }

        public var description: String { detail }
    }

    /// The priority's canonical spelling, matched ignoring ASCII case; nil for anything else.
    public static func canonicalPriority(_ text: some Collection<UInt8>) -> String? {
        for name in priorities where name.utf8.count == text.count {
            if zip(name.utf8, text).allSatisfy({ a, b in a == b || (b >= 0x41 && b <= 0x5A && a == b | 0x20) || (b >= 0x61 && b <= 0x7A && a == b & ~0x20) }) {
                return name
            }
        }
        return nil
    }

    /// Checks one alert: a whole JSON object whose "priority" is one of Falco's (any case). "rule",
    /// "hostname", "source" and "uuid", when present, must be strings without control characters (they go
    /// into headers; CR or LF there could forge protocol lines). None of these five keys brokerd routes and
    /// labels by may appear twice (see `Fields.routedKey`): JSON readers disagree on which of two values counts,
    /// so a consumer could read another priority than the one brokerd routed by.
    public static func validate(_ bytes: UnsafeRawBufferPointer) -> Result<FalcoAlert, Rejection> {
        var scanner = JSONScanner(bytes)
        scanner.skipWhitespace()
        if scanner.atEnd { return .failure(.init(reason: .empty, detail: "empty alert: expected a JSON object")) }
        guard scanner.peek == UInt8(ascii: "{") else {
            return .failure(.init(reason: .notAnObject, detail: "an alert must be a JSON object"))
        }
        var fields = Fields()
        do {
            try scanner.object(top: &fields)
            scanner.skipWhitespace()
            guard scanner.atEnd else { throw JSONScanner.Failure(offset: scanner.offset, what: "unexpected data after the object") }
        } catch let failure as JSONScanner.Failure {
            return .failure(.init(reason: .invalidJSON, detail: "invalid JSON at byte \(failure.offset): \(failure.what)"))
        } catch {
            return .failure(.init(reason: .invalidJSON, detail: "invalid JSON"))
        }
        if let duplicate = fields.duplicate {
            return .failure(.init(reason: .duplicateKey, detail: "duplicate key \(Self.quoted(duplicate)): brokerd routes and labels by it, "
                                    + "and JSON readers disagree on which value counts"))
        }
        guard let priorityField = fields.priority else {
            return .failure(.init(reason: .missingPriority, detail: "missing \"priority\""))
        }
        guard case .string(let priorityText) = priorityField else {
            return .failure(.init(reason: .badPriority, detail: "\"priority\" must be a string"))
        }
        guard let priority = canonicalPriority(priorityText.utf8) else {
            return .failure(.init(reason: .unknownPriority, detail: "unknown priority \(Self.quoted(priorityText)): expected one of \(priorities.joined(separator: ", "))"))
        }
        var alert = FalcoAlert(priority: priority, messageID: "")
        /// A labelled field's text: a string without control characters (it goes into a header), or a rejection.
        func label(_ name: String, _ value: Fields.Value?) -> Result<String?, Rejection> {
            guard let value else { return .success(nil) }
            guard case .string(let text) = value else {
                return .failure(.init(reason: .badField, detail: "\"\(name)\" must be a string"))
            }
            if text.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
                return .failure(.init(reason: .badField, detail: "\"\(name)\" contains control characters"))
            }
            return .success(text)
        }
        do {
            alert.rule = try label("rule", fields.rule).get()
            alert.hostname = try label("hostname", fields.hostname).get()
            alert.source = try label("source", fields.source).get()
            alert.uuid = try label("uuid", fields.uuid).get()
        } catch {
            return .failure(error)
        }
        if let uuid = alert.uuid, !uuid.isEmpty, uuid.utf8.count <= 128, !uuid.contains(" ") {
            alert.messageID = uuid
        } else {
            alert.messageID = "sha256:" + AlertHash.hex(AlertHash.hash(bytes).prefix(16))
        }
        return .success(alert)
    }

    public static func validate(_ bytes: [UInt8]) -> Result<FalcoAlert, Rejection> {
        bytes.withUnsafeBytes { validate($0) }
    }

    /// The header block: `NATS/1.0`, then Falco-Rule, Falco-Priority, Falco-Hostname, Falco-Source and
    /// Nats-Msg-Id (the ones the alert has).
    public func headerBlock() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160)
        out.append(contentsOf: "NATS/1.0\r\n".utf8)
        func add(_ name: String, _ value: String?) {
            guard let value else { return }
            out.append(contentsOf: name.utf8)
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: value.utf8)
            out.append(contentsOf: "\r\n".utf8)
        }
        add("Falco-Rule", rule)
        add("Falco-Priority", priority)
        add("Falco-Hostname", hostname)
        add("Falco-Source", source)
        add("Nats-Msg-Id", messageID)
        out.append(contentsOf: "\r\n".utf8)
        return out
    }

    /// The text as a JSON string for an error message, cut at 64 characters.
    static func quoted(_ text: String) -> String {
        let head = String(String.UnicodeScalarView(text.unicodeScalars.prefix(64)))
        return JSONString.quoted(head) + (text.unicodeScalars.count > 64 ? "..." : "")
    }

    /// The top-level fields brokerd reads.
    struct Fields {
        enum Value { case string(String), other }
        var priority: Value?
        var rule: Value?
        var hostname: Value?
        var source: Value?
        var uuid: Value?
        /// The first key that names a field brokerd reads a second time (as the alert spells it).
        var duplicate: String?
        private var seen: UInt8 = 0

        static let routed = ["priority", "rule", "hostname", "source", "uuid"]

        /// Which of the fields brokerd reads `key` names for some JSON reader, or nil. Exact names, and also
        /// their case-insensitive spellings: Go's encoding/json (falcosidekick and most Falco consumers) matches
        /// keys to fields ignoring case, with Unicode's simple folding (U+017F "ſ" reads as "s", U+212A "K" as
        /// "k"), so to it {"priority":"Debug","PRIORITY":"Emergency"} is a duplicate too.
        static func routedKey(_ key: String) -> Int? {
            let utf8 = key.utf8
            guard utf8.count >= 4 && utf8.count <= 16 else { return nil }  // "rule" ... "hostname" with a few 2-3 byte folds
            var folded: [UInt8] = []
            folded.reserveCapacity(8)
            for scalar in key.unicodeScalars {
                switch scalar.value {
                case 0x41...0x5A: folded.append(UInt8(scalar.value) | 0x20)
                case 0x17F: folded.append(UInt8(ascii: "s"))
                case 0x212A: folded.append(UInt8(ascii: "k"))
                case 0...0x7F: folded.append(UInt8(scalar.value))
                default: return nil
                }
            }
            return routed.firstIndex { $0.utf8.elementsEqual(folded) }
        }

        static let routedBytes: [[UInt8]] = routed.map { Array($0.utf8) }

        /// `routedKey` on a key as it stands in the JSON (between its quotes), and whether it is the exact name.
        /// A key without escapes or non-ASCII bytes (every key of a real alert) is matched on its bytes; any
        /// other is decoded first.
        static func routedKey(raw: UnsafeRawBufferPointer, plain: Bool, decode: () throws -> String) rethrows -> (index: Int, exact: Bool)? {
            guard plain else {
                let key = try decode()
                return routedKey(key).map { ($0, key == routed[$0]) }
            }
            guard raw.count >= 4 && raw.count <= 8 else { return nil }
            for (index, name) in routedBytes.enumerated() where name.count == raw.count {
                var exact = true
                var same = true
                for i in 0..<name.count {
                    let c = raw[i]
                    if c != name[i] {
                        exact = false
                        if c >= 0x41 && c <= 0x5A && c | 0x20 == name[i] { continue }
                        same = false
                        break
                    }
                }
                if same { return (index, exact) }
            }
            return nil
        }

        /// Records the value of routed field `index` (read only under its exact name; a differently cased one
        /// only counts as a duplicate, as every reader reads the exact name). True when this is the first key
        /// seen twice: the caller then records its spelling in `duplicate`.
        mutating func set(_ index: Int, exact: Bool, _ value: Value) -> Bool {
            let bit: UInt8 = 1 << index
            let firstDuplicate = seen & bit != 0 && duplicate == nil
            seen |= bit
            guard exact else { return firstDuplicate }
            switch index {
            case 0: priority = value
            case 1: rule = value
            case 2: hostname = value
            case 3: source = value
            default: uuid = value
            }
            return firstDuplicate
        }
    }
}

/// A strict JSON (RFC 8259) syntax checker that reads the few top-level string fields an alert needs and
/// skips everything else without building it: much cheaper than decoding the whole document.
struct JSONScanner {
    struct Failure: Error {
        var offset: Int
        var what: String
    }

    let bytes: UnsafeRawBufferPointer
    var offset = 0
    var depth = 0
    static let maxDepth = 64

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var atEnd: Bool { offset >= bytes.count }
    var peek: UInt8? { offset < bytes.count ? bytes[offset] : nil }

    mutating func skipWhitespace() {
        while offset < bytes.count {
            switch bytes[offset] {
            case 0x20, 0x09, 0x0A, 0x0D: offset += 1
            default: return
            }
        }
    }

    private func fail(_ what: String) -> Failure { Failure(offset: offset, what: what) }

    private mutating func expect(_ byte: UInt8, _ what: String) throws {
        skipWhitespace()
        guard peek == byte else { throw fail(atEnd ? "unexpected end (truncated?)" : "expected \(what)") }
        offset += 1
    }

    /// The top-level object: fills `fields` with the keys it knows.
    mutating func object(top fields: inout FalcoAlert.Fields) throws {
        try expect(UInt8(ascii: "{"), "'{'")
        depth += 1
        skipWhitespace()
        if peek == UInt8(ascii: "}") { offset += 1; return }
        while true {
            skipWhitespace()
            guard peek == UInt8(ascii: "\"") else { throw fail(atEnd ? "unexpected end (truncated?)" : "expected a key") }
            let key = try scanRaw()
            let keyBytes = UnsafeRawBufferPointer(rebasing: bytes[key.start..<key.end])
            let decodeKey = { try Self.decode(keyBytes, plain: key.plain, at: key.start) }
            let routed = try FalcoAlert.Fields.routedKey(raw: keyBytes, plain: key.plain, decode: decodeKey)
            try expect(UInt8(ascii: ":"), "':'")
            skipWhitespace()
            if let routed {
                // Only the fields brokerd reads are decoded; every other value is checked and skipped.
                let slot: FalcoAlert.Fields.Value
                if peek == UInt8(ascii: "\"") {
                    slot = .string(try string())
                } else {
                    try value()
                    slot = .other
                }
                if fields.set(routed.index, exact: routed.exact, slot) { fields.duplicate = try decodeKey() }
            } else {
                try value()
            }
            skipWhitespace()
            guard let next = peek else { throw fail("unexpected end (truncated?)") }
            offset += 1
            if next == UInt8(ascii: "}") { return }
            guard next == UInt8(ascii: ",") else { offset -= 1; throw fail("expected ',' or '}'") }
        }
    }

    /// Any JSON value, checked and skipped.
    mutating func value() throws {
        skipWhitespace()
        guard let c = peek else { throw fail("unexpected end (truncated?)") }
        switch c {
        case UInt8(ascii: "\""): try skipString()
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            depth += 1
            guard depth <= Self.maxDepth else { throw fail("nested too deeply") }
            defer { depth -= 1 }
            offset += 1
            let close = c == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            skipWhitespace()
            if peek == close { offset += 1; return }
            while true {
                if close == UInt8(ascii: "}") {
                    skipWhitespace()
                    guard peek == UInt8(ascii: "\"") else { throw fail(atEnd ? "unexpected end (truncated?)" : "expected a key") }
                    try skipString()
                    try expect(UInt8(ascii: ":"), "':'")
                }
                try value()
                skipWhitespace()
                guard let next = peek else { throw fail("unexpected end (truncated?)") }
                offset += 1
                if next == close { return }
                guard next == UInt8(ascii: ",") else { offset -= 1; throw fail("expected ',' or '\(Character(UnicodeScalar(close)))'") }
            }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
        default: throw fail("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard offset + n <= bytes.count else { throw fail("unexpected end (truncated?)") }
        for i in 0..<n where bytes[offset + i] != word.utf8Start[i] { throw fail("unexpected character") }
        offset += n
    }

    private mutating func number() throws {
        let start = offset
        if peek == UInt8(ascii: "-") { offset += 1 }
        func digits() -> Int {
            var n = 0
            while let c = peek, c >= 0x30 && c <= 0x39 { offset += 1; n += 1 }
            return n
        }
        guard let first = peek, first >= 0x30 && first <= 0x39 else { throw fail("bad number") }
        if first == 0x30 { offset += 1 } else { _ = digits() }
        if peek == UInt8(ascii: ".") {
            offset += 1
            guard digits() > 0 else { throw fail("bad number") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            offset += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { offset += 1 }
            guard digits() > 0 else { throw fail("bad number") }
        }
        if offset == start { throw fail("bad number") }
    }

    /// Skips a string, checking escapes, control characters and UTF-8.
    private mutating func skipString() throws {
        _ = try scanString(decode: false)
    }

    /// Reads a string value (decoded).
    mutating func string() throws -> String {
        try scanString(decode: true) ?? ""
    }

    private mutating func scanString(decode: Bool) throws -> String? {
        let raw = try scanRaw()
        guard decode else { return nil }
        return try Self.decode(UnsafeRawBufferPointer(rebasing: bytes[raw.start..<raw.end]), plain: raw.plain, at: raw.start)
    }

    /// A string's text as it stands between its quotes (checked), and whether it is plain ASCII without escapes.
    private static func decode(_ raw: UnsafeRawBufferPointer, plain: Bool, at start: Int) throws -> String {
        if plain { return String(decoding: raw, as: UTF8.self) }
        return try unescape(raw, at: start)
    }

    /// Checks a string (escapes, control characters, UTF-8) and steps over it: where its text starts and ends.
    private mutating func scanRaw() throws -> (start: Int, end: Int, plain: Bool) {
        offset += 1  // the opening quote
        let start = offset
        var plain = true
        while true {
            guard offset < bytes.count else { throw fail("unterminated string (truncated?)") }
            let c = bytes[offset]
            if c == UInt8(ascii: "\"") { break }
            if c < 0x20 { throw fail("control character in a string") }
            if c == UInt8(ascii: "\\") {
                plain = false
                offset += 1
                guard offset < bytes.count else { throw fail("unterminated string (truncated?)") }
                switch bytes[offset] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    offset += 1
                case UInt8(ascii: "u"):
                    guard offset + 4 < bytes.count else { throw fail("unterminated string (truncated?)") }
                    for i in 1...4 where !bytes[offset + i].isHexDigit { throw fail("bad \\u escape") }
                    offset += 5
                default:
                    throw fail("bad escape")
                }
                continue
            }
            if c >= 0x80 {
                plain = false
                // Well-formed UTF-8 only (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
                let length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0
                guard length > 0, c < 0xF5, offset + length <= bytes.count else { throw fail("invalid UTF-8") }
                for i in 1..<length where bytes[offset + i] & 0xC0 != 0x80 { throw fail("invalid UTF-8") }
                let second = bytes[offset + 1]
                if (c == 0xE0 && second < 0xA0) || (c == 0xED && second > 0x9F) || (c == 0xF0 && second < 0x90)
                    || (c == 0xF4 && second > 0x8F) {
                    throw fail("invalid UTF-8")
                }
                offset += length
                continue
            }
            offset += 1
        }
        let end = offset
        offset += 1  // the closing quote
        return (start, end, plain)
    }

    private static func unescape(_ raw: UnsafeRawBufferPointer, at base: Int) throws -> String {
        var out = String.UnicodeScalarView()
        var utf8: [UInt8] = []
        func flush() {
            if !utf8.isEmpty {
                out.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars)
                utf8.removeAll()
            }
        }
        var i = 0
        func hex4(_ at: Int) -> UInt32 {
            var v: UInt32 = 0
            for k in 0..<4 { v = v << 4 | UInt32(raw[at + k].hexValue) }
            return v
        }
        while i < raw.count {
            let c = raw[i]
            guard c == UInt8(ascii: "\\") else { utf8.append(c); i += 1; continue }
            flush()
            let e = raw[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append("\u{08}")
            case UInt8(ascii: "f"): out.append("\u{0C}")
            case UInt8(ascii: "n"): out.append("\n")
            case UInt8(ascii: "r"): out.append("\r")
            case UInt8(ascii: "t"): out.append("\t")
            case UInt8(ascii: "u"):
                var v = hex4(i)
                i += 4
                if v >= 0xD800 && v < 0xDC00, i + 6 <= raw.count, raw[i] == UInt8(ascii: "\\"), raw[i + 1] == UInt8(ascii: "u") {
                    let low = hex4(i + 2)
                    if low >= 0xDC00 && low < 0xE000 {
                        v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    }
                }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            default: out.append(Unicode.Scalar(e))
            }
        }
        flush()
        return String(out)
    }
}

extension UInt8 {
    fileprivate var isHexDigit: Bool {
        (self >= 0x30 && self <= 0x39) || (self >= 0x41 && self <= 0x46) || (self >= 0x61 && self <= 0x66)
    }

    fileprivate var hexValue: UInt8 {
        self <= 0x39 ? self - 0x30 : (self | 0x20) - 0x61 + 10
    }
}

/// Alert ids must be stable across restarts and versions: SHA-256 (swift-crypto; hardware-accelerated).
enum AlertHash {
    static func hash(_ data: UnsafeRawBufferPointer) -> [UInt8] {
        Array(Crypto.SHA256.hash(data: data))
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
