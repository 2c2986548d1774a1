import Foundation
import Protocol

/// The registry's part in mirrors, sources, subject transforms and republish: nats-server's configuration
/// checks (checkStreamCfg, with its errors), and each stream's `StreamSourcing` (kept while the mirror or
/// sources stay the same, so an update of other fields keeps the positions).
extension StreamRegistry {
    /// Builds (or keeps) the sourcing of stream `name` after it was opened, created or updated.
    func attachSourcing(_ name: String) {
        guard let entry = streams[name] else {
            sourcing[name] = nil
            return
        }
        if let current = sourcing[name], current.configuration.mirror == entry.config.mirror,
           current.configuration.sources == entry.config.sources {
            return
        }
        let fresh = StreamSourcing(stream: name, config: entry.config)
        fresh?.recover(from: entry.stream.store, saved: storage.savedSourcePositions(stream: name))
        sourcing[name] = fresh
    }

    /// The consumers clients see (names, lists, counts): not the ones mirrors and sources asked for, as
    /// nats-server hides its direct consumers (recognised here by the metadata the request carries).
    func publicConsumers(of stream: String) -> [ConsumerEntry] {
        (consumers[stream] ?? [:]).values.filter { !$0.isSourcing }
    }

    /// nats-server's refusal of a mirror, sources, subject transform or republish configuration, in its order.
    func sourcesRefusal(_ config: APIStreamConfig, existing: APIStreamConfig?) -> JetStreamAPIError? {
        if let existing, existing.mirror != config.mirror { return .mirrorNotUpdatable }
        if let mirror = config.mirror {
            if (config.firstSeq ?? 0) > 0 { return .mirrorWithFirstSeq }
            if !config.subjects.isEmpty { return .mirrorWithSubjects }
            if config.sources != nil { return .mirrorWithSources }
            if mirror.filterSubject != nil, mirror.subjectTransforms != nil { return .mirrorMultipleFilters }
            if let refusal = transformsRefusal(mirror.subjectTransforms ?? [], mirror: true) { return refusal }
            if mirror.external == nil {
                guard Self.isValidStreamName(mirror.name) else { return .mirrorInvalidStreamName }
                if let origin = streams[mirror.name], config.maxMsgSize > 0, origin.config.maxMsgSize > 0,
                   config.maxMsgSize < origin.config.maxMsgSize {
                    return .mirrorMaxMessageSizeTooBig
                }
            }
        }
        var indexNames: Set<String> = []
        for source in config.sources ?? [] {
            guard Self.isValidStreamName(source.name) else { return .sourceInvalidStreamName }
            guard indexNames.insert(source.indexName).inserted else { return .sourceDuplicate }
            if source.filterSubject != nil, source.subjectTransforms != nil { return .sourceMultipleFilters }
            if let refusal = transformsRefusal(source.subjectTransforms ?? [], mirror: false) { return refusal }
            if source.external == nil, let origin = streams[source.name], config.maxMsgSize > 0, origin.config.maxMsgSize > 0,
               config.maxMsgSize < origin.config.maxMsgSize {
                return .sourceMaxMessageSizeTooBig
            }
        }
        for external in ((config.sources ?? []) + (config.mirror.map { [$0] } ?? [])).compactMap(\.external) {
            if !external.deliver.isEmpty, !Subject.isValidPublish(external.deliver) {
                return JetStreamAPIError(code: 400, errCode: 10024,
                                         description: "stream external delivery prefix \(external.deliver) must not contain wildcards")
            }
            if !external.api.isEmpty {
                if !Subject.isValidPublish(external.api) {
                    return .invalidConfig("stream external api prefix \"\(external.api)\" must be a valid subject without wildcards")
                }
                if Subject.overlaps(external.api, "$JS.API") {
                    return JetStreamAPIError(code: 400, errCode: 10021,
                                             description: "stream external api prefix \(external.api) must not overlap with $JS.API")
                }
            }
        }
        if formsCycle(config) { return .invalidConfig("detected cycle") }
        if let transform = config.subjectTransform {
            if !transform.src.isEmpty, !Subject.isValidSubscription(transform.src) {
                return JetStreamAPIError(code: 400, errCode: 10155, description: "stream transform source: invalid subject \(transform.src)")
            }
            if let error = StreamIngest.validate(source: transform.src, destination: transform.dest) {
                return JetStreamAPIError(code: 400, errCode: 10156, description: "stream transform: \(error)")
            }
        }
        if let republish = config.republish {
            var source = (republish.src ?? "").isEmpty ? ">" : republish.src!
            var destination = republish.dest
            if destination == ">", source == ">", let transform = config.subjectTransform, config.subjects == [transform.src] {
                source = transform.dest
                destination = transform.dest
            }
            if config.subjects.contains(where: { Subject.overlaps(destination, $0) }) {
                return .invalidConfig("stream configuration for republish destination forms a cycle")
            }
            if !Subject.isValidSubscription(source) || destination.isEmpty || StreamIngest.validate(source: source, destination: destination) != nil {
                return .invalidConfig("stream configuration for republish with transform from '\(source)' to '\(destination)' not valid")
            }
        }
        return nil
    }

    private func transformsRefusal(_ transforms: [SubjectTransformConfig], mirror: Bool) -> JetStreamAPIError? {
        for transform in transforms {
            if !transform.src.isEmpty, !Subject.isValidSubscription(transform.src) {
                return mirror ? JetStreamAPIError(code: 400, errCode: 10151, description: "mirror transform source: invalid subject \(transform.src)")
                    : JetStreamAPIError(code: 400, errCode: 10145, description: "source transform source: invalid subject \(transform.src)")
            }
            if let error = StreamIngest.validate(source: transform.src, destination: transform.dest) {
                return mirror ? JetStreamAPIError(code: 400, errCode: 10154, description: "mirror transform: \(error)")
                    : JetStreamAPIError(code: 400, errCode: 10146, description: "source transform: \(error)")
            }
        }
        for (i, a) in transforms.enumerated() {
            for (j, b) in transforms.enumerated() where i != j {
                let x = a.src.isEmpty ? ">" : a.src, y = b.src.isEmpty ? ">" : b.src
                if Subject.overlaps(x, y) { return mirror ? .mirrorOverlappingFilters : .sourceOverlappingFilters }
            }
        }
        return nil
    }

    /// nats-server's cycle check: following sources and mirrors from `config` leads back to a stream whose
    /// subjects a source's filter takes.
    private func formsCycle(_ config: APIStreamConfig) -> Bool {
        var toVisit = [config]
        var visited: Set<String> = []
        while !toVisit.isEmpty {
            let current = toVisit.removeFirst()
            visited.insert(current.name)
            for source in current.sources ?? [] where source.external == nil {
                if visited.contains(source.name) {
                    guard let filter = source.filterSubject else { return true }
                    if current.subjects.contains(where: { Subject.overlaps($0, filter) }) { return true }
                } else if let origin = streams[source.name] {
                    toVisit.append(origin.config)
                }
            }
            if let mirror = current.mirror, mirror.external == nil {
                if visited.contains(mirror.name) { return true }
                if let origin = streams[mirror.name] { toVisit.append(origin.config) }
            }
        }
        return false
    }
}

extension JetStreamAPIError {
    // nats-server's errors.json, for mirrors and sources.
    static let mirrorWithSubjects = Self(code: 400, errCode: 10034, description: "stream mirrors can not contain subjects")
    static let mirrorWithSources = Self(code: 400, errCode: 10031, description: "stream mirrors can not also contain other sources")
    static let mirrorWithFirstSeq = Self(code: 400, errCode: 10143, description: "stream mirrors can not have first sequence configured")
    static let mirrorNotUpdatable = Self(code: 400, errCode: 10055, description: "stream mirror configuration can not be updated")
    static let mirrorInvalidStreamName = Self(code: 400, errCode: 10142, description: "mirrored stream name is invalid")
    static let mirrorMultipleFilters = Self(code: 400, errCode: 10150,
                                            description: "mirror with multiple subject transforms cannot also have a single subject filter")
    static let mirrorOverlappingFilters = Self(code: 400, errCode: 10152, description: "mirror subject filters can not overlap")
    static let mirrorMaxMessageSizeTooBig = Self(code: 400, errCode: 10030, description: "stream mirror must have max message size >= source")
    static let sourceInvalidStreamName = Self(code: 400, errCode: 10141, description: "sourced stream name is invalid")
    static let sourceDuplicate = Self(code: 400, errCode: 10140, description: "duplicate source configuration detected")
    static let sourceMultipleFilters = Self(code: 400, errCode: 10144,
                                            description: "source with multiple subject transforms cannot also have a single subject filter")
    static let sourceOverlappingFilters = Self(code: 400, errCode: 10147, description: "source filters can not overlap")
    static let sourceMaxMessageSizeTooBig = Self(code: 400, errCode: 10046, description: "stream source must have max message size >= target")
}

extension ConsumerEntry {
    /// Asked for by a mirror or a source (StreamSourcing's request carries this metadata).
    var isSourcing: Bool {
        guard let metadata = config.metadata else { return false }
        return metadata["_nats.mirror.stream"] != nil || metadata["_nats.src.stream"] != nil
    }
}
