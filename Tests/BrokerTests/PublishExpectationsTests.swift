import Foundation
import NATSConfig
import XCTest

@testable import Broker

/// The JetStream headers a stream acts on (PublishHeaders, MessageTTL) and what DurableStream does with them:
/// expectations, rollups, per-message TTLs and delete markers, purges with options and pending counts.
final class PublishExpectationsTests: XCTestCase {
    final class Clock: @unchecked Sendable {
        var nanoseconds: Int64 = 1_000_000_000
    }

    private func b(_ s: String) -> [UInt8] { Array(s.utf8) }

    private func headers(_ fields: [(String, String)]) -> [UInt8] {
        b("NATS/1.0\r\n" + fields.map { "\($0.0): \($0.1)\r\n" }.joined() + "\r\n")
    }

    private func stream(_ configure: (inout StreamConfig) -> Void = { _ in }) throws -> (DurableStream, Clock) {
        var config = StreamConfig(name: "S", subjects: ["s.>"])
        configure(&config)
        let clock = Clock()
        return (try DurableStream(config: config, store: MemoryStore(), now: { clock.nanoseconds }), clock)
    }

    @discardableResult
    private func publish(_ s: DurableStream, _ subject: String, _ fields: [(String, String)] = []) throws(DurableStream.PublishError) -> UInt64 {
        let h = fields.isEmpty ? [] : headers(fields)
        switch try s.publish(subject: b(subject), headers: h, payload: b("x"), parsed: PublishHeaders(headers: h)) {
        case .stored(let seq), .duplicate(let seq): return seq
        }
    }

    private func refusal(_ body: () throws -> Void) -> DurableStream.PublishError? {
        do { try body() } catch let e as DurableStream.PublishError { return e } catch { XCTFail("\(error)") }
        return nil
    }

    func testHeadersAreReadInOnePassCaseInsensitively() {
        let h = PublishHeaders(headers: headers([("nats-msg-id", " a1 "), ("Nats-Expected-Last-Sequence", "7"),
                                                 ("NATS-ROLLUP", "sub"), ("Nats-TTL", "90s"), ("Nats-Incr", "1"),
                                                 ("Nats-Expected-Last-Subject-Sequence", "bogus")]))
        XCTAssertEqual(h.messageID, "a1")
        XCTAssertEqual(h.expectedLastSequence, 7)
        XCTAssertEqual(h.expectedLastSubjectSequence, .max, "unparsable: never matches, as nats-server's -1")
        XCTAssertEqual(h.rollup, "sub")
        XCTAssertEqual(h.ttl, "90s")
        XCTAssertEqual(h.unsupported, "Nats-Incr")
        XCTAssertEqual(PublishHeaders(headers: []), PublishHeaders.none)
    }

    func testTTLTextsAsNatsServerReadsThem() {
        XCTAssertEqual(MessageTTL("90s"), .seconds(90))
        XCTAssertEqual(MessageTTL("1h30m"), .seconds(5400))
        XCTAssertEqual(MessageTTL("5m0s"), .seconds(300))
        XCTAssertEqual(MessageTTL("60"), .seconds(60))
        XCTAssertEqual(MessageTTL("never"), .never)
        XCTAssertNil(MessageTTL("500ms"), "under a second")
        XCTAssertNil(MessageTTL("-5"))
        XCTAssertNil(MessageTTL("soon"))
        XCTAssertNil(MessageTTL("0"), "Go reads \"0\" as a duration of 0: under a second")
        XCTAssertNil(MessageTTL("0s"))
        XCTAssertEqual(MessageTTL("00"), .seconds(0), "a number of seconds, 0: no TTL")
        XCTAssertEqual(MessageTTL("10000000000"), .seconds(10_000_000_000))
        XCTAssertEqual(GoDuration.text(nanoseconds: 300_000_000_000), "5m0s")
        XCTAssertEqual(GoDuration.text(nanoseconds: 3_601_000_000_000), "1h0m1s")
    }

    func testExpectationsInNatsServersOrder() throws {
        let (s, _) = try stream()
        try publish(s, "s.a", [("Nats-Msg-Id", "m1")])
        try publish(s, "s.b")
        XCTAssertEqual(refusal { try publish(s, "s.a", [("Nats-Expected-Stream", "T")]) }, .streamNotMatch)
        XCTAssertEqual(refusal { try publish(s, "s.a", [("Nats-Expected-Last-Sequence", "1")]) }, .wrongLastSequence(2))
        XCTAssertEqual(refusal { try publish(s, "s.a", [("Nats-Expected-Last-Subject-Sequence", "2")]) }, .wrongLastSequence(1))
        XCTAssertEqual(refusal { try publish(s, "s.a", [("Nats-Expected-Last-Subject-Sequence-Subject", "s.*")]) },
                       .expectedLastSubjectSequenceSubjectAlone)
        XCTAssertEqual(try publish(s, "s.c", [("Nats-Expected-Last-Subject-Sequence", "2"),
                                              ("Nats-Expected-Last-Subject-Sequence-Subject", "s.*")]), 3)
        XCTAssertEqual(refusal { try publish(s, "s.a", [("Nats-Expected-Last-Msg-Id", "m1")]) }, .wrongLastMsgID(""))
        XCTAssertEqual(refusal { try publish(s, "s.a", [("Nats-Stream-Source", "X 1")]) }, .sourceHeaderNotAllowed)
        XCTAssertEqual(refusal { try publish(s, "s.a", [("Nats-TTL", "5s")]) }, .ttlDisabled)
        // As nats-server: an invalid TTL is invalid first, on any stream.
        XCTAssertEqual(refusal { try publish(s, "s.a", [("Nats-TTL", "abc")]) }, .ttlInvalid)
        XCTAssertEqual(refusal { try publish(s, "s.a", [("Nats-TTL", "0")]) }, .ttlInvalid)
        XCTAssertEqual(refusal { try publish(s, "s.a", [("Nats-Rollup", "sub")]) }, .rollupNotPermitted)
        XCTAssertEqual(refusal { try publish(s, "s.a", [("Nats-Incr", "1")]) }?.codes.errorCode, 10168)
        // A duplicate is answered before the last-msg-id check (nats-server's order).
        XCTAssertEqual(try publish(s, "s.a", [("Nats-Msg-Id", "m1"), ("Nats-Expected-Last-Msg-Id", "zz")]), 1)
        XCTAssertEqual(s.state.messages, 3)
    }

    func testRollupsAndSealedStreams() throws {
        let (s, _) = try stream { $0.allowRollup = true }
        for _ in 0..<3 { try publish(s, "s.a"); try publish(s, "s.b") }
        try publish(s, "s.a", [("Nats-Rollup", "sub")])
        XCTAssertEqual(s.subjectCounts(filter: nil), ["s.a": 1, "s.b": 3])
        XCTAssertEqual(refusal { try publish(s, "s.a", [("Nats-Rollup", "x")]) }, .rollupInvalid("x"))
        let last = try publish(s, "s.c", [("Nats-Rollup", "all")])
        XCTAssertEqual(s.state.messages, 1)
        XCTAssertEqual(s.state.firstSequence, last)
        let (sealed, _) = try stream { $0.sealed = true }
        XCTAssertEqual(refusal { try publish(sealed, "s.a") }, .sealed)
    }

    /// Many TTLs, stored in no order of deadline, some messages removed before theirs: each tick removes exactly
    /// what is due, and a removed message's deadline does nothing when it comes.
    func testManyTTLsExpireInDeadlineOrder() throws {
        let (s, clock) = try stream { $0.allowMsgTTL = true }
        var seed: UInt64 = 20261205
        func ttl() -> Int {  // a fixed sequence of TTLs from 1 to 60 s
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int(seed >> 33) % 60 + 1
        }
        var deadlines: [UInt64: Int] = [:]  // sequence -> TTL in seconds
        func store(_ n: Int) throws {
            for _ in 0..<n {
                let t = ttl()
                deadlines[try publish(s, "s.\(t % 7)", [("Nats-TTL", "\(t)s")])] = t
            }
        }
        try store(3000)
        // Most go before their deadline (their heap entries go stale), and more are stored after: the heap is
        // rebuilt from what is left, and expiry goes on as before.
        for sequence in deadlines.keys.sorted().prefix(2600) where sequence % 10 != 0 {
            XCTAssertTrue(try s.removeMessage(sequence))
            deadlines[sequence] = nil
        }
        try store(200)
        for second in 1...61 {
            clock.nanoseconds += 1_000_000_000
            _ = try s.expire(at: clock.nanoseconds)
            let left = deadlines.filter { $0.value > second }
            XCTAssertEqual(s.state.messages, UInt64(left.count), "after \(second) s")
            for sequence in left.keys.prefix(20) { XCTAssertNoThrow(try s.store.load(sequence)) }
        }
        XCTAssertEqual(s.state.messages, 0)
    }

    func testTTLsExpireOnTheTickAndLeaveDeleteMarkers() throws {
        let (s, clock) = try stream {
            $0.allowMsgTTL = true
            $0.allowRollup = true
            $0.subjectDeleteMarkerTTL = 5_000_000_000
        }
        try publish(s, "s.a", [("Nats-TTL", "1s")])
        try publish(s, "s.b", [("Nats-TTL", "never")])
        XCTAssertEqual(refusal { try publish(s, "s.c", [("Nats-TTL", "1ms")]) }, .ttlInvalid)
        clock.nanoseconds += 2_000_000_000
        XCTAssertFalse(try s.expire(at: clock.nanoseconds), "a TTL is at least the marker's (5 s) when markers are on")
        clock.nanoseconds += 4_000_000_000
        XCTAssertTrue(try s.expire(at: clock.nanoseconds))
        let marker = try s.store.load(s.state.lastSequence)
        XCTAssertEqual(marker.subject, b("s.a"))
        XCTAssertEqual(PublishHeaders.value(of: "nats-marker-reason", in: marker.headers), "MaxAge")
        XCTAssertEqual(s.subjectCounts(filter: nil), ["s.a": 1, "s.b": 1])
        // The marker itself expires, without a marker of its own.
        clock.nanoseconds += 6_000_000_000
        XCTAssertTrue(try s.expire(at: clock.nanoseconds))
        XCTAssertEqual(s.subjectCounts(filter: nil), ["s.b": 1])
    }

    func testPurgeOptionsAndPendingCounts() throws {
        let (s, _) = try stream()
        for i in 1...10 { try publish(s, i <= 6 ? "s.a" : "s.b") }
        XCTAssertEqual(s.countMatching(filter: b("s.a"), after: 3), 3)
        XCTAssertEqual(s.countMatching(filter: b("s.*"), after: 8), 2)
        XCTAssertEqual(s.countMatching(filter: nil, after: 0), 10)
        XCTAssertEqual(try s.purge(filter: b("s.a"), upTo: nil, keep: 2), 4)
        XCTAssertEqual(s.subjectCounts(filter: nil), ["s.a": 2, "s.b": 4])
        XCTAssertEqual(try s.purge(filter: nil, upTo: 9, keep: nil), 4)
        XCTAssertEqual(s.state.firstSequence, 9)
        XCTAssertEqual(s.lastSequence(matching: b("s.>")), 10)
        XCTAssertEqual(try s.purge(filter: nil, upTo: nil, keep: nil), 2)
        XCTAssertEqual(s.state.messages, 0)
    }
}
