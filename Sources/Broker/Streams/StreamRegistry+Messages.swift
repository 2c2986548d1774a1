import Foundation
import Protocol

/// The message half of the registry: reading messages (STREAM.MSG.GET, DIRECT.GET), deleting them
/// (STREAM.MSG.DELETE), purging with options, and the detailed STREAM.INFO (per-subject counts, deleted
/// sequences). Plain Swift on the registry's streams, as nats-server answers them.
extension StreamRegistry {
    /// STREAM.MSG.GET: by sequence, the newest message on a subject, or the first on a subject from a sequence.
    func message(in name: String, _ request: StreamMsgGetRequest) -> Result<StreamMsgGetResponse, JetStreamAPIError> {
        guard let entry = streams[name] else { return .failure(.streamNotFound) }
        guard let message = find(in: entry.stream, request) else { return .failure(.noMessageFound) }
        return .success(StreamMsgGetResponse(message: .init(
            subject: String(decoding: message.subject, as: UTF8.self), seq: message.sequence,
            data: Data(message.payload).base64EncodedString(), time: APITime(nanoseconds: message.timestamp),
            hdrs: message.headers.isEmpty ? nil : Data(message.headers).base64EncodedString())))
    }

    /// The one message a get request names (nil: none).
    func find(in stream: DurableStream, _ request: StreamMsgGetRequest) -> StoredMessage? {
        let store = stream.store
        if let subject = request.nextBySubject, !subject.isEmpty {
            let filter = Array(subject.utf8)
            let from = max(request.seq ?? 0, stream.state.firstSequence)
            guard let sequence = stream.sequences(matching: filter, from: from, upTo: .max, limit: 1).first.first else { return nil }
            return try? store.load(sequence)
        }
        if let subject = request.lastBySubject, !subject.isEmpty {
            let sequence = stream.lastSequence(matching: Array(subject.utf8))
            return sequence > 0 ? try? store.load(sequence) : nil
        }
        if let seq = request.seq, seq > 0 { return try? store.load(seq) }
        if let since = request.startTime.flatMap(APITime.parse) {
            return try? store.load(stream.firstSequence(storedAtOrAfter: since))
        }
        return nil
    }

    /// STREAM.MSG.DELETE.
    func deleteMessage(in name: String, _ request: StreamMsgDeleteRequest) -> Result<StreamMsgDeleteResponse, JetStreamAPIError> {
        guard let entry = streams[name] else { return .failure(.streamNotFound) }
        if entry.config.sealed { return .failure(.streamSealed) }
        if entry.config.denyDelete { return .failure(.messageDeleteFailed("message delete not permitted")) }
        let seq = request.seq
        // Outside the stream: nats-server's store errors (past the end ErrStoreEOF, before the start not found).
        if seq > entry.stream.state.lastSequence { return .failure(.messageDeleteFailed("stream store EOF")) }
        if seq == 0 || seq < entry.stream.state.firstSequence { return .failure(.messageDeleteFailed("no message found")) }
        do {
            // Inside the stream but already gone: nats-server's "sequence N not found".
            guard try entry.stream.removeMessage(seq) else { return .failure(.sequenceNotFound(seq)) }
        } catch {
            return .failure(.messageDeleteFailed("\(error)"))
        }
        return .success(StreamMsgDeleteResponse())
    }

    /// STREAM.PURGE, whole or with a filter, a sequence bound or a number to keep.
    func purgeStream(_ name: String, _ request: StreamPurgeRequest? = nil) -> Result<StreamPurgeResponse, JetStreamAPIError> {
        if let request, (request.seq ?? 0) > 0, (request.keep ?? 0) > 0 { return .failure(.badRequest) }
        guard let entry = streams[name] else { return .failure(.streamNotFound) }
        if entry.config.sealed { return .failure(.streamSealed) }
        if entry.config.denyPurge { return .failure(.streamPurgeFailed("stream purge not permitted")) }
        do {
            let filter = request?.filter.flatMap { $0.isEmpty || $0 == ">" ? nil : Array($0.utf8) }
            let upTo = request?.seq.flatMap { $0 > 0 ? $0 : nil }
            let purged = try entry.stream.purge(filter: filter, upTo: upTo, keep: request?.keep)
            return .success(StreamPurgeResponse(purged: purged))
        } catch {
            return .failure(.purgeFailed(error))
        }
    }

    /// STREAM.INFO with options: per-subject counts for a filter (at most 100,000 per page, as nats-server)
    /// and the deleted sequences.
    func streamInfo(_ name: String, _ request: StreamInfoRequest = StreamInfoRequest()) -> Result<StreamInfoResponse, JetStreamAPIError> {
        guard streams[name] != nil else { return .failure(.streamNotFound) }
        var info = info(name, didCreate: nil)
        let stream = streams[name]!.stream
        var paging = StreamInfoResponse.Paging(total: 0, offset: 0, limit: 0)
        if let filter = request.subjectsFilter, !filter.isEmpty {
            let counts = stream.subjectCounts(filter: filter == ">" ? nil : Array(filter.utf8))
            let offset = max(request.offset ?? 0, 0)
            let limit = 100_000
            if !counts.isEmpty { paging = .init(total: counts.count, offset: offset, limit: limit) }
            if counts.isEmpty {
            } else if offset == 0 && counts.count <= limit {
                info.state.subjects = counts.isEmpty ? nil : counts
            } else {
                let page = counts.keys.sorted().dropFirst(offset).prefix(limit)
                info.state.subjects = page.isEmpty ? nil : Dictionary(uniqueKeysWithValues: page.map { ($0, counts[$0]!) })
            }
        }
        if request.deletedDetails == true {
            let deleted = deletedSequences(of: stream)
            info.state.deleted = deleted.isEmpty ? nil : deleted
        }
        return .success(StreamInfoResponse(info: info, paging: paging))
    }

    /// The sequences between the first and the last that hold no message.
    func deletedSequences(of stream: DurableStream) -> [UInt64] {
        let state = stream.state
        guard state.messages > 0, state.lastSequence >= state.firstSequence else { return [] }
        var deleted: [UInt64] = []
        var s = state.firstSequence
        while s <= state.lastSequence {
            if !stream.store.contains(s) { deleted.append(s) }
            s += 1
        }
        return deleted
    }

    /// DIRECT.GET: the messages a request names, each with nats-server's `Nats-Stream`/`Nats-Subject`/
    /// `Nats-Sequence`/`Nats-Time-Stamp` headers (and `Nats-Num-Pending`/`Nats-Last-Sequence` in a batch), then
    /// an EOB status for a batch; or the one status message that says why not.
    func directGet(in name: String, request body: [UInt8], lastBySubject: String?) -> [(headers: [UInt8], payload: [UInt8])] {
        func status(_ text: String) -> [(headers: [UInt8], payload: [UInt8])] { [(Array("NATS/1.0 \(text)\r\n\r\n".utf8), [])] }
        guard let entry = streams[name] else { return status("404 Message Not Found") }
        var request = StreamMsgGetRequest()
        let empty = body.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D || $0 == 0x0A }
        if let lastBySubject {
            if !empty {
                guard let decoded = try? JSONDecoder().decode(StreamMsgGetRequest.self, from: Data(body)) else {
                    return status("408 Malformed Request")
                }
                if decoded.lastBySubject != nil || decoded.nextBySubject != nil || decoded.multiLast != nil || (decoded.seq ?? 0) != 0
                    || (decoded.batch ?? 0) != 0 || decoded.startTime != nil || (decoded.upToSeq ?? 0) != 0 || decoded.upToTime != nil {
                    return status("408 Bad Request")
                }
                request = decoded
            }
            guard !lastBySubject.isEmpty else { return status("408 Bad Request") }
            request.lastBySubject = lastBySubject
        } else {
            if empty { return status("408 Empty Request") }
            guard let decoded = try? JSONDecoder().decode(StreamMsgGetRequest.self, from: Data(body)) else {
                return status("408 Malformed Request")
            }
            request = decoded
            let seq = request.seq ?? 0, last = request.lastBySubject ?? "", next = request.nextBySubject ?? ""
            if seq == 0 && last.isEmpty && next.isEmpty && (request.multiLast ?? []).isEmpty && request.startTime == nil {
                return status("408 Empty Request")
            }
            if (seq > 0 && !last.isEmpty) || (seq > 0 && request.startTime != nil) || (request.startTime != nil && !last.isEmpty)
                || (!last.isEmpty && !next.isEmpty) || (!last.isEmpty && (request.batch ?? 0) > 0)
                || ((request.upToSeq ?? 0) > 0 && request.upToTime != nil) {
                return status("408 Bad Request")
            }
        }
        let stream = entry.stream
        let batch = max(request.batch ?? 0, 0)
        func headers(for m: StoredMessage, pending: UInt64?, last: UInt64) -> [UInt8] {
            if request.noHeaders == true { return [] }
            var block = m.headers.isEmpty ? Array("NATS/1.0\r\n".utf8) : Array(m.headers.dropLast(2))
            var fields = "Nats-Stream: \(name)\r\nNats-Subject: \(String(decoding: m.subject, as: UTF8.self))\r\n"
                + "Nats-Sequence: \(m.sequence)\r\nNats-Time-Stamp: \(JetStream.timestamp(nanoseconds: m.timestamp))\r\n"
            if let pending { fields += "Nats-Num-Pending: \(pending)\r\nNats-Last-Sequence: \(last)\r\n" }
            block += Array((fields + "\r\n").utf8)
            return block
        }
        let maxBytes = (request.maxBytes ?? 0) > 0 ? request.maxBytes! : 64 * 1024 * 1024
        if let filters = request.multiLast, !filters.isEmpty {
            // multi_last (nats-server's getDirectMulti): the last message of each subject matching the filters at
            // or below up_to_seq (or before up_to_time), oldest first, at most 1,024 of them; EOB names the bound.
            var upTo = request.upToSeq ?? 0
            if let time = request.upToTime.flatMap(APITime.parse) {
                let first = stream.firstSequence(storedAtOrAfter: time)
                if first <= stream.state.firstSequence { return status("404 No Results") }
                upTo = first - 1
            }
            if upTo == 0 { upTo = stream.state.lastSequence }
            let sequences = stream.lastSequencesPerSubject(filters: filters.map { Array($0.utf8) }, upTo: upTo).sorted()
            if sequences.count > 1024 { return status("413 Too Many Results") }
            if sequences.isEmpty { return status("404 No Results") }
            var out: [(headers: [UInt8], payload: [UInt8])] = []
            var pending = UInt64(sequences.count), last: UInt64 = 0, sent = 0, bytes = 0
            for sequence in sequences {
                pending -= 1
                if sequence < (request.seq ?? 0) { continue }
                guard let m = try? stream.store.load(sequence) else { return status("404 Message Not Found") }
                out.append((headers(for: m, pending: pending, last: last), m.payload))
                last = m.sequence
                bytes += m.subject.count + m.headers.count + m.payload.count
                if bytes >= maxBytes { break }
                sent += 1
                if batch > 0, sent >= batch { break }
            }
            out.append((Array("NATS/1.0 204 EOB\r\nNats-Num-Pending: \(pending)\r\nNats-Last-Sequence: \(last)\r\nNats-UpTo-Sequence: \(upTo)\r\n\r\n".utf8), []))
            return out
        }
        guard batch > 0 else {
            guard let m = find(in: stream, request) else { return status("404 Message Not Found") }
            return [(headers(for: m, pending: nil, last: 0), m.payload)]
        }
        // A batch: from seq (or the start time) on, the messages matching next_by_subj (all when absent).
        let filter = request.nextBySubject.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        var from = max(request.seq ?? 0, stream.state.firstSequence)
        if let since = request.startTime.flatMap(APITime.parse) { from = stream.firstSequence(storedAtOrAfter: since) }
        let upTo = (request.upToSeq ?? 0) > 0 ? request.upToSeq! : .max
        let (candidates, total) = stream.sequences(matching: filter, from: from, upTo: upTo, limit: batch)
        guard !candidates.isEmpty else { return status("404 Message Not Found") }
        var out: [(headers: [UInt8], payload: [UInt8])] = []
        var pending = total
        var last: UInt64 = 0
        var sent = 0
        for sequence in candidates {
            guard let m = try? stream.store.load(sequence) else { continue }
            pending -= 1
            out.append((headers(for: m, pending: pending, last: last), m.payload))
            last = m.sequence
            sent += m.subject.count + m.headers.count + m.payload.count
            if sent >= maxBytes { break }
        }
        out.append((Array("NATS/1.0 204 EOB\r\nNats-Num-Pending: \(pending)\r\nNats-Last-Sequence: \(last)\r\n\r\n".utf8), []))
        return out
    }
}
