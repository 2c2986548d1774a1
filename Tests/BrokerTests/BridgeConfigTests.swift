import Foundation
import XCTest

@testable import Broker

/// The gcp_pubsub config block (ConfigLoader) and the names BridgeConfig derives from it.
final class BridgeConfigTests: XCTestCase {
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
}
