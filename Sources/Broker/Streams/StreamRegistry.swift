import Foundation
import Protocol

/// A stream: its store and rules, and the configuration it was created with.
struct StreamEntry {
    var stream: DurableStream
    /// The configuration as the client sent it, with defaults filled in (echoed in responses).
    var config: APIStreamConfig
    var created: Date
    /// subject_transform and republish (StreamIngest.swift); nil when the stream has neither.
    let ingest: StreamIngest?

    init(stream: DurableStream, config: APIStreamConfig, created: Date) {
        self.stream = stream
        self.config = config
        self.created = created
        ingest = StreamIngest(config: config)
    }
}

/// The streams and consumers, and every decision the JetStream API makes about them: name and subject checks,
/// overlapping subjects, the server's storage limits, idempotent creates, and the reply each request gets.
/// Plain Swift: the storage is injected (a test gives it memory stores) and so is the clock; nothing here
/// runs on a queue of its own (JetStream calls it on its queue).
final class StreamRegistry {
    private(set) var streams: [String: StreamEntry] = [:]
    var consumers: [String: [String: ConsumerEntry]] = [:]
    let storage: any JetStreamStorage
    let now: @Sendable () -> Int64
    /// Names for consumers the client left unnamed (random; tests make them predictable).
    var makeConsumerName: () -> String = NATSInboxToken.make
    /// Whether anyone listens on a subject (JetStream sets it once attached; a rebind checks the old deliver subject).
    var hasInterest: (String) -> Bool = { _ in false }
    /// Server-wide byte limits for memory and file streams (`max_memory_store`, `max_file_store`); nil = none.
    var maxMemory: Int64?
    var maxStore: Int64?
    /// Each mirror's or sourcing stream's origins and positions (StreamRegistry+Sources.swift).
    var sourcing: [String: StreamSourcing] = [:]

    init(storage: any JetStreamStorage, now: @escaping @Sendable () -> Int64) {
        self.storage = storage
        self.now = now
    }

    var currentDate: Date { Date(timeIntervalSince1970: Double(now()) / 1e9) }

    /// Opens the saved streams and their durable consumers; returns their names, in order.
    func restore() throws -> [String] {
        var restored: [String] = []
        for (name, record) in storage.savedStreams() {
            streams[name] = try openStream(name: name, config: record.config, created: Date(timeIntervalSince1970: record.created))
            attachSourcing(name)
            restoreConsumers(of: name)
            restored.append(name)
        }
        return restored
    }

    // MARK: - Streams

    func accountInfo(api: AccountInfoResponse.APIStats) -> AccountInfoResponse {
        AccountInfoResponse(memory: usage(of: .memory), storage: usage(of: .file), streams: streams.count,
                            consumers: streams.keys.reduce(0) { $0 + publicConsumers(of: $1).count }, api: api)
    }

    /// STREAM.CREATE and STREAM.UPDATE. Creating the same stream again is no error (`did_create` false).
    func createStream(_ name: String, _ request: APIStreamConfig, update: Bool = false) -> Result<StreamInfo, JetStreamAPIError> {
        guard Self.isValidStreamName(name) else { return .failure(.invalidStreamName) }
        var config = request
        if !config.name.isEmpty, config.name != name { return .failure(.streamNameMismatch) }
        config.name = name
        // A mirror or a stream with sources has no subjects unless given (nats-server).
        if config.subjects.isEmpty && config.mirror == nil && config.sources == nil { config.subjects = [name] }
        guard config.subjects.allSatisfy(Subject.isValidSubscription) else { return .failure(.invalidSubject) }
        if let refusal = sourcesRefusal(config, existing: streams[name]?.config) { return .failure(refusal) }
        if let refusal = Self.configRefusal(&config) { return .failure(refusal) }
        if let existing = streams[name] {
            // nats-server: creating an identical stream again is not an error.
            if existing.config == config { return .success(info(name, didCreate: false)) }
            guard update else { return .failure(.streamNameInUse) }
            if config.storage != existing.config.storage { return .failure(.storageTypeChange) }
            if let refusal = Self.updateRefusal(from: existing.config, to: config) { return .failure(refusal) }
            if let refusal = reservationRefusal(config, replacing: name) { return .failure(refusal) }
            do {
                let stream = try DurableStream(config: config.streamConfig, store: existing.stream.store, now: now)
                try stream.enforceLimits(at: now())
                let entry = StreamEntry(stream: stream, config: config, created: existing.created)
                streams[name] = entry
                // A new DurableStream counts removals from 0: cached pending counts would look valid.
                for consumer in (consumers[name] ?? [:]).values { consumer.pendingCache = nil }
                attachSourcing(name)
                try storage.saveStream(name, StreamRecord(config: config, created: entry.created.timeIntervalSince1970))
                return .success(info(name, didCreate: nil))
            } catch {
                return .failure(.streamUpdateFailed(error))
            }
        }
        if update { return .failure(.streamNotFound) }
        if config.sealed { return .failure(.invalidConfig("stream configuration for create can not be sealed")) }
        // Overlapping subjects with another stream: nats-server refuses.
        for entry in streams.values {
            for a in entry.stream.config.subjects {
                for b in config.subjects where Subject.overlaps(a, b) { return .failure(.subjectsOverlap) }
            }
        }
        if let refusal = reservationRefusal(config, replacing: nil) { return .failure(refusal) }
        do {
            let entry = try openStream(name: name, config: config, created: currentDate)
            if let first = config.firstSeq, first > 1, entry.stream.state.lastSequence == 0 {
                try entry.stream.store.skip(to: first)
            }
            streams[name] = entry
            attachSourcing(name)
            try storage.saveStream(name, StreamRecord(config: config, created: entry.created.timeIntervalSince1970))
            return .success(info(name, didCreate: true))
        } catch {
            return .failure(.streamCreateFailed(error))
        }
    }

    func streamInfo(_ name: String) -> Result<StreamInfo, JetStreamAPIError> {
        guard streams[name] != nil else { return .failure(.streamNotFound) }
        return .success(info(name, didCreate: nil))
    }

    /// Removes the stream, its consumers and its files.
    func deleteStream(_ name: String) -> Result<StreamDeleteResponse, JetStreamAPIError> {
        guard let entry = streams.removeValue(forKey: name) else { return .failure(.streamNotFound) }
        consumers[name] = nil
        sourcing[name] = nil
        try? entry.stream.store.close()
        storage.removeStream(name)
        return .success(StreamDeleteResponse())
    }

    func streamNames(_ request: StreamNamesRequest) -> StreamNamesResponse {
        var names = streams.keys.sorted()
        if let subject = request.subject {
            names = names.filter { name in streams[name]!.stream.config.subjects.contains { Subject.overlaps($0, subject) } }
        }
        return StreamNamesResponse(total: names.count, streams: names)
    }

    func streamList() -> StreamListResponse {
        let infos = streams.keys.sorted().map { info($0, didCreate: nil) }
        return StreamListResponse(total: infos.count, streams: infos)
    }

    // MARK: - Server limits

    func limit(for storage: StreamConfig.Storage) -> Int64? {
        storage == .memory ? maxMemory : maxStore
    }

    /// Bytes held by every stream of one storage type.
    func usage(of storage: StreamConfig.Storage) -> UInt64 {
        var total: UInt64 = 0
        for entry in streams.values where entry.stream.config.storage == storage { total += entry.stream.state.bytes }
        return total
    }

    /// nats-server reserves each stream's max_bytes against the server's limit: a stream that does not fit
    /// is refused (500, 10028 memory / 10047 storage).
    private func reservationRefusal(_ config: APIStreamConfig, replacing name: String?) -> JetStreamAPIError? {
        guard let limit = limit(for: config.storage) else { return nil }
        var total: Int64 = 0
        for (other, entry) in streams where other != name && entry.stream.config.storage == config.storage {
            total += max(entry.config.maxBytes, 0)
        }
        guard total + max(config.maxBytes, 1) > limit else { return nil }
        return config.storage == .memory ? .insufficientMemory : .insufficientStorage
    }

    // MARK: - Helpers

    private func openStream(name: String, config: APIStreamConfig, created: Date) throws -> StreamEntry {
        let store = try storage.makeStore(stream: name, storage: config.storage)
        let stream = try DurableStream(config: config.streamConfig, store: store, now: now)
        return StreamEntry(stream: stream, config: config, created: created)
    }

    func info(_ name: String, didCreate: Bool?) -> StreamInfo {
        let entry = streams[name]!
        let state = entry.stream.state
        var firstTime = APITime.zero, lastTime = APITime.zero
        if state.messages > 0 {
            if let first = try? entry.stream.store.load(state.firstSequence) { firstTime = APITime(nanoseconds: first.timestamp) }
            if let last = try? entry.stream.store.load(state.lastSequence) { lastTime = APITime(nanoseconds: last.timestamp) }
        }
        let origins = sourcing[name]?.info(now: now())
        return StreamInfo(
            config: entry.config, created: APITime(entry.created),
            state: StreamState(messages: state.messages, bytes: state.bytes, firstSeq: state.firstSequence, firstTime: firstTime,
                               lastSeq: state.lastSequence, lastTime: lastTime,
                               numSubjects: entry.stream.subjectCount > 0 ? entry.stream.subjectCount : nil,
                               numDeleted: state.messages > 0 && state.lastSequence + 1 - state.firstSequence > state.messages
                                   ? Int(state.lastSequence + 1 - state.firstSequence - state.messages) : nil,
                               consumerCount: publicConsumers(of: name).count),
            mirror: origins?.mirror, sources: origins?.sources, didCreate: didCreate)
    }

    /// nats-server's checks of a stream configuration (checkStreamCfg) that brokerd applies, with its texts, and
    /// its normalisations (subject delete markers turn on TTLs and roll-ups). Options brokerd does not implement
    /// are refused, never silently ignored.
    static func configRefusal(_ config: inout APIStreamConfig) -> JetStreamAPIError? {
        if config.numReplicas > 1 { return .replicasNotSupported }
        // nats-server's normalisations: 0 (or below -1) is "no limit" for these.
        if config.maxConsumers == 0 || config.maxConsumers < -1 { config.maxConsumers = -1 }
        if config.maxMsgs == 0 || config.maxMsgs < -1 { config.maxMsgs = -1 }
        if config.maxBytes == 0 || config.maxBytes < -1 { config.maxBytes = -1 }
        if config.maxMsgsPerSubject == 0 || config.maxMsgsPerSubject < -1 { config.maxMsgsPerSubject = -1 }
        if config.maxMsgSize == 0 || config.maxMsgSize < -1 { config.maxMsgSize = -1 }
        if config.allowMsgCounter == true { return .invalidConfig("message counters are not supported by brokerd") }
        if config.allowAtomic == true { return .invalidConfig("atomic batch publishing is not supported by brokerd") }
        if config.allowBatched == true { return .invalidConfig("batch publishing is not supported by brokerd") }
        if config.allowMsgSchedules == true { return .invalidConfig("message schedules are not supported by brokerd") }
        if let mode = config.persistMode, !mode.isEmpty, mode != "default" {
            return .invalidConfig("persist mode \"\(mode)\" is not supported by brokerd (every publish is acknowledged after fsync)")
        }
        if case .object(let limits)? = config.consumerLimits, !limits.isEmpty {
            return .invalidConfig("consumer_limits are not supported by brokerd")
        }
        if config.maxAge < 0 { return .invalidConfig("max age can not be negative") }
        if config.maxAge != 0 && config.maxAge < 100_000_000 { return .invalidConfig("max age needs to be >= 100ms") }
        if config.maxAge != 0 && config.duplicateWindow > config.maxAge {
            // A default window longer than max_age is cut to it (nats-server); a chosen one is an error.
            if config.duplicateWindow == APIStreamConfig.defaultDuplicateWindow {
                config.duplicateWindow = config.maxAge
            } else {
                return .invalidConfig("duplicates window can not be larger then max age")
            }
        }
        if config.duplicateWindow < 100_000_000 { return .invalidConfig("duplicates window needs to be >= 100ms") }
        if config.denyPurge && config.allowRollupHdrs { return .invalidConfig("roll-ups require the purge permission") }
        if config.discardNewPerSubject == true {
            if config.discard != .new { return .invalidConfig("discard new per subject requires discard new policy to be set") }
            if config.maxMsgsPerSubject <= 0 { return .invalidConfig("discard new per subject requires max msgs per subject > 0") }
        }
        if let ttl = config.subjectDeleteMarkerTTL {
            if ttl < 0 { return .invalidConfig("subject delete marker TTL must not be negative") }
            if ttl > 0 {
                if ttl < 1_000_000_000 { return .invalidConfig("subject delete marker TTL must be at least 1 second") }
                if config.mirror != nil { return .invalidConfig("subject delete markers forbidden on mirrors") }
                config.allowMsgTTL = true
                if !config.allowRollupHdrs {
                    config.allowRollupHdrs = true
                    config.denyPurge = false
                }
            }
        }
        return nil
    }

    /// What an update may not change (nats-server's configUpdateCheck).
    static func updateRefusal(from old: APIStreamConfig, to new: APIStreamConfig) -> JetStreamAPIError? {
        if (old.retention == .workqueue) != (new.retention == .workqueue), old.retention != new.retention {
            return .invalidConfig("stream configuration update can not change retention policy to/from workqueue")
        }
        if old.sealed && !new.sealed { return .invalidConfig("stream configuration update can not unseal a sealed stream") }
        if old.denyDelete && !new.denyDelete { return .invalidConfig("stream configuration update can not cancel deny message deletes") }
        if old.denyPurge && !new.denyPurge { return .invalidConfig("stream configuration update can not cancel deny purge") }
        if old.allowMsgTTL == true && new.allowMsgTTL != true { return .invalidConfig("message TTL status can not be disabled") }
        return nil
    }

    static func isValidStreamName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains { " \t\r\n.*>/\\".contains($0) }
    }
}
