import ArgumentParser
import AsyncHTTPClient
import Broker
import PubSubBridge
import Foundation
import Logging
import Metrics
import NATSConfig
import Prometheus
import ServiceLifecycle
import UnixSignals

/// brokerd's command line: nats-server's flags, spelled as nats-server spells them.
@main
struct Brokerd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "brokerd",
        abstract: "A NATS-protocol message broker for Falco runtime-security alerts.",
        discussion: """
            brokerd speaks the NATS client protocol as nats-server 2.x does and accepts nats-server's flags and \
            configuration file. Command-line flags override the configuration file.
            Signals: SIGTERM/SIGINT shut down gracefully, SIGHUP reloads the configuration file, SIGUSR2 enters \
            lame-duck mode.
            """,
        subcommands: [FalcoPipe.self, BridgeToken.self, BridgeCommand.self, Passwd.self]
    )

    @Option(name: [.customShort("a"), .customLong("addr"), .customLong("net")], help: "Bind to host address (default: 0.0.0.0).")
    var addr: String?

    @Option(name: [.customShort("p"), .customLong("port")], help: "Use port for clients (default: 4222; -1 or 0 picks a free port).")
    var port: Int?

    @Option(name: [.customShort("n"), .customLong("name"), .customLong("server_name")], help: "Server name (default: the server id).")
    var name: String?

    @Option(name: [.customShort("m"), .customLong("http_port")], help: "Use port for http monitoring (8222 is the usual one).")
    var httpPort: Int?

    @Option(name: [.customLong("ms", withSingleDash: true), .customLong("https_port")],
            help: "Use port for https monitoring (with the configuration's tls { } certificate).")
    var httpsPort: Int?

    // -c/--config and --auth/--user/--pass are option groups that the subcommands share: ArgumentParser hands
    // a parent's options to the parent even after a subcommand's name.
    @OptionGroup var configFile: ConfigFileOption
    var config: String? { configFile.config }

    @OptionGroup var credentials: AuthOptions
    var auth: String? { credentials.auth }
    var user: String? { credentials.user }
    var pass: String? { credentials.pass }

    @Flag(name: [.customLong("js", withSingleDash: true), .customLong("jetstream")], help: "Enable JetStream (durable streams).")
    var jetstream = false

    @Option(name: [.customLong("sd", withSingleDash: true), .customLong("store_dir")], help: "Directory for JetStream storage.")
    var storeDir: String?

    @Option(name: .customLong("falco_http_port"), help: "Serve Falco's http_output on this port (2801 is the usual one).")
    var falcoHTTPPort: Int?

    // TLS on the client port, as nats-server's flags: any of them replaces the tls block's certificates (the block's
    // timeout, handshake_first, verify_and_map and pinned_certs stay) and needs --tlscert and --tlskey.
    @Flag(name: [.customLong("tls"), .customLong("tls", withSingleDash: true)], help: "Enable TLS.")
    var tls = false

    // --tlscert, --tlskey: a group shared with the subcommands (their client certificate), as `credentials` is.
    @OptionGroup var certificate: TLSCertificateOptions
    var tlsCert: String? { certificate.cert }
    var tlsKey: String? { certificate.key }

    @Option(name: [.customLong("tlscacert"), .customLong("tlscacert", withSingleDash: true)], help: "Client certificate CA for verification.")
    var tlsCACert: String?

    @Flag(name: [.customLong("tlsverify"), .customLong("tlsverify", withSingleDash: true)], help: "Enable TLS with client verification.")
    var tlsVerify = false

    @Flag(name: [.customShort("D"), .customLong("debug")], help: "Enable debugging output.")
    var debug = false

    @Flag(name: [.customShort("V"), .customLong("trace")], help: "Trace the raw protocol (logs at trace level).")
    var trace = false

    @Option(name: [.customShort("l"), .customLong("log")], help: "File to redirect log output.")
    var log: String?

    @Flag(name: [.customShort("v"), .customLong("version")], help: "Show version.")
    var version = false

    mutating func run() async throws {
        if version {
            print("brokerd: v\(BrokerServer.version) (nats-server protocol \(BrokerServer.natsCompatibleVersion))")
            return
        }
        // A file size limit (RLIMIT_FSIZE) must fail the write (EFBIG, handled like a full disk), not kill brokerd.
        signal(SIGXFSZ, SIG_IGN)
        let options: BrokerOptions
        var ignoredKeys: [String] = []
        do {
            (options, ignoredKeys) = try makeOptions()
        } catch let error as ConfigError {
            FileHandle.standardError.write(Data("brokerd: configuration error: \(error)\n".utf8))
            throw ExitCode(1)
        } catch let error as TLSContextError {
            FileHandle.standardError.write(Data("brokerd: \(error)\n".utf8))
            throw ExitCode(1)
        }

        let logLevel: Logger.Level = options.trace ? .trace : (options.debug ? .debug : .info)
        let logSink = try LogSink(path: options.logFile)
        LoggingSystem.bootstrap { label in
            var handler = BrokerLogHandler(label: label, sink: logSink)
            handler.logLevel = logLevel
            return handler
        }
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()))  // /metrics renders it
        let logger = Logger(label: "brokerd")
        for key in ignoredKeys {
            logger.warning("Configuration key '\(key)' is not supported by brokerd yet and is ignored")
        }

        if let problem = options.monitorProblem {
            // nats-server's StartMonitoring refuses these at start-up.
            logger.error("\(problem)")
            throw ExitCode(1)
        }
        if !options.bridges.isEmpty && !options.jetStream {
            // The bridge reads a durable consumer: without JetStream it could never run.
            logger.error("gcp_pubsub needs JetStream: add a jetstream { store_dir: ... } block or -js")
            throw ExitCode(1)
        }
        // Trap before listening: a client (or a test) may signal as soon as the port accepts connections.
        let signals = await UnixSignalsSequence(trapping: .sighup, .sigusr2)
        let server = BrokerServer(options: options, logger: logger)
        let overrides = self
        let configPath = config
        let bridgeHTTP: HTTPClient? = options.bridges.isEmpty ? nil : HTTPClient(eventLoopGroupProvider: .singleton)
        let group = ServiceGroup(configuration: .init(
            services: Self.services(server: server, signals: signals, bridgeHTTP: bridgeHTTP, logger: logger) {
                Self.reload(server: server, configPath: configPath, overrides: overrides, logger: logger)
            },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        do {
            try await group.run()
        } catch {
            logger.error("brokerd failed: \(error)")
            await server.shutdownEventLoops()
            throw ExitCode(1)
        }
        await server.shutdownEventLoops()
    }

    /// Everything brokerd runs, in the order ServiceGroup starts them; graceful shutdown (SIGTERM/SIGINT)
    /// stops them one by one from the end of the list:
    ///
    /// 1. signal handling (SIGHUP reload, SIGUSR2 lame duck) stops;
    /// 2. stop accepting: the NATS listener, then Falco's HTTP endpoint and the monitor;
    /// 3. the Pub/Sub bridges drain: no new pulls; the batches Pub/Sub is taking get up to 5 s to be acked;
    ///    then their HTTP client closes;
    /// 4. every client connection is flushed and closed;
    /// 5. JetStream writes its consumer state and closes its store, last.
    ///
    /// Then the event loops stop. Lame duck (SIGUSR2), once it has closed every client, starts the same graceful
    /// shutdown, as nats-server exits after lame duck.
    static func services(server: BrokerServer, signals: UnixSignalsSequence, bridgeHTTP: HTTPClient?, logger: Logger,
                         reload: @escaping @Sendable () -> Void) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        var services: [any Service] = [server.jetStreamService, server.connectionsService]
        if let bridgeHTTP {
            // Pub/Sub bridges run inside brokerd, connected to it over loopback like any client.
            services.append(HTTPClientService(client: bridgeHTTP))
            for config in server.options.bridges {
                services.append(BridgeService(server: server, config: config, httpClient: bridgeHTTP, logger: logger))
            }
        }
        if let monitor = ListenerService.monitor(of: server, logger: logger) { services.append(monitor) }
        if let falco = ListenerService.falco(of: server, logger: logger) { services.append(falco) }
        services.append(server.listenerService)
        if !CertificateWatchService.files(of: server.options).isEmpty {
            services.append(CertificateWatchService(server: server, interval: .seconds(10), logger: logger, reload: reload))
        }
        var configurations = services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) }
        // Lame duck ends the signal service: then the whole group shuts down gracefully.
        configurations.append(.init(service: SignalService(signals: signals, server: server, reload: reload),
                                    successTerminationBehavior: .gracefullyShutdownGroup))
        return configurations
    }

    /// SIGHUP: the configuration file again, with the command line on top (host and port stay).
    static func reload(server: BrokerServer, configPath: String?, overrides: Brokerd, logger: Logger) {
        guard let configPath else {
            logger.warning("SIGHUP: no configuration file to reload")
            return
        }
        var options = BrokerOptions()
        do {
            _ = try ConfigLoader.load(path: configPath, into: &options)
        } catch {
            logger.error("Reload failed, keeping the running configuration: \(error)")
            return
        }
        options.configFile = configPath
        do {
            try overrides.applyFlags(to: &options)
        } catch {
            logger.error("Reload failed, keeping the running configuration: \(error)")
            return
        }
        server.reload(options)
    }

    /// Options from the config file (if any) with the command line on top, as nats-server merges them.
    func makeOptions() throws -> (BrokerOptions, [String]) {
        var options = BrokerOptions()
        var ignored: [String] = []
        if let config {
            ignored = try ConfigLoader.load(path: config, into: &options)
            options.configFile = config
        }
        try applyFlags(to: &options)
        if usesTLSFlags, let tls = options.tls {
            _ = try TLSContextFactory.makeServerContext(tls)  // the files now, as nats-server reads them at start
        }
        return (options, ignored)
    }

    var usesTLSFlags: Bool { tls || tlsVerify || tlsCert != nil || tlsKey != nil || tlsCACert != nil }

    func applyFlags(to options: inout BrokerOptions) throws {
        if let addr { options.host = addr }
        if let port { options.port = port < 0 ? 0 : port }
        if let name { options.serverName = name }
        if let httpPort { options.httpPort = httpPort }
        if let httpsPort { options.httpsPort = httpsPort }
        if auth != nil || user != nil {
            options.authorization = .init(token: auth, user: user, password: pass)
        }
        if jetstream { options.jetStream = true }
        if let storeDir { options.storeDirectory = storeDir }
        if let falcoHTTPPort { options.falcoHTTPPort = falcoHTTPPort }
        if debug { options.debug = true }
        if trace { options.trace = true }
        if let log { options.logFile = log }
        if usesTLSFlags {
            // nats-server's overrideTLS: a new certificate setup from the flags, with the default ciphers.
            guard let tlsCert else { throw TLSContextError("TLS Server certificate must be present and valid") }
            guard let tlsKey else { throw TLSContextError("TLS Server private key must be present and valid") }
            var tls = options.tls ?? TLSConfig()
            tls.certFile = tlsCert
            tls.keyFile = tlsKey
            tls.caFile = tlsCACert
            tls.verify = tlsVerify
            tls.cipherSuites = nil
            tls.curvePreferences = nil
            tls.minVersion = nil
            options.tls = tls
        }
    }
}

/// `-c/--config`, shared by brokerd and its subcommands.
struct ConfigFileOption: ParsableArguments {
    @Option(name: [.customShort("c"), .customLong("config")], help: "Configuration file (nats-server format).")
    var config: String?
}

/// brokerd's credential flags (nats-server's), shared by brokerd and the subcommands that connect to it.
struct AuthOptions: ParsableArguments {
    @Option(name: .customLong("auth"), help: "Authorization token (brokerd: required of clients; subcommands: sent).")
    var auth: String?

    @Option(name: .customLong("user"), help: "User (brokerd: required of clients; subcommands: sent).")
    var user: String?

    @Option(name: .customLong("pass"), help: "Password (brokerd: required of clients; subcommands: sent; they also read NATS_USER, NATS_PASSWORD and NATS_TOKEN from the environment, which keeps the password off the command line).")
    var pass: String?

    /// What a subcommand sends: the flags, else the nats CLI's environment variables.
    var sentUser: String? { user ?? ProcessInfo.processInfo.environment["NATS_USER"].flatMap { $0.isEmpty ? nil : $0 } }
    var sentPassword: String? { pass ?? ProcessInfo.processInfo.environment["NATS_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 } }
    var sentToken: String? { auth ?? ProcessInfo.processInfo.environment["NATS_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } }
}
