import NIOCore
import Protocol

/// Where the outcome of a stored publish goes: a reply subject on a loop (a client's PubAck, as JSON), or a
/// typed callback (the server's own publishes, which read the outcome as a value, never as JSON).
enum PublishAnswer: Sendable {
    case reply(Router, subject: ByteBuffer)
    case callback(@Sendable (PubAck) -> Void)

    /// Sends `ack`: routed as JSON on the publisher's loop, or handed to the callback.
    func send(_ ack: PubAck) {
        switch self {
        case .callback(let deliver):
            deliver(ack)
        case .reply(let router, let subject):
            router.eventLoop.execute {
                router.reply(to: subject, ack.json)
                router.flushPending()
            }
        }
    }

    /// Sends a batch of answers (a group commit's): one task and one flush per publisher loop, not one per ack.
    /// Each loop's replies travel in one buffer (reply subject and PubAck JSON, each after its length): no
    /// buffer of its own per PubAck, made on the JetStream queue and freed on the loop.
    static func send(_ answers: [(PubAck, PublishAnswer)]) {
        var byLoop: [ObjectIdentifier: (router: Router, replies: ByteBuffer)] = [:]
        for (ack, answer) in answers {
            switch answer {
            case .callback(let deliver):
                deliver(ack)
            case .reply(let router, let subject):
                byLoop[ObjectIdentifier(router), default: (router, ByteBufferAllocator().buffer(capacity: answers.count * (subject.readableBytes + 48)))]
                    .replies.writeReply(to: subject, ack)
            }
        }
        for (router, replies) in byLoop.values {
            router.eventLoop.execute {
                var replies = replies
                while let subject = replies.readLengthPrefixedSlice(as: UInt32.self),
                      let json = replies.readLengthPrefixedSlice(as: UInt32.self) {
                    router.reply(to: subject, json)
                }
                router.flushPending()
            }
        }
    }

    /// The reply target for a client's publish (nil without a reply subject).
    static func forClient(_ publish: Publish, via router: Router) -> PublishAnswer? {
        publish.reply.map { .reply(router, subject: ByteBuffer.compactCopy(of: $0)) }
    }
}

/// A stream's answer to a publish it captured, as a value.
enum PubAck: Sendable, Equatable {
    case stored(stream: String, sequence: UInt64, duplicate: Bool)
    /// Refused: nats-server's HTTP-like code, its JetStream error code and description; `stream` when the
    /// stream itself refused it (nats-server then adds `"stream":<name>,"seq":0`).
    case failed(code: Int, errorCode: Int, description: String, stream: String? = nil)

    /// The resource limits (503): worth retrying later.
    var isOverloaded: Bool {
        if case .failed(let code, _, _, _) = self { return code == 503 }
        return false
    }

    /// The PubAck as nats-server writes it.
    var json: ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: 64)
        writeJSON(into: &out)
        return out
    }

    /// Writes the PubAck as nats-server does, straight into `out` (no String built first: a group commit of 256
    /// publishes answers 256 of these on the JetStream queue).
    func writeJSON(into out: inout ByteBuffer) {
        switch self {
        case .stored(let stream, let sequence, let duplicate):
            out.writeStaticString(#"{"stream":"#)
            if stream.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
                out.writeString(JSONString.quoted(stream))
            } else {
                out.writeInteger(UInt8(ascii: "\""))
                out.writeString(stream)
                out.writeInteger(UInt8(ascii: "\""))
            }
            out.writeStaticString(#","seq":"#)
            if let value = Int(exactly: sequence) {
                ServerEncoder.writeDecimal(into: &out, value)
            } else {
                out.writeString(String(sequence))
            }
            if duplicate { out.writeStaticString(#","duplicate":true"#) }
            out.writeInteger(UInt8(ascii: "}"))
        case .failed(let code, let errorCode, let description, let stream):
            let refusedBy = stream.map { #","stream":\#(JSONString.quoted($0)),"seq":0"# } ?? ""
            out.writeString(#"{"error":{"code":\#(code),"err_code":\#(errorCode),"description":\#(JSONString.quoted(description))}\#(refusedBy)}"#)
        }
    }
}

extension ByteBuffer {
    /// One reply of a batch (`PublishAnswer.send`): the subject and the PubAck's JSON, each after its length.
    fileprivate mutating func writeReply(to subject: ByteBuffer, _ ack: PubAck) {
        writeInteger(UInt32(subject.readableBytes))
        writeImmutableBuffer(subject)
        let lengthAt = writerIndex
        writeInteger(UInt32(0))
        ack.writeJSON(into: &self)
        setInteger(UInt32(writerIndex - lengthAt - 4), at: lengthAt)
    }
}

extension ByteBuffer {
    /// A copy in its own small storage: a slice of a read buffer would pin the whole buffer.
    static func compactCopy(of slice: ByteBuffer) -> ByteBuffer {
        var copy = ByteBufferAllocator().buffer(capacity: slice.readableBytes)
        copy.writeImmutableBuffer(slice)
        return copy
    }
}
