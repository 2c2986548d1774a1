import Foundation
import XCTest
@testable import NATSConfig

/// Reading the config file itself (`ConfigFiles`).
final class ConfigFilesTests: ConfigTestCase {
    func testMissingConfigFile() {
        let path = tempDirectory.appendingPathComponent("nope.conf").path
        XCTAssertThrowsError(try ConfigParser.parse(contentsOf: path, environment: [:])) { error in
            XCTAssertEqual((error as? ConfigError)?.description, "\(path): cannot read config file: no such file")
        }
    }
}
