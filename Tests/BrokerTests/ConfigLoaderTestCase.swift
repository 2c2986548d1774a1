import Foundation
import XCTest
@testable import Broker
import NATSConfig

/// What the config loader tests share: a scratch directory that relative includes resolve against,
/// and loading helpers that name the text `brokerd.conf` in errors.
class ConfigLoaderTestCase: XCTestCase {
    var tempDirectory: URL!

    override func setUpWithError() throws {
        tempDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("brokerd-config-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tempDirectory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tempDirectory)
    }

    func load(_ text: String, environment: [String: String] = [:]) throws -> (BrokerOptions, [String]) {
        var options = BrokerOptions()
        let ignored = try ConfigLoader.load(
            text: text, fileName: "brokerd.conf", baseDirectory: tempDirectory.path, into: &options, environment: environment)
        return (options, ignored)
    }

    func loadError(_ text: String, environment: [String: String] = [:], line: UInt = #line) -> String {
        do {
            _ = try load(text, environment: environment)
            XCTFail("expected an error", line: line)
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
