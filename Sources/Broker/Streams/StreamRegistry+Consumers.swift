import Foundation
import Protocol

/// The consumer half of the registry: create (with its idempotence rules), info, delete, names, list, and the
/// durable consumers' records.
extension StreamRegistry {
    /// CONSUMER.CREATE.<stream>[.<name>[.<filter>]] (`durableForm` false) and
    /// CONSUMER.DURABLE.CREATE.<stream>.<durable> (true). Returns the consumer (new or the same one again).
    func createConsumer(stream streamName: String, nameInSubject: String?, filterInSubject: String? = nil,
                        durableForm: Bool, _ request: ConsumerCreateRequest,
                        restoredBound: UInt64? = nil, restoring: Bool = false) -> Result<ConsumerEntry, JetStreamAPIError> {
        guard let entry = streams[streamName] else { return .failure(.streamNotFound) }
        var config = request.config ?? APIConsumerConfig()
        let durableName = config.durableName ?? (durableForm ? nameInSubject : nil)
        if let d = durableName, let n = nameInSubject, d != n { return .failure(.consumerNameMismatch) }
        let name = durableName ?? config.name ?? nameInSubject ?? makeConsumerName()
        config.name = name
        if durableName != nil { config.durableName = name }
        // CONSUMER.CREATE.<stream>.<name>.<filter>: the filter may come in the subject.
        if let filterInSubject, (config.filterSubject ?? "").isEmpty { config.filterSubject = filterInSubject }
        // A consumer saved by an older brokerd comes back whatever it asked for.
        if !restoring, let refusal = filterRefusal(config) { return .failure(refusal) }
        // nats-server's default for pull consumers, applied before any comparison (so a re-create matches).
        if (config.deliverSubject ?? "").isEmpty, (config.maxWaiting ?? 0) == 0 { config.maxWaiting = 512 }
        if let existing = consumers[streamName]?[name] {
            // A push consumer moves to another deliver subject only once nobody listens on the old one.
            if let old = existing.deliverSubject, let new = config.deliverSubject, !new.isEmpty, old != new, hasInterest(old) {
                return .failure(.consumerNameExists)
            }
            // "create" of an existing consumer: only with the very same configuration (nats-server's DeepEqual,
            // its own `_nats.` metadata aside).
            if request.action == "create", existing.config.asCreated != config.asCreated { return .failure(.consumerExists) }
            // Same configuration again: fine (nats-py re-binds durables this way). "update" and create-or-update
            // (no action, or "") change what may change.
            if existing.config.identity == config.identity {
                if existing.config != config { apply(config, to: existing) }
                return .success(existing)
            }
            if let refusal = Self.updateRefusal(from: existing.config, to: config) { return .failure(refusal) }
            apply(config, to: existing)
            return .success(existing)
        }
        if request.action == "update" { return .failure(.consumerDoesNotExist) }
        if entry.stream.config.retention == .workqueue, config.ackPolicy != .explicit {
            return .failure(.workqueueNeedsExplicitAck)
        }
        // The stream's max_consumers (nats-server counts the consumers clients see, not a mirror's or source's).
        if entry.config.maxConsumers > 0, !restoring, publicConsumers(of: streamName).count >= entry.config.maxConsumers {
            return .failure(.maximumConsumers)
        }
        let state = entry.stream.state
        var start: UInt64
        switch config.deliverPolicy {
        case .all, .lastPerSubject: start = max(state.firstSequence, 1)
        case .last: start = max(state.lastSequence, 1)
        case .new: start = state.lastSequence + 1
        case .byStartSequence: start = max(config.optStartSeq ?? 1, 1)
        case .byStartTime:
            // The first message stored at or after opt_start_time (RFC 3339).
            start = entry.stream.firstSequence(storedAtOrAfter: config.optStartTime.flatMap(APITime.parse) ?? 0)
        }
        let filters = config.subjectFilters
        var bound: UInt64 = 0
        var lastPerSubject: Set<UInt64> = []
        if config.deliverPolicy == .lastPerSubject {
            // The newest message of each subject, then everything new. A restored durable keeps its bound.
            bound = restoredBound ?? state.lastSequence
            lastPerSubject = entry.stream.lastSequencesPerSubject(filters: filters, upTo: bound)
            start = lastPerSubject.min() ?? bound + 1
        }
        let consumer = ConsumerEntry(stream: streamName, name: name, durable: durableName != nil, config: config,
                                     machine: ConsumerStateMachine(configuration: config.machineConfiguration, startSequence: start),
                                     filters: filters, deliverSubject: config.deliverSubject, created: currentDate)
        consumer.lastPerSubjectBound = bound
        consumer.lastPerSubject = lastPerSubject
        consumer.pausedUntil = config.pauseUntil.flatMap(APITime.parse)
        consumers[streamName, default: [:]][name] = consumer
        if consumer.durable {
            storage.saveConsumer(stream: streamName, name: name, ConsumerRecord(
                config: config, created: consumer.created.timeIntervalSince1970, lastPerSubjectBound: bound > 0 ? bound : nil))
            // A new consumer's state is on disk before it is answered (a crash must not make a deliver policy of
            // new, last or by_start_time recompute its start); a restored one keeps its saved state (a fresh one
            // written now could outlive it in a crash). One that cannot be written now is written on the tick.
            if !restoring {
                consumer.dirty = true
                try? saveState(of: consumer)
            }
        }
        return .success(consumer)
    }

    /// nats-server's checks of filter_subject / filter_subjects (as nats-server 2.15, a filter outside the stream's
    /// subjects is allowed: it matches nothing).
    private func filterRefusal(_ config: APIConsumerConfig) -> JetStreamAPIError? {
        // Options brokerd does not implement are refused, never silently ignored.
        func unsupported(_ what: String) -> JetStreamAPIError {
            JetStreamAPIError(code: 500, errCode: 10012, description: "\(what) not supported by brokerd")
        }
        if !(config.priorityGroups ?? []).isEmpty || !["", "none"].contains(config.priorityPolicy ?? "") {
            return unsupported("priority groups are")
        }
        if (config.rateLimitBps ?? 0) > 0 { return unsupported("rate_limit_bps is") }
        if config.replayPolicy == "original" { return unsupported("replay policy original is") }
        let many = config.filterSubjects ?? []
        if !(config.filterSubject ?? "").isEmpty, !many.isEmpty { return .consumerDuplicateFilterSubjects }
        if many.contains(where: \.isEmpty) { return .consumerEmptyFilter }
        for (i, a) in many.enumerated() {
            for b in many[(i + 1)...] where Subject.overlaps(a, b) { return .consumerOverlappingFilters }
        }
        return nil
    }

    /// What an update may not change (nats-server's checkNewConsumerConfig), as its 500 10012 errors.
    static func updateRefusal(from old: APIConsumerConfig, to new: APIConsumerConfig) -> JetStreamAPIError? {
        func refuse(_ text: String) -> JetStreamAPIError { JetStreamAPIError(code: 500, errCode: 10012, description: text) }
        if old.deliverPolicy != new.deliverPolicy { return refuse("deliver policy can not be updated") }
        if (old.memStorage ?? false) != (new.memStorage ?? false) { return refuse("storage type can not be updated") }
        if (old.optStartSeq ?? 0) != (new.optStartSeq ?? 0) { return refuse("start sequence can not be updated") }
        if old.optStartTime.flatMap(APITime.parse) != new.optStartTime.flatMap(APITime.parse) {
            return refuse("start time can not be updated")
        }
        if old.ackPolicy != new.ackPolicy { return refuse("ack policy can not be updated") }
        if old.replayPolicy != new.replayPolicy { return refuse("replay policy can not be updated") }
        if (old.idleHeartbeat ?? 0) != (new.idleHeartbeat ?? 0) { return refuse("heart beats can not be updated") }
        if (old.flowControl ?? false) != (new.flowControl ?? false) { return refuse("flow control can not be updated") }
        if (old.deliverSubject ?? "").isEmpty != (new.deliverSubject ?? "").isEmpty {
            return refuse((old.deliverSubject ?? "").isEmpty ? "can not update pull consumer to push based"
                                                             : "can not update push consumer to pull based")
        }
        if old.maxWaiting != new.maxWaiting { return refuse("max waiting can not be updated") }
        if let backoff = new.backoff, !backoff.isEmpty, new.maxDeliver != -1, backoff.count > new.maxDeliver {
            return JetStreamAPIError(code: 400, errCode: 10116, description: "max deliver is required to be > length of backoff values")
        }
        return nil
    }

    /// An update: the new configuration, its delivery rules, filters and deliver subject; saved for a durable.
    private func apply(_ config: APIConsumerConfig, to consumer: ConsumerEntry) {
        var config = config
        config.name = consumer.name
        consumer.config = config
        consumer.machine.configuration = config.machineConfiguration
        consumer.filters = config.subjectFilters
        consumer.pendingCache = nil
        consumer.deliverSubject = config.deliverSubject
        consumer.pausedUntil = config.pauseUntil.flatMap(APITime.parse)
        if consumer.durable {
            storage.saveConsumer(stream: consumer.stream, name: consumer.name, ConsumerRecord(
                config: config, created: consumer.created.timeIntervalSince1970,
                lastPerSubjectBound: consumer.lastPerSubjectBound > 0 ? consumer.lastPerSubjectBound : nil))
        }
    }

    /// CONSUMER.PAUSE: pauses deliveries until `until` (RFC 3339), or resumes (nil or past); kept in the config.
    func pauseConsumer(stream: String, name: String, until: String?) -> Result<ConsumerPauseResponse, JetStreamAPIError> {
        guard streams[stream] != nil else { return .failure(.streamNotFound) }
        guard let consumer = consumers[stream]?[name] else { return .failure(.consumerNotFound) }
        let time = now()
        let nanoseconds = until.flatMap(APITime.parse)
        var config = consumer.config
        config.pauseUntil = nanoseconds.map { JetStream.timestamp(nanoseconds: $0) }
        apply(config, to: consumer)
        let paused = nanoseconds.map { $0 > time } ?? false
        return .success(ConsumerPauseResponse(paused: paused, pauseUntil: APITime(nanoseconds: nanoseconds),
                                              pauseRemaining: paused ? nanoseconds! - time : nil))
    }

    func consumer(stream: String, name: String) -> Result<ConsumerEntry, JetStreamAPIError> {
        guard let consumer = consumers[stream]?[name] else { return .failure(.consumerNotFound) }
        return .success(consumer)
    }

    func deleteConsumer(stream: String, name: String) -> Result<ConsumerDeleteResponse, JetStreamAPIError> {
        guard consumers[stream]?.removeValue(forKey: name) != nil else { return .failure(.consumerNotFound) }
        storage.removeConsumer(stream: stream, name: name)
        return .success(ConsumerDeleteResponse())
    }

    func consumerNames(stream: String) -> ConsumerNamesResponse {
        let names = publicConsumers(of: stream).map(\.name).sorted()
        return ConsumerNamesResponse(total: names.count, consumers: names)
    }

    func consumerList(stream: String) -> ConsumerListResponse {
        let infos = publicConsumers(of: stream).sorted { $0.name < $1.name }.map(info(of:))
        return ConsumerListResponse(total: infos.count, consumers: infos)
    }

    func info(of c: ConsumerEntry) -> ConsumerInfo {
        let m = c.machine
        return ConsumerInfo(
            streamName: c.stream, name: c.name, created: APITime(c.created), config: c.config,
            delivered: SequencePair(consumerSeq: m.deliveredConsumer, streamSeq: m.deliveredStream),
            ackFloor: SequencePair(consumerSeq: m.ackFloorConsumer, streamSeq: m.ackFloorStream),
            numAckPending: m.pending.count, numRedelivered: m.deliveryCounts.values.filter { $0 > 1 }.count,
            numWaiting: c.waiting.count, numPending: streams[c.stream].map { c.pending(in: $0.stream) } ?? 0,
            paused: pauseRemaining(c).map { _ in true }, pauseRemaining: pauseRemaining(c))
    }

    private func pauseRemaining(_ c: ConsumerEntry) -> Int64? {
        guard let until = c.pausedUntil ?? c.config.pauseUntil.flatMap(APITime.parse) else { return nil }
        let time = now()
        return until > time ? until - time : nil
    }

    /// A durable consumer's delivery state to storage, fsynced (on the tick when it changed, for confirmed acks,
    /// at close). Throws when it could not be written: the consumer stays dirty and is written again.
    func saveState(of consumer: ConsumerEntry, sync: Bool = true) throws {
        try storage.saveConsumerState(stream: consumer.stream, name: consumer.name, consumer.machine.encoded(), sync: sync)
        consumer.dirty = false
    }

    /// Restores the durable consumers of `stream` (after the stream itself).
    func restoreConsumers(of stream: String) {
        for (name, record, saved) in storage.savedConsumers(stream: stream) {
            // Creating it writes a fresh state, so the saved one was read before.
            guard case .success(let consumer) = createConsumer(
                stream: stream, nameInSubject: name, durableForm: true, ConsumerCreateRequest(config: record.config),
                restoredBound: record.lastPerSubjectBound, restoring: true) else { continue }
            if let saved, var restored = ConsumerStateMachine(configuration: consumer.machine.configuration, decoding: saved) {
                // State saved after a delivery whose message a crash then took (it was not fsynced yet) must not
                // point past the stream: that sequence will be used again by the next message.
                let before = restored.encoded()
                restored.clamp(toLastSequence: streams[stream]?.stream.state.lastSequence ?? 0)
                consumer.machine = restored
                if restored.encoded() != before { consumer.dirty = true }
            }
        }
    }
}
