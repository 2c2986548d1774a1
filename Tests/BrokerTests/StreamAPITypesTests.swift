import XCTest

@testable import Broker

final class StreamAPITypesTests: XCTestCase {
    private func decode(_ json: String) throws -> APIStreamConfig {
        try JSONDecoder().decode(APIStreamConfig.self, from: Data(json.utf8))
    }

    private func object(_ config: APIStreamConfig) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(JetStreamAPIReply.encoded(config))) as? [String: Any])
    }

    func testDefaultsAreNatsServers() throws {
        let echoed = try object(try decode(#"{"name":"A","max_msgs":null,"duplicate_window":0}"#))
        let expected: [String: Any] = [
            "name": "A", "subjects": [String](), "retention": "limits", "max_consumers": -1, "max_msgs": -1, "max_bytes": -1,
            "max_age": 0, "max_msgs_per_subject": -1, "max_msg_size": -1, "discard": "old", "storage": "file", "num_replicas": 1,
            "duplicate_window": 120_000_000_000, "allow_direct": false, "mirror_direct": false, "sealed": false,
            "deny_delete": false, "deny_purge": false, "allow_rollup_hdrs": false,
        ]
        XCTAssertEqual(NSDictionary(dictionary: echoed), NSDictionary(dictionary: expected))
    }

    func testWhatTheClientSentIsEchoed() throws {
        let json = #"{"name":"A","description":"d","subjects":["a"],"retention":"workqueue","discard":"new","storage":"memory","#
            + #""max_age":1,"num_replicas":3,"no_ack":true,"compression":"s2","first_seq":5,"metadata":{"k":"v"},"#
            + #""sources":[{"name":"B","opt_start_seq":2}],"republish":{"src":">","dest":"x.>"},"discard_new_per_subject":true}"#
        let config = try decode(json)
        XCTAssertEqual(config.retention, .workqueue)
        XCTAssertEqual(config.storage, .memory)
        let echoed = try object(config)
        let sent = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        for (key, value) in sent {
            XCTAssertEqual(echoed[key].map { NSArray(array: [$0]) }, NSArray(array: [value]), key)
        }
        XCTAssertEqual(try decode(String(decoding: JetStreamAPIReply.encoded(config), as: UTF8.self)), config)
    }

    func testTheStreamEnforcesTheLimits() throws {
        let config = try decode(#"{"name":"A","subjects":["a.>"],"max_msgs":3,"max_bytes":4,"max_age":5,"max_msg_size":6,"#
            + #""max_msgs_per_subject":7,"discard":"new","storage":"memory","duplicate_window":8,"retention":"interest"}"#).streamConfig
        var expected = StreamConfig(name: "A", subjects: ["a.>"])
        expected.maxMsgs = 3
        expected.maxBytes = 4
        expected.maxAge = 5
        expected.maxMsgSize = 6
        expected.maxMsgsPerSubject = 7
        expected.discard = .new
        expected.storage = .memory
        expected.duplicateWindow = 8
        expected.retention = .interest
        XCTAssertEqual(config, expected)
    }

    func testStreamInfoKeys() throws {
        let info = StreamInfo(config: APIStreamConfig(name: "A", subjects: ["a"]), created: APITime(nanoseconds: 0),
                              state: StreamState(messages: 1, bytes: 2, firstSeq: 3, firstTime: .zero, lastSeq: 4, lastTime: .zero, consumerCount: 5),
                              didCreate: nil)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(JetStreamAPIReply.encoded(info))) as? [String: Any])
        XCTAssertEqual(Set(object.keys), ["config", "created", "state"])
        XCTAssertEqual(Set((object["state"] as? [String: Any] ?? [:]).keys),
                       ["messages", "bytes", "first_seq", "first_ts", "last_seq", "last_ts", "consumer_count"])
        XCTAssertEqual(object["created"] as? String, "1970-01-01T00:00:00.000000000Z")
    }
}
