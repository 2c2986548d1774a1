import ArgumentParser
import AsyncHTTPClient
import Broker
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
        subcommands: [FalcoPipe.self, BridgeToken.self, BridgeCommand.self]
    )

    @Option(name: [.customShort("a"), .customLong("addr"), .customLong("net")], help: "Bind to host address (default: 0.0.0.0).")
    var addr: String?

    @Option(name: [.customShort("p"), .customLong("port")], help: "Use port for clients (default: 4222; -1 or 0 picks a free port).")
    var port: Int?

    @Option(name: [.customShort("n"), .customLong("name"), .customLong("server_name")], help: "Server name (default: the server id).")
    var name: String?

    @Option(name: [.customShort("m"), .customLong("http_port")], help: "Use port for http monitoring (8222 is the usual one).")
    var httpPort: Int?

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
        let options: BrokerOptions
        var ignoredKeys: [String] = []
        do {
            (options, ignoredKeys) = try makeOptions()
        } catch let error as ConfigError {
            FileHandle.standardError.write(Data("brokerd: configuration error: \(error)\n".utf8))
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

        let server = BrokerServer(options: options, logger: logger)
        let service = BrokerService(server: server, configPath: config, overrides: self, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        do {
            try await group.run()
        } catch {
            logger.error("brokerd failed: \(error)")
            throw ExitCode(1)
        }
    }

    /// Options from the config file (if any) with the command line on top, as nats-server merges them.
    func makeOptions() throws -> (BrokerOptions, [String]) {
        var options = BrokerOptions()
        var ignored: [String] = []
        if let config {
            ignored = try ConfigLoader.load(path: config, into: &options)
            options.configFile = config
        }
        applyFlags(to: &options)
        return (options, ignored)
    }

    func applyFlags(to options: inout BrokerOptions) {
        if let addr { options.host = addr }
        if let port { options.port = port < 0 ? 0 : port }
        if let name { options.serverName = name }
        if let httpPort { options.httpPort = httpPort }
        if auth != nil || user != nil {
            options.authorization = .init(token: auth, user: user, password: pass)
        }
        if jetstream { options.jetStream = true }
        if let storeDir { options.storeDirectory = storeDir }
        if let falcoHTTPPort { options.falcoHTTPPort = falcoHTTPPort }
        if debug { options.debug = true }
        if trace { options.trace = true }
        if let log { options.logFile = log }
    }
}

/// Runs the broker and its monitor until graceful shutdown; handles SIGHUP (reload) and SIGUSR2 (lame duck).
struct BrokerService: Service {
    let server: BrokerServer
    let configPath: String?
    let overrides: Brokerd
    let logger: Logger

    func run() async throws {
        // Trap before listening: a client (or a test) may signal as soon as the port accepts connections.
        let signals = await UnixSignalsSequence(trapping: .sighup, .sigusr2)
        try await server.start()
        var monitor: MonitorServer?
        if let httpPort = server.options.httpPort {
            let m = MonitorServer(broker: server, logger: logger)
            try await m.start(host: server.options.httpHost ?? server.options.host, port: httpPort)
            monitor = m
        }
        // Pub/Sub bridges run inside brokerd, connected to it over loopback like any client.
        let bridgeHTTP: HTTPClient? = server.options.bridges.isEmpty ? nil : HTTPClient(eventLoopGroupProvider: .singleton)
        var bridgeTasks: [Task<Void, Never>] = []
        if let bridgeHTTP {
            guard server.jetStream != nil else {
                // The bridge reads a durable consumer: without JetStream it could never run.
                logger.error("gcp_pubsub needs JetStream: add a jetstream { store_dir: ... } block or -js")
                try? await bridgeHTTP.shutdown()
                await server.shutdown()
                throw ExitCode(1)
            }
            let host = ["0.0.0.0", "", "::"].contains(server.options.host) ? "127.0.0.1" : server.options.host
            let url = host.contains(":") ? "nats://[\(host)]:\(server.boundPort)" : "nats://\(host):\(server.boundPort)"
            for config in server.options.bridges {
                do {
                    let bridge = try PubSubBridge.make(config: config, servers: [url], authorization: server.options.authorization,
                                                       httpClient: bridgeHTTP, logger: logger)
                    server.register(bridge: bridge.stats)
                    bridgeTasks.append(Task { await bridge.run() })
                } catch {
                    // A bridge that cannot run (an unreadable key, say) is a configuration error: say so and stop.
                    logger.error("Pub/Sub bridge cannot start", metadata: ["topic": "\(config.topic)", "error": "\(error)"])
                    await server.shutdown()
                    throw error
                }
            }
        }
        var falcoHTTP: FalcoHTTPServer?
        if let port = server.options.falcoHTTPPort, let falco = server.falcoIngest {
            let f = FalcoHTTPServer(broker: server, falco: falco, maxBody: server.options.falcoMaxBody,
                                    idleTimeout: server.options.falcoIdleTimeout, logger: logger)
            try await f.start(host: server.options.falcoHTTPHost ?? server.options.host, port: port)
            falcoHTTP = f
        }
        let (lameDuckDone, lameDuckFinished) = AsyncStream.makeStream(of: Void.self)
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                for await signal in signals {
                    if signal == .sighup {
                        reload()
                    } else if signal == .sigusr2 {
                        // Lame duck runs beside this loop, so SIGHUP is still handled meanwhile.
                        Task {
                            await server.enterLameDuckMode()
                            lameDuckFinished.yield()
                        }
                    }
                }
            }
            tasks.addTask {
                // As nats-server: once lame duck has closed every client, the server shuts down.
                for await _ in lameDuckDone { return }
            }
            tasks.addTask {
                // Wait for SIGTERM/SIGINT (ServiceGroup turns them into graceful shutdown).
                try? await gracefulShutdown()
            }
            await tasks.next()
            tasks.cancelAll()
        }
        for task in bridgeTasks { task.cancel() }
        for task in bridgeTasks { await task.value }
        try? await bridgeHTTP?.shutdown()
        await falcoHTTP?.stop()
        await monitor?.stop()
        await server.shutdown()
    }

    func reload() {
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
        overrides.applyFlags(to: &options)
        server.reload(options)
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

    @Option(name: .customLong("pass"), help: "Password (brokerd: required of clients; subcommands: sent).")
    var pass: String?
}
