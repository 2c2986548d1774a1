import NATSConfig
import Protocol

extension ConfigLoader {
    /// `gcp_pubsub { project, topic, subjects, ordering_key, attributes, credentials, ... }`, or a list of them.
    static func parseBridges(_ block: ConfigField) throws -> [BridgeConfig] {
        switch block.entry.value {
        case .array(let items):
            return try items.map { item in
                guard case .map(let map) = item else { throw block.typeMismatch("a list of gcp_pubsub blocks") }
                return try parseBridge(map, block)
            }
        case .map(let map):
            return [try parseBridge(map, block)]
        default:
            throw block.typeMismatch("a gcp_pubsub block")
        }
    }

    private static func parseBridge(_ map: ConfigMap, _ block: ConfigField) throws -> BridgeConfig {
        var project: String?
        var topic: String?
        var bridge = BridgeConfig(project: "", topic: "")
        for entry in map.entries {
            let field = ConfigField(entry: entry, name: "gcp_pubsub.\(entry.key)")
            switch entry.key.lowercased() {
            case "project", "project_id": project = try field.string()
            case "topic": topic = try field.string()
            case "subjects", "subject":
                bridge.subjects = try field.stringOrList(elements: "a list of subjects", other: "a subject or a list of subjects")
                for s in bridge.subjects where !Subject.isValidSubscription(s) {
                    throw field.fail("invalid subject \"\(s)\" in gcp_pubsub.subjects")
                }
            case "ordering_key":
                let word = try field.string().lowercased()
                guard let key = BridgeConfig.OrderingKey(rawValue: word) else {
                    throw field.fail("invalid value \"\(word)\" for \"gcp_pubsub.ordering_key\": expected none, hostname or rule")
                }
                bridge.orderingKey = key
            case "attributes":
                guard case .map(let attrs) = entry.value else { throw field.typeMismatch("a map of attributes") }
                for a in attrs.entries {
                    switch a.value {
                    case .string(let v): bridge.attributes[a.key] = v
                    case .integer(let n): bridge.attributes[a.key] = String(n)
                    case .bool(let b): bridge.attributes[a.key] = String(b)
                    default: throw ConfigField(entry: a, name: "gcp_pubsub.attributes.\(a.key)").typeMismatch("a string")
                    }
                }
            case "credentials", "credentials_file", "key_file": bridge.credentials = try field.string()
            case "user", "username": bridge.natsUser = try field.string()
            case "password", "pass": bridge.natsPassword = try field.string()
            case "token", "auth_token": bridge.natsToken = try field.string()
            case "stream": bridge.stream = try field.string()
            case "durable", "consumer": bridge.durable = try field.string()
            case "endpoint": bridge.endpoint = try field.string()
            case "batch_messages", "max_messages":
                bridge.batchMessages = Int(try field.integer(in: 1 ... Int64(PubSubLimits.maxRequestMessages)))
            case "batch_bytes", "max_bytes":
                bridge.batchBytes = min(try field.size(max: Int64(PubSubLimits.maxRequestBytes)) ?? 1_000_000, PubSubLimits.maxRequestBytes)
            case "batch_delay", "max_latency":
                bridge.batchDelay = try field.duration(acceptingSeconds: false) ?? .milliseconds(10)
            case "max_in_flight":
                bridge.maxInFlight = Int(try field.integer(in: 1 ... 64))
            case "max_backoff":
                bridge.maxBackoff = try field.duration(acceptingSeconds: true) ?? .seconds(60)
            case "request_timeout", "timeout":
                bridge.requestTimeout = try field.duration(acceptingSeconds: true) ?? .seconds(30)
            default:
                throw field.fail("unknown key \"\(entry.key)\" in gcp_pubsub")
            }
        }
        guard let project, !project.isEmpty else { throw block.fail("gcp_pubsub needs \"project\"") }
        guard let topic, !topic.isEmpty else { throw block.fail("gcp_pubsub needs \"topic\"") }
        bridge.project = project
        bridge.topic = topic
        return bridge
    }
}
