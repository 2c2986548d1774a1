import Foundation
import XCTest
@testable import NATSConfig

/// Blanks, comments and line numbers (`ConfigCharacters`).
final class ConfigCharactersTests: ConfigTestCase {
    func testSeparatorsCommentsAndTerminators() throws {
        let map = try parse("""
            # a hash comment
            a: 1          # trailing comment
            b = 2         // trailing slash comment
            c 3
            // a slash comment
            d: 4; e: 5, f = 6
            """)
        XCTAssertEqual(map.keys, ["a", "b", "c", "d", "e", "f"])
        XCTAssertEqual(map["a"], .integer(1))
        XCTAssertEqual(map["c"], .integer(3))
        XCTAssertEqual(map["f"], .integer(6))
        XCTAssertEqual(map.entry("c")?.line, 4)
        XCTAssertEqual(map.entry("e")?.line, 6)
    }
}
