import Foundation

/// A stream's configuration as the API carries it: the fields of nats-server's StreamConfig that clients
/// send, with nats-server's defaults for what the client left out. It is echoed back in every stream info
/// (fields brokerd does not act on, such as placement or sources, exactly as the client sent them), kept in
/// the stream's meta.json, and compared whole to decide whether a second CREATE is the same stream.
struct APIStreamConfig: Codable, Equatable, Sendable {
    static let defaultDuplicateWindow: Int64 = 120_000_000_000  // nats-server: 2 minutes

    var name = ""
    var description: String?
    var subjects: [String] = []
    var retention: StreamConfig.Retention = .limits
    var maxConsumers = -1
    var maxMsgs: Int64 = -1
    var maxBytes: Int64 = -1
    /// Nanoseconds; 0 = no limit.
    var maxAge: Int64 = 0
    var maxMsgsPerSubject: Int64 = -1
    var maxMsgSize: Int32 = -1
    var discard: StreamConfig.Discard = .old
    var storage: StreamConfig.Storage = .file
    var numReplicas = 1
    var noAck: Bool?
    var templateOwner: String?
    /// Nanoseconds; 0 or absent = the default.
    var duplicateWindow: Int64 = defaultDuplicateWindow
    var placement: JSONValue?
    var mirror: StreamSource?
    var sources: [StreamSource]?
    var compression: String?
    var firstSeq: UInt64?
    var subjectTransform: SubjectTransformConfig?
    var republish: RePublishConfig?
    var allowDirect = false
    var mirrorDirect = false
    var discardNewPerSubject: Bool?
    var sealed = false
    var denyDelete = false
    var denyPurge = false
    var allowRollupHdrs = false
    var consumerLimits: JSONValue?
    var metadata: [String: String]?
    var allowMsgTTL: Bool?
    var subjectDeleteMarkerTTL: Int64?
    /// nats-server 2.12 features brokerd does not have: refused when true, never silently ignored.
    var allowMsgCounter: Bool?
    var allowAtomic: Bool?
    var allowBatched: Bool?
    var allowMsgSchedules: Bool?
    var persistMode: String?

    init(name: String, subjects: [String] = []) {
        self.name = name
        self.subjects = subjects
    }

    enum CodingKeys: String, CodingKey {
        case name, description, subjects, retention, discard, storage, placement, mirror, sources, compression
        case republish, sealed, metadata
        case maxConsumers = "max_consumers", maxMsgs = "max_msgs", maxBytes = "max_bytes", maxAge = "max_age"
        case maxMsgsPerSubject = "max_msgs_per_subject", maxMsgSize = "max_msg_size", numReplicas = "num_replicas"
        case noAck = "no_ack", templateOwner = "template_owner", duplicateWindow = "duplicate_window"
        case firstSeq = "first_seq", subjectTransform = "subject_transform", allowDirect = "allow_direct"
        case mirrorDirect = "mirror_direct", discardNewPerSubject = "discard_new_per_subject"
        case denyDelete = "deny_delete", denyPurge = "deny_purge", allowRollupHdrs = "allow_rollup_hdrs"
        case consumerLimits = "consumer_limits", allowMsgTTL = "allow_msg_ttl"
        case subjectDeleteMarkerTTL = "subject_delete_marker_ttl"
        case allowMsgCounter = "allow_msg_counter", allowAtomic = "allow_atomic", allowBatched = "allow_batched"
        case allowMsgSchedules = "allow_msg_schedules", persistMode = "persist_mode"
    }

    /// Absent or null fields take nats-server's defaults.
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        description = try c.decodeIfPresent(String.self, forKey: .description)
        subjects = try c.decodeIfPresent([String].self, forKey: .subjects) ?? []
        retention = try c.decodeIfPresent(StreamConfig.Retention.self, forKey: .retention) ?? .limits
        maxConsumers = try c.decodeIfPresent(Int.self, forKey: .maxConsumers) ?? -1
        maxMsgs = try c.decodeIfPresent(Int64.self, forKey: .maxMsgs) ?? -1
        maxBytes = try c.decodeIfPresent(Int64.self, forKey: .maxBytes) ?? -1
        maxAge = try c.decodeIfPresent(Int64.self, forKey: .maxAge) ?? 0
        maxMsgsPerSubject = try c.decodeIfPresent(Int64.self, forKey: .maxMsgsPerSubject) ?? -1
        maxMsgSize = try c.decodeIfPresent(Int32.self, forKey: .maxMsgSize) ?? -1
        discard = try c.decodeIfPresent(StreamConfig.Discard.self, forKey: .discard) ?? .old
        storage = try c.decodeIfPresent(StreamConfig.Storage.self, forKey: .storage) ?? .file
        numReplicas = try c.decodeIfPresent(Int.self, forKey: .numReplicas) ?? 1
        noAck = try c.decodeIfPresent(Bool.self, forKey: .noAck)
        templateOwner = try c.decodeIfPresent(String.self, forKey: .templateOwner)
        let window = try c.decodeIfPresent(Int64.self, forKey: .duplicateWindow) ?? 0
        duplicateWindow = window == 0 ? Self.defaultDuplicateWindow : window
        placement = try c.decodeIfPresent(JSONValue.self, forKey: .placement)
        mirror = try c.decodeIfPresent(StreamSource.self, forKey: .mirror)
        sources = try c.decodeIfPresent([StreamSource].self, forKey: .sources).flatMap { $0.isEmpty ? nil : $0 }
        compression = try c.decodeIfPresent(String.self, forKey: .compression)
        firstSeq = try c.decodeIfPresent(UInt64.self, forKey: .firstSeq)
        subjectTransform = try c.decodeIfPresent(SubjectTransformConfig.self, forKey: .subjectTransform)
        republish = try c.decodeIfPresent(RePublishConfig.self, forKey: .republish)
        allowDirect = try c.decodeIfPresent(Bool.self, forKey: .allowDirect) ?? false
        mirrorDirect = try c.decodeIfPresent(Bool.self, forKey: .mirrorDirect) ?? false
        discardNewPerSubject = try c.decodeIfPresent(Bool.self, forKey: .discardNewPerSubject)
        sealed = try c.decodeIfPresent(Bool.self, forKey: .sealed) ?? false
        denyDelete = try c.decodeIfPresent(Bool.self, forKey: .denyDelete) ?? false
        denyPurge = try c.decodeIfPresent(Bool.self, forKey: .denyPurge) ?? false
        allowRollupHdrs = try c.decodeIfPresent(Bool.self, forKey: .allowRollupHdrs) ?? false
        consumerLimits = try c.decodeIfPresent(JSONValue.self, forKey: .consumerLimits)
        metadata = try c.decodeIfPresent([String: String].self, forKey: .metadata)
        allowMsgTTL = try c.decodeIfPresent(Bool.self, forKey: .allowMsgTTL)
        subjectDeleteMarkerTTL = try c.decodeIfPresent(Int64.self, forKey: .subjectDeleteMarkerTTL)
        allowMsgCounter = try c.decodeIfPresent(Bool.self, forKey: .allowMsgCounter)
        allowAtomic = try c.decodeIfPresent(Bool.self, forKey: .allowAtomic)
        allowBatched = try c.decodeIfPresent(Bool.self, forKey: .allowBatched)
        allowMsgSchedules = try c.decodeIfPresent(Bool.self, forKey: .allowMsgSchedules)
        persistMode = try c.decodeIfPresent(String.self, forKey: .persistMode)
    }

    /// The part of the configuration the stream itself enforces.
    var streamConfig: StreamConfig {
        var config = StreamConfig(name: name, subjects: subjects)
        config.retention = retention
        config.maxMsgs = maxMsgs
        config.maxBytes = maxBytes
        config.maxAge = maxAge
        config.maxMsgSize = maxMsgSize
        config.maxMsgsPerSubject = maxMsgsPerSubject
        config.discard = discard
        config.storage = storage
        config.duplicateWindow = duplicateWindow
        config.numReplicas = numReplicas
        config.allowRollup = allowRollupHdrs
        config.denyDelete = denyDelete
        config.denyPurge = denyPurge
        config.sealed = sealed
        config.allowMsgTTL = allowMsgTTL ?? false
        config.subjectDeleteMarkerTTL = subjectDeleteMarkerTTL ?? 0
        config.discardNewPerSubject = discardNewPerSubject ?? false
        return config
    }
}

// MARK: - Requests

/// STREAM.NAMES: only the streams with a subject that overlaps `subject`, when given.
struct StreamNamesRequest: Decodable {
    var subject: String?
    var offset: Int?
}

/// STREAM.MSG.GET and DIRECT.GET: by sequence, the last message on a subject, or the next one on a subject
/// from a sequence on; DIRECT.GET adds batches, a start time and no_hdr.
struct StreamMsgGetRequest: Decodable, Equatable {
    var seq: UInt64?
    var lastBySubject: String?
    var nextBySubject: String?
    var batch: Int?
    var maxBytes: Int?
    var startTime: String?
    var multiLast: [String]?
    var upToSeq: UInt64?
    var upToTime: String?
    var noHeaders: Bool?

    init(seq: UInt64? = nil, lastBySubject: String? = nil, nextBySubject: String? = nil) {
        self.seq = seq
        self.lastBySubject = lastBySubject
        self.nextBySubject = nextBySubject
    }

    enum CodingKeys: String, CodingKey {
        case seq, batch
        case lastBySubject = "last_by_subj", nextBySubject = "next_by_subj", maxBytes = "max_bytes"
        case startTime = "start_time", multiLast = "multi_last", upToSeq = "up_to_seq", upToTime = "up_to_time"
        case noHeaders = "no_hdr"
    }
}

/// STREAM.MSG.DELETE: `no_erase` removes without overwriting (brokerd's store removes the same way both times).
struct StreamMsgDeleteRequest: Decodable {
    var seq: UInt64 = 0
    var noErase: Bool?

    enum CodingKeys: String, CodingKey {
        case seq
        case noErase = "no_erase"
    }
}

/// STREAM.PURGE with options: only `filter`'s messages, only those below `seq`, or all but the newest `keep`.
struct StreamPurgeRequest: Decodable {
    var seq: UInt64?
    var filter: String?
    var keep: UInt64?
}

/// STREAM.INFO options: per-subject counts for `subjects_filter` (paged by `offset`), and the deleted sequences.
struct StreamInfoRequest: Decodable {
    var subjectsFilter: String?
    var deletedDetails: Bool?
    var offset: Int?

    init(subjectsFilter: String? = nil, deletedDetails: Bool? = nil, offset: Int? = nil) {
        self.subjectsFilter = subjectsFilter
        self.deletedDetails = deletedDetails
        self.offset = offset
    }

    enum CodingKeys: String, CodingKey {
        case offset
        case subjectsFilter = "subjects_filter", deletedDetails = "deleted_details"
    }
}

// MARK: - Responses

struct AccountInfoResponse: JetStreamAPIResponse, Equatable {
    static let type = "account_info_response"

    struct Limits: Codable, Equatable {
        var maxMemory = -1
        var maxStorage = -1
        var maxStreams = -1
        var maxConsumers = -1
        var maxAckPending = -1
        var memoryMaxStreamBytes = -1
        var storageMaxStreamBytes = -1
        var maxBytesRequired = false

        enum CodingKeys: String, CodingKey {
            case maxMemory = "max_memory", maxStorage = "max_storage", maxStreams = "max_streams"
            case maxConsumers = "max_consumers", maxAckPending = "max_ack_pending"
            case memoryMaxStreamBytes = "memory_max_stream_bytes", storageMaxStreamBytes = "storage_max_stream_bytes"
            case maxBytesRequired = "max_bytes_required"
        }
    }

    struct APIStats: Codable, Equatable {
        /// nats-server's JetStream API level: 1 is 2.11's (per-message TTL, delete markers, consumer pause), what
        /// brokerd serves; clients check it before they use those features.
        var level = 1
        var total = 0
        var errors = 0
    }

    var memory: UInt64
    var storage: UInt64
    var streams: Int
    var consumers: Int
    var limits = Limits()
    var api: APIStats
}

struct StreamState: Codable, Equatable {
    var messages: UInt64
    var bytes: UInt64
    var firstSeq: UInt64
    var firstTime: APITime
    var lastSeq: UInt64
    var lastTime: APITime
    /// Absent when 0, as nats-server's omitempty.
    var numSubjects: Int?
    var subjects: [String: UInt64]?
    var numDeleted: Int?
    var deleted: [UInt64]?
    var consumerCount: Int

    init(messages: UInt64, bytes: UInt64, firstSeq: UInt64, firstTime: APITime, lastSeq: UInt64, lastTime: APITime,
         numSubjects: Int? = nil, subjects: [String: UInt64]? = nil, numDeleted: Int? = nil, deleted: [UInt64]? = nil,
         consumerCount: Int) {
        self.messages = messages
        self.bytes = bytes
        self.firstSeq = firstSeq
        self.firstTime = firstTime
        self.lastSeq = lastSeq
        self.lastTime = lastTime
        self.numSubjects = numSubjects
        self.subjects = subjects
        self.numDeleted = numDeleted
        self.deleted = deleted
        self.consumerCount = consumerCount
    }

    enum CodingKeys: String, CodingKey {
        case messages, bytes, subjects, deleted
        case firstSeq = "first_seq", firstTime = "first_ts", lastSeq = "last_seq", lastTime = "last_ts"
        case numSubjects = "num_subjects", numDeleted = "num_deleted"
        case consumerCount = "consumer_count"
    }
}

/// A stream's info: in STREAM.INFO, CREATE and UPDATE replies, and in STREAM.LIST.
struct StreamInfo: Codable, Equatable {
    var config: APIStreamConfig
    var created: APITime
    var state: StreamState
    /// A mirror's and the sources' positions (StreamSources.swift).
    var mirror: StreamSourceInfo?
    var sources: [StreamSourceInfo]?
    /// Only in CREATE replies: false when the same stream already existed.
    var didCreate: Bool?

    enum CodingKeys: String, CodingKey {
        case config, created, state, mirror, sources
        case didCreate = "did_create"
    }
}

struct StreamInfoResponse: JetStreamAPIResponse, Equatable {
    static let type = "stream_info_response"
    var info: StreamInfo
    /// With a subjects filter: nats-server's paging fields (total subjects, offset, page size).
    var paging: Paging?

    struct Paging: Codable, Equatable {
        var total: Int
        var offset: Int
        var limit: Int
    }

    /// nats-server always sends the paging fields in a STREAM.INFO reply (zeros without a subjects filter).
    init(info: StreamInfo, paging: Paging? = Paging(total: 0, offset: 0, limit: 0)) {
        self.info = info
        self.paging = paging
    }

    func encode(to encoder: any Encoder) throws {
        try info.encode(to: encoder)
        try paging?.encode(to: encoder)
    }
}

struct StreamMsgDeleteResponse: JetStreamAPIResponse, Equatable {
    static let type = "stream_msg_delete_response"
    var success = true
}

struct StreamCreateResponse: JetStreamAPIResponse, Equatable {
    static let type = "stream_create_response"
    var info: StreamInfo
    func encode(to encoder: any Encoder) throws { try info.encode(to: encoder) }
}

struct StreamUpdateResponse: JetStreamAPIResponse, Equatable {
    static let type = "stream_update_response"
    var info: StreamInfo
    func encode(to encoder: any Encoder) throws { try info.encode(to: encoder) }
}

struct StreamDeleteResponse: JetStreamAPIResponse, Equatable {
    static let type = "stream_delete_response"
    var success = true
}

struct StreamPurgeResponse: JetStreamAPIResponse, Equatable {
    static let type = "stream_purge_response"
    var success = true
    var purged: UInt64
}

struct StreamMsgGetResponse: JetStreamAPIResponse, Equatable {
    static let type = "stream_msg_get_response"

    struct Message: Codable, Equatable {
        var subject: String
        var seq: UInt64
        /// Base64 of the payload.
        var data: String
        var time: APITime
        /// Base64 of the header block; absent when the message has none.
        var hdrs: String?
    }

    var message: Message
}

struct StreamNamesResponse: JetStreamAPIResponse, Equatable {
    static let type = "stream_names_response"
    var total: Int
    var offset = 0
    var limit = 1024  // nats-server's page size for names
    var streams: [String]
}

struct StreamListResponse: JetStreamAPIResponse, Equatable {
    static let type = "stream_list_response"
    var total: Int
    var offset = 0
    var limit = 256  // nats-server's page size for infos
    var streams: [StreamInfo]
}
