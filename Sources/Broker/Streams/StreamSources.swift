import Foundation
import NIOCore
import Protocol

/// A stream's mirror or sources, as nats-server keeps them (stream.go: setupMirrorConsumer, setupSourceConsumer,
/// processInboundMirrorMsg, processInboundSourceMsg): for each origin stream, a push consumer asked for through
/// the JetStream API (`$JS.API.CONSUMER.CREATE.<origin>.<name>[.<filter>]`, ack none, delivering to a
/// `$JS.M.`/`$JS.S.` subject this stream listens on), the origin sequence stored last, and what a delivery
/// means (store it, skip it, or start over from the last stored position).
///
/// Plain Swift, no queue, clock or subject space: JetStream (JetStream+Sources.swift) sends the requests,
/// subscribes the subjects and stores what `inbound` says. An external origin (`external.api`) differs only by
/// its API prefix.
///
/// Positions are not kept apart from the messages: a mirror's is its last sequence (a mirror keeps the
/// origin's sequences), a source's is in the `Nats-Stream-Source` header of the last message it brought
/// (`recover`). What a crash took from the store is asked for again; nothing is stored twice.
final class StreamSourcing {
    enum Kind: Equatable { case mirror, source }

    /// One origin stream: a mirror's, or one of the sources.
    final class Origin {
        let config: StreamSource
        /// nats-server's index name: `<stream> <filters> <destinations>`.
        let indexName: String
        let transforms: [Transform]
        /// The last origin sequence stored here, and the consumer's delivery sequence for it.
        var sourceSequence: UInt64 = 0
        var deliverySequence: UInt64 = 0
        var lag: UInt64 = 0
        /// When a message last came (nanoseconds; 0 = never).
        var lastHeard: Int64 = 0
        /// The consumer asked for (its name is known before the reply: the request names it).
        var consumer: String?
        /// The first delivery of a new consumer sets the positions.
        var fresh = true
        var deliverSubject: String?
        var replySubject: String?
        /// A create request waiting for its reply, sent at this time.
        var requestedAt: Int64?
        var lastAttempt: Int64 = 0
        var error: JetStreamAPIError?
        /// The deliver and reply subscriptions (JetStream's, on its queue).
        var subscriptions: [Subscription] = []

        init(config: StreamSource) {
            self.config = config
            indexName = config.indexName
            transforms = (config.subjectTransforms ?? []).compactMap { Transform($0) }
        }

        /// The API prefix requests go to (`$JS.API` here; another domain's across a leaf connection).
        var apiPrefix: String {
            guard let api = config.external?.api, !api.isEmpty else { return "$JS.API" }
            return api
        }
    }

    /// A mirror's or a source's subject transform: messages on `filter` get the destination's subject.
    struct Transform {
        let filter: [UInt8]
        let mapper: SubjectMapper?

        init?(_ config: SubjectTransformConfig) {
            let source = config.src.isEmpty ? ">" : config.src
            filter = Array(source.utf8)
            if config.dest.isEmpty || config.dest == source {
                mapper = nil
            } else {
                var m = SubjectMapper()
                guard (try? m.add(source: source, destinations: [(config.dest, 100)])) != nil else { return nil }
                mapper = m
            }
        }

        /// The new subject (the same when there is no destination), nil when `subject` does not pass.
        func apply(_ subject: [UInt8]) -> [UInt8]? {
            guard Subject.matches(filter: filter, subject: subject) else { return nil }
            guard let mapper, let mapped = mapper.map(ByteBuffer(bytes: subject)) else { return subject }
            return Array(mapped.readableBytesView)
        }
    }

    let stream: String
    let kind: Kind
    let origins: [Origin]
    /// The configuration this was built from (a changed one starts over).
    let configuration: APIStreamConfig

    init?(stream: String, config: APIStreamConfig) {
        self.stream = stream
        configuration = config
        if let mirror = config.mirror {
            kind = .mirror
            origins = [Origin(config: mirror)]
        } else if let sources = config.sources, !sources.isEmpty {
            kind = .source
            origins = sources.map(Origin.init)
        } else {
            return nil
        }
    }

    // MARK: - Positions

    /// Where each origin stands after a start: a mirror's last sequence is the origin's; a source's is the
    /// sequence in the newest `Nats-Stream-Source` header with its index name (nats-server's
    /// startingSequenceForSources, scanning back from the end).
    /// `saved`: the positions written after each stored batch (`positions`), which outlive the messages
    /// (nats-server's SourcesState): a stream that was purged or drained does not source everything again.
    func recover(from store: any MessageStore, saved: [String: UInt64] = [:]) {
        let state = store.state
        switch kind {
        case .mirror:
            origins[0].sourceSequence = state.lastSequence
        case .source:
            for origin in origins { origin.sourceSequence = saved[origin.indexName] ?? 0 }
            var missing = Dictionary(origins.map { ($0.indexName, $0) }, uniquingKeysWith: { a, _ in a })
            guard state.messages > 0 else { return }
            var sequence = state.lastSequence
            while sequence >= state.firstSequence, sequence > 0, !missing.isEmpty {
                if let message = try? store.load(sequence), let value = SourceHeader.value(in: message.headers),
                   let (indexName, originSequence) = SourceHeader.parse(value), let origin = missing.removeValue(forKey: indexName) {
                    origin.sourceSequence = max(origin.sourceSequence, originSequence)
                }
                sequence -= 1
            }
        }
    }

    /// Each source's last origin sequence stored here, by index name (what `recover` reads back).
    var positions: [String: UInt64] {
        Dictionary(origins.map { ($0.indexName, $0.sourceSequence) }, uniquingKeysWith: { a, b in max(a, b) })
    }

    // MARK: - Consumer requests

    /// The request that asks `origin` for a consumer (subject and JSON body, nats-server's
    /// CreateConsumerRequest), given this stream's store state. `token` makes the subjects and the name
    /// unique; the origin is marked as waiting for the reply.
    func consumerRequest(for origin: Origin, state: StoreState, lastTime: Int64, token: String, now: Int64) -> (subject: String, payload: [UInt8]) {
        let isMirror = kind == .mirror
        let deliver = (isMirror ? "$JS.M." : "$JS.S.") + token
        let reply = (isMirror ? "$JS.M.R." : "$JS.S.R.") + token
        let name = (isMirror ? "JS_MIRROR_" : "JS_SRC_") + token
        var config: [String: Any] = [
            "name": name, "deliver_subject": deliver, "ack_policy": "none", "ack_wait": 22 * 3_600_000_000_000 as Int64,
            "max_deliver": 1, "idle_heartbeat": 1_000_000_000 as Int64, "flow_control": true, "direct": true,
            "inactive_threshold": 10_000_000_000 as Int64,
            "metadata": [isMirror ? "_nats.mirror.stream" : "_nats.src.stream": stream],
        ]
        var startSequence: UInt64 = 0
        var startTime: String?
        origin.deliverySequence = 0
        if isMirror {
            // A mirror's position is its last sequence (nats-server: mirror.sseq = mset.lseq).
            origin.sourceSequence = state.lastSequence
            startSequence = state.lastSequence + 1
            if state.messages == 0 && state.lastSequence == 0 {
                // First time: the configured start.
                startSequence = origin.config.optStartSeq ?? 0
                if startSequence == 0 { startTime = origin.config.optStartTime }
            }
        } else if origin.sourceSequence > 0 {
            startSequence = origin.sourceSequence + 1
        } else if let seq = origin.config.optStartSeq {
            startSequence = seq
        } else if let time = origin.config.optStartTime {
            // Not before what this stream already holds.
            if lastTime > 0, let t = APITime.parse(time), t < lastTime {
                startTime = JetStream.timestamp(nanoseconds: lastTime)
            } else {
                startTime = time
            }
        } else if state.firstSequence > 1, lastTime > 0 {
            startTime = JetStream.timestamp(nanoseconds: lastTime)
        }
        if startSequence > 0 {
            config["deliver_policy"] = "by_start_sequence"
            config["opt_start_seq"] = startSequence
        } else if let startTime {
            config["deliver_policy"] = "by_start_time"
            config["opt_start_time"] = startTime
        } else {
            config["deliver_policy"] = "all"
        }
        var filter: String?
        if let f = origin.config.filterSubject {
            filter = f
        } else if let transforms = origin.config.subjectTransforms {
            let sources = transforms.map { $0.src.isEmpty ? ">" : $0.src }
            if sources.count == 1 { filter = sources[0] } else { config["filter_subjects"] = sources }
        }
        if let filter { config["filter_subject"] = filter }
        var subject = "\(origin.apiPrefix).CONSUMER.CREATE.\(origin.config.name).\(name)"
        if let filter { subject += "." + filter }
        let body: [String: Any] = ["stream_name": origin.config.name, "config": config]
        let payload = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])).map { Array($0) } ?? []
        origin.consumer = name
        origin.fresh = true
        origin.deliverSubject = deliver
        origin.replySubject = reply
        origin.requestedAt = now
        origin.lastAttempt = now
        return (subject, payload)
    }

    /// The reply to a create request: nil when the consumer is there, else the error (the caller retries).
    @discardableResult
    func createReply(for origin: Origin, payload: [UInt8]) -> JetStreamAPIError? {
        origin.requestedAt = nil
        guard let object = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any] else {
            origin.error = JetStreamAPIError(code: 500, errCode: 10025, description: "invalid JSON")
            return origin.error
        }
        if let error = object["error"] as? [String: Any] {
            origin.error = JetStreamAPIError(code: (error["code"] as? Int) ?? 500, errCode: (error["err_code"] as? Int) ?? 0,
                                             description: (error["description"] as? String) ?? "")
            return origin.error
        }
        origin.error = nil
        return nil
    }

    /// Forgets the current consumer (it failed, or deliveries went missing): the next tick asks again from
    /// the last stored position.
    func reset(_ origin: Origin) {
        origin.consumer = nil
        origin.deliverSubject = nil
        origin.replySubject = nil
        origin.requestedAt = nil
        origin.fresh = true
    }

    // MARK: - Deliveries

    /// What to do with one delivery from an origin's consumer.
    enum Inbound: Equatable {
        /// Not for us (an old consumer, a redelivery, something already stored).
        case ignore
        /// A mirror stores the message at the origin's sequence (and skips to it over a gap), with the
        /// origin's time.
        case mirror(sequence: UInt64, timestamp: Int64, subject: [UInt8], headers: [UInt8], payload: [UInt8])
        /// A source appends it with its `Nats-Stream-Source` header.
        case source(subject: [UInt8], headers: [UInt8], payload: [UInt8])
        /// Passed over (a subject the transforms do not take): the position moves on.
        case skip
        /// Deliveries went missing: start over from the last stored position.
        case restart
    }

    func inbound(_ origin: Origin, subject: [UInt8], reply: String, headers: [UInt8], payload: [UInt8], now: Int64) -> Inbound {
        guard let ack = AckReply(reply), ack.consumer == origin.consumer else { return .ignore }
        if ack.deliveries > 1 { return .ignore }
        origin.lastHeard = now
        switch kind {
        case .mirror:
            if ack.streamSequence <= origin.sourceSequence {
                if ack.consumerSequence == origin.deliverySequence + 1 { origin.deliverySequence += 1 }
                return .ignore
            } else if ack.streamSequence == origin.sourceSequence + 1 || origin.fresh || ack.consumerSequence == origin.deliverySequence + 1 {
                // Next in line, the first of a new consumer, or a gap the origin made (expired or deleted
                // messages: the delivery sequence has no hole).
                origin.fresh = false
            } else {
                return .restart
            }
        case .source:
            if ack.streamSequence <= origin.sourceSequence {
                if ack.consumerSequence == origin.deliverySequence + 1 { origin.deliverySequence += 1 }
                return .ignore
            } else if ack.consumerSequence == origin.deliverySequence + 1 || origin.fresh {
                origin.fresh = false
            } else if ack.consumerSequence > origin.deliverySequence {
                return .restart
            } else {
                return .ignore
            }
        }
        origin.deliverySequence = ack.consumerSequence
        origin.sourceSequence = ack.streamSequence
        origin.lag = ack.pending == 0 ? 0 : ack.pending - 1
        let original = subject
        var subject = subject
        if !origin.transforms.isEmpty {
            // The origin may deliver more than the transforms take (filter_subjects): those are passed over.
            guard let mapped = origin.transforms.lazy.compactMap({ $0.apply(subject) }).first else { return .skip }
            subject = mapped
        }
        switch kind {
        case .mirror:
            return .mirror(sequence: ack.streamSequence, timestamp: ack.timestamp, subject: subject, headers: headers, payload: payload)
        case .source:
            var headers = headers
            if !headers.isEmpty {
                headers = HeaderLines.removing(name: SourceHeader.name, from: headers)
                headers = HeaderLines.removing(prefix: "Nats-Expected-", from: headers)
                headers = HeaderLines.removing(prefix: "Nats-Batch-", from: headers)
            }
            let value = SourceHeader.make(indexName: origin.indexName, sequence: ack.streamSequenceText, original: original)
            return .source(subject: subject, headers: HeaderLines.adding(name: SourceHeader.name, value: value, to: headers), payload: payload)
        }
    }

    // MARK: - Info

    func info(now: Int64) -> (mirror: StreamSourceInfo?, sources: [StreamSourceInfo]?) {
        let infos = origins.map { origin in
            StreamSourceInfo(name: origin.config.name, external: origin.config.external, lag: origin.lag,
                             active: origin.lastHeard == 0 ? -1 : max(now - origin.lastHeard, 0),
                             filterSubject: origin.config.filterSubject,
                             subjectTransforms: origin.config.subjectTransforms, error: origin.error)
        }
        return kind == .mirror ? (infos.first, nil) : (nil, infos)
    }
}

/// The metadata of a JetStream delivery's reply subject: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`,
/// or the longer form with domain and account hash (12 tokens or more).
struct AckReply: Equatable {
    var stream: String
    var consumer: String
    var deliveries: UInt64
    var streamSequence: UInt64
    var streamSequenceText: String
    var consumerSequence: UInt64
    var timestamp: Int64
    var pending: UInt64

    init?(_ reply: String) {
        let tokens = reply.split(separator: ".", omittingEmptySubsequences: false)
        guard tokens.count == 9 || tokens.count >= 11, tokens[0] == "$JS", tokens[1] == "ACK" else { return nil }
        let o = tokens.count == 9 ? 2 : 4
        guard let dc = UInt64(tokens[o + 2]), let sseq = UInt64(tokens[o + 3]), let cseq = UInt64(tokens[o + 4]),
              let ts = Int64(tokens[o + 5]) else { return nil }
        stream = String(tokens[o])
        consumer = String(tokens[o + 1])
        deliveries = dc
        streamSequence = sseq
        streamSequenceText = String(tokens[o + 3])
        consumerSequence = cseq
        timestamp = ts
        pending = tokens.count > o + 6 ? UInt64(tokens[o + 6]) ?? 0 : 0
    }
}

/// `Nats-Stream-Source: <stream> <sequence> <filters> <destinations> <original subject>` (nats-server's
/// genSourceHeader; nats-server may add the origin's identity as a sixth field).
enum SourceHeader {
    static let name = "Nats-Stream-Source"

    static func make(indexName: String, sequence: String, original: [UInt8]) -> String {
        let parts = indexName.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return "\(indexName) \(sequence)" }
        return "\(parts[0]) \(sequence) \(parts[1]) \(parts[2]) \(String(decoding: original, as: UTF8.self))"
    }

    /// The index name and origin sequence in a header value (nats-server's streamAndSeq, new form).
    static func parse(_ value: String) -> (indexName: String, sequence: UInt64)? {
        let fields = value.split(separator: " ", omittingEmptySubsequences: false)
        guard fields.count >= 4, let sequence = UInt64(fields[1]) else { return nil }
        return ("\(fields[0]) \(fields[2]) \(fields[3])", sequence)
    }

    static func value(in headers: [UInt8]) -> String? { HeaderLines.value(of: name, in: headers) }
}

/// Header block edits as nats-server makes them (client.go: genHeader, removeHeaderIfPresent,
/// removeHeaderIfPrefixPresent), on the bytes.
enum HeaderLines {
    private static let crlf: [UInt8] = [0x0D, 0x0A]
    private static let statusLine = Array("NATS/1.0\r\n".utf8)

    /// The header block with `Name: value` added before its final blank line (a new block when empty).
    static func adding(name: String, value: String, to headers: [UInt8]) -> [UInt8] {
        var out: [UInt8] = headers.count > 2 ? Array(headers.dropLast(2)) : statusLine
        out.append(contentsOf: Array("\(name): \(value)\r\n\r\n".utf8))
        return out
    }

    /// Every line whose name is `name` removed (case-sensitive, as nats-server); empty when nothing is left.
    static func removing(name: String, from headers: [UInt8]) -> [UInt8] {
        filterLines(headers) { line in line.starts(with: Array((name + ":").utf8)) }
    }

    /// Every line whose name starts with `prefix` removed.
    static func removing(prefix: String, from headers: [UInt8]) -> [UInt8] {
        filterLines(headers) { line in line.starts(with: Array(prefix.utf8)) }
    }

    /// The value of the first `name:` line (case-insensitive name, trimmed value).
    static func value(of name: String, in headers: [UInt8]) -> String? {
        PublishHeaders.value(of: name.lowercased(), in: headers)
    }

    private static func lines(_ headers: [UInt8]) -> [ArraySlice<UInt8>] {
        var result: [ArraySlice<UInt8>] = []
        var start = 0
        var i = 0
        while i + 1 < headers.count {
            if headers[i] == 0x0D && headers[i + 1] == 0x0A {
                result.append(headers[start..<i])
                i += 2
                start = i
            } else {
                i += 1
            }
        }
        return result
    }

    private static func filterLines(_ headers: [UInt8], dropping: (ArraySlice<UInt8>) -> Bool) -> [UInt8] {
        let all = lines(headers)
        guard all.count > 1 else { return headers }
        let kept = all.dropFirst().filter { !$0.isEmpty && !dropping($0) }
        if kept.count == all.dropFirst().filter({ !$0.isEmpty }).count { return headers }
        guard !kept.isEmpty || !all[0].elementsEqual(statusLine.dropLast(2)) else { return [] }
        var out = Array(all[0]) + crlf
        for line in kept { out += line + crlf }
        return out + crlf
    }
}
