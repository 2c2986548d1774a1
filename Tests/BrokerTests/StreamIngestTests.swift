import XCTest

@testable import Broker

final class StreamIngestTests: XCTestCase {
    func testNoneWithoutTransformOrRepublish() {
        XCTAssertNil(StreamIngest(config: APIStreamConfig(name: "S", subjects: ["s"])))
    }

    func testSubjectTransform() {
        var config = APIStreamConfig(name: "S", subjects: ["in.>"])
        config.subjectTransform = SubjectTransformConfig(src: "in.*", dest: "out.{{wildcard(1)}}")
        let ingest = StreamIngest(config: config)!
        XCTAssertEqual(ingest.storedSubject(Array("in.a".utf8)), Array("out.a".utf8))
        XCTAssertEqual(ingest.storedSubject(Array("in.a.b".utf8)), Array("in.a.b".utf8))
        XCTAssertFalse(ingest.republishes)
    }

    func testRepublishHeadersAsNatsServer() {
        var config = APIStreamConfig(name: "S", subjects: ["s.>"])
        config.republish = RePublishConfig(src: "s.>", dest: "rp.>")
        let ingest = StreamIngest(config: config)!
        let out = ingest.republished(stream: "S", subject: Array("s.1".utf8), sequence: 7, timestamp: 1_500_000_000_000_000_000,
                                     lastSequence: 3, headers: Array("NATS/1.0\r\nK: v\r\n\r\n".utf8), payload: [1, 2])!
        XCTAssertEqual(out.subject, Array("rp.1".utf8))
        XCTAssertEqual(String(decoding: out.headers, as: UTF8.self),
                       "NATS/1.0\r\nK: v\r\nNats-Stream: S\r\nNats-Subject: s.1\r\nNats-Sequence: 7\r\n"
                       + "Nats-Time-Stamp: 2017-07-14T02:40:00Z\r\nNats-Last-Sequence: 3\r\n\r\n")
        XCTAssertEqual(out.payload, [1, 2])
        config.republish = RePublishConfig(src: nil, dest: "rp.>", headersOnly: true)
        let headersOnly = StreamIngest(config: config)!.republished(stream: "S", subject: Array("s.1".utf8), sequence: 1, timestamp: 1,
                                                                     lastSequence: 0, headers: [], payload: [1, 2, 3])!
        XCTAssertTrue(String(decoding: headersOnly.headers, as: UTF8.self).hasSuffix("Nats-Msg-Size: 3\r\n\r\n"))
        XCTAssertEqual(headersOnly.payload, [])
    }

    func testGoRFC3339Nano() {
        XCTAssertEqual(GoTime.rfc3339Nano(1_500_000_000_120_000_000), "2017-07-14T02:40:00.12Z")
        XCTAssertEqual(GoTime.rfc3339Nano(1_500_000_000_000_000_001), "2017-07-14T02:40:00.000000001Z")
    }

    func testValidation() {
        XCTAssertNil(StreamIngest.validate(source: "a.*", destination: "b.{{wildcard(1)}}"))
        XCTAssertNotNil(StreamIngest.validate(source: ">", destination: "literal"))
        XCTAssertNotNil(StreamIngest.validate(source: "a.*", destination: "b.{{wildcard(2)}}"))
    }
}
