import XCTest

@testable import ClientLib

final class BackoffTests: XCTestCase {
    func testGrowsByTheFactorUpToTheCap() {
        let b = Backoff(initial: .milliseconds(100), factor: 2, cap: .seconds(2))
        XCTAssertEqual(b.delay(attempt: 1, random: 0.7), .milliseconds(100))
        XCTAssertEqual(b.delay(attempt: 2, random: 0.7), .milliseconds(200))
        XCTAssertEqual(b.delay(attempt: 5, random: 0.7), .milliseconds(1600))
        XCTAssertEqual(b.delay(attempt: 6, random: 0.7), .seconds(2), "capped")
        XCTAssertEqual(b.delay(attempt: Int.max, random: 0.7), .seconds(2), "no overflow")
        XCTAssertEqual(b.delay(attempt: 0, random: 0.7), .milliseconds(100), "below 1 counts as 1")
    }

    func testProportionalJitterDrawsFromTheSpreadAfterTheCap() {
        let google = Backoff(initial: .milliseconds(100), factor: 4, cap: .seconds(60), spread: 0.5...1)
        XCTAssertEqual(google.delay(attempt: 2, random: 0), .milliseconds(200))
        XCTAssertEqual(google.delay(attempt: 2, random: 1), .milliseconds(400))
        XCTAssertEqual(google.delay(attempt: 2, random: 0.5), .milliseconds(300))
        XCTAssertEqual(google.delay(attempt: 30, random: 0), .seconds(30))
        let upward = Backoff(initial: .milliseconds(100), factor: 2, cap: .seconds(2), spread: 1...1.5)
        XCTAssertEqual(upward.delay(attempt: 1, random: 1), .milliseconds(150))
        XCTAssertEqual(upward.delay(attempt: 9, random: 1), .seconds(3), "jitter applies on top of the cap")
    }

    func testExtraJitterIsAddedUpToItsMaximum() {
        let nats = Backoff(initial: .milliseconds(100), factor: 2, cap: .seconds(2), extra: .milliseconds(100))
        XCTAssertEqual(nats.delay(attempt: 1, random: 0), .milliseconds(100))
        XCTAssertEqual(nats.delay(attempt: 1, random: 1), .milliseconds(200))
        XCTAssertEqual(nats.delay(attempt: 3, random: 0.5), .milliseconds(450))
    }

    func testInjectedGeneratorMakesItDeterministic() {
        struct Counter: RandomNumberGenerator {
            var state: UInt64
            mutating func next() -> UInt64 {
                state &+= 0x9E37_79B9_7F4A_7C15
                return state
            }
        }
        var one = Counter(state: 42), two = Counter(state: 42)
        let b = Backoff(initial: .seconds(1), factor: 3, cap: .seconds(60), spread: 0.5...1)
        for attempt in 1...40 {
            let d = b.delay(attempt: attempt, using: &one)
            XCTAssertEqual(d, b.delay(attempt: attempt, using: &two), "same generator, same delays")
            XCTAssert(d >= .milliseconds(500) && d <= .seconds(60), "\(attempt): \(d)")
            let system = b.delay(attempt: attempt)
            XCTAssert(system >= .milliseconds(500) && system <= .seconds(60), "\(attempt): \(system)")
        }
    }
}
