import Foundation
import Logging
import NIOCore
import Protocol

/// Runs the mirrors and sources (`StreamSourcing` decides): asks each origin for a consumer through the
/// JetStream API on subjects, as nats-server does (so an origin in another domain needs only another API
/// prefix), listens on the deliver and reply subjects with internal subscribers, stores what arrives, and
/// asks again when a consumer fails or deliveries go missing. Everything here runs on JetStream's queue.
extension JetStream {
    /// nats-server's sourceConsumerRetryThreshold: at most one create request per origin in this time.
    static let sourceRetryInterval: Int64 = 2_000_000_000
    /// A create request without a reply in this time is given up and asked again.
    static let sourceRequestTimeout: Int64 = 5_000_000_000

    /// After streams were created, updated, deleted or restored: starts the sourcing of new mirrors and
    /// sources, stops what went away (its consumers on the origins are deleted).
    func reconcileSources() {
        for (name, running) in runningSourcing where registry.sourcing[name] !== running {
            for origin in running.origins { stopOrigin(origin, deleteConsumer: true) }
            runningSourcing[name] = nil
        }
        for (name, sourcing) in registry.sourcing where runningSourcing[name] == nil {
            runningSourcing[name] = sourcing
            for origin in sourcing.origins { requestConsumer(sourcing, origin) }
        }
    }

    /// Every tick: origins without a consumer ask again (after the retry interval), requests without a reply
    /// are given up.
    func tickSources() {
        guard !runningSourcing.isEmpty else { return }
        let time = now()
        for sourcing in runningSourcing.values {
            for origin in sourcing.origins {
                if let at = origin.requestedAt, time - at > Self.sourceRequestTimeout {
                    stopOrigin(origin, deleteConsumer: true)
                    sourcing.reset(origin)
                }
                if origin.consumer == nil, time - origin.lastAttempt >= Self.sourceRetryInterval {
                    requestConsumer(sourcing, origin)
                }
            }
        }
    }

    // MARK: - Requests

    private func requestConsumer(_ sourcing: StreamSourcing, _ origin: StreamSourcing.Origin) {
        guard let space = subjectSpace, let entry = streamEntry(sourcing.stream) else { return }
        stopOrigin(origin, deleteConsumer: true)
        let state = entry.stream.store.state
        let lastTime = state.messages > 0 ? (try? entry.stream.store.load(state.lastSequence))?.timestamp ?? 0 : 0
        let token = NATSInboxToken.make() + NATSInboxToken.make()
        let (subject, payload) = sourcing.consumerRequest(for: origin, state: state, lastTime: lastTime, token: token, now: now())
        guard let consumer = origin.consumer, let deliver = origin.deliverSubject, let reply = origin.replySubject else { return }
        do {
            origin.subscriptions.append(try space.subscribe(deliver, SourceDeliverySubscriber(jetStream: self, sourcing: sourcing, origin: origin)))
            origin.subscriptions.append(try space.subscribe(reply, SourceReplySubscriber(jetStream: self, sourcing: sourcing, origin: origin,
                                                                                         consumer: consumer)))
        } catch {
            logger.error("JetStream sourcing: cannot subscribe", metadata: ["stream": "\(sourcing.stream)", "error": "\(error)"])
            stopOrigin(origin, deleteConsumer: false)
            sourcing.reset(origin)
            return
        }
        publish(subject, reply, [], payload)
    }

    /// Unsubscribes an origin's subjects and, when asked, deletes its consumer on the origin (through the API).
    private func stopOrigin(_ origin: StreamSourcing.Origin, deleteConsumer: Bool) {
        for sub in origin.subscriptions { subjectSpace?.unsubscribe(sub) }
        origin.subscriptions = []
        if deleteConsumer, let consumer = origin.consumer {
            // A reply subject nobody listens on: nats-server drops an API request without one.
            publish("\(origin.apiPrefix).CONSUMER.DELETE.\(origin.config.name).\(consumer)", "$JS.S.R.\(consumer).DELETED", [], [])
        }
    }

    /// The reply to a create request (on the queue).
    func sourceReplied(_ sourcing: StreamSourcing, _ origin: StreamSourcing.Origin, consumer: String, payload: [UInt8]) {
        guard runningSourcing[sourcing.stream] === sourcing, origin.consumer == consumer else { return }
        if let error = sourcing.createReply(for: origin, payload: payload) {
            logger.warning("JetStream sourcing: consumer create failed, will retry", metadata: [
                "stream": "\(sourcing.stream)", "origin": "\(origin.config.name)", "error": "\(error.description)"])
            stopOrigin(origin, deleteConsumer: false)
            sourcing.reset(origin)
        }
    }

    // MARK: - Deliveries

    /// Deliveries from an origin's consumer, in order (on the queue): stored, then made durable once for the
    /// batch (by the sync policy) and handed to this stream's consumers.
    func sourceDelivered(_ sourcing: StreamSourcing, _ origin: StreamSourcing.Origin, _ items: [SourceDelivery]) {
        guard runningSourcing[sourcing.stream] === sourcing, let entry = streamEntry(sourcing.stream) else { return }
        let name = sourcing.stream
        var stored = false
        deliveries: for item in items {
            let time = now()
            if item.reply.hasPrefix("$JS.FC.") {
                // Flow control (a request, or the reply a stalled heartbeat names): answered in order, after
                // what came before it was taken, so the origin sends on.
                publish(item.reply, nil, [], [])
                continue
            }
            let before = (origin.sourceSequence, origin.deliverySequence)
            switch sourcing.inbound(origin, subject: item.subject, reply: item.reply, headers: item.headers, payload: item.payload, now: time) {
            case .ignore, .skip:
                continue
            case .restart:
                logger.info("JetStream sourcing: deliveries missing, asking again", metadata: ["stream": "\(name)", "origin": "\(origin.config.name)"])
                requestConsumer(sourcing, origin)
                break deliveries
            case .mirror(let sequence, let timestamp, let subject, let headers, let payload):
                let subject = entry.ingest?.storedSubject(subject) ?? subject
                let previous = entry.ingest?.republishes == true ? entry.stream.lastSequence(on: subject) : 0
                do {
                    try entry.stream.storeMirrored(sequence: sequence, timestamp: timestamp, subject: subject, headers: headers, payload: payload)
                    stored = true
                    republish(entry, subject: subject, sequence: sequence, timestamp: timestamp, previous: previous, headers: headers, payload: payload)
                } catch {
                    refused(sourcing, origin, error, at: before)
                    break deliveries
                }
            case .source(let subject, let headers, let payload):
                let subject = entry.ingest?.storedSubject(subject) ?? subject
                let previous = entry.ingest?.republishes == true ? entry.stream.lastSequence(on: subject) : 0
                do {
                    // Sourced: the Nats-Stream-Source header is ours, the origin already applied expectations.
                    if case .stored(let sequence) = try entry.stream.publish(subject: subject, headers: headers, payload: payload,
                                                                             parsed: PublishHeaders(headers: headers), sourced: true) {
                        stored = true
                        republish(entry, subject: subject, sequence: sequence, timestamp: time, previous: previous, headers: headers, payload: payload)
                    }
                } catch {
                    refused(sourcing, origin, error, at: before)
                    break deliveries
                }
            }
        }
        guard stored else { return }
        do {
            switch syncPolicy {
            case .always, .batch: try entry.stream.store.sync()
            case .interval: try entry.stream.store.flushWrites()
            }
            durableLast[name] = entry.stream.store.state.lastSequence
        } catch {
            syncFailed(name, entry, error)
            return
        }
        if sourcing.kind == .source, entry.config.storage == .file {
            // Once stored: the positions outlive the messages (a drained work queue must not source again).
            registry.storage.saveSourcePositions(stream: name, sourcing.positions)
        }
        for consumer in (consumers[name] ?? [:]).values { pump(consumer) }
    }

    /// After a failed sync took messages back: every origin goes back to the positions on disk (the store's
    /// headers and sources.json, written only after a good sync) and is asked for again.
    func restartSourcing(_ sourcing: StreamSourcing, after entry: StreamEntry) {
        for origin in sourcing.origins {
            stopOrigin(origin, deleteConsumer: true)
            sourcing.reset(origin)
            origin.lastAttempt = now()
        }
        sourcing.recover(from: entry.stream.store, saved: registry.storage.savedSourcePositions(stream: sourcing.stream))
    }

    /// A delivery this stream's store refused (a limit with discard new, a failing disk): the origin's position
    /// goes back to before it and the consumer is asked again after the retry interval, so the message is
    /// taken once there is room rather than passed over (nats-server retries the same way).
    private func refused(_ sourcing: StreamSourcing, _ origin: StreamSourcing.Origin, _ error: DurableStream.PublishError,
                         at before: (source: UInt64, delivery: UInt64)) {
        logger.warning("JetStream sourcing: message not stored, will ask again", metadata: [
            "stream": "\(sourcing.stream)", "origin": "\(origin.config.name)", "sequence": "\(origin.sourceSequence)", "error": "\(error)"])
        origin.sourceSequence = before.source
        origin.deliverySequence = before.delivery
        stopOrigin(origin, deleteConsumer: true)
        sourcing.reset(origin)
        origin.lastAttempt = now()
    }

    /// `republish`: the stored message goes out again on its destination (as nats-server, right after storing).
    func republish(_ entry: StreamEntry, subject: [UInt8], sequence: UInt64, timestamp: Int64, previous: UInt64,
                   headers: [UInt8], payload: [UInt8]) {
        guard let ingest = entry.ingest,
              let message = ingest.republished(stream: entry.config.name, subject: subject, sequence: sequence, timestamp: timestamp,
                                               lastSequence: previous, headers: headers, payload: payload) else { return }
        publish(String(decoding: message.subject, as: UTF8.self), nil, message.headers, message.payload)
    }
}

/// One delivery from an origin's consumer, copied off the read buffer.
struct SourceDelivery: Sendable {
    var subject: [UInt8]
    var reply: String
    var headers: [UInt8]
    var payload: [UInt8]
}

/// An origin's deliver subject (`$JS.M.<token>`, `$JS.S.<token>`): deliveries go to JetStream's queue in
/// batches, in order.
final class SourceDeliverySubscriber: InternalSubscriber, @unchecked Sendable {
    unowned let jetStream: JetStream
    // Touched only on the JetStream queue.
    let sourcing: StreamSourcing
    let origin: StreamSourcing.Origin
    private let inbox = HandOff<SourceDelivery>()

    init(jetStream: JetStream, sourcing: StreamSourcing, origin: StreamSourcing.Origin) {
        self.jetStream = jetStream
        self.sourcing = sourcing
        self.origin = origin
    }

    /// JetStream's deliveries are server messages.
    var receivesServerMessages: Bool { true }

    func receive(_ publish: Publish, via router: Router, answer: PublishAnswer?) -> Bool {
        let bytes = publish.payload.readableBytesView
        let headerLength = publish.headerLength ?? 0
        let delivery: SourceDelivery
        if let reply = publish.reply {
            // A message ($JS.ACK reply) or a flow-control request ($JS.FC reply).
            delivery = SourceDelivery(subject: Array(publish.subject.readableBytesView), reply: String(buffer: reply),
                                      headers: Array(bytes.prefix(headerLength)), payload: Array(bytes.dropFirst(headerLength)))
        } else if headerLength > 0,
                  let stalled = PublishHeaders.value(of: "nats-consumer-stalled", in: Array(bytes.prefix(headerLength))) {
            // A heartbeat of a consumer waiting for a flow-control reply that was lost: answer the one it names.
            delivery = SourceDelivery(subject: [], reply: stalled, headers: [], payload: [])
        } else {
            return false
        }
        guard inbox.append(delivery).schedule else { return false }
        jetStream.queue.async { [self] in
            jetStream.sourceDelivered(sourcing, origin, inbox.drain())
        }
        return false
    }
}

/// The reply subject of one consumer create request.
final class SourceReplySubscriber: InternalSubscriber, @unchecked Sendable {
    unowned let jetStream: JetStream
    let sourcing: StreamSourcing
    let origin: StreamSourcing.Origin
    let consumer: String

    init(jetStream: JetStream, sourcing: StreamSourcing, origin: StreamSourcing.Origin, consumer: String) {
        self.jetStream = jetStream
        self.sourcing = sourcing
        self.origin = origin
        self.consumer = consumer
    }

    /// The API's replies are server messages.
    var receivesServerMessages: Bool { true }

    func receive(_ publish: Publish, via router: Router, answer: PublishAnswer?) -> Bool {
        let bytes = publish.payload.readableBytesView
        let payload = Array(bytes.dropFirst(publish.headerLength ?? 0))
        jetStream.queue.async { [self] in
            jetStream.sourceReplied(sourcing, origin, consumer: consumer, payload: payload)
        }
        return false
    }
}
