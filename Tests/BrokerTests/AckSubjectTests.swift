import XCTest

@testable import Broker

/// The ack subject's tokens, read in one pass: the same answers `split(separator: ".")` gave.
final class AckSubjectTests: XCTestCase {
    private func parse(_ subject: String) -> (stream: String, consumer: String, sequence: UInt64)? {
        var subject = subject
        return subject.withUTF8 { bytes in
            JetStream.AckSubject(bytes).map { ($0.string($0.stream), $0.string($0.consumer), $0.sequence) }
        }
    }

    func testTokens() throws {
        let ack = try XCTUnwrap(parse("$JS.ACK.ORDERS.worker.1.42.7.1764950400123456789.0"))
        XCTAssertEqual(ack.stream, "ORDERS")
        XCTAssertEqual(ack.consumer, "worker")
        XCTAssertEqual(ack.sequence, 42)
        // More tokens (a domain's form) read the same places; empty tokens are passed over as split did.
        XCTAssertEqual(parse("$JS.ACK.S.C.1.9.1.2.3.extra.tokens")?.sequence, 9)
        XCTAssertEqual(parse("$JS.ACK..S.C.1.9.1.2.3")?.consumer, "C")
        XCTAssertEqual(parse("$JS.ACK.S.C.1.9999999999999999999.1.2.0")?.sequence, 9_999_999_999_999_999_999)
    }

    func testRefused() {
        XCTAssertNil(parse("$JS.ACK.S.C.1.2.3.4"))  // eight tokens
        XCTAssertNil(parse("$JS.ACK.S.C.1.x2.3.4.5"))  // not a number
        XCTAssertNil(parse("$JS.ACK.S.C.1.12345678901234567890.3.4.5"))  // twenty digits
        XCTAssertNil(parse(""))
        XCTAssertNil(parse("........."))
    }

    func testNameComparison() throws {
        var subject = "$JS.ACK.ORDERS.worker.1.42.7.1.0"
        subject.withUTF8 { bytes in
            let ack = JetStream.AckSubject(bytes)!
            XCTAssertTrue(ack.equals(ack.stream, "ORDERS"))
            XCTAssertFalse(ack.equals(ack.stream, "ORDER"))
            XCTAssertFalse(ack.equals(ack.stream, "ORDERS2"))
            XCTAssertTrue(ack.equals(ack.consumer, "worker"))
            XCTAssertFalse(ack.equals(ack.consumer, "Worker"))
        }
    }
}
