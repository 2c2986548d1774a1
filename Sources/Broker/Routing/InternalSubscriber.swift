import NIOCore
import Protocol

/// The one way a feature plugs into brokerd: it subscribes to subjects in the trie (`SubjectSpace.subscribe`),
/// as nats-server's streams and services do (`subscribeInternal`), and the router hands it every matching
/// message on the publisher's event loop, as a value. The publish path knows nothing of what it does.
///
/// `receive` runs on an event loop, once per message: it must not block (hand heavy work to the feature's
/// own queue) and must be safe to call from every loop at once.
protocol InternalSubscriber: AnyObject, Sendable {
    /// A message published on `subject`, routed by `router` (the publisher's loop). `answer` is where the outcome
    /// of a stored publish goes when the publisher is the server itself (the Falco ingest); for client publishes
    /// it is nil and the answer, if any, goes to `publish.reply`. Returns true when this subscriber will answer
    /// the publish (a stream's PubAck), so no "no responders" status is sent for it.
    func receive(_ publish: Publish, via router: Router, answer: PublishAnswer?) -> Bool

    /// Whether this subscriber is a responder for `subject` (it took the message). A subscriber that leaves some
    /// of its subjects to others (JetStream's API leaves `$JS.API.DIRECT.GET.` to the streams that allow it)
    /// says no for those, so a requester nobody answers gets "no responders", as on nats-server.
    func isResponder(for subject: ByteBuffer) -> Bool

    /// Whether the server's own replies and deliveries (JetStream's, `SubjectSpace.publish`, `Router.reply`)
    /// reach it too, as they reach nats-server's internal subscriptions: a mirror's or a source's deliver and
    /// reply subjects. Features that take client traffic (stream capture) leave it false, so a stream never
    /// captures the server's replies or deliveries. Asked only when a server message matches the feature.
    var receivesServerMessages: Bool { get }
}

extension InternalSubscriber {
    func isResponder(for subject: ByteBuffer) -> Bool { true }
    var receivesServerMessages: Bool { false }
}
