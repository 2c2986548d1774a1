import Foundation
import XCTest
@testable import NATSConfig

/// Go's time.ParseDuration syntax (`GoDuration`).
final class GoDurationTests: ConfigTestCase {
    func testGoDurationSyntax() {
        func nanos(_ text: String) -> Int64? { try? GoDuration.parse(text).get() }
        XCTAssertEqual(nanos("10s"), 10_000_000_000)
        XCTAssertEqual(nanos("1.5h"), 5_400_000_000_000)
        XCTAssertEqual(nanos("1h2m3s4ms5us6ns"), 3_723_004_005_006)
        XCTAssertEqual(nanos("2µs"), 2000)
        XCTAssertEqual(nanos(".5s"), 500_000_000)
        XCTAssertEqual(nanos("-3m"), -180_000_000_000)
        XCTAssertEqual(nanos("0"), 0)
        XCTAssertEqual(GoDuration.parse("10"), .failure(.init(reason: #"missing unit in duration "10""#)))
        XCTAssertEqual(GoDuration.parse("1x"), .failure(.init(reason: #"unknown unit "x" in duration "1x""#)))
        XCTAssertEqual(GoDuration.parse(""), .failure(.init(reason: #"invalid duration """#)))
        XCTAssertEqual(GoDuration.parse("s"), .failure(.init(reason: #"invalid duration "s""#)))
        XCTAssertEqual(GoDuration.parse("9999999999h"), .failure(.init(reason: #"invalid duration "9999999999h""#)))
    }
}
