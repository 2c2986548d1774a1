import NIOCore
import Synchronization

/// One client subscription. Shared between event loops through the sublist, so what changes after creation
/// (the auto-unsubscribe limit and the delivery count) is atomic; the rest is immutable.
public final class Subscription: Sendable {
    /// The owning connection. Strong: the connection removes its subscriptions when it closes.
    let client: ClientConnection
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

    init(client: ClientConnection, subject: [UInt8], queue: [UInt8]?, sid: ByteBuffer, acceptsHeaders: Bool) {
        self.client = client
        self.subjectBytes = subject
        self.queueBytes = queue
        self.sid = sid
        self.acceptsHeaders = acceptsHeaders
    }

    /// For display (logs, /connz): the subject decoded as UTF-8.
    public var subject: String { String(decoding: subjectBytes, as: UTF8.self) }
    public var queue: String? { queueBytes.map { String(decoding: $0, as: UTF8.self) } }
    public var sidString: String { String(buffer: sid) }
}
