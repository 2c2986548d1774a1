import Foundation
import Protocol

/// A stream's configuration, in nats-server's JSON shape (durations are integer nanoseconds).
public struct StreamConfig: Codable, Equatable, Sendable {
    public enum Retention: String, Codable, Sendable { case limits, interest, workqueue }
    public enum Discard: String, Codable, Sendable { case old, new }
    public enum Storage: String, Codable, Sendable { case file, memory }

    public var name: String
    public var subjects: [String]
    public var retention: Retention = .limits
    public var maxMsgs: Int64 = -1
    public var maxBytes: Int64 = -1
    /// Nanoseconds; 0 = no limit.
    public var maxAge: Int64 = 0
    public var maxMsgSize: Int32 = -1
    public var maxMsgsPerSubject: Int64 = -1
    public var discard: Discard = .old
    public var storage: Storage = .file
    /// Nanoseconds; nats-server's default is 2 minutes.
    public var duplicateWindow: Int64 = 120_000_000_000
    public var numReplicas: Int = 1

    public init(name: String, subjects: [String]) {
        self.name = name
        self.subjects = subjects
    }

    enum CodingKeys: String, CodingKey {
        case name, subjects, retention, discard, storage
        case maxMsgs = "max_msgs", maxBytes = "max_bytes", maxAge = "max_age", maxMsgSize = "max_msg_size"
        case maxMsgsPerSubject = "max_msgs_per_subject", duplicateWindow = "duplicate_window", numReplicas = "num_replicas"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        subjects = try c.decodeIfPresent([String].self, forKey: .subjects) ?? []
        retention = try c.decodeIfPresent(Retention.self, forKey: .retention) ?? .limits
        maxMsgs = try c.decodeIfPresent(Int64.self, forKey: .maxMsgs) ?? -1
        maxBytes = try c.decodeIfPresent(Int64.self, forKey: .maxBytes) ?? -1
        maxAge = try c.decodeIfPresent(Int64.self, forKey: .maxAge) ?? 0
        maxMsgSize = try c.decodeIfPresent(Int32.self, forKey: .maxMsgSize) ?? -1
        maxMsgsPerSubject = try c.decodeIfPresent(Int64.self, forKey: .maxMsgsPerSubject) ?? -1
        discard = try c.decodeIfPresent(Discard.self, forKey: .discard) ?? .old
        storage = try c.decodeIfPresent(Storage.self, forKey: .storage) ?? .file
        duplicateWindow = try c.decodeIfPresent(Int64.self, forKey: .duplicateWindow) ?? 120_000_000_000
        numReplicas = try c.decodeIfPresent(Int.self, forKey: .numReplicas) ?? 1
    }
}

/// A stream (named DurableStream: Foundation already has a `Stream`): a store plus its limits, retention and de-duplication. Plain Swift with an injected clock, so
/// every rule is tested without a socket or a real time; the JetStream API layer drives it.
public final class DurableStream {
    public enum PublishResult: Equatable, Sendable {
        case stored(sequence: UInt64)
        /// Same `Nats-Msg-Id` within the duplicate window: not stored again; the first sequence.
        case duplicate(sequence: UInt64)
    }

    /// Rejections, with nats-server's descriptions.
    public enum PublishError: Error, Equatable, Sendable {
        case messageTooLarge
        case maximumMessagesExceeded
        case maximumBytesExceeded
        case maximumMessagesPerSubjectExceeded
        case store(StoreError)

        public var description: String {
            switch self {
            case .messageTooLarge: return "message size exceeds maximum allowed"
            case .maximumMessagesExceeded: return "maximum messages exceeded"
            case .maximumBytesExceeded: return "maximum bytes exceeded"
            case .maximumMessagesPerSubjectExceeded: return "maximum messages per subject exceeded"
            case .store(let e): return "storage failure: \(e)"
            }
        }
    }

    public let config: StreamConfig
    public let store: any MessageStore
    private let now: () -> Int64
    /// Message ids seen within the duplicate window: id -> (sequence, time stored).
    private var recentIDs: [String: (UInt64, Int64)] = [:]
    /// Sequences per subject, oldest first (for max_msgs_per_subject).
    private var perSubject: [[UInt8]: [UInt64]] = [:]

    public init(config: StreamConfig, store: any MessageStore, now: @escaping () -> Int64) throws(StoreError) {
        self.config = config
        self.store = store
        self.now = now
        try rebuild()
    }

    public var state: StoreState { store.state }

    /// Stores a message under the stream's limits. The caller syncs the store (group commit) before it
    /// acknowledges.
    /// For deliver policy last_per_subject: the newest sequence at or below `bound` of every subject that
    /// passes `filter` (nil = all).
    func lastSequencesPerSubject(filter: [UInt8]?, upTo bound: UInt64) -> Set<UInt64> {
        var result: Set<UInt64> = []
        for (subject, sequences) in perSubject {
            if let filter, !Subject.matches(filter: filter, subject: subject) { continue }
            if let last = sequences.last(where: { $0 <= bound }) { result.insert(last) }
        }
        return result
    }

    public func publish(subject: [UInt8], headers: [UInt8], payload: [UInt8], messageID: String?) throws(PublishError) -> PublishResult {
        let time = now()
        if let messageID, let (sequence, storedAt) = recentIDs[messageID], time - storedAt < config.duplicateWindow {
            return .duplicate(sequence: sequence)
        }
        let size = subject.count + headers.count + payload.count + 16
        if config.maxMsgSize >= 0, headers.count + payload.count > Int(config.maxMsgSize) { throw .messageTooLarge }
        if config.discard == .new {
            if config.maxMsgs >= 0, store.state.messages >= UInt64(config.maxMsgs) { throw .maximumMessagesExceeded }
            if config.maxBytes >= 0, store.state.bytes + UInt64(size) > UInt64(config.maxBytes) { throw .maximumBytesExceeded }
            if config.maxMsgsPerSubject > 0, (perSubject[subject]?.count ?? 0) >= Int(config.maxMsgsPerSubject) {
                throw .maximumMessagesPerSubjectExceeded
            }
        }
        let sequence: UInt64
        do {
            sequence = try store.append(subject: subject, headers: headers, payload: payload, timestamp: time)
        } catch {
            throw .store(error)
        }
        perSubject[subject, default: []].append(sequence)
        if let messageID { recentIDs[messageID] = (sequence, time) }
        do {
            try enforceLimits(at: time)
        } catch {
            throw .store(error)
        }
        return .stored(sequence: sequence)
    }

    /// Drops what the limits no longer allow (discard old), messages past max_age and expired message ids.
    public func enforceLimits(at time: Int64) throws(StoreError) {
        if config.maxMsgsPerSubject > 0 {
            for (subject, sequences) in perSubject where sequences.count > Int(config.maxMsgsPerSubject) {
                for sequence in sequences.prefix(sequences.count - Int(config.maxMsgsPerSubject)) {
                    try removeMessage(sequence)
                }
                perSubject[subject] = Array(sequences.suffix(Int(config.maxMsgsPerSubject)))
            }
        }
        while config.maxMsgs >= 0, store.state.messages > UInt64(config.maxMsgs) {
            try removeOldest()
        }
        while config.maxBytes >= 0, store.state.bytes > UInt64(config.maxBytes), store.state.messages > 0 {
            try removeOldest()
        }
        if config.maxAge > 0 {
            while store.state.messages > 0 {
                let first = try store.load(store.state.firstSequence)
                guard time - first.timestamp > config.maxAge else { break }
                try removeOldest()
            }
        }
        if !recentIDs.isEmpty {
            recentIDs = recentIDs.filter { time - $0.value.1 < config.duplicateWindow }
        }
    }

    /// Removes one message (an ack under workqueue retention, or a delete request).
    @discardableResult
    public func removeMessage(_ sequence: UInt64) throws(StoreError) -> Bool {
        guard let message = try? store.load(sequence) else { return false }
        let removed = try store.remove(sequence)
        if removed { perSubject[message.subject]?.removeAll { $0 == sequence } }
        return removed
    }

    private func removeOldest() throws(StoreError) {
        let first = store.state.firstSequence
        if try !removeMessage(first) {
            // A gap at the front (already removed): the store's first sequence moves on by itself.
            return
        }
    }

    /// Per-subject sequences and recent message ids, from what the store holds (after a restart).
    private func rebuild() throws(StoreError) {
        let state = store.state
        guard state.messages > 0 else { return }
        let time = now()
        var sequence = state.firstSequence
        while sequence <= state.lastSequence {
            if let message = try? store.load(sequence) {
                perSubject[message.subject, default: []].append(sequence)
                if time - message.timestamp < config.duplicateWindow, let id = Self.messageID(in: message.headers) {
                    recentIDs[id] = (sequence, message.timestamp)
                }
            }
            sequence += 1
        }
    }

    // MARK: - Mirrors and republish (StreamSources.swift)

    /// Stores a mirrored message at its origin's `sequence` and time, passing over the sequences the origin
    /// no longer has. The stream's own limits apply; no de-duplication (the origin did it).
    public func storeMirrored(sequence: UInt64, timestamp: Int64, subject: [UInt8], headers: [UInt8], payload: [UInt8]) throws(PublishError) {
        do {
            try store.skip(to: sequence)
            let stored = try store.append(subject: subject, headers: headers, payload: payload, timestamp: timestamp)
            perSubject[subject, default: []].append(stored)
            try enforceLimits(at: now())
        } catch {
            throw .store(error)
        }
    }

    /// The newest sequence stored on exactly `subject` (0 when none): a republished message's Nats-Last-Sequence.
    func lastSequence(on subject: [UInt8]) -> UInt64 { perSubject[subject]?.last ?? 0 }

    /// The `Nats-Msg-Id` header's value in a NATS header block, if any.
    public static func messageID(in headers: [UInt8]) -> String? {
        // On the bytes: this runs for every captured message and for every stored one at start-up.
        let name = Array("nats-msg-id".utf8)
        let n = headers.count
        var i = 0
        // Skip the status line ("NATS/1.0...").
        while i + 1 < n, !(headers[i] == 0x0D && headers[i + 1] == 0x0A) { i += 1 }
        i += 2
        while i < n {
            var end = i
            while end + 1 < n, !(headers[end] == 0x0D && headers[end + 1] == 0x0A) { end += 1 }
            if end + 1 >= n { end = n }
            // A header line: name ":" value.
            if end - i > name.count, headers[i + name.count] == UInt8(ascii: ":") {
                var same = true
                for k in 0..<name.count {
                    let b = headers[i + k]
                    guard (b >= 0x41 && b <= 0x5A ? b | 0x20 : b) == name[k] else {
                        same = false
                        break
                    }
                }
                if same {
                    var a = i + name.count + 1
                    var b = end
                    while a < b, headers[a] == 0x20 || headers[a] == 0x09 { a += 1 }
                    while b > a, headers[b - 1] == 0x20 || headers[b - 1] == 0x09 { b -= 1 }
                    // An empty id is no id (else every such message would dedupe against the others).
                    return a < b ? String(decoding: headers[a..<b], as: UTF8.self) : nil
                }
            }
            i = end + 2
        }
        return nil
    }
}
