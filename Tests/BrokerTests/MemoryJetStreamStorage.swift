@testable import Broker

/// Test double for the registry's storage: memory stores, records in dictionaries, no file system.
final class MemoryJetStreamStorage: JetStreamStorage {
    var streams: [String: StreamRecord] = [:]
    var stores: [String: MemoryStore] = [:]
    var consumers: [String: [String: ConsumerRecord]] = [:]
    var consumerStates: [String: [String: [UInt8]]] = [:]
    var sourcePositions: [String: [String: UInt64]] = [:]

    func makeStore(stream: String, storage: StreamConfig.Storage) throws -> any MessageStore {
        // A restored stream finds its messages again (file storage in production).
        if let store = stores[stream] { return store }
        let store = MemoryStore()
        stores[stream] = store
        return store
    }

    func saveStream(_ name: String, _ record: StreamRecord) throws { streams[name] = record }

    func removeStream(_ name: String) {
        streams[name] = nil
        stores[name] = nil
        consumers[name] = nil
        consumerStates[name] = nil
        sourcePositions[name] = nil
    }

    func savedStreams() -> [(name: String, record: StreamRecord)] {
        streams.keys.sorted().map { ($0, streams[$0]!) }
    }

    func saveConsumer(stream: String, name: String, _ record: ConsumerRecord) { consumers[stream, default: [:]][name] = record }

    func saveConsumerState(stream: String, name: String, _ state: [UInt8], sync: Bool) throws { consumerStates[stream, default: [:]][name] = state }

    func hasUnsyncedState(stream: String, name: String) -> Bool { false }

    func removeConsumer(stream: String, name: String) {
        consumers[stream]?[name] = nil
        consumerStates[stream]?[name] = nil
    }

    func savedConsumers(stream: String) -> [(name: String, record: ConsumerRecord, state: [UInt8]?)] {
        (consumers[stream] ?? [:]).keys.sorted().map { ($0, consumers[stream]![$0]!, consumerStates[stream]?[$0]) }
    }

    func saveSourcePositions(stream: String, _ positions: [String: UInt64]) { sourcePositions[stream] = positions }

    func savedSourcePositions(stream: String) -> [String: UInt64] { sourcePositions[stream] ?? [:] }

    var damageFound: [StorageDamage] { [] }
}

/// A clock the test moves by hand: 2026-01-01T00:00:00Z plus whatever it sets.
final class JetStreamTestClock: @unchecked Sendable {
    var nanoseconds: Int64 = 1_767_225_600_000_000_000
    var now: @Sendable () -> Int64 { { [unowned self] in self.nanoseconds } }
}
