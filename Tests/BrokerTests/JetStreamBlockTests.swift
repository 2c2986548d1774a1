import Foundation
import XCTest
@testable import Broker
import NATSConfig

/// The `jetstream` key and block (`JetStreamBlock`).
final class JetStreamBlockTests: ConfigLoaderTestCase {
    func testJetStreamBlock() throws {
        let (options, _) = try load("jetstream {\n  store_dir: \"/var/lib/brokerd\"\n  max_file_store: 10GB\n}\n")
        XCTAssertTrue(options.jetStream)
        XCTAssertEqual(options.storeDirectory, "/var/lib/brokerd")
        XCTAssertFalse(try load("jetstream: disabled").0.jetStream)
        XCTAssertEqual(loadError("jetstream { bogus: 1 }"), #"brokerd.conf:1: unknown key "bogus" in jetstream"#)
        XCTAssertEqual(options.jetStreamSync, .batch, "group commit is the default")
        XCTAssertEqual(try load("jetstream { sync: always }").0.jetStreamSync, .always)
        let interval = try load("jetstream { sync_interval: \"5s\" }").0
        XCTAssertEqual(interval.jetStreamSync, .interval)
        XCTAssertEqual(interval.jetStreamSyncInterval, .seconds(5))
        XCTAssertEqual(try load("jetstream { sync_interval: always }").0.jetStreamSync, .always)
        XCTAssertEqual(loadError("jetstream { sync: sometimes }"),
                       #"brokerd.conf:1: invalid value "sometimes" for "jetstream.sync": expected always, batch or interval"#)
    }
}
