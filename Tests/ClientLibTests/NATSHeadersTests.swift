import NIOCore
import XCTest

@testable import ClientLib

final class NATSHeadersTests: XCTestCase {
    func testEncodeParseRoundTrip() {
        var headers = NATSHeaders([("Falco-Rule", "Terminal shell"), ("X", "1")])
        headers.append("X", "2")
        let parsed = NATSHeaders.parse(headers.encoded())
        XCTAssertEqual(parsed, headers)
        XCTAssertEqual(parsed?["falco-rule"], "Terminal shell")
        XCTAssertEqual(parsed?.values("x"), ["1", "2"])
    }

    func testStatusLine() {
        let h = NATSHeaders.parse(ByteBuffer(string: "NATS/1.0 503\r\n\r\n"))
        XCTAssertEqual(h?.status, 503)
        let d = NATSHeaders.parse(ByteBuffer(string: "NATS/1.0 408 Request Timeout\r\nX: y\r\n\r\n"))
        XCTAssertEqual(d?.status, 408)
        XCTAssertEqual(d?.statusDescription, "Request Timeout")
        XCTAssertEqual(d?["x"], "y")
        XCTAssertNil(NATSHeaders.parse(ByteBuffer(string: "HTTP/1.1 200\r\n\r\n")))
    }

    func testServerAddresses() throws {
        let plain = try ServerAddress("nats://10.0.0.1:4223")
        XCTAssertEqual(plain.host, "10.0.0.1")
        XCTAssertEqual(plain.port, 4223)
        let bare = try ServerAddress("localhost")
        XCTAssertEqual(bare.port, 4222)
        let userPass = try ServerAddress("nats://falco:s3cret@127.0.0.1:4222")
        XCTAssertEqual(userPass.user, "falco")
        XCTAssertEqual(userPass.password, "s3cret")
        let token = try ServerAddress("nats://tok@127.0.0.1")
        XCTAssertEqual(token.token, "tok")
        XCTAssertThrowsError(try ServerAddress("nats://"))
        XCTAssertFalse(plain.secure)
        XCTAssertTrue(plain.hostIsIPAddress)
        let tls = try ServerAddress("tls://falco:pw@broker.example.com:4443")
        XCTAssertTrue(tls.secure)
        XCTAssertEqual(tls.host, "broker.example.com")
        XCTAssertEqual(tls.user, "falco")
        XCTAssertFalse(tls.hostIsIPAddress)
        XCTAssertTrue(try ServerAddress("TLS://localhost").secure)
        XCTAssertThrowsError(try ServerAddress("http://127.0.0.1:4222"))
    }
}
