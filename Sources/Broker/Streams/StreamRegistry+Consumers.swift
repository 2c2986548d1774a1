import Foundation

/// The consumer half of the registry: create (with its idempotence rules), info, delete, names, list, and the
/// durable consumers' records.
extension StreamRegistry {
    /// CONSUMER.CREATE.<stream>[.<name>[.<filter>]] (`durableForm` false) and
    /// CONSUMER.DURABLE.CREATE.<stream>.<durable> (true). Returns the consumer (new or the same one again).
    func createConsumer(stream streamName: String, nameInSubject: String?, filterInSubject: String? = nil,
                        durableForm: Bool, _ request: ConsumerCreateRequest,
                        restoredBound: UInt64? = nil) -> Result<ConsumerEntry, JetStreamAPIError> {
        guard let entry = streams[streamName] else { return .failure(.streamNotFound) }
        var config = request.config ?? APIConsumerConfig()
        let durableName = config.durableName ?? (durableForm ? nameInSubject : nil)
        if let d = durableName, let n = nameInSubject, d != n { return .failure(.consumerNameMismatch) }
        let name = durableName ?? config.name ?? nameInSubject ?? makeConsumerName()
        config.name = name
        if durableName != nil { config.durableName = name }
        // CONSUMER.CREATE.<stream>.<name>.<filter>: the filter may come in the subject.
        if let filterInSubject, (config.filterSubject ?? "").isEmpty { config.filterSubject = filterInSubject }
        if let existing = consumers[streamName]?[name] {
            // Same configuration again: fine (nats-py re-binds durables this way), and nats.go's
            // create-or-update (action "") gets the consumer as it is; otherwise an error.
            if existing.config.identity == config.identity || request.action == "" { return .success(existing) }
            return .failure(.consumerExists)
        }
        if entry.stream.config.retention == .workqueue, config.ackPolicy != .explicit {
            return .failure(.workqueueNeedsExplicitAck)
        }
        // The stream's max_consumers (nats-server counts the consumers clients see, not a mirror's or source's).
        if entry.config.maxConsumers > 0, restoredBound == nil, publicConsumers(of: streamName).count >= entry.config.maxConsumers {
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
            let since = config.optStartTime.flatMap(APITime.parse) ?? 0
            var s = max(state.firstSequence, 1)
            while s <= state.lastSequence, let m = try? entry.stream.store.load(s), m.timestamp < since { s += 1 }
            start = s
        }
        let filter = config.filterSubject.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        var bound: UInt64 = 0
        var lastPerSubject: Set<UInt64> = []
        if config.deliverPolicy == .lastPerSubject {
            // The newest message of each subject, then everything new. A restored durable keeps its bound.
            bound = restoredBound ?? state.lastSequence
            lastPerSubject = entry.stream.lastSequencesPerSubject(filter: filter, upTo: bound)
            start = lastPerSubject.min() ?? bound + 1
        }
        let consumer = ConsumerEntry(stream: streamName, name: name, durable: durableName != nil, config: config,
                                     machine: ConsumerStateMachine(configuration: config.machineConfiguration, startSequence: start),
                                     filter: filter, deliverSubject: config.deliverSubject, created: currentDate)
        consumer.lastPerSubjectBound = bound
        consumer.lastPerSubject = lastPerSubject
        consumers[streamName, default: [:]][name] = consumer
        if consumer.durable {
            storage.saveConsumer(stream: streamName, name: name, ConsumerRecord(
                config: config, created: consumer.created.timeIntervalSince1970, lastPerSubjectBound: bound > 0 ? bound : nil))
            saveState(of: consumer)
        }
        return .success(consumer)
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
            // The consumer sequence of the ack floor is not tracked: the stream's, as brokerd has always sent.
            ackFloor: SequencePair(consumerSeq: m.ackFloorStream, streamSeq: m.ackFloorStream),
            numAckPending: m.pending.count, numRedelivered: m.deliveryCounts.values.filter { $0 > 1 }.count,
            numWaiting: c.waiting.count, numPending: streams[c.stream].map { c.pending(in: $0.stream) } ?? 0)
    }

    /// A durable consumer's delivery state to storage (after deliveries and acks, on the tick, at close).
    func saveState(of consumer: ConsumerEntry) {
        storage.saveConsumerState(stream: consumer.stream, name: consumer.name, consumer.machine.encoded())
    }

    /// Restores the durable consumers of `stream` (after the stream itself).
    func restoreConsumers(of stream: String) {
        for (name, record, saved) in storage.savedConsumers(stream: stream) {
            // Creating it writes a fresh state, so the saved one was read before.
            guard case .success(let consumer) = createConsumer(
                stream: stream, nameInSubject: name, durableForm: true, ConsumerCreateRequest(config: record.config),
                restoredBound: record.lastPerSubjectBound) else { continue }
            if let saved, var restored = ConsumerStateMachine(configuration: consumer.machine.configuration, decoding: saved) {
                // State saved after a delivery whose message a crash then took (it was not fsynced yet) must not
                // point past the stream: that sequence will be used again by the next message.
                restored.clamp(toLastSequence: streams[stream]?.stream.state.lastSequence ?? 0)
                consumer.machine = restored
                saveState(of: consumer)
            }
        }
    }
}
