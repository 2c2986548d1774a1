import NIOCore
import Synchronization

/// One entry of the subject trie: a client's subscription (its messages are encoded into the client's
/// `Outbound`) or one of the server's own features (an `InternalSubscriber`, handed each message as a value).
/// Shared between event loops through the sublist, so what changes after creation (the auto-unsubscribe limit
/// and the delivery count) is atomic; the rest is immutable.
public final class Subscription: SublistEntry {
    enum Target: Sendable {
        /// A client: MSG/HMSG bytes go to its outbound buffer. Strong: the connection removes its
        /// subscriptions when it closes.
        case client(Outbound)
        /// A feature of the server (JetStream, the Falco ingest): called on the publisher's loop.
        case service(any InternalSubscriber)
    }

    let target: Target
    /// The subject's bytes exactly as sent. Routing compares bytes, never Strings: Swift's String equality is
    /// Unicode-canonical ("é" == "e\u{301}") and would turn invalid UTF-8 into U+FFFD, where nats-server
    /// compares bytes.
    public let subjectBytes: [UInt8]
    public let queueBytes: [UInt8]?
    /// The sid exactly as the client sent it, ready to be written into MSG lines.
    public let sid: ByteBuffer
    /// Whether the subscriber's CONNECT said headers:true. Without it, nats-server strips headers and sends MSG.
    let acceptsHeaders: Bool
    /// 0 = no limit; otherwise the subscription ends after this many deliveries (UNSUB <sid> <max>).
    let maxDeliveries = Atomic<Int>(0)
    let delivered = Atomic<Int>(0)
    /// The deny entries of its user's permissions this subscription overlaps (messages on those subjects are
    /// not delivered to it); nil for most.
    let deliveryFilter: DeliveryFilter?
    /// Its user's `allow_responses` permits: a request delivered here lets the user publish one response.
    let replyPermits: ReplyPermits?

    init(client: Outbound, subject: [UInt8], queue: [UInt8]?, sid: ByteBuffer, acceptsHeaders: Bool,
         deliveryFilter: DeliveryFilter? = nil, replyPermits: ReplyPermits? = nil) {
        self.target = .client(client)
        self.subjectBytes = subject
        self.queueBytes = queue
        self.sid = sid
        self.acceptsHeaders = acceptsHeaders
        self.deliveryFilter = deliveryFilter
        self.replyPermits = replyPermits
    }

    public func accepts(subject: [UInt8]) -> Bool {
        guard let deliveryFilter else { return true }
        return !deliveryFilter.denies(subject)
    }

    /// An internal subscription of the server's (no sid; headers always on).
    init(service: any InternalSubscriber, subject: [UInt8], queue: [UInt8]? = nil) {
        self.target = .service(service)
        self.subjectBytes = subject
        self.queueBytes = queue
        self.sid = ByteBuffer()
        self.acceptsHeaders = true
        self.deliveryFilter = nil
        self.replyPermits = nil
    }

    /// The client's outbound, nil for an internal subscription.
    var outbound: Outbound? {
        if case .client(let outbound) = target { return outbound }
        return nil
    }

    /// The internal subscriber, nil for a client's subscription.
    var service: (any InternalSubscriber)? {
        if case .service(let service) = target { return service }
        return nil
    }

    /// For display (logs, /connz): the subject decoded as UTF-8.
    public var subject: String { String(decoding: subjectBytes, as: UTF8.self) }
    public var queue: String? { queueBytes.map { String(decoding: $0, as: UTF8.self) } }
    public var sidString: String { String(buffer: sid) }
}
