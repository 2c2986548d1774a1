// `$NAME`: a key defined earlier in an enclosing map, or else an environment variable.

extension ConfigTextParser {
    /// nats-server's lookupVariable: the innermost enclosing map that already defines `name` wins,
    /// then the environment, whose value is parsed as a config value.
    func resolveVariable(_ name: String, at offset: Int) throws -> ConfigValue {
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
            variablesBeingResolved: variablesBeingResolved.union([name]), repeatableBlocks: repeatableBlocks,
            includes: includes)
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
}
