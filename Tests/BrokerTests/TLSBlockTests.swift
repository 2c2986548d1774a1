import Foundation
import X509
import XCTest
@testable import Broker
import NATSConfig

/// The `tls { }` block and `allow_non_tls` (`TLSBlock`), with nats-server's error texts, and the server context
/// built from them (`TLSContext`).
final class TLSBlockTests: ConfigLoaderTestCase {
    var certFile = "", keyFile = "", caFile = "", otherKeyFile = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        let certs = try TestCertificates()
        let (leaf, key) = try certs.leaf(subject: try DistinguishedName { CommonName("localhost") },
                                         alternativeNames: [.dnsName("localhost")])
        certFile = try write("server.pem", TestCertificates.pem(leaf))
        keyFile = try write("server.key", TestCertificates.pem(key))
        caFile = try write("ca.pem", TestCertificates.pem(certs.ca))
        otherKeyFile = try write("other.key", TestCertificates.pem(certs.caKey))
    }

    func testFullBlock() throws {
        let (options, ignored) = try load("""
            tls {
              cert_file: "\(certFile)"
              key_file: "\(keyFile)"
              ca_file: "\(caFile)"
              verify_and_map: true
              timeout: 0.5
              handshake_first: "300ms"
              min_version: "1.3"
              cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
              curve_preferences: [X25519, CurveP256]
              pinned_certs: ["\(String(repeating: "AB", count: 32))"]
            }
            allow_non_tls: true
            """)
        XCTAssertEqual(ignored, [])
        let tls = try XCTUnwrap(options.tls)
        XCTAssertEqual(tls.certFile, certFile)
        XCTAssertEqual(tls.keyFile, keyFile)
        XCTAssertEqual(tls.caFile, caFile)
        XCTAssertTrue(tls.verify)  // verify_and_map implies verify
        XCTAssertTrue(tls.verifyAndMap)
        XCTAssertEqual(tls.timeout, 0.5)
        XCTAssertEqual(tls.effectiveTimeout, .milliseconds(500))
        XCTAssertTrue(tls.handshakeFirst)
        XCTAssertEqual(tls.handshakeFirstFallback, .milliseconds(300))
        XCTAssertEqual(tls.minVersion, .tls13)
        XCTAssertEqual(tls.cipherSuites, ["TLS_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"])
        XCTAssertEqual(tls.curvePreferences, ["X25519", "CurveP256"])
        XCTAssertEqual(tls.pinnedCerts, [String(repeating: "ab", count: 32)])
        XCTAssertTrue(options.allowNonTLS)
    }

    func testDefaultsAndHandshakeFirstForms() throws {
        let base = "cert_file: \"\(certFile)\", key_file: \"\(keyFile)\""
        let plain = try XCTUnwrap(load("tls { \(base) }").0.tls)
        XCTAssertFalse(plain.verify)
        XCTAssertEqual(plain.effectiveTimeout, .seconds(2))  // nats-server's TLS_TIMEOUT
        XCTAssertFalse(plain.handshakeFirst)
        XCTAssertNil(plain.minVersion)
        XCTAssertNil(BrokerOptions().tls)
        XCTAssertFalse(BrokerOptions().allowNonTLS)

        let expectations: [(String, Bool, Duration?)] = [
            ("true", true, nil), ("\"on\"", true, nil), ("false", false, nil), ("\"off\"", false, nil),
            ("auto", true, .milliseconds(50)), ("\"auto_fallback\"", true, .milliseconds(50)), ("\"1s\"", true, .seconds(1)),
        ]
        for (value, first, fallback) in expectations {
            let tls = try XCTUnwrap(load("tls { \(base), handshake_first: \(value) }").0.tls, value)
            XCTAssertEqual(tls.handshakeFirst, first, value)
            XCTAssertEqual(tls.handshakeFirstFallback, fallback, value)
        }
        XCTAssertTrue(try XCTUnwrap(load("tls { \(base), first: true }").0.tls).handshakeFirst)
        XCTAssertEqual(try XCTUnwrap(load("tls { \(base), timeout: \"1500ms\" }").0.tls).timeout, 1.5)
        XCTAssertEqual(try XCTUnwrap(load("tls { \(base), timeout: 3 }").0.tls).timeout, 3)
    }

    /// The texts nats-server 2.15 gives for the same files (checked with `nats-server -t`).
    func testErrorsAsNatsServerReportsThem() {
        let base = "cert_file: \"\(certFile)\", key_file: \"\(keyFile)\""
        XCTAssertEqual(loadError("tls { \(base), foo: 1 }"), #"brokerd.conf:1: error parsing tls config, unknown field "foo""#)
        XCTAssertEqual(loadError("tls { \(base), cipher_suites: [TLS_NOPE] }"), "brokerd.conf:1: unrecognized cipher TLS_NOPE")
        XCTAssertEqual(loadError("tls { \(base), cipher_suites: [] }"),
                       "brokerd.conf:1: error parsing tls config, 'cipher_suites' cannot be empty")
        XCTAssertEqual(loadError("tls { \(base), cipher_suites: [TLS_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA] }"),
                       "brokerd.conf:1: insecure cipher suites configured without 'allow_insecure_cipher_suites' option set: TLS_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA")
        XCTAssertEqual(loadError("tls { \(base), curve_preferences: [X25519, Foo] }"),
                       "brokerd.conf:1: unrecognized curve preference Foo")
        XCTAssertEqual(loadError("tls { \(base), min_version: \"1.1\" }"),
                       "brokerd.conf:1: error parsing tls config: unsupported TLS version: TLS 1.1")
        XCTAssertEqual(loadError("tls { \(base), min_version: \"1.4\" }"),
                       "brokerd.conf:1: error parsing tls config: unknown version: 1.4")
        XCTAssertEqual(loadError("tls { \(base), min_version: 1.3 }"),
                       "brokerd.conf:1: error parsing tls config: 'min_version' wrong type: 1.3")
        XCTAssertEqual(loadError("tls { \(base), handshake_first: maybe }"),
                       #"brokerd.conf:1: field "handshake_first"'s value "maybe" is invalid"#)
        XCTAssertEqual(loadError("tls { \(base), handshake_first: 3 }"),
                       #"brokerd.conf:1: field "handshake_first" should be a boolean or a string, got int64"#)
        XCTAssertEqual(loadError("tls { \(base), timeout: \"x\" }"),
                       #"brokerd.conf:1: error parsing tls config, 'timeout' time: invalid duration "x""#)
        XCTAssertEqual(loadError("tls { \(base), timeout: true }"), "brokerd.conf:1: error parsing tls config, 'timeout' wrong type")
        XCTAssertEqual(loadError("tls { \(base), pinned_certs: [\"abc\"] }"),
                       "brokerd.conf:1: error parsing tls config, 'pinned_certs' key abc does not look like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo")
        XCTAssertEqual(loadError("tls { \(base), pinned_certs: \"abc\" }"),
                       "brokerd.conf:1: error parsing tls config, expected 'pinned_certs' to be a list of hex-encoded sha256 of DER encoded SubjectPublicKeyInfo")
        XCTAssertEqual(loadError("tls { \(base), verify: \"yes\" }"),
                       "brokerd.conf:1: error parsing tls config, expected 'verify' to be a boolean")
        XCTAssertEqual(loadError("tls { key_file: \"\(keyFile)\", cert_file: 3 }"),
                       "brokerd.conf:1: error parsing tls config, expected 'cert_file' to be filename")
        XCTAssertEqual(loadError("tls {\n \(base)\n ocsp_peer: true\n}"), #"brokerd.conf:3: "ocsp_peer" in tls is not supported by brokerd"#)
        XCTAssertEqual(loadError("tls { \(base), verify_cert_and_check_known_urls: true }"),
                       "brokerd.conf:1: verify_cert_and_check_known_urls not supported in this context")
        XCTAssertEqual(loadError("tls { \(base) }\nallow_non_tls: \"yes\""),
                       #"brokerd.conf:2: expected a boolean (true/false, yes/no, on/off) for "allow_non_tls", got string "yes""#)
        XCTAssertEqual(loadError("tls: true"), #"brokerd.conf:1: error parsing tls config, expected a map for "tls", got boolean true"#)
    }

    /// What GenTLSConfig reports when it reads the files, at the block's line.
    func testFileErrorsAsNatsServerReportsThem() throws {
        let missing = tempDirectory.appendingPathComponent("nope.pem").path
        let notPEM = try write("not.pem", "hello\n")
        XCTAssertEqual(loadError("\ntls { cert_file: \"\(missing)\", key_file: \"\(keyFile)\" }"),
                       "brokerd.conf:2: error parsing X509 certificate/key pair: open \(missing): no such file or directory")
        XCTAssertEqual(loadError("tls { cert_file: \"\(certFile)\", key_file: \"\(missing)\" }"),
                       "brokerd.conf:1: error parsing X509 certificate/key pair: open \(missing): no such file or directory")
        XCTAssertEqual(loadError("tls { cert_file: \"\(certFile)\", key_file: \"\(otherKeyFile)\" }"),
                       "brokerd.conf:1: error parsing X509 certificate/key pair: tls: private key does not match public key")
        XCTAssertEqual(loadError("tls { cert_file: \"\(certFile)\", key_file: \"\(notPEM)\" }"),
                       "brokerd.conf:1: error parsing X509 certificate/key pair: tls: failed to find any PEM data in key input")
        XCTAssertEqual(loadError("tls { cert_file: \"\(notPEM)\", key_file: \"\(keyFile)\" }"),
                       "brokerd.conf:1: error parsing X509 certificate/key pair: tls: failed to find any PEM data in certificate input")
        XCTAssertEqual(loadError("tls { cert_file: \"\(certFile)\" }"), "brokerd.conf:1: missing 'key_file' in TLS configuration")
        XCTAssertEqual(loadError("tls { key_file: \"\(keyFile)\" }"), "brokerd.conf:1: missing 'cert_file' in TLS configuration")
        XCTAssertEqual(loadError("tls { cert_file: \"\(certFile)\", key_file: \"\(keyFile)\", ca_file: \"\(missing)\" }"),
                       "brokerd.conf:1: open \(missing): no such file or directory")
        XCTAssertEqual(loadError("tls { cert_file: \"\(certFile)\", key_file: \"\(keyFile)\", ca_file: \"\(notPEM)\" }"),
                       "brokerd.conf:1: failed to parse root ca certificate")
        // nats-server accepts a block without any certificate and then fails every handshake; brokerd says so at once.
        XCTAssertEqual(loadError("tls { }"), "brokerd.conf:1: missing 'cert_file' and 'key_file' in TLS configuration")
    }

    func testServerContextsForEveryMode() throws {
        var tls = TLSConfig(certFile: certFile, keyFile: keyFile)
        XCTAssertNoThrow(try TLSContextFactory.makeServerContext(tls))
        tls.verify = true
        tls.caFile = caFile
        let configuration = try TLSContextFactory.makeServerConfiguration(tls)
        XCTAssertEqual(configuration.certificateVerification, .noHostnameVerification)
        XCTAssertEqual(configuration.minimumTLSVersion, .tlsv12)
        XCTAssertNoThrow(try TLSContextFactory.makeServerContext(tls))
        tls.cipherSuites = ["TLS_AES_256_GCM_SHA384"]  // TLS 1.3 only
        XCTAssertNoThrow(try TLSContextFactory.makeServerContext(tls))
        tls.cipherSuites = ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]
        tls.curvePreferences = ["SecP384r1MLKEM1024", "CurveP384"]
        XCTAssertNoThrow(try TLSContextFactory.makeServerContext(tls))
    }
}
