import NATSConfig

extension ConfigLoader {
    /// `jetstream: enabled|disabled|true|false` or `jetstream { store_dir, max_memory_store, max_file_store }`.
    static func applyJetStream(_ block: ConfigField, to options: inout BrokerOptions) throws {
        switch block.entry.value {
        case .bool(let on):
            options.jetStream = on
        case .string(let word):
            switch word.lowercased() {
            case "enabled", "enable", "true", "on", "yes": options.jetStream = true
            case "disabled", "disable", "false", "off", "no": options.jetStream = false
            default: throw block.fail("invalid value \"\(word)\" for \"jetstream\": expected enabled or disabled")
            }
        case .map(let map):
            options.jetStream = true
            for entry in map.entries {
                let field = ConfigField(entry: entry, name: "jetstream.\(entry.key)")
                switch entry.key.lowercased() {
                case "store_dir", "storedir":
                    options.storeDirectory = try field.string()
                case "max_memory_store", "max_mem_store", "max_mem":
                    options.jetStreamMaxMemory = try field.size(max: Int64.max).map(Int64.init)
                case "max_file_store", "max_file":
                    options.jetStreamMaxStore = try field.size(max: Int64.max).map(Int64.init)
                case "enabled", "enable":
                    options.jetStream = try field.bool()
                case "sync":
                    let word = try field.string().lowercased()
                    guard let policy = BrokerOptions.JetStreamSync(rawValue: word) else {
                        throw field.fail("invalid value \"\(word)\" for \"jetstream.sync\": expected always, batch or interval")
                    }
                    options.jetStreamSync = policy
                case "sync_interval":
                    // nats-server: a duration, or "always".
                    if case .string(let word) = entry.value, word.lowercased() == "always" {
                        options.jetStreamSync = .always
                    } else {
                        options.jetStreamSyncInterval = try field.duration(acceptingSeconds: true) ?? .seconds(120)
                        options.jetStreamSync = .interval
                    }
                case "domain", "unique_tag", "compress_ok", "max_buffered_msgs", "max_buffered_size",
                     "max_ack_pending", "max_outstanding_catchup", "cipher", "key", "prev_key", "strict", "limits":
                    break  // nats-server keys brokerd does not use
                default:
                    throw field.fail("unknown key \"\(entry.key)\" in jetstream")
                }
            }
        default:
            throw block.typeMismatch("enabled/disabled or a map")
        }
    }
}
