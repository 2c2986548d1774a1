// Quoted, single-quoted, block and bare strings, and backslash escapes.

extension ConfigTextParser {
    func parseDoubleQuoted() throws -> String {
        let open = pos
        pos += 1
        var bytes: [UInt8] = []
        while true {
            guard let c = peek() else { throw error(at: open, "unterminated string: missing closing '\"'") }
            pos += 1
            if c == Ch.doubleQuote { break }
            if c == Ch.backslash { try appendEscape(to: &bytes) } else { bytes.append(c) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Single quotes take everything literally, backslashes and new lines included.
    func parseSingleQuoted() throws -> String {
        let open = pos
        pos += 1
        while let c = peek(), c != Ch.singleQuote { pos += 1 }
        guard peek() == Ch.singleQuote else { throw error(at: open, "unterminated string: missing closing \"'\"") }
        let value = string(open + 1 ..< pos)
        pos += 1
        return value
    }

    /// `(` starts a raw multi-line string that ends at a `)` alone on its line. As in nats-server the
    /// value is everything after the `(` up to and including the new line before the `)`.
    func parseBlockString() throws -> String {
        let open = pos
        var index = open + 1
        while index < text.count {
            if text[index] == Ch.closeParen, index - 1 > open, text[index - 1] == Ch.lf,
               index + 1 == text.count || isNewline(text[index + 1]) {
                pos = index + 1
                return string(open + 1 ..< index)
            }
            index += 1
        }
        throw error(at: open, "unterminated block string: missing ')' on a line of its own")
    }

    /// Bare words: booleans, `$variables`, or strings.
    func parseBareValue() throws -> ConfigValue {
        let start = pos
        let (bytes, escaped) = try scanBare()
        if bytes.isEmpty && !escaped {
            throw error(at: start, "expected a value, found \(peek().map(describe) ?? "the end of the file")")
        }
        let word = String(decoding: bytes, as: UTF8.self)
        if escaped { return .string(word) }
        switch word.lowercased() {
        case "true", "yes", "on": return .bool(true)
        case "false", "no", "off": return .bool(false)
        default: break
        }
        if word.hasPrefix("$") { return try resolveVariable(String(word.dropFirst()), at: start) }
        return .string(word)
    }

    /// Reads up to the end of a bare word, decoding backslash escapes as nats-server does.
    func scanBare() throws -> (bytes: [UInt8], escaped: Bool) {
        var bytes: [UInt8] = []
        var escaped = false
        while let c = peek(), !isBareTerminator(c) {
            pos += 1
            if c == Ch.backslash {
                try appendEscape(to: &bytes)
                escaped = true
            } else {
                bytes.append(c)
            }
        }
        return (bytes, escaped)
    }

    /// Decodes the escape whose backslash was just consumed.
    func appendEscape(to bytes: inout [UInt8]) throws {
        guard let c = peek() else { throw error(at: pos, "unterminated escape sequence") }
        pos += 1
        switch c {
        case UInt8(ascii: "t"): bytes.append(Ch.tab)
        case UInt8(ascii: "n"): bytes.append(Ch.lf)
        case UInt8(ascii: "r"): bytes.append(Ch.cr)
        case Ch.doubleQuote, Ch.backslash: bytes.append(c)
        case UInt8(ascii: "x"):
            guard pos + 1 < text.count, let high = hexValue(text[pos]), let low = hexValue(text[pos + 1]) else {
                throw error(at: pos, "expected two hexadecimal digits after '\\x'")
            }
            bytes.append(high << 4 | low)
            pos += 2
        default:
            throw error(at: pos - 1, "invalid escape character \(describe(c)); only \\xXX, \\t, \\n, \\r, \\\" and \\\\ are allowed")
        }
    }
}
