import ArgumentParser
import ClientLib

/// The TLS flags of the subcommands that connect to brokerd as clients (`falco-pipe`, `bridge`), named as
/// the nats CLI names them. A `tls://` URL or any of these turns TLS on.
struct ClientTLSFlags: ParsableArguments {
    @Option(name: .customLong("tlsca"), help: ArgumentHelp("TLS certificate authority chain file (PEM) to verify brokerd with.",
                                                            valueName: "file"))
    var ca: String?

    @Option(name: .customLong("tlscert"), help: ArgumentHelp("TLS public certificate file (PEM), for a brokerd that verifies clients.",
                                                              valueName: "file"))
    var cert: String?

    @Option(name: .customLong("tlskey"), help: ArgumentHelp("TLS private key file (PEM) of --tlscert.", valueName: "file"))
    var key: String?

    @Flag(name: .customLong("tlsfirst"), help: "Perform the TLS handshake before expecting the server greeting (handshake_first).")
    var first = false

    func validate() throws {
        if (cert == nil) != (key == nil) { throw ValidationError("--tlscert and --tlskey go together") }
    }

    var options: NATSTLSOptions {
        var tls = NATSTLSOptions()
        tls.caFile = ca
        tls.certFile = cert
        tls.keyFile = key
        tls.handshakeFirst = first
        return tls
    }
}
