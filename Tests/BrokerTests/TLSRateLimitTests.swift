import NIOCore
import XCTest
@testable import Broker

/// `connection_rate_limit` (`TLSRateLimit`), with a clock the test moves.
final class TLSRateLimitTests: XCTestCase {
    func testLimitPerOneSecondWindow() {
        var limit = TLSRateLimit(limit: 3)
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        XCTAssertEqual((0..<5).map { _ in limit.allow(now: start) }, [true, true, true, false, false])
        XCTAssertEqual(limit.takeBlocked(), 2)
        XCTAssertEqual(limit.takeBlocked(), 0)
        XCTAssertFalse(limit.allow(now: start + .milliseconds(999)))  // same window
        XCTAssertTrue(limit.allow(now: start + .milliseconds(1001)))  // a new one
        XCTAssertTrue(limit.allow(now: start + .milliseconds(1002)))
    }
}
