import NIOCore
import XCTest

@testable import Broker

final class PublishAnswerTests: XCTestCase {
    func testPubAckJSONAsNatsServerWritesIt() {
        XCTAssertEqual(String(buffer: PubAck.stored(stream: "FALCO", sequence: 42, duplicate: false).json),
                       #"{"stream":"FALCO","seq":42}"#)
        XCTAssertEqual(String(buffer: PubAck.stored(stream: "FALCO", sequence: 42, duplicate: true).json),
                       #"{"stream":"FALCO","seq":42,"duplicate":true}"#)
        XCTAssertEqual(String(buffer: PubAck.stored(stream: "A\"B", sequence: 0, duplicate: false).json),
                       #"{"stream":"A\"B","seq":0}"#)
        XCTAssertEqual(String(buffer: PubAck.stored(stream: "S", sequence: 1_234_567_890, duplicate: false).json),
                       #"{"stream":"S","seq":1234567890}"#)
        XCTAssertEqual(String(buffer: PubAck.stored(stream: "S", sequence: .max, duplicate: false).json),
                       #"{"stream":"S","seq":18446744073709551615}"#)
        XCTAssertEqual(String(buffer: PubAck.failed(code: 503, errorCode: 10077, description: "storage \"full\"").json),
                       #"{"error":{"code":503,"err_code":10077,"description":"storage \"full\""}}"#)
        XCTAssertEqual(String(buffer: PubAck.failed(code: 400, errorCode: 10165, description: "invalid per-message TTL", stream: "A").json),
                       #"{"error":{"code":400,"err_code":10165,"description":"invalid per-message TTL"},"stream":"A","seq":0}"#)
    }

    func testOverloadedIsTheResourceLimit() {
        XCTAssertTrue(PubAck.failed(code: 503, errorCode: 10023, description: "insufficient resources").isOverloaded)
        XCTAssertFalse(PubAck.failed(code: 500, errorCode: 10077, description: "x").isOverloaded)
        XCTAssertFalse(PubAck.stored(stream: "S", sequence: 1, duplicate: false).isOverloaded)
    }

    func testACompactCopyDoesNotPinTheReadBuffer() {
        var big = ByteBuffer(repeating: 0x41, count: 64 * 1024)
        big.moveReaderIndex(forwardBy: 10)
        let slice = big.getSlice(at: big.readerIndex, length: 5)!
        let copy = ByteBuffer.compactCopy(of: slice)
        XCTAssertEqual(copy, slice)
        XCTAssertLessThan(copy.capacity, 64)
    }
}
