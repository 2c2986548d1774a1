import Foundation

/// A consumer's configuration as the API carries it: the fields of nats-server's ConsumerConfig, with
/// nats-server's defaults for deliver/ack/replay policy, ack_wait, max_deliver and max_ack_pending. Echoed in
/// consumer infos, kept in the consumer's meta.json, and compared to decide whether a second CREATE is the
/// same consumer.
struct APIConsumerConfig: Codable, Equatable, Sendable {
    enum DeliverPolicy: String, Codable, Sendable {
        case all, last, new
        case byStartSequence = "by_start_sequence", byStartTime = "by_start_time", lastPerSubject = "last_per_subject"
    }

    var durableName: String?
    var name: String?
    var description: String?
    var deliverPolicy: DeliverPolicy = .all
    var optStartSeq: UInt64?
    /// RFC 3339, as the client sent it.
    var optStartTime: String?
    var ackPolicy: ConsumerStateMachine.AckPolicy = .explicit
    /// Nanoseconds; nats-server's default is 30 s.
    var ackWait: Int64 = 30_000_000_000
    var maxDeliver = -1
    /// Nanoseconds per redelivery.
    var backoff: [Int64]?
    var filterSubject: String?
    var filterSubjects: [String]?
    var replayPolicy = "instant"
    var rateLimitBps: UInt64?
    var sampleFreq: String?
    var maxWaiting: Int?
    var maxAckPending = 1000
    var flowControl: Bool?
    var headersOnly: Bool?
    var maxBatch: Int?
    var maxExpires: Int64?
    var maxBytes: Int?
    var inactiveThreshold: Int64?
    var idleHeartbeat: Int64?
    var deliverSubject: String?
    var deliverGroup: String?
    var numReplicas = 0
    var memStorage: Bool?
    var metadata: [String: String]?
    var pauseUntil: String?
    var priorityGroups: [String]?
    var priorityPolicy: String?
    var priorityTimeout: Int64?

    init() {}

    enum CodingKeys: String, CodingKey {
        case name, description, backoff, metadata
        case durableName = "durable_name", deliverPolicy = "deliver_policy", optStartSeq = "opt_start_seq"
        case optStartTime = "opt_start_time", ackPolicy = "ack_policy", ackWait = "ack_wait", maxDeliver = "max_deliver"
        case filterSubject = "filter_subject", filterSubjects = "filter_subjects", replayPolicy = "replay_policy"
        case rateLimitBps = "rate_limit_bps", sampleFreq = "sample_freq", maxWaiting = "max_waiting"
        case maxAckPending = "max_ack_pending", flowControl = "flow_control", headersOnly = "headers_only"
        case maxBatch = "max_batch", maxExpires = "max_expires", maxBytes = "max_bytes"
        case inactiveThreshold = "inactive_threshold", idleHeartbeat = "idle_heartbeat"
        case deliverSubject = "deliver_subject", deliverGroup = "deliver_group", numReplicas = "num_replicas"
        case memStorage = "mem_storage", pauseUntil = "pause_until", priorityGroups = "priority_groups"
        case priorityPolicy = "priority_policy", priorityTimeout = "priority_timeout"
    }

    /// Absent or null fields take nats-server's defaults.
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        durableName = try c.decodeIfPresent(String.self, forKey: .durableName)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        description = try c.decodeIfPresent(String.self, forKey: .description)
        deliverPolicy = try c.decodeIfPresent(DeliverPolicy.self, forKey: .deliverPolicy) ?? .all
        optStartSeq = try c.decodeIfPresent(UInt64.self, forKey: .optStartSeq)
        optStartTime = try c.decodeIfPresent(String.self, forKey: .optStartTime)
        ackPolicy = try c.decodeIfPresent(ConsumerStateMachine.AckPolicy.self, forKey: .ackPolicy) ?? .explicit
        ackWait = try c.decodeIfPresent(Int64.self, forKey: .ackWait) ?? 30_000_000_000
        maxDeliver = try c.decodeIfPresent(Int.self, forKey: .maxDeliver) ?? -1
        backoff = try c.decodeIfPresent([Int64].self, forKey: .backoff)
        filterSubject = try c.decodeIfPresent(String.self, forKey: .filterSubject)
        filterSubjects = try c.decodeIfPresent([String].self, forKey: .filterSubjects)
        replayPolicy = try c.decodeIfPresent(String.self, forKey: .replayPolicy) ?? "instant"
        rateLimitBps = try c.decodeIfPresent(UInt64.self, forKey: .rateLimitBps)
        sampleFreq = try c.decodeIfPresent(String.self, forKey: .sampleFreq)
        maxWaiting = try c.decodeIfPresent(Int.self, forKey: .maxWaiting)
        maxAckPending = try c.decodeIfPresent(Int.self, forKey: .maxAckPending) ?? 1000
        flowControl = try c.decodeIfPresent(Bool.self, forKey: .flowControl)
        headersOnly = try c.decodeIfPresent(Bool.self, forKey: .headersOnly)
        maxBatch = try c.decodeIfPresent(Int.self, forKey: .maxBatch)
        maxExpires = try c.decodeIfPresent(Int64.self, forKey: .maxExpires)
        maxBytes = try c.decodeIfPresent(Int.self, forKey: .maxBytes)
        inactiveThreshold = try c.decodeIfPresent(Int64.self, forKey: .inactiveThreshold)
        idleHeartbeat = try c.decodeIfPresent(Int64.self, forKey: .idleHeartbeat)
        deliverSubject = try c.decodeIfPresent(String.self, forKey: .deliverSubject)
        deliverGroup = try c.decodeIfPresent(String.self, forKey: .deliverGroup)
        numReplicas = try c.decodeIfPresent(Int.self, forKey: .numReplicas) ?? 0
        memStorage = try c.decodeIfPresent(Bool.self, forKey: .memStorage)
        metadata = try c.decodeIfPresent([String: String].self, forKey: .metadata)
        pauseUntil = try c.decodeIfPresent(String.self, forKey: .pauseUntil)
        priorityGroups = try c.decodeIfPresent([String].self, forKey: .priorityGroups)
        priorityPolicy = try c.decodeIfPresent(String.self, forKey: .priorityPolicy)
        priorityTimeout = try c.decodeIfPresent(Int64.self, forKey: .priorityTimeout)
    }

    /// What decides whether a second CREATE is the same consumer: everything but the fields a client may
    /// change when it binds again (nats-py re-binds durables with a new deliver subject).
    var identity: APIConsumerConfig {
        var c = self
        c.deliverSubject = nil
        c.description = nil
        c.metadata = nil
        c.name = nil
        return c
    }

    /// What a "create" action compares: everything the client sent, without the server's `_nats.` metadata
    /// (nats-server's copyConsumerMetadata before its DeepEqual).
    var asCreated: APIConsumerConfig {
        var c = self
        c.metadata = c.metadata?.filter { !$0.key.hasPrefix("_nats.") }
        if c.metadata?.isEmpty == true { c.metadata = nil }
        return c
    }

    /// The filters as bytes: filter_subject, or filter_subjects; empty = every message (">" too).
    var subjectFilters: [[UInt8]] {
        let all = (filterSubject.map { [$0] } ?? []) + (filterSubjects ?? [])
        let filters = all.filter { !$0.isEmpty }
        return filters.contains(">") ? [] : filters.map { Array($0.utf8) }
    }

    /// The delivery rules the consumer's state machine applies.
    var machineConfiguration: ConsumerStateMachine.Configuration {
        var m = ConsumerStateMachine.Configuration()
        m.ackPolicy = ackPolicy
        m.ackWait = ackWait
        m.backoff = backoff ?? []
        m.maxDeliver = maxDeliver
        m.maxAckPending = maxAckPending
        return m
    }
}

// MARK: - Requests

/// CONSUMER.CREATE / CONSUMER.DURABLE.CREATE.
struct ConsumerCreateRequest: Codable {
    var streamName: String?
    var config: APIConsumerConfig?
    /// nats.go: "" = create or update, "create", "update".
    var action: String?

    enum CodingKeys: String, CodingKey {
        case config, action
        case streamName = "stream_name"
    }
}

/// CONSUMER.MSG.NEXT: a JSON body, or just the batch size as a number.
struct PullNextRequest: Decodable, Equatable {
    var batch = 1
    /// Nanoseconds from now; absent or 0 = no expiry.
    var expires: Int64?
    var noWait = false
    var maxBytes: Int?
    /// Nanoseconds between idle heartbeats while the request waits.
    var idleHeartbeat: Int64?

    enum CodingKeys: String, CodingKey {
        case batch, expires
        case noWait = "no_wait", maxBytes = "max_bytes", idleHeartbeat = "idle_heartbeat"
    }

    init(batch: Int = 1, expires: Int64? = nil, noWait: Bool = false) {
        self.batch = batch
        self.expires = expires
        self.noWait = noWait
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        batch = max(try c.decodeIfPresent(Int.self, forKey: .batch) ?? 1, 1)
        expires = try c.decodeIfPresent(Int64.self, forKey: .expires).flatMap { $0 > 0 ? $0 : nil }
        noWait = try c.decodeIfPresent(Bool.self, forKey: .noWait) ?? false
        maxBytes = try c.decodeIfPresent(Int.self, forKey: .maxBytes)
        idleHeartbeat = try c.decodeIfPresent(Int64.self, forKey: .idleHeartbeat)
    }

    /// The body as nats-py and nats.go send it, or a plain number; anything else is one message.
    init(payload: [UInt8]) {
        if let request = try? JSONDecoder().decode(Self.self, from: Data(payload)) {
            self = request
        } else if let n = Int(String(decoding: payload, as: UTF8.self).trimmingCharacters(in: .whitespaces)), n > 0 {
            self.init(batch: n)
        } else {
            self.init()
        }
    }
}

/// CONSUMER.PAUSE: until when (RFC 3339); absent or in the past resumes.
struct ConsumerPauseRequest: Decodable {
    var pauseUntil: String?

    enum CodingKeys: String, CodingKey {
        case pauseUntil = "pause_until"
    }
}

// MARK: - Responses

struct ConsumerPauseResponse: JetStreamAPIResponse, Equatable {
    static let type = "consumer_pause_response"
    var paused: Bool
    var pauseUntil: APITime
    /// Nanoseconds; absent when not paused.
    var pauseRemaining: Int64?

    enum CodingKeys: String, CodingKey {
        case paused
        case pauseUntil = "pause_until", pauseRemaining = "pause_remaining"
    }
}

struct SequencePair: Codable, Equatable {
    var consumerSeq: UInt64
    var streamSeq: UInt64

    enum CodingKeys: String, CodingKey {
        case consumerSeq = "consumer_seq", streamSeq = "stream_seq"
    }
}

/// A consumer's info: in CONSUMER.INFO and CREATE replies, and in CONSUMER.LIST.
struct ConsumerInfo: Codable, Equatable {
    var streamName: String
    var name: String
    var created: APITime
    var config: APIConsumerConfig
    var delivered: SequencePair
    var ackFloor: SequencePair
    var numAckPending: Int
    var numRedelivered: Int
    var numWaiting: Int
    var numPending: UInt64
    var paused: Bool?
    var pauseRemaining: Int64?

    enum CodingKeys: String, CodingKey {
        case name, created, config, delivered, paused
        case pauseRemaining = "pause_remaining"
        case streamName = "stream_name", ackFloor = "ack_floor", numAckPending = "num_ack_pending"
        case numRedelivered = "num_redelivered", numWaiting = "num_waiting", numPending = "num_pending"
    }
}

struct ConsumerCreateResponse: JetStreamAPIResponse, Equatable {
    static let type = "consumer_create_response"
    var info: ConsumerInfo
    func encode(to encoder: any Encoder) throws { try info.encode(to: encoder) }
}

struct ConsumerInfoResponse: JetStreamAPIResponse, Equatable {
    static let type = "consumer_info_response"
    var info: ConsumerInfo
    func encode(to encoder: any Encoder) throws { try info.encode(to: encoder) }
}

struct ConsumerDeleteResponse: JetStreamAPIResponse, Equatable {
    static let type = "consumer_delete_response"
    var success = true
}

struct ConsumerNamesResponse: JetStreamAPIResponse, Equatable {
    static let type = "consumer_names_response"
    var total: Int
    var offset = 0
    var limit = 1024
    var consumers: [String]
}

struct ConsumerListResponse: JetStreamAPIResponse, Equatable {
    static let type = "consumer_list_response"
    var total: Int
    var offset = 0
    var limit = 256
    var consumers: [ConsumerInfo]
}
