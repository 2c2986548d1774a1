import NIOCore
import Synchronization

/// One client subscription. Shared between event loops through the sublist, so what changes after creation
/// (the auto-unsubscribe limit and the delivery count) is atomic; the rest is immutable.
public final class Subscription: Sendable {
    /// The owning connection. Strong: the connection removes its subscriptions when it closes.
    let client: ClientConnection
    public let subject: String
    public let queue: String?
    /// The sid exactly as the client sent it, ready to be written into MSG lines.
    public let sid: ByteBuffer
    /// 0 = no limit; otherwise the subscription ends after this many deliveries (UNSUB <sid> <max>).
    let maxDeliveries = Atomic<Int>(0)
    let delivered = Atomic<Int>(0)

    init(client: ClientConnection, subject: String, queue: String?, sid: ByteBuffer) {
        self.client = client
        self.subject = subject
        self.queue = queue
        self.sid = sid
    }

    public var sidString: String { String(buffer: sid) }
}
