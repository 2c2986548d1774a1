import Foundation
import XCTest

@testable import Broker

/// Stream limits, retention and de-duplication with a fake clock, on both stores.
final class DurableStreamTests: XCTestCase {
    final class Clock: @unchecked Sendable {
        var nanoseconds: Int64 = 1_000_000_000
        func advance(seconds: Int64) { nanoseconds += seconds * 1_000_000_000 }
    }

    private var directories: [URL] = []
    override func tearDown() {
        for d in directories { try? FileManager.default.removeItem(at: d) }
    }

    private func stores() throws -> [(String, () throws -> any MessageStore)] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("stream-\(UUID().uuidString)")
        directories.append(dir)
        let memory = MemoryStore()
        return [("memory", { memory }), ("file", { try FileStore(directory: dir) })]
    }

    private func b(_ s: String) -> [UInt8] { Array(s.utf8) }

    private func each(_ config: StreamConfig, _ body: (String, DurableStream, Clock) throws -> Void) throws {
        for (name, make) in try stores() {
            let clock = Clock()
            let stream = try DurableStream(config: config, store: try make(), now: { clock.nanoseconds })
            try body(name, stream, clock)
        }
    }

    /// The first message stored at or after a time (by_start_time), found by a binary search: deleted sequences
    /// are passed over, several messages at one time give the first of them, a time after all gives last + 1.
    func testFirstSequenceStoredAtOrAfterATime() throws {
        try each(StreamConfig(name: "T", subjects: ["t.>"])) { name, stream, clock in
            for i in 1...200 {
                _ = try stream.publish(subject: b("t.x"), headers: [], payload: b("\(i)"), messageID: nil)
                if i % 4 == 0 { clock.advance(seconds: 1) }  // four messages per second
            }
            for s: UInt64 in [1, 2, 3, 9, 10, 11, 12, 100, 150] { XCTAssertTrue(try stream.removeMessage(s), name) }
            let start: Int64 = 1_000_000_000
            XCTAssertEqual(stream.firstSequence(storedAtOrAfter: 0), 4, name)
            XCTAssertEqual(stream.firstSequence(storedAtOrAfter: start + 1_000_000_000), 5, name)
            XCTAssertEqual(stream.firstSequence(storedAtOrAfter: start + 2_000_000_000), 13, "\(name): 9-12 are gone")
            XCTAssertEqual(stream.firstSequence(storedAtOrAfter: start + 24_000_000_000), 97, name)
            XCTAssertEqual(stream.firstSequence(storedAtOrAfter: start + 24_500_000_000), 101, "\(name): 100 is gone")
            XCTAssertEqual(stream.firstSequence(storedAtOrAfter: start + 49_000_000_000), 197, name)
            XCTAssertEqual(stream.firstSequence(storedAtOrAfter: start + 50_000_000_000), 201, "\(name): none, one past the last")
        }
    }

    func testDiscardOldKeepsTheNewest() throws {
        var config = StreamConfig(name: "FALCO", subjects: ["FALCO.>"])
        config.maxMsgs = 5
        try each(config) { name, stream, _ in
            for i in 1...10 { _ = try stream.publish(subject: b("FALCO.Notice"), headers: [], payload: b("\(i)"), messageID: nil) }
            XCTAssertEqual(stream.state.messages, 5, name)
            XCTAssertEqual(stream.state.firstSequence, 6, name)
            XCTAssertEqual(stream.state.lastSequence, 10, name)
        }
    }

    func testDiscardNewRejects() throws {
        var config = StreamConfig(name: "FALCO", subjects: ["FALCO.>"])
        config.maxMsgs = 2
        config.discard = .new
        try each(config) { name, stream, _ in
            _ = try stream.publish(subject: b("FALCO.Error"), headers: [], payload: b("1"), messageID: nil)
            _ = try stream.publish(subject: b("FALCO.Error"), headers: [], payload: b("2"), messageID: nil)
            XCTAssertThrowsError(try stream.publish(subject: b("FALCO.Error"), headers: [], payload: b("3"), messageID: nil), name) {
                XCTAssertEqual($0 as? DurableStream.PublishError, .maximumMessagesExceeded)
                XCTAssertEqual(($0 as? DurableStream.PublishError)?.description, "maximum messages exceeded")
            }
            XCTAssertEqual(stream.state.messages, 2, name)
        }
    }

    func testMaxBytesAndMaxMsgSize() throws {
        var config = StreamConfig(name: "S", subjects: ["s"])
        config.maxBytes = 100
        config.maxMsgSize = 40
        try each(config) { name, stream, _ in
            for _ in 0..<5 { _ = try stream.publish(subject: b("s"), headers: [], payload: [UInt8](repeating: 1, count: 30), messageID: nil) }
            XCTAssertLessThanOrEqual(stream.state.bytes, 100, name)
            XCTAssertEqual(stream.state.messages, 2, name)  // 2 x (1 + 30 + 16) = 94 bytes
            XCTAssertThrowsError(try stream.publish(subject: b("s"), headers: [], payload: [UInt8](repeating: 1, count: 41), messageID: nil), name) {
                XCTAssertEqual($0 as? DurableStream.PublishError, .messageTooLarge)
            }
        }
    }

    func testMaxAge() throws {
        var config = StreamConfig(name: "S", subjects: ["s"])
        config.maxAge = 60_000_000_000  // 60 s
        try each(config) { name, stream, clock in
            _ = try stream.publish(subject: b("s"), headers: [], payload: b("old"), messageID: nil)
            clock.advance(seconds: 45)
            _ = try stream.publish(subject: b("s"), headers: [], payload: b("new"), messageID: nil)
            clock.advance(seconds: 30)
            try stream.enforceLimits(at: clock.nanoseconds)
            XCTAssertEqual(stream.state.messages, 1, name)
            XCTAssertEqual(try stream.store.load(stream.state.firstSequence).payload, b("new"), name)
        }
    }

    func testMaxMessagesPerSubject() throws {
        var config = StreamConfig(name: "FALCO", subjects: ["FALCO.>"])
        config.maxMsgsPerSubject = 2
        try each(config) { name, stream, _ in
            for i in 1...3 { _ = try stream.publish(subject: b("FALCO.Critical"), headers: [], payload: b("c\(i)"), messageID: nil) }
            _ = try stream.publish(subject: b("FALCO.Notice"), headers: [], payload: b("n1"), messageID: nil)
            XCTAssertEqual(stream.state.messages, 3, name)
            XCTAssertThrowsError(try stream.store.load(1), name)
            XCTAssertEqual(try stream.store.load(2).payload, b("c2"), name)
        }
    }

    func testDuplicatesWithinTheWindowAreNotStoredTwice() throws {
        var config = StreamConfig(name: "FALCO", subjects: ["FALCO.>"])
        config.duplicateWindow = 120_000_000_000
        let headers = b("NATS/1.0\r\nNats-Msg-Id: 7d1f-alert\r\n\r\n")
        try each(config) { name, stream, clock in
            let id = DurableStream.messageID(in: headers)
            XCTAssertEqual(id, "7d1f-alert")
            XCTAssertEqual(try stream.publish(subject: b("FALCO.Alert"), headers: headers, payload: b("x"), messageID: id), .stored(sequence: 1), name)
            XCTAssertEqual(try stream.publish(subject: b("FALCO.Alert"), headers: headers, payload: b("x"), messageID: id), .duplicate(sequence: 1), name)
            clock.advance(seconds: 121)
            XCTAssertEqual(try stream.publish(subject: b("FALCO.Alert"), headers: headers, payload: b("x"), messageID: id), .stored(sequence: 2), name)
        }
    }

    /// Ids leave as they fall out of the window, oldest first, a few per publish; an id stored again after its
    /// window keeps its new entry when the old one leaves, and one stored again within it stays a duplicate.
    func testIdsLeaveTheWindowOldestFirst() throws {
        var config = StreamConfig(name: "FALCO", subjects: ["FALCO.>"])
        config.duplicateWindow = 10_000_000_000
        func headers(_ id: String) -> [UInt8] { b("NATS/1.0\r\nNats-Msg-Id: \(id)\r\n\r\n") }
        try each(config) { name, stream, clock in
            func publish(_ id: String) throws -> DurableStream.PublishResult {
                try stream.publish(subject: b("FALCO.Alert"), headers: headers(id), payload: b(id), messageID: id)
            }
            for i in 0..<100 { XCTAssertEqual(try publish("a\(i)"), .stored(sequence: UInt64(i + 1)), name) }  // t = 0
            clock.advance(seconds: 5)
            for i in 0..<100 { XCTAssertEqual(try publish("b\(i)"), .stored(sequence: UInt64(i + 101)), name) }  // t = 5
            XCTAssertEqual(stream.rememberedIDs, 200, name)
            clock.advance(seconds: 6)  // t = 11: the a's are out of the window, the b's are not
            XCTAssertEqual(try publish("a0"), .stored(sequence: 201), name)
            XCTAssertEqual(stream.rememberedIDs, 101, name)  // the b's and the new a0
            XCTAssertEqual(try publish("b7"), .duplicate(sequence: 108), name)
            XCTAssertEqual(try publish("a0"), .duplicate(sequence: 201), name)
            clock.advance(seconds: 5)  // t = 16: the b's go; a0 (stored at 11) stays
            XCTAssertEqual(try publish("c"), .stored(sequence: 202), name)
            XCTAssertEqual(stream.rememberedIDs, 2, name)
            XCTAssertEqual(try publish("a0"), .duplicate(sequence: 201), name)
            XCTAssertEqual(try publish("b7"), .stored(sequence: 203), name)
            clock.advance(seconds: 30)
            XCTAssertEqual(try publish("d"), .stored(sequence: 204), name)
            XCTAssertEqual(stream.rememberedIDs, 1, name)
        }
    }

    func testRestartRebuildsDedupeAndPerSubjectState() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("stream-\(UUID().uuidString)")
        directories.append(dir)
        var config = StreamConfig(name: "FALCO", subjects: ["FALCO.>"])
        config.maxMsgsPerSubject = 2
        let clock = Clock()
        let headers = b("NATS/1.0\r\nNats-Msg-Id: a1\r\n\r\n")
        do {
            let stream = try DurableStream(config: config, store: try FileStore(directory: dir), now: { clock.nanoseconds })
            _ = try stream.publish(subject: b("FALCO.Critical"), headers: headers, payload: b("1"), messageID: "a1")
            _ = try stream.publish(subject: b("FALCO.Critical"), headers: [], payload: b("2"), messageID: nil)
            try stream.store.close()
        }
        let stream = try DurableStream(config: config, store: try FileStore(directory: dir), now: { clock.nanoseconds })
        XCTAssertEqual(try stream.publish(subject: b("FALCO.Critical"), headers: headers, payload: b("1"), messageID: "a1"),
                       .duplicate(sequence: 1))
        _ = try stream.publish(subject: b("FALCO.Critical"), headers: [], payload: b("3"), messageID: nil)
        XCTAssertEqual(stream.state.messages, 2, "per-subject limit applies across the restart")
        XCTAssertThrowsError(try stream.store.load(1))
    }

    func testConfigDecodesNatsJSON() throws {
        let json = #"{"name":"FALCO","subjects":["FALCO.>"],"retention":"workqueue","max_msgs":-1,"max_bytes":1048576,"max_age":3600000000000,"discard":"new","storage":"memory","duplicate_window":60000000000,"num_replicas":1}"#
        let config = try JSONDecoder().decode(StreamConfig.self, from: Data(json.utf8))
        XCTAssertEqual(config.retention, .workqueue)
        XCTAssertEqual(config.maxBytes, 1_048_576)
        XCTAssertEqual(config.maxAge, 3_600_000_000_000)
        XCTAssertEqual(config.discard, .new)
        XCTAssertEqual(config.storage, .memory)
        XCTAssertEqual(config.duplicateWindow, 60_000_000_000)
        let minimal = try JSONDecoder().decode(StreamConfig.self, from: Data(#"{"name":"X"}"#.utf8))
        XCTAssertEqual(minimal.maxMsgs, -1)
        XCTAssertEqual(minimal.duplicateWindow, 120_000_000_000)
    }
}

final class MessageIDTests: XCTestCase {
    func testNatsMsgIdFromAHeaderBlock() {
        func id(_ text: String) -> String? { DurableStream.messageID(in: Array(text.utf8)) }
        XCTAssertEqual(id("NATS/1.0\r\nNats-Msg-Id: abc\r\n\r\n"), "abc")
        XCTAssertEqual(id("NATS/1.0\r\nFalco-Rule: r\r\nnats-msg-id:  x y \r\n\r\n"), "x y")
        XCTAssertEqual(id("NATS/1.0\r\nNATS-MSG-ID:sha256:00ff\r\n\r\n"), "sha256:00ff")
        XCTAssertNil(id("NATS/1.0\r\nNats-Msg-Idx: no\r\n\r\n"))
        XCTAssertNil(id("NATS/1.0\r\nX-Nats-Msg-Id: no\r\n\r\n"))
        XCTAssertNil(id("NATS/1.0 503\r\n\r\n"))
        XCTAssertNil(id(""))
        XCTAssertEqual(id("NATS/1.0\r\nNats-Msg-Id: last-line-without-crlf"), "last-line-without-crlf")
    }
}
