import Foundation
import Protocol

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

    /// An empty object or array, as JSONSerialization pretty-prints it: an empty line between the brackets.
    private static func empty(_ open: Unicode.Scalar, _ close: Unicode.Scalar, indent: Int, into out: inout [UInt8]) {
        out.append(UInt8(ascii: open))
        out.append(UInt8(ascii: "\n"))
        newline(indent, into: &out)
        out.append(UInt8(ascii: close))
    }

    static func write(_ value: Any, indent: Int, into out: inout [UInt8]) throws(Unsupported) {
        switch value {
        case let s as String:
            JSONString.append(s, to: &out)
        case let s as Substring:
            JSONString.append(String(s), to: &out)
        case let b as Bool:
            out.append(contentsOf: (b ? "true" : "false").utf8)
        case let i as Int:
            out.append(contentsOf: String(i).utf8)
        case let i as any BinaryInteger:
            out.append(contentsOf: "\(i)".utf8)
        case let d as Double:
            try number(d, into: &out)
        case let object as [String: Any]:
            guard !object.isEmpty else { return empty("{", "}", indent: indent, into: &out) }
            out.append(UInt8(ascii: "{"))
            var first = true
            for key in sortedKeys(object) {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                newline(indent + 2, into: &out)
                JSONString.append(key, to: &out)
                out.append(contentsOf: " : ".utf8)
                try write(object[key]!, indent: indent + 2, into: &out)
            }
            newline(indent, into: &out)
            out.append(UInt8(ascii: "}"))
        case let array as [Any]:
            guard !array.isEmpty else { return empty("[", "]", indent: indent, into: &out) }
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
}
