import XCTest

@testable import Broker

final class HandOffTests: XCTestCase {
    func testOnlyTheFirstItemSinceADrainSchedulesIt() {
        let handOff = HandOff<Int>()
        XCTAssertEqual(handOff.append(1, weight: 10).schedule, true)
        let second = handOff.append(2, weight: 5)
        XCTAssertEqual(second.schedule, false)
        XCTAssertEqual(second.waiting, 15, "the weight of everything not drained")
        XCTAssertEqual(handOff.drain(), [1, 2])
        XCTAssertEqual(handOff.drain(), [])
        XCTAssertTrue(handOff.append(3).schedule, "after a drain the next item schedules again")
    }

    func testItemsFromManyThreadsAllArriveOnce() {
        let handOff = HandOff<Int>()
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for i in 0..<1_000 { handOff.append(t * 1_000 + i) }
        }
        XCTAssertEqual(Set(handOff.drain()), Set(0..<8_000))
    }
}
