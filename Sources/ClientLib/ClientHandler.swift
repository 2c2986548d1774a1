import Foundation
import NIOCore
import NIOSSL
import NIOTLS
import Protocol

/// The NIO side of a `NATSClient` connection: parses what the server sends, runs the handshake
/// (INFO -> [TLS ->] CONNECT + PING -> PONG), answers PINGs, and hands messages to the client.
final class ClientHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private weak var client: NATSClient?
    private var connect: ConnectOptions
    private let handshake: EventLoopPromise<Void>
    private let target: ServerAddress
    /// The client's TLS (nil: none asked for; the server may still require it).
    private let tls: ClientTLS?
    /// TLS runs on this connection (from the start with handshake_first, or after INFO).
    private var secured: Bool
    private var parser = ServerParser()
    private var cumulation: ByteBuffer?
    private var state: HandshakeState = .awaitingInfo
    private var lostReason = "connection closed"
    /// The subject of the last message and its String: consecutive messages mostly share a subject, and a new
    /// String per message (UTF-8 validation, a heap allocation past 15 bytes) showed in receive profiles.
    private var lastSubject = ""

    enum HandshakeState { case awaitingInfo, awaitingTLS, awaitingPong, connected, failed }

    /// `secured`: a TLS handler already sits in front of this one (handshake first).
    init(client: NATSClient, connect: ConnectOptions, target: ServerAddress, tls: ClientTLS?, secured: Bool,
         handshake: EventLoopPromise<Void>) {
        self.client = client
        self.connect = connect
        self.target = target
        self.tls = tls
        self.secured = secured
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
            let info = try? JSONDecoder().decode(ServerInfoDocument.self, from: Data(json.readableBytesView))
            if let info { client?.receivedInfo(info) }
            if state == .awaitingInfo {
                infoReceived(info, context: context)
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

    /// The first INFO: TLS first when either side wants it (as nats.go's checkForSecure), then CONNECT.
    private func infoReceived(_ info: ServerInfoDocument?, context: ChannelHandlerContext) {
        if secured {
            // handshake_first: TLS is already up.
            return sendConnect(context: context)
        }
        let serverRequires = info?.tlsRequired ?? false
        let serverOffers = serverRequires || (info?.tlsAvailable ?? false)
        let wanted = tls != nil || target.secure
        if wanted && !serverOffers {
            state = .failed
            lostReason = "\(NATSError.secureConnectionNotAvailable)"
            handshake.fail(NATSError.secureConnectionNotAvailable)
            context.close(promise: nil)
            return
        }
        guard wanted || serverRequires else { return sendConnect(context: context) }
        do {
            // The server requires TLS and we asked for none: TLS with the system's trust roots.
            let tls = try self.tls ?? ClientTLS(NATSTLSOptions())
            let handler = try tls.makeHandler(for: target)
            try context.pipeline.syncOperations.addHandler(handler, position: .first)
            state = .awaitingTLS
            secured = true
        } catch {
            state = .failed
            lostReason = "TLS: \(error)"
            handshake.fail(error as? NATSError ?? NATSError.tlsConfiguration("\(error)"))
            context.close(promise: nil)
        }
    }

    private func sendConnect(context: ChannelHandlerContext) {
        state = .awaitingPong
        connect.tlsRequired = secured
        let json = connect.json()
        var out = context.channel.allocator.buffer(capacity: json.utf8.count + 16)
        ClientEncoder.writeConnect(into: &out, json: json)
        out.writeStaticString("PING\r\n")
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event, state == .awaitingTLS {
            sendConnect(context: context)
        }
        context.fireUserInboundEventTriggered(event)
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
        fail(context: context, reason: state == .awaitingTLS ? "TLS handshake failed: \(error)" : "\(error)")
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .connected:
            client?.connectionLost(context.channel, reason: lostReason)
        case .awaitingInfo, .awaitingTLS, .awaitingPong:
            state = .failed
            handshake.fail(NATSError.connectionFailed(lostReason))
        case .failed:
            break
        }
        context.fireChannelInactive()
    }
}
