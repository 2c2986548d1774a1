import Foundation
import NIOCore

/// A message received on a subscription (or as a reply).
public struct NATSMessage: Sendable {
    public var subject: String
    public var reply: String?
    public var headers: NATSHeaders?
    public var payload: ByteBuffer
    /// The status code of a status message (e.g. 503 for no responders), from the header block's first line.
    public var status: Int? { headers?.status }

    public init(subject: String, reply: String? = nil, headers: NATSHeaders? = nil, payload: ByteBuffer) {
        self.subject = subject
        self.reply = reply
        self.headers = headers
        self.payload = payload
    }

    public var string: String { String(buffer: payload) }
    public var bytes: [UInt8] { Array(payload.readableBytesView) }
}

/// NATS message headers: `NATS/1.0[ status[ description]]` then `Name: value` lines. Names keep their case;
/// lookups ignore it. A name may appear more than once.
public struct NATSHeaders: Sendable, Equatable {
    public private(set) var fields: [(name: String, value: String)] = []
    public var status: Int?
    public var statusDescription: String?

    public init(_ fields: [(String, String)] = []) {
        self.fields = fields.map { (name: $0.0, value: $0.1) }
    }

    public subscript(name: String) -> String? {
        get { fields.first { $0.name.lowercased() == name.lowercased() }?.value }
        set {
            fields.removeAll { $0.name.lowercased() == name.lowercased() }
            if let newValue { fields.append((name, newValue)) }
        }
    }

    public func values(_ name: String) -> [String] {
        fields.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    public mutating func append(_ name: String, _ value: String) { fields.append((name, value)) }

    public static func == (a: NATSHeaders, b: NATSHeaders) -> Bool {
        a.status == b.status && a.fields.elementsEqual(b.fields) { $0.name == $1.name && $0.value == $1.value }
    }

    /// The header block as sent on the wire, ending with the blank line.
    public func encoded() -> ByteBuffer {
        // Sized up front and written piece by piece: no interpolated String per field (this runs per publish).
        var capacity = 8 + 2 + 2 + (status == nil ? 0 : 21) + (statusDescription.map { $0.utf8.count + 1 } ?? 0)
        for (name, value) in fields { capacity += name.utf8.count + value.utf8.count + 4 }
        var out = ByteBuffer()
        out.reserveCapacity(capacity)
        out.writeStaticString("NATS/1.0")
        if let status {
            out.writeStaticString(" ")
            out.writeString(String(status))
        }
        if let statusDescription {
            out.writeStaticString(" ")
            out.writeString(statusDescription)
        }
        out.writeStaticString("\r\n")
        for (name, value) in fields {
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("\r\n")
        return out
    }

    /// Parses a header block; nil when it does not start with `NATS/1.0`.
    public static func parse(_ block: ByteBuffer) -> NATSHeaders? {
        // This runs for every message with headers. An all-ASCII block (the usual case) is parsed on its bytes;
        // anything else goes through the String-based parser, whose Unicode rules (grapheme clusters, Unicode
        // whitespace) are the reference. On ASCII the two agree, and debug builds check that they do.
        guard let fast = block.withUnsafeReadableBytes({ parseASCII($0) }) else { return parseText(block) }
        assert(fast?.status == parseText(block)?.status && fast?.statusDescription == parseText(block)?.statusDescription
               && fast == parseText(block), "NATSHeaders.parseASCII differs from parseText")
        return fast
    }

    /// nil when the block is not all ASCII (the caller falls back to `parseText`); `.some(nil)` when it does not
    /// start with `NATS/1.0`.
    private static func parseASCII(_ bytes: UnsafeRawBufferPointer) -> NATSHeaders?? {
        for byte in bytes where byte >= 0x80 { return nil }
        let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n"), space = UInt8(ascii: " "), tab = UInt8(ascii: "\t")
        func string(_ range: Range<Int>) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }
        /// `range` without leading and trailing spaces and tabs (`CharacterSet.whitespaces` on ASCII).
        func trimmed(_ range: Range<Int>) -> Range<Int> {
            var lower = range.lowerBound, upper = range.upperBound
            while lower < upper, bytes[lower] == space || bytes[lower] == tab { lower += 1 }
            while upper > lower, bytes[upper - 1] == space || bytes[upper - 1] == tab { upper -= 1 }
            return lower..<upper
        }
        /// The end of the line starting at `start` (the index of its CRLF, or the end of the block).
        func lineEnd(from start: Int) -> Int {
            var i = start
            while i + 1 < bytes.count {
                if bytes[i] == cr, bytes[i + 1] == lf { return i }
                i += 1
            }
            return bytes.count
        }
        let prefix: StaticString = "NATS/1.0"
        let firstEnd = lineEnd(from: 0)
        guard firstEnd >= prefix.utf8CodeUnitCount,
              memcmp(bytes.baseAddress!, prefix.utf8Start, prefix.utf8CodeUnitCount) == 0
        else { return .some(nil) }
        var headers = NATSHeaders()
        let statusPart = trimmed(prefix.utf8CodeUnitCount..<firstEnd)
        if !statusPart.isEmpty {
            // split(separator: " ", maxSplits: 1): the part is trimmed, so it neither starts nor ends with a space.
            if let gap = bytes[statusPart].firstIndex(of: space) {
                headers.status = Int(string(statusPart.lowerBound..<gap))
                headers.statusDescription = string((gap + 1)..<statusPart.upperBound)
            } else {
                headers.status = Int(string(statusPart))
            }
        }
        var start = firstEnd + 2
        while start <= bytes.count {
            let end = lineEnd(from: start)
            if end > start, let colon = bytes[start..<end].firstIndex(of: UInt8(ascii: ":")) {
                headers.fields.append((string(start..<colon), string(trimmed((colon + 1)..<end))))
            }
            start = end + 2
        }
        return .some(headers)
    }

    /// The reference parser: on the block as a String.
    static func parseText(_ block: ByteBuffer) -> NATSHeaders? {
        let text = String(buffer: block)
        var lines = text.components(separatedBy: "\r\n")
        guard let first = lines.first, first.hasPrefix("NATS/1.0") else { return nil }
        lines.removeFirst()
        var headers = NATSHeaders()
        let statusPart = first.dropFirst("NATS/1.0".count).trimmingCharacters(in: .whitespaces)
        if !statusPart.isEmpty {
            let parts = statusPart.split(separator: " ", maxSplits: 1)
            headers.status = Int(parts[0])
            if parts.count > 1 { headers.statusDescription = String(parts[1]) }
        }
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers.fields.append((name, value))
        }
        return headers
    }
}
