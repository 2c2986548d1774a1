import NIOCore
import Protocol

/// `$JS.API.>`: a request to JetStream's API, answered on the requester's loop.
final class JetStreamAPISubscriber: InternalSubscriber {
    unowned let jetStream: JetStream

    init(jetStream: JetStream) { self.jetStream = jetStream }

    /// A mirror's or a source's consumer requests are published by the server (JetStream+Sources.swift).
    var receivesServerMessages: Bool { true }

    func receive(_ publish: Publish, via router: Router, answer: PublishAnswer?) -> Bool {
        // nats-server drops an API request without a reply subject: there is nobody to answer.
        guard let reply = publish.reply else { return false }
        let replyTo = ByteBuffer.compactCopy(of: reply)
        jetStream.handleAPI(subject: String(buffer: publish.subject), payload: Array(publish.payload.readableBytesView),
                            reply: String(buffer: reply)) { response in
            router.eventLoop.execute {
                router.reply(to: replyTo, response)
                router.flushPending()
            }
        }
        return true
    }
}

/// `$JS.ACK.>`: a consumer ack (`+ACK`, `-NAK`, `+WPI`, `+TERM`, `+NXT`; an empty body is `+ACK`).
final class JetStreamAckSubscriber: InternalSubscriber {
    unowned let jetStream: JetStream

    init(jetStream: JetStream) { self.jetStream = jetStream }

    func receive(_ publish: Publish, via router: Router, answer: PublishAnswer?) -> Bool {
        jetStream.acknowledge(subject: String(buffer: publish.subject), payload: Array(publish.payload.readableBytesView),
                              reply: publish.reply.map { String(buffer: $0) })
        return false
    }
}

/// A stream's subjects: the message is stored in `stream`, and the PubAck goes to the publisher's reply subject
/// (or to `answer`, for the server's own publishes) once it is durable.
final class StreamCaptureSubscriber: InternalSubscriber {
    unowned let jetStream: JetStream
    let stream: String

    init(jetStream: JetStream, stream: String) {
        self.jetStream = jetStream
        self.stream = stream
    }

    func receive(_ publish: Publish, via router: Router, answer: PublishAnswer?) -> Bool {
        let answer = answer ?? PublishAnswer.forClient(publish, via: router)
        // Subject, headers and payload copied once each: they outlive the read buffer.
        let bytes = publish.payload.readableBytesView
        let headerLength = publish.headerLength ?? 0
        jetStream.capture(into: stream, subject: Array(publish.subject.readableBytesView), headers: Array(bytes.prefix(headerLength)),
                          payload: Array(bytes.dropFirst(headerLength)), answer: answer)
        return answer != nil
    }
}
