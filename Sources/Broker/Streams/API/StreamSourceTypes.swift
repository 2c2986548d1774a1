import Crypto
import Foundation

/// `{src, dest}`: a subject transform, as nats-server's SubjectTransformConfig (a stream's `subject_transform`,
/// a mirror's or a source's `subject_transforms`).
struct SubjectTransformConfig: Codable, Equatable, Sendable {
    var src: String
    var dest: String

    init(src: String, dest: String) {
        self.src = src
        self.dest = dest
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        src = try c.decodeIfPresent(String.self, forKey: .src) ?? ""
        dest = try c.decodeIfPresent(String.self, forKey: .dest) ?? ""
    }
}

/// `{src, dest, headers_only}`: what a stream republishes once it has stored a message (nats-server's RePublish).
struct RePublishConfig: Codable, Equatable, Sendable {
    var src: String?
    var dest: String
    var headersOnly: Bool?

    enum CodingKeys: String, CodingKey {
        case src, dest
        case headersOnly = "headers_only"
    }

    init(src: String?, dest: String, headersOnly: Bool? = nil) {
        self.src = src
        self.dest = dest
        self.headersOnly = headersOnly
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        src = try c.decodeIfPresent(String.self, forKey: .src)
        dest = try c.decodeIfPresent(String.self, forKey: .dest) ?? ""
        headersOnly = try c.decodeIfPresent(Bool.self, forKey: .headersOnly)
    }
}

/// `{api, deliver}`: another JetStream domain or account reached through API and delivery prefixes.
struct ExternalStream: Codable, Equatable, Sendable {
    var api: String
    var deliver: String

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        api = try c.decodeIfPresent(String.self, forKey: .api) ?? ""
        deliver = try c.decodeIfPresent(String.self, forKey: .deliver) ?? ""
    }
}

/// A stream's `mirror`, or one of its `sources` (nats-server's StreamSource). `consumer` (durable sourcing) is
/// kept as sent and echoed but not acted on. A `domain` is read and dropped, as nats-server (which has no such
/// field: the clients turn a domain into `external`).
struct StreamSource: Codable, Equatable, Sendable {
    var name: String
    var optStartSeq: UInt64?
    /// RFC 3339, as the client sent it.
    var optStartTime: String?
    var filterSubject: String?
    var subjectTransforms: [SubjectTransformConfig]?
    var external: ExternalStream?
    var consumer: JSONValue?

    enum CodingKeys: String, CodingKey {
        case name, external, consumer
        case optStartSeq = "opt_start_seq", optStartTime = "opt_start_time", filterSubject = "filter_subject"
        case subjectTransforms = "subject_transforms"
    }

    init(name: String) { self.name = name }

    /// Go's omitempty: a zero start sequence, an empty filter or transform list are not there.
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        optStartSeq = try c.decodeIfPresent(UInt64.self, forKey: .optStartSeq).flatMap { $0 == 0 ? nil : $0 }
        optStartTime = try c.decodeIfPresent(String.self, forKey: .optStartTime)
        filterSubject = try c.decodeIfPresent(String.self, forKey: .filterSubject).flatMap { $0.isEmpty ? nil : $0 }
        subjectTransforms = try c.decodeIfPresent([SubjectTransformConfig].self, forKey: .subjectTransforms)
            .flatMap { $0.isEmpty ? nil : $0 }
        external = try c.decodeIfPresent(ExternalStream.self, forKey: .external)
        consumer = try c.decodeIfPresent(JSONValue.self, forKey: .consumer)
    }

    /// nats-server's index name (composeIName): `<name>[:<api hash>] <filters> <destinations>`, the key of
    /// the source's position and the first fields of the `Nats-Stream-Source` header.
    var indexName: String {
        var name = self.name
        if let external { name += ":" + StreamSourceHash.hash(external.api) }
        var source = filterSubject ?? ">"
        var destination = ">"
        if let transforms = subjectTransforms {
            source = transforms.map { $0.src.isEmpty ? ">" : $0.src }.joined(separator: "\u{0C}")
            destination = transforms.map { $0.dest.isEmpty ? ">" : $0.dest }.joined(separator: "\u{0C}")
        }
        return [name, source, destination].joined(separator: " ")
    }
}

/// nats-server's getHash: SHA-256, base64 (URL alphabet, no padding), first 8 characters.
enum StreamSourceHash {
    static func hash(_ text: String) -> String {
        let digest = SHA256.hash(data: Data(text.utf8))
        let encoded = Data(digest).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        return String(encoded.prefix(8))
    }
}

/// A mirror's or a source's state in STREAM.INFO (nats-server's StreamSourceInfo).
struct StreamSourceInfo: Codable, Equatable, Sendable {
    var name: String
    var external: ExternalStream?
    var lag: UInt64
    /// Nanoseconds since the last message or heartbeat from the origin; -1 when nothing was heard yet.
    var active: Int64
    var filterSubject: String?
    var subjectTransforms: [SubjectTransformConfig]?
    var error: JetStreamAPIError?

    enum CodingKeys: String, CodingKey {
        case name, external, lag, active, error
        case filterSubject = "filter_subject", subjectTransforms = "subject_transforms"
    }
}
