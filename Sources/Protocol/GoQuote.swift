/// Go's `%q` / `strconv.Quote` for bytes, as nats-server formats subjects in its permission errors: a double-quoted
/// string with `"` and `\` escaped, printable characters as they are, control characters as Go escapes
/// (`\n`, `\x01`, `\u0085`) and bytes that are not UTF-8 as `\xNN`.
public enum GoQuote {
    public static func quote(_ bytes: [UInt8]) -> String {
        var out = "\""
        var i = 0
        while i < bytes.count {
            let (scalar, length) = decode(bytes, at: i)
            guard let scalar else {
                out += "\\x" + hex(UInt32(bytes[i]), digits: 2)
                i += 1
                continue
            }
            i += length
            switch scalar.value {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x07: out += "\\a"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x0B: out += "\\v"
            case let v where v < 0x20 || v == 0x7F: out += "\\x" + hex(v, digits: 2)
            case let v where isPrintable(scalar): _ = v; out.unicodeScalars.append(scalar)
            case let v where v < 0x10000: out += "\\u" + hex(v, digits: 4)
            case let v: out += "\\U" + hex(v, digits: 8)
            }
        }
        return out + "\""
    }

    /// Close to Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
    private static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.value == 0x20 { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator,
             .spaceSeparator:
            return false
        default:
            return true
        }
    }

    /// One UTF-8 sequence at `i`: the scalar and its length, or nil for a byte that does not start a valid one.
    private static func decode(_ b: [UInt8], at i: Int) -> (Unicode.Scalar?, Int) {
        let first = b[i]
        if first < 0x80 { return (Unicode.Scalar(first), 1) }
        let length: Int
        var value: UInt32
        switch first {
        case 0xC2...0xDF: length = 2; value = UInt32(first & 0x1F)
        case 0xE0...0xEF: length = 3; value = UInt32(first & 0x0F)
        case 0xF0...0xF4: length = 4; value = UInt32(first & 0x07)
        default: return (nil, 1)
        }
        guard i + length <= b.count else { return (nil, 1) }
        for k in 1..<length {
            let byte = b[i + k]
            guard byte & 0xC0 == 0x80 else { return (nil, 1) }
            value = value << 6 | UInt32(byte & 0x3F)
        }
        // Overlong forms and surrogates are not UTF-8.
        let minimum: UInt32 = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
        guard value >= minimum, let scalar = Unicode.Scalar(value) else { return (nil, 1) }
        return (scalar, length)
    }

    private static func hex(_ value: UInt32, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
