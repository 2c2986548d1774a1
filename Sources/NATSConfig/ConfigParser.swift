import Foundation

// The nats-server configuration file format (nats-server/conf/lex.go + parse.go), turned into a tree
// of `ConfigValue`s. This module only knows the *syntax*; what the keys mean is the job of its user
// (brokerd's `ConfigLoader`, in Broker/Config).
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

// MARK: - Entry points

public enum ConfigParser {
    /// How deep `include`s may nest. nats-server has no limit (a cycle overflows its stack).
    public static let maxIncludeDepth = 10
    /// How deep `{` / `[` may nest; keeps hostile input from exhausting the stack.
    public static let maxNestingDepth = 100

    /// Parses the file at `path`. Includes are resolved relative to the file's directory and
    /// variables not defined in the file come from `environment`. Keys in `repeatableBlocks`
    /// (lower-case) may hold a map several times: each is kept, in order (see `ConfigMap.set`).
    public static func parse(
        contentsOf path: String,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        repeatableBlocks: Set<String> = [],
        includes: IncludePolicy = .anywhere
    ) throws -> ConfigMap {
        let bytes: [UInt8]
        switch readFile(path) {
        case .success(let contents): bytes = contents
        case .failure(let problem): throw ConfigError(file: path, line: 0, reason: "cannot read config file: \(problem.reason)")
        }
        let parser = ConfigTextParser(
            text: bytes, fileName: path, baseDirectory: directory(of: path), environment: environment,
            includeChain: [canonicalPath(path)], variablesBeingResolved: [], repeatableBlocks: repeatableBlocks,
            includes: includes.canonical)
        return try parser.parseDocument()
    }

    /// Parses `text`. `fileName` names it in errors and `baseDirectory` anchors relative includes.
    public static func parse(
        _ text: String,
        fileName: String = "<config>",
        baseDirectory: String = ".",
        environment: [String: String] = ProcessInfo.processInfo.environment,
        repeatableBlocks: Set<String> = [],
        includes: IncludePolicy = .anywhere
    ) throws -> ConfigMap {
        try parse(bytes: Array(text.utf8), fileName: fileName, baseDirectory: baseDirectory, environment: environment,
                  repeatableBlocks: repeatableBlocks, includes: includes)
    }

    /// Parses a file's bytes as read (not necessarily valid UTF-8), as `parse(contentsOf:)` does after reading.
    public static func parse(
        bytes: [UInt8],
        fileName: String = "<config>",
        baseDirectory: String = ".",
        environment: [String: String] = ProcessInfo.processInfo.environment,
        repeatableBlocks: Set<String> = [],
        includes: IncludePolicy = .anywhere
    ) throws -> ConfigMap {
        let parser = ConfigTextParser(
            text: bytes, fileName: fileName, baseDirectory: baseDirectory, environment: environment,
            includeChain: [], variablesBeingResolved: [], repeatableBlocks: repeatableBlocks, includes: includes.canonical)
        return try parser.parseDocument()
    }

    /// Which files `include` may read.
    public enum IncludePolicy: Sendable, Equatable {
        /// Any file its path names, as nats-server does (the default).
        case anywhere
        /// Only files inside this directory, once `..` and symbolic links are resolved; any other is an error.
        /// (The fuzzer parses hostile text with it, so an include can never read, say, /dev/zero.)
        case within(String)

        var canonical: IncludePolicy {
            switch self {
            case .anywhere: return .anywhere
            case .within(let directory): return .within(ConfigParser.canonicalPath(directory))
            }
        }

        func allows(_ canonicalPath: String) -> Bool {
            switch self {
            case .anywhere: return true
            case .within(let directory):
                return canonicalPath.hasPrefix(directory.hasSuffix("/") ? directory : directory + "/")
            }
        }
    }
}

// MARK: - The parser

/// A recursive-descent reading of nats-server's state-machine lexer. Works on UTF-8 bytes: every
/// character with meaning in the syntax is ASCII, and strings are decoded from the bytes between.
final class ConfigTextParser {
    let text: [UInt8]
    let fileName: String
    let baseDirectory: String
    let environment: [String: String]
    /// Canonical paths of the files currently being included, outermost first (cycle detection).
    let includeChain: [String]
    /// Environment variables whose values are being parsed (cycle detection for `A=$B`, `B=$A`).
    let variablesBeingResolved: Set<String>
    /// Lower-cased keys whose map values are all kept when repeated (`ConfigMap.set(_:repeatable:)`).
    let repeatableBlocks: Set<String>
    /// Which files `include` may read (canonical).
    let includes: ConfigParser.IncludePolicy

    var pos = 0
    var depth = 0
    /// Offsets of every '\n', to turn an offset into a line number.
    let newlineOffsets: [Int]
    /// The maps being built, outermost first. Variables are looked up innermost first; arrays are
    /// not scopes (as in nats-server).
    var scopes: [ConfigMap] = []

    init(
        text: [UInt8], fileName: String, baseDirectory: String, environment: [String: String],
        includeChain: [String], variablesBeingResolved: Set<String>, repeatableBlocks: Set<String>,
        includes: ConfigParser.IncludePolicy
    ) {
        self.text = text
        self.fileName = fileName
        self.baseDirectory = baseDirectory
        self.environment = environment
        self.includeChain = includeChain
        self.variablesBeingResolved = variablesBeingResolved
        self.repeatableBlocks = repeatableBlocks
        self.includes = includes
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
    func parseEntries(closingBraceAt open: Int?) throws {
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
                addToInnermostScope(ConfigMap.Entry(key: key, value: value, file: fileName, line: line(at: keyStart)))
            }
            try expectEndOfValue(key: key)
        }
    }

    func addToInnermostScope(_ entry: ConfigMap.Entry) {
        scopes[scopes.count - 1].set(entry, repeatable: repeatableBlocks.contains(entry.key.lowercased()))
    }

    func parseKey() throws -> (key: String, quoted: Bool) {
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
    func expectValue(forKey key: String, keyStart: Int) throws {
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
    func expectEndOfValue(key: String) throws {
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

    func parseValue() throws -> ConfigValue {
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

    func nested(_ body: () throws -> ConfigValue) throws -> ConfigValue {
        guard depth < ConfigParser.maxNestingDepth else {
            throw error(at: pos, "blocks nested too deeply (limit \(ConfigParser.maxNestingDepth))")
        }
        depth += 1
        defer { depth -= 1 }
        return try body()
    }

    func parseMap() throws -> ConfigValue {
        let open = pos
        pos += 1
        scopes.append(ConfigMap())
        try parseEntries(closingBraceAt: open)
        return .map(scopes.removeLast())
    }

    func parseArray() throws -> ConfigValue {
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
}
