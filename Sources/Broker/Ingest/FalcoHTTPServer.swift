import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Protocol
import ServiceLifecycle

/// The endpoint Falco's `http_output` posts to (`falco { http_port: 2801 }`, `--falco_http_port`).
///
/// A request carries one alert (Falco's `Content-Type: application/json`) or several as JSON lines. Each is
/// checked; if any is bad the answer is 400 with the reasons and nothing is published. Otherwise every alert
/// is published on `FALCO.<Priority>` and the answer, 200, comes once all are accepted (stored and fsynced
/// when a stream captures them). 413: body over `max_body`. 415: not JSON. 503 + Retry-After: too many alerts
/// wait for the disk, or the store refused them (a resource limit). `GET /healthz` answers 200.
///
/// HTTPS with `falco { tls { } }` (`tls`): the TLS handler goes in front of the same pipeline, with the block's
/// handshake timeout and `pinned_certs` (TLSHandshakeGuard); `verify: true` refuses a client without a trusted
/// certificate during the handshake. Without it the pipeline is exactly the plain one.
///
/// A swift-service-lifecycle `Service` (`run()` serves on the host and port given to `init` until graceful
/// shutdown), or started and stopped by hand with `start(host:port:)` / `stop()`.
///
/// Why plain NIO and not Hummingbird, as the monitoring endpoint: one alert per request (Falco's own
/// `http_output`) cost brokerd about twice the CPU per alert under Hummingbird 2.28 (97-99 against 52 CPU s per
/// million alerts in `run_bench.py --scenarios falcohttp`, 4.5-5.7k against 7.9-11.1k alerts/s, even with each
/// connection's task pinned to its event loop), far over the 10% this endpoint may lose. Batched requests cost the
/// same on both. The handler below stays loop-bound: a request is handled where its bytes arrive.
public final class FalcoHTTPServer: Service, @unchecked Sendable {
    let broker: BrokerServer
    let falco: FalcoIngest
    let maxBody: Int
    let logger: Logger
    let host: String
    let port: Int
    private var channel: (any Channel)?
    public private(set) var boundPort = 0

    let idleTimeout: Duration
    /// The `tls { }` block and its server context (made once, at init: a bad file fails here); the certificate
    /// and key are re-read on SIGHUP (`ReloadableKeyPair`), so a rotated certificate needs no restart.
    let tls: (config: TLSConfig, context: NIOSSLContext)?
    let keyPair: ReloadableKeyPair?

    public init(broker: BrokerServer, falco: FalcoIngest, maxBody: Int, idleTimeout: Duration = .seconds(300),
                tls: TLSConfig? = nil, host: String = "127.0.0.1", port: Int = 0, logger: Logger) throws {
        let keyPair = try tls.map { try ReloadableKeyPair($0) }
        self.keyPair = keyPair
        self.tls = try tls.map { ($0, try TLSContextFactory.makeServerContext($0, keyPair: keyPair)) }
        self.broker = broker
        if let keyPair {
            broker.onReload { [logger] options in
                guard let tls = options.falcoTLS else { return }
                do {
                    try keyPair.reload(tls)
                    logger.info("Reloaded the Falco endpoint's certificate", metadata: ["cert_file": "\(tls.certFile ?? "")"])
                } catch {
                    logger.error("Reload: keeping the Falco endpoint's certificate: \(error)")
                }
            }
        }
        self.falco = falco
        self.maxBody = maxBody
        self.idleTimeout = idleTimeout
        self.host = host
        self.port = port
        self.logger = logger
    }

    /// Serves on `init`'s host and port until graceful shutdown (or cancellation), then stops listening.
    public func run() async throws {
        try await start(host: host, port: port)
        try? await gracefulShutdown()
        await stop()
    }

    public func start(host: String, port: Int) async throws {
        let bootstrap = ServerBootstrap(group: broker.group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let router = broker.subjectSpace.router(on: channel.eventLoop) else {
                        throw ChannelError.ioOnClosedChannel
                    }
                    // Close connections that send nothing for idle_timeout (a half-sent request counts too).
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: TimeAmount(idleTimeout)))
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.context))
                        try channel.pipeline.syncOperations.addHandler(TLSHandshakeGuard(tls: tls.config, logger: logger))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(FalcoHTTPHandler(server: self, router: router))
                }
            }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        self.channel = channel
        boundPort = channel.localAddress?.port ?? port
        logger.info("Listening for Falco alerts (http_output) on \(tls == nil ? "http" : "https")://\(host):\(boundPort)")
    }

    public func stop() async {
        try? await channel?.close()
    }

    /// The alerts of one request body: one JSON object, or JSON lines.
    static func split(_ body: [UInt8]) -> [ArraySlice<UInt8>] {
        // The usual case, one alert: no newline before the end.
        if let newline = body.firstIndex(of: UInt8(ascii: "\n")), !body[(newline + 1)...].allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            // Several lines: handled below.
        } else {
            return [body[...]]
        }
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        for i in body.indices where body[i] == UInt8(ascii: "\n") {
            lines.append(body[start..<i])
            start = i + 1
        }
        if start < body.count { lines.append(body[start...]) }
        // A final newline ends the last line; it does not start an empty one.
        let trimmed = lines.map { line -> ArraySlice<UInt8> in
            line.last == UInt8(ascii: "\r") ? line.dropLast() : line
        }
        if trimmed.count <= 1 { return [body[...]] }
        // A pretty-printed single object spans lines too.
        if case .success = FalcoAlert.validate(body) { return [body[...]] }
        return trimmed
    }
}

final class FalcoHTTPHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let server: FalcoHTTPServer
    /// The router of this channel's loop: alerts are published there, as the server.
    let router: Router
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    init(server: FalcoHTTPServer, router: Router) {
        self.server = server
        self.router = router
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// What the requests of one read published goes out once, at the end of the read (as a NATS client's
    /// publishes do), not once per alert.
    func channelReadComplete(context: ChannelHandlerContext) {
        router.flushPending()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        router.flushPending()  // a read that ended in a close gets no channelReadComplete
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.removeAll(keepingCapacity: true)
            tooLarge = false
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > server.maxBody {
                tooLarge = true
            }
        case .body(let chunk):
            guard !tooLarge else { return }
            if body.count + chunk.readableBytes > server.maxBody {
                tooLarge = true
                body.removeAll()
                return
            }
            chunk.withUnsafeReadableBytes { body.append(contentsOf: $0) }
        case .end:
            guard let head else { return }
            self.head = nil
            handle(head, context: context)
        }
    }

    private func handle(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let falco = server.falco
        if head.method == .GET || head.method == .HEAD, head.uri.utf8.prefix(while: { $0 != UInt8(ascii: "?") }).elementsEqual("/healthz".utf8) {
            respond(context, head, .ok, #"{"status":"ok"}"#)
            return
        }
        guard head.method == .POST else {
            respond(context, head, .methodNotAllowed, #"{"error":"POST Falco alerts (JSON) here"}"#, extra: [("Allow", "POST")])
            return
        }
        if tooLarge {
            falco.countRejected(.http, reason: "too_large", detail: "request body over \(server.maxBody) bytes")
            respond(context, head, .payloadTooLarge, #"{"error":"request body over the limit of \#(server.maxBody) bytes"}"#, close: true)
            return
        }
        if let type = head.headers.first(name: "content-type"), !Self.acceptable(type) {
            falco.countRejected(.http, reason: "unsupported_media_type", detail: type)
            respond(context, head, .unsupportedMediaType, #"{"error":"Content-Type must be application/json (or JSON lines)"}"#)
            return
        }
        if falco.inFlight.load(ordering: .relaxed) >= falco.maxInFlight {
            falco.countRejected(.http, reason: "overloaded", detail: "\(falco.maxInFlight) alerts wait for the store")
            respond(context, head, .serviceUnavailable, #"{"error":"overloaded: too many alerts are waiting for the disk; retry"}"#,
                    extra: [("Retry-After", "1")])
            return
        }
        let body = self.body
        let parts = FalcoHTTPServer.split(body)
        var alerts: [(FalcoAlert, ArraySlice<UInt8>)] = []
        var errors: [String] = []
        var firstDetail = ""
        for (index, part) in parts.enumerated() {
            switch part.withUnsafeBytes({ FalcoAlert.validate($0) }) {
            case .success(let alert): alerts.append((alert, part))
            case .failure(let rejection):
                falco.countRejected(.http, reason: rejection.reason.rawValue, detail: rejection.detail)
                if errors.isEmpty { firstDetail = rejection.detail }
                let line = parts.count > 1 ? #""line":\#(index + 1),"# : ""
                errors.append(#"{\#(line)"reason":"\#(rejection.reason.rawValue)","error":\#(JSONString.quoted(rejection.detail))}"#)
            }
        }
        if !errors.isEmpty {
            let summary = parts.count > 1 ? "\(errors.count) of \(parts.count) alerts are invalid; none was published" : "invalid alert"
            respond(context, head, .badRequest,
                    #"{"error":\#(JSONString.quoted(parts.count > 1 ? summary : firstDetail)),"rejected":[\#(errors.joined(separator: ","))]}"#)
            return
        }
        // The ingest's own user (falco { user }) must be allowed to publish every alert's subject.
        if let violation = alerts.lazy.compactMap({ falco.permissionViolation(for: $0.0) }).first {
            falco.countRejected(.http, reason: "permission", detail: violation)
            respond(context, head, .forbidden, #"{"error":\#(JSONString.quoted(violation + "; none was published"))}"#)
            return
        }
        // Publish all; answer once every one is accepted (or one is refused).
        let eventLoop = context.eventLoop
        let total = alerts.count
        let batch = NIOLoopBound(Batch(remaining: total, context: context), eventLoop: eventLoop)
        let finish: @Sendable (FalcoIngest.Outcome) -> Void = { [self] outcome in
            eventLoop.execute { [self] in
                let state = batch.value
                if case .failed(let description, let overloaded) = outcome, state.failure == nil {
                    state.failure = (description, overloaded)
                }
                state.remaining -= 1
                guard state.remaining == 0 else { return }
                let context = state.context
                if let (description, overloaded) = state.failure {
                    respond(context, head, overloaded ? .serviceUnavailable : .internalServerError,
                            #"{"error":\#(JSONString.quoted("not stored: " + description))}"#,
                            extra: overloaded ? [("Retry-After", "1")] : [])
                } else {
                    respond(context, head, .ok, #"{"accepted":\#(total)}"#)
                }
            }
        }
        for (alert, bytes) in alerts {
            falco.publish(alert, body: bytes, path: .http, via: router, flush: false, completion: finish)
        }
    }

    /// One request's alerts on their way (touched on the channel's loop only).
    final class Batch {
        var remaining: Int
        var failure: (String, Bool)?
        let context: ChannelHandlerContext
        init(remaining: Int, context: ChannelHandlerContext) {
            self.remaining = remaining
            self.context = context
        }
    }

    static let acceptedMediaTypes = ["application/json", "application/x-ndjson", "application/jsonl",
                                     "application/x-jsonlines", "application/json-seq", "text/plain", ""].map { Array($0.utf8) }

    /// Whether a Content-Type names JSON (or JSON lines): its media type, before any parameters, without
    /// surrounding blanks, compared ignoring ASCII case. Checked on bytes: it runs once per request.
    static func acceptable(_ type: String) -> Bool {
        var media = type.utf8.prefix { $0 != UInt8(ascii: ";") }
        let blank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        while let first = media.first, blank(first) { media = media.dropFirst() }
        while let last = media.last, blank(last) { media = media.dropLast() }
        let lower: (UInt8) -> UInt8 = { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
        return acceptedMediaTypes.contains { $0.elementsEqual(media.lazy.map(lower)) }
    }

    private func respond(_ context: ChannelHandlerContext, _ request: HTTPRequestHead, _ status: HTTPResponseStatus,
                         _ text: String, extra: [(String, String)] = [], close: Bool = false) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: "\(text.utf8.count + 1)")
        for (name, value) in extra { headers.add(name: name, value: value) }
        let keepAlive = request.isKeepAlive && !close
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text + "\n")))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
