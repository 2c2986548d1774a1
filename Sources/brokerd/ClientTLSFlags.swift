import ArgumentParser
import ClientLib

/// --tlscert and --tlskey, shared by brokerd (its server certificate, nats-server's flags) and the subcommands
/// that connect to brokerd as clients (their client certificate, as the nats CLI names it). ArgumentParser gives
/// a parent's options to the parent even after a subcommand's name, and hands an option group of the same type
/// on to the subcommand: so the two must be this one group (as `AuthOptions` is for --user/--pass).
struct TLSCertificateOptions: ParsableArguments {
    @Option(name: [.customLong("tlscert"), .customLong("tlscert", withSingleDash: true)],
            help: ArgumentHelp("TLS certificate file, PEM (brokerd: its server certificate; subcommands: the client certificate, for a brokerd that verifies clients).",
                               valueName: "file"))
    var cert: String?

    @Option(name: [.customLong("tlskey"), .customLong("tlskey", withSingleDash: true)],
            help: ArgumentHelp("Private key file of --tlscert, PEM.", valueName: "file"))
    var key: String?
}

/// The other TLS flags of the subcommands that connect to brokerd as clients (`falco-pipe`, `bridge`), named as
/// the nats CLI names them. A `tls://` URL or any TLS flag turns TLS on.
struct ClientTLSFlags: ParsableArguments {
    @Option(name: .customLong("tlsca"), help: ArgumentHelp("TLS certificate authority chain file (PEM) to verify brokerd with.",
                                                            valueName: "file"))
    var ca: String?

    @Flag(name: .customLong("tlsfirst"), help: "Perform the TLS handshake before expecting the server greeting (handshake_first).")
    var first = false
}

/// A subcommand that connects to brokerd with ClientLib's TLS.
protocol ClientTLSCommand {
    var tls: ClientTLSFlags { get }
    var certificate: TLSCertificateOptions { get }
}

extension ClientTLSCommand {
    func validateTLS() throws {
        if (certificate.cert == nil) != (certificate.key == nil) { throw ValidationError("--tlscert and --tlskey go together") }
    }

    var tlsOptions: NATSTLSOptions {
        var options = NATSTLSOptions()
        options.caFile = tls.ca
        options.certFile = certificate.cert
        options.keyFile = certificate.key
        options.handshakeFirst = tls.first
        return options
    }
}
