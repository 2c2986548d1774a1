import Foundation
import NATSConfig
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
//   - authorization features brokerd lacks (accounts, operators, auth callout) are errors, because
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
        "http_base_path", "cluster", "gateway", "leaf", "leafnodes",
        "storedir", "logfile_size_limit", "log_size_limit",
        "logfile_max_num", "log_max_num", "syslog", "remote_syslog", "pidfile", "pid_file",
        "ports_file_dir", "prof_port", "prof_block_rate", "proxy_protocol", "max_traced_msg_len",
        "max_subscriptions", "max_subs", "max_sub_tokens", "max_subscription_tokens",
        "ocsp", "write_timeout",
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
        "accounts", "operator", "operators", "trusted", "trusted_keys",
    ]

    /// Authorization keys nats-server knows and brokerd does not implement.
    static let unsupportedAuthorizationKeys: Set<String> = [
        "auth_callout", "auth_hook", "proxy_required",
    ]

    /// Blocks that may be given several times, each one kept: every `gcp_pubsub { }` is one bridge.
    static let repeatableBlocks: Set<String> = ["gcp_pubsub", "pubsub_bridge"]

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
        let config = try ConfigParser.parse(contentsOf: path, environment: environment, repeatableBlocks: repeatableBlocks)
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
            text, fileName: fileName, baseDirectory: baseDirectory, environment: environment,
            repeatableBlocks: repeatableBlocks)
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
        var noAuthUserField: ConfigField?
        var falcoField: ConfigField?
        for entry in config.entries {
            let field = ConfigField(entry: entry, name: entry.key)
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
            case "https_port":
                options.httpsPort = try field.port()  // with the top-level tls { } block
            case "https":
                let (host, port) = try field.hostPort()
                options.httpHost = host
                options.httpsPort = port
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
            case "tls":
                try applyTLS(field, to: &options)
            case "allow_non_tls":
                options.allowNonTLS = try field.bool()
            case "no_auth_user":
                let name = try field.string()
                options.noAuthUser = name.isEmpty ? nil : name
                noAuthUserField = field
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
                falcoField = field
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
                    throw field.fail("\"\(entry.key)\" is not supported by brokerd; use authorization { users [...] } (with permissions)")
                } else if ignoredKeys.contains(key) {
                    if !ignored.contains(key) { ignored.append(key) }
                } else if !entry.usedAsVariable {
                    throw field.fail("unknown key \"\(entry.key)\"")
                }
            }
        }
        if let noAuthUserField { try validateNoAuthUser(options, field: noAuthUserField) }
        if let falcoField { try validateFalcoUser(options, field: falcoField) }
        return ignored
    }
}
