import Foundation
import NIOCore
import XCTest

@testable import ClientLib
@testable import PubSubBridge

final class BridgeInboxTests: XCTestCase {
    func testAckSubjectSequence() {
        XCTAssertEqual(PubSubBridge.streamSequence("$JS.ACK.FALCO.bridge.1.42.7.1700000000.3"), 42)
        XCTAssertEqual(PubSubBridge.streamSequence("$JS.ACK.dom.hash.FALCO.bridge.1.42.7.1700000000.3.tok"), 42)
        XCTAssertNil(PubSubBridge.streamSequence("_INBOX.x"))
    }
}

/// The inbox's batching (100 messages / 1 MB / 10 ms by default) and when it wakes the pump.
final class InboxBatchingTests: XCTestCase {
    func held(_ sequence: UInt64, size: Int = 10) -> Held {
        Held(message: PubSubMessage(data: [UInt8](repeating: 0x41, count: size), attributes: [:], orderingKey: nil),
             ackSubject: "$JS.ACK.S.C.1.\(sequence).1.0.0", streamSequence: sequence,
             original: NATSMessage(subject: "FALCO.x", reply: nil, headers: nil, payload: ByteBuffer()))
    }

    func testABatchIsReadyAtTheCountTheBytesOrTheDelay() async {
        let bell = Doorbell()
        let inbox = Inbox(doorbell: bell, batchMessages: 3, batchBytes: 1_000, batchDelay: .milliseconds(30))
        XCTAssertNil(inbox.nextDeadline(), "nothing held, no request: only a ring brings work")
        XCTAssertTrue(inbox.add(held(1)))
        XCTAssertFalse(inbox.add(held(1)), "a redelivery of a held message is ignored")
        XCTAssertTrue(inbox.add(held(2)))
        XCTAssertNil(inbox.take(), "2 of 3, and the delay has not passed")
        XCTAssertNotNil(inbox.nextDeadline())
        XCTAssertTrue(inbox.add(held(3)))
        XCTAssertEqual(inbox.take()?.map(\.streamSequence), [1, 2, 3])
        XCTAssertEqual(inbox.heldCount, 3, "held until released")
        inbox.release([1, 2, 3])
        XCTAssertEqual(inbox.heldCount, 0)
        // By delay: one message, taken once it waited 30 ms.
        inbox.add(held(4))
        let start = ContinuousClock.now
        var taken = inbox.take()
        XCTAssertNil(taken)
        while taken == nil {  // as the pump waits
            await bell.wait(until: inbox.nextDeadline())
            taken = inbox.take()
        }
        XCTAssertEqual(taken?.map(\.streamSequence), [4])
        XCTAssertGreaterThanOrEqual(start.duration(to: .now), .milliseconds(20))
        // By bytes: 2 messages of ~700 encoded bytes pass 1,000 bytes; a batch never exceeds it past its first.
        let big = Inbox(doorbell: bell, batchMessages: 100, batchBytes: 1_000, batchDelay: .seconds(60))
        big.add(held(5, size: 500))
        XCTAssertNil(big.take())
        big.add(held(6, size: 500))
        XCTAssertEqual(big.take()?.map(\.streamSequence), [5])
        XCTAssertNil(big.take(), "the rest waits for its own delay")
    }

    func testThePumpIsWokenAtTheFirstMessageAFullBatchAndTheEndOfARequest() async {
        let bell = Doorbell()
        let inbox = Inbox(doorbell: bell, batchMessages: 3, batchBytes: 1_000_000, batchDelay: .seconds(60))
        inbox.startRequest(batch: 10)
        XCTAssertFalse(inbox.requestDone)
        inbox.add(held(1))
        await bell.wait(until: nil)  // the first message rang
        inbox.add(held(2))
        inbox.add(held(3))
        await bell.wait(until: nil)  // the full batch rang
        XCTAssertNotNil(inbox.take())
        inbox.endOfRequest()
        await bell.wait(until: nil)
        XCTAssertTrue(inbox.requestDone)
        inbox.startRequest(batch: 1)
        inbox.add(held(4))  // fills the request: it is over without a status
        XCTAssertTrue(inbox.requestDone)
    }
}
