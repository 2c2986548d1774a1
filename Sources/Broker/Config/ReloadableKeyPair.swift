import NIOConcurrencyHelpers
import NIOSSL

/// A listener's certificate chain and key that SIGHUP can replace: every TLS handshake takes the current pair
/// through swift-nio-ssl's per-handshake callback (`sslContextCallback`), so a certificate cert-manager rotated
/// on disk is served from the next connection on, without a restart, while open connections keep theirs. The
/// trust roots (`ca_file`) and the other settings stay those of the start.
public final class ReloadableKeyPair: Sendable {
    private let pair: NIOLockedValueBox<([NIOSSLCertificate], NIOSSLPrivateKey)>

    public init(_ tls: TLSConfig) throws {
        pair = NIOLockedValueBox(try TLSContextFactory.loadKeyPair(tls))
    }

    /// Reads the files again; on an error the running pair stays (and the error is thrown for the log).
    public func reload(_ tls: TLSConfig) throws {
        let fresh = try TLSContextFactory.loadKeyPair(tls)
        pair.withLockedValue { $0 = fresh }
    }

    /// Makes `configuration` serve the current pair on each handshake.
    public func install(into configuration: inout TLSConfiguration) {
        configuration.sslContextCallback = { [pair] _, promise in
            let (chain, key) = pair.withLockedValue { $0 }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = chain.map { .certificate($0) }
            override.privateKey = .privateKey(key)
            promise.succeed(override)
        }
    }
}
