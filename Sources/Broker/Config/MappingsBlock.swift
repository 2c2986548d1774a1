import Foundation
import NATSConfig

extension ConfigLoader {

    /// nats-server's `mappings { "src": "dest" }` or `"src": [{ destination: "a", weight: 80% }, ...]`.
    static func applyMappings(_ block: ConfigField, to options: inout BrokerOptions) throws {
        guard case .map(let map) = block.entry.value else { throw block.typeMismatch("a map") }
        var mapper = SubjectMapper()
        for entry in map.entries {
            let field = ConfigField(entry: entry, name: "mappings.\(entry.key)")
            var destinations: [BrokerOptions.SubjectMapping.Destination] = []
            switch entry.value {
            case .string(let subject):
                destinations = [.init(subject: subject, weight: 100)]
            case .array(let items):
                for item in items {
                    guard case .map(let m) = item else { throw field.typeMismatch("a list of { destination, weight }") }
                    var subject: String?
                    var weight = 100
                    for e in m.entries {
                        switch (e.key.lowercased(), e.value) {
                        case ("destination", .string(let d)), ("dest", .string(let d)): subject = d
                        case ("weight", .integer(let n)): weight = Int(n)
                        case ("weight", .string(let text)) where Int(text.trimmingCharacters(in: CharacterSet(charactersIn: "% "))) != nil:
                            weight = Int(text.trimmingCharacters(in: CharacterSet(charactersIn: "% ")))!
                        case ("cluster", _):
                            break
                        default:
                            throw field.fail("invalid key \"\(e.key)\" in a mapping destination for \"\(entry.key)\"")
                        }
                    }
                    guard let subject else { throw field.fail("a mapping destination for \"\(entry.key)\" needs \"destination\"") }
                    destinations.append(.init(subject: subject, weight: weight))
                }
            default:
                throw field.typeMismatch("a subject or a list of { destination, weight }")
            }
            do {
                try mapper.add(source: entry.key, destinations: destinations.map { ($0.subject, $0.weight) })
            } catch {
                throw field.fail(error.description)
            }
            options.subjectMappings.append(.init(source: entry.key, destinations: destinations))
        }
    }
}
