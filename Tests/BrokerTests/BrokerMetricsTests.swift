import Prometheus
import XCTest

@testable import Broker

final class BrokerMetricsTests: XCTestCase {
    /// A registry of the test's own: nothing global is bootstrapped.
    func render(_ snapshots: [BrokerMetrics.Snapshot]) -> [String: String] {
        let registry = PrometheusCollectorRegistry()
        let metrics = BrokerMetrics(factory: PrometheusMetricsFactory(registry: registry))
        for s in snapshots { metrics.record(s) }
        var values: [String: String] = [:]
        for line in registry.emitToString().split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                values["type " + parts[2]] = String(parts[3])
            } else if let space = line.firstIndex(of: " ") {
                values[String(line[..<space])] = String(line[line.index(after: space)...])
            }
        }
        return values
    }

    func testTotalsAreCountersAndLevelsAreGauges() {
        var s = BrokerMetrics.Snapshot()
        s.connections = 3
        s.totalConnections = 7
        s.inMsgs = 5
        s.slowConsumers = 1
        s.lameDuck = true
        let v = render([s])
        XCTAssertEqual(v["type brokerd_in_msgs_total"], "counter")
        XCTAssertEqual(v["brokerd_in_msgs_total"], "5")
        XCTAssertEqual(v["brokerd_connections_total"], "7")
        XCTAssertEqual(v["brokerd_slow_consumers_total"], "1")
        XCTAssertEqual(v["type brokerd_connections"], "gauge")
        XCTAssertEqual(v["brokerd_connections"].flatMap(Double.init), 3)
        XCTAssertEqual(v["brokerd_lame_duck"].flatMap(Double.init), 1)
        XCTAssertNil(v["type brokerd_falco_alerts_accepted_total"], "no Falco section without the ingest")
    }

    func testCountersFollowTheirSourceAcrossScrapes() {
        var s = BrokerMetrics.Snapshot()
        s.outMsgs = 10
        var later = s
        later.outMsgs = 25
        XCTAssertEqual(render([s, later])["brokerd_out_msgs_total"], "25")
        var restarted = later
        restarted.outMsgs = 4
        XCTAssertEqual(render([s, later, restarted])["brokerd_out_msgs_total"], "4", "a source that starts again resets")
    }

    func testFalcoAndBridgeSeriesKeepTheirLabels() {
        var s = BrokerMetrics.Snapshot()
        var falco = FalcoIngest.Snapshot()
        falco.accepted = ["http": 12]
        falco.rejected = ["http": ["unknown_priority": 2]]
        falco.inFlight = 3
        s.falco = falco
        s.bridges = [BridgeStats(project: "p", topic: "t").snapshot()]
        let v = render([s])
        XCTAssertEqual(v[#"brokerd_bridge_messages_total{topic="t",project="p"}"#], "0")
        XCTAssertEqual(v["type brokerd_bridge_lag"], "gauge")
        XCTAssertEqual(v[#"brokerd_falco_alerts_accepted_total{path="http"}"#], "12")
        XCTAssertEqual(v[#"brokerd_falco_alerts_accepted_total{path="pipe"}"#], "0")
        XCTAssertEqual(v[#"brokerd_falco_alerts_rejected_total{path="http",reason="unknown_priority"}"#], "2")
        XCTAssertEqual(v[#"brokerd_falco_alerts_rejected_total{path="sidekick",reason="too_large"}"#], "0")
        XCTAssertEqual(v["brokerd_falco_alerts_waiting_for_store"].flatMap(Double.init), 3)
    }

    func testEveryKnownMetricGetsItsHelpLineBeforeItsType() {
        let text = "# TYPE brokerd_connections gauge\nbrokerd_connections 1.0\n# TYPE something_else counter\nsomething_else 2\n"
        XCTAssertEqual(BrokerMetrics.withHelp(text),
                       "# HELP brokerd_connections Open client connections.\n# TYPE brokerd_connections gauge\nbrokerd_connections 1.0\n"
                       + "# TYPE something_else counter\nsomething_else 2\n")
    }
}
