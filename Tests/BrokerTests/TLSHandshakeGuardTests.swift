import Crypto
import Foundation
import NIOCore
import NIOEmbedded
import NIOSSL
import NIOTLS
import X509
import XCTest
@testable import Broker

/// The HTTPS listeners' guard: pinned_certs as nats-server computes them (SHA-256 of the DER
/// SubjectPublicKeyInfo, checked against openssl's), and the handshake timeout.
final class TLSHandshakeGuardTests: XCTestCase {
    func testPinIsTheSHA256OfTheSubjectPublicKeyInfo() throws {
        let certs = try TestCertificates()
        let (leaf, _) = try certs.leaf(subject: try DistinguishedName { CommonName("falco") })
        let pem = try TestCertificates.pem(leaf)
        let certificate = try NIOSSLCertificate(bytes: Array(pem.utf8), format: .pem)
        let expected = try opensslPin(pem)
        XCTAssertTrue(TLSHandshakeGuard.matches(certificate, pins: [expected]))
        XCTAssertFalse(TLSHandshakeGuard.matches(certificate, pins: [String(repeating: "0", count: 64)]))
        let (other, _) = try certs.leaf(subject: try DistinguishedName { CommonName("other") })
        XCTAssertFalse(TLSHandshakeGuard.matches(try NIOSSLCertificate(bytes: Array(TestCertificates.pem(other).utf8), format: .pem),
                                                 pins: [expected]))
    }

    func testClosesAConnectionWhoseHandshakeDoesNotComplete() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        var tls = TLSConfig()
        tls.timeout = 0.5
        try channel.pipeline.syncOperations.addHandler(TLSHandshakeGuard(tls: tls, logger: .init(label: "test")))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        loop.advanceTime(by: .milliseconds(499))
        XCTAssertTrue(channel.isActive)
        loop.advanceTime(by: .milliseconds(1))
        XCTAssertFalse(channel.isActive)
    }

    func testLeavesThePipelineOnceTheHandshakeCompleted() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandler(TLSHandshakeGuard(tls: TLSConfig(), logger: .init(label: "test")))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: nil))
        loop.run()
        XCTAssertThrowsError(try channel.pipeline.syncOperations.handler(type: TLSHandshakeGuard.self))
        loop.advanceTime(by: .seconds(5))
        XCTAssertTrue(channel.isActive, "no timeout after the handshake")
        _ = try channel.finish()
    }

    /// `openssl x509 -pubkey | openssl pkey -pubin -outform DER | sha256`, as nats-server's docs compute a pin.
    private func opensslPin(_ pem: String) throws -> String {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else { throw XCTSkip("openssl not found") }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("pin-\(UUID().uuidString).pem")
        try pem.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "/usr/bin/openssl x509 -in '\(file.path)' -pubkey -noout | /usr/bin/openssl pkey -pubin -outform DER"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let der = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        return SHA256.hash(data: der).map { String(format: "%02x", $0) }.joined()
    }
}
