import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTPTypes
import NIOSSL
import ServiceLifecycle

/// brokerd's HTTP stack (Hummingbird 2) for the monitoring endpoint and the pages that come next (the Falco
/// `http_output` endpoint stays on plain NIO for speed: see FalcoHTTPServer). An endpoint runs as a
/// swift-service-lifecycle `Service` (`run(host:port:)` inside the caller's ServiceGroup, graceful shutdown
/// included) or is started and stopped on its own (`start(host:port:)` / `stop()`).
///
/// Every connection's task runs on the event loop of its channel (`EventLoopTaskExecutor`), the broker's own
/// loops: a request is decoded, handled and answered without a thread hop (a third less CPU per request than on
/// the global executor), and a handler can use the state of that loop (its `Router`, say) directly.
///
/// With `tls`, HummingbirdTLS's `TLSChannel` wraps the same child channel (HTTPS).
final class HTTPEndpoint<Responder: HTTPResponder>: @unchecked Sendable where Responder.Context == ChannelRequestContext {
    let group: any EventLoopGroup
    let responder: Responder
    let idleTimeout: TimeAmount?
    let tls: TLSConfiguration?
    let logger: Logger
    private let state = NIOLockedValueBox(Running())

    private struct Running {
        var boundPort = 0
        var serviceGroup: ServiceGroup?
        var task: Task<Void, any Error>?
    }

    init(group: any EventLoopGroup, responder: Responder, idleTimeout: TimeAmount? = nil, tls: TLSConfiguration? = nil,
         logger: Logger) {
        self.group = group
        self.responder = responder
        self.idleTimeout = idleTimeout
        self.tls = tls
        // Hummingbird's own start and stop lines would repeat ours; its warnings and errors still show.
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .notice)
        self.logger = quiet
    }

    /// The port bound by the last start (0 before).
    var boundPort: Int { state.withLockedValue { $0.boundPort } }

    func application(host: String, port: Int, onRunning: @escaping @Sendable (Int) -> Void) throws -> some ApplicationProtocol {
        let http1 = HTTP1Channel.Configuration(additionalChannelHandlers: [CloseAfterResponseHandler()], idleTimeout: idleTimeout)
        let plain = HTTPServerBuilder { responder in
            LoopPinnedHTTP1Channel(http1: HTTP1Channel(responder: responder, configuration: http1))
        }
        return Application(
            responder: responder,
            server: try tls.map { try .tls(plain, tlsConfiguration: $0) } ?? plain,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: nil, backlog: 256),
            onServerRunning: { [state] channel in
                let bound = channel.localAddress?.port ?? port
                state.withLockedValue { $0.boundPort = bound }
                onRunning(bound)
            },
            eventLoopGroupProvider: .shared(group),
            logger: logger
        )
    }

    /// Serves until the surrounding ServiceGroup shuts down gracefully (or the task is cancelled).
    func run(host: String, port: Int, onRunning: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        try await application(host: host, port: port, onRunning: onRunning).run()
    }

    /// Starts serving in the background; returns once the port is bound (throws if it cannot be).
    func start(host: String, port: Int) async throws -> Int {
        let (bound, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = try application(host: host, port: port) { continuation.yield($0) }
        let serviceGroup = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
        let task = Task {
            defer { continuation.finish() }
            try await serviceGroup.run()
        }
        state.withLockedValue {
            $0.serviceGroup = serviceGroup
            $0.task = task
        }
        for await port in bound { return port }
        try await task.value  // ended before binding: its error
        throw ChannelError.ioOnClosedChannel
    }

    /// Stops what `start` started: no new connections, the open ones finish their request and close.
    func stop() async {
        let (serviceGroup, task) = state.withLockedValue { ($0.serviceGroup, $0.task) }
        await serviceGroup?.triggerGracefulShutdown()
        _ = try? await task?.value
    }
}

/// The request context of brokerd's HTTP endpoints: Hummingbird's, plus the connection's channel (for its loop).
struct ChannelRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Runs a task's jobs on one NIO event loop.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}

/// Hummingbird's HTTP/1.1 child channel, with each connection's task pinned to the channel's event loop.
struct LoopPinnedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let http1: HTTP1Channel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        http1.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(value.channel.eventLoop)) {
            await http1.handle(value: value, logger: logger)
        }
    }
}

/// Closes the connection once a response that says `Connection: close` is written (Hummingbird keeps it open
/// otherwise): a 413 does not read the rest of an oversized body, and a client that asked for close gets it.
final class CloseAfterResponseHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart
    private var closeAfterEnd = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            closeAfterEnd = head.headerFields[.connection]?.lowercased() == "close"
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            guard closeAfterEnd else {
                context.write(data, promise: promise)
                return
            }
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.cascade(to: promise)
            context.writeAndFlush(data, promise: written)
            written.futureResult.assumeIsolatedUnsafeUnchecked().whenComplete { _ in context.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension CloseAfterResponseHandler: Sendable {}
