import Foundation

/// The monitoring documents (`/varz`, `/connz`, `/jsz`, ...) as JSON, byte for byte what Foundation's
/// `JSONSerialization` writes with `[.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]`, written straight
/// into bytes. JSONSerialization took ~1.4 ms per /varz (a tenth of brokerd's CPU under the bridge benchmark,
/// which polls /varz every 50 ms); this takes a fraction of that. A value of a type it does not know (none of
/// the documents has one) sends the whole document through JSONSerialization instead.
enum MonitorJSON {
    struct Unsupported: Error {}

    static func string(_ object: [String: Any]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        do {
            try write(object, indent: 0, into: &out)
        } catch {
            guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) else {
                return "{}"
            }
            return String(decoding: data, as: UTF8.self)
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func newline(_ indent: Int, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\n"))
        for _ in 0..<indent { out.append(UInt8(ascii: " ")) }
    }

    static func write(_ value: Any, indent: Int, into out: inout [UInt8]) throws(Unsupported) {
        switch value {
        case let s as String:
            quote(s, into: &out)
        case let s as Substring:
            quote(String(s), into: &out)
        case let b as Bool:
            out.append(contentsOf: (b ? "true" : "false").utf8)
        case let i as Int:
            out.append(contentsOf: String(i).utf8)
        case let i as any BinaryInteger:
            out.append(contentsOf: "\(i)".utf8)
        case let d as Double:
            try number(d, into: &out)
        case let object as [String: Any]:
            guard !object.isEmpty else {
                out.append(contentsOf: "{\n\n".utf8)
                for _ in 0..<indent { out.append(UInt8(ascii: " ")) }
                out.append(UInt8(ascii: "}"))
                return
            }
            out.append(UInt8(ascii: "{"))
            var first = true
            for key in sortedKeys(object) {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                newline(indent + 2, into: &out)
                quote(key, into: &out)
                out.append(contentsOf: " : ".utf8)
                try write(object[key]!, indent: indent + 2, into: &out)
            }
            newline(indent, into: &out)
            out.append(UInt8(ascii: "}"))
        case let array as [Any]:
            guard !array.isEmpty else {
                out.append(contentsOf: "[\n\n".utf8)
                for _ in 0..<indent { out.append(UInt8(ascii: " ")) }
                out.append(UInt8(ascii: "]"))
                return
            }
            out.append(UInt8(ascii: "["))
            for (i, element) in array.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 2, into: &out)
                try write(element, indent: indent + 2, into: &out)
            }
            newline(indent, into: &out)
            out.append(UInt8(ascii: "]"))
        case is NSNull:
            out.append(contentsOf: "null".utf8)
        default:
            throw Unsupported()
        }
    }

    /// As JSONSerialization: Swift's shortest form without a trailing `.0` (`0.5`, `2.5e-05`, `3`, `-0`, `1e+16`).
    private static func number(_ d: Double, into out: inout [UInt8]) throws(Unsupported) {
        guard d.isFinite else { throw Unsupported() }  // JSONSerialization refuses these: let it say so
        let text = d.description
        if text.hasSuffix(".0") {
            out.append(contentsOf: text.utf8.dropLast(2))
        } else {
            out.append(contentsOf: text.utf8)
        }
    }

    private static let systemLocale = NSLocale.system

    /// JSONSerialization's `.sortedKeys` order: `compare` with numeric, case-insensitive and forced ordering in the
    /// system locale (so `_` before digits, `a` before `A`). Keys of lower-case letters and `_` only (nearly all
    /// of them) compare as bytes, which is the same order.
    static func sortedKeys(_ object: [String: Any]) -> [String] {
        let keys = object.keys.map { key in (key: key, simple: key.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F }) }
        return keys.sorted { a, b in
            if a.simple, b.simple { return a.key.utf8.lexicographicallyPrecedes(b.key.utf8) }
            return a.key.compare(b.key, options: [.numeric, .caseInsensitive, .forcedOrdering], range: a.key.startIndex..<a.key.endIndex,
                                 locale: systemLocale) == .orderedAscending
        }.map(\.key)
    }

    private static let hex = Array("0123456789abcdef".utf8)

    static func quote(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0x0A: out.append(contentsOf: #"\n"#.utf8)
            case 0x0D: out.append(contentsOf: #"\r"#.utf8)
            case 0x09: out.append(contentsOf: #"\t"#.utf8)
            case 0x08: out.append(contentsOf: #"\b"#.utf8)
            case 0x0C: out.append(contentsOf: #"\f"#.utf8)
            case 0..<0x20:
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
