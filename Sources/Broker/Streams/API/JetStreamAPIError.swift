/// An API error as nats-server reports it: an HTTP-like `code`, its own `err_code`, and a description.
/// Encoded inside `{"type":...,"error":{...}}` (see `APIErrorReply`).
struct JetStreamAPIError: Error, Codable, Equatable, Sendable {
    var code: Int
    var errCode: Int
    var description: String

    enum CodingKeys: String, CodingKey {
        case code, description
        case errCode = "err_code"
    }

    // nats-server's codes (server/errors.json), with the descriptions brokerd has always sent.
    static let badRequest = Self(code: 400, errCode: 10003, description: "bad request")
    static let streamNotFound = Self(code: 404, errCode: 10059, description: "stream not found")
    static let consumerNotFound = Self(code: 404, errCode: 10014, description: "consumer not found")
    static let invalidStreamName = Self(code: 400, errCode: 10042, description: "invalid stream name")
    static let streamNameMismatch = Self(code: 400, errCode: 10056, description: "stream name in subject does not match request")
    static let invalidSubject = Self(code: 400, errCode: 10052, description: "invalid subject")
    static let streamNameInUse = Self(code: 400, errCode: 10058, description: "stream name already in use with a different configuration")
    static let subjectsOverlap = Self(code: 400, errCode: 10065, description: "subjects overlap with an existing stream")
    static let storageTypeChange = Self(code: 500, errCode: 10052, description: "stream configuration update can not change storage type")
    static let insufficientMemory = Self(code: 500, errCode: 10028, description: "insufficient memory resources available")
    static let insufficientStorage = Self(code: 500, errCode: 10047, description: "insufficient storage resources available")
    static let noMessageFound = Self(code: 404, errCode: 10037, description: "no message found")
    static let consumerNameMismatch = Self(code: 400, errCode: 10017, description: "consumer name in subject does not match durable name in request")
    static let consumerExists = Self(code: 400, errCode: 10148, description: "consumer already exists")
    static let consumerNameExists = Self(code: 400, errCode: 10013, description: "consumer name already in use")
    static let consumerDoesNotExist = Self(code: 400, errCode: 10149, description: "consumer does not exist")
    static let consumerDuplicateFilterSubjects = Self(code: 400, errCode: 10136, description: "consumer cannot have both FilterSubject and FilterSubjects specified")
    static let consumerEmptyFilter = Self(code: 400, errCode: 10139, description: "consumer filter in FilterSubjects cannot be empty")
    static let consumerOverlappingFilters = Self(code: 400, errCode: 10138, description: "consumer subject filters cannot overlap")
    static let workqueueNeedsExplicitAck = Self(code: 400, errCode: 10098, description: "workqueue stream requires explicit ack")

    static let streamSealed = Self(code: 400, errCode: 10109, description: "invalid operation on sealed stream")
    static let replicasNotSupported = Self(code: 500, errCode: 10074, description: "replicas > 1 not supported in non-clustered mode")
    static let maximumStreams = Self(code: 400, errCode: 10027, description: "maximum number of streams reached")
    static let maximumConsumers = Self(code: 400, errCode: 10026, description: "maximum consumers limit reached")

    /// nats-server's JSStreamInvalidConfigF (500, 10052) with its text.
    static func invalidConfig(_ text: String) -> Self {
        Self(code: 500, errCode: 10052, description: text)
    }

    static func messageDeleteFailed(_ text: String) -> Self {
        Self(code: 500, errCode: 10057, description: text)
    }

    static func sequenceNotFound(_ sequence: UInt64) -> Self {
        Self(code: 400, errCode: 10043, description: "sequence \(sequence) not found")
    }

    static func streamPurgeFailed(_ text: String) -> Self {
        Self(code: 500, errCode: 10110, description: text)
    }

    static func invalidJSON(_ error: any Error) -> Self {
        Self(code: 400, errCode: 10025, description: "invalid JSON: \(error)")
    }

    static func streamUpdateFailed(_ error: any Error) -> Self {
        Self(code: 500, errCode: 10052, description: "stream update failed: \(error)")
    }

    static func streamCreateFailed(_ error: any Error) -> Self {
        Self(code: 500, errCode: 10049, description: "stream create failed: \(error)")
    }

    static func purgeFailed(_ error: any Error) -> Self {
        Self(code: 500, errCode: 10063, description: "purge failed: \(error)")
    }
}
