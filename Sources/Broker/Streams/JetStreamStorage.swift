import Foundation
import Logging

/// What a stream's meta.json holds: its configuration as the client sent it (defaults filled in) and when it
/// was created (seconds since 1970).
struct StreamRecord: Codable, Equatable {
    var config: APIStreamConfig
    var created: Double
}

/// What a durable consumer's meta.json holds.
struct ConsumerRecord: Codable, Equatable {
    var config: APIConsumerConfig
    var created: Double
    /// Deliver policy last_per_subject: the stream's last sequence when the consumer was created.
    var lastPerSubjectBound: UInt64?

    enum CodingKeys: String, CodingKey {
        case config, created
        case lastPerSubjectBound = "last_per_subject_bound"
    }
}

/// Damage found in the store at start-up (passed over; the rest is served): for the log and /jsz.
public struct StorageDamage: Sendable, Equatable {
    public var stream: String
    /// Set when it is a consumer's state file.
    public var consumer: String?
    public var file: String
    public var offset: Int
    public var bytes: Int
    /// The message sequences lost with it (nil: none, or not known).
    public var lostFirst: UInt64?
    public var lostLast: UInt64?
    public var outcome: String
}

/// Where the stream registry keeps streams and durable consumers: behind a protocol so the registry's tests
/// run on memory stores, with no file system.
protocol JetStreamStorage: AnyObject {
    /// The message store of a new or restored stream.
    func makeStore(stream: String, storage: StreamConfig.Storage) throws -> any MessageStore
    func saveStream(_ name: String, _ record: StreamRecord) throws
    /// Removes the stream, its messages and its consumers.
    func removeStream(_ name: String)
    /// The saved streams, by name.
    func savedStreams() -> [(name: String, record: StreamRecord)]

    func saveConsumer(stream: String, name: String, _ record: ConsumerRecord)
    /// The consumer state machine's encoding (ack floor, pending deliveries), on disk (fsynced) when this
    /// returns: a confirmed ack (ack_sync) is answered only after it. `sync` false (the periodic save of plain
    /// acks) hands it to the kernel without waiting for the disk. Throws when it could not be written.
    func saveConsumerState(stream: String, name: String, _ state: [UInt8], sync: Bool) throws
    /// True when the consumer's last saved state was written without an fsync (a confirmed ack must not be
    /// answered on it).
    func hasUnsyncedState(stream: String, name: String) -> Bool
    func removeConsumer(stream: String, name: String)
    /// The saved durable consumers of `stream`, by name, with their last saved state.
    func savedConsumers(stream: String) -> [(name: String, record: ConsumerRecord, state: [UInt8]?)]

    /// A sourcing stream's position in each origin (index name -> last origin sequence stored).
    func saveSourcePositions(stream: String, _ positions: [String: UInt64])
    func savedSourcePositions(stream: String) -> [String: UInt64]

    /// What start-up found damaged and passed over.
    var damageFound: [StorageDamage] { get }
}

extension JetStreamStorage {
    /// A durable consumer's state, fsynced.
    func saveConsumerState(stream: String, name: String, _ state: [UInt8]) throws {
        try saveConsumerState(stream: stream, name: name, state, sync: true)
    }
}

/// The layout on disk: `<dir>/<stream>/meta.json`, `<dir>/<stream>/msgs/` (the file store),
/// `<dir>/<stream>/sources.json` (a sourcing stream's positions) and `<dir>/<stream>/consumers/<name>/` with
/// `meta.json` and the state in two slots (`ConsumerStateFile`). Files are written whole (write, fsync, rename), so a
/// crash leaves the old or the new file.
final class FileJetStreamStorage: JetStreamStorage {
    let directory: URL
    let logger: Logger
    private(set) var damageFound: [StorageDamage] = []

    init(directory: URL, logger: Logger) throws {
        self.directory = directory
        self.logger = logger
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func makeStore(stream: String, storage: StreamConfig.Storage) throws -> any MessageStore {
        switch storage {
        case .memory:
            return MemoryStore()
        case .file:
            let store = try FileStore(directory: streamDirectory(stream).appendingPathComponent("msgs"))
            if store.recovery.truncatedBytes > 0 {
                logger.warning("JetStream stream recovered: cut a torn or corrupt tail", metadata: [
                    "stream": "\(stream)", "block": "\(store.recovery.truncatedBlock ?? "")",
                    "offset": "\(store.recovery.truncatedAt ?? 0)", "bytes": "\(store.recovery.truncatedBytes)",
                ])
            }
            for d in store.recovery.damage {
                let lost = d.lostFirst.map { first in "messages \(first)...\(d.lostLast ?? first) lost" } ?? "no message known lost"
                logger.error("JetStream stream damaged: passed over, the rest of the stream is served", metadata: [
                    "stream": "\(stream)", "block": "\(d.block)", "offset": "\(d.offset)", "bytes": "\(d.bytes)",
                    "reason": "\(d.reason)", "lost": "\(lost)"])
                damageFound.append(StorageDamage(stream: stream, file: "msgs/" + d.block, offset: d.offset, bytes: d.bytes,
                                                 lostFirst: d.lostFirst, lostLast: d.lostLast, outcome: d.reason))
            }
            return store
        }
    }

    func saveStream(_ name: String, _ record: StreamRecord) throws {
        let dir = streamDirectory(name)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try SyncedFile.replace(Array(Self.encoded(record)), at: dir.appendingPathComponent("meta.json").path)
    }

    func removeStream(_ name: String) {
        generations = generations.filter { !$0.key.hasPrefix(name + "/") }
        try? FileManager.default.removeItem(at: streamDirectory(name))
    }

    func savedStreams() -> [(name: String, record: StreamRecord)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.sorted().compactMap { name in
            guard let data = try? Data(contentsOf: streamDirectory(name).appendingPathComponent("meta.json")),
                  let record = try? JSONDecoder().decode(StreamRecord.self, from: data) else { return nil }
            return (name, record)
        }
    }

    func saveConsumer(stream: String, name: String, _ record: ConsumerRecord) {
        let dir = consumerDirectory(stream, name)
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try SyncedFile.replace(Array(Self.encoded(record)), at: dir.appendingPathComponent("meta.json").path)
        } catch {
            logger.error("JetStream consumer: cannot save its configuration", metadata: [
                "stream": "\(stream)", "consumer": "\(name)", "error": "\(error)"])
        }
    }

    /// Per consumer ("<stream>/<name>"): the last generation written and the last one fsynced. A save never
    /// goes to the slot that holds the last fsynced state: after an fsynced save the next one takes the other
    /// slot; after an unsynced one (the tick's), the next takes that same slot again, with a generation two
    /// higher, so a power loss during any save leaves the last fsynced state whole.
    private var generations: [String: (written: UInt64, synced: UInt64)] = [:]

    func saveConsumerState(stream: String, name: String, _ state: [UInt8], sync: Bool) throws {
        let key = stream + "/" + name
        let last = generations[key] ?? (0, 0)
        let generation = last.written + (last.written == last.synced ? 1 : 2)
        let dir = consumerDirectory(stream, name)
        let path = dir.appendingPathComponent(ConsumerStateFile.slot(for: generation)).path
        let created = !FileManager.default.fileExists(atPath: path)
        try SyncedFile.overwrite(ConsumerStateFile.record(generation: generation, state: state), at: path, sync: sync)
        if created { SyncedFile.syncDirectory(dir.path) }
        generations[key] = (generation, sync ? generation : last.synced)
        if generation == 1 || generation == 2 {
            // The state of an older brokerd is superseded once a slot holds a newer one.
            try? FileManager.default.removeItem(at: dir.appendingPathComponent(ConsumerStateFile.legacyName))
        }
    }

    func hasUnsyncedState(stream: String, name: String) -> Bool {
        guard let last = generations[stream + "/" + name] else { return false }
        return last.written != last.synced
    }

    func removeConsumer(stream: String, name: String) {
        generations[stream + "/" + name] = nil
        try? FileManager.default.removeItem(at: consumerDirectory(stream, name))
    }

    func savedConsumers(stream: String) -> [(name: String, record: ConsumerRecord, state: [UInt8]?)] {
        let dir = streamDirectory(stream).appendingPathComponent("consumers")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.sorted().compactMap { name in
            let consumerDir = dir.appendingPathComponent(name)
            guard let data = try? Data(contentsOf: consumerDir.appendingPathComponent("meta.json")),
                  let record = try? JSONDecoder().decode(ConsumerRecord.self, from: data) else { return nil }
            let slots = (ConsumerStateFile.slotNames + [ConsumerStateFile.legacyName]).map { file in
                (file, (try? Data(contentsOf: consumerDir.appendingPathComponent(file))).map { [UInt8]($0) })
            }
            let found = ConsumerStateFile.newest(in: slots)
            // The newest slot may have been written without an fsync before a crash: it is made durable now, so
            // the next save may take the other slot.
            if found.generation > 0 {
                SyncedFile.syncFile(consumerDir.appendingPathComponent(ConsumerStateFile.slot(for: found.generation)).path)
            }
            generations[stream + "/" + name] = (found.generation, found.generation)
            for file in found.damaged {
                damageFound.append(StorageDamage(
                    stream: stream, consumer: name, file: "consumers/\(name)/\(file)", offset: 0, bytes: 0, lostFirst: nil, lostLast: nil,
                    outcome: found.state == nil ? "no whole state left: delivery starts again from the consumer's start" : "the other slot's state is used"))
                // A crash during a save leaves a torn slot (expected); without any whole state it is an error.
                logger.log(level: found.state == nil ? .error : .warning, "JetStream consumer state: a damaged state file was passed over", metadata: [
                    "stream": "\(stream)", "consumer": "\(name)", "file": "\(file)",
                    "outcome": "\(found.state == nil ? "no whole state left: delivery starts again from the consumer's start" : "the other slot's state is used")"])
            }
            return (name, record, found.state)
        }
    }

    /// `<dir>/<stream>/sources.json`, written whole after each stored batch.
    func saveSourcePositions(stream: String, _ positions: [String: UInt64]) {
        do {
            try Self.encoded(positions).write(to: streamDirectory(stream).appendingPathComponent("sources.json"), options: .atomic)
        } catch {
            logger.warning("JetStream sourcing: cannot save positions", metadata: ["stream": "\(stream)", "error": "\(error)"])
        }
    }

    func savedSourcePositions(stream: String) -> [String: UInt64] {
        guard let data = try? Data(contentsOf: streamDirectory(stream).appendingPathComponent("sources.json")) else { return [:] }
        return (try? JSONDecoder().decode([String: UInt64].self, from: data)) ?? [:]
    }

    private func streamDirectory(_ name: String) -> URL { directory.appendingPathComponent(name) }

    private func consumerDirectory(_ stream: String, _ name: String) -> URL {
        streamDirectory(stream).appendingPathComponent("consumers").appendingPathComponent(name)
    }

    private static func encoded(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }
}
