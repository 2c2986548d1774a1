import Foundation
import XCTest

@testable import Broker

/// The bridge's decisions as plain values: retries and backoff (random numbers passed in), message building
/// and Pub/Sub's limits, the publish request body, and the gcp_pubsub config block.
final class BridgeTests: XCTestCase {
    let ms: Int64 = 1_000_000

    func testRetryableAndPermanentFailures() {
        let p = RetryPolicy()
        for code in [409, 429, 499, 500, 502, 503, 504] {
            guard case .retry = p.decide(.http(code: code, status: nil, message: ""), attempt: 1, random: 0) else {
                return XCTFail("\(code) must be retried")
            }
        }
        XCTAssertEqual(p.decide(.http(code: 400, status: "INVALID_ARGUMENT", message: "bad"), attempt: 1, random: 0), .reject("bad"))
        XCTAssertEqual(p.decide(.http(code: 400, status: nil, message: "bad"), attempt: 1, random: 0), .reject("bad"))
        // The status decides over the code (Google's rule): UNAVAILABLE is retried whatever the code says.
        guard case .retry = p.decide(.http(code: 400, status: "UNAVAILABLE", message: ""), attempt: 1, random: 0) else {
            return XCTFail("UNAVAILABLE must be retried")
        }
        for code in [401, 403, 404] {
            guard case .misconfigured = p.decide(.http(code: code, status: nil, message: ""), attempt: 1, random: 0) else {
                return XCTFail("\(code) is a setup problem")
            }
        }
        guard case .retry = p.decide(.timeout, attempt: 3, random: 0.5), case .retry = p.decide(.connection("refused"), attempt: 1, random: 0) else {
            return XCTFail("timeouts and connection errors are retried")
        }
    }

    func testBackoffGrowsTimesFourWithJitterUpToTheCap() {
        var p = RetryPolicy()
        XCTAssertEqual(p.delay(attempt: 1, random: 1), 100 * ms)
        XCTAssertEqual(p.delay(attempt: 2, random: 1), 400 * ms)
        XCTAssertEqual(p.delay(attempt: 3, random: 1), 1_600 * ms)
        XCTAssertEqual(p.delay(attempt: 2, random: 0), 200 * ms, "jitter: down to half")
        XCTAssertEqual(p.delay(attempt: 20, random: 1), 60_000 * ms, "capped at 60 s")
        XCTAssertEqual(p.delay(attempt: 1_000_000, random: 1), 60_000 * ms)
        p.maxDelay = 1_000 * ms
        XCTAssertEqual(p.delay(attempt: 5, random: 1), 1_000 * ms)
        for attempt in 1...12 {
            let d = p.delay(attempt: attempt, random: 0.3)
            XCTAssert(d > 0 && d <= 1_000 * ms)
        }
    }

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

    func testConfigBlocks() throws {
        var options = BrokerOptions()
        _ = try ConfigLoader.load(text: """
            gcp_pubsub {
              project: "p"
              topic: "falco-alerts"
              subjects: ["FALCO.>"]
              ordering_key: hostname
              attributes: { cluster: "prod" }
              credentials: "/var/run/key.json"
            }
            gcp_pubsub { project: "p", topic: "siem", subjects: "FALCO.Critical", max_backoff: "5s" }
            """, fileName: "b.conf", baseDirectory: NSTemporaryDirectory(), into: &options, environment: [:])
        XCTAssertEqual(options.bridges.count, 2)
        XCTAssertEqual(options.bridges[0].orderingKey, .hostname)
        XCTAssertEqual(options.bridges[0].attributes, ["cluster": "prod"])
        XCTAssertEqual(options.bridges[0].credentials, "/var/run/key.json")
        XCTAssertEqual(options.bridges[0].deadLetterSubject, "BRIDGE.DLQ.falco-alerts")
        XCTAssertEqual(options.bridges[0].durableName, "bridge_falco-alerts")
        XCTAssertEqual(options.bridges[1].subjects, ["FALCO.Critical"])
        XCTAssertEqual(options.bridges[1].maxBackoff, .seconds(5))
        var bad = BrokerOptions()
        XCTAssertThrowsError(try ConfigLoader.load(text: "gcp_pubsub { topic: t }", fileName: "b.conf",
                                                   baseDirectory: NSTemporaryDirectory(), into: &bad, environment: [:])) { error in
            XCTAssert("\(error)".contains("needs \"project\""), "\(error)")
        }
        XCTAssertThrowsError(try ConfigLoader.load(text: "gcp_pubsub { project: p, topic: t, ordering_key: zone }", fileName: "b.conf",
                                                   baseDirectory: NSTemporaryDirectory(), into: &bad, environment: [:]))
    }

    func testAckSubjectSequence() {
        XCTAssertEqual(PubSubBridge.streamSequence("$JS.ACK.FALCO.bridge.1.42.7.1700000000.3"), 42)
        XCTAssertEqual(PubSubBridge.streamSequence("$JS.ACK.dom.hash.FALCO.bridge.1.42.7.1700000000.3.tok"), 42)
        XCTAssertNil(PubSubBridge.streamSequence("_INBOX.x"))
    }
}

final class BridgeStatsTests: XCTestCase {
    func testDegradedAfterAMinuteOfFailuresAndClearedBySuccess() {
        let stats = BridgeStats(project: "p", topic: "t")
        XCTAssertFalse(stats.snapshot().degraded())
        stats.failed("HTTP 503 UNAVAILABLE")
        let snap = stats.snapshot()
        XCTAssertEqual(snap.lastError, "HTTP 503 UNAVAILABLE")
        XCTAssertFalse(snap.degraded(now: Date()))
        XCTAssertTrue(snap.degraded(now: Date().addingTimeInterval(61)))
        stats.succeeded()
        XCTAssertFalse(stats.snapshot().degraded(now: Date().addingTimeInterval(3600)))
        XCTAssertEqual(stats.snapshot().lastError, "HTTP 503 UNAVAILABLE", "the last error stays visible")
    }
}

final class FalcoAlertUTF8Tests: XCTestCase {
    func testOnlyWellFormedUTF8IsAccepted() {
        func check(_ bytes: [UInt8]) -> Bool {
            let alert = Array(#"{"priority":"Notice","rule":"r","output":""#.utf8) + bytes + Array(#""}"#.utf8)
            if case .success = FalcoAlert.validate(alert) { return true }
            return false
        }
        XCTAssertTrue(check(Array("Überwachung ✓ 🚨 узел".utf8)))
        XCTAssertFalse(check([0xC0, 0xAF]), "overlong /")
        XCTAssertFalse(check([0xE0, 0x80, 0xAF]), "overlong 3-byte")
        XCTAssertFalse(check([0xED, 0xA0, 0x80]), "encoded surrogate")
        XCTAssertFalse(check([0xF0, 0x80, 0x80, 0xAF]), "overlong 4-byte")
        XCTAssertFalse(check([0xF4, 0x90, 0x80, 0x80]), "above U+10FFFF")
        XCTAssertFalse(check([0xE2, 0x9C]), "truncated")
    }
}
