import NIOCore
import Protocol

/// The subject space as the server's features see it: the one place they plug in. A feature subscribes an
/// `InternalSubscriber` to subjects (and is handed matching messages), asks whether anyone listens on a
/// subject, and publishes messages of its own from any thread.
final class SubjectSpace: Sendable {
    let sublist: Sublist<Subscription>
    let routers: [Router]
    /// What features publish from their own threads (JetStream's deliveries), handed to `routers[0]` in
    /// batches: one task and one flush per batch, and one loop keeps them in order.
    private let outbox = HandOff<ServerMessage>()

    struct ServerMessage: Sendable {
        /// The subject to route by (a deliver subject, a pull inbox, a reply).
        var route: [UInt8]
        /// The subject shown in MSG, when it differs from `route` (a stored message's own subject).
        var shown: [UInt8]?
        var reply: [UInt8]?
        var headers: [UInt8]
        var payload: [UInt8]

        init(route: [UInt8], shown: [UInt8]? = nil, reply: [UInt8]? = nil, headers: [UInt8] = [], payload: [UInt8]) {
            self.route = route
            self.shown = shown
            self.reply = reply
            self.headers = headers
            self.payload = payload
        }
    }

    init(sublist: Sublist<Subscription>, routers: [Router]) {
        self.sublist = sublist
        self.routers = routers
    }

    /// Subscribes `handler` to `subject`; the subscription ends with `unsubscribe`.
    @discardableResult
    func subscribe(_ subject: String, queue: String? = nil, _ handler: any InternalSubscriber) throws(Sublist<Subscription>.Error) -> Subscription {
        let sub = Subscription(service: handler, subject: Array(subject.utf8), queue: queue.map { Array($0.utf8) })
        try sublist.insert(sub)
        return sub
    }

    func unsubscribe(_ sub: Subscription) {
        sublist.remove(sub)
    }

    /// Whether a client (or a feature that takes the server's messages: a mirror's deliver subject) is
    /// subscribed to the literal `subject` (push consumers wait for interest; what the server publishes from
    /// here reaches clients and only those features).
    func hasInterest(_ subject: String) -> Bool {
        let result = sublist.match(subject)
        func isClient(_ sub: Subscription) -> Bool { sub.outbound != nil || sub.service?.receivesServerMessages == true }
        return result.plain.contains(where: isClient) || result.queues.contains { $0.contains(where: isClient) }
    }

    /// The router of `eventLoop`, when it is one of the server's loops.
    func router(on eventLoop: any EventLoop) -> Router? {
        routers.first { $0.eventLoop === eventLoop }
    }

    /// Publishes `message` as the server, from any thread.
    func publish(_ message: ServerMessage) {
        guard outbox.append(message).schedule else { return }
        let router = routers[0]
        router.eventLoop.execute { [outbox] in
            for message in outbox.drain() {
                var body = ByteBuffer()
                body.reserveCapacity(message.headers.count + message.payload.count)
                body.writeBytes(message.headers)
                body.writeBytes(message.payload)
                let publish = Publish(subject: ByteBuffer(bytes: message.shown ?? message.route),
                                      reply: message.reply.map { ByteBuffer(bytes: $0) },
                                      headerLength: message.headers.isEmpty ? nil : message.headers.count, payload: body)
                router.publishFromServer(publish, matchSubject: message.shown == nil ? nil : ByteBuffer(bytes: message.route))
            }
            router.flushPending()
        }
    }
}
