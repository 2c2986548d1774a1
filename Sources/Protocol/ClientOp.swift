import NIOCore

/// One operation sent by a client, as parsed from the wire. Byte fields are slices of the read buffer: no copy.
public enum ClientOp: Equatable, Sendable {
    case connect(ByteBuffer)
    case pub(Publish)
    case sub(subject: ByteBuffer, queue: ByteBuffer?, sid: ByteBuffer)
    /// `max` is nil for a plain UNSUB; a max that is not a positive number means "remove now", as in nats-server.
    case unsub(sid: ByteBuffer, max: Int?)
    case ping
    case pong
    case ok
    case err(ByteBuffer)
    case info(ByteBuffer)
}

/// A PUB or HPUB. For HPUB, `payload` holds the header block followed by the body, as on the wire.
public struct Publish: Equatable, Sendable {
    public var subject: ByteBuffer
    public var reply: ByteBuffer?
    /// Size of the header block for HPUB, nil for PUB.
    public var headerLength: Int?
    public var payload: ByteBuffer

    public init(subject: ByteBuffer, reply: ByteBuffer?, headerLength: Int?, payload: ByteBuffer) {
        self.subject = subject
        self.reply = reply
        self.headerLength = headerLength
        self.payload = payload
    }
}
