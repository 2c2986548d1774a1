import ArgumentParser
import AsyncHTTPClient
import Broker
import Foundation
import Logging
import PubSubBridge
import ServiceLifecycle

/// `brokerd bridge -c FILE`: runs the file's `gcp_pubsub { }` bridges outside brokerd, against a brokerd
/// reached with ClientLib. Same code and guarantees as the bridges brokerd runs itself.
struct BridgeCommand: AsyncParsableCommand, ClientTLSCommand {
    static let configuration = CommandConfiguration(
        commandName: "bridge",
        abstract: "Run the configuration's gcp_pubsub bridges as a separate process, connected to a brokerd.",
        discussion: """
            Reads the gcp_pubsub blocks of the configuration file (other keys are checked and ignored) and
            bridges their subjects to Google Cloud Pub/Sub through a durable consumer on brokerd. A message is
            acknowledged to brokerd only after Pub/Sub returned its message id. With PUBSUB_EMULATOR_HOST set it
            talks plain HTTP to the emulator. SIGTERM/SIGINT stop it; unacknowledged messages are redelivered
            to the next run. Over TLS: --server tls://brokerd:4222 --tlsca ca.pem (and --tlscert/--tlskey when
            brokerd verifies clients).
            """
    )

    @OptionGroup var configFile: ConfigFileOption
    @OptionGroup var credentials: AuthOptions
    @OptionGroup(title: "TLS") var tls: ClientTLSFlags
    @OptionGroup(title: "TLS") var certificate: TLSCertificateOptions

    @Option(name: [.customShort("s"), .customLong("server")], help: "brokerd's URL(s), comma-separated.")
    var server = "nats://127.0.0.1:4222"

    func validate() throws {
        try validateTLS()
    }

    func run() async throws {
        guard let config = configFile.config else {
            FileHandle.standardError.write(Data("brokerd bridge: -c FILE (with gcp_pubsub blocks) is required\n".utf8))
            throw ExitCode(2)
        }
        var options = BrokerOptions()
        do {
            _ = try ConfigLoader.load(path: config, into: &options)
        } catch {
            FileHandle.standardError.write(Data("brokerd bridge: configuration error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        guard !options.bridges.isEmpty else {
            FileHandle.standardError.write(Data("brokerd bridge: \(config) has no gcp_pubsub block\n".utf8))
            throw ExitCode(1)
        }
        LoggingSystem.bootstrap { label in StreamLogHandler.standardError(label: label) }
        let logger = Logger(label: "brokerd-bridge")
        let auth = (credentials.sentUser != nil || credentials.sentToken != nil)
            ? BrokerOptions.Authorization(token: credentials.sentToken, user: credentials.sentUser, password: credentials.sentPassword) : nil
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        let bridges: [PubSubBridge]
        do {
            bridges = try options.bridges.map {
                try PubSubBridge.make(config: $0, servers: server.split(separator: ",").map(String.init), authorization: auth,
                                      tls: tlsOptions, httpClient: http, logger: logger)
            }
        } catch {
            try? await http.shutdown()
            throw error
        }
        // SIGTERM/SIGINT: the bridges drain (see PubSubBridge.run), then the HTTP client closes.
        let services: [any Service] = [HTTPClientService(client: http)] + bridges
        try await ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
        for bridge in bridges {
            let s = bridge.stats.snapshot()
            logger.info("Bridge stopped", metadata: ["topic": "\(s.topic)", "bridged": "\(s.bridged)", "retried": "\(s.retried)",
                                                     "dead_lettered": "\(s.deadLettered)"])
        }
    }
}
