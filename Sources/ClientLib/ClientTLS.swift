import NIOCore
import NIOSSL

/// A client's TLS, made once from `NATSTLSOptions` (files read and checked at `connect`): the NIOSSL context
/// and, per connection, the `NIOSSLClientHandler` that verifies the server's certificate.
final class ClientTLS: Sendable {
    let context: NIOSSLContext
    let handshakeFirst: Bool
    let serverName: String?
    /// The one certificate accepted from the server (`pinnedServerCertificateFile`), if any.
    let pinned: NIOSSLCertificate?

    /// Nil when TLS is neither asked for by the options nor by a `tls://` URL.
    static func make(_ options: NATSTLSOptions, servers: [String]) throws -> ClientTLS? {
        guard options.requested || servers.contains(where: ServerAddress.isSecure) else { return nil }
        return try ClientTLS(options)
    }

    init(_ options: NATSTLSOptions) throws {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        // close() waits for the server's close_notify at most this long.
        configuration.shutdownTimeout = .seconds(1)
        do {
            if let caFile = options.caFile {
                configuration.trustRoots = .file(caFile)
                // Fail now, not at the first handshake, when the file holds no certificate.
                guard try !NIOSSLCertificate.fromPEMFile(caFile).isEmpty else {
                    throw NATSError.tlsConfiguration("\(caFile): no certificate in the file")
                }
            }
            switch (options.certFile, options.keyFile) {
            case (let cert?, let key?):
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            case (nil, nil):
                break
            default:
                throw NATSError.tlsConfiguration("a client certificate needs both a certificate file and a key file")
            }
            if let file = options.pinnedServerCertificateFile {
                guard let leaf = try NIOSSLCertificate.fromPEMFile(file).first else {
                    throw NATSError.tlsConfiguration("\(file): no certificate in the file")
                }
                pinned = leaf
                // The pinned certificate replaces the trust roots and the host name (checked in the callback).
                configuration.certificateVerification = .noHostnameVerification
            } else {
                pinned = nil
            }
            context = try NIOSSLContext(configuration: configuration)
        } catch let error as NATSError {
            throw error
        } catch {
            throw NATSError.tlsConfiguration("\(error)")
        }
        handshakeFirst = options.handshakeFirst
        serverName = options.serverName
    }

    /// The handler for a connection to `target`: SNI and the host name check use `serverName` or the URL's host
    /// (for an IP address, NIOSSL checks the certificate's IP addresses against the peer's).
    func makeHandler(for target: ServerAddress) throws -> NIOSSLClientHandler {
        let hostname = serverName ?? (target.hostIsIPAddress ? nil : target.host)
        if let pinned {
            return try NIOSSLClientHandler(context: context, serverHostname: hostname) { presented, verdict in
                verdict.succeed(presented.first == pinned ? .certificateVerified : .failed)
            }
        }
        return try NIOSSLClientHandler(context: context, serverHostname: hostname)
    }
}
