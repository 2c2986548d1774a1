import Foundation
import NIOCore
import Protocol

/// The NIO side of a `NATSClient` connection: parses what the server sends, runs the handshake
/// (INFO -> CONNECT + PING -> PONG), answers PINGs, and hands messages to the client.
final class ClientHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private weak var client: NATSClient?
    private let connectJSON: String
    private let handshake: EventLoopPromise<Void>
    private var parser = ServerParser()
    private var cumulation: ByteBuffer?
    private var state: HandshakeState = .awaitingInfo
    private var lostReason = "connection closed"
    /// The subject of the last message and its String: consecutive messages mostly share a subject, and a new
    /// String per message (UTF-8 validation, a heap allocation past 15 bytes) showed in receive profiles.
    private var lastSubject = ""

    enum HandshakeState { case awaitingInfo, awaitingPong, connected, failed }

    init(client: NATSClient, connectJSON: String, handshake: EventLoopPromise<Void>) {
        self.client = client
        self.connectJSON = connectJSON
        self.handshake = handshake
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        var buffer: ByteBuffer
        if var pending = cumulation {
            cumulation = nil
            pending.writeBuffer(&incoming)
            buffer = pending
        } else {
            buffer = incoming
        }
        // One strong reference per read: a weak load (and the slow-path release it implies) per message
        // was ~5% of a subscriber's event loop.
        let client = self.client
        do {
            while let op = try parser.next(&buffer) {
                handle(op, context: context, client: client)
            }
        } catch {
            fail(context: context, reason: "protocol error: \(error)")
            return
        }
        if buffer.readableBytes > 0 {
            if buffer.readerIndex > 1 << 20 { buffer.discardReadBytes() }
            cumulation = buffer
        }
    }

    private func handle(_ op: consuming ServerOp, context: ChannelHandlerContext, client: NATSClient?) {
        switch consume op {
        case .msg(let message):
            client?.received(message, subject: subjectString(message.subject))
        case .ping:
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "PONG\r\n")), promise: nil)
        case .pong:
            if state == .awaitingPong {
                state = .connected
                handshake.succeed(())
            } else {
                client?.receivedPong()
            }
        case .info(let json):
            if let info = try? JSONDecoder().decode(ServerInfoDocument.self, from: Data(json.readableBytesView)) {
                client?.receivedInfo(info)
            }
            if state == .awaitingInfo {
                state = .awaitingPong
                var out = context.channel.allocator.buffer(capacity: connectJSON.utf8.count + 16)
                ClientEncoder.writeConnect(into: &out, json: connectJSON)
                out.writeStaticString("PING\r\n")
                context.writeAndFlush(wrapOutboundOut(out), promise: nil)
            }
        case .ok:
            break
        case .err(let text):
            lostReason = "server error: \(text)"
            if state != .connected {
                state = .failed
                let lowered = text.lowercased()
                handshake.fail(lowered.contains("authorization") || lowered.contains("authentication")
                               ? NATSError.authorizationViolation : NATSError.serverError(text))
                context.close(promise: nil)
            } else {
                client?.receivedError(text)
            }
        }
    }

    /// `String(buffer: subject)`, reusing the previous message's String when the bytes are the same.
    private func subjectString(_ subject: ByteBuffer) -> String {
        let cached = lastSubject
        let same: Bool = subject.withUnsafeReadableBytes { received -> Bool in
            let equal: Bool? = cached.utf8.withContiguousStorageIfAvailable { known -> Bool in
                guard known.count == received.count else { return false }
                return known.count == 0 || memcmp(known.baseAddress!, received.baseAddress!, known.count) == 0
            }
            return equal ?? false
        }
        if same { return cached }
        let string = String(buffer: subject)
        lastSubject = string
        return string
    }

    private func fail(context: ChannelHandlerContext, reason: String) {
        lostReason = reason
        if state != .connected {
            state = .failed
            handshake.fail(NATSError.connectionFailed(reason))
        }
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context, reason: "\(error)")
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .connected:
            client?.connectionLost(context.channel, reason: lostReason)
        case .awaitingInfo, .awaitingPong:
            state = .failed
            handshake.fail(NATSError.connectionFailed(lostReason))
        case .failed:
            break
        }
        context.fireChannelInactive()
    }
}
