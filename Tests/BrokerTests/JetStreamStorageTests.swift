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
        try storage.saveConsumerState(stream: "A", name: "D", [1, 2, 3])

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

    /// A storage with stream A and its durable consumer D, and D's directory.
    private func storageWithConsumer() throws -> (FileJetStreamStorage, URL) {
        let storage = try FileJetStreamStorage(directory: directory, logger: Logger(label: "test"))
        try storage.saveStream("A", StreamRecord(config: APIStreamConfig(name: "A", subjects: ["a.>"]), created: 1))
        var consumer = APIConsumerConfig()
        consumer.durableName = "D"
        storage.saveConsumer(stream: "A", name: "D", ConsumerRecord(config: consumer, created: 3))
        return (storage, directory.appendingPathComponent("A/consumers/D"))
    }

    /// The state alternates between two fsynced slots; a torn or flipped slot is passed over for the other, and
    /// the next save goes over the damaged one, never over the newest whole state.
    func testConsumerStateSlotsSurviveATornSave() throws {
        let (storage, dir) = try storageWithConsumer()
        try storage.saveConsumerState(stream: "A", name: "D", [1])  // generation 1: state.b
        try storage.saveConsumerState(stream: "A", name: "D", [2])  // generation 2: state.a
        try storage.saveConsumerState(stream: "A", name: "D", [3])  // generation 3: state.b
        XCTAssertEqual(storage.savedConsumers(stream: "A").first?.state, [3])
        // A save torn half-way (generation 3's slot) leaves generation 2.
        let b = dir.appendingPathComponent("state.b")
        let bytes = try Data(contentsOf: b)
        try bytes.prefix(bytes.count - 1).write(to: b)
        let reopened = try FileJetStreamStorage(directory: directory, logger: Logger(label: "test"))
        XCTAssertEqual(reopened.savedConsumers(stream: "A").first?.state, [2])
        // The next save replaces the torn slot; the whole one stays until the save after.
        try reopened.saveConsumerState(stream: "A", name: "D", [4])
        XCTAssertEqual(ConsumerStateFile.decode([UInt8](try Data(contentsOf: b)))?.state, [4])
        XCTAssertEqual(ConsumerStateFile.decode([UInt8](try Data(contentsOf: dir.appendingPathComponent("state.a"))))?.state, [2])
        // A flipped bit is caught by the CRC.
        var a = [UInt8](try Data(contentsOf: b))
        a[a.count - 1] ^= 0x10
        XCTAssertNil(ConsumerStateFile.decode(a))
        // Both slots damaged: no state (the consumer starts again from its start), reported in the log.
        try Data([0, 1, 2]).write(to: b)
        try Data().write(to: dir.appendingPathComponent("state.a"))
        XCTAssertNil(try FileJetStreamStorage(directory: directory, logger: Logger(label: "test")).savedConsumers(stream: "A").first?.state)
    }

    /// A save without an fsync (the tick's) never goes over the last fsynced state: unsynced saves take the other
    /// slot again and again, and the next fsynced save takes that slot too; only then may the older one go.
    func testUnsyncedSavesNeverOverwriteTheLastFsyncedState() throws {
        let (storage, dir) = try storageWithConsumer()
        func slot(_ name: String) throws -> (UInt64, [UInt8])? {
            ConsumerStateFile.decode([UInt8](try Data(contentsOf: dir.appendingPathComponent(name)))).map { ($0.generation, $0.state) }
        }
        try storage.saveConsumerState(stream: "A", name: "D", [1], sync: true)   // generation 1: state.b, fsynced
        XCTAssertFalse(storage.hasUnsyncedState(stream: "A", name: "D"))
        try storage.saveConsumerState(stream: "A", name: "D", [2], sync: false)  // generation 2: state.a
        try storage.saveConsumerState(stream: "A", name: "D", [3], sync: false)  // generation 4: state.a again
        XCTAssertTrue(storage.hasUnsyncedState(stream: "A", name: "D"))
        XCTAssertEqual(try slot("state.b")?.1, [1])
        XCTAssertEqual(try slot("state.a")?.0, 4)
        XCTAssertEqual(try slot("state.a")?.1, [3])
        try storage.saveConsumerState(stream: "A", name: "D", [4], sync: true)   // generation 6: state.a, fsynced
        XCTAssertFalse(storage.hasUnsyncedState(stream: "A", name: "D"))
        XCTAssertEqual(try slot("state.b")?.1, [1])
        XCTAssertEqual(try slot("state.a")?.1, [4])
        try storage.saveConsumerState(stream: "A", name: "D", [5], sync: false)  // generation 7: state.b
        XCTAssertEqual(try slot("state.a")?.1, [4])
        XCTAssertEqual(try slot("state.b")?.0, 7)
        // After a restart the newest state counts as fsynced (start-up fsyncs it): the next save takes the other slot.
        let reopened = try FileJetStreamStorage(directory: directory, logger: Logger(label: "test"))
        XCTAssertEqual(reopened.savedConsumers(stream: "A").first?.state, [5])
        XCTAssertFalse(reopened.hasUnsyncedState(stream: "A", name: "D"))
        try reopened.saveConsumerState(stream: "A", name: "D", [6], sync: false)  // generation 8: state.a
        XCTAssertEqual(try slot("state.b")?.1, [5])
        XCTAssertEqual(try slot("state.a")?.0, 8)
    }

    /// The single `state` file of an earlier brokerd is read, and removed once a slot supersedes it.
    func testReadsTheEarlierStateFile() throws {
        let (storage, dir) = try storageWithConsumer()
        try Data([7, 7]).write(to: dir.appendingPathComponent("state"))
        let reopened = try FileJetStreamStorage(directory: directory, logger: Logger(label: "test"))
        XCTAssertEqual(reopened.savedConsumers(stream: "A").first?.state, [7, 7])
        try reopened.saveConsumerState(stream: "A", name: "D", [8])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("state").path))
        XCTAssertEqual(reopened.savedConsumers(stream: "A").first?.state, [8])
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

extension JetStreamStorageTests {
    /// Slots are rewritten in place: a shorter state leaves the older, longer one's tail behind it, which the
    /// record's length passes over; a record cut short is still refused.
    func testConsumerStateSlotsRewrittenInPlace() throws {
        let (storage, dir) = try storageWithConsumer()
        let long = [UInt8](repeating: 7, count: 5000)
        try storage.saveConsumerState(stream: "A", name: "D", long)  // generation 1: state.b
        try storage.saveConsumerState(stream: "A", name: "D", long)  // generation 2: state.a
        try storage.saveConsumerState(stream: "A", name: "D", [1, 2, 3])  // generation 3: state.b, over 5,000 bytes
        let b = [UInt8](try Data(contentsOf: dir.appendingPathComponent("state.b")))
        XCTAssertGreaterThan(b.count, 5000)
        XCTAssertEqual(ConsumerStateFile.decode(b)?.state, [1, 2, 3])
        XCTAssertEqual(ConsumerStateFile.decode(b)?.generation, 3)
        let reopened = try FileJetStreamStorage(directory: directory, logger: Logger(label: "test"))
        XCTAssertEqual(reopened.savedConsumers(stream: "A").first?.state, [1, 2, 3])
        let record = ConsumerStateFile.record(generation: 9, state: [1, 2, 3])
        XCTAssertNil(ConsumerStateFile.decode(Array(record.dropLast())))
        XCTAssertEqual(ConsumerStateFile.decode(record + [0xFF, 0xFF])?.state, [1, 2, 3])
    }
}
