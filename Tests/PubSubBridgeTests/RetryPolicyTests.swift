import Foundation
import XCTest

@testable import PubSubBridge

/// Retry decisions and backoff as plain values (random numbers passed in).
final class RetryPolicyTests: XCTestCase {
    let ms: Int64 = 1_000_000

    func testRetryableAndPermanentFailures() {
        let p = RetryPolicy()
        for code in [409, 429, 499, 500, 502, 503, 504] {
            guard case .retry = p.decide(.http(code: code, status: nil, message: ""), attempt: 1, random: 0) else {
                return XCTFail("\(code) must be retried")
            }
        }
        XCTAssertEqual(p.decide(.http(code: 400, status: "INVALID_ARGUMENT", message: "bad"), attempt: 1, random: 0), .reject("bad"))
        XCTAssertEqual(p.decide(.http(code: 400, status: nil, message: "bad"), attempt: 1, random: 0), .reject("bad"))
        // The status decides over the code (Google's rule): UNAVAILABLE is retried whatever the code says.
        guard case .retry = p.decide(.http(code: 400, status: "UNAVAILABLE", message: ""), attempt: 1, random: 0) else {
            return XCTFail("UNAVAILABLE must be retried")
        }
        for code in [401, 403, 404] {
            guard case .misconfigured = p.decide(.http(code: code, status: nil, message: ""), attempt: 1, random: 0) else {
                return XCTFail("\(code) is a setup problem")
            }
        }
        guard case .retry = p.decide(.timeout, attempt: 3, random: 0.5), case .retry = p.decide(.connection("refused"), attempt: 1, random: 0) else {
            return XCTFail("timeouts and connection errors are retried")
        }
    }

    func testBackoffGrowsTimesFourWithJitterUpToTheCap() {
        var p = RetryPolicy()
        XCTAssertEqual(p.delay(attempt: 1, random: 1), 100 * ms)
        XCTAssertEqual(p.delay(attempt: 2, random: 1), 400 * ms)
        XCTAssertEqual(p.delay(attempt: 3, random: 1), 1_600 * ms)
        XCTAssertEqual(p.delay(attempt: 2, random: 0), 200 * ms, "jitter: down to half")
        XCTAssertEqual(p.delay(attempt: 20, random: 1), 60_000 * ms, "capped at 60 s")
        XCTAssertEqual(p.delay(attempt: 1_000_000, random: 1), 60_000 * ms)
        p.maxDelay = 1_000 * ms
        XCTAssertEqual(p.delay(attempt: 5, random: 1), 1_000 * ms)
        for attempt in 1...12 {
            let d = p.delay(attempt: attempt, random: 0.3)
            XCTAssert(d > 0 && d <= 1_000 * ms)
        }
    }
}
