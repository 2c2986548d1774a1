import XCTest

@testable import Broker

final class ConsumerAPITypesTests: XCTestCase {
    private func decode(_ json: String) throws -> APIConsumerConfig {
        try JSONDecoder().decode(APIConsumerConfig.self, from: Data(json.utf8))
    }

    func testDefaultsAndMachineConfiguration() throws {
        let config = try decode(#"{"durable_name":"D","backoff":[1,2],"max_deliver":4}"#)
        XCTAssertEqual(config.deliverPolicy, .all)
        XCTAssertEqual(config.ackPolicy, .explicit)
        XCTAssertEqual(config.replayPolicy, "instant")
        XCTAssertEqual(config.numReplicas, 0)
        var machine = ConsumerStateMachine.Configuration()
        machine.backoff = [1, 2]
        machine.maxDeliver = 4
        XCTAssertEqual(config.machineConfiguration, machine)
        let echoed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(JetStreamAPIReply.encoded(config))) as? [String: Any])
        XCTAssertEqual(Set(echoed.keys), ["durable_name", "backoff", "max_deliver", "deliver_policy", "ack_policy", "ack_wait",
                                          "replay_policy", "max_ack_pending", "num_replicas"])
    }

    func testAllDeliverPoliciesDecode() throws {
        for policy in ["all", "last", "new", "by_start_sequence", "by_start_time", "last_per_subject"] {
            XCTAssertEqual(try decode(#"{"deliver_policy":"\#(policy)"}"#).deliverPolicy.rawValue, policy)
        }
        XCTAssertThrowsError(try decode(#"{"deliver_policy":"someday"}"#))
    }

    func testIdentityIgnoresWhatARebindMayChange() throws {
        let a = try decode(#"{"durable_name":"D","deliver_subject":"in.1","description":"x","name":"D"}"#)
        let b = try decode(#"{"durable_name":"D","deliver_subject":"in.2","metadata":{"k":"v"}}"#)
        XCTAssertEqual(a.identity, b.identity)
        XCTAssertNotEqual(a.identity, try decode(#"{"durable_name":"D","ack_wait":1}"#).identity)
    }

    func testPullRequestBodies() {
        XCTAssertEqual(PullNextRequest(payload: Array(#"{"batch":10,"expires":5000,"no_wait":true}"#.utf8)),
                       PullNextRequest(batch: 10, expires: 5000, noWait: true))
        XCTAssertEqual(PullNextRequest(payload: Array(#"{"batch":0,"expires":0}"#.utf8)), PullNextRequest())
        XCTAssertEqual(PullNextRequest(payload: Array(" 7 ".utf8)), PullNextRequest(batch: 7))
        XCTAssertEqual(PullNextRequest(payload: []), PullNextRequest())
        XCTAssertEqual(PullNextRequest(payload: Array("junk".utf8)), PullNextRequest())
    }
}
