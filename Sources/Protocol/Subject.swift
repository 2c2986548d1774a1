import NIOCore

/// Subject rules, as nats-server's sublist.go applies them.
public enum Subject {
    /// A subject a subscription may use: non-empty tokens separated by '.', where `>` may only be the last
    /// token; `*` and `>` are wildcards only as whole tokens. (nats-server IsValidSubject.)
    public static func isValidSubscription(_ subject: ByteBuffer) -> Bool {
        subject.withUnsafeReadableBytes { isValid($0, literalOnly: false) }
    }

    /// A subject a message may be published to: valid and without wildcard tokens. (IsValidLiteralSubject.)
    public static func isValidPublish(_ subject: ByteBuffer) -> Bool {
        subject.withUnsafeReadableBytes { isValid($0, literalOnly: true) }
    }

    public static func isValidSubscription(_ subject: String) -> Bool {
        var s = subject
        return s.withUTF8 { isValid(UnsafeRawBufferPointer($0), literalOnly: false) }
    }

    public static func isValidPublish(_ subject: String) -> Bool {
        var s = subject
        return s.withUTF8 { isValid(UnsafeRawBufferPointer($0), literalOnly: true) }
    }

    public static func isValid(_ bytes: UnsafeRawBufferPointer, literalOnly: Bool) -> Bool {
        if bytes.isEmpty { return false }
        var tokenStart = 0
        var sawFullWildcard = false
        for i in 0...bytes.count {
            if i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\r") || b == UInt8(ascii: "\n") {
                    return false
                }
                if b != UInt8(ascii: ".") { continue }
            }
            let length = i - tokenStart
            if length == 0 || sawFullWildcard { return false }
            if length == 1 {
                let t = bytes[tokenStart]
                if t == UInt8(ascii: ">") {
                    if literalOnly { return false }
                    sawFullWildcard = true
                } else if t == UInt8(ascii: "*") && literalOnly {
                    return false
                }
            }
            tokenStart = i + 1
        }
        return true
    }
}

// MARK: - Matching: the one matcher for filters outside the trie (stream subjects, consumer filters, mappings)

/// Receives what each wildcard of a filter took while `Subject.matches` walks a subject.
public protocol SubjectCaptures {
    /// `*` at this position took `range` of the subject's bytes.
    mutating func token(_ range: Range<Int>)
    /// `>` took `range` (the rest of the subject).
    mutating func rest(_ range: Range<Int>)
}

/// For the common case: no captures wanted (specialized away).
public struct NoCaptures: SubjectCaptures {
    @inlinable public init() {}
    @inlinable public mutating func token(_ range: Range<Int>) {}
    @inlinable public mutating func rest(_ range: Range<Int>) {}
}

extension Subject {
    /// Whether the literal `subject` matches `filter` (with `*` and `>` as whole tokens), token by token over the
    /// raw bytes: no splitting, no allocation. A subject with an empty token matches nothing (nats-server).
    @inlinable
    public static func matches<C: SubjectCaptures>(filter f: UnsafeRawBufferPointer, subject s: UnsafeRawBufferPointer,
                                                   captures: inout C) -> Bool {
        let dot = UInt8(ascii: ".")
        var fi = 0, si = 0
        while true {
            var fe = fi
            while fe < f.count && f[fe] != dot { fe += 1 }
            var se = si
            while se < s.count && s[se] != dot { se += 1 }
            if se == si { return false }  // an empty subject token
            let length = fe - fi
            if length == 1 && f[fi] == UInt8(ascii: ">") {
                // The subject has a token here: ">" takes it and the rest (whose tokens must not be empty).
                var k = se
                while k < s.count {
                    if s[k] == dot && (k + 1 == s.count || s[k + 1] == dot) { return false }
                    k += 1
                }
                captures.rest(si..<s.count)
                return true
            }
            if length == 1 && f[fi] == UInt8(ascii: "*") {
                captures.token(si..<se)
            } else {
                guard length == se - si else { return false }
                for k in 0..<length where f[fi + k] != s[si + k] { return false }
            }
            let lastInFilter = fe >= f.count, lastInSubject = se >= s.count
            if lastInFilter || lastInSubject { return lastInFilter && lastInSubject }
            fi = fe + 1
            si = se + 1
        }
    }

    @inlinable
    public static func matches(filter: UnsafeRawBufferPointer, subject: UnsafeRawBufferPointer) -> Bool {
        var none = NoCaptures()
        return matches(filter: filter, subject: subject, captures: &none)
    }

    @inlinable
    public static func matches(filter: [UInt8], subject: [UInt8]) -> Bool {
        filter.withUnsafeBytes { f in subject.withUnsafeBytes { s in matches(filter: f, subject: s) } }
    }

    @inlinable
    public static func matches(filter: [UInt8], subject: ByteBuffer) -> Bool {
        filter.withUnsafeBytes { f in subject.withUnsafeReadableBytes { s in matches(filter: f, subject: s) } }
    }

    public static func matches(filter: String, subject: String) -> Bool {
        matches(filter: Array(filter.utf8), subject: Array(subject.utf8))
    }

    /// Whether a token of `subject` is a wildcard (`*` or `>`), as nats-server's subjectHasWildcard.
    public static func hasWildcard(_ subject: [UInt8]) -> Bool {
        let dot = UInt8(ascii: ".")
        for (i, byte) in subject.enumerated() where byte == UInt8(ascii: "*") || byte == UInt8(ascii: ">") {
            if (i == 0 || subject[i - 1] == dot) && (i + 1 == subject.count || subject[i + 1] == dot) { return true }
        }
        return false
    }

    /// Whether two filters can match a common subject (streams may not overlap; a consumer's filter must fall
    /// inside its stream's subjects).
    public static func overlaps(_ a: String, _ b: String) -> Bool {
        // On bytes, as the trie splits subjects: Swift's String would not split at a "." followed by a combining
        // mark (one grapheme), and would miss an overlap the trie sees.
        let dot = UInt8(ascii: ".")
        let x = Array(a.utf8).split(separator: dot, omittingEmptySubsequences: false)
        let y = Array(b.utf8).split(separator: dot, omittingEmptySubsequences: false)
        func isToken(_ t: ArraySlice<UInt8>, _ c: Character) -> Bool { t.count == 1 && t.first == c.asciiValue }
        for i in 0..<max(x.count, y.count) {
            if i < x.count, isToken(x[i], ">") { return y.count > i }
            if i < y.count, isToken(y[i], ">") { return x.count > i }
            guard i < x.count, i < y.count else { return false }
            if isToken(x[i], "*") || isToken(y[i], "*") || x[i].elementsEqual(y[i]) { continue }
            return false
        }
        return true
    }

}
