import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import XCTest

@testable import Broker

final class FalcoHTTPServerTests: XCTestCase {
    static let alert = #"{"output":"x","priority":"Critical","rule":"Terminal shell in container","source":"syscall","hostname":"h"}"#

    func send(_ port: Int, _ path: String = "/", method: HTTPMethod = .POST, body: String? = nil,
              type: String = "application/json") async throws -> (Int, HTTPHeaders, String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        request.headers.add(name: "Content-Type", value: type)
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let data = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), response.headers, String(buffer: data))
    }

    func testAlertsAreAcceptedAndEveryErrorKeepsItsAnswer() async throws {
        let broker = try await startTestBroker()
        let falco = try XCTUnwrap(broker.falcoIngest)
        let server = try FalcoHTTPServer(broker: broker, falco: falco, maxBody: 1024, logger: Logger(label: "test"))
        try await server.start(host: "127.0.0.1", port: 0)
        let port = server.boundPort

        let ok = try await send(port, body: Self.alert)
        XCTAssertEqual(ok.0, 200)
        XCTAssertEqual(ok.1.first(name: "content-type"), "application/json")
        XCTAssertEqual(ok.2, "{\"accepted\":1}\n")
        let batch = try await send(port, body: Self.alert + "\n" + Self.alert + "\n", type: "application/x-ndjson")
        XCTAssertEqual(batch.2, "{\"accepted\":2}\n")

        let bad = try await send(port, body: #"{"priority":"Nope"}"#)
        XCTAssertEqual(bad.0, 400)
        XCTAssertTrue(bad.2.contains(#""reason":"unknown_priority""#), bad.2)
        let get = try await send(port, method: .GET)
        XCTAssertEqual(get.0, 405)
        XCTAssertEqual(get.1.first(name: "allow"), "POST")
        XCTAssertEqual(get.2, "{\"error\":\"POST Falco alerts (JSON) here\"}\n")
        let answer1 = try await send(port, body: "<html/>", type: "text/html")
        XCTAssertEqual(answer1.0, 415)
        let large = try await send(port, body: String(repeating: " ", count: 2000) + Self.alert)
        XCTAssertEqual(large.0, 413)
        XCTAssertEqual(large.1.first(name: "connection"), "close")
        XCTAssertEqual(large.2, "{\"error\":\"request body over the limit of 1024 bytes\"}\n")
        let health = try await send(port, "/healthz", method: .GET)
        XCTAssertEqual(health.0, 200)
        XCTAssertEqual(health.2, "{\"status\":\"ok\"}\n")

        let counts = falco.snapshot()
        XCTAssertEqual(counts.accepted["http"], 3)
        XCTAssertEqual(counts.rejected["http"], ["unknown_priority": 1, "unsupported_media_type": 1, "too_large": 1])
        await server.stop()
        await broker.shutdown()
    }

    func testRunsAsAServiceUntilGracefulShutdown() async throws {
        let broker = try await startTestBroker()
        let server = try FalcoHTTPServer(broker: broker, falco: try XCTUnwrap(broker.falcoIngest), maxBody: 1024, port: 0,
                                     logger: Logger(label: "test"))
        let group = ServiceGroup(configuration: .init(services: [server], gracefulShutdownSignals: [], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        var waited = 0
        while server.boundPort == 0 && waited < 500 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        let answer2 = try await send(server.boundPort, body: Self.alert)
        XCTAssertEqual(answer2.0, 200)
        await group.triggerGracefulShutdown()
        try await running.value
        await broker.shutdown()
    }

    func testOneAlertOrJSONLines() {
        let one = Array(Self.alert.utf8)
        XCTAssertEqual(FalcoHTTPServer.split(one).count, 1)
        XCTAssertEqual(FalcoHTTPServer.split(one + [0x0A]).count, 1, "a final newline ends the only line")
        XCTAssertEqual(FalcoHTTPServer.split(one + [0x0D, 0x0A] + one).map { Array($0) }, [one, one])
        let pretty = Array("{\n\"priority\": \"Debug\"\n}".utf8)
        XCTAssertEqual(FalcoHTTPServer.split(pretty).count, 1, "a pretty-printed object is one alert")
    }

    func testMediaTypes() {
        XCTAssertTrue(FalcoHTTPHandler.acceptable("application/json; charset=utf-8"))
        XCTAssertTrue(FalcoHTTPHandler.acceptable(""))
        XCTAssertFalse(FalcoHTTPHandler.acceptable("text/html"))
        XCTAssertTrue(FalcoHTTPHandler.acceptable("Application/JSON"), "media types ignore case")
        XCTAssertTrue(FalcoHTTPHandler.acceptable(" \tapplication/x-ndjson ; charset=utf-8"))
        XCTAssertTrue(FalcoHTTPHandler.acceptable("TEXT/PLAIN;charset=UTF-8"))
        XCTAssertTrue(FalcoHTTPHandler.acceptable("  "), "blank is no type")
        XCTAssertFalse(FalcoHTTPHandler.acceptable("application/jsonx"))
        XCTAssertFalse(FalcoHTTPHandler.acceptable("application/js"))
        XCTAssertFalse(FalcoHTTPHandler.acceptable("application/json+x; charset=utf-8"))
    }
}
