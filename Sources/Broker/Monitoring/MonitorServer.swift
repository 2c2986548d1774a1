import CoreMetrics
import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// The monitoring HTTP endpoint (nats-server's `http_port`, or `https_port` with the top-level `tls { }`
/// certificate and no client certificate asked for, as nats-server): /healthz, /varz, /connz, /subsz, /jsz and
/// Prometheus text at /metrics. JSON shapes follow nats-server's monitor.go (its main fields); the documents are
/// in MonitorDocuments.swift, the metrics in BrokerMetrics.swift.
///
/// A swift-service-lifecycle `Service` (`run()` serves on the host and port given to `init` until graceful
/// shutdown), or started and stopped by hand with `start(host:port:)` / `stop()`.
public final class MonitorServer: Service, @unchecked Sendable {
    let broker: BrokerServer
    let logger: Logger
    let host: String
    let port: Int
    /// HTTPS (nats-server's `https_port`).
    public let secure: Bool
    /// Where /metrics is rendered from, and the handles brokerd's values are recorded into.
    let registry: PrometheusCollectorRegistry
    let metrics: BrokerMetrics
    private var endpoint: HTTPEndpoint<MonitorResponder>!

    public var boundPort: Int { endpoint.boundPort }

    /// `metrics`: the swift-prometheus factory to record into and render; by default the one brokerd bootstrapped
    /// (`MetricsSystem.factory`), or a private registry when none was.
    /// `tls`: serve HTTPS with this block's certificate (`https_port`); client certificates are not asked for.
    public init(broker: BrokerServer, host: String = "127.0.0.1", port: Int = 0, tls: TLSConfig? = nil,
                metrics: PrometheusMetricsFactory? = nil, logger: Logger) throws {
        self.broker = broker
        self.secure = tls != nil
        self.logger = logger
        self.host = host
        self.port = port
        let factory = metrics ?? (MetricsSystem.factory as? PrometheusMetricsFactory)
            ?? PrometheusMetricsFactory(registry: PrometheusCollectorRegistry())
        registry = factory.registry
        self.metrics = BrokerMetrics(factory: factory)
        var configuration = try tls.map { try TLSContextFactory.makeServerConfiguration($0) }
        if let tls, configuration != nil {
            // SIGHUP re-reads the certificate (the client port's) for the next handshakes.
            let keyPair = try ReloadableKeyPair(tls)
            keyPair.install(into: &configuration!)
            broker.onReload { [logger] options in
                guard let tls = options.tls else { return }
                do {
                    try keyPair.reload(tls)
                } catch {
                    logger.error("Reload: keeping the monitor's certificate: \(error)")
                }
            }
        }
        // nats-server's getMonitoringTLSConfig: the client port's certificate, ClientAuth = NoClientCert.
        configuration?.certificateVerification = .none
        endpoint = HTTPEndpoint(group: broker.group, responder: MonitorResponder(monitor: self), tls: configuration, logger: logger)
    }

    /// The endpoints, as labels of the request timer ("other" for the rest).
    static let paths = ["/", "/healthz", "/varz", "/connz", "/subsz", "/jsz", "/metrics", "other"]

    public func run() async throws {
        try await endpoint.run(host: host, port: port) { [logger, host, secure] port in
            logger.info("Starting \(secure ? "https" : "http") monitor on \(host):\(port)")
        }
    }

    public func start(host: String, port: Int) async throws {
        let bound = try await endpoint.start(host: host, port: port)
        logger.info("Starting \(secure ? "https" : "http") monitor on \(host):\(bound)")
    }

    public func stop() async {
        await endpoint.stop()
    }

    /// Routes one request; returns status, content type and body.
    func respond(path: String, query: [String: String]) async -> (HTTPResponse.Status, String, String) {
        let started = ContinuousClock.now
        defer {
            let (seconds, attoseconds) = (ContinuousClock.now - started).components
            metrics.recordRequest(path: Self.paths.contains(path) ? path : "other",
                                  nanoseconds: seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        }
        switch path {
        case "/", "":
            return (.ok, "text/plain; charset=utf-8", "brokerd monitoring: /healthz /varz /connz /subsz /jsz /metrics\n")
        case "/healthz":
            // A bridge failing for long is reported, but the answer stays 200: restarting brokerd would not
            // bring Pub/Sub back, and the alerts wait safely in the stream meanwhile.
            let degraded = broker.bridgeStats.map { $0.snapshot() }.filter { $0.degraded() }
            if degraded.isEmpty { return (.ok, "application/json", #"{"status":"ok"}"#) }
            let names = degraded.map { "projects/\($0.project)/topics/\($0.topic)" }
            return (.ok, "application/json", MonitorJSON.string(["status": "degraded", "degraded_bridges": names,
                                                        "last_errors": degraded.map { $0.lastError ?? "" }]))
        case "/varz":
            return (.ok, "application/json", MonitorJSON.string(varz(await snapshot())))
        case "/connz":
            let offset = Int(query["offset"] ?? "") ?? 0
            let limit = Int(query["limit"] ?? "") ?? 1024
            let subs = query["subs"] == "true" || query["subs"] == "1"
            return (.ok, "application/json", MonitorJSON.string(await connz(offset: offset, limit: limit, subs: subs)))
        case "/subsz":
            return (.ok, "application/json", MonitorJSON.string(await subsz()))
        case "/jsz":
            return (.ok, "application/json", MonitorJSON.string(jsz()))
        case "/metrics":
            _ = await snapshot()
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", BrokerMetrics.withHelp(registry.emitToString()))
        default:
            return (.notFound, "application/json", #"{"error":"not found"}"#)
        }
    }

    static func split(_ uri: String) -> (String, [String: String]) {
        guard let q = uri.firstIndex(of: "?") else { return (uri, [:]) }
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: q)...].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = kv.first, !key.isEmpty else { continue }  // "?=" or "?&": nothing to read
            query[String(key)] = kv.count > 1 ? String(kv[1]) : ""
        }
        return (String(uri[..<q]), query)
    }
}

/// Answers GET and HEAD on the monitoring port.
struct MonitorResponder: HTTPResponder {
    typealias Context = ChannelRequestContext
    unowned let monitor: MonitorServer

    func respond(to request: Request, context: Context) async throws -> Response {
        let (status, contentType, body): (HTTPResponse.Status, String, String)
        if request.method != .get && request.method != .head {
            (status, contentType, body) = (.methodNotAllowed, "application/json", #"{"error":"method not allowed"}"#)
        } else {
            let (path, query) = MonitorServer.split(request.head.path ?? "/")
            (status, contentType, body) = await monitor.respond(path: path, query: query)
        }
        var headers: HTTPFields = [.contentType: contentType]
        if request.headers[.connection]?.lowercased() == "close" { headers[.connection] = "close" }
        let response = Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
        return request.method == .head ? response.createHeadResponse() : response
    }
}
