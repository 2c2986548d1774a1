import Foundation
import Crypto
import Logging
import NIOCore
import NIOSSL

/// The handler in front of `ClientConnection` while a TLS client port decides how the connection starts: it runs
/// `TLSNegotiation`, inserts the `NIOSSLServerHandler` between itself and the client when the handshake begins,
/// enforces the handshake timeout, checks `pinned_certs`, reads the certificate's identities for verify_and_map,
/// then tells the client its session may start and leaves the pipeline. Only TLS ports have it; a plain port's
/// pipeline is `ClientConnection` alone.
final class TLSNegotiationHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var negotiation: TLSNegotiation
    private let sslContext: NIOSSLContext
    private let pinnedCerts: Set<String>?
    private let mapIdentities: Bool
    private let client: ClientConnection
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var sslHandler: NIOSSLServerHandler?
    private var timer: Scheduled<Void>?
    /// Whether the bytes seen so far began like a TLS record (a client that never sent one is a probe, logged at
    /// debug level as nats-server does).
    private var sawTLSRecord = false
    private var sawBytes = false
    /// Inside `channelRead`: leaving the pipeline waits until the bytes of this read have been passed on.
    private var reading = false
    private var leaveAfterRead = false

    init(negotiation: TLSNegotiation, sslContext: NIOSSLContext, tls: TLSConfig, client: ClientConnection, logger: Logger) {
        self.negotiation = negotiation
        self.sslContext = sslContext
        self.pinnedCerts = tls.pinnedCerts
        self.mapIdentities = tls.verifyAndMap
        self.client = client
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()  // the client registers, sends INFO when it goes first, checks max_connections
        guard context.channel.isActive, !client.isClosed else { return }
        run(negotiation.channelActive(), context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        reading = true
        if let first = bytes.readableBytesView.first {
            if !sawBytes {
                sawBytes = true
                sawTLSRecord = first == TLSNegotiation.tlsHandshakeRecord
            }
            run(negotiation.bytesArrived(firstByte: first), context: context)
        }
        context.fireChannelRead(data)  // to the TLS handler once it is in, else to the client
        reading = false
        if leaveAfterRead { leave(context) }
    }

    private func leave(_ context: ChannelHandlerContext) {
        leaveAfterRead = false
        guard self.context != nil else { return }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        run(negotiation.closed(), context: context)
        context.fireChannelInactive()
    }

    // MARK: - Told by the client (the TLS handler's events reach it, not us)

    /// The handler's `handshakeCompleted` event.
    func handshakeCompleted() {
        guard let context else { return }
        if let pinnedCerts, !matchesPin(pinnedCerts) {
            failHandshake("certificate not pinned", context: context)
            return
        }
        run(negotiation.handshakeCompleted(), context: context)
    }

    /// An error from the TLS handler before the handshake completed: nats-server's "TLS handshake error".
    /// Returns false once the negotiation is over (the client handles the error as any other).
    func handshakeFailed(_ error: any Error) -> Bool {
        guard negotiation.isHandshaking, let context else { return false }
        failHandshake(Self.describe(error, tlsRecord: sawTLSRecord), context: context)
        return true
    }

    // MARK: - Actions

    private func run(_ actions: [TLSNegotiation.Action], context: ChannelHandlerContext) {
        for action in actions {
            switch action {
            case .startTimer(let delay):
                timer?.cancel()
                timer = context.eventLoop.scheduleTask(in: TimeAmount(delay)) { [self] in
                    guard let context = self.context else { return }
                    run(negotiation.timerFired(), context: context)
                }
            case .cancelTimer:
                timer?.cancel()
                timer = nil
            case .sendInfo:
                client.sendInitialInfo(handshakeFirst: false)
            case .startHandshake:
                let handler = NIOSSLServerHandler(context: sslContext)
                do {
                    try context.pipeline.syncOperations.addHandler(handler, position: .after(self))
                    sslHandler = handler
                } catch {
                    logger.error("TLS handshake error: \(error)", metadata: ["addr": "\(client.remoteHost):\(client.remotePort)"])
                    close(context)
                }
            case .established(let secure, let sendInfo):
                var identities: CertificateIdentities?
                if secure, mapIdentities, let der = try? sslHandler?.peerCertificate?.toDERBytes() {
                    identities = try? CertificateIdentities(derEncoded: der)
                }
                client.tlsEstablished(secure: secure, identities: identities, sendInfo: sendInfo)
                // The negotiation is over: steady state is [TLS handler,] ClientConnection, nothing more.
                if reading { leaveAfterRead = true } else { leave(context) }
            case .closeTimedOut:
                // nats-server: "TLS handshake timeout", at debug level for client connections; nothing is sent.
                logger.debug("TLS handshake timeout", metadata: ["addr": "\(client.remoteHost):\(client.remotePort)"])
                close(context)
            }
        }
    }

    private func failHandshake(_ reason: String, context: ChannelHandlerContext) {
        run(negotiation.closed(), context: context)
        let metadata: Logger.Metadata = ["addr": "\(client.remoteHost):\(client.remotePort)"]
        // As nats-server: a client that never spoke TLS (a probe, a plain client on a TLS port) is logged at debug
        // level; a real handshake that failed (an untrusted certificate, no certificate) is an error.
        if sawTLSRecord {
            logger.error("TLS handshake error: \(reason)", metadata: metadata)
        } else {
            logger.debug("TLS handshake error: \(reason)", metadata: metadata)
        }
        close(context)
    }

    private func close(_ context: ChannelHandlerContext) {
        client.close()
        context.close(promise: nil)
    }

    /// nats-server's matchesPinnedCert: SHA-256 of the client certificate's SubjectPublicKeyInfo, in hex.
    private func matchesPin(_ pins: Set<String>) -> Bool {
        guard let spki = try? sslHandler?.peerCertificate?.extractPublicKey().toSPKIBytes() else {
            logger.debug("Failed pinned cert test as client did not provide a certificate")
            return false
        }
        let digest = SHA256.hash(data: spki)
        let keyID = digest.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        if !pins.contains(keyID) {
            logger.debug("Failed pinned cert test for key id: \(keyID)")
            return false
        }
        return true
    }

    /// The reason, in Go's words where there is a match (nats-server logs crypto/tls's error text):
    /// `tls: client didn't provide a certificate`, `tls: first record does not look like a TLS handshake`.
    static func describe(_ error: any Error, tlsRecord: Bool) -> String {
        guard case NIOSSLError.handshakeFailed(let inner) = error else { return "\(error)" }
        if !tlsRecord { return "tls: first record does not look like a TLS handshake" }
        let stack: NIOBoringSSLErrorStack
        switch inner {
        case .sslError(let errors), .unknownError(let errors): stack = errors
        case .syscallError, .zeroReturn: return "EOF"
        default: return "tls: \(inner)"
        }
        guard let first = stack.first else { return "tls: handshake failure" }
        if first == .eofDuringHandshake { return "EOF" }
        let reason = Self.reason(first.description)
        switch reason {
        case "PEER_DID_NOT_RETURN_A_CERTIFICATE": return "tls: client didn't provide a certificate"
        case "CERTIFICATE_VERIFY_FAILED": return "tls: failed to verify certificate"
        default: return "tls: " + reason.lowercased().replacingOccurrences(of: "_", with: " ")
        }
    }

    /// `Error: 268435581 error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at file:line` ->
    /// `CERTIFICATE_VERIFY_FAILED`.
    static func reason(_ description: String) -> String {
        guard let start = description.range(of: "OPENSSL_internal:")?.upperBound else { return description }
        let rest = description[start...]
        return String(rest[..<(rest.range(of: " at ")?.lowerBound ?? rest.endIndex)])
    }
}
