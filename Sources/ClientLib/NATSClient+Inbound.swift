import NIOCore
import Protocol

extension NATSClient {
    // MARK: - Inbound (called by ClientHandler on the event loop)

    /// `subject` is `message.subject` as a String (the handler reuses it across messages).
    func received(_ message: ServerMessage, subject: String) {
        guard let sub = lock.withLock({ subscriptions[message.sid] }) else { return }
        var payload = message.payload
        var headers: NATSHeaders?
        if let headerLength = message.headerLength {
            headers = payload.readSlice(length: headerLength).flatMap(NATSHeaders.parse)
        }
        let natsMessage = NATSMessage(subject: subject, reply: message.reply.map { String(buffer: $0) },
                                      headers: headers, payload: payload)
        let (done, droppedNow) = sub.deliver(natsMessage)
        if done { lock.withLock { if subscriptions[sub.sid] === sub { subscriptions[sub.sid] = nil } } }
        if let droppedNow { eventsContinuation.yield(.slowConsumer(subject: sub.subject, dropped: droppedNow)) }
    }

    func receivedPong() {
        let waiter: PongWaiter? = lock.withLock { pongQueue.isEmpty ? nil : pongQueue.removeFirst() }
        if case .flush(_, let promise) = waiter { promise.succeed(()) }
    }

    func receivedInfo(_ info: ServerInfoDocument) {
        let lameDuck: Bool = lock.withLock {
            serverInfoValue = info
            for url in info.connectURLs ?? [] {
                let full = url.contains("://") ? url : "nats://\(url)"
                if !servers.contains(full) { servers.append(full) }
            }
            return info.ldm ?? false
        }
        if lameDuck { eventsContinuation.yield(.lameDuck) }
    }

    func receivedError(_ text: String) {
        eventsContinuation.yield(.serverError(text))
    }

    /// 22 random letters and digits: a unique subject token (inboxes).
    public static func randomToken() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<22).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
    }
}
