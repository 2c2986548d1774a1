import ClientLib
import Foundation
import NIOCore
import XCTest

/// ClientLib's TLS against real servers over 127.0.0.1, with certificates made by openssl at test time:
/// `tls://` URLs, CA files, host name checks, client certificates (mTLS), TLS after INFO and handshake first.
/// Each case runs against nats-server and brokerd from the same `tls {}` block.
final class ClientTLSTests: XCTestCase {
    private var certs: TestCertificates!
    /// The servers that speak TLS on the client port.
    static let kinds = ServerProcess.Kind.allCases

    override func setUpWithError() throws {
        certs = try TestCertificates.make()
    }

    override func tearDown() {
        certs?.remove()
    }

    /// Runs `body` against each server started with this config file; a missing binary skips that kind.
    private func forEachServer(config: String, _ body: (ServerProcess) async throws -> Void) async throws {
        var ran = 0
        for kind in Self.kinds {
            let server: ServerProcess
            do {
                server = try ServerProcess.start(kind, args: ["-c", config])
            } catch is XCTSkip {
                continue
            }
            defer { server.stop() }
            do {
                try await body(server)
            } catch {
                XCTFail("[\(kind.rawValue)] \(error)")
            }
            ran += 1
        }
        if ran == 0 { throw XCTSkip("no server binary available") }
    }

    private func options(_ url: String, _ configure: (inout NATSOptions) -> Void = { _ in }) -> NATSOptions {
        var options = NATSOptions(servers: [url])
        options.allowReconnect = false
        configure(&options)
        return options
    }

    /// A message goes through the connection and back (the TLS session carries real traffic).
    private func roundTrip(_ nc: NATSClient, _ name: String) async throws {
        let sub = try await nc.subscribe("tls.check")
        try await nc.flush()
        try await nc.publish("tls.check", "over tls")
        try await nc.flush()
        var iterator = sub.makeAsyncIterator()
        let message = await iterator.next()
        XCTAssertEqual(message?.string, "over tls", name)
    }

    /// The connect fails; returns the error's text.
    private func connectFails(_ options: NATSOptions, _ name: String) async -> String {
        do {
            let nc = try await NATSClient.connect(options)
            await nc.close()
            XCTFail("[\(name)] connected, expected a failure")
            return ""
        } catch {
            return "\(error)"
        }
    }

    func testTLSURLWithCAFile() async throws {
        try await forEachServer(config: try certs.config()) { server in
            let nc = try await NATSClient.connect(options("tls://127.0.0.1:\(server.port)") { $0.tls.caFile = certs.caCert })
            XCTAssertEqual(nc.serverInfo?.tlsRequired, true, server.kind.rawValue)
            try await roundTrip(nc, server.kind.rawValue)
            await nc.close()
        }
    }

    func testCAFileAloneTurnsTLSOnAndHostNameIsVerified() async throws {
        try await forEachServer(config: try certs.config()) { server in
            // nats:// with a CA file: TLS (as nats.go's RootCAs); "localhost" is in the certificate's names.
            let nc = try await NATSClient.connect(options("nats://localhost:\(server.port)") { $0.tls.caFile = certs.caCert })
            try await roundTrip(nc, server.kind.rawValue)
            await nc.close()
        }
        // A certificate for broker.example.com only (no IP address in it).
        try await forEachServer(config: try certs.config(server: "named-server")) { server in
            let nc = try await NATSClient.connect(options("tls://127.0.0.1:\(server.port)") {
                $0.tls.caFile = certs.caCert
                $0.tls.serverName = "broker.example.com"
            })
            try await roundTrip(nc, server.kind.rawValue)
            await nc.close()
            // The URL's host is checked: neither "localhost" nor 127.0.0.1 is in the certificate.
            for url in ["tls://localhost:\(server.port)", "tls://127.0.0.1:\(server.port)"] {
                let text = await connectFails(options(url) { $0.tls.caFile = certs.caCert }, server.kind.rawValue)
                XCTAssertTrue(text.contains("TLS handshake failed") && text.contains("ailedToValidateHostname"),
                              "[\(server.kind.rawValue)] \(url): \(text)")
            }
        }
    }

    func testUntrustedServerCertificateIsRefused() async throws {
        try await forEachServer(config: try certs.config()) { server in
            // Another CA: the server's certificate does not chain to it.
            let text = await connectFails(options("tls://127.0.0.1:\(server.port)") { $0.tls.caFile = certs.otherCA },
                                          server.kind.rawValue)
            XCTAssertTrue(text.contains("TLS handshake failed"), "[\(server.kind.rawValue)] \(text)")
            // No TLS options at all: the server's tls_required starts TLS anyway, with the system's roots,
            // which do not know the test CA.
            let plain = await connectFails(options("nats://127.0.0.1:\(server.port)"), server.kind.rawValue)
            XCTAssertTrue(plain.contains("TLS handshake failed"), "[\(server.kind.rawValue)] \(plain)")
        }
    }

    func testClientCertificateRequiredByVerify() async throws {
        try await forEachServer(config: try certs.config(verify: true)) { server in
            let url = "tls://127.0.0.1:\(server.port)"
            let nc = try await NATSClient.connect(options(url) {
                $0.tls.caFile = certs.caCert
                $0.tls.certFile = certs.clientCert
                $0.tls.keyFile = certs.clientKey
            })
            try await roundTrip(nc, server.kind.rawValue)
            await nc.close()
            // Without a client certificate the server ends the connection (during or right after the handshake).
            _ = await connectFails(options(url) { $0.tls.caFile = certs.caCert }, server.kind.rawValue)
        }
    }

    func testHandshakeFirst() async throws {
        try await forEachServer(config: try certs.config(handshakeFirst: true)) { server in
            let url = "tls://127.0.0.1:\(server.port)"
            let nc = try await NATSClient.connect(options(url) {
                $0.tls.caFile = certs.caCert
                $0.tls.handshakeFirst = true
            })
            XCTAssertEqual(nc.serverInfo?.tlsRequired, true)
            try await roundTrip(nc, server.kind.rawValue)
            await nc.close()
            // The default order (INFO first) gets no INFO from a handshake_first server.
            _ = await connectFails(options(url) {
                $0.tls.caFile = certs.caCert
                $0.connectTimeout = .milliseconds(500)
            }, server.kind.rawValue)
        }
    }

    func testPinnedServerCertificate() async throws {
        try await forEachServer(config: try certs.config()) { server in
            let url = "tls://127.0.0.1:\(server.port)"
            // The server's own certificate, without trust roots or a host name (a client in the server's process).
            let nc = try await NATSClient.connect(options(url) {
                $0.tls.pinnedServerCertificateFile = certs.serverCert
                $0.tls.serverName = "not-checked.example"
            })
            try await roundTrip(nc, server.kind.rawValue)
            await nc.close()
            let text = await connectFails(options(url) { $0.tls.pinnedServerCertificateFile = certs.otherServerCert },
                                          server.kind.rawValue)
            XCTAssertTrue(text.contains("TLS handshake failed"), "[\(server.kind.rawValue)] \(text)")
        }
    }

    func testSecureConnectionNotAvailableFromAPlainServer() async throws {
        for kind in Self.kinds {
            let server: ServerProcess
            do { server = try ServerProcess.start(kind) } catch is XCTSkip { continue }
            defer { server.stop() }
            do {
                let nc = try await NATSClient.connect(options("tls://127.0.0.1:\(server.port)") { $0.tls.caFile = certs.caCert })
                await nc.close()
                XCTFail("[\(kind.rawValue)] connected without TLS")
            } catch let error as NATSError {
                XCTAssertTrue("\(error)".contains("secureConnectionNotAvailable"), "[\(kind.rawValue)] \(error)")
            }
        }
    }

    func testAllowNonTLSServerTakesBoth() async throws {
        try await forEachServer(config: try certs.config(allowNonTLS: true)) { server in
            let plain = try await NATSClient.connect(options("nats://127.0.0.1:\(server.port)"))
            XCTAssertEqual(plain.serverInfo?.tlsAvailable, true, server.kind.rawValue)
            try await roundTrip(plain, server.kind.rawValue)
            await plain.close()
            let secure = try await NATSClient.connect(options("tls://127.0.0.1:\(server.port)") { $0.tls.caFile = certs.caCert })
            try await roundTrip(secure, server.kind.rawValue)
            await secure.close()
        }
    }

    func testReconnectsOverTLSAndKeepsSubscriptions() async throws {
        try await forEachServer(config: try certs.config(verify: true)) { server in
            let nc = try await NATSClient.connect(options("tls://127.0.0.1:\(server.port)") {
                $0.allowReconnect = true
                $0.reconnectWait = .milliseconds(50)
                $0.tls.caFile = certs.caCert
                $0.tls.certFile = certs.clientCert
                $0.tls.keyFile = certs.clientKey
            })
            let sub = try await nc.subscribe("tls.after")
            try await nc.flush()
            server.kill()
            try server.restart()
            var events = nc.events.makeAsyncIterator()
            while let event = await events.next() {
                if case .reconnected = event { break }
            }
            try await nc.flush()
            try await nc.publish("tls.after", "again")
            var messages = sub.makeAsyncIterator()
            let message = await messages.next()
            XCTAssertEqual(message?.string, "again", server.kind.rawValue)
            await nc.close()
        }
    }

    func testUnusableTLSFilesFailAtConnect() async throws {
        // No server needed: the files are read before any connection.
        for configure in [
            { (o: inout NATSOptions) in o.tls.caFile = "/nonexistent/ca.pem" },
            { (o: inout NATSOptions) in o.tls.certFile = self.certs.clientCert },  // a certificate without its key
            { (o: inout NATSOptions) in o.tls.caFile = self.certs.path("client.ext") },  // not PEM
        ] {
            do {
                _ = try await NATSClient.connect(options("tls://127.0.0.1:1", configure))
                XCTFail("connected")
            } catch let error as NATSError {
                guard case .tlsConfiguration = error else { return XCTFail("\(error)") }
            }
        }
    }
}
