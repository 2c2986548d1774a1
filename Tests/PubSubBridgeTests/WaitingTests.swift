import XCTest

@testable import PubSubBridge

final class WaitingTests: XCTestCase {
    func testARingBeforeTheWaitIsKeptAndARingWakesAWaiter() async {
        let bell = Doorbell()
        bell.ring()
        await bell.wait(until: nil)  // returns at once: the ring was kept
        let woke = expectation(description: "woke")
        let waiter = Task {
            await bell.wait(until: nil)
            woke.fulfill()
        }
        try? await Task.sleep(for: .milliseconds(20))
        bell.ring()
        await fulfillment(of: [woke], timeout: 5)
        await waiter.value
    }

    func testWaitEndsAtTheDeadlineOrWhenCancelled() async {
        let bell = Doorbell()
        let start = ContinuousClock.now
        await bell.wait(until: .now + .milliseconds(30))
        XCTAssertGreaterThanOrEqual(start.duration(to: .now), .milliseconds(30))
        let waiter = Task { await bell.wait(until: nil) }
        try? await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        await waiter.value  // would hang if cancellation were not seen
    }

    func testSemaphoreHandsPermitsOverInOrderAndCancelledWaitersLeave() async {
        let slots = AsyncSemaphore(1)
        let first = await slots.acquire()
        XCTAssertTrue(first)
        let cancelled = Task { await slots.acquire() }
        try? await Task.sleep(for: .milliseconds(20))
        cancelled.cancel()
        let cancelledGot = await cancelled.value
        XCTAssertFalse(cancelledGot)
        let second = Task { await slots.acquire() }
        try? await Task.sleep(for: .milliseconds(20))
        slots.release()  // goes to `second`, not to the cancelled waiter
        let secondGot = await second.value
        XCTAssertTrue(secondGot)
        slots.release()
        let third = await slots.acquire()
        XCTAssertTrue(third)
    }

    func testLatchLetsEveryWaiterGoOnceOpen() async {
        let latch = Latch()
        let waiters = (0..<3).map { _ in Task { await latch.wait() } }
        XCTAssertFalse(latch.isOpen)
        latch.open()
        for w in waiters { await w.value }
        await latch.wait()  // already open: returns at once
        XCTAssertTrue(latch.isOpen)
    }

    func testKeyChainsKeepTheLastBatchPerKey() {
        let chains = KeyChains()
        let a = Latch(), b = Latch()
        chains.set(a, for: "host-1")
        chains.set(b, for: "host-1")
        XCTAssertTrue(chains.last(for: "host-1") === b)
        XCTAssertNil(chains.last(for: "host-2"))
    }
}
