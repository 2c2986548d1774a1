import ArgumentParser
import Broker
import Foundation

/// `brokerd passwd`: a bcrypt hash for `authorization { users [ { password } ] }` (nats-server's
/// `nats server passwd`), so no plaintext password needs to sit in a config file or a ConfigMap.
struct Passwd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passwd",
        abstract: "Print a bcrypt hash of a password, for authorization { users } (as `nats server passwd`).",
        discussion: """
            Reads the password from the first line of standard input (or makes a random one with --generate,
            printed first, on its own line). The hash goes in the config file; the client sends the password.
              echo -n 's3cret' | brokerd passwd
              brokerd passwd --generate        # password, then its hash
            """)

    @Option(help: "bcrypt cost (log2 rounds), 4 to 31; each step doubles the time a check takes.")
    var cost = 11

    @Flag(help: "Make a random password (22 letters and digits) instead of reading one.")
    var generate = false

    func validate() throws {
        guard (4...31).contains(cost) else { throw ValidationError("--cost must be between 4 and 31") }
    }

    func run() throws {
        let password: String
        if generate {
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
            var random = SystemRandomNumberGenerator()
            password = String((0..<22).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
            print(password)
        } else {
            guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                throw ValidationError("no password on standard input")
            }
            password = line
        }
        guard let hash = Secrets.bcryptHash(password: password, cost: cost) else {
            throw ValidationError("the system's crypt library cannot make a bcrypt hash")
        }
        print(hash)
    }
}
