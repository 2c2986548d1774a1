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
                    // The request decoder only: FalcoHTTPHandler writes whole answers itself (see there).
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
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

/// One connection's requests: the request side is NIOHTTP1's decoder (llhttp); the answers are written here, as
/// whole responses in one buffer, in the order of the requests (an answer may wait for its stream's fsync while
/// later pipelined requests are already handled). NIOHTTP1's server pipeline handlers (pipelining, response
/// encoder, header validation, protocol errors) cost about a quarter of this endpoint's CPU per alert, for
/// answers that are always a short JSON text with a few fixed headers; what they did is here:
/// - answers go out in request order; a request that is not keep-alive (or a 413) closes after its answer, and
///   nothing read after it is handled;
/// - backpressure: no more reads while `maxQueued` answers wait or the socket does not take them;
/// - a request the decoder refuses gets `400 Bad Request` (`Connection: close`, after the answers before it) and
///   the connection closes;
/// - `Expect: 100-continue` gets `100 Continue` when no answer is waiting.
final class FalcoHTTPHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Answers that may wait on one connection before it stops reading.
    static let maxQueued = 64

    let server: FalcoHTTPServer
    /// The router of this channel's loop: alerts are published there, as the server.
    let router: Router
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var tooLarge = false

    /// The answers in request order: nil while the request's alerts wait for their stream. `answered` counts
    /// those already written, so request number n (from 0) is `queue[n - answered]`.
    private var queue = CircularBuffer<Answer?>(initialCapacity: 4)
    private var requests = 0
    private var answered = 0
    /// A request asked to close (or the decoder failed): nothing read after it is handled.
    private var closing = false
    private var readPending = false
    /// Inside a read: answers wait for its channelReadComplete (written together, after the router's flush).
    private var inRead = false

    struct Answer {
        var bytes: ByteBuffer
        var close: Bool
    }

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
    /// The answers of the read's requests follow, so that a client never has its answer before the alert went
    /// to the subscribers.
    func channelReadComplete(context: ChannelHandlerContext) {
        router.flushPending()
        inRead = false
        writeReady(context)
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        router.flushPending()  // a read that ended in a close gets no channelReadComplete
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError, !closing else {
            context.fireErrorCaught(error)
            return
        }
        // A request the decoder refuses: nothing after it can be read; answer 400 in its turn, then close.
        closing = true
        let number = requests
        requests += 1
        queue.append(nil)
        answer(number, Self.encode(version: .http1_1, status: .badRequest, text: nil, extra: [], keepAlive: false, head: false),
               close: true, context: context)
    }

    // MARK: - Reading, with backpressure

    func read(context: ChannelHandlerContext) {
        if queue.count >= Self.maxQueued || !context.channel.isWritable {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        resumeReading(context)
        context.fireChannelWritabilityChanged()
    }

    private func resumeReading(_ context: ChannelHandlerContext) {
        if readPending, queue.count < Self.maxQueued, context.channel.isWritable {
            readPending = false
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inRead = true
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.removeAll(keepingCapacity: true)
            tooLarge = false
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > server.maxBody {
                tooLarge = true
            }
            if !tooLarge, queue.isEmpty, head.version.major == 1, head.version.minor >= 1,
               let expect = head.headers.first(name: "expect"), expect.lowercased() == "100-continue" {
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n")), promise: nil)
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
            let number = requests
            requests += 1
            queue.append(nil)
            handle(head, number: number, context: context)
        }
    }

    // MARK: - Answering

    /// Request `number`'s answer is ready: written when every earlier one is (at the end of the read, when
    /// it is answered inside one).
    private func answer(_ number: Int, _ bytes: ByteBuffer, close: Bool, context: ChannelHandlerContext) {
        let index = number - answered
        guard index >= 0, index < queue.count, queue[queue.index(queue.startIndex, offsetBy: index)] == nil else { return }
        queue[queue.index(queue.startIndex, offsetBy: index)] = Answer(bytes: bytes, close: close)
        if index == 0 && !inRead { writeReady(context) }
    }

    /// Writes the answers that are ready, in order, up to the first that still waits.
    private func writeReady(_ context: ChannelHandlerContext) {
        var wrote = false
        while let first = queue.first, let ready = first {
            queue.removeFirst()
            answered += 1
            wrote = true
            if ready.close {
                closing = true
                queue.removeAll()
                let channel = context.channel
                context.writeAndFlush(wrapOutboundOut(ready.bytes)).whenComplete { _ in channel.close(promise: nil) }
                return
            }
            context.write(wrapOutboundOut(ready.bytes), promise: nil)
        }
        if wrote { context.flush() }
        resumeReading(context)
    }

    private func respond(_ context: ChannelHandlerContext, _ number: Int, _ request: HTTPRequestHead, _ status: HTTPResponseStatus,
                         _ text: String, extra: [(String, String)] = [], close: Bool = false) {
        let keepAlive = request.isKeepAlive && !close
        answer(number, Self.encode(version: request.version, status: status, text: text, extra: extra, keepAlive: keepAlive,
                                   head: request.method == .HEAD),
               close: !keepAlive, context: context)
    }

    /// A whole response: status line, Content-Type (with a body), Content-Length, the extra headers, Connection,
    /// and the text plus a newline (none for HEAD, which still gets the length).
    static func encode(version: HTTPVersion, status: HTTPResponseStatus, text: String?, extra: [(String, String)],
                       keepAlive: Bool, head: Bool) -> ByteBuffer {
        let length = text.map { $0.utf8.count + 1 } ?? 0
        var out = ByteBuffer()
        out.reserveCapacity(160 + length)
        out.writeString("HTTP/\(version.major).\(version.minor) \(status.code) \(status.reasonPhrase)\r\n")
        if text != nil { out.writeString("Content-Type: application/json\r\n") }
        out.writeString("Content-Length: \(length)\r\n")
        for (name, value) in extra { out.writeString("\(name): \(value)\r\n") }
        if !keepAlive {
            out.writeString("Connection: close\r\n")
        } else if version.major == 1 && version.minor == 0 {
            out.writeString("Connection: keep-alive\r\n")
        }
        out.writeString("\r\n")
        if let text, !head {
            out.writeString(text)
            out.writeString("\n")
        }
        return out
    }

    private func handle(_ head: HTTPRequestHead, number: Int, context: ChannelHandlerContext) {
        let falco = server.falco
        if head.method == .GET || head.method == .HEAD, head.uri.utf8.prefix(while: { $0 != UInt8(ascii: "?") }).elementsEqual("/healthz".utf8) {
            respond(context, number, head, .ok, #"{"status":"ok"}"#)
            return
        }
        guard head.method == .POST else {
            respond(context, number, head, .methodNotAllowed, #"{"error":"POST Falco alerts (JSON) here"}"#, extra: [("Allow", "POST")])
            return
        }
        if tooLarge {
            falco.countRejected(.http, reason: "too_large", detail: "request body over \(server.maxBody) bytes")
            respond(context, number, head, .payloadTooLarge, #"{"error":"request body over the limit of \#(server.maxBody) bytes"}"#, close: true)
            return
        }
        if let type = head.headers.first(name: "content-type"), !Self.acceptable(type) {
            falco.countRejected(.http, reason: "unsupported_media_type", detail: type)
            respond(context, number, head, .unsupportedMediaType, #"{"error":"Content-Type must be application/json (or JSON lines)"}"#)
            return
        }
        if falco.inFlight.load(ordering: .relaxed) >= falco.maxInFlight {
            falco.countRejected(.http, reason: "overloaded", detail: "\(falco.maxInFlight) alerts wait for the store")
            respond(context, number, head, .serviceUnavailable, #"{"error":"overloaded: too many alerts are waiting for the disk; retry"}"#,
                    extra: [("Retry-After", "1")])
            return
        }
        let body = self.body
        let parts = FalcoHTTPServer.split(body)
        var alerts: [(FalcoAlert, ArraySlice<UInt8>)] = []
        alerts.reserveCapacity(parts.count)
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
            respond(context, number, head, .badRequest,
                    #"{"error":\#(JSONString.quoted(parts.count > 1 ? summary : firstDetail)),"rejected":[\#(errors.joined(separator: ","))]}"#)
            return
        }
        // The ingest's own user (falco { user }) must be allowed to publish every alert's subject.
        if let violation = alerts.lazy.compactMap({ falco.permissionViolation(for: $0.0) }).first {
            falco.countRejected(.http, reason: "permission", detail: violation)
            respond(context, number, head, .forbidden, #"{"error":\#(JSONString.quoted(violation + "; none was published"))}"#)
            return
        }
        // Publish all; answer once every one is accepted (or one is refused). Without a stream each is accepted
        // at once, here on the loop; a stream's PubAck arrives on its own thread and comes back to the loop.
        let eventLoop = context.eventLoop
        let total = alerts.count
        let batch = NIOLoopBound(Batch(remaining: total, context: context), eventLoop: eventLoop)
        let settle: @Sendable (FalcoIngest.Outcome) -> Void = { [self] outcome in
            let state = batch.value
            if case .failed(let description, let overloaded) = outcome, state.failure == nil {
                state.failure = (description, overloaded)
            }
            state.remaining -= 1
            guard state.remaining == 0 else { return }
            if let (description, overloaded) = state.failure {
                respond(state.context, number, head, overloaded ? .serviceUnavailable : .internalServerError,
                        #"{"error":\#(JSONString.quoted("not stored: " + description))}"#,
                        extra: overloaded ? [("Retry-After", "1")] : [])
            } else {
                respond(state.context, number, head, .ok, #"{"accepted":\#(total)}"#)
            }
        }
        let finish: @Sendable (FalcoIngest.Outcome) -> Void = { outcome in
            if eventLoop.inEventLoop { settle(outcome) } else { eventLoop.execute { settle(outcome) } }
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
}
