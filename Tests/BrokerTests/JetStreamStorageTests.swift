import Logging
import XCTest

@testable import Broker

final class JetStreamStorageTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("jsstorage-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func testRecordsRoundTripAndRemoval() throws {
        let storage = try FileJetStreamStorage(directory: directory, logger: Logger(label: "test"))
        var config = APIStreamConfig(name: "A", subjects: ["a.>"])
        config.placement = .object(["cluster": .string("c")])
        try storage.saveStream("A", StreamRecord(config: config, created: 12.5))
        var consumer = APIConsumerConfig()
        consumer.durableName = "D"
        storage.saveConsumer(stream: "A", name: "D", ConsumerRecord(config: consumer, created: 3, lastPerSubjectBound: 9))
        storage.saveConsumerState(stream: "A", name: "D", [1, 2, 3])

        let streams = storage.savedStreams()
        XCTAssertEqual(streams.map(\.name), ["A"])
        XCTAssertEqual(streams.first?.record, StreamRecord(config: config, created: 12.5))
        let consumers = storage.savedConsumers(stream: "A")
        XCTAssertEqual(consumers.map(\.name), ["D"])
        XCTAssertEqual(consumers.first?.record.lastPerSubjectBound, 9)
        XCTAssertEqual(consumers.first?.state, [1, 2, 3])

        storage.removeConsumer(stream: "A", name: "D")
        XCTAssertTrue(storage.savedConsumers(stream: "A").isEmpty)
        storage.removeStream("A")
        XCTAssertTrue(storage.savedStreams().isEmpty)
    }

    /// meta.json as brokerd wrote it before the API was typed (a dictionary with the defaults filled in).
    func testReadsTheEarlierMetaFiles() throws {
        let streamDir = directory.appendingPathComponent("OLD")
        try FileManager.default.createDirectory(at: streamDir.appendingPathComponent("consumers/D"), withIntermediateDirectories: true)
        try Data(#"{"config":{"allow_direct":false,"discard":"old","duplicate_window":120000000000,"max_age":0,"max_bytes":-1,"max_msgs":-1,"name":"OLD","subjects":["old.>"],"storage":"file","retention":"limits"},"created":1767225600.5}"#.utf8)
            .write(to: streamDir.appendingPathComponent("meta.json"))
        try Data(#"{"config":{"ack_policy":"explicit","ack_wait":30000000000,"deliver_policy":"all","durable_name":"D","name":"D","num_replicas":0},"created":1767225600}"#.utf8)
            .write(to: streamDir.appendingPathComponent("consumers/D/meta.json"))
        let storage = try FileJetStreamStorage(directory: directory, logger: Logger(label: "test"))
        XCTAssertEqual(storage.savedStreams().first?.record.config.subjects, ["old.>"])
        XCTAssertEqual(storage.savedConsumers(stream: "OLD").first?.record.config.durableName, "D")
        XCTAssertNil(storage.savedConsumers(stream: "OLD").first?.state)
    }
}
