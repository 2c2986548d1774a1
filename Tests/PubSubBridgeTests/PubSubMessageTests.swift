import Foundation
import XCTest

@testable import PubSubBridge

/// Message building, Pub/Sub's limits and the publish request body.
final class PubSubMessageTests: XCTestCase {
    func testAttributesFromFalcoHeadersStaticAttributesAndOrderingKey() {
        let m = PubSubMessage.make(
            subject: "FALCO.Critical",
            headers: [("Falco-Rule", "Terminal shell in container"), ("Falco-Priority", "Critical"),
                      ("Falco-Hostname", "node-1"), ("Falco-Source", "syscall"), ("Nats-Msg-Id", "sha256:abc"),
                      ("X-Team", "sec")],
            payload: Array(#"{"priority":"Critical"}"#.utf8), orderingKey: .hostname, staticAttributes: ["cluster": "prod"])
        XCTAssertEqual(m.attributes, [
            "nats_subject": "FALCO.Critical", "falco_rule": "Terminal shell in container", "falco_priority": "Critical",
            "falco_hostname": "node-1", "falco_source": "syscall", "nats_msg_id": "sha256:abc", "x-team": "sec",
            "cluster": "prod",
        ])
        XCTAssertEqual(m.orderingKey, "node-1")
        XCTAssertNil(m.limitViolation)
    }

    /// Header names match in any case; publish expectations never become attributes; a header named like an
    /// attribute the bridge sets is overridden by it; the JSON body escapes what needs it.
    func testHeaderNamesInAnyCaseAndEscapedJSON() throws {
        let m = PubSubMessage.make(
            subject: "FALCO.Error",
            headers: [("FALCO-PRIORITY", "Error"), ("falco-rule", "R \"quoted\"\n"), ("Nats-Expected-Stream", "S"),
                      ("NATS-EXPECTED-LAST-SEQUENCE", "3"), ("Nats-Msg-ID", "id-1"), ("falco_priority", "spoofed"),
                      ("Falco-Hostnames", "not the hostname")],
            payload: Array("{}".utf8), orderingKey: .rule, staticAttributes: [:])
        XCTAssertEqual(m.attributes, [
            "nats_subject": "FALCO.Error", "falco_priority": "Error", "falco_rule": "R \"quoted\"\n", "nats_msg_id": "id-1",
            "falco_uuid": "id-1", "falco-hostnames": "not the hostname",
        ])
        XCTAssertEqual(m.orderingKey, "R \"quoted\"\n")
        let body = PubSubMessage.publishBody([m])
        let decoded = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        let message = try XCTUnwrap((decoded["messages"] as? [[String: Any]])?.first)
        XCTAssertEqual(message["attributes"] as? [String: String], m.attributes)
        XCTAssertEqual(message["orderingKey"] as? String, "R \"quoted\"\n")
        XCTAssertEqual(message["data"] as? String, Data("{}".utf8).base64EncodedString())
    }

    func testAttributesFromTheAlertWhenThereAreNoHeaders() {
        let alert = #"{"priority":"warning","rule":"R","hostname":"h","source":"k8s_audit","uuid":"0b7e-1"}"#
        let m = PubSubMessage.make(subject: "FALCO.Warning", headers: [], payload: Array(alert.utf8),
                                   orderingKey: .rule, staticAttributes: [:])
        XCTAssertEqual(m.attributes["falco_priority"], "Warning")
        XCTAssertEqual(m.attributes["falco_uuid"], "0b7e-1")
        XCTAssertEqual(m.attributes["nats_msg_id"], "0b7e-1")
        XCTAssertEqual(m.orderingKey, "R")
    }

    func testLimits() {
        var m = PubSubMessage(data: [1, 2, 3], attributes: [:], orderingKey: nil)
        XCTAssertNil(m.limitViolation)
        m.attributes = Dictionary(uniqueKeysWithValues: (0..<101).map { ("k\($0)", "v") })
        XCTAssertEqual(m.limitViolation, "too many attributes: 101 (limit 100)")
        m.attributes = [String(repeating: "k", count: 257): "v"]
        XCTAssertNotNil(m.limitViolation)
        m.attributes = ["k": String(repeating: "v", count: 1025)]
        XCTAssertEqual(m.limitViolation, "attribute k over 1024 bytes")
        m.attributes = [:]
        m.orderingKey = String(repeating: "o", count: 1025)
        XCTAssertEqual(m.limitViolation, "ordering key over 1024 bytes")
        m = PubSubMessage(data: [UInt8](repeating: 0, count: 10_000_001), attributes: [:], orderingKey: nil)
        XCTAssertEqual(m.limitViolation, "message of 10000001 bytes over the 10000000-byte limit")
    }

    func testPublishBodyIsGooglesJSON() throws {
        let messages = [
            PubSubMessage(data: Array("héllo \"x\"\n".utf8), attributes: ["a": "1\n\"", "b": "ü"], orderingKey: "k"),
            PubSubMessage(data: [0xFF, 0x00, 0x10, 0x20], attributes: [:], orderingKey: nil),
        ]
        let body = PubSubMessage.publishBody(messages)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        let list = try XCTUnwrap(object["messages"] as? [[String: Any]])
        XCTAssertEqual(list.count, 2)
        XCTAssertEqual(Data(base64Encoded: list[0]["data"] as! String), Data("héllo \"x\"\n".utf8))
        XCTAssertEqual(list[0]["attributes"] as? [String: String], ["a": "1\n\"", "b": "ü"])
        XCTAssertEqual(list[0]["orderingKey"] as? String, "k")
        XCTAssertEqual(Data(base64Encoded: list[1]["data"] as! String), Data([0xFF, 0x00, 0x10, 0x20]))
        XCTAssertNil(list[1]["attributes"])
        for n in 0..<7 {
            let bytes = (0..<n).map { UInt8($0 * 40) }
            XCTAssertEqual(Base64.encode(bytes), Data(bytes).base64EncodedString())
        }
    }
}
