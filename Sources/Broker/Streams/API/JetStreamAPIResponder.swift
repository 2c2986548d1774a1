/// Answers JetStream API requests from the registry: decodes the request body, asks the registry, encodes
/// the reply. Plain Swift, so a test reads the exact JSON a client gets; JetStream runs it on its queue and
/// carries out the `Change` (new subject filters, a consumer to start delivering).
struct JetStreamAPIResponder {
    let registry: StreamRegistry

    /// What the request changed that the server around the registry must act on.
    enum Change: Equatable {
        case none
        /// A stream was created (first time) or updated, or deleted: the capture filters are different.
        case streamCreated(String)
        case streamUpdated(String)
        case streamDeleted(String)
        /// A consumer was created (or created again): deliver what it may.
        case consumerReady(ConsumerEntry)

        static func == (a: Change, b: Change) -> Bool {
            switch (a, b) {
            case (.none, .none): return true
            case let (.streamCreated(x), .streamCreated(y)), let (.streamUpdated(x), .streamUpdated(y)),
                 let (.streamDeleted(x), .streamDeleted(y)):
                return x == y
            case let (.consumerReady(x), .consumerReady(y)): return x === y
            default: return false
            }
        }
    }

    enum Outcome {
        /// The reply to send (`isError` counts API errors for /jsz), and what changed.
        case reply([UInt8], isError: Bool, change: Change)
        /// CONSUMER.MSG.NEXT: no reply now; the consumer (when found) serves the request from its deliveries.
        case pull(ConsumerEntry?, PullNextRequest)

        /// The reply as text (tests).
        var text: String? {
            if case .reply(let bytes, _, _) = self { return String(decoding: bytes, as: UTF8.self) }
            return nil
        }
    }

    /// The reply to a request on `subject` (nats-server's bad request for a subject that names no API).
    func respond(subject: String, payload: [UInt8], stats: AccountInfoResponse.APIStats) -> Outcome {
        guard let api = JetStreamAPI(subject: subject) else {
            return .reply(JetStreamAPIReply.encode(.badRequest, type: nil), isError: true, change: .none)
        }
        return respond(to: api, payload: payload, stats: stats)
    }

    func respond(to api: JetStreamAPI, payload: [UInt8], stats: AccountInfoResponse.APIStats) -> Outcome {
        switch api {
        case .info:
            return reply(.success(registry.accountInfo(api: stats)))
        case .streamCreate(let name):
            let result = decode(APIStreamConfig.self, payload).flatMap { registry.createStream(name, $0) }
            let created = if case .success(let info) = result, info.didCreate == true { true } else { false }
            return reply(result.map(StreamCreateResponse.init), change: created ? .streamCreated(name) : .none)
        case .streamUpdate(let name):
            let result = decode(APIStreamConfig.self, payload).flatMap { registry.createStream(name, $0, update: true) }
            // An identical update changes nothing (did_create false); a real one has no did_create.
            let updated = if case .success(let info) = result, info.didCreate == nil { true } else { false }
            return reply(result.map(StreamUpdateResponse.init), change: updated ? .streamUpdated(name) : .none)
        case .streamInfo(let name):
            return reply(decode(StreamInfoRequest.self, payload).flatMap { registry.streamInfo(name, $0) })
        case .streamDelete(let name):
            let result = registry.deleteStream(name)
            return reply(result, change: (try? result.get()) != nil ? .streamDeleted(name) : .none)
        case .streamPurge(let name):
            // nats-server reads options only from a JSON object; any other body is a whole purge.
            let isObject = payload.first(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D && $0 != 0x0A }) == UInt8(ascii: "{")
            if !isObject { return reply(registry.purgeStream(name, nil)) }
            return reply(decode(StreamPurgeRequest.self, payload).flatMap { registry.purgeStream(name, $0) })
        case .streamMsgGet(let name):
            return reply(decode(StreamMsgGetRequest.self, payload).flatMap { registry.message(in: name, $0) })
        case .streamMsgDelete(let name):
            return reply(decode(StreamMsgDeleteRequest.self, payload).flatMap { registry.deleteMessage(in: name, $0) })
        case .streamNames:
            return reply(decode(StreamNamesRequest.self, payload).map(registry.streamNames))
        case .streamList:
            return reply(.success(registry.streamList()))
        case .consumerCreate(let stream, let name, let filter):
            return createConsumer(stream: stream, name: name, filter: filter, durableForm: false, payload)
        case .consumerDurableCreate(let stream, let durable):
            return createConsumer(stream: stream, name: durable, filter: nil, durableForm: true, payload)
        case .consumerInfo(let stream, let consumer):
            return reply(registry.consumer(stream: stream, name: consumer).map { ConsumerInfoResponse(info: registry.info(of: $0)) })
        case .consumerDelete(let stream, let consumer):
            return reply(registry.deleteConsumer(stream: stream, name: consumer))
        case .consumerNames(let stream):
            return reply(.success(registry.consumerNames(stream: stream)))
        case .consumerList(let stream):
            return reply(.success(registry.consumerList(stream: stream)))
        case .consumerPause(let stream, let consumer):
            let result = decode(ConsumerPauseRequest.self, payload).flatMap { registry.pauseConsumer(stream: stream, name: consumer, until: $0.pauseUntil) }
            let resumed = (try? result.get()).map { !$0.paused } ?? false
            let entry = resumed ? try? registry.consumer(stream: stream, name: consumer).get() : nil
            return reply(result, change: entry.map(Change.consumerReady) ?? .none)
        case .consumerMsgNext(let stream, let consumer):
            return .pull(try? registry.consumer(stream: stream, name: consumer).get(), PullNextRequest(payload: payload))
        }
    }

    private func createConsumer(stream: String, name: String?, filter: String?, durableForm: Bool, _ payload: [UInt8]) -> Outcome {
        let result = decode(ConsumerCreateRequest.self, payload).flatMap {
            registry.createConsumer(stream: stream, nameInSubject: name, filterInSubject: filter, durableForm: durableForm, $0)
        }
        return reply(result.map { ConsumerCreateResponse(info: registry.info(of: $0)) },
                     change: (try? result.get()).map(Change.consumerReady) ?? .none)
    }

    private func decode<Request: Decodable>(_ type: Request.Type, _ payload: [UInt8]) -> Result<Request, JetStreamAPIError> {
        JetStreamAPIReply.decode(type, from: payload)
    }

    private func reply<Response: JetStreamAPIResponse>(_ result: Result<Response, JetStreamAPIError>, change: Change = .none) -> Outcome {
        let isError = if case .failure = result { true } else { false }
        return .reply(JetStreamAPIReply.encode(result), isError: isError, change: change)
    }
}
