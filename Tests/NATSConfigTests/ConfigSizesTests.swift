import Foundation
import XCTest
@testable import NATSConfig

/// Size literals such as `64KB` (`ConfigSizes`).
final class ConfigSizesTests: ConfigTestCase {
    /// conf/parse.go: a bare letter is decimal, the letter plus b, i or ib is binary.
    func testSizeSuffixesMatchNatsServer() throws {
        let map = try parse("""
            a: 1k
            b: 1kb
            c: 64KB
            d: 1MB
            e: 1MiB
            f: 2m
            g: 1G
            h: 1gb
            i: 2Ti
            j: -5k
            """)
        XCTAssertEqual(map["a"], .integer(1000))
        XCTAssertEqual(map["b"], .integer(1024))
        XCTAssertEqual(map["c"], .integer(64 * 1024))
        XCTAssertEqual(map["d"], .integer(1024 * 1024))
        XCTAssertEqual(map["e"], .integer(1024 * 1024))
        XCTAssertEqual(map["f"], .integer(2_000_000))
        XCTAssertEqual(map["g"], .integer(1_000_000_000))
        XCTAssertEqual(map["h"], .integer(1 << 30))
        XCTAssertEqual(map["i"], .integer(2 << 40))
        XCTAssertEqual(map["j"], .integer(-5000))
        XCTAssertEqual(ConfigParser.parseSize("64KB"), 65536)
        XCTAssertNil(ConfigParser.parseSize("64XB"))
    }
}
