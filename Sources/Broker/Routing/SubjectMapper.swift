import Foundation
import NIOCore
import Protocol

/// nats-server's `mappings { }` block: a published subject that matches a source is rewritten before it is
/// routed or stored. Sources are subjects with `*` and a trailing `>`; a destination refers to the source's
/// wildcards as `{{wildcard(n)}}` (or the older `$n`) and may end in `>` (the rest of the subject). A list of
/// `{ destination, weight }` splits traffic by percentage; what the weights leave over keeps its subject.
public struct SubjectMapper: Sendable {
    public struct MappingError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    enum Part: Sendable, Equatable {
        case literal([UInt8])
        case wildcard(Int)  // 1-based, as written
        case rest
    }

    struct Destination: Sendable {
        var parts: [Part]
        var weight: Int  // percent
    }

    struct Rule: Sendable {
        var source: [UInt8]  // the filter, as written
        var destinations: [Destination]
    }

    private var rules: [Rule] = []

    public var isEmpty: Bool { rules.isEmpty }

    public init() {}

    /// Adds `source` -> `destinations` (destination, weight percent). Errors name what is wrong.
    public mutating func add(source: String, destinations: [(String, Int)]) throws(MappingError) {
        guard Subject.isValidSubscription(source) else { throw MappingError(description: "invalid mapping source \"\(source)\"") }
        let sourceTokens = source.split(separator: ".", omittingEmptySubsequences: false).map { Array($0.utf8) }
        let wildcards = sourceTokens.filter { $0 == [UInt8(ascii: "*")] }.count
        let sourceHasRest = sourceTokens.last == [UInt8(ascii: ">")]
        var total = 0
        var parsed: [Destination] = []
        for (destination, weight) in destinations {
            guard weight >= 0 && weight <= 100 else { throw MappingError(description: "mapping weight \(weight)% for \"\(source)\" must be 0-100%") }
            total += weight
            var parts: [Part] = []
            let tokens = destination.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            for (i, token) in tokens.enumerated() {
                if token.isEmpty { throw MappingError(description: "invalid mapping destination \"\(destination)\"") }
                if token == ">" {
                    guard i == tokens.count - 1, sourceHasRest else {
                        throw MappingError(description: "mapping destination \"\(destination)\": '>' must be last and the source must end in '>'")
                    }
                    parts.append(.rest)
                } else if token.hasPrefix("$"), let n = Int(token.dropFirst()) {
                    guard n >= 1 && n <= wildcards else { throw MappingError(description: "mapping destination \"\(destination)\": no wildcard \(n) in \"\(source)\"") }
                    parts.append(.wildcard(n))
                } else if token.hasPrefix("{{") {
                    let inner = token.dropFirst(2).dropLast(token.hasSuffix("}}") ? 2 : 0).filter { $0 != " " }
                    guard token.hasSuffix("}}"), inner.lowercased().hasPrefix("wildcard("), inner.hasSuffix(")"),
                          let n = Int(inner.dropFirst("wildcard(".count).dropLast()) else {
                        throw MappingError(description: "mapping destination \"\(destination)\": only {{wildcard(n)}} is supported")
                    }
                    guard n >= 1 && n <= wildcards else { throw MappingError(description: "mapping destination \"\(destination)\": no wildcard \(n) in \"\(source)\"") }
                    parts.append(.wildcard(n))
                } else if token.contains("*") || token.contains(">") || token.contains("{") || token.contains("}") {
                    throw MappingError(description: "invalid mapping destination \"\(destination)\"")
                } else {
                    parts.append(.literal(Array(token.utf8)))
                }
            }
            parsed.append(Destination(parts: parts, weight: weight))
        }
        guard total <= 100 else { throw MappingError(description: "mapping weights for \"\(source)\" add up to \(total)% (more than 100%)") }
        rules.append(Rule(source: Array(source.utf8), destinations: parsed))
    }

    /// The rewritten subject, or nil when no mapping applies (the common case costs no allocation).
    public func map(_ subject: ByteBuffer) -> ByteBuffer? {
        guard !rules.isEmpty else { return nil }
        return subject.withUnsafeReadableBytes { raw -> ByteBuffer? in
            for rule in rules {
                var captures = Captures()
                let matched = rule.source.withUnsafeBytes { Subject.matches(filter: $0, subject: raw, captures: &captures) }
                guard matched else { continue }
                let destination: Destination
                if rule.destinations.count == 1 && rule.destinations[0].weight == 100 {
                    destination = rule.destinations[0]
                } else {
                    var roll = Int.random(in: 0..<100)
                    guard let picked = rule.destinations.first(where: { roll -= $0.weight; return roll < 0 }) else { return nil }
                    destination = picked
                }
                var out = ByteBufferAllocator().buffer(capacity: raw.count + 16)
                for (i, part) in destination.parts.enumerated() {
                    if i > 0 { out.writeInteger(UInt8(ascii: ".")) }
                    switch part {
                    case .literal(let bytes): out.writeBytes(bytes)
                    case .wildcard(let n): out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[captures.wildcards[n - 1]]))
                    case .rest: out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[captures.rest!]))
                    }
                }
                return out
            }
            return nil
        }
    }

    private struct Captures: SubjectCaptures {
        var wildcards: [Range<Int>] = []
        var rest: Range<Int>?
        mutating func token(_ range: Range<Int>) { wildcards.append(range) }
        mutating func rest(_ range: Range<Int>) { rest = range }
    }
}
