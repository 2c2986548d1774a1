import Foundation
import NIOCore
import Protocol

/// What a stream does around storing a message, when configured: its `subject_transform` (the stored subject
/// is the transformed one, nats-server's `itr`) and its `republish` (once stored, the message goes out again
/// on the destination with Nats-Stream, Nats-Subject, Nats-Sequence, Nats-Time-Stamp and Nats-Last-Sequence).
/// Built once per stream configuration: a stream without either has none, and capture pays one nil check.
struct StreamIngest: Sendable {
    /// `subject_transform`: the stored subject (a subject it does not match is stored as it came).
    let transform: SubjectMapper?
    /// `republish`: the messages its source matches, and where they go.
    let republishFilter: [UInt8]?
    let republishMapper: SubjectMapper?
    let republishDestination: [UInt8]
    let headersOnly: Bool

    init?(config: APIStreamConfig) {
        guard config.subjectTransform != nil || config.republish != nil else { return nil }
        transform = config.subjectTransform.flatMap { Self.mapper(source: $0.src, destination: $0.dest) }
        if let republish = config.republish {
            let source = (republish.src ?? "").isEmpty ? ">" : republish.src!
            republishFilter = Array(source.utf8)
            republishMapper = Self.mapper(source: source, destination: republish.dest)
            republishDestination = Array(republish.dest.utf8)
            headersOnly = republish.headersOnly ?? false
        } else {
            republishFilter = nil
            republishMapper = nil
            republishDestination = []
            headersOnly = false
        }
    }

    /// A mapper from `source` (empty: `>`) to `destination`; nil when the destination is empty or the same.
    static func mapper(source: String, destination: String) -> SubjectMapper? {
        let source = source.isEmpty ? ">" : source
        guard !destination.isEmpty, destination != source else { return nil }
        var mapper = SubjectMapper()
        guard (try? mapper.add(source: source, destinations: [(destination, 100)])) != nil else { return nil }
        return mapper
    }

    /// Whether `configuration` (source and destination) is one brokerd can transform with (nats-server's
    /// ValidateMapping); the error text when not.
    static func validate(source: String, destination: String) -> String? {
        let source = source.isEmpty ? ">" : source
        guard !destination.isEmpty else { return nil }
        // nats-server: a source ending in '>' needs a destination ending in '>', and the other way round.
        guard source.hasSuffix(">") == destination.hasSuffix(">") else { return "invalid subject" }
        var mapper = SubjectMapper()
        do {
            try mapper.add(source: source, destinations: [(destination, 100)])
            return nil
        } catch {
            return error.description
        }
    }

    /// The subject to store.
    func storedSubject(_ subject: [UInt8]) -> [UInt8] {
        guard let transform, let mapped = transform.map(ByteBuffer(bytes: subject)) else { return subject }
        return Array(mapped.readableBytesView)
    }

    var republishes: Bool { republishFilter != nil }

    /// The message to republish for a stored one, nil when the republish source does not match.
    /// `lastSequence` is the previous message's sequence on the same subject (0 when none).
    func republished(stream: String, subject: [UInt8], sequence: UInt64, timestamp: Int64, lastSequence: UInt64,
                     headers: [UInt8], payload: [UInt8]) -> (subject: [UInt8], headers: [UInt8], payload: [UInt8])? {
        guard let filter = republishFilter, Subject.matches(filter: filter, subject: subject) else { return nil }
        let destination: [UInt8]
        if let republishMapper {
            guard let mapped = republishMapper.map(ByteBuffer(bytes: subject)) else { return nil }
            destination = Array(mapped.readableBytesView)
        } else {
            destination = republishDestination.isEmpty || republishDestination == filter ? subject : republishDestination
        }
        var lines = "Nats-Stream: \(stream)\r\nNats-Subject: \(String(decoding: subject, as: UTF8.self))\r\n"
            + "Nats-Sequence: \(sequence)\r\nNats-Time-Stamp: \(GoTime.rfc3339Nano(timestamp))\r\nNats-Last-Sequence: \(lastSequence)\r\n"
        if headersOnly { lines += "Nats-Msg-Size: \(payload.count)\r\n" }
        // nats-server appends its lines to the message's own headers (before the blank line).
        var out: [UInt8] = headers.count > 2 ? Array(headers.dropLast(2)) : Array("NATS/1.0\r\n".utf8)
        out.append(contentsOf: Array((lines + "\r\n").utf8))
        return (destination, out, headersOnly ? [] : payload)
    }
}

/// Go's time formats, as nats-server writes them in headers.
enum GoTime {
    /// time.RFC3339Nano in UTC: the fraction without trailing zeros, none when zero.
    static func rfc3339Nano(_ nanoseconds: Int64) -> String {
        let full = JetStream.timestamp(nanoseconds: nanoseconds)  // ...SS.nnnnnnnnnZ
        guard let dot = full.lastIndex(of: ".") else { return full }
        var fraction = full[full.index(after: dot)..<full.index(before: full.endIndex)]
        while fraction.last == "0" { fraction = fraction.dropLast() }
        return String(full[..<dot]) + (fraction.isEmpty ? "" : "." + fraction) + "Z"
    }
}
