import Crypto
import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// Sits behind the `NIOSSLServerHandler` of an HTTPS listener (the Falco endpoint): closes a connection whose
/// handshake does not complete within the block's `timeout` (nats-server's TLS_TIMEOUT, 2 s by default), and,
/// with `pinned_certs`, one whose client certificate's key is not pinned. Then it leaves the pipeline.
final class TLSHandshakeGuard: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny

    private let timeout: Duration
    private let pinnedCerts: Set<String>?
    private let logger: Logger
    private var timer: Scheduled<Void>?

    init(tls: TLSConfig, logger: Logger) {
        self.timeout = tls.effectiveTimeout
        self.pinnedCerts = tls.pinnedCerts
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: TimeAmount(timeout)) { [logger] in
            logger.debug("TLS handshake timeout", metadata: ["addr": "\(channel.remoteAddress?.description ?? "?")"])
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case TLSUserEvent.handshakeCompleted = event else { return context.fireUserInboundEventTriggered(event) }
        timer?.cancel()
        timer = nil
        if let pinnedCerts {
            let peer = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
            guard let peer, Self.matches(peer, pins: pinnedCerts) else {
                logger.error("TLS handshake error: certificate not pinned",
                             metadata: ["addr": "\(context.channel.remoteAddress?.description ?? "?")"])
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A failed handshake (no or an untrusted client certificate, not TLS at all): the TLS handler has
        // answered with its alert; the connection ends here.
        logger.debug("TLS handshake error: \(error)", metadata: ["addr": "\(context.channel.remoteAddress?.description ?? "?")"])
        context.close(promise: nil)
    }

    /// nats-server's matchesPinnedCert: the hex SHA-256 of the certificate's DER SubjectPublicKeyInfo.
    /// (swift-certificates' `subjectPublicKeyInfoBytes` is the key's BIT STRING alone, not the SubjectPublicKeyInfo.)
    static func matches(_ certificate: NIOSSLCertificate, pins: Set<String>) -> Bool {
        guard let spki = try? certificate.extractPublicKey().toSPKIBytes() else { return false }
        let digest = SHA256.hash(data: spki)
        return pins.contains(digest.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined())
    }
}
