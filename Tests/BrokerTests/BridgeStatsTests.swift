import Foundation
import XCTest

@testable import Broker

final class BridgeStatsTests: XCTestCase {
    func testDegradedAfterAMinuteOfFailuresAndClearedBySuccess() {
        let stats = BridgeStats(project: "p", topic: "t")
        XCTAssertFalse(stats.snapshot().degraded())
        stats.failed("HTTP 503 UNAVAILABLE")
        let snap = stats.snapshot()
        XCTAssertEqual(snap.lastError, "HTTP 503 UNAVAILABLE")
        XCTAssertFalse(snap.degraded(now: Date()))
        XCTAssertTrue(snap.degraded(now: Date().addingTimeInterval(61)))
        stats.succeeded()
        XCTAssertFalse(stats.snapshot().degraded(now: Date().addingTimeInterval(3600)))
        XCTAssertEqual(stats.snapshot().lastError, "HTTP 503 UNAVAILABLE", "the last error stays visible")
    }
}
