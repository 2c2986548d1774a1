import Foundation
import X509
import XCTest
@testable import Broker
import NATSConfig

/// `falco { }`, its `tls { }` block (HTTPS for Falco's http_output) included.
final class FalcoBlockTests: ConfigLoaderTestCase {
    var certFile = "", keyFile = "", caFile = ""

    override func setUpWithError() throws {
        try super.setUpWithError()
        let certs = try TestCertificates()
        let (leaf, key) = try certs.leaf(subject: try DistinguishedName { CommonName("localhost") },
                                         alternativeNames: [.dnsName("localhost")])
        certFile = try write("server.pem", TestCertificates.pem(leaf))
        keyFile = try write("server.key", TestCertificates.pem(key))
        caFile = try write("ca.pem", TestCertificates.pem(certs.ca))
    }

    func testPlainFalcoBlock() throws {
        let options = try load("falco { http_port: 2801, host: 127.0.0.1, max_body: 64KB, idle_timeout: 30 }").0
        XCTAssertEqual(options.falcoHTTPPort, 2801)
        XCTAssertEqual(options.falcoHTTPHost, "127.0.0.1")
        XCTAssertEqual(options.falcoMaxBody, 64 * 1024)
        XCTAssertEqual(options.falcoIdleTimeout, .seconds(30))
        XCTAssertNil(options.falcoTLS)
        XCTAssertNil(options.tls)
    }

    func testTLSBlockIsNatsServersBlock() throws {
        let options = try load("""
            falco {
              http_port: 2801
              tls {
                cert_file: "\(certFile)"
                key_file: "\(keyFile)"
                ca_file: "\(caFile)"
                verify: true
                timeout: 3
              }
            }
            """).0
        let tls = try XCTUnwrap(options.falcoTLS)
        XCTAssertEqual(tls.certFile, certFile)
        XCTAssertEqual(tls.caFile, caFile)
        XCTAssertTrue(tls.verify)
        XCTAssertEqual(tls.effectiveTimeout, .seconds(3))
        XCTAssertNil(options.tls, "the Falco endpoint's block is its own, not the client port's")
    }

    func testTLSBlockErrorsPointAtTheBlock() {
        XCTAssertEqual(loadError("falco {\n  tls { cert_file: \"\(certFile)\" }\n}"),
                       "brokerd.conf:2: missing 'key_file' in TLS configuration")
        XCTAssertEqual(loadError("falco {\n  tls { cert_file: \"\(tempDirectory.path)/none.pem\", key_file: \"\(keyFile)\" }\n}"),
                       "brokerd.conf:2: error parsing X509 certificate/key pair: open \(tempDirectory.path)/none.pem: no such file or directory")
        XCTAssertTrue(loadError("falco { tls { cert_file: \"\(certFile)\", key_file: \"\(keyFile)\", colour: blue } }")
            .contains("error parsing tls config, unknown field \"colour\""))
    }
}
