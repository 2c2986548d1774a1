import XCTest

@testable import Broker

final class JetStreamAPIReplyTests: XCTestCase {
    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    func testTypedResponseAndErrors() {
        XCTAssertEqual(text(JetStreamAPIReply.encode(StreamDeleteResponse())),
                       #"{"success":true,"type":"io.nats.jetstream.api.v1.stream_delete_response"}"#)
        let failed: Result<StreamPurgeResponse, JetStreamAPIError> = .failure(.purgeFailed(StoreError.io("disk/full \"x\"")))
        XCTAssertEqual(text(JetStreamAPIReply.encode(failed)),
                       #"{"error":{"code":500,"description":"purge failed: io(\"disk/full \\\"x\\\"\")","err_code":10063},"type":"io.nats.jetstream.api.v1.stream_purge_response"}"#)
    }

    func testRequestDecoding() throws {
        XCTAssertEqual(try JetStreamAPIReply.decode(StreamMsgGetRequest.self, from: []).get().seq, nil)
        XCTAssertEqual(try JetStreamAPIReply.decode(StreamMsgGetRequest.self, from: Array(" \r\n".utf8)).get().seq, nil)
        XCTAssertEqual(try JetStreamAPIReply.decode(StreamMsgGetRequest.self, from: Array(#"{"seq":4}"#.utf8)).get().seq, 4)
        guard case .failure(let error) = JetStreamAPIReply.decode(StreamMsgGetRequest.self, from: Array("{".utf8)) else {
            return XCTFail("decoded a broken body")
        }
        XCTAssertEqual(error.errCode, 10025)
        XCTAssertEqual(error.code, 400)
    }

    func testTimes() throws {
        XCTAssertEqual(text(JetStreamAPIReply.encoded([APITime(nanoseconds: 1_767_225_600_123_456_789), .zero])),
                       #"["2026-01-01T00:00:00.123456789Z","0001-01-01T00:00:00Z"]"#)
        XCTAssertEqual(APITime.parse("2026-01-01T00:00:00.123456789Z"), 1_767_225_600_123_456_789)
        XCTAssertEqual(APITime.parse("2026-01-01T00:00:00.5Z"), 1_767_225_600_500_000_000)
        XCTAssertEqual(APITime.parse("2026-01-01T00:00:00Z"), 1_767_225_600_000_000_000)
        XCTAssertNil(APITime.parse("yesterday"))
        XCTAssertEqual(APITime.parse("2026-01-01T01:30:00+01:30"), 1_767_225_600_000_000_000, "an offset is applied")
        XCTAssertNil(APITime.parse("2026-01-01T00:00:00"), "a time without a zone is refused")
        let decoded = try JSONDecoder().decode([APITime].self, from: Data(#"["2026-01-01T00:00:00.000000001Z","0001-01-01T00:00:00Z"]"#.utf8))
        XCTAssertEqual(decoded, [APITime(nanoseconds: 1_767_225_600_000_000_001), .zero])
    }
}
