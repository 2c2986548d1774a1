import NIOCore
import Protocol

/// `$JS.API.>`: a request to JetStream's API, answered on the requester's loop.
final class JetStreamAPISubscriber: InternalSubscriber {
    unowned let jetStream: JetStream

    init(jetStream: JetStream) { self.jetStream = jetStream }

    static let directGetPrefix = Array("$JS.API.DIRECT.".utf8)

    /// `$JS.API.DIRECT.…` belongs to the streams that allow direct gets (`DirectGetSubscriber`).
    func isResponder(for subject: ByteBuffer) -> Bool {
        !subject.readableBytesView.starts(with: Self.directGetPrefix)
    }

    /// A mirror's or a source's consumer requests are published by the server (JetStream+Sources.swift).
    var receivesServerMessages: Bool { true }

    func receive(_ publish: Publish, via router: Router, answer: PublishAnswer?) -> Bool {
        // nats-server drops an API request without a reply subject: there is nobody to answer.
        guard let reply = publish.reply, isResponder(for: publish.subject) else { return false }
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

/// `$JS.FC.>`: a client's answer to a push consumer's flow-control request.
final class FlowControlSubscriber: InternalSubscriber {
    unowned let jetStream: JetStream

    init(jetStream: JetStream) { self.jetStream = jetStream }

    /// A mirror or source answers its origin's flow control as the server itself.
    var receivesServerMessages: Bool { true }

    func receive(_ publish: Publish, via router: Router, answer: PublishAnswer?) -> Bool {
        jetStream.flowControlReply(subject: String(buffer: publish.subject))
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
                          payload: Array(bytes.dropFirst(headerLength)), answer: answer, on: router)
        return answer != nil
    }
}

/// `$JS.API.DIRECT.GET.<stream>` and `$JS.API.DIRECT.GET.<stream>.<subject>` of a stream with `allow_direct`:
/// messages read straight from the stream, answered with headers rather than JSON (nats-server's direct get).
final class DirectGetSubscriber: InternalSubscriber {
    unowned let jetStream: JetStream
    let stream: String
    /// `$JS.API.DIRECT.GET.<stream>.`: what follows it in a subject is the last_by_subj subject.
    let subjectPrefix: [UInt8]

    init(jetStream: JetStream, stream: String) {
        self.jetStream = jetStream
        self.stream = stream
        subjectPrefix = Array("$JS.API.DIRECT.GET.\(stream).".utf8)
    }

    func receive(_ publish: Publish, via router: Router, answer: PublishAnswer?) -> Bool {
        guard let reply = publish.reply else { return false }
        let subject = Array(publish.subject.readableBytesView)
        let lastBySubject = subject.starts(with: subjectPrefix)
            ? String(decoding: subject.dropFirst(subjectPrefix.count), as: UTF8.self) : nil
        let bytes = publish.payload.readableBytesView
        let body = Array(bytes.dropFirst(publish.headerLength ?? 0))
        let replyTo = ByteBuffer.compactCopy(of: reply)
        jetStream.directGet(stream: stream, body: body, lastBySubject: lastBySubject) { messages in
            router.eventLoop.execute {
                for (headers, payload) in messages {
                    var buffer = ByteBuffer(bytes: headers)
                    buffer.writeBytes(payload)
                    router.publishFromServer(Publish(subject: replyTo, reply: nil, headerLength: headers.isEmpty ? nil : headers.count,
                                                     payload: buffer), uncached: true)
                }
                router.flushPending()
            }
        }
        return true
    }
}
