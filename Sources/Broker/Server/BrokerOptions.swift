import Protocol

/// Everything brokerd can be configured with. Defaults are nats-server's defaults.
/// Built from the command line and the nats-server style config file (see `ConfigLoader`).
public struct BrokerOptions: Sendable, Equatable {
    public var host: String = "0.0.0.0"                 // nats-server default: all interfaces
    public var port: Int = 4222                         // nats-server DEFAULT_PORT
    public var serverName: String? = nil                // defaults to the server id
    public var httpPort: Int? = nil                     // monitoring off unless set (8222 when enabled)
    public var httpHost: String? = nil                  // defaults to `host`
    /// Monitoring over HTTPS (`https_port`, `https: host:port`, `-ms`), with the top-level `tls { }` certificate
    /// and no client certificate asked for, as nats-server; it and `httpPort` exclude each other.
    public var httpsPort: Int? = nil
    public var maxPayload: Int = Limits.defaultMaxPayload
    public var maxPending: Int = Limits.defaultMaxPending
    public var maxControlLine: Int = Limits.defaultMaxControlLine
    public var maxConnections: Int = Limits.defaultMaxConnections
    public var pingInterval: Duration = .seconds(120)   // nats-server DEFAULT_PING_INTERVAL
    public var pingMax: Int = 2                         // nats-server DEFAULT_PING_MAX_OUT
    public var writeDeadline: Duration = .seconds(10)   // nats-server DEFAULT_FLUSH_DEADLINE
    public var authTimeout: Duration = .seconds(2)      // nats-server AUTH_TIMEOUT
    public var lameDuckDuration: Duration = .seconds(120)   // nats-server DEFAULT_LAME_DUCK_DURATION
    public var lameDuckGracePeriod: Duration = .seconds(10) // nats-server DEFAULT_LAME_DUCK_GRACE_PERIOD
    public var authorization: Authorization? = nil
    /// TLS on the client port (`tls { }`, `--tls --tlscert --tlskey`); nil: plain connections only.
    public var tls: TLSConfig? = nil
    /// nats-server's `allow_non_tls`: with `tls`, plain clients are served too (the first byte tells which).
    public var allowNonTLS: Bool = false
    /// `no_auth_user`: the user (or nkey) a CONNECT without credentials is taken as; it must be in `users`.
    public var noAuthUser: String? = nil
    public var debug: Bool = false
    public var trace: Bool = false
    public var logFile: String? = nil
    public var configFile: String? = nil
    /// JetStream (durable streams): `-js`, or a `jetstream` block / `jetstream: enabled` in the config.
    public var jetStream: Bool = false
    /// Where streams are kept (`-sd`, `jetstream { store_dir }`); default: a `brokerd-jetstream` folder in the
    /// system's temporary directory, as nats-server does.
    public var storeDirectory: String? = nil
    /// When stream appends reach the disk before the PubAck (`jetstream { sync: always|batch|interval }`).
    public var jetStreamSync: JetStreamSync = .batch
    /// For `sync: interval`: how often to fsync (acks do not wait for it, as nats-server's default).
    public var jetStreamSyncInterval: Duration = .seconds(120)
    /// `jetstream { max_memory_store, max_file_store }`: bytes all memory / file streams may hold together;
    /// nil = no limit. A stream whose max_bytes does not fit is refused; a publish that would go over is
    /// refused with nats-server's "insufficient resources" (nothing stored, nothing acked).
    public var jetStreamMaxMemory: Int64? = nil
    public var jetStreamMaxStore: Int64? = nil

    /// Falco ingest (`falco { ... }`, `--falco_http_port`): the port of the HTTP endpoint Falco's
    /// `http_output` posts to (off unless set; 2801 is the usual one), its host (default: `host`), the largest
    /// request body, and how many alerts may wait for their stream's fsync before the endpoint answers 503.
    public var falcoHTTPPort: Int? = nil
    public var falcoHTTPHost: String? = nil
    public var falcoMaxBody: Int = 1024 * 1024
    public var falcoMaxPending: Int = 16_384
    /// A Falco HTTP connection that sends nothing for this long is closed (idle keep-alives, slow clients).
    public var falcoIdleTimeout: Duration = .seconds(300)
    /// `falco { user }`: the user of `authorization` the Falco ingest publishes as (its publish permissions
    /// apply to every alert, from every path); nil: the ingest is not restricted.
    public var falcoUser: String? = nil
    /// HTTPS for Falco's http_output (`falco { tls { } }`, the same block as nats-server's); with `verify: true`
    /// a client certificate that chains to `ca_file` is required (Falco's `mtls: true`). nil: plain HTTP.
    public var falcoTLS: TLSConfig? = nil
    /// Rewrite falcosidekick's `falco.<priority>.<rule>` subjects to `FALCO.<Priority>`.
    public var mapSidekickSubjects: Bool = false
    /// `gcp_pubsub { }` blocks (several allowed): bridges from subjects to Google Cloud Pub/Sub topics.
    public var bridges: [BridgeConfig] = []
    /// nats-server's `mappings { source: destination }` (a destination list carries weights in percent).
    public var subjectMappings: [SubjectMapping] = []

    public struct SubjectMapping: Sendable, Equatable {
        public var source: String
        public var destinations: [Destination]
        public struct Destination: Sendable, Equatable {
            public var subject: String
            public var weight: Int
            public init(subject: String, weight: Int) { self.subject = subject; self.weight = weight }
        }
        public init(source: String, destinations: [Destination]) { self.source = source; self.destinations = destinations }
    }

    public enum JetStreamSync: String, Sendable, Equatable {
        /// fsync after every message, before its PubAck.
        case always
        /// Group commit (the default): one fsync for every message that arrived while the last one ran,
        /// then all their PubAcks.
        case batch
        /// PubAck at once; fsync every `jetStreamSyncInterval` (faster, and an acknowledged message can be
        /// lost to a power cut, as with nats-server's defaults).
        case interval
    }

    public init() {}

    /// `authorization { }`: one token, one user, or a list of users and nkey users with permissions
    /// (`default_permissions` already applied to those without their own).
    public struct Authorization: Sendable, Equatable {
        public var token: String?
        public var user: String?
        public var password: String?
        public var users: [User]
        public var nkeys: [NkeyUser]

        /// Whether `name` is a user's name or an nkey user's public key.
        public func hasUser(_ name: String) -> Bool {
            users.contains { $0.name == name } || nkeys.contains { $0.publicKey == name }
        }
        public init(token: String? = nil, user: String? = nil, password: String? = nil,
                    users: [User] = [], nkeys: [NkeyUser] = []) {
            self.token = token
            self.user = user
            self.password = password
            self.users = users
            self.nkeys = nkeys
        }
    }

    /// One entry of `users`: a name and a password (plaintext or a bcrypt hash; none for a user mapped from a
    /// TLS certificate), with its permissions (nil: no restrictions).
    public struct User: Sendable, Equatable {
        public var name: String
        public var password: String?
        public var permissions: Permissions?
        /// `allowed_connection_types` (upper case); nil or empty: any. Without "STANDARD" the user cannot
        /// connect to the client port.
        public var connectionTypes: [String]?
        public init(name: String, password: String? = nil, permissions: Permissions? = nil, connectionTypes: [String]? = nil) {
            self.name = name
            self.password = password
            self.permissions = permissions
            self.connectionTypes = connectionTypes
        }
    }

    /// One nkey user: its public key ("U..."), with its permissions.
    public struct NkeyUser: Sendable, Equatable {
        public var publicKey: String
        public var permissions: Permissions?
        public var connectionTypes: [String]?
        public init(publicKey: String, permissions: Permissions? = nil, connectionTypes: [String]? = nil) {
            self.publicKey = publicKey
            self.permissions = permissions
            self.connectionTypes = connectionTypes
        }
    }
}

extension BrokerOptions {
    /// What stops the monitor from starting, in nats-server's words (StartMonitoring), or nil.
    public var monitorProblem: String? {
        if let http = httpPort, let https = httpsPort, http != 0, https != 0 {
            return "can't specify both HTTP (\(http)) and HTTPs (\(https)) ports"
        }
        if httpPort == nil || httpPort == 0, let https = httpsPort, https != 0, tls == nil {
            return "TLS cert and key required for HTTPS"
        }
        return nil
    }
}
