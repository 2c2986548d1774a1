import ClientLib
import Foundation
import NIOCore
import XCTest

/// ClientLib against real servers: every scenario runs against brokerd and against the reference nats-server,
/// so compatibility is proven in both directions.
final class NATSClientTests: XCTestCase {
    /// Runs `body` once per server kind (brokerd, nats-server); a missing binary skips that kind.
    private func forEachServer(args: [String] = [], _ body: (ServerProcess) async throws -> Void) async throws {
        var ran = 0
        for kind in ServerProcess.Kind.allCases {
            let server: ServerProcess
            do {
                server = try ServerProcess.start(kind, args: args)
            } catch is XCTSkip {
                continue
            }
            defer { server.stop() }
            do {
                try await body(server)
            } catch {
                XCTFail("[\(kind.rawValue)] \(error)")
            }
            ran += 1
        }
        if ran == 0 { throw XCTSkip("no server binary available") }
    }

    private func connect(_ server: ServerProcess, configure: (inout NATSOptions) -> Void = { _ in }) async throws -> NATSClient {
        var options = NATSOptions(servers: [server.url])
        configure(&options)
        return try await NATSClient.connect(options)
    }

    /// Collects `count` messages from `sub`, giving up after `timeout`.
    private func collect(_ sub: NATSSubscription, count: Int, timeout: Duration = .seconds(10)) async -> [NATSMessage] {
        await withTaskGroup(of: [NATSMessage].self) { group in
            group.addTask {
                var out: [NATSMessage] = []
                for await message in sub {
                    out.append(message)
                    if out.count == count { break }
                }
                return out
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return []
            }
            var best: [NATSMessage] = []
            for await result in group {
                if result.count > best.count { best = result }
                if result.count == count || !result.isEmpty { group.cancelAll(); break }
                group.cancelAll()
                break
            }
            return best
        }
    }

    func testPublishSubscribeWithWildcards() async throws {
        try await forEachServer { server in
            let nc = try await connect(server)
            let star = try await nc.subscribe("FALCO.*")
            let all = try await nc.subscribe("FALCO.>")
            try await nc.flush()
            try await nc.publish("FALCO.Critical", "shell in container")
            try await nc.publish("FALCO.Notice", "ok")
            try await nc.publish("FALCO.Notice.deep", "deep")
            try await nc.flush()
            let a = await collect(star, count: 2)
            let b = await collect(all, count: 3)
            XCTAssertEqual(a.map(\.subject), ["FALCO.Critical", "FALCO.Notice"], server.kind.rawValue)
            XCTAssertEqual(a.first?.string, "shell in container")
            XCTAssertEqual(b.map(\.subject), ["FALCO.Critical", "FALCO.Notice", "FALCO.Notice.deep"])
            await nc.close()
        }
    }

    func testQueueGroupDeliversEachMessageOnce() async throws {
        try await forEachServer { server in
            let nc = try await connect(server)
            let counter = Counter()
            for member in 0..<3 {
                try await nc.subscribe("work", queue: "workers") { message in counter.add(member, message.string) }
            }
            try await nc.flush()
            let publisher = try await connect(server)
            for i in 0..<900 { try await publisher.publish("work", "\(i)") }
            try await publisher.flush()
            try await nc.flush()
            let (perMember, seen) = counter.snapshot()
            XCTAssertEqual(seen.count, 900, server.kind.rawValue)
            XCTAssertEqual(Set(seen).count, 900, "each message exactly once")
            XCTAssertEqual(perMember.count, 3, "every member got work")
            await publisher.close()
            await nc.close()
        }
    }

    func testRequestReplyNoRespondersAndTimeout() async throws {
        try await forEachServer { server in
            let nc = try await connect(server)
            try await nc.subscribe("svc.echo") { message in
                guard let reply = message.reply else { return }
                Task { try? await nc.publish(reply, "re:" + message.string) }
            }
            try await nc.flush()
            let reply = try await nc.request("svc.echo", "hi", timeout: .seconds(5))
            XCTAssertEqual(reply.string, "re:hi", server.kind.rawValue)

            let started = ContinuousClock.now
            do {
                _ = try await nc.request("svc.nobody", "hi", timeout: .seconds(30))
                XCTFail("expected noResponders")
            } catch let error as NATSError {
                XCTAssertEqual(error, .noResponders)
            }
            // "Fails at once": well before the 30 s timeout (an outcome, not a speed measurement).
            XCTAssertLessThan(ContinuousClock.now - started, .seconds(25))

            try await nc.subscribe("svc.silent") { _ in }
            try await nc.flush()
            do {
                _ = try await nc.request("svc.silent", "hi", timeout: .milliseconds(300))
                XCTFail("expected timeout")
            } catch let error as NATSError {
                XCTAssertEqual(error, .timeout)
            }
            await nc.close()
        }
    }

    func testHeadersRoundTrip() async throws {
        try await forEachServer { server in
            let nc = try await connect(server)
            let sub = try await nc.subscribe("h")
            try await nc.flush()
            var headers = NATSHeaders()
            headers["Falco-Priority"] = "Critical"
            headers.append("X-Trace", "1")
            headers.append("X-Trace", "2")
            try await nc.publish("h", payload: ByteBuffer(string: "body"), headers: headers)
            let got = await collect(sub, count: 1)
            XCTAssertEqual(got.first?.string, "body", server.kind.rawValue)
            XCTAssertEqual(got.first?.headers?["falco-priority"], "Critical")
            XCTAssertEqual(got.first?.headers?.values("X-Trace"), ["1", "2"])
            await nc.close()
        }
    }

    func testUnsubscribeAfterN() async throws {
        try await forEachServer { server in
            let nc = try await connect(server)
            let sub = try await nc.subscribe("n")
            try await sub.unsubscribe(after: 3)
            try await nc.flush()
            for i in 0..<10 { try await nc.publish("n", "\(i)") }
            try await nc.flush()
            var got: [String] = []
            for await message in sub { got.append(message.string) }  // ends by itself after 3
            XCTAssertEqual(got, ["0", "1", "2"], server.kind.rawValue)
            await nc.close()
        }
    }

    func testPendingLimitDropsAreReported() async throws {
        try await forEachServer { server in
            let nc = try await connect(server)
            let sub = try await nc.subscribe("flood", pendingLimit: 10)
            try await nc.flush()
            for i in 0..<100 { try await nc.publish("flood", "\(i)") }
            try await nc.flush()
            XCTAssertEqual(sub.dropped, 90, server.kind.rawValue)
            XCTAssertEqual(sub.delivered, 100)
            let kept = await collect(sub, count: 10)
            XCTAssertEqual(kept.map(\.string), (0..<10).map(String.init), "the oldest are kept, in order")
            await nc.close()
            var sawSlowConsumer = false
            for await event in nc.events {
                if case .slowConsumer(let subject, _) = event, subject == "flood" { sawSlowConsumer = true }
            }
            XCTAssertTrue(sawSlowConsumer)
        }
    }

    func testDrainDeliversWhatWasSentThenCloses() async throws {
        try await forEachServer { server in
            let nc = try await connect(server)
            let sub = try await nc.subscribe("d")
            try await nc.flush()
            for i in 0..<50 { try await nc.publish("d", "\(i)") }
            try await nc.drain()
            var got = 0
            for await _ in sub { got += 1 }
            XCTAssertEqual(got, 50, server.kind.rawValue)
            XCTAssertFalse(nc.isConnected)
            do {
                try await nc.publish("d", "late")
                XCTFail("publish after drain must fail")
            } catch let error as NATSError {
                XCTAssertEqual(error, .closed)
            }
        }
    }

    func testMaxPayloadIsEnforcedByTheClient() async throws {
        try await forEachServer { server in
            let nc = try await connect(server)
            XCTAssertEqual(nc.serverInfo?.maxPayload, 1_048_576)
            var big = ByteBuffer()
            big.writeRepeatingByte(0x78, count: 1_048_577)
            do {
                try await nc.publish("big", payload: big)
                XCTFail("expected maxPayloadExceeded")
            } catch let error as NATSError {
                XCTAssertEqual(error, .maxPayloadExceeded(size: 1_048_577, limit: 1_048_576))
            }
            XCTAssertTrue(nc.isConnected, "the client refused it; the connection is fine")
            await nc.close()
        }
    }

    func testTokenAuthentication() async throws {
        try await forEachServer(args: ["--auth", "s3cret"]) { server in
            do {
                _ = try await connect(server) { $0.token = "wrong" }
                XCTFail("expected authorizationViolation")
            } catch let error as NATSError {
                XCTAssertEqual(error, .authorizationViolation, server.kind.rawValue)
            }
            let nc = try await connect(server) { $0.token = "s3cret" }
            try await nc.flush()
            await nc.close()
            // Credentials in the URL work too.
            let viaURL = try await NATSClient.connect(NATSOptions(servers: ["nats://s3cret@127.0.0.1:\(server.port)"]))
            try await viaURL.flush()
            await viaURL.close()
        }
    }

    func testConnectFailsClearlyWhenNobodyListens() async throws {
        let port = try ServerProcess.freePort()
        var options = NATSOptions(servers: ["nats://127.0.0.1:\(port)"])
        options.connectTimeout = .seconds(1)
        do {
            _ = try await NATSClient.connect(options)
            XCTFail("expected connectionFailed")
        } catch let error as NATSError {
            guard case .connectionFailed(let why) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("\(port)"), why)
        }
    }

    /// Kill the server mid-stream, restart it on the same port: the client reconnects, restores its
    /// subscription, and delivers what was published while it was away.
    func testReconnectRestoresSubscriptionsAndBufferedPublishes() async throws {
        try await forEachServer { server in
            let nc = try await connect(server) {
                $0.reconnectWait = .milliseconds(50)
                $0.maxReconnectWait = .milliseconds(200)
                $0.maxReconnectAttempts = -1
            }
            let events = EventLog(nc)
            let sub = try await nc.subscribe("alerts")
            try await nc.flush()
            try await nc.publish("alerts", "before")
            try await nc.flush()

            server.kill()
            try await events.wait(for: "disconnected")
            // Published while disconnected: buffered, sent after the reconnect.
            try await nc.publish("alerts", "during")
            try server.restart()
            try await events.wait(for: "reconnected")
            try await nc.publish("alerts", "after")
            try await nc.flush()

            let got = await collect(sub, count: 3)
            XCTAssertEqual(got.map(\.string), ["before", "during", "after"], server.kind.rawValue)
            await nc.close()
        }
    }

    func testReconnectBufferIsBounded() async throws {
        try await forEachServer { server in
            let nc = try await connect(server) {
                $0.reconnectBufferSize = 1024
                $0.reconnectWait = .seconds(5)
                $0.maxReconnectAttempts = -1
            }
            let events = EventLog(nc)
            server.kill()
            try await events.wait(for: "disconnected")
            var payload = ByteBuffer()
            payload.writeRepeatingByte(0x61, count: 600)
            try await nc.publish("x", payload: payload)
            do {
                try await nc.publish("x", payload: payload)
                XCTFail("expected reconnectBufferFull")
            } catch let error as NATSError {
                XCTAssertEqual(error, .reconnectBufferFull, server.kind.rawValue)
            }
            await nc.close()
        }
    }
}

/// Thread-safe tally for callbacks.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var perMember: [Int: Int] = [:]
    private var seen: [String] = []

    func add(_ member: Int, _ value: String) {
        lock.lock()
        perMember[member, default: 0] += 1
        seen.append(value)
        lock.unlock()
    }

    func snapshot() -> ([Int: Int], [String]) {
        lock.lock()
        defer { lock.unlock() }
        return (perMember, seen)
    }
}

/// Records a client's events so a test can wait for one.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var names: [String] = []

    init(_ client: NATSClient) {
        Task {
            for await event in client.events {
                let name: String
                switch event {
                case .connected: name = "connected"
                case .disconnected: name = "disconnected"
                case .reconnected: name = "reconnected"
                case .slowConsumer: name = "slowConsumer"
                case .serverError: name = "serverError"
                case .lameDuck: name = "lameDuck"
                case .closed: name = "closed"
                }
                self.lock.withLock { self.names.append(name) }
            }
        }
    }

    func wait(for name: String, timeout: Duration = .seconds(15)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if lock.withLock({ names.contains(name) }) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw NSError(domain: "EventLog", code: 1, userInfo: [NSLocalizedDescriptionKey: "no \(name) event within \(timeout)"])
    }
}
