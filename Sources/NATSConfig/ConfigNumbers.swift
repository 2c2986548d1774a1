// Digit-led words: integers, floats, sizes, dates, IP addresses, or else strings.

extension ConfigTextParser {
    /// A word starting with a digit: an integer, a size (`64KB`), a float, a date, an IP address
    /// (`127.0.0.1:4222`), or else a plain string such as `30s` or `4222abc` — as nats-server lexes it.
    func parseNumberOrString() throws -> ConfigValue {
        let start = pos
        var end = pos
        while end < text.count, !isBareTerminator(text[end]) {
            if text[end] == Ch.backslash { return try parseBareValue() }  // escapes make it a string
            end += 1
        }
        let token = Array(text[start ..< end])
        let word = string(start ..< end)
        pos = end
        let digits = token.prefix(while: isDigit).count
        if digits == token.count { return .integer(try integer(word, at: start)) }
        let next = token[digits]
        if next == Ch.minus {
            guard isZuluDate(token) else {
                throw error(at: start, "invalid date \"\(word)\": dates must be in full ISO8601 Zulu form, e.g. 2006-01-02T15:04:05Z")
            }
            return .string(word)
        }
        if next == Ch.dot {
            let fractionDigits = token[(digits + 1)...].prefix(while: isDigit).count
            guard fractionDigits > 0 else { throw error(at: start, "floats must have a digit after the '.' in \"\(word)\"") }
            let afterFraction = digits + 1 + fractionDigits
            if afterFraction == token.count { return .float(try float(word, at: start)) }
            if token[afterFraction] == Ch.dot,
               token[afterFraction...].allSatisfy({ isDigit($0) || $0 == Ch.dot || $0 == Ch.colon || $0 == Ch.minus }) {
                return .string(word)  // an IP address, possibly with a port
            }
            throw invalidValue(word, at: start)
        }
        if isSizeLetter(next) {
            var suffixEnd = digits + 1
            while suffixEnd < token.count, isBinarySizeLetter(token[suffixEnd]) { suffixEnd += 1 }
            if suffixEnd == token.count { return .integer(try size(word, at: start)) }
            if isDigit(token[suffixEnd]) { throw invalidValue(word, at: start) }
        }
        return .string(word)
    }

    /// `-` must start a number: nats-server has no bare strings starting with a minus.
    func parseNegativeNumber() throws -> ConfigValue {
        let start = pos
        var end = pos + 1
        while end < text.count, !isBareTerminator(text[end]) { end += 1 }
        let token = Array(text[start ..< end])
        let word = string(start ..< end)
        pos = end
        guard token.count > 1, isDigit(token[1]) else {
            throw error(at: start, "expected a digit after '-' in \"\(word)\"")
        }
        let digits = 1 + token.dropFirst().prefix(while: isDigit).count
        if digits == token.count { return .integer(try integer(word, at: start)) }
        if token[digits] == Ch.dot {
            let fractionDigits = token[(digits + 1)...].prefix(while: isDigit).count
            guard fractionDigits > 0 else { throw error(at: start, "floats must have a digit after the '.' in \"\(word)\"") }
            if digits + 1 + fractionDigits == token.count { return .float(try float(word, at: start)) }
        } else if isSizeLetter(token[digits]),
                  token[(digits + 1)...].allSatisfy(isBinarySizeLetter) {
            return .integer(try size(word, at: start))
        }
        throw invalidValue(word, at: start)
    }

    func integer(_ word: String, at offset: Int) throws -> Int64 {
        guard let value = Int64(word) else { throw error(at: offset, "integer \"\(word)\" is out of range") }
        return value
    }

    func float(_ word: String, at offset: Int) throws -> Double {
        guard let value = Double(word), value.isFinite else { throw error(at: offset, "float \"\(word)\" is out of range") }
        return value
    }

    func size(_ word: String, at offset: Int) throws -> Int64 {
        let suffix = word.drop(while: { $0 == "-" || ($0.isASCII && $0.isNumber) }).lowercased()
        guard ConfigParser.sizeMultipliers[suffix] != nil else {
            throw error(at: offset, "invalid size suffix \"\(suffix)\" in \"\(word)\"; use k, kb, m, mb, g, gb, t, tb, p, pb, e or eb")
        }
        guard let value = ConfigParser.parseSize(word) else { throw error(at: offset, "size \"\(word)\" is out of range") }
        return value
    }

    func invalidValue(_ word: String, at offset: Int) -> ConfigError {
        error(at: offset, "invalid value \"\(word)\"; quote it if it is meant as a string")
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`, the only date form nats-server accepts.
    func isZuluDate(_ token: [UInt8]) -> Bool {
        let pattern = Array("0000-00-00T00:00:00Z".utf8)
        guard token.count == pattern.count else { return false }
        return zip(token, pattern).allSatisfy { c, p in p == UInt8(ascii: "0") ? isDigit(c) : c == p }
    }
}
