import Foundation
import XCTest
@testable import NATSConfig

/// How a `ConfigError` reads.
final class ConfigErrorTests: ConfigTestCase {
    func testErrorDescriptionFormat() {
        let error = ConfigError(file: "brokerd.conf", line: 12, reason: "unknown key \"prot\"")
        XCTAssertEqual(error.description, #"brokerd.conf:12: unknown key "prot""#)
        XCTAssertEqual(error.localizedDescription, #"brokerd.conf:12: unknown key "prot""#)
        XCTAssertEqual(ConfigError(file: "x.conf", line: 0, reason: "cannot read").description, "x.conf: cannot read")
    }
}
