import Foundation

// The nats-server configuration file format (nats-server/conf/lex.go + parse.go), turned into a tree
// of `ConfigValue`s. This file only knows the *syntax*; what the keys mean is `ConfigLoader`'s job.
//
// Syntax summary (all as nats-server accepts it):
//   - comments start with `#` or `//` and run to the end of the line
//   - `key: value`, `key = value` and `key value` are all assignments; `;` or `,` may end a value
//   - `{ ... }` maps (nested blocks), `[ ... ]` arrays whose elements are separated by `,` or new lines
//   - "double quoted" strings with the escapes \t \n \r \" \\ \xHH, 'single quoted' raw strings,
//     bare strings, and `(` ... `)` block strings whose `)` stands alone on a line
//   - integers, floats, booleans (true/false, yes/no, on/off, any case), sizes such as `64KB` or `1m`
//     (k = 1000, kb/ki/kib = 1024, likewise m, g, t, p, e), ISO-8601 Zulu dates (kept as strings)
//   - `include file.conf` merges another file, relative to the including file's directory
//   - `$NAME` is replaced by a key defined earlier in an enclosing map, or else by the environment
//     variable NAME, itself parsed as a config value (so NAME=4222 gives an integer)
//   - the whole file may be wrapped in one `{ ... }` (JSON-like configs)
//
// Deliberate departures from nats-server, all of which reject or repair input nats-server mishandles:
//   - `]` ends numbers as it ends bare strings (nats-server reads the 2 in `[1, 2]` as the string "2");
//   - a bad size suffix (`1kbb`) or an overflowing size is an error (nats-server drops or wraps it);
//   - a stray `}` is an error (nats-server silently ignores it after a top-level value);
//   - a key may be followed by its value on a later line only when that value opens a `{` or `[`
//     block (nats-server takes whatever comes next, so a stray word swallows the next line);
//   - an absolute include path is used as is (nats-server appends it to the including directory);
//   - include cycles and very deep nesting are reported instead of exhausting the stack.

// MARK: - Values

/// One value of a configuration file.
public enum ConfigValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case bool(Bool)
    case array([ConfigValue])
    case map(ConfigMap)

    /// A short description for error messages, e.g. `string "abc"` or `integer 5`.
    public var summary: String {
        switch self {
        case .string(let s): return "string \"\(s)\""
        case .integer(let n): return "integer \(n)"
        case .float(let d): return "float \(d)"
        case .bool(let b): return "boolean \(b)"
        case .array: return "an array"
        case .map: return "a map"
        }
    }
}

/// A `{ ... }` block (or the whole file): keys in the order they were written, each with the file
/// and line it came from so that later errors can point at it.
public struct ConfigMap: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        /// The key exactly as written (case is kept; `ConfigLoader` lower-cases it).
        public var key: String
        public var value: ConfigValue
        /// The file that defined the key: differs from the parent's when it came through an include.
        public var file: String
        /// 1-based line of the key.
        public var line: Int
        /// True when `$key` was referenced. nats-server does not report such keys as unknown:
        /// they are variables, e.g. `TOKEN: "s3cr3t"` followed by `authorization { token: $TOKEN }`.
        public var usedAsVariable: Bool

        public init(key: String, value: ConfigValue, file: String, line: Int, usedAsVariable: Bool = false) {
            self.key = key
            self.value = value
            self.file = file
            self.line = line
            self.usedAsVariable = usedAsVariable
        }
    }

    /// Keys are unique (case-sensitively): a repeated key replaces the earlier one, as in nats-server.
    public private(set) var entries: [Entry] = []

    public init() {}

    public init(_ entries: [Entry]) {
        for entry in entries { set(entry) }
    }

    public var keys: [String] { entries.map(\.key) }
    public var isEmpty: Bool { entries.isEmpty }

    public subscript(key: String) -> ConfigValue? { entry(key)?.value }

    public func entry(_ key: String) -> Entry? {
        entries.first { $0.key == key }
    }

    /// Adds or replaces `entry.key`. A replaced key moves to the end: the last definition wins,
    /// and the order of entries stays the order in which the winning definitions were written.
    /// Exception: repeated `gcp_pubsub { }` blocks are all kept (brokerd's own key: each is one bridge).
    public mutating func set(_ entry: Entry) {
        if Self.repeatableBlocks.contains(entry.key.lowercased()), case .map = entry.value {
            entries.append(entry)
            return
        }
        entries.removeAll { $0.key == entry.key }
        entries.append(entry)
    }

    static let repeatableBlocks: Set<String> = ["gcp_pubsub", "pubsub_bridge"]

    /// Looks up a variable and marks its entry as used.
    mutating func useAsVariable(_ key: String) -> ConfigValue? {
        guard let index = entries.firstIndex(where: { $0.key == key }) else { return nil }
        entries[index].usedAsVariable = true
        return entries[index].value
    }
}

// MARK: - Errors

/// A configuration error, located in a file. Reads like `brokerd.conf:12: unknown key "prot"`.
public struct ConfigError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    public var file: String
    /// 1-based line; 0 when the error concerns the whole file (e.g. it cannot be read).
    public var line: Int
    public var reason: String

    public init(file: String, line: Int, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }

    public var description: String {
        line > 0 ? "\(file):\(line): \(reason)" : "\(file): \(reason)"
    }

    public var errorDescription: String? { description }
}

// MARK: - Entry points

public enum ConfigParser {
    /// How deep `include`s may nest. nats-server has no limit (a cycle overflows its stack).
    public static let maxIncludeDepth = 10
    /// How deep `{` / `[` may nest; keeps hostile input from exhausting the stack.
    public static let maxNestingDepth = 100

    /// Parses the file at `path`. Includes are resolved relative to the file's directory and
    /// variables not defined in the file come from `environment`.
    public static func parse(
        contentsOf path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ConfigMap {
        let bytes: [UInt8]
        switch readFile(path) {
        case .success(let contents): bytes = contents
        case .failure(let problem): throw ConfigError(file: path, line: 0, reason: "cannot read config file: \(problem.reason)")
        }
        let parser = ConfigTextParser(
            text: bytes, fileName: path, baseDirectory: directory(of: path), environment: environment,
            includeChain: [canonicalPath(path)], variablesBeingResolved: [])
        return try parser.parseDocument()
    }

    /// Parses `text`. `fileName` names it in errors and `baseDirectory` anchors relative includes.
    public static func parse(
        _ text: String,
        fileName: String = "<config>",
        baseDirectory: String = ".",
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ConfigMap {
        let parser = ConfigTextParser(
            text: Array(text.utf8), fileName: fileName, baseDirectory: baseDirectory, environment: environment,
            includeChain: [], variablesBeingResolved: [])
        return try parser.parseDocument()
    }

    // MARK: Sizes

    /// Multipliers for the size suffixes nats-server's parser knows (conf/parse.go): a bare letter
    /// is decimal (k = 1000), the letter followed by b, i or ib is binary (kb = ki = kib = 1024).
    static let sizeMultipliers: [String: Int64] = {
        var table: [String: Int64] = [:]
        var decimal: Int64 = 1
        var binary: Int64 = 1
        for letter in ["k", "m", "g", "t", "p", "e"] {
            decimal *= 1000
            binary *= 1024
            table[letter] = decimal
            for binarySuffix in ["b", "i", "ib"] { table[letter + binarySuffix] = binary }
        }
        return table
    }()

    /// Reads `1MB`, `64kb`, `1000` or `-5k` as a number of bytes; nil if it is not a size or overflows.
    static func parseSize(_ text: String) -> Int64? {
        let negative = text.hasPrefix("-")
        let body = negative ? text.dropFirst() : Substring(text)
        let digits = body.prefix(while: { $0.isASCII && $0.isNumber })
        guard !digits.isEmpty, let magnitude = Int64(negative ? "-" + digits : String(digits)) else { return nil }
        let suffix = body.dropFirst(digits.count).lowercased()
        if suffix.isEmpty { return magnitude }
        guard let multiplier = sizeMultipliers[suffix] else { return nil }
        let (product, overflow) = magnitude.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }

    // MARK: Files

    struct ReadProblem: Error { var reason: String }

    static func readFile(_ path: String) -> Result<[UInt8], ReadProblem> {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            return .failure(ReadProblem(reason: "no such file"))
        }
        if isDirectory.boolValue { return .failure(ReadProblem(reason: "it is a directory")) }
        guard let data = FileManager.default.contents(atPath: path) else {
            return .failure(ReadProblem(reason: "permission denied or unreadable"))
        }
        return .success([UInt8](data))
    }

    static func directory(of path: String) -> String {
        let directory = (path as NSString).deletingLastPathComponent
        return directory.isEmpty ? "." : directory
    }

    /// Joins like filepath.Join, but keeps the result short when the base is the current directory.
    static func join(_ directory: String, _ path: String) -> String {
        if path.hasPrefix("/") { return path }
        if directory.isEmpty || directory == "." { return path }
        return directory.hasSuffix("/") ? directory + path : directory + "/" + path
    }

    static func canonicalPath(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }
}

// MARK: - The parser

/// A recursive-descent reading of nats-server's state-machine lexer. Works on UTF-8 bytes: every
/// character with meaning in the syntax is ASCII, and strings are decoded from the bytes between.
final class ConfigTextParser {
    private let text: [UInt8]
    private let fileName: String
    private let baseDirectory: String
    private let environment: [String: String]
    /// Canonical paths of the files currently being included, outermost first (cycle detection).
    private let includeChain: [String]
    /// Environment variables whose values are being parsed (cycle detection for `A=$B`, `B=$A`).
    private let variablesBeingResolved: Set<String>

    private var pos = 0
    private var depth = 0
    /// Offsets of every '\n', to turn an offset into a line number.
    private let newlineOffsets: [Int]
    /// The maps being built, outermost first. Variables are looked up innermost first; arrays are
    /// not scopes (as in nats-server).
    private var scopes: [ConfigMap] = []

    init(
        text: [UInt8], fileName: String, baseDirectory: String, environment: [String: String],
        includeChain: [String], variablesBeingResolved: Set<String>
    ) {
        self.text = text
        self.fileName = fileName
        self.baseDirectory = baseDirectory
        self.environment = environment
        self.includeChain = includeChain
        self.variablesBeingResolved = variablesBeingResolved
        self.newlineOffsets = text.indices.filter { text[$0] == Ch.lf }
    }

    func parseDocument() throws -> ConfigMap {
        scopes = [ConfigMap()]
        if text.starts(with: [0xEF, 0xBB, 0xBF]) { pos = 3 }  // UTF-8 byte order mark
        skipTrivia()
        if peek() == Ch.openBrace {
            // The whole file wrapped in braces, as JSON would be.
            let open = pos
            pos += 1
            try parseEntries(closingBraceAt: open)
            skipTrivia()
            if let c = peek() {
                throw error(at: pos, "unexpected \(describe(c)) after the closing '}' of the top-level block")
            }
        } else {
            try parseEntries(closingBraceAt: nil)
        }
        return scopes.removeLast()
    }

    // MARK: Entries

    /// Reads `key value` entries into the innermost scope, up to the `}` matching the `{` at
    /// `open` or, at the top level (`open == nil`), up to the end of the text.
    private func parseEntries(closingBraceAt open: Int?) throws {
        while true {
            skipTrivia(alsoSeparators: true)
            guard let c = peek() else {
                if let open { throw error(at: open, "unbalanced braces: this '{' is never closed") }
                return
            }
            switch c {
            case Ch.closeBrace:
                guard open != nil else { throw error(at: pos, "unbalanced braces: '}' without a matching '{'") }
                pos += 1
                return
            case Ch.colon, Ch.equals:
                throw error(at: pos, "unexpected \(describe(c)): missing key before the separator")
            case Ch.openBrace, Ch.openBracket, Ch.closeBracket:
                throw error(at: pos, "unexpected \(describe(c)) where a key was expected")
            default:
                break
            }
            let keyStart = pos
            let (key, quoted) = try parseKey()
            if !quoted, key.lowercased() == "include", peek().map({ isWhitespace($0) }) ?? true {
                try parseInclude(directiveAt: keyStart)
            } else {
                try expectValue(forKey: key, keyStart: keyStart)
                let value = try parseValue()
                scopes[scopes.count - 1].set(
                    ConfigMap.Entry(key: key, value: value, file: fileName, line: line(at: keyStart)))
            }
            try expectEndOfValue(key: key)
        }
    }

    private func parseKey() throws -> (key: String, quoted: Bool) {
        let start = pos
        let first = text[pos]
        if first == Ch.doubleQuote || first == Ch.singleQuote {
            pos += 1
            while let c = peek(), c != first, !isNewline(c) { pos += 1 }
            guard peek() == first else {
                throw error(at: start, "unterminated quoted key: missing closing \(describe(first))")
            }
            let key = string(start + 1 ..< pos)
            pos += 1
            return (key, true)
        }
        while let c = peek(), !isKeyTerminator(c) { pos += 1 }
        return (string(start ..< pos), false)
    }

    /// Consumes the separator (if any) between a key and its value and checks a value follows.
    private func expectValue(forKey key: String, keyStart: Int) throws {
        let missing = error(at: keyStart, "expected value for key \"\(key)\"")
        skipSpacesAndTabs()
        guard let c = peek() else { throw missing }
        if c == Ch.colon || c == Ch.equals {
            pos += 1
            skipSpacesAndTabs()
            // Like nats-server, a new line may not separate `key:` from its value. nats-server would
            // read `key: # note` as the string "#" followed by junk; we call it a missing value.
            // (`#` starting a word, as in `password: #secret`, stays a bare string as in nats-server.)
            guard let v = peek(), !isNewline(v), !endsValue(v), !atCommentFollowedByBlank() else { throw missing }
            return
        }
        if isNewline(c) {
            // No separator: nats-server skips new lines too; we allow that only for a block opener,
            // for brace-on-next-line styles, so that a stray word cannot swallow the next line.
            var next = pos
            while next < text.count, isWhitespace(text[next]) { next += 1 }
            if next < text.count, text[next] == Ch.openBrace || text[next] == Ch.openBracket {
                pos = next
                return
            }
            throw missing
        }
        if endsValue(c) { throw missing }
    }

    /// After a value: blanks, then a comment, a new line, `;`, `,`, the end, or the closing `}`.
    private func expectEndOfValue(key: String) throws {
        skipSpacesAndTabs()
        guard let c = peek() else { return }
        if atCommentStart() {
            skipComment()
        } else if isNewline(c) || c == Ch.semicolon || c == Ch.comma {
            pos += 1
        } else if c != Ch.closeBrace {  // `}` is left for parseEntries to match or reject
            throw error(at: pos, "unexpected \(describe(c)) after the value of \"\(key)\"; expected a new line, ';' or ','")
        }
    }

    // MARK: Values

    private func parseValue() throws -> ConfigValue {
        guard let c = peek() else { throw error(at: pos, "expected a value") }
        switch c {
        case Ch.openBracket: return try nested { try parseArray() }
        case Ch.openBrace: return try nested { try parseMap() }
        case Ch.doubleQuote: return .string(try parseDoubleQuoted())
        case Ch.singleQuote: return .string(try parseSingleQuoted())
        case Ch.openParen: return .string(try parseBlockString())
        case Ch.minus: return try parseNegativeNumber()
        case Ch.dot: throw error(at: pos, "floats must start with a digit")
        case _ where isDigit(c): return try parseNumberOrString()
        default: return try parseBareValue()
        }
    }

    private func nested(_ body: () throws -> ConfigValue) throws -> ConfigValue {
        guard depth < ConfigParser.maxNestingDepth else {
            throw error(at: pos, "blocks nested too deeply (limit \(ConfigParser.maxNestingDepth))")
        }
        depth += 1
        defer { depth -= 1 }
        return try body()
    }

    private func parseMap() throws -> ConfigValue {
        let open = pos
        pos += 1
        scopes.append(ConfigMap())
        try parseEntries(closingBraceAt: open)
        return .map(scopes.removeLast())
    }

    private func parseArray() throws -> ConfigValue {
        let open = pos
        pos += 1
        var elements: [ConfigValue] = []
        let unclosed = error(at: open, "unbalanced brackets: this '[' is never closed")
        while true {
            skipTrivia()
            guard let c = peek() else { throw unclosed }
            if c == Ch.closeBracket {
                pos += 1
                return .array(elements)
            }
            if c == Ch.comma || c == Ch.semicolon || c == Ch.closeBrace {
                throw error(at: pos, "unexpected \(describe(c)) in array; expected a value or ']'")
            }
            elements.append(try parseValue())
            skipSpacesAndTabs()
            if atCommentStart() { skipComment() }
            guard let end = peek() else { throw unclosed }
            if end == Ch.comma || isNewline(end) {
                pos += 1
            } else if end != Ch.closeBracket {
                throw error(at: pos, "unexpected \(describe(end)) in array; expected ',', a new line or ']'")
            }
        }
    }

    private func parseDoubleQuoted() throws -> String {
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
    private func parseSingleQuoted() throws -> String {
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
    private func parseBlockString() throws -> String {
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
    private func parseBareValue() throws -> ConfigValue {
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

    /// A word starting with a digit: an integer, a size (`64KB`), a float, a date, an IP address
    /// (`127.0.0.1:4222`), or else a plain string such as `30s` or `4222abc` — as nats-server lexes it.
    private func parseNumberOrString() throws -> ConfigValue {
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
    private func parseNegativeNumber() throws -> ConfigValue {
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

    private func integer(_ word: String, at offset: Int) throws -> Int64 {
        guard let value = Int64(word) else { throw error(at: offset, "integer \"\(word)\" is out of range") }
        return value
    }

    private func float(_ word: String, at offset: Int) throws -> Double {
        guard let value = Double(word), value.isFinite else { throw error(at: offset, "float \"\(word)\" is out of range") }
        return value
    }

    private func size(_ word: String, at offset: Int) throws -> Int64 {
        let suffix = word.drop(while: { $0 == "-" || ($0.isASCII && $0.isNumber) }).lowercased()
        guard ConfigParser.sizeMultipliers[suffix] != nil else {
            throw error(at: offset, "invalid size suffix \"\(suffix)\" in \"\(word)\"; use k, kb, m, mb, g, gb, t, tb, p, pb, e or eb")
        }
        guard let value = ConfigParser.parseSize(word) else { throw error(at: offset, "size \"\(word)\" is out of range") }
        return value
    }

    private func invalidValue(_ word: String, at offset: Int) -> ConfigError {
        error(at: offset, "invalid value \"\(word)\"; quote it if it is meant as a string")
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`, the only date form nats-server accepts.
    private func isZuluDate(_ token: [UInt8]) -> Bool {
        let pattern = Array("0000-00-00T00:00:00Z".utf8)
        guard token.count == pattern.count else { return false }
        return zip(token, pattern).allSatisfy { c, p in p == UInt8(ascii: "0") ? isDigit(c) : c == p }
    }

    /// Reads up to the end of a bare word, decoding backslash escapes as nats-server does.
    private func scanBare() throws -> (bytes: [UInt8], escaped: Bool) {
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
    private func appendEscape(to bytes: inout [UInt8]) throws {
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

    // MARK: Variables

    /// nats-server's lookupVariable: the innermost enclosing map that already defines `name` wins,
    /// then the environment, whose value is parsed as a config value.
    private func resolveVariable(_ name: String, at offset: Int) throws -> ConfigValue {
        // A bcrypt hash ($2a$...) is a password, not a variable (nats-server special-cases it too).
        if name.hasPrefix("2a$") { return .string("$" + name) }
        for index in scopes.indices.reversed() {
            if let value = scopes[index].useAsVariable(name) { return value }
        }
        guard let raw = environment[name] else {
            throw error(at: offset, "undefined variable \"$\(name)\": not defined earlier in scope nor in the environment")
        }
        if variablesBeingResolved.contains(name) {
            throw error(at: offset, "variable reference cycle for \"$\(name)\"")
        }
        // nats-server parses "pk=<value>"; an empty (or blank) value comes out as "".
        if raw.allSatisfy({ $0 == " " || $0 == "\t" }) { return .string("") }
        let sub = ConfigTextParser(
            text: Array("pk=\(raw)".utf8), fileName: fileName, baseDirectory: baseDirectory,
            environment: environment, includeChain: includeChain,
            variablesBeingResolved: variablesBeingResolved.union([name]))
        let parsed: ConfigMap
        do {
            parsed = try sub.parseDocument()
        } catch let inner as ConfigError {
            if inner.reason.hasPrefix("variable reference cycle") { throw error(at: offset, inner.reason) }
            throw error(at: offset, "cannot parse environment variable \"\(name)\": \(inner.reason)")
        }
        // "pk=" always yields a value (an empty string at worst); the fallback is for safety only.
        return parsed["pk"] ?? .string(raw)
    }

    // MARK: Includes

    private func parseInclude(directiveAt start: Int) throws {
        skipSpacesAndTabs()
        let missing = error(at: start, "expected a file name after include")
        guard let c = peek(), !isNewline(c) else { throw missing }
        let path: String
        if c == Ch.doubleQuote || c == Ch.singleQuote {
            let open = pos
            pos += 1
            while let b = peek(), b != c { pos += 1 }
            guard peek() == c else { throw error(at: open, "unterminated include file name: missing closing \(describe(c))") }
            path = string(open + 1 ..< pos)
            pos += 1
        } else {
            if c == Ch.openBracket || c == Ch.openBrace || c == Ch.openParen || c == Ch.minus || isDigit(c) {
                throw error(at: start, "expected an include file name, found \(describe(c))")
            }
            let begin = pos
            while let b = peek(), !isWhitespace(b), b != Ch.semicolon, b != Ch.closeBrace { pos += 1 }
            path = string(begin ..< pos)
        }
        guard !path.isEmpty else { throw missing }

        let resolved = ConfigParser.join(baseDirectory, path)
        let canonical = ConfigParser.canonicalPath(resolved)
        if includeChain.contains(canonical) {
            throw error(at: start, "include cycle: \"\(path)\" is already being included")
        }
        if includeChain.count > ConfigParser.maxIncludeDepth {
            throw error(at: start, "includes nested too deeply (limit \(ConfigParser.maxIncludeDepth))")
        }
        let bytes: [UInt8]
        switch ConfigParser.readFile(resolved) {
        case .success(let contents): bytes = contents
        case .failure(let problem): throw error(at: start, "cannot read include file \"\(path)\": \(problem.reason)")
        }
        // As in nats-server the included file is parsed on its own: it sees the environment but not
        // the including file's keys, and its own includes are relative to its own directory.
        let sub = ConfigTextParser(
            text: bytes, fileName: resolved, baseDirectory: ConfigParser.directory(of: resolved),
            environment: environment, includeChain: includeChain + [canonical], variablesBeingResolved: [])
        for entry in try sub.parseDocument().entries {
            scopes[scopes.count - 1].set(entry)
        }
    }

    // MARK: Characters

    private func peek() -> UInt8? { pos < text.count ? text[pos] : nil }

    private func string(_ range: Range<Int>) -> String { String(decoding: text[range], as: UTF8.self) }

    private func line(at offset: Int) -> Int {
        // Number of new lines before `offset`, found by binary search.
        var low = 0
        var high = newlineOffsets.count
        while low < high {
            let mid = (low + high) / 2
            if newlineOffsets[mid] < offset { low = mid + 1 } else { high = mid }
        }
        return low + 1
    }

    private func error(at offset: Int, _ reason: String) -> ConfigError {
        ConfigError(file: fileName, line: line(at: offset), reason: reason)
    }

    private func skipSpacesAndTabs() {
        while let c = peek(), c == Ch.space || c == Ch.tab { pos += 1 }
    }

    private func atCommentStart() -> Bool {
        guard let c = peek() else { return false }
        return c == Ch.hash || (c == Ch.slash && pos + 1 < text.count && text[pos + 1] == Ch.slash)
    }

    /// `#` or `//` followed by a blank or the end of the line: surely a comment, not a word.
    private func atCommentFollowedByBlank() -> Bool {
        guard atCommentStart() else { return false }
        let after = pos + (text[pos] == Ch.hash ? 1 : 2)
        return after >= text.count || isWhitespace(text[after])
    }

    private func skipComment() {
        while let c = peek(), !isNewline(c) { pos += 1 }
    }

    /// Skips blanks, new lines and comments; between entries also stray `;` and `,`.
    private func skipTrivia(alsoSeparators: Bool = false) {
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

    private func describe(_ c: UInt8) -> String {
        switch c {
        case Ch.lf, Ch.cr: return "a new line"
        case 0x21 ... 0x7E: return "'\(Character(UnicodeScalar(c)))'"
        default: return "byte 0x\(String(c, radix: 16))"
        }
    }

    private func isWhitespace(_ c: UInt8) -> Bool {
        c == Ch.space || c == Ch.tab || c == Ch.lf || c == Ch.cr || c == 0x0B || c == 0x0C
    }
    private func isNewline(_ c: UInt8) -> Bool { c == Ch.lf || c == Ch.cr }
    private func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    /// What nats-server's lexString stops at (plus `'`'s odd handling, which we don't copy).
    private func isBareTerminator(_ c: UInt8) -> Bool {
        isWhitespace(c) || c == Ch.semicolon || c == Ch.comma || c == Ch.closeBracket || c == Ch.closeBrace
    }

    /// Values cannot start with these (nats-server would read an empty string).
    private func endsValue(_ c: UInt8) -> Bool {
        c == Ch.semicolon || c == Ch.comma || c == Ch.closeBrace || c == Ch.closeBracket
    }

    private func isKeyTerminator(_ c: UInt8) -> Bool {
        isWhitespace(c) || c == Ch.colon || c == Ch.equals || c == Ch.openBrace || c == Ch.openBracket
            || c == Ch.closeBrace || c == Ch.closeBracket || c == Ch.semicolon || c == Ch.comma || c == Ch.hash
    }

    private func isSizeLetter(_ c: UInt8) -> Bool {
        "kKmMgGtTpPeE".utf8.contains(c)
    }

    private func isBinarySizeLetter(_ c: UInt8) -> Bool {
        "bBiI".utf8.contains(c)
    }

    private func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0") ... UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a") ... UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A") ... UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// The ASCII bytes the syntax gives meaning to.
private enum Ch {
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
