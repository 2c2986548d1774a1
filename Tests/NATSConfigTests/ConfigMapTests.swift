import Foundation
import XCTest
@testable import NATSConfig

/// Repeated keys: the last definition wins, unless the user of the format lets a block repeat (`ConfigMap`).
final class ConfigMapTests: ConfigTestCase {
    func testDuplicateKeysLastWinsAndCRLF() throws {
        let map = try parse("port: 1\r\nhost: a\r\nport: 2\r\n")
        XCTAssertEqual(map["port"], .integer(2))
        XCTAssertEqual(map.keys, ["host", "port"])
        XCTAssertEqual(map.entry("port")?.line, 3)
    }

    func testRepeatableBlocksAreAllKept() throws {
        let text = "bridge { n: 1 }\nport: 1\nBridge { n: 2 }"
        XCTAssertEqual(try parse(text).keys, ["bridge", "port", "Bridge"])
        XCTAssertEqual(try parse("bridge { n: 1 }\nbridge { n: 2 }").entries.count, 1)
        let map = try ConfigParser.parse("bridge { n: 1 }\nport: 1\nbridge { n: 2 }\nbridge: { n: 3 }",
                                         environment: [:], repeatableBlocks: ["bridge"])
        XCTAssertEqual(map.keys, ["bridge", "port", "bridge", "bridge"])
        XCTAssertEqual(map.entries.map(\.line), [1, 2, 3, 4])
    }
}
