import XCTest

@testable import Broker

/// Consumer delivery/ack rules with explicit times (nanoseconds); no clock, no socket.
final class ConsumerStateMachineTests: XCTestCase {
    typealias Machine = ConsumerStateMachine
    let second: Int64 = 1_000_000_000

    private func drain(_ m: inout Machine, now: Int64, last: UInt64, available: (UInt64) -> Bool = { _ in true }) -> [UInt64] {
        var out: [UInt64] = []
        while let d = m.next(now: now, lastSequence: last, available: available) { out.append(d.streamSequence) }
        return out
    }

    func testDeliversInOrderAndAcksMoveTheFloor() {
        var m = Machine(configuration: .init(), startSequence: 1)
        XCTAssertEqual(drain(&m, now: 0, last: 3), [1, 2, 3])
        XCTAssertEqual(m.pending.count, 3)
        m.ack(2)
        XCTAssertEqual(m.ackFloorStream, 0, "1 is still pending")
        m.ack(1)
        XCTAssertEqual(m.ackFloorStream, 2)
        m.ack(3)
        XCTAssertEqual(m.ackFloorStream, 3)
        XCTAssertNil(m.next(now: 0, lastSequence: 3) { _ in true })
    }

    func testRedeliveryAfterAckWaitWithCountsAndConsumerSequences() {
        var m = Machine(configuration: .init(ackWait: 30 * second), startSequence: 1)
        let first = m.next(now: 0, lastSequence: 1) { _ in true }
        XCTAssertEqual(first, .init(streamSequence: 1, consumerSequence: 1, deliveryCount: 1))
        XCTAssertNil(m.next(now: 29 * second, lastSequence: 1) { _ in true })
        let again = m.next(now: 30 * second, lastSequence: 1) { _ in true }
        XCTAssertEqual(again, .init(streamSequence: 1, consumerSequence: 2, deliveryCount: 2))
    }

    func testBackoffReplacesAckWait() {
        var m = Machine(configuration: .init(ackWait: 30 * second, backoff: [1 * second, 5 * second]), startSequence: 1)
        _ = m.next(now: 0, lastSequence: 1) { _ in true }
        XCTAssertEqual(m.nextDeadline, 1 * second)
        _ = m.next(now: 1 * second, lastSequence: 1) { _ in true }
        XCTAssertEqual(m.nextDeadline, 6 * second)
        _ = m.next(now: 6 * second, lastSequence: 1) { _ in true }
        XCTAssertEqual(m.nextDeadline, 11 * second, "the last backoff repeats")
    }

    func testMaxDeliverGivesUpAndReportsIt() {
        var m = Machine(configuration: .init(ackWait: second, maxDeliver: 2), startSequence: 1)
        XCTAssertEqual(m.next(now: 0, lastSequence: 1) { _ in true }?.deliveryCount, 1)
        XCTAssertEqual(m.next(now: second, lastSequence: 1) { _ in true }?.deliveryCount, 2)
        XCTAssertNil(m.next(now: 2 * second, lastSequence: 1) { _ in true })
        XCTAssertEqual(m.exhausted, [1])
        XCTAssertTrue(m.pending.isEmpty)
        XCTAssertEqual(m.ackFloorStream, 1)
    }

    func testMaxAckPendingPausesAndResumes() {
        var m = Machine(configuration: .init(maxAckPending: 2), startSequence: 1)
        XCTAssertEqual(drain(&m, now: 0, last: 5), [1, 2])
        XCTAssertTrue(m.isPaused)
        m.ack(1)
        XCTAssertFalse(m.isPaused)
        XCTAssertEqual(drain(&m, now: 0, last: 5), [3], "one slot opened")
        m.ack(2)
        m.ack(3)
        XCTAssertEqual(drain(&m, now: 0, last: 5), [4, 5], "never stalls for good")
    }

    func testUndeliverCostsNoAttempt() {
        var m = Machine(configuration: .init(ackWait: 30 * second, maxDeliver: 2), startSequence: 1)
        // A first delivery undone: the same message comes again as a first delivery, same consumer sequence.
        let first = m.next(now: 0, lastSequence: 1) { _ in true }!
        m.undeliver(first, now: 0)
        XCTAssertEqual(m.pending.count, 0)
        XCTAssertEqual(m.next(now: 0, lastSequence: 1) { _ in true }, first)
        // A redelivery undone: due again at once, with the count it had.
        let again = m.next(now: 30 * second, lastSequence: 1) { _ in true }!
        XCTAssertEqual(again.deliveryCount, 2)
        m.undeliver(again, now: 30 * second)
        XCTAssertEqual(m.next(now: 30 * second, lastSequence: 1) { _ in true }, again)
        // Under ack none the floor goes back too.
        var none = Machine(configuration: .init(ackPolicy: .none), startSequence: 1)
        let d = none.next(now: 0, lastSequence: 2) { _ in true }!
        none.undeliver(d, now: 0)
        XCTAssertEqual(none.ackFloorStream, 0)
        XCTAssertEqual(drain(&none, now: 0, last: 2), [1, 2])
    }

    func testDeadlinesSaturateInsteadOfOverflowing() {
        var m = Machine(configuration: .init(ackWait: .max), startSequence: 1)
        let d = m.next(now: 1_000 * second, lastSequence: 1) { _ in true }!
        XCTAssertEqual(m.pending[d.streamSequence]?.deadline, .max)
        m.nak(1, delay: .max, now: 1_000 * second)
        XCTAssertNil(m.next(now: .max - 1, lastSequence: 1) { _ in true })
        XCTAssertEqual(Int64.max.saturatingAdd(1), .max)
        XCTAssertEqual(Int64.min.saturatingAdd(-1), .min)
        XCTAssertEqual(Int64(10_000_000_000).saturatingMultiply(1_000_000_000), .max)
        XCTAssertEqual(Int64(-10_000_000_000).saturatingMultiply(1_000_000_000), .min)
        XCTAssertEqual(APITime.parse("3000-01-01T00:00:00Z"), .max)
    }

    func testNakTermAndInProgress() {
        var m = Machine(configuration: .init(ackWait: 10 * second), startSequence: 1)
        XCTAssertEqual(drain(&m, now: 0, last: 3), [1, 2, 3])
        m.nak(1, now: 0)
        XCTAssertEqual(m.next(now: 0, lastSequence: 3) { _ in true }?.streamSequence, 1, "-NAK redelivers at once")
        m.nak(2, delay: 5 * second, now: 0)
        XCTAssertNil(m.next(now: 4 * second, lastSequence: 3) { _ in true })
        XCTAssertEqual(m.next(now: 5 * second, lastSequence: 3) { _ in true }?.streamSequence, 2, "-NAK with a delay")
        m.terminate(3)
        m.inProgress(1, now: 9 * second)  // +WPI: the ack wait starts again
        XCTAssertNil(m.next(now: 12 * second, lastSequence: 3) { _ in true }.flatMap { $0.streamSequence == 1 ? $0 : nil })
        XCTAssertFalse(m.pending.keys.contains(3), "+TERM is never redelivered")
    }

    func testAckAllAndAckNone() {
        var all = Machine(configuration: .init(ackPolicy: .all), startSequence: 1)
        XCTAssertEqual(drain(&all, now: 0, last: 4), [1, 2, 3, 4])
        all.ack(3)
        XCTAssertEqual(Set(all.pending.keys), [4])
        XCTAssertEqual(all.ackFloorStream, 3)
        var none = Machine(configuration: .init(ackPolicy: .none), startSequence: 1)
        XCTAssertEqual(drain(&none, now: 0, last: 4), [1, 2, 3, 4])
        XCTAssertTrue(none.pending.isEmpty)
        XCTAssertEqual(none.ackFloorStream, 4)
    }

    func testFilteredAndRemovedMessagesAreSkipped() {
        var m = Machine(configuration: .init(ackWait: second), startSequence: 1)
        XCTAssertEqual(drain(&m, now: 0, last: 6, available: { $0 % 2 == 0 }), [2, 4, 6])
        // 4 disappears from the stream before its redelivery: dropped, not redelivered.
        XCTAssertEqual(drain(&m, now: second, last: 6, available: { $0 != 4 && $0 % 2 == 0 }), [2, 6])
    }

    /// With `skipTo` (a consumer of literal subjects), only the sequences it names are read: the others' messages
    /// are jumped over, and nothing left means caught up to the last sequence.
    func testSkipToReadsOnlyTheSubjectsSequences() {
        var m = Machine(configuration: .init(), startSequence: 1)
        let mine: [UInt64] = [3, 700, 701, 90_000]
        var read: [UInt64] = []
        func skipTo(_ s: UInt64) -> UInt64? { mine.first { $0 >= s } }
        var out: [UInt64] = []
        while let d = m.next(now: 0, lastSequence: 100_000, available: { read.append($0); return true }, skipTo: skipTo) {
            out.append(d.streamSequence)
        }
        XCTAssertEqual(out, mine)
        XCTAssertEqual(read, mine, "no other sequence is read")
        XCTAssertEqual(m.deliveredStream, 100_000)
        // A sequence skipTo names that is gone from the stream is passed over, and the next one follows.
        var g = Machine(configuration: .init(), startSequence: 1)
        var got: [UInt64] = []
        while let d = g.next(now: 0, lastSequence: 100_000, available: { $0 != 700 }, skipTo: skipTo) { got.append(d.streamSequence) }
        XCTAssertEqual(got, [3, 701, 90_000])
    }

    func testDeliverPolicyStartSequence() {
        var m = Machine(configuration: .init(), startSequence: 10)
        XCTAssertEqual(drain(&m, now: 0, last: 12), [10, 11, 12])
    }

    func testStateSurvivesEncoding() throws {
        var m = Machine(configuration: .init(ackWait: second), startSequence: 1)
        XCTAssertEqual(drain(&m, now: 0, last: 5), [1, 2, 3, 4, 5])
        m.ack(1)
        m.ack(2)
        _ = m.next(now: second, lastSequence: 5) { _ in true }  // redelivers 3
        let bytes = m.encoded()
        var restored = try XCTUnwrap(Machine(configuration: m.configuration, decoding: bytes))
        XCTAssertEqual(restored.ackFloorStream, 2)
        XCTAssertEqual(restored.deliveredStream, 5)
        XCTAssertEqual(Set(restored.pending.keys), [3, 4, 5])
        XCTAssertEqual(restored.deliveryCounts[3], 2)
        // After a restart the pending ones are redelivered at once, then new messages follow.
        XCTAssertEqual(drain(&restored, now: 0, last: 6), [3, 4, 5, 6])
        XCTAssertNil(Machine(configuration: m.configuration, decoding: Array(bytes.dropLast())))
    }

    /// The cheap paths (no scan of `pending` per delivery or per ack) must give the same answers: acks out of
    /// order with gaps from a filter, a nak that makes one message due early, and a later deadline.
    func testFloorAndRedeliveriesWithManyPendingAndGaps() {
        var m = Machine(configuration: .init(ackWait: 10 * second, maxAckPending: -1), startSequence: 1)
        let odd: (UInt64) -> Bool = { $0 % 2 == 1 }
        XCTAssertEqual(drain(&m, now: 0, last: 2_000, available: odd).count, 1_000)
        for s in stride(from: UInt64(3), through: 1_999, by: 2) { m.ack(s) }
        XCTAssertEqual(m.ackFloorStream, 0, "1 is still pending")
        m.nak(1_999, now: second)  // already acked: no effect
        m.nak(1, delay: 2 * second, now: second)
        XCTAssertNil(m.next(now: 2 * second, lastSequence: 2_000, available: odd), "due at 3 s")
        XCTAssertEqual(m.next(now: 3 * second, lastSequence: 2_000, available: odd)?.streamSequence, 1)
        m.ack(1)
        XCTAssertEqual(m.ackFloorStream, 2_000, "everything delivered is acked; the even ones were never due")
        XCTAssertNil(m.next(now: 100 * second, lastSequence: 2_000, available: odd))
        XCTAssertEqual(drain(&m, now: 100 * second, last: 2_003, available: odd), [2_001, 2_003])
        XCTAssertNil(m.next(now: 109 * second, lastSequence: 2_003, available: odd))
        XCTAssertEqual(drain(&m, now: 110 * second, last: 2_003, available: odd), [2_001, 2_003], "ack wait passed")
    }
}

/// The hardware and table CRC-32C give the standard check value, in one piece or continued.
final class CRC32CTests: XCTestCase {
    func testCheckValueAndContinuation() {
        let bytes = Array("123456789".utf8)
        XCTAssertEqual(CRC32C.checksum(bytes), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum(bytes[4...], seed: CRC32C.checksum(bytes[..<4])), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
        let long = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        XCTAssertEqual(CRC32C.checksum(long), CRC32C.checksum(long[4096...], seed: CRC32C.checksum(long[..<4096])))
    }
}
