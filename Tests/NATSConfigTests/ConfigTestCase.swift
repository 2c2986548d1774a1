import Foundation
import XCTest
@testable import NATSConfig

/// What the config format tests share: a scratch directory that relative includes resolve against,
/// and parsing helpers that name the text `brokerd.conf` in errors.
class ConfigTestCase: XCTestCase {
    var tempDirectory: URL!

    override func setUpWithError() throws {
        tempDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("brokerd-config-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tempDirectory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tempDirectory)
    }

    func parse(_ text: String, environment: [String: String] = [:]) throws -> ConfigMap {
        try ConfigParser.parse(text, fileName: "brokerd.conf", baseDirectory: tempDirectory.path, environment: environment)
    }

    /// The error's description, or a failure if parsing succeeded.
    func parseError(_ text: String, environment: [String: String] = [:], line: UInt = #line) -> String {
        do {
            let map = try parse(text, environment: environment)
            XCTFail("expected an error, parsed \(map)", line: line)
            return ""
        } catch let error as ConfigError {
            return error.description
        } catch {
            XCTFail("unexpected error type \(error)", line: line)
            return ""
        }
    }

    @discardableResult
    func write(_ name: String, _ contents: String) throws -> String {
        let url = tempDirectory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try contents.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }
}
