import Foundation
import HeapModule
import NATSConfig
import NIOCore
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
    /// `Nats-Rollup` headers are honoured (and not refused) only with this, and not with denyPurge.
    public var allowRollup = false
    public var denyDelete = false
    public var denyPurge = false
    /// A sealed stream takes no publishes, deletes or purges.
    public var sealed = false
    /// `Nats-TTL` headers are refused unless this is set.
    public var allowMsgTTL = false
    /// Nanoseconds; > 0: a subject whose last message ages out gets a delete marker that lives this long.
    public var subjectDeleteMarkerTTL: Int64 = 0
    /// With discard new and max_msgs_per_subject: a full subject refuses new messages (else the oldest goes).
    public var discardNewPerSubject = false

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
        case sealed
        case streamNotMatch
        case ttlDisabled
        case ttlInvalid
        case wrongLastSequence(UInt64)
        case expectedLastSubjectSequenceSubjectAlone
        case wrongLastMsgID(String)
        case rollupNotPermitted
        case rollupInvalid(String)
        case sourceHeaderNotAllowed
        /// A header of a feature brokerd's streams never enable (counters, batches, schedules).
        case featureDisabled(code: Int, errorCode: Int, description: String)

        public var description: String {
            switch self {
            case .messageTooLarge: return "message size exceeds maximum allowed"
            case .maximumMessagesExceeded: return "maximum messages exceeded"
            case .maximumBytesExceeded: return "maximum bytes exceeded"
            case .maximumMessagesPerSubjectExceeded: return "maximum messages per subject exceeded"
            case .store(let e): return "storage failure: \(e)"
            case .sealed: return "invalid operation on sealed stream"
            case .streamNotMatch: return "expected stream does not match"
            case .ttlDisabled: return "per-message TTL is disabled"
            case .ttlInvalid: return "invalid per-message TTL"
            case .wrongLastSequence(let seq): return "wrong last sequence: \(seq)"
            case .expectedLastSubjectSequenceSubjectAlone: return "missing sequence for expected last sequence per subject"
            case .wrongLastMsgID(let id): return "wrong last msg ID: \(id)"
            case .rollupNotPermitted: return "rollup not permitted"
            case .rollupInvalid(let value): return "rollup value invalid: \"\(value)\""
            case .sourceHeaderNotAllowed: return "message stream source header is not allowed"
            case .featureDisabled(_, _, let description): return description
            }
        }

        /// nats-server's HTTP-like code and JetStream error code for this refusal.
        public var codes: (code: Int, errorCode: Int) {
            switch self {
            case .messageTooLarge: return (400, 10054)
            case .maximumMessagesExceeded, .maximumBytesExceeded, .maximumMessagesPerSubjectExceeded, .store: return (503, 10077)
            case .sealed: return (400, 10109)
            case .streamNotMatch: return (400, 10060)
            case .ttlDisabled: return (400, 10166)
            case .ttlInvalid: return (400, 10165)
            case .wrongLastSequence: return (400, 10071)
            case .expectedLastSubjectSequenceSubjectAlone: return (400, 10193)
            case .wrongLastMsgID: return (400, 10070)
            case .rollupNotPermitted, .rollupInvalid: return (500, 10111)
            case .sourceHeaderNotAllowed: return (400, 10227)
            case .featureDisabled(let code, let errorCode, _): return (code, errorCode)
            }
        }
    }

    public let config: StreamConfig
    public let store: any MessageStore
    private let now: () -> Int64
    /// Message ids seen within the duplicate window: id -> (sequence, time stored).
    private var recentIDs: [String: (UInt64, Int64)] = [:]
    /// The same ids in the order they were stored (oldest first), so that those out of the window leave from
    /// the front, a few per publish (nats-server's ddarr). An entry whose id was stored again since, or taken
    /// back, no longer matches `recentIDs` and leaves without touching it.
    private var idOrder = CircularBuffer<(id: String, sequence: UInt64, time: Int64)>()
    /// Sequences per subject, oldest first (for max_msgs_per_subject).
    private var perSubject: [[UInt8]: SubjectSequences] = [:]
    /// The `Nats-Msg-Id` of the last message stored ("" when it had none): `Nats-Expected-Last-Msg-Id`.
    private(set) var lastMessageID = ""
    /// Messages with a per-message TTL: sequence -> when it expires (nanoseconds).
    private var expiries: [UInt64: Int64] = [:]
    /// The same deadlines, soonest first: the tick takes what is due off the top instead of a pass over every
    /// message with a TTL. An entry whose message went (or got another deadline) no longer matches `expiries`
    /// and is dropped when it comes up; the heap is rebuilt when such entries are most of it.
    private var expiryOrder = Heap<Expiry>()
    private struct Expiry: Comparable {
        let deadline: Int64
        let sequence: UInt64
        static func < (a: Expiry, b: Expiry) -> Bool { (a.deadline, a.sequence) < (b.deadline, b.sequence) }
    }
    /// No entry of `expiries` is due before this (so the tick looks only when one can be).
    private var earliestExpiry: Int64 = .max
    /// Subjects that lost their last message to age and get a delete marker (`writeMarkers`).
    private var markerSubjects: [[UInt8]] = []
    private var writingMarkers = false
    /// The sequence of the publish under way, once stored: the removals it causes (limits, rollups) are put back
    /// if a failed sync takes it back.
    private var displacing: UInt64?
    /// max_age passes over messages with `Nats-TTL: never`; the scan starts after the ones it already passed.
    private var ageScanFrom: UInt64 = 0
    /// Every removal ever (consumers' cached pending counts are valid while it and the last sequence stay).
    private(set) var removals = 0

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
    func lastSequencesPerSubject(filters: [[UInt8]], upTo bound: UInt64) -> Set<UInt64> {
        var result: Set<UInt64> = []
        for (subject, sequences) in perSubject {
            if !filters.isEmpty, !filters.contains(where: { Subject.matches(filter: $0, subject: subject) }) { continue }
            if let last = sequences.last(where: { $0 <= bound }) { result.insert(last) }
        }
        return result
    }

    public func publish(subject: [UInt8], headers: [UInt8], payload: [UInt8], messageID: String?) throws(PublishError) -> PublishResult {
        var parsed = PublishHeaders(headers: headers)
        parsed.messageID = messageID
        return try publish(subject: subject, headers: headers, payload: payload, parsed: parsed)
    }

    /// Stores a message after nats-server's checks, in its order: sealed, unsupported headers, expected stream,
    /// TTL allowed, expected last sequence per subject, expected last sequence, the source header, duplicates,
    /// expected last msg id, rollup, size, limits, TTL value. `sourced`: the stream's own sourcing stores it
    /// (the source header is allowed, expectations and TTL refusals are not applied).
    func publish(subject: [UInt8], headers: [UInt8], payload: [UInt8], parsed h: PublishHeaders,
                 sourced: Bool = false) throws(PublishError) -> PublishResult {
        if config.sealed { throw .sealed }
        let outer = displacing
        defer { displacing = outer }
        let time = now()
        if !headers.isEmpty, !sourced {
            if let name = h.unsupported {
                switch name.lowercased() {
                case "nats-incr": throw .featureDisabled(code: 400, errorCode: 10168, description: "message counters is disabled")
                case "nats-batch-id": throw .featureDisabled(code: 400, errorCode: 10174, description: "atomic publish is disabled")
                default: throw .featureDisabled(code: 400, errorCode: 10188, description: "message schedules is disabled")
                }
            }
            if let expected = h.expectedStream, !expected.isEmpty, expected != config.name { throw .streamNotMatch }
            if let text = h.ttl, !text.isEmpty, !config.allowMsgTTL, MessageTTL(text)?.isSet == true { throw .ttlDisabled }
            if let expected = h.expectedLastSubjectSequence {
                let bySubject = h.expectedLastSubjectSequenceSubject.flatMap { $0.isEmpty ? nil : Array($0.utf8) } ?? subject
                let last = lastSequence(matching: bySubject)
                if last != expected { throw .wrongLastSequence(last) }
            } else if let subjectOnly = h.expectedLastSubjectSequenceSubject, !subjectOnly.isEmpty {
                throw .expectedLastSubjectSequenceSubjectAlone
            }
            if let expected = h.expectedLastSequence, expected != store.state.lastSequence {
                throw .wrongLastSequence(store.state.lastSequence)
            }
            if h.hasStreamSource { throw .sourceHeaderNotAllowed }
        }
        if let messageID = h.messageID, let (sequence, storedAt) = recentIDs[messageID], time - storedAt < config.duplicateWindow {
            return .duplicate(sequence: sequence)
        }
        if let expected = h.expectedLastMsgID, !expected.isEmpty, expected != lastMessageID {
            throw .wrongLastMsgID(lastMessageID)
        }
        var rollupAll = false, rollupSubject = false
        if let rollup = h.rollup, !rollup.isEmpty {
            if !sourced, !config.allowRollup || config.denyPurge { throw .rollupNotPermitted }
            switch rollup {
            case "sub": rollupSubject = true
            case "all": rollupAll = true
            default: if !sourced { throw .rollupInvalid(rollup) }
            }
            // As nats-server: a sourced rollup is stored, but purges only a stream that allows rollups.
            if !config.allowRollup || config.denyPurge { rollupSubject = false; rollupAll = false }
        }
        let size = subject.count + headers.count + payload.count + 16
        if config.maxMsgSize >= 0, headers.count + payload.count > Int(config.maxMsgSize) { throw .messageTooLarge }
        if config.discard == .new {
            if config.maxMsgs >= 0, store.state.messages >= UInt64(config.maxMsgs) { throw .maximumMessagesExceeded }
            if config.maxBytes >= 0, store.state.bytes + UInt64(size) > UInt64(config.maxBytes) { throw .maximumBytesExceeded }
            if config.discardNewPerSubject, config.maxMsgsPerSubject > 0,
               (perSubject[subject]?.count ?? 0) >= Int(config.maxMsgsPerSubject) {
                throw .maximumMessagesPerSubjectExceeded
            }
        }
        var ttl: MessageTTL?
        var headers = headers
        if let text = h.ttl, !text.isEmpty {
            guard let parsedTTL = MessageTTL(text) else { throw .ttlInvalid }
            ttl = parsedTTL
            // As nats-server: with delete markers, a TTL is at least the marker's (so a marker is never missed),
            // and the stored header says so.
            let markerTTL = config.subjectDeleteMarkerTTL / 1_000_000_000
            if case .seconds(let seconds) = parsedTTL, seconds > 0, markerTTL > seconds, config.maxMsgsPerSubject != 1 {
                ttl = .seconds(markerTTL)
                headers = HeaderLines.adding(name: "Nats-TTL", value: "\(markerTTL)", to: HeaderLines.removing(name: "Nats-TTL", from: headers))
            }
        }
        let sequence: UInt64
        do {
            sequence = try store.append(subject: subject, headers: headers, payload: payload, timestamp: time)
        } catch {
            throw .store(error)
        }
        displacing = sequence
        perSubject[subject, default: []].append(sequence)
        if let messageID = h.messageID { noteID(messageID, sequence: sequence, time: time) }
        lastMessageID = h.messageID ?? ""
        noteTTL(ttl, of: sequence, storedAt: time)
        do {
            if rollupSubject || rollupAll { try rollUp(to: sequence, subject: rollupAll ? nil : subject) }
            try enforceLimits(at: time, subject: subject)
        } catch {
            throw .store(error)
        }
        return .stored(sequence: sequence)
    }

    /// The first sequence at or after `sequence` stored on one of `subjects` (literal subjects), nil when none:
    /// a binary search in each one's sequences.
    func firstSequence(on subjects: [[UInt8]], atOrAfter sequence: UInt64) -> UInt64? {
        var first: UInt64?
        for subject in subjects {
            guard let sequences = perSubject[subject] else { continue }
            let index = sequences.firstIndex(atLeast: sequence)
            if index < sequences.count { first = min(first ?? .max, sequences[index]) }
        }
        return first
    }

    /// The newest sequence whose subject matches `filter` (a subject or a wildcard), 0 when none.
    func lastSequence(matching filter: [UInt8]) -> UInt64 {
        if !filter.contains(UInt8(ascii: "*")), !filter.contains(UInt8(ascii: ">")) {
            return perSubject[filter]?.last ?? 0
        }
        var last: UInt64 = 0
        for (subject, sequences) in perSubject where Subject.matches(filter: filter, subject: subject) {
            last = max(last, sequences.last ?? 0)
        }
        return last
    }

    /// Per subject, how many messages it holds, for the subjects matching `filter` (nil: all).
    func subjectCounts(filter: [UInt8]?) -> [String: UInt64] {
        var counts: [String: UInt64] = [:]
        for (subject, sequences) in perSubject where !sequences.isEmpty {
            if let filter, !Subject.matches(filter: filter, subject: subject) { continue }
            counts[String(decoding: subject, as: UTF8.self)] = UInt64(sequences.count)
        }
        return counts
    }

    /// How many messages matching `filter` (nil: all) have a sequence above `after`: a consumer's pending count.
    /// Exact through the per-subject index (a binary search per matching subject); for an unfiltered count over
    /// more than 1,024 subjects, the sequence span (which counts interior deletes) bounded by the message count.
    func countMatching(filter: [UInt8]?, after: UInt64) -> UInt64 {
        // Nothing lies above the last sequence: no walk over every subject (a KV watch asks this per delivery).
        if after >= store.state.lastSequence { return 0 }
        func above(_ sequences: SubjectSequences) -> UInt64 {
            UInt64(sequences.count - sequences.firstIndex(atLeast: after &+ 1))
        }
        if let filter, !filter.contains(UInt8(ascii: "*")), !filter.contains(UInt8(ascii: ">")) {
            return perSubject[filter].map(above) ?? 0
        }
        if filter == nil, perSubject.count > 1024 {
            let last = store.state.lastSequence
            return min(last > after ? last - after : 0, store.state.messages)
        }
        var total: UInt64 = 0
        for (subject, sequences) in perSubject {
            if let filter, !Subject.matches(filter: filter, subject: subject) { continue }
            total += above(sequences)
        }
        return total
    }

    /// The first sequence holding a message stored at or after `time` (nanoseconds), deleted sequences passed
    /// over; one past the last when none (by_start_time consumers, direct gets by start_time). A binary search
    /// over the stored times, which follow the sequences (as nats-server's search by time): a few dozen loads
    /// for millions of messages, where a walk from the first one held the JetStream queue for seconds.
    func firstSequence(storedAtOrAfter time: Int64) -> UInt64 {
        let last = store.state.lastSequence
        var low = max(store.state.firstSequence, 1), high = last + 1, answer = last + 1
        while low < high {
            let middle = low + (high - low) / 2
            guard let s = store.firstStored(atOrAfter: middle), s < high, let message = try? store.load(s) else {
                high = middle  // nothing held in [middle, high)
                continue
            }
            if message.timestamp >= time {
                answer = s
                high = middle
            } else {
                low = s + 1
            }
        }
        return answer
    }

    /// How many subjects hold a message.
    var subjectCount: Int { perSubject.values.reduce(0) { $0 + ($1.isEmpty ? 0 : 1) } }

    /// Sequences of messages matching `filter` (nil: all), ascending.
    func sequences(matching filter: [UInt8]?) -> [UInt64] {
        var result: [UInt64] = []
        for (subject, sequences) in perSubject {
            if let filter, !Subject.matches(filter: filter, subject: subject) { continue }
            result += sequences.elements
        }
        return result.sorted()
    }

    /// The sequences from `from` to `upTo` on subjects matching `filter` (nil: all): the first `limit` of them,
    /// oldest first, and how many there are in all. A literal subject is a binary search in its sequences and
    /// no filter a walk of the index from `from`; only a wildcard lists what it matches.
    func sequences(matching filter: [UInt8]?, from: UInt64, upTo: UInt64, limit: Int) -> (first: [UInt64], total: UInt64) {
        func range<C: RandomAccessCollection<UInt64>>(_ sequences: C) -> Range<Int> where C.Index == Int {
            let lower = sequences.firstIndex(atLeast: from)
            let upper = upTo == .max ? sequences.count : sequences.firstIndex(atLeast: upTo + 1)
            return lower..<max(lower, upper)
        }
        if let filter, !filter.contains(UInt8(ascii: "*")), !filter.contains(UInt8(ascii: ">")) {
            let sequences = perSubject[filter] ?? []
            let r = range(sequences)
            return (Array(sequences[r].prefix(limit)), UInt64(r.count))
        }
        if let filter {
            let all = sequences(matching: filter)
            let r = range(all)
            return (Array(all[r].prefix(limit)), UInt64(r.count))
        }
        var total: UInt64 = 0
        for sequences in perSubject.values { total += UInt64(range(sequences).count) }
        var first: [UInt64] = []
        var s = max(from, store.state.firstSequence)
        let last = min(upTo, store.state.lastSequence)
        while s <= last, first.count < limit {
            if store.contains(s) { first.append(s) }
            s += 1
        }
        return (first, total)
    }

    /// STREAM.PURGE with options: everything matching `filter` (nil: all) below `upTo` (nil: no bound), or all
    /// but the newest `keep` of each... of them (nats-server: keep counts over the whole filtered set).
    /// Returns how many messages went.
    func purge(filter: [UInt8]?, upTo: UInt64?, keep: UInt64?) throws(StoreError) -> UInt64 {
        if filter == nil, upTo == nil, (keep ?? 0) == 0 {
            let purged = store.state.messages
            try store.purge()
            perSubject.removeAll()
            expiries.removeAll()
            expiryOrder = Heap()
            earliestExpiry = .max
            removals &+= 1
            return purged
        }
        var candidates = sequences(matching: filter)
        if let upTo { candidates = candidates.filter { $0 < upTo } }
        if let keep, keep > 0 { candidates = Array(candidates.dropLast(Int(min(keep, UInt64(candidates.count))))) }
        var purged: UInt64 = 0
        for sequence in candidates where try removeMessage(sequence) { purged += 1 }
        return purged
    }

    /// Removes what fell due: messages whose TTL passed and those past max_age (with a delete marker for a
    /// subject that lost its last message, when configured). Runs on the tick; returns whether anything went.
    @discardableResult
    public func expire(at time: Int64) throws(StoreError) -> Bool {
        let before = (store.state.messages, store.state.lastSequence)
        if time >= earliestExpiry {
            var due: [UInt64] = []
            while let first = expiryOrder.min, first.deadline <= time {
                expiryOrder.removeMin()
                if expiries[first.sequence] == first.deadline { due.append(first.sequence) }
            }
            compactExpiryOrder()
            earliestExpiry = expiryOrder.min?.deadline ?? .max
            for sequence in due.sorted() { try removeAged(sequence) }
        }
        try removePastMaxAge(at: time)
        writeMarkers()
        return store.state.messages != before.0 || store.state.lastSequence != before.1
    }

    /// Removes a message that aged out; the last one of its subject leaves a marker when the stream asks for it.
    private func removeAged(_ sequence: UInt64) throws(StoreError) {
        guard let message = try? store.load(sequence) else {
            expiries[sequence] = nil
            return
        }
        let isLast = perSubject[message.subject]?.count == 1
        try removeMessage(sequence)
        guard config.subjectDeleteMarkerTTL > 0, isLast,
              PublishHeaders.value(of: "nats-marker-reason", in: message.headers) == nil else { return }
        markerSubjects.append(message.subject)
    }

    /// Removes the messages past max_age, oldest first; one with `Nats-TTL: never` stays (as nats-server,
    /// which passes over it and goes on).
    private func removePastMaxAge(at time: Int64) throws(StoreError) {
        guard config.maxAge > 0 else { return }
        // Below `ageScanFrom` every message left is a never-expiring one (or gone): not read again on each
        // publish and tick.
        var sequence = max(store.state.firstSequence, ageScanFrom)
        while store.state.messages > 0, sequence <= store.state.lastSequence {
            guard store.contains(sequence) else {
                sequence += 1
                continue
            }
            let message = try store.load(sequence)
            guard time - message.timestamp > config.maxAge else { break }
            if !message.headers.isEmpty, let ttl = PublishHeaders.value(of: "nats-ttl", in: message.headers), MessageTTL(ttl) == .never {
                sequence += 1
                ageScanFrom = sequence
                continue
            }
            try removeAged(sequence)
            sequence += 1
        }
    }

    /// Writes the delete markers that removals asked for. A marker's own publish enforces the limits again and
    /// may age out more: those join the queue, drained here in a loop rather than by recursion (thousands of
    /// subjects aging out at once must not run the stack out).
    private func writeMarkers() {
        guard !writingMarkers, !markerSubjects.isEmpty else { return }
        writingMarkers = true
        defer { writingMarkers = false }
        let ttl = config.subjectDeleteMarkerTTL / 1_000_000_000
        let marker = Array("NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: \(GoDuration.text(nanoseconds: ttl * 1_000_000_000))\r\nNats-Rollup: sub\r\n\r\n".utf8)
        let parsed = PublishHeaders(headers: marker)
        var next = 0
        while next < markerSubjects.count {
            _ = try? publish(subject: markerSubjects[next], headers: marker, payload: [], parsed: parsed, sourced: true)
            next += 1
        }
        markerSubjects.removeAll()
    }



    /// Drops what the limits no longer allow (discard old), messages past max_age and expired message ids.
    public func enforceLimits(at time: Int64, subject: [UInt8]? = nil) throws(StoreError) {
        if config.maxMsgsPerSubject > 0 {
            let limit = Int(config.maxMsgsPerSubject)
            // After a publish only its subject can be over the limit; after a config change any can.
            let subjects = subject.map { [$0] } ?? perSubject.compactMap { $0.value.count > limit ? $0.key : nil }
            for subject in subjects {
                while let sequences = perSubject[subject], sequences.count > limit {
                    if try !removeMessage(sequences[0]) { perSubject[subject]?.removeFirst() }
                }
            }
        }
        while config.maxMsgs >= 0, store.state.messages > UInt64(config.maxMsgs) {
            try removeOldest()
        }
        while config.maxBytes >= 0, store.state.bytes > UInt64(config.maxBytes), store.state.messages > 0 {
            try removeOldest()
        }
        try removePastMaxAge(at: time)
        writeMarkers()
        expireIDs(at: time)
    }

    /// How many message ids the stream remembers (tests: ids leave once out of the window).
    var rememberedIDs: Int { recentIDs.count }

    /// Remembers `id` for the duplicate window.
    private func noteID(_ id: String, sequence: UInt64, time: Int64) {
        recentIDs[id] = (sequence, time)
        idOrder.append((id, sequence, time))
    }

    /// The ids stored a window ago or earlier go, oldest first: each publish removes only what has expired (a
    /// pass over all of them whenever the oldest expired cost a whole window's ids per millisecond: with the
    /// default two minutes, stores of Falco alerts slowed to a crawl after two minutes).
    private func expireIDs(at time: Int64) {
        while let oldest = idOrder.first, time - oldest.time >= config.duplicateWindow {
            idOrder.removeFirst()
            if let entry = recentIDs[oldest.id], entry.0 == oldest.sequence, entry.1 == oldest.time {
                recentIDs[oldest.id] = nil
            }
        }
    }

    /// After a failed sync: the store takes back what the sync did not cover (no PubAck was sent for it), and
    /// so does this stream's own bookkeeping (per-subject sequences, message ids, TTLs, the last msg id).
    /// Returns how many messages went.
    public func rollBackUnsynced() -> (taken: Int, restored: Int) {
        let rollback = store.rollBackUnsynced()
        let taken = rollback.taken
        guard !taken.isEmpty || !rollback.restored.isEmpty else { return (0, 0) }
        ageScanFrom = 0  // the sequences it passed over may be used again
        let sequences = Set(taken.map(\.sequence))
        for (sequence, subject) in taken {
            perSubject[subject]?.remove(sequence)
            if perSubject[subject]?.isEmpty == true { perSubject[subject] = nil }
            expiries[sequence] = nil
        }
        recentIDs = recentIDs.filter { !sequences.contains($0.value.0) }
        // What those publishes displaced is back: in its subject's sequences (in order), with its TTL and id.
        let time = now()
        var putBack = false
        defer {
            // Ids put back are older than those stored since: the expiry order is restored (a rare path).
            if putBack { idOrder = CircularBuffer(idOrder.sorted { $0.time < $1.time }) }
        }
        for sequence in rollback.restored {
            guard let message = try? store.load(sequence) else { continue }
            perSubject[message.subject, default: []].insert(sequence)
            guard !message.headers.isEmpty else { continue }
            let h = PublishHeaders(headers: message.headers)
            if time - message.timestamp < config.duplicateWindow, let id = h.messageID, recentIDs[id] == nil {
                noteID(id, sequence: sequence, time: message.timestamp)
                putBack = true
            }
            noteTTL(h.ttl.flatMap(MessageTTL.init), of: sequence, storedAt: message.timestamp)
        }
        let last = store.state.lastSequence
        lastMessageID = last > 0 ? (try? store.load(last)).flatMap { Self.messageID(in: $0.headers) } ?? "" : ""
        removals &+= 1
        return (taken.count, rollback.restored.count)
    }

    /// A stored message's `Nats-TTL` (where the stream allows them) becomes its expiry deadline.
    private func noteTTL(_ ttl: MessageTTL?, of sequence: UInt64, storedAt time: Int64) {
        guard config.allowMsgTTL, case .seconds(let seconds)? = ttl, seconds > 0 else { return }
        let deadline = time.saturatingAdd(seconds.saturatingMultiply(1_000_000_000))
        expiries[sequence] = deadline
        expiryOrder.insert(Expiry(deadline: deadline, sequence: sequence))
        earliestExpiry = min(earliestExpiry, deadline)
        compactExpiryOrder()
    }

    /// Rebuilds the deadline heap from `expiries` once entries of messages gone early are most of it (messages
    /// removed long before their TTL: a KV bucket's older revisions, acked work).
    private func compactExpiryOrder() {
        guard expiryOrder.count > 1024, expiryOrder.count > 2 * expiries.count else { return }
        expiryOrder = Heap(expiries.map { Expiry(deadline: $0.value, sequence: $0.key) })
    }

    /// Removes one message (an ack under workqueue retention, or a delete request).
    @discardableResult
    public func removeMessage(_ sequence: UInt64) throws(StoreError) -> Bool {
        guard let message = try? store.load(sequence) else { return false }
        let removed = try store.remove(sequence, causedBy: displacing)
        if removed {
            perSubject[message.subject]?.remove(sequence)
            if perSubject[message.subject]?.isEmpty == true { perSubject[message.subject] = nil }
            expiries[sequence] = nil
            removals &+= 1
        }
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
        // Runs of one subject are gathered and added at once: no array and no hash per message (a stream of a
        // few subjects rebuilt 1M messages 12% faster, perf of a restart).
        var runSubject: ArraySlice<UInt8> = []
        var run: [UInt64] = []
        func flushRun() {
            guard !run.isEmpty else { return }
            perSubject[Array(runSubject), default: []].append(contentsOf: run)
            run.removeAll(keepingCapacity: true)
        }
        defer { flushRun() }
        store.forEachMessage { sequence, timestamp, subject, headers in
            if run.isEmpty || !subject.elementsEqual(runSubject) {
                flushRun()
                runSubject = subject
            }
            run.append(sequence)
            guard !headers.isEmpty else {
                if sequence == state.lastSequence { lastMessageID = "" }
                return
            }
            let headers = Array(headers)
            let h = PublishHeaders(headers: headers)
            if time - timestamp < config.duplicateWindow, let id = h.messageID {
                noteID(id, sequence: sequence, time: timestamp)
            }
            noteTTL(h.ttl.flatMap(MessageTTL.init), of: sequence, storedAt: timestamp)
            if sequence == state.lastSequence { lastMessageID = Self.messageID(in: headers) ?? "" }
        }
    }


    // MARK: - Mirrors and republish (StreamSources.swift)

    /// Stores a mirrored message at its origin's `sequence` and time, passing over the sequences the origin
    /// no longer has. The stream's own limits apply; no de-duplication (the origin did it).
    public func storeMirrored(sequence: UInt64, timestamp: Int64, subject: [UInt8], headers: [UInt8], payload: [UInt8]) throws(PublishError) {
        let outer = displacing
        defer { displacing = outer }
        do {
            try store.skip(to: sequence)
            let stored = try store.append(subject: subject, headers: headers, payload: payload, timestamp: timestamp)
            displacing = stored
            perSubject[subject, default: []].append(stored)
            // What the origin's headers ask for applies here as on any publish (nats-server stores a mirrored
            // message through the same path): the last message id, a TTL, a rollup where allowed.
            let h = headers.isEmpty ? PublishHeaders.none : PublishHeaders(headers: headers)
            lastMessageID = h.messageID ?? ""
            noteTTL(h.ttl.flatMap(MessageTTL.init), of: stored, storedAt: timestamp)
            if config.allowRollup, !config.denyPurge, let rollup = h.rollup, rollup == "sub" || rollup == "all" {
                try rollUp(to: stored, subject: rollup == "all" ? nil : subject)
            }
            try enforceLimits(at: now(), subject: subject)
        } catch {
            throw .store(error)
        }
    }

    /// `Nats-Rollup`: everything before `sequence` on `subject` (sub), or in the whole stream (nil: all), goes.
    private func rollUp(to sequence: UInt64, subject: [UInt8]?) throws(StoreError) {
        if let subject {
            for old in Array((perSubject[subject] ?? []).elements) where old != sequence { try removeMessage(old) }
            return
        }
        var s = store.state.firstSequence
        while s < sequence {
            try removeMessage(s)
            s = max(s + 1, store.state.firstSequence)
        }
    }

    /// The newest sequence stored on exactly `subject` (0 when none): a republished message's Nats-Last-Sequence.
    func lastSequence(on subject: [UInt8]) -> UInt64 { perSubject[subject]?.last ?? 0 }

    /// The `Nats-Msg-Id` header's value in a NATS header block, if any (an empty id is no id).
    public static func messageID(in headers: [UInt8]) -> String? {
        PublishHeaders.value(of: "nats-msg-id", in: headers)
    }
}
