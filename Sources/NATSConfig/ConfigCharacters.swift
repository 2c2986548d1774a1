// Byte-level reading: position, line numbers, blanks and comments, character classes.

extension ConfigTextParser {
    // MARK: Characters

    func peek() -> UInt8? { pos < text.count ? text[pos] : nil }

    func string(_ range: Range<Int>) -> String { String(decoding: text[range], as: UTF8.self) }

    func line(at offset: Int) -> Int {
        // Number of new lines before `offset`, found by binary search.
        var low = 0
        var high = newlineOffsets.count
        while low < high {
            let mid = (low + high) / 2
            if newlineOffsets[mid] < offset { low = mid + 1 } else { high = mid }
        }
        return low + 1
    }

    func error(at offset: Int, _ reason: String) -> ConfigError {
        ConfigError(file: fileName, line: line(at: offset), reason: reason)
    }

    func skipSpacesAndTabs() {
        while let c = peek(), c == Ch.space || c == Ch.tab { pos += 1 }
    }

    func atCommentStart() -> Bool {
        guard let c = peek() else { return false }
        return c == Ch.hash || (c == Ch.slash && pos + 1 < text.count && text[pos + 1] == Ch.slash)
    }

    /// `#` or `//` followed by a blank or the end of the line: surely a comment, not a word.
    func atCommentFollowedByBlank() -> Bool {
        guard atCommentStart() else { return false }
        let after = pos + (text[pos] == Ch.hash ? 1 : 2)
        return after >= text.count || isWhitespace(text[after])
    }

    func skipComment() {
        while let c = peek(), !isNewline(c) { pos += 1 }
    }

    /// Skips blanks, new lines and comments; between entries also stray `;` and `,`.
    func skipTrivia(alsoSeparators: Bool = false) {
        while let c = peek() {
            if isWhitespace(c) {
                pos += 1
            } else if atCommentStart() {
                skipComment()
            } else if alsoSeparators && (c == Ch.semicolon || c == Ch.comma) {
                pos += 1
            } else {
                return
            }
        }
    }

    func describe(_ c: UInt8) -> String {
        switch c {
        case Ch.lf, Ch.cr: return "a new line"
        case 0x21 ... 0x7E: return "'\(Character(UnicodeScalar(c)))'"
        default: return "byte 0x\(String(c, radix: 16))"
        }
    }

    func isWhitespace(_ c: UInt8) -> Bool {
        c == Ch.space || c == Ch.tab || c == Ch.lf || c == Ch.cr || c == 0x0B || c == 0x0C
    }
    func isNewline(_ c: UInt8) -> Bool { c == Ch.lf || c == Ch.cr }
    func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    /// What nats-server's lexString stops at (plus `'`'s odd handling, which we don't copy).
    func isBareTerminator(_ c: UInt8) -> Bool {
        isWhitespace(c) || c == Ch.semicolon || c == Ch.comma || c == Ch.closeBracket || c == Ch.closeBrace
    }

    /// Values cannot start with these (nats-server would read an empty string).
    func endsValue(_ c: UInt8) -> Bool {
        c == Ch.semicolon || c == Ch.comma || c == Ch.closeBrace || c == Ch.closeBracket
    }

    func isKeyTerminator(_ c: UInt8) -> Bool {
        isWhitespace(c) || c == Ch.colon || c == Ch.equals || c == Ch.openBrace || c == Ch.openBracket
            || c == Ch.closeBrace || c == Ch.closeBracket || c == Ch.semicolon || c == Ch.comma || c == Ch.hash
    }

    func isSizeLetter(_ c: UInt8) -> Bool {
        "kKmMgGtTpPeE".utf8.contains(c)
    }

    func isBinarySizeLetter(_ c: UInt8) -> Bool {
        "bBiI".utf8.contains(c)
    }

    func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0") ... UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a") ... UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A") ... UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// The ASCII bytes the syntax gives meaning to.
enum Ch {
    static let tab = UInt8(ascii: "\t")
    static let lf = UInt8(ascii: "\n")
    static let cr = UInt8(ascii: "\r")
    static let space = UInt8(ascii: " ")
    static let hash = UInt8(ascii: "#")
    static let slash = UInt8(ascii: "/")
    static let backslash = UInt8(ascii: "\\")
    static let colon = UInt8(ascii: ":")
    static let equals = UInt8(ascii: "=")
    static let semicolon = UInt8(ascii: ";")
    static let comma = UInt8(ascii: ",")
    static let dot = UInt8(ascii: ".")
    static let minus = UInt8(ascii: "-")
    static let doubleQuote = UInt8(ascii: "\"")
    static let singleQuote = UInt8(ascii: "'")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let openParen = UInt8(ascii: "(")
    static let closeParen = UInt8(ascii: ")")
}
