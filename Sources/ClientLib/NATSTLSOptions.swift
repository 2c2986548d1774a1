/// TLS for a `NATSClient`, as the NATS clients do it (nats.go's `Secure`, `RootCAs`, `ClientCert`,
/// `TLSHandshakeFirst`).
///
/// TLS is used when any server URL is `tls://`, when `enabled` is set, when a CA file, a client certificate or
/// a pinned certificate is given, or when the server's INFO says `tls_required` (then with the system's trust
/// roots unless `caFile` says otherwise). The default order is the server's: INFO in clear, then the TLS
/// handshake, then CONNECT; `handshakeFirst` starts TLS before INFO (the server's `tls { handshake_first: true }`).
/// The server's certificate is verified against the trust roots and the host name of the URL (or `serverName`);
/// for an IP address, against the certificate's IP addresses.
public struct NATSTLSOptions: Sendable, Equatable {
    /// Use TLS even when no URL says `tls://` (the `tls://` scheme sets it for every server, as nats.go does).
    public var enabled = false
    /// PEM file of the certificate authorities to trust instead of the system's (`--tlsca`).
    public var caFile: String?
    /// PEM file of the client certificate (chain) to present, for servers that verify clients (`--tlscert`).
    public var certFile: String?
    /// PEM file of the client certificate's private key (`--tlskey`).
    public var keyFile: String?
    /// TLS before the server's INFO (nats-server's `handshake_first`), instead of after it.
    public var handshakeFirst = false
    /// The name to expect in the server's certificate (and to send as SNI) instead of the URL's host.
    public var serverName: String?
    /// Accept exactly this certificate (PEM; its first certificate) from the server, without trust roots or
    /// host name: for a client inside the server's own process that connects to it over loopback.
    public var pinnedServerCertificateFile: String?

    public init() {}

    /// Whether these options ask for TLS by themselves (a `tls://` URL asks too).
    public var requested: Bool {
        enabled || handshakeFirst || caFile != nil || certFile != nil || keyFile != nil || pinnedServerCertificateFile != nil
    }
}
