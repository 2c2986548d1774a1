import ArgumentParser
import Broker
import PubSubBridge
import Foundation

/// `brokerd bridge-token`: prints the self-signed JWT that the Pub/Sub bridge would send for a service-account key,
/// so an operator (or a test) can check a key file without starting the bridge. Hidden from `--help`: a debugging aid.
struct BridgeToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bridge-token",
        abstract: "Print the Pub/Sub bridge's bearer token (RS256 JWT) for a service-account JSON key.",
        shouldDisplay: false
    )

    @Option(help: "Service-account JSON key file.")
    var credentials: String

    @Option(help: "Issue time, unix seconds (default: now).")
    var now: Int64?

    func run() async throws {
        do {
            // Not PubSubCredentials.resolve: PUBSUB_EMULATOR_HOST in the environment must not hide the key.
            let key = try ServiceAccountKey(contentsOfFile: credentials)
            print(try key.jwt(issuedAt: now ?? Int64(Date().timeIntervalSince1970)))
        } catch let error as PubSubCredentialsError {
            FileHandle.standardError.write(Data("brokerd bridge-token: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}
