import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import Prometheus
import ServiceLifecycle
import XCTest

@testable import Broker

/// A broker on a free loopback port, for the HTTP endpoints' tests.
func startTestBroker() async throws -> BrokerServer {
    var options = BrokerOptions()
    options.host = "127.0.0.1"
    options.port = 0
    let broker = BrokerServer(options: options, logger: Logger(label: "test"))
    try await broker.start()
    return broker
}

final class MonitorServerTests: XCTestCase {
    func get(_ port: Int, _ path: String, method: HTTPMethod = .GET) async throws -> (Int, String, String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), response.headers.first(name: "content-type") ?? "", String(buffer: body))
    }

    func testEndpointsAnswerAsBeforeAndMetricsUseTheGivenRegistry() async throws {
        let broker = try await startTestBroker()
        let registry = PrometheusCollectorRegistry()
        let monitor = try MonitorServer(broker: broker, metrics: PrometheusMetricsFactory(registry: registry), logger: Logger(label: "test"))
        try await monitor.start(host: "127.0.0.1", port: 0)
        let port = monitor.boundPort
        XCTAssertGreaterThan(port, 0)

        let (status, type, body) = try await get(port, "/healthz")
        XCTAssertEqual(status, 200)
        XCTAssertEqual(type, "application/json")
        XCTAssertEqual(body, #"{"status":"ok"}"#)

        let metrics = try await get(port, "/metrics")
        XCTAssertEqual(metrics.1, "text/plain; version=0.0.4; charset=utf-8")
        XCTAssertTrue(metrics.2.contains("# TYPE brokerd_in_msgs_total counter"), metrics.2)
        XCTAssertTrue(metrics.2.contains("\nbrokerd_connections "), metrics.2)
        XCTAssertTrue(registry.emitToString().contains("brokerd_slow_consumers_total 0"), "the registry given is the one served")
        XCTAssertTrue(registry.emitToString().contains(#"brokerd_monitor_request_duration_seconds_count{path="/metrics"}"#))

        let varz = try await get(port, "/varz?x=1")
        let json = try JSONSerialization.jsonObject(with: Data(varz.2.utf8)) as? [String: Any]
        XCTAssertEqual(json?["http_port"] as? Int, port)
        XCTAssertEqual(json?["in_msgs"] as? Int, 0)

        let answer1 = try await get(port, "/nope")
        XCTAssertEqual(answer1.0, 404)
        let answer2 = try await get(port, "/nope")
        XCTAssertEqual(answer2.2, #"{"error":"not found"}"#)
        let post = try await get(port, "/varz", method: .POST)
        XCTAssertEqual(post.0, 405)
        XCTAssertEqual(post.2, #"{"error":"method not allowed"}"#)
        let head = try await get(port, "/healthz", method: .HEAD)
        XCTAssertEqual(head.0, 200)
        XCTAssertEqual(head.2, "")

        await monitor.stop()
        await broker.shutdown()
    }

    func testRunsAsAServiceUntilGracefulShutdown() async throws {
        let broker = try await startTestBroker()
        let monitor = try MonitorServer(broker: broker, port: 0, metrics: PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()),
                                    logger: Logger(label: "test"))
        let group = ServiceGroup(configuration: .init(services: [monitor], gracefulShutdownSignals: [], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        var waited = 0
        while monitor.boundPort == 0 && waited < 500 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        let answer3 = try await get(monitor.boundPort, "/healthz")
        XCTAssertEqual(answer3.0, 200)
        await group.triggerGracefulShutdown()
        try await running.value
        await broker.shutdown()
    }

    func testQueriesSplitLikeBefore() {
        XCTAssertEqual(MonitorServer.split("/connz").0, "/connz")
        let (path, query) = MonitorServer.split("/connz?offset=2&subs&=x&limit=")
        XCTAssertEqual(path, "/connz")
        XCTAssertEqual(query, ["offset": "2", "subs": "", "limit": ""])
    }
}
