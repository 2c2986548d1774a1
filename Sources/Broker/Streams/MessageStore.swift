import Foundation

/// One stored message.
public struct StoredMessage: Equatable, Sendable {
    public var sequence: UInt64
    /// Nanoseconds since 1970 (UTC), when the message was stored.
    public var timestamp: Int64
    public var subject: [UInt8]
    /// The NATS header block as received (empty when none).
    public var headers: [UInt8]
    public var payload: [UInt8]

    public init(sequence: UInt64, timestamp: Int64, subject: [UInt8], headers: [UInt8] = [], payload: [UInt8]) {
        self.sequence = sequence
        self.timestamp = timestamp
        self.subject = subject
        self.headers = headers
        self.payload = payload
    }

    /// Bytes this message accounts for in stream limits (as nats-server: subject + headers + payload + 16).
    public var size: Int { subject.count + headers.count + payload.count + 16 }
}

/// What a store holds.
public struct StoreState: Equatable, Sendable {
    public var messages: UInt64 = 0
    public var bytes: UInt64 = 0
    public var firstSequence: UInt64 = 0
    public var lastSequence: UInt64 = 0
}

public enum StoreError: Error, Equatable, Sendable {
    case notFound
    case messageTooLarge
    case io(String)
    case closed
    /// A full block holds records that fail their checksum: it is not sealed.
    case damaged
}

/// The storage protocol behind a stream: the file store and the memory store implement it, and every store
/// test runs against both. Not thread-safe: a stream owns its store and serialises access.
public protocol MessageStore: AnyObject {
    /// Appends a message and returns its sequence. Durable only after `sync()` (file store, batch policy).
    func append(subject: [UInt8], headers: [UInt8], payload: [UInt8], timestamp: Int64) throws(StoreError) -> UInt64
    func load(_ sequence: UInt64) throws(StoreError) -> StoredMessage
    /// Whether the store holds `sequence` (from the index: nothing is read).
    func contains(_ sequence: UInt64) -> Bool
    /// The lowest sequence the store holds at or after `sequence` (nil: none), from the index.
    func firstStored(atOrAfter sequence: UInt64) -> UInt64?
    /// After a failed `sync()`: takes back what it did not cover (nobody was told it is stored) and puts back
    /// the messages that removals `causedBy` a publish took since then, when that publish is among those taken
    /// back (its limits or rollup: what it displaced stays). The memory store never fails a sync: nothing.
    func rollBackUnsynced() -> StoreRollback
    /// Every stored message in sequence order: sequence, time, subject and headers (what a stream rebuilds its
    /// indexes from after a restart, without copying payloads).
    func forEachMessage(_ body: (_ sequence: UInt64, _ timestamp: Int64, _ subject: ArraySlice<UInt8>, _ headers: ArraySlice<UInt8>) -> Void)
    /// Removes one message (acks under workqueue retention, limits); false when it was not there. `causedBy`:
    /// the sequence of the publish whose limits or rollup displaced it; a rollback that takes that publish
    /// back puts the message back (a publish made durable meanwhile, by a block's seal, keeps its removals).
    func remove(_ sequence: UInt64, causedBy publish: UInt64?) throws(StoreError) -> Bool
    /// Removes everything; sequences continue from where they were.
    func purge() throws(StoreError)
    /// Makes every append so far durable (group commit: one fsync for a batch).
    func sync() throws(StoreError)
    /// Hands buffered appends to the operating system without waiting for the disk (a no-op where nothing
    /// is buffered).
    func flushWrites() throws(StoreError)
    var state: StoreState { get }
    func close() throws(StoreError)
    /// The next append gets `sequence` (a mirror keeps its origin's sequences over the origin's gaps); the
    /// sequences passed over hold nothing. No-op when `sequence` is not ahead.
    func skip(to sequence: UInt64) throws(StoreError)
}

extension MessageStore {
    /// Removes one message for good (an ack, a delete request, expiry).
    public func remove(_ sequence: UInt64) throws(StoreError) -> Bool { try remove(sequence, causedBy: nil) }
}

/// What a rollback after a failed sync did: the messages taken back (appended since the last good sync) and
/// those put back (removed since then by a publish that was itself taken back), oldest first.
public struct StoreRollback {
    public var taken: [(sequence: UInt64, subject: [UInt8])] = []
    public var restored: [UInt64] = []
    public init() {}
}

/// Messages in memory: the same behaviour as the file store, without durability.
public final class MemoryStore: MessageStore {
    private var messages: [UInt64: StoredMessage] = [:]
    private var next: UInt64 = 1
    private var current = StoreState()

    public init() {}

    public var state: StoreState { current }

    public func append(subject: [UInt8], headers: [UInt8], payload: [UInt8], timestamp: Int64) throws(StoreError) -> UInt64 {
        let sequence = next
        next += 1
        let message = StoredMessage(sequence: sequence, timestamp: timestamp, subject: subject, headers: headers, payload: payload)
        messages[sequence] = message
        current.messages += 1
        current.bytes += UInt64(message.size)
        current.lastSequence = sequence
        if current.firstSequence == 0 || current.messages == 1 { current.firstSequence = sequence }
        return sequence
    }

    public func load(_ sequence: UInt64) throws(StoreError) -> StoredMessage {
        guard let message = messages[sequence] else { throw .notFound }
        return message
    }

    public func contains(_ sequence: UInt64) -> Bool { messages[sequence] != nil }

    public func firstStored(atOrAfter sequence: UInt64) -> UInt64? {
        guard !messages.isEmpty, sequence <= current.lastSequence else { return nil }
        var s = max(sequence, current.firstSequence)
        while messages[s] == nil && s <= current.lastSequence { s += 1 }
        return s <= current.lastSequence ? s : nil
    }

    public func rollBackUnsynced() -> StoreRollback { StoreRollback() }

    public func forEachMessage(_ body: (_ sequence: UInt64, _ timestamp: Int64, _ subject: ArraySlice<UInt8>, _ headers: ArraySlice<UInt8>) -> Void) {
        for sequence in messages.keys.sorted() {
            let m = messages[sequence]!
            body(sequence, m.timestamp, m.subject[...], m.headers[...])
        }
    }

    public func remove(_ sequence: UInt64, causedBy publish: UInt64?) throws(StoreError) -> Bool {
        guard let message = messages.removeValue(forKey: sequence) else { return false }
        current.messages -= 1
        current.bytes -= UInt64(message.size)
        if sequence == current.firstSequence { current.firstSequence = nextFirst(after: sequence) }
        return true
    }

    public func purge() throws(StoreError) {
        messages.removeAll()
        current.messages = 0
        current.bytes = 0
        current.firstSequence = current.lastSequence + 1
    }

    public func sync() throws(StoreError) {}
    public func flushWrites() throws(StoreError) {}
    public func close() throws(StoreError) {}

    public func skip(to sequence: UInt64) throws(StoreError) {
        guard sequence > next else { return }
        next = sequence
        current.lastSequence = sequence - 1
        if messages.isEmpty { current.firstSequence = sequence }
    }

    private func nextFirst(after sequence: UInt64) -> UInt64 {
        if messages.isEmpty { return current.lastSequence + 1 }
        var s = sequence + 1
        while messages[s] == nil && s <= current.lastSequence { s += 1 }
        return s
    }
}
