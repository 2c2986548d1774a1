import Foundation
import NIOSSL
import X509

/// Why a `TLSConfig` could not become a server context, in nats-server's words where it has them (GenTLSConfig):
/// `error parsing X509 certificate/key pair: open x.pem: no such file or directory`.
public struct TLSContextError: Error, CustomStringConvertible, Equatable, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Builds the NIOSSLContext a server listener serves TLS with, from a `TLSConfig` (nats-server's GenTLSConfig):
/// the certificate chain and key, TLS 1.2 at least, the chosen ciphers and curves, and, with `verify`, client
/// certificates required and checked against `ca_file` (or the system's roots). The files are read on every call,
/// so a reload (SIGHUP) that builds a new context picks up rotated certificates.
public enum TLSContextFactory {
    public static func makeServerContext(_ tls: TLSConfig, keyPair: ReloadableKeyPair? = nil) throws -> NIOSSLContext {
        var configuration = try makeServerConfiguration(tls)
        keyPair?.install(into: &configuration)
        // BoringSSL has no cipher string for "TLS 1.3 only": a list naming TLS 1.3 suites alone means TLS 1.3 only,
        // as in Go, where such a list leaves TLS 1.2 with nothing to negotiate.
        if let suites = tls.cipherSuites, suites.allSatisfy({ GoCipherSuites.byName[$0]?.isTLS13 ?? false }) {
            configuration.minimumTLSVersion = .tlsv13
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSContextError("error creating TLS context: \(error)")
        }
    }

    /// When the served certificate expires (`/varz` `tls_cert_not_after`); nil when it cannot be read.
    public static func certificateNotAfter(_ tls: TLSConfig) -> Date? {
        guard let certFile = tls.certFile, let bytes = try? readFile(certFile, prefix: ""),
              let leaf = try? NIOSSLCertificate.fromPEMBytes(bytes).first?.toDERBytes(),
              let certificate = try? Certificate(derEncoded: leaf) else { return nil }
        return certificate.notValidAfter
    }

    static func makeServerConfiguration(_ tls: TLSConfig) throws -> TLSConfiguration {
        let (chain, key) = try loadKeyPair(tls)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = tls.minVersion == .tls13 ? .tlsv13 : .tlsv12  // nats-server's minimum: 1.2
        if let suites = tls.cipherSuites {
            let older = suites.compactMap { GoCipherSuites.byName[$0] }.filter { !$0.isTLS13 }
            if !older.isEmpty { configuration.cipherSuiteValues = older.map { NIOTLSCipher(rawValue: $0.id) } }
        }
        if let curves = tls.curvePreferences {
            // BoringSSL lacks the NIST-curve ML-KEM hybrids; Go prefers among what both sides offer, so skipping a
            // group neither this library nor most clients have changes nothing else.
            let supported: Set<UInt16> = [0x11EC, 0x001D, 0x0017, 0x0018, 0x0019]
            let groups = curves.compactMap { GoCipherSuites.curves[$0] }.filter(supported.contains)
            if !groups.isEmpty { configuration.curves = groups.map { NIOTLSCurve(rawValue: $0) } }
        }
        if tls.verify {
            configuration.certificateVerification = .noHostnameVerification
            if let caFile = tls.caFile {
                configuration.trustRoots = .certificates(try loadCAs(caFile))
                configuration.sendCANameList = true  // as Go's server: the CertificateRequest names the CAs
            } else {
                configuration.trustRoots = .default
            }
        } else {
            configuration.certificateVerification = .none
            if let caFile = tls.caFile { _ = try loadCAs(caFile) }  // nats-server reads it (and reports it) anyway
        }
        return configuration
    }

    /// The certificate chain and key, checked as Go's tls.LoadX509KeyPair checks them.
    static func loadKeyPair(_ tls: TLSConfig) throws -> ([NIOSSLCertificate], NIOSSLPrivateKey) {
        let prefix = "error parsing X509 certificate/key pair: "
        switch (tls.certFile, tls.keyFile) {
        case (nil, nil):
            throw TLSContextError("missing 'cert_file' and 'key_file' in TLS configuration")
        case (_?, nil):
            throw TLSContextError("missing 'key_file' in TLS configuration")
        case (nil, _?):
            throw TLSContextError("missing 'cert_file' in TLS configuration")
        case (let certFile?, let keyFile?):
            let certBytes = try readFile(certFile, prefix: prefix)
            let keyBytes = try readFile(keyFile, prefix: prefix)
            guard let chain = try? NIOSSLCertificate.fromPEMBytes(certBytes), !chain.isEmpty else {
                throw TLSContextError(prefix + "tls: failed to find any PEM data in certificate input")
            }
            guard let key = try? NIOSSLPrivateKey(bytes: keyBytes, format: .pem) else {
                throw TLSContextError(prefix + "tls: failed to find any PEM data in key input")
            }
            // Go refuses a key that is not the certificate's; BoringSSL would only fail at the first handshake.
            if let leaf = try? Certificate(derEncoded: chain[0].toDERBytes()),
               let privateKey = try? Certificate.PrivateKey(pemEncoded: String(decoding: keyBytes, as: UTF8.self)),
               privateKey.publicKey != leaf.publicKey {
                throw TLSContextError(prefix + "tls: private key does not match public key")
            }
            return (chain, key)
        }
    }

    static func loadCAs(_ path: String) throws -> [NIOSSLCertificate] {
        let bytes = try readFile(path, prefix: "")
        guard let certificates = try? NIOSSLCertificate.fromPEMBytes(bytes), !certificates.isEmpty else {
            throw TLSContextError("failed to parse root ca certificate")
        }
        return certificates
    }

    /// Reads a file; an error reads as Go's `open <path>: no such file or directory`.
    static func readFile(_ path: String, prefix: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw TLSContextError(prefix + "open \(path): \(goErrorText(errno))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TLSContextError(prefix + "read \(path): \(goErrorText(errno))")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[..<n])
            if bytes.count > 16 * 1024 * 1024 { throw TLSContextError(prefix + "read \(path): file too large") }
        }
        return bytes
    }

    /// strerror as Go prints it (lower-case first letter: "no such file or directory", "permission denied").
    private static func goErrorText(_ code: Int32) -> String {
        let text = String(cString: strerror(code))
        guard let first = text.first else { return text }
        return first.lowercased() + text.dropFirst()
    }
}
