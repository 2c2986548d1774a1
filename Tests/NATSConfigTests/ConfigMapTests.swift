import Foundation
import XCTest
@testable import NATSConfig

/// Repeated keys: the last definition wins (`ConfigMap`).
final class ConfigMapTests: ConfigTestCase {
    func testDuplicateKeysLastWinsAndCRLF() throws {
        let map = try parse("port: 1\r\nhost: a\r\nport: 2\r\n")
        XCTAssertEqual(map["port"], .integer(2))
        XCTAssertEqual(map.keys, ["host", "port"])
        XCTAssertEqual(map.entry("port")?.line, 3)
    }
}
