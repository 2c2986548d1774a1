import Foundation
import XCTest
@testable import NATSConfig

/// Digit-led words: integers, floats, addresses, dates (`ConfigNumbers`).
final class ConfigNumbersTests: ConfigTestCase {
    func testNumbersFloatsAddressesAndDigitLedStrings() throws {
        let map = try parse("""
            int: 4222
            neg: -17
            float: 1.5
            negFloat: -0.25
            ip: 127.0.0.1
            hostPort: 0.0.0.0:4222
            duration: 30s
            mixed: 4222abc
            date: 2024-01-02T03:04:05Z
            """)
        XCTAssertEqual(map["int"], .integer(4222))
        XCTAssertEqual(map["neg"], .integer(-17))
        XCTAssertEqual(map["float"], .float(1.5))
        XCTAssertEqual(map["negFloat"], .float(-0.25))
        XCTAssertEqual(map["ip"], .string("127.0.0.1"))
        XCTAssertEqual(map["hostPort"], .string("0.0.0.0:4222"))
        XCTAssertEqual(map["duration"], .string("30s"))
        XCTAssertEqual(map["mixed"], .string("4222abc"))
        XCTAssertEqual(map["date"], .string("2024-01-02T03:04:05Z"))
    }

    func testInvalidNumbersAndSizes() {
        XCTAssertEqual(parseError("a: 1kbb"),
                       #"brokerd.conf:1: invalid size suffix "kbb" in "1kbb"; use k, kb, m, mb, g, gb, t, tb, p, pb, e or eb"#)
        XCTAssertEqual(parseError("\na: 99999999999999999999"), #"brokerd.conf:2: integer "99999999999999999999" is out of range"#)
        XCTAssertEqual(parseError("a: 9999999999EB"), #"brokerd.conf:1: size "9999999999EB" is out of range"#)
        XCTAssertEqual(parseError("a: 1.5s"), #"brokerd.conf:1: invalid value "1.5s"; quote it if it is meant as a string"#)
        XCTAssertEqual(parseError("a: -abc"), #"brokerd.conf:1: expected a digit after '-' in "-abc""#)
        XCTAssertEqual(parseError("a: .5"), "brokerd.conf:1: floats must start with a digit")
        XCTAssertEqual(parseError("a: 2024-1-1"),
                       #"brokerd.conf:1: invalid date "2024-1-1": dates must be in full ISO8601 Zulu form, e.g. 2006-01-02T15:04:05Z"#)
    }
}
