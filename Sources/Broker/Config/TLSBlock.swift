import NATSConfig

/// A `tls { }` block as nats-server reads it (server/opts.go parseTLS + TLSConfigOpts), as a plain value. The
/// client port uses it (`BrokerOptions.tls`); any listener that takes a nats-server style tls block can parse its
/// own with `ConfigLoader.parseTLS` and build a server context with `TLSContextFactory.makeServerContext`.
///
/// Every key nats-server accepts for a client-facing listener is read. Those that change whom the server trusts
/// and that brokerd does not implement (certificate stores, OCSP peer checks, several certificates chosen by SNI)
/// are errors: ignoring them would leave the server less strict than its file says.
public struct TLSConfig: Sendable, Equatable {
    public var certFile: String?
    public var keyFile: String?
    /// The CAs that client certificates must chain to (`verify`); without it, the system's roots.
    public var caFile: String?
    /// mTLS: a client without a certificate that verifies is refused during the handshake.
    public var verify = false
    /// `verify_and_map`: `verify`, and the certificate's identities name the user (see `CertificateIdentities`).
    public var verifyAndMap = false
    /// nats-server accepts `insecure` in every tls block; it only affects connections the server makes.
    public var insecure = false
    /// Seconds the TLS handshake may take (nats-server's float `timeout`); 0 means the default, 2 s.
    public var timeout: Double = 0
    /// `handshake_first`: the TLS handshake before INFO.
    public var handshakeFirst = false
    /// `handshake_first: auto` (50 ms) or a duration: how long to wait for a client's handshake before sending
    /// INFO in the clear after all (nats-server's TLSHandshakeFirstFallback). nil: no fallback.
    public var handshakeFirstFallback: Duration?
    /// `min_version: "1.2" | "1.3"`; nil is TLS 1.2, nats-server's minimum.
    public var minVersion: Version?
    /// `cipher_suites`, as Go names them (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256); nil: the library's defaults.
    /// TLS 1.3's suites are accepted and, as in Go, not configurable.
    public var cipherSuites: [String]?
    /// `curve_preferences`, as Go names them (X25519, CurveP256, ...); nil: the library's defaults.
    public var curvePreferences: [String]?
    public var allowInsecureCipherSuites = false
    /// `pinned_certs`: lower-case hex SHA-256 of the client certificate's SubjectPublicKeyInfo (DER). nil: no pinning.
    public var pinnedCerts: Set<String>?
    /// `connection_rate_limit` (TLS connections per second; 0: none). Parsed, not enforced by brokerd (see README).
    public var connectionRateLimit: Int64 = 0

    public enum Version: String, Sendable, Equatable {
        case tls12 = "1.2"
        case tls13 = "1.3"
    }

    /// nats-server's TLS_TIMEOUT.
    public static let defaultTimeout: Double = 2
    /// nats-server's DEFAULT_TLS_HANDSHAKE_FIRST_FALLBACK_DELAY (`handshake_first: auto`).
    public static let defaultHandshakeFirstFallback: Duration = .milliseconds(50)

    /// The handshake timeout in force.
    public var effectiveTimeout: Duration {
        .nanoseconds(Int64(((timeout > 0 ? timeout : Self.defaultTimeout) * 1e9).rounded()))
    }

    public init(certFile: String? = nil, keyFile: String? = nil, caFile: String? = nil, verify: Bool = false) {
        self.certFile = certFile
        self.keyFile = keyFile
        self.caFile = caFile
        self.verify = verify
    }
}

/// Go's crypto/tls cipher suite names (tls.CipherSuites() and tls.InsecureCipherSuites() of the Go that builds
/// nats-server 2.15), with their IANA values.
enum GoCipherSuites {
    struct Suite {
        let name: String
        let id: UInt16
        let insecure: Bool
        /// TLS 1.3 suites cannot be chosen (neither in Go nor in BoringSSL).
        var isTLS13: Bool { id >> 8 == 0x13 }
    }

    static let all: [Suite] = [
        Suite(name: "TLS_AES_128_GCM_SHA256", id: 0x1301, insecure: false),
        Suite(name: "TLS_AES_256_GCM_SHA384", id: 0x1302, insecure: false),
        Suite(name: "TLS_CHACHA20_POLY1305_SHA256", id: 0x1303, insecure: false),
        Suite(name: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", id: 0xC009, insecure: false),
        Suite(name: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", id: 0xC00A, insecure: false),
        Suite(name: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", id: 0xC013, insecure: false),
        Suite(name: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", id: 0xC014, insecure: false),
        Suite(name: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", id: 0xC02B, insecure: false),
        Suite(name: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", id: 0xC02C, insecure: false),
        Suite(name: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", id: 0xC02F, insecure: false),
        Suite(name: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", id: 0xC030, insecure: false),
        Suite(name: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", id: 0xCCA8, insecure: false),
        Suite(name: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", id: 0xCCA9, insecure: false),
        Suite(name: "TLS_RSA_WITH_RC4_128_SHA", id: 0x0005, insecure: true),
        Suite(name: "TLS_RSA_WITH_3DES_EDE_CBC_SHA", id: 0x000A, insecure: true),
        Suite(name: "TLS_RSA_WITH_AES_128_CBC_SHA", id: 0x002F, insecure: true),
        Suite(name: "TLS_RSA_WITH_AES_256_CBC_SHA", id: 0x0035, insecure: true),
        Suite(name: "TLS_RSA_WITH_AES_128_CBC_SHA256", id: 0x003C, insecure: true),
        Suite(name: "TLS_RSA_WITH_AES_128_GCM_SHA256", id: 0x009C, insecure: true),
        Suite(name: "TLS_RSA_WITH_AES_256_GCM_SHA384", id: 0x009D, insecure: true),
        Suite(name: "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA", id: 0xC007, insecure: true),
        Suite(name: "TLS_ECDHE_RSA_WITH_RC4_128_SHA", id: 0xC011, insecure: true),
        Suite(name: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", id: 0xC012, insecure: true),
        Suite(name: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", id: 0xC023, insecure: true),
        Suite(name: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", id: 0xC027, insecure: true),
    ]

    static let byName: [String: Suite] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    /// nats-server's curvePreferenceMap (Go 1.26+), with the TLS group ids.
    static let curves: [String: UInt16] = [
        "SecP384r1MLKEM1024": 0x11ED, "SecP256r1MLKEM768": 0x11EB, "X25519MLKEM768": 0x11EC,
        "X25519": 0x001D, "CurveP256": 0x0017, "CurveP384": 0x0018, "CurveP521": 0x0019,
    ]
}

extension ConfigLoader {
    /// Reads a `tls { }` block with nats-server's rules and error texts (parseTLS). Only the block's own keys are
    /// checked here; whether the files can be read is `TLSContextFactory`'s business (nats-server's GenTLSConfig),
    /// which `checkTLSFiles` runs for the loader.
    public static func parseTLS(_ block: ConfigMap.Entry) throws -> TLSConfig {
        let field = ConfigField(entry: block, name: block.key)
        guard case .map(let map) = block.value else {
            throw field.fail("error parsing tls config, expected a map for \"\(block.key)\", got \(block.value.summary)")
        }
        var tls = TLSConfig()
        var insecureSuites: [String] = []
        for entry in map.entries {
            let field = ConfigField(entry: entry, name: entry.key)
            func bool(_ what: String) throws -> Bool {
                guard case .bool(let b) = entry.value else {
                    throw field.fail("error parsing tls config, expected '\(what)' to be a boolean")
                }
                return b
            }
            func file(_ what: String) throws -> String {
                guard case .string(let s) = entry.value else {
                    throw field.fail("error parsing tls config, expected '\(what)' to be filename")
                }
                return s
            }
            func names(_ what: String) throws -> [String] {
                guard case .array(let items) = entry.value else {
                    throw field.fail("error parsing tls config, expected '\(what)' to be a list of names")
                }
                if items.isEmpty { throw field.fail("error parsing tls config, '\(what)' cannot be empty") }
                return try items.map {
                    guard case .string(let s) = $0 else {
                        throw field.fail("error parsing tls config, expected '\(what)' to be a list of names, got \($0.summary)")
                    }
                    return s
                }
            }
            let key = entry.key.lowercased()
            switch key {
            case "cert_file": tls.certFile = try file("cert_file")
            case "key_file": tls.keyFile = try file("key_file")
            case "ca_file": tls.caFile = try file("ca_file")
            case "insecure": tls.insecure = try bool("insecure")
            case "verify": tls.verify = try bool("verify")
            case "verify_and_map":
                let on = try bool("verify_and_map")
                if on { tls.verify = true }
                tls.verifyAndMap = on
            case "verify_cert_and_check_known_urls":
                // nats-server refuses it on client-facing listeners.
                if try bool("verify_cert_and_check_known_urls") {
                    throw field.fail("verify_cert_and_check_known_urls not supported in this context")
                }
            case "allow_insecure_cipher_suites": tls.allowInsecureCipherSuites = try bool("allow_insecure_cipher_suites")
            case "cipher_suites":
                var suites: [String] = []
                for name in try names("cipher_suites") {
                    guard let suite = GoCipherSuites.byName[name] else { throw field.fail("unrecognized cipher \(name)") }
                    if suite.insecure { insecureSuites.append(name) }
                    suites.append(name)
                }
                tls.cipherSuites = suites
            case "curve_preferences":
                let curves = try names("curve_preferences")
                for name in curves where GoCipherSuites.curves[name] == nil {
                    throw field.fail("unrecognized curve preference \(name)")
                }
                tls.curvePreferences = curves
            case "timeout":
                switch entry.value {
                case .integer(let n): tls.timeout = Double(n)
                case .float(let d): tls.timeout = d
                case .string(let text):
                    switch GoDuration.parse(text) {
                    case .success(let ns): tls.timeout = Double(ns) / 1e9
                    case .failure(let problem):
                        throw field.fail("error parsing tls config, 'timeout' time: \(problem.reason)")
                    }
                default: throw field.fail("error parsing tls config, 'timeout' wrong type")
                }
                // nats-server takes a negative timeout and then fails every handshake at once.
                if tls.timeout < 0 { throw field.fail("error parsing tls config, 'timeout' must not be negative") }
            case "connection_rate_limit":
                guard case .integer(let n) = entry.value else {
                    throw field.fail("error parsing tls config, 'connection_rate_limit' wrong type")
                }
                tls.connectionRateLimit = n
            case "pinned_certs":
                guard case .array(let items) = entry.value else {
                    throw field.fail("error parsing tls config, expected 'pinned_certs' to be a list of hex-encoded sha256 of DER encoded SubjectPublicKeyInfo")
                }
                if !items.isEmpty {
                    var pins = Set<String>()
                    for item in items {
                        guard case .string(let raw) = item else {
                            throw field.fail("error parsing tls config, 'pinned_certs' key \(item.shownValue) does not look like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo")
                        }
                        let pin = raw.lowercased()
                        guard pin.utf8.count == 64, pin.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
                            throw field.fail("error parsing tls config, 'pinned_certs' key \(pin) does not look like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo")
                        }
                        pins.insert(pin)
                    }
                    tls.pinnedCerts = pins
                }
            case "handshake_first", "first", "immediate":
                switch entry.value {
                case .bool(let on): tls.handshakeFirst = on
                case .string(let word):
                    switch word.lowercased() {
                    case "true", "on": tls.handshakeFirst = true
                    case "false", "off": tls.handshakeFirst = false
                    case "auto", "auto_fallback":
                        tls.handshakeFirst = true
                        tls.handshakeFirstFallback = TLSConfig.defaultHandshakeFirstFallback
                    default:
                        guard case .success(let ns) = GoDuration.parse(word) else {
                            throw field.fail("field \"\(entry.key)\"'s value \"\(word)\" is invalid")
                        }
                        tls.handshakeFirst = true
                        // As nats-server: a zero or negative delay means no fallback.
                        tls.handshakeFirstFallback = ns > 0 ? .nanoseconds(ns) : nil
                    }
                default:
                    throw field.fail("field \"\(entry.key)\" should be a boolean or a string, got \(goTypeName(entry.value))")
                }
            case "min_version":
                guard case .string(let text) = entry.value else {
                    throw field.fail("error parsing tls config: 'min_version' wrong type: \(goValue(entry.value))")
                }
                switch text {
                case "1.2": tls.minVersion = .tls12
                case "1.3": tls.minVersion = .tls13
                case "1.0", "1.1": throw field.fail("error parsing tls config: unsupported TLS version: TLS \(text)")
                default: throw field.fail("error parsing tls config: unknown version: \(text)")
                }
            case "cert_store", "cert_match_by", "cert_match", "cert_match_skip_invalid", "ca_certs_match",
                 "ocsp_peer", "certs", "certificates":
                throw field.fail("\"\(entry.key)\" in tls is not supported by brokerd")
            default:
                throw field.fail("error parsing tls config, unknown field \"\(entry.key)\"")
            }
        }
        if !tls.allowInsecureCipherSuites && !insecureSuites.isEmpty {
            throw field.fail("insecure cipher suites configured without 'allow_insecure_cipher_suites' option set: \(insecureSuites.joined(separator: ", "))")
        }
        return tls
    }

    /// The client port's `tls { }`: parsed, then its files read as nats-server's GenTLSConfig does at load time, so
    /// an unreadable certificate or a bad key is a configuration error at the block's line.
    static func applyTLS(_ block: ConfigField, to options: inout BrokerOptions) throws {
        let tls = try parseTLS(block.entry)
        try checkTLSFiles(tls, block: block)
        options.tls = tls
    }

    /// Builds the server context once, to report what nats-server's GenTLSConfig reports, at the block's line.
    static func checkTLSFiles(_ tls: TLSConfig, block: ConfigField) throws {
        do {
            _ = try TLSContextFactory.makeServerContext(tls)
        } catch let error as TLSContextError {
            throw block.fail(error.description)
        }
    }

    /// Go's %T for a config value, in nats-server's messages.
    private static func goTypeName(_ value: ConfigValue) -> String {
        switch value {
        case .string: return "string"
        case .integer: return "int64"
        case .float: return "float64"
        case .bool: return "bool"
        case .array: return "[]interface {}"
        case .map: return "map[string]interface {}"
        }
    }

    /// Go's %v for a config value.
    private static func goValue(_ value: ConfigValue) -> String {
        switch value {
        case .string(let s): return s
        case .integer(let n): return "\(n)"
        case .float(let d): return "\(d)"
        case .bool(let b): return "\(b)"
        case .array: return "[...]"
        case .map: return "map[...]"
        }
    }
}
