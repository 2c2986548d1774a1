import NIOConcurrencyHelpers
import NIOCore

/// A subscription: an `AsyncSequence` of messages (or, when made with a handler, a callback per message).
///
/// Messages wait in a buffer bounded by the pending limit; when the reader falls behind, newer messages are
/// dropped, counted in `dropped` and reported once per episode as `NATSEvent.slowConsumer`: nothing is
/// dropped silently.
public final class NATSSubscription: AsyncSequence, @unchecked Sendable {
    public typealias Element = NATSMessage

    public let subject: String
    public let queue: String?
    public let sid: Int
    let handler: (@Sendable (NATSMessage) -> Void)?
    private let stream: AsyncStream<NATSMessage>
    private let continuation: AsyncStream<NATSMessage>.Continuation
    private let state = NIOLockedValueBox(State())
    // Set once at init; weak so a forgotten subscription does not keep the client alive.
    private weak var client: NATSClient?

    struct State {
        var delivered = 0
        var max: Int?
        var dropped = 0
        var reportedDropping = false
        var finished = false
    }

    init(client: NATSClient, subject: String, queue: String?, sid: Int, pendingLimit: Int,
         handler: (@Sendable (NATSMessage) -> Void)?) {
        self.client = client
        self.subject = subject
        self.queue = queue
        self.sid = sid
        self.handler = handler
        (stream, continuation) = AsyncStream.makeStream(of: NATSMessage.self, bufferingPolicy: .bufferingOldest(Swift.max(1, pendingLimit)))
    }

    /// Messages dropped so far because the reader was behind its pending limit.
    public var dropped: Int { state.withLockedValue { $0.dropped } }
    /// Messages delivered to this subscription so far.
    public var delivered: Int { state.withLockedValue { $0.delivered } }
    /// The auto-unsubscribe limit, if one was set.
    var maxMessages: Int? { state.withLockedValue { $0.max } }
    var isFinished: Bool { state.withLockedValue { $0.finished } }

    public func makeAsyncIterator() -> AsyncStream<NATSMessage>.AsyncIterator {
        stream.makeAsyncIterator()
    }

    /// Stops the subscription now; messages already buffered can still be read.
    public func unsubscribe() async throws {
        try await client?.unsubscribe(self, after: nil)
    }

    /// Ends the subscription after `count` messages in total (the server stops sending after that).
    public func unsubscribe(after count: Int) async throws {
        try await client?.unsubscribe(self, after: count)
    }

    func setMax(_ max: Int?) -> Bool {
        state.withLockedValue { s in
            s.max = max
            if let max, s.delivered >= max {
                return true
            }
            return false
        }
    }

    /// Delivers one message. Returns (done, newlyDropping) where `done` means the max was reached.
    func deliver(_ message: NATSMessage) -> (done: Bool, droppedNow: Int?) {
        let (accept, done) = state.withLockedValue { s -> (Bool, Bool) in
            if s.finished { return (false, false) }
            s.delivered += 1
            let done = s.max.map { s.delivered >= $0 } ?? false
            return (true, done)
        }
        guard accept else { return (false, nil) }
        var droppedNow: Int?
        if let handler {
            handler(message)
        } else if case .dropped = continuation.yield(message) {
            droppedNow = state.withLockedValue { s -> Int? in
                s.dropped += 1
                if s.reportedDropping { return nil }
                s.reportedDropping = true
                return s.dropped
            }
        } else if state.withLockedValue({ $0.reportedDropping }) {
            state.withLockedValue { $0.reportedDropping = false }
        }
        if done { finish() }
        return (done, droppedNow)
    }

    func finish() {
        let first = state.withLockedValue { s -> Bool in
            defer { s.finished = true }
            return !s.finished
        }
        if first { continuation.finish() }
    }
}
