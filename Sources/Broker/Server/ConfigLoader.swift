import Foundation
import Protocol

// Maps a parsed nats-server style config (see `ConfigParser`) onto `BrokerOptions`, following
// nats-server's processConfigFileLine (server/opts.go): the same key names and aliases, keys
// compared case-insensitively, the same value types per key, and 0 meaning "use the default" where
// nats-server's setBaselineOptions does so.
//
// An unknown key is an error naming it, except a key only used as a `$variable`. nats-server 2.15
// does the same (it always parses config files "with checks"; `nats-server -t` reports
// `unknown field "prot"`), so this is no stricter than nats-server itself.
//
// Where brokerd is stricter than nats-server:
//   - a negative port is an error (nats-server reads -1 as "pick a random port");
//   - authorization features brokerd lacks (users, permissions, auth callout) are errors, because
//     ignoring them would run the server with less protection than the file asks for.
// Where it is more lenient: sizes may also be quoted strings ("1MB"), and `monitor` is accepted as
// an alias of `http`.
//
// Checks that relate several options (max_payload <= max_pending, lame duck grace period < lame
// duck duration) are not done here: nats-server does them at start-up, after the command line has
// been applied too, and `nats-server -t` accepts such files.

public enum ConfigLoader {
    /// Top-level keys nats-server knows but brokerd has no feature for. They are accepted and
    /// returned by `load`/`apply` so that brokerd can warn that they have no effect.
    public static let ignoredKeys: Set<String> = [
        "client_advertise", "logtime", "logtime_utc",
        "disable_sublist_cache", "no_sublist_cache", "default_sentinel",
        "https", "https_port", "http_base_path", "cluster", "gateway", "leaf", "leafnodes",
        "storedir", "logfile_size_limit", "log_size_limit",
        "logfile_max_num", "log_max_num", "syslog", "remote_syslog", "pidfile", "pid_file",
        "ports_file_dir", "prof_port", "prof_block_rate", "proxy_protocol", "max_traced_msg_len",
        "max_subscriptions", "max_subs", "max_sub_tokens", "max_subscription_tokens",
        "tls", "ocsp", "allow_non_tls", "write_timeout",
        "roots", "root", "root_operators", "root_operator",
        "resolver", "account_resolver", "accounts_resolver", "resolver_tls", "resolver_preload",
        "resolver_pinned_accounts", "system_account", "system",
        "no_system_account", "no_system", "no_sys_acc", "no_header_support", 
        "connect_error_reports", "reconnect_error_reports", "websocket", "ws", "mqtt",
        "server_tags", "server_metadata", "feature_flags", "default_js_domain", "ocsp_cache",
        "no_fast_producer_stall", "max_closed_clients", "proxies",
    ]

    /// Top-level keys that define identities or trust brokerd cannot enforce. Ignoring them would leave the
    /// server more open than its operator believes, so they are errors.
    static let unsupportedSecurityKeys: Set<String> = [
        "accounts", "no_auth_user", "operator", "operators", "trusted", "trusted_keys",
    ]

    /// Authorization keys nats-server knows and brokerd does not implement.
    static let unsupportedAuthorizationKeys: Set<String> = [
        "users", "default_permission", "default_permissions", "permissions",
        "auth_callout", "auth_hook", "proxy_required",
    ]

    /// TCP ports.
    static let portRange: ClosedRange<Int64> = 0 ... 65535
    /// nats-server stores max_payload and max_control_line as int32.
    static let maxInt32Limit = Int64(Int32.max)
    /// nats-server refuses a shorter lame_duck_duration.
    static let minLameDuckDuration: Duration = .seconds(30)

    /// Reads the config file at `path` into `options` and records it as `options.configFile`.
    /// On error `options` is left unchanged. Returns the ignored keys (see `ignoredKeys`), in file order.
    public static func load(
        path: String,
        into options: inout BrokerOptions,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> [String] {
        let config = try ConfigParser.parse(contentsOf: path, environment: environment)
        var updated = options
        let ignored = try apply(config, to: &updated)
        updated.configFile = path
        options = updated
        return ignored
    }

    /// Like `load(path:)` for text held in memory; `fileName` names it in errors.
    public static func load(
        text: String,
        fileName: String = "brokerd.conf",
        baseDirectory: String = ".",
        into options: inout BrokerOptions,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> [String] {
        let config = try ConfigParser.parse(
            text, fileName: fileName, baseDirectory: baseDirectory, environment: environment)
        var updated = options
        let ignored = try apply(config, to: &updated)
        options = updated
        return ignored
    }

    /// Applies parsed top-level entries to `options`, in file order (the last of two aliases wins).
    /// Returns the ignored keys, lower-cased, each once, in file order. On error `options` may be
    /// partly updated; `load` protects against that by working on a copy.
    public static func apply(_ config: ConfigMap, to options: inout BrokerOptions) throws -> [String] {
        let defaults = BrokerOptions()
        var ignored: [String] = []
        for entry in config.entries {
            let field = Field(entry: entry, name: entry.key)
            let key = entry.key.lowercased()
            switch key {
            case "port":
                options.port = try field.port() ?? defaults.port
            case "host", "net":
                let host = try field.string()
                options.host = host.isEmpty ? defaults.host : host
            case "listen":
                let (host, port) = try field.hostPort()
                if let host { options.host = host }
                options.port = port ?? defaults.port
            case "server_name":
                let name = try field.string()
                if name.contains(" ") { throw field.fail("server_name cannot contain spaces") }
                options.serverName = name.isEmpty ? nil : name
            case "http_port", "monitor_port":
                options.httpPort = try field.port()  // 0 leaves monitoring off, as in nats-server
            case "http", "monitor":
                let (host, port) = try field.hostPort()
                options.httpHost = host
                options.httpPort = port
            case "max_payload":
                options.maxPayload = try field.size(max: maxInt32Limit) ?? defaults.maxPayload
            case "max_control_line":
                options.maxControlLine = try field.size(max: maxInt32Limit) ?? defaults.maxControlLine
            case "max_pending":
                options.maxPending = try field.size(max: Int64.max) ?? defaults.maxPending
            case "max_connections", "max_conn":
                // nats-server reads 0 here as "accept no clients" (it stores -1), so 0 is kept as 0.
                options.maxConnections = Int(try field.integer(in: 0 ... Int64(Int.max)))
            case "ping_interval":
                options.pingInterval = try field.duration(acceptingSeconds: true) ?? defaults.pingInterval
            case "ping_max":
                let pings = try field.integer(in: 0 ... Int64(Int32.max))
                options.pingMax = pings == 0 ? defaults.pingMax : Int(pings)
            case "write_deadline":
                options.writeDeadline = try field.duration(acceptingSeconds: true) ?? defaults.writeDeadline
            case "authorization":
                try applyAuthorization(field, to: &options, defaults: defaults)
            case "lame_duck_duration":
                // A duration string only, as in nats-server (a bare 2m would be two million).
                let duration = try field.duration(acceptingSeconds: false) ?? .zero
                if duration < minLameDuckDuration {
                    throw field.outOfRange(entry.value.shownValue, "the minimum is 30 seconds")
                }
                options.lameDuckDuration = duration
            case "lame_duck_grace_period":
                options.lameDuckGracePeriod = try field.duration(acceptingSeconds: false) ?? defaults.lameDuckGracePeriod
            case "jetstream":
                try applyJetStream(field, to: &options)
            case "falco":
                try applyFalco(field, to: &options)
            case "mappings", "maps":
                try applyMappings(field, to: &options)
            case "gcp_pubsub", "pubsub_bridge":
                options.bridges += try parseBridges(field)
            case "store_dir":
                options.storeDirectory = try field.string()
            case "debug":
                options.debug = try field.bool()
            case "trace":
                options.trace = try field.bool()
            case "trace_verbose", "trace_headers":
                // nats-server: these imply (or, when false, clear) trace.
                options.trace = try field.bool()
            case "logfile", "log_file":
                let file = try field.string()
                options.logFile = file.isEmpty ? nil : file
            default:
                if unsupportedSecurityKeys.contains(key) {
                    throw field.fail("\"\(entry.key)\" is not supported by brokerd; use authorization { token | user, password }")
                } else if ignoredKeys.contains(key) {
                    if !ignored.contains(key) { ignored.append(key) }
                } else if !entry.usedAsVariable {
                    throw field.fail("unknown key \"\(entry.key)\"")
                }
            }
        }
        return ignored
    }

    /// `jetstream: enabled|disabled|true|false` or `jetstream { store_dir, max_memory_store, max_file_store }`.
    private static func applyJetStream(_ block: Field, to options: inout BrokerOptions) throws {
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
                let field = Field(entry: entry, name: "jetstream.\(entry.key)")
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

    /// `falco { http_port, host, max_body, max_pending, map_sidekick_subjects, idle_timeout }`.
    private static func applyFalco(_ block: Field, to options: inout BrokerOptions) throws {
        guard case .map(let map) = block.entry.value else { throw block.typeMismatch("a map") }
        for entry in map.entries {
            let field = Field(entry: entry, name: "falco.\(entry.key)")
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
            case "idle_timeout":
                options.falcoIdleTimeout = try field.duration(acceptingSeconds: true) ?? .seconds(300)
            default:
                throw field.fail("unknown key \"\(entry.key)\" in falco")
            }
        }
    }

    /// `gcp_pubsub { project, topic, subjects, ordering_key, attributes, credentials, ... }`, or a list of them.
    fileprivate static func parseBridges(_ block: Field) throws -> [BridgeConfig] {
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

    private static func parseBridge(_ map: ConfigMap, _ block: Field) throws -> BridgeConfig {
        var project: String?
        var topic: String?
        var bridge = BridgeConfig(project: "", topic: "")
        for entry in map.entries {
            let field = Field(entry: entry, name: "gcp_pubsub.\(entry.key)")
            switch entry.key.lowercased() {
            case "project", "project_id": project = try field.string()
            case "topic": topic = try field.string()
            case "subjects", "subject":
                switch entry.value {
                case .string(let s): bridge.subjects = [s]
                case .array(let items):
                    bridge.subjects = try items.map { item in
                        guard case .string(let s) = item else { throw field.typeMismatch("a list of subjects") }
                        return s
                    }
                default: throw field.typeMismatch("a subject or a list of subjects")
                }
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
                    default: throw Field(entry: a, name: "gcp_pubsub.attributes.\(a.key)").typeMismatch("a string")
                    }
                }
            case "credentials", "credentials_file", "key_file": bridge.credentials = try field.string()
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

    /// nats-server's `mappings { "src": "dest" }` or `"src": [{ destination: "a", weight: 80% }, ...]`.
    private static func applyMappings(_ block: Field, to options: inout BrokerOptions) throws {
        guard case .map(let map) = block.entry.value else { throw block.typeMismatch("a map") }
        var mapper = SubjectMapper()
        for entry in map.entries {
            let field = Field(entry: entry, name: "mappings.\(entry.key)")
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

    /// `authorization { user, password, token, timeout }` (nats-server's parseAuthorization).
    private static func applyAuthorization(
        _ block: Field, to options: inout BrokerOptions, defaults: BrokerOptions
    ) throws {
        guard case .map(let map) = block.entry.value else { throw block.typeMismatch("a map") }
        var user: String?
        var password: String?
        var token: String?
        var timeout = defaults.authTimeout
        for entry in map.entries {
            let field = Field(entry: entry, name: "\(block.name).\(entry.key)")
            let key = entry.key.lowercased()
            switch key {
            case "user", "username":
                user = try field.string()
            case "pass", "password":
                password = try field.string()
            case "token":
                token = try field.string()
            case "timeout":
                timeout = try field.authTimeout() ?? defaults.authTimeout
            default:
                if unsupportedAuthorizationKeys.contains(key) {
                    throw field.fail("\"\(entry.key)\" in authorization is not supported by brokerd")
                }
                if !entry.usedAsVariable {
                    throw field.fail("unknown key \"\(entry.key)\" in authorization")
                }
            }
        }
        func given(_ value: String?) -> String? { (value?.isEmpty ?? true) ? nil : value }
        if given(token) != nil, given(user) != nil || given(password) != nil {
            throw block.fail("authorization cannot have both a user/password and a token")
        }
        // As in nats-server the block replaces any earlier credentials; without any it sets none.
        let credentials = BrokerOptions.Authorization(token: given(token), user: given(user), password: given(password))
        options.authorization = credentials == BrokerOptions.Authorization() ? nil : credentials
        options.authTimeout = timeout
    }
}

// MARK: - Typed access to one entry

/// One entry with the name to show in errors (`port`, `authorization.timeout`).
private struct Field {
    let entry: ConfigMap.Entry
    let name: String

    var value: ConfigValue { entry.value }

    func fail(_ reason: String) -> ConfigError {
        ConfigError(file: entry.file, line: entry.line, reason: reason)
    }

    func typeMismatch(_ expected: String) -> ConfigError {
        fail("expected \(expected) for \"\(name)\", got \(value.summary)")
    }

    func outOfRange(_ shown: String, _ rule: String) -> ConfigError {
        fail("invalid value \(shown) for \"\(name)\": \(rule)")
    }

    func string() throws -> String {
        guard case .string(let s) = value else { throw typeMismatch("a string") }
        return s
    }

    func bool() throws -> Bool {
        guard case .bool(let b) = value else { throw typeMismatch("a boolean (true/false, yes/no, on/off)") }
        return b
    }

    func integer(in range: ClosedRange<Int64>) throws -> Int64 {
        guard case .integer(let n) = value else { throw typeMismatch("an integer") }
        guard range.contains(n) else {
            throw outOfRange("\(n)", "must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return n
    }

    /// A port number; nil for 0, which means "the default" (or "off" for monitoring).
    func port() throws -> Int? {
        let port = try integer(in: ConfigLoader.portRange)
        return port == 0 ? nil : Int(port)
    }

    /// nats-server's parseListen: an integer port or a "host:port" string ("[::1]:4222" for IPv6).
    /// The host is nil when not given; the port is nil when 0.
    func hostPort() throws -> (host: String?, port: Int?) {
        switch value {
        case .integer:
            return (nil, try port())
        case .string(let address):
            guard let (host, portText) = splitHostPort(address) else {
                throw fail("could not parse address \"\(address)\" for \"\(name)\": expected host:port")
            }
            guard let port = Int64(portText) else {
                throw fail("could not parse port \"\(portText)\" in \"\(address)\" for \"\(name)\"")
            }
            guard ConfigLoader.portRange.contains(port) else {
                throw outOfRange("\(port)", "a port must be between 0 and 65535")
            }
            return (host.isEmpty ? nil : host, port == 0 ? nil : Int(port))
        default:
            throw typeMismatch("a port or a \"host:port\" string")
        }
    }

    /// A byte count: an integer, possibly written with a size suffix (`64KB`, lexed by the parser),
    /// or the same as a quoted string. nil for 0, which means "the default" in nats-server.
    func size(max: Int64) throws -> Int? {
        let bytes: Int64
        switch value {
        case .integer(let n):
            bytes = n
        case .string(let text):
            guard let n = ConfigParser.parseSize(text) else {
                throw fail("invalid size \"\(text)\" for \"\(name)\"; write e.g. 1048576, 1MB or 64KB")
            }
            bytes = n
        default:
            throw typeMismatch("a size")
        }
        if bytes < 0 { throw outOfRange("\(bytes)", "must not be negative") }
        if bytes > max { throw fail("\(name) value is too big (limit \(max))") }
        return bytes == 0 ? nil : Int(bytes)
    }

    /// A duration string as Go's time.ParseDuration reads it ("2m", "10s", "500ms", "1h30m"), or,
    /// when `acceptingSeconds`, an integer number of seconds (nats-server's older form for
    /// ping_interval and write_deadline). nil for 0, which means "the default".
    func duration(acceptingSeconds: Bool) throws -> Duration? {
        let duration: Duration
        switch value {
        case .string(let text):
            duration = try parseDuration(text)
        case .integer(let seconds) where acceptingSeconds:
            duration = .seconds(seconds)
        default:
            throw typeMismatch(acceptingSeconds ? "a duration such as \"2m\" or a number of seconds" : "a duration string such as \"2m\"")
        }
        if duration < .zero { throw outOfRange(value.shownValue, "must not be negative") }
        return duration == .zero ? nil : duration
    }

    /// authorization.timeout: seconds as an integer or a float, or a duration string.
    func authTimeout() throws -> Duration? {
        let duration: Duration
        switch value {
        case .integer(let seconds): duration = .seconds(seconds)
        case .float(let seconds): duration = .seconds(seconds)
        case .string(let text): duration = try parseDuration(text)
        default: throw typeMismatch("a number of seconds or a duration string")
        }
        if duration < .zero { throw outOfRange(value.shownValue, "must not be negative") }
        return duration == .zero ? nil : duration
    }

    private func parseDuration(_ text: String) throws -> Duration {
        switch GoDuration.parse(text) {
        case .success(let nanoseconds): return .nanoseconds(nanoseconds)
        case .failure(let problem): throw fail("error parsing \(name): \(problem.reason)")
        }
    }
}

extension ConfigValue {
    /// The value as it would be written, for range errors.
    fileprivate var shownValue: String {
        switch self {
        case .string(let s): return "\"\(s)\""
        case .integer(let n): return "\(n)"
        case .float(let d): return "\(d)"
        case .bool(let b): return "\(b)"
        case .array: return "[...]"
        case .map: return "{...}"
        }
    }
}

/// Go's net.SplitHostPort: "host:port", "[v6]:port"; a host with unbracketed colons is refused.
private func splitHostPort(_ address: String) -> (host: String, port: String)? {
    if address.hasPrefix("[") {
        guard let close = address.firstIndex(of: "]") else { return nil }
        let afterClose = address[address.index(after: close)...]
        guard afterClose.hasPrefix(":") else { return nil }
        return (String(address[address.index(after: address.startIndex) ..< close]), String(afterClose.dropFirst()))
    }
    guard let colon = address.lastIndex(of: ":") else { return nil }
    let host = address[..<colon]
    if host.contains(":") { return nil }
    return (String(host), String(address[address.index(after: colon)...]))
}

// MARK: - Go durations

/// A port of Go's time.ParseDuration, which nats-server uses for every duration string: a sign, then
/// one or more decimal numbers each with a unit (ns, us, µs, ms, s, m, h), e.g. "1h30m" or "1.5s".
/// A unit is required except for "0".
enum GoDuration {
    struct Problem: Error, Equatable { var reason: String }

    static let unitNanoseconds: [String: UInt64] = [
        "ns": 1,
        "us": 1_000, "\u{00B5}s": 1_000, "\u{03BC}s": 1_000,  // both micro signs, as Go
        "ms": 1_000_000,
        "s": 1_000_000_000,
        "m": 60 * 1_000_000_000,
        "h": 3_600 * 1_000_000_000,
    ]

    /// The duration in nanoseconds.
    static func parse(_ text: String) -> Result<Int64, Problem> {
        let invalid = Problem(reason: "invalid duration \"\(text)\"")
        let bytes = Array(text.utf8)
        var index = 0
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
            negative = bytes[index] == UInt8(ascii: "-")
            index += 1
        }
        if bytes[index...].elementsEqual("0".utf8) { return .success(0) }
        if index == bytes.count { return .failure(invalid) }

        func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
        let limit: UInt64 = 1 << 63  // |Int64.min|
        var total: UInt64 = 0
        while index < bytes.count {
            guard bytes[index] == UInt8(ascii: ".") || isDigit(bytes[index]) else { return .failure(invalid) }
            // The integer part.
            var whole: UInt64 = 0
            let wholeStart = index
            while index < bytes.count, isDigit(bytes[index]) {
                guard whole <= (limit - 1) / 10 else { return .failure(invalid) }
                whole = whole * 10 + UInt64(bytes[index] - UInt8(ascii: "0"))
                guard whole <= limit else { return .failure(invalid) }
                index += 1
            }
            let hasWhole = index != wholeStart
            // The fraction; digits beyond what fits are dropped, as Go does.
            var fraction: UInt64 = 0
            var scale: Double = 1
            var hasFraction = false
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                let fractionStart = index
                var overflowed = false
                while index < bytes.count, isDigit(bytes[index]) {
                    if !overflowed, fraction <= (limit - 1) / 10 {
                        fraction = fraction * 10 + UInt64(bytes[index] - UInt8(ascii: "0"))
                        scale *= 10
                    } else {
                        overflowed = true
                    }
                    index += 1
                }
                hasFraction = index != fractionStart
            }
            if !hasWhole && !hasFraction { return .failure(invalid) }
            // The unit.
            let unitStart = index
            while index < bytes.count, bytes[index] != UInt8(ascii: "."), !isDigit(bytes[index]) { index += 1 }
            if unitStart == index { return .failure(Problem(reason: "missing unit in duration \"\(text)\"")) }
            let unit = String(decoding: bytes[unitStart ..< index], as: UTF8.self)
            guard let multiplier = unitNanoseconds[unit] else {
                return .failure(Problem(reason: "unknown unit \"\(unit)\" in duration \"\(text)\""))
            }
            guard whole <= limit / multiplier else { return .failure(invalid) }
            var value = whole * multiplier
            if fraction > 0 {
                value += UInt64(Double(fraction) * (Double(multiplier) / scale))
                guard value <= limit else { return .failure(invalid) }
            }
            total += value
            guard total <= limit else { return .failure(invalid) }
        }
        if negative { return .success(total == limit ? Int64.min : -Int64(total)) }
        guard total <= UInt64(Int64.max) else { return .failure(invalid) }
        return .success(Int64(total))
    }
}
