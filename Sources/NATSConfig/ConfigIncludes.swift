// `include file.conf`: another file parsed on its own and merged into the current map.

extension ConfigTextParser {
    func parseInclude(directiveAt start: Int) throws {
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
        guard includes.allows(canonical) else {
            throw error(at: start, "cannot read include file \"\(path)\": outside the directory includes may read from")
        }
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
            environment: environment, includeChain: includeChain + [canonical], variablesBeingResolved: [],
            repeatableBlocks: repeatableBlocks, includes: includes)
        for entry in try sub.parseDocument().entries {
            addToInnermostScope(entry)
        }
    }
}
