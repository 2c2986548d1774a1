import NATSConfig

extension ConfigLoader {
    /// `falco { http_port, host, max_body, max_pending, map_sidekick_subjects, idle_timeout, user, tls { } }`; `tls`
    /// is nats-server's block (cert_file, key_file, ca_file, verify, ...), read and checked as the client port's.
    static func applyFalco(_ block: ConfigField, to options: inout BrokerOptions) throws {
        guard case .map(let map) = block.entry.value else { throw block.typeMismatch("a map") }
        for entry in map.entries {
            let field = ConfigField(entry: entry, name: "falco.\(entry.key)")
            switch entry.key.lowercased() {
            case "http_port", "port":
                options.falcoHTTPPort = try field.port()
            case "host", "http_host":
                options.falcoHTTPHost = try field.string()
            case "max_body", "max_body_size":
                options.falcoMaxBody = try field.size(max: 64 * 1024 * 1024) ?? 1024 * 1024
            case "max_pending":
                options.falcoMaxPending = Int(try field.integer(in: 1 ... 10_000_000))
            case "map_sidekick_subjects":
                options.mapSidekickSubjects = try field.bool()
            case "user":
                // Checked against authorization's users once the whole file is read (see validateFalcoUser).
                let name = try field.string()
                options.falcoUser = name.isEmpty ? nil : name
            case "idle_timeout":
                options.falcoIdleTimeout = try field.duration(acceptingSeconds: true) ?? .seconds(300)
            case "tls":
                let tls = try parseTLS(entry)
                try checkTLSFiles(tls, block: field)
                options.falcoTLS = tls
            default:
                throw field.fail("unknown key \"\(entry.key)\" in falco")
            }
        }
    }

    /// `falco { user }` must name a user (or nkey) of `authorization { users }`.
    static func validateFalcoUser(_ options: BrokerOptions, field: ConfigField) throws(ConfigError) {
        guard let name = options.falcoUser else { return }
        if options.authorization?.hasUser(name) == true { return }
        throw field.fail("falco.user: \"\(name)\" is not a user of authorization { users }")
    }
}
