import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// The monitoring HTTP endpoint (nats-server's `http_port`): /healthz, /varz, /connz, /subsz and Prometheus
/// text at /metrics. JSON shapes follow nats-server's monitor.go (its main fields).
public final class MonitorServer: @unchecked Sendable {
    let broker: BrokerServer
    let logger: Logger
    private var channel: (any Channel)?
    public private(set) var boundPort = 0

    public init(broker: BrokerServer, logger: Logger) {
        self.broker = broker
        self.logger = logger
    }

    public func start(host: String, port: Int) async throws {
        let bootstrap = ServerBootstrap(group: broker.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MonitorHandler(monitor: self))
                }
            }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        self.channel = channel
        boundPort = channel.localAddress?.port ?? port
        logger.info("Starting http monitor on \(host):\(boundPort)")
    }

    public func stop() async {
        try? await channel?.close()
    }

    /// Routes one request; returns status, content type and body.
    func respond(path: String, query: [String: String]) async -> (HTTPResponseStatus, String, String) {
        switch path {
        case "/", "":
            return (.ok, "text/plain; charset=utf-8", "brokerd monitoring: /healthz /varz /connz /subsz /jsz /metrics\n")
        case "/healthz":
            // A bridge failing for long is reported, but the answer stays 200: restarting brokerd would not
            // bring Pub/Sub back, and the alerts wait safely in the stream meanwhile.
            let degraded = broker.bridgeStats.map { $0.snapshot() }.filter { $0.degraded() }
            if degraded.isEmpty { return (.ok, "application/json", #"{"status":"ok"}"#) }
            let names = degraded.map { "projects/\($0.project)/topics/\($0.topic)" }
            return (.ok, "application/json", Self.json(["status": "degraded", "degraded_bridges": names,
                                                        "last_errors": degraded.map { $0.lastError ?? "" }]))
        case "/varz":
            return (.ok, "application/json", Self.json(await varz()))
        case "/connz":
            let offset = Int(query["offset"] ?? "") ?? 0
            let limit = Int(query["limit"] ?? "") ?? 1024
            let subs = query["subs"] == "true" || query["subs"] == "1"
            return (.ok, "application/json", Self.json(await connz(offset: offset, limit: limit, subs: subs)))
        case "/subsz":
            return (.ok, "application/json", Self.json(await subsz()))
        case "/jsz":
            return (.ok, "application/json", Self.json(jsz()))
        case "/metrics":
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", await prometheus())
        default:
            return (.notFound, "application/json", #"{"error":"not found"}"#)
        }
    }

    // MARK: - Documents

    struct Totals {
        var inMsgs: UInt64 = 0, inBytes: UInt64 = 0, outMsgs: UInt64 = 0, outBytes: UInt64 = 0
        var slowConsumers: UInt64 = 0, cacheEntries = 0, cacheHits: UInt64 = 0, cacheMisses: UInt64 = 0
    }

    func totals() async -> Totals {
        let parts = await broker.collect { loop in
            let r = loop.router
            return Totals(inMsgs: r.inMsgs, inBytes: r.inBytes, outMsgs: r.outMsgs, outBytes: r.outBytes,
                          slowConsumers: r.slowConsumers, cacheEntries: r.cacheEntries,
                          cacheHits: r.cacheHits, cacheMisses: r.cacheMisses)
        }
        return parts.reduce(into: Totals()) { sum, t in
            sum.inMsgs += t.inMsgs; sum.inBytes += t.inBytes; sum.outMsgs += t.outMsgs; sum.outBytes += t.outBytes
            sum.slowConsumers += t.slowConsumers; sum.cacheEntries += t.cacheEntries
            sum.cacheHits += t.cacheHits; sum.cacheMisses += t.cacheMisses
        }
    }

    func varz() async -> [String: Any] {
        let opts = broker.options
        let t = await totals()
        let now = Date()
        return [
            "server_id": broker.serverID,
            "server_name": broker.serverName,
            "version": BrokerServer.natsCompatibleVersion,
            "brokerd_version": BrokerServer.version,
            "proto": 1,
            "host": opts.host,
            "port": broker.boundPort,
            "auth_required": opts.authorization != nil,
            "max_connections": opts.maxConnections,
            "ping_interval": Self.nanoseconds(opts.pingInterval),
            "ping_max": opts.pingMax,
            "http_host": opts.httpHost ?? opts.host,
            "http_port": boundPort,
            "max_control_line": opts.maxControlLine,
            "max_payload": opts.maxPayload,
            "max_pending": opts.maxPending,
            "write_deadline": Self.nanoseconds(opts.writeDeadline),
            "start": Self.timestamp(broker.startTime),
            "now": Self.timestamp(now),
            "uptime": Self.uptime(now.timeIntervalSince(broker.startTime)),
            "mem": Self.residentMemory(),
            "cores": ProcessInfo.processInfo.activeProcessorCount,
            "connections": broker.connectionCount.load(ordering: .relaxed),
            "total_connections": broker.totalConnections.load(ordering: .relaxed),
            "routes": 0,
            "remotes": 0,
            "leafnodes": 0,
            "in_msgs": t.inMsgs,
            "out_msgs": t.outMsgs,
            "in_bytes": t.inBytes,
            "out_bytes": t.outBytes,
            "slow_consumers": broker.slowConsumers,
            "subscriptions": broker.sublist.count,
            "config_load_time": Self.timestamp(broker.configLoadTime),
            "lame_duck_mode": broker.isLameDuck,
            "falco": falcoz(),
            "bridges": broker.bridgeStats.map { Self.bridgez($0.snapshot()) },
        ]
    }

    static func bridgez(_ s: BridgeStats.Snapshot) -> [String: Any] {
        var d: [String: Any] = [
            "project": s.project, "topic": s.topic, "ready": s.ready, "bridged": s.bridged, "retried": s.retried,
            "dead_lettered": s.deadLettered, "lag": s.lag, "degraded": s.degraded(),
        ]
        if let e = s.lastError { d["last_error"] = e }
        if let t = s.lastErrorAt { d["last_error_at"] = timestamp(t) }
        if let t = s.failingSince { d["failing_since"] = timestamp(t) }
        return d
    }

    /// Falco ingest counters (brokerd's own /varz section): accepted and rejected-by-reason per path.
    func falcoz() -> [String: Any] {
        let opts = broker.options
        guard let falco = broker.falcoIngest else { return [:] }
        let s = falco.snapshot()
        var paths: [String: Any] = [:]
        for path in FalcoIngest.Path.allCases {
            let rejected = s.rejected[path.name] ?? [:]
            paths[path.name] = ["accepted": s.accepted[path.name] ?? 0, "rejected": rejected.values.reduce(0, +),
                                "rejected_by_reason": rejected]
        }
        return ["http_port": opts.falcoHTTPPort ?? 0, "map_sidekick_subjects": opts.mapSidekickSubjects,
                "waiting_for_store": s.inFlight, "ingest": paths]
    }

    func connz(offset: Int, limit: Int, subs: Bool) async -> [String: Any] {
        let all = await broker.allConnections()
        let now = Date()
        let page = all.dropFirst(max(0, offset)).prefix(max(0, limit))
        var list: [[String: Any]] = []
        for connection in page {
            let info = await connectionInfo(connection, now: now, subs: subs)
            list.append(info)
        }
        return [
            "server_id": broker.serverID,
            "now": Self.timestamp(now),
            "num_connections": list.count,
            "total": all.count,
            "offset": offset,
            "limit": limit,
            "connections": list,
        ]
    }

    private func connectionInfo(_ c: ClientConnection, now: Date, subs: Bool) async -> [String: Any] {
        let loop = c.router.eventLoop
        let snapshot: [String: Any]? = try? await loop.submit { () -> SendableDictionary in
            var d: [String: Any] = [
                "cid": c.id,
                "kind": "Client",
                "type": "nats",
                "ip": c.remoteHost,
                "port": c.remotePort,
                "start": Self.timestamp(c.started),
                "last_activity": Self.timestamp(c.lastActivity),
                "uptime": Self.uptime(now.timeIntervalSince(c.started)),
                "idle": Self.uptime(now.timeIntervalSince(c.lastActivity)),
                "pending_bytes": c.outbound.pendingBytes,
                "in_msgs": c.inMsgs,
                "out_msgs": c.outbound.outMsgs,
                "in_bytes": c.inBytes,
                "out_bytes": c.outbound.outBytes,
                "subscriptions": c.subscriptions.count,
            ]
            if let name = c.options.name { d["name"] = name }
            if let lang = c.options.lang { d["lang"] = lang }
            if let version = c.options.version { d["version"] = version }
            if subs { d["subscriptions_list"] = c.subscriptions.values.map(\.subject).sorted() }
            return SendableDictionary(d)
        }.get().value
        return snapshot ?? ["cid": c.id]
    }

    /// nats-server's /jsz main fields.
    func jsz() -> [String: Any] {
        guard let jetStream = broker.jetStream else {
            return ["server_id": broker.serverID, "now": Self.timestamp(Date()), "disabled": true]
        }
        let s = jetStream.summary()
        return [
            "server_id": broker.serverID,
            "now": Self.timestamp(Date()),
            "config": ["max_memory": jetStream.maxMemory ?? -1, "max_storage": jetStream.maxStore ?? -1,
                       "store_dir": jetStream.storeDirectory.appendingPathComponent("jetstream").path],
            "memory": s.memory,
            "storage": s.storage,
            "streams": s.streams,
            "consumers": s.consumers,
            "messages": s.messages,
            "bytes": s.bytes,
            "api": ["total": s.apiTotal, "errors": s.apiErrors],
        ]
    }

    func subsz() async -> [String: Any] {
        let t = await totals()
        let stats = broker.sublist.statistics
        let lookups = t.cacheHits + t.cacheMisses
        return [
            "server_id": broker.serverID,
            "now": Self.timestamp(Date()),
            "num_subscriptions": stats.count,
            "num_cache": t.cacheEntries,
            "num_inserts": stats.inserts,
            "num_removes": stats.removes,
            "num_matches": lookups,
            "cache_hit_rate": lookups == 0 ? 0.0 : Double(t.cacheHits) / Double(lookups),
            "max_fanout": 0,
            "avg_fanout": 0.0,
        ]
    }

    func prometheus() async -> String {
        let t = await totals()
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ value: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        metric("brokerd_connections", "gauge", "Open client connections.", "\(broker.connectionCount.load(ordering: .relaxed))")
        metric("brokerd_connections_total", "counter", "Client connections accepted since start.", "\(broker.totalConnections.load(ordering: .relaxed))")
        metric("brokerd_subscriptions", "gauge", "Active subscriptions.", "\(broker.sublist.count)")
        metric("brokerd_in_msgs_total", "counter", "Messages received from clients.", "\(t.inMsgs)")
        metric("brokerd_in_bytes_total", "counter", "Payload bytes received from clients.", "\(t.inBytes)")
        metric("brokerd_out_msgs_total", "counter", "Messages delivered to clients.", "\(t.outMsgs)")
        metric("brokerd_out_bytes_total", "counter", "Payload bytes delivered to clients.", "\(t.outBytes)")
        metric("brokerd_slow_consumers_total", "counter", "Clients cut off as slow consumers.", "\(broker.slowConsumers)")
        metric("brokerd_lame_duck", "gauge", "1 while in lame-duck mode.", broker.isLameDuck ? "1" : "0")
        metric("brokerd_uptime_seconds", "gauge", "Seconds since start.", String(format: "%.3f", Date().timeIntervalSince(broker.startTime)))
        let bridges = broker.bridgeStats.map { $0.snapshot() }
        if !bridges.isEmpty {
            for (name, help, value) in [
                ("brokerd_bridge_messages_total", "Messages Pub/Sub accepted (acked to brokerd).", { (s: BridgeStats.Snapshot) in "\(s.bridged)" }),
                ("brokerd_bridge_retries_total", "Publish requests retried.", { "\($0.retried)" }),
                ("brokerd_bridge_dead_lettered_total", "Messages sent to BRIDGE.DLQ.<topic>.", { "\($0.deadLettered)" }),
                ("brokerd_bridge_lag", "Messages in the bridge's durable consumer not yet acked.", { "\($0.lag)" }),
                ("brokerd_bridge_degraded", "1 when the bridge has been failing for over a minute.", { $0.degraded() ? "1" : "0" }),
            ] as [(String, String, (BridgeStats.Snapshot) -> String)] {
                out += "# HELP \(name) \(help)\n# TYPE \(name) \(name.hasSuffix("_total") ? "counter" : "gauge")\n"
                for s in bridges { out += "\(name){topic=\"\(s.topic)\",project=\"\(s.project)\"} \(value(s))\n" }
            }
        }
        if let falco = broker.falcoIngest {
            let s = falco.snapshot()
            out += "# HELP brokerd_falco_alerts_accepted_total Falco alerts accepted, by ingest path.\n"
            out += "# TYPE brokerd_falco_alerts_accepted_total counter\n"
            for path in FalcoIngest.Path.allCases {
                out += "brokerd_falco_alerts_accepted_total{path=\"\(path.name)\"} \(s.accepted[path.name] ?? 0)\n"
            }
            out += "# HELP brokerd_falco_alerts_rejected_total Falco alerts rejected, by ingest path and reason.\n"
            out += "# TYPE brokerd_falco_alerts_rejected_total counter\n"
            for path in FalcoIngest.Path.allCases {
                for reason in FalcoIngest.reasons {
                    out += "brokerd_falco_alerts_rejected_total{path=\"\(path.name)\",reason=\"\(reason)\"} \(s.rejected[path.name]?[reason] ?? 0)\n"
                }
            }
            metric("brokerd_falco_alerts_waiting_for_store", "gauge", "Falco alerts published and waiting for their stream's fsync.", "\(s.inFlight)")
        }
        return out
    }

    // MARK: - Formatting

    static func json(_ object: [String: Any]) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) else {
            return "{}"
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// RFC 3339 with nanoseconds and `Z`, as nats-server writes times.
    static func timestamp(_ date: Date) -> String {
        // RFC 3339 with nanoseconds (nats-server's RFC3339Nano); a new ISO8601DateFormatter per call cost more
        // than the rest of /varz.
        JetStream.timestamp(date)
    }

    static func nanoseconds(_ d: Duration) -> Int64 { TimeAmount(d).nanoseconds }

    /// nats-server's uptime format: "1d2h3m4s".
    static func uptime(_ seconds: TimeInterval) -> String {
        var s = Int(seconds)
        let d = s / 86400; s %= 86400
        let h = s / 3600; s %= 3600
        let m = s / 60; s %= 60
        var out = ""
        if d > 0 { out += "\(d)d" }
        if d > 0 || h > 0 { out += "\(h)h" }
        if d > 0 || h > 0 || m > 0 { out += "\(m)m" }
        return out + "\(s)s"
    }

    static func residentMemory() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * 4096
    }
}

/// Carries a JSON-ready dictionary across an event-loop hop (values are plain numbers and strings).
struct SendableDictionary: @unchecked Sendable {
    let value: [String: Any]
    init(_ value: [String: Any]) { self.value = value }
}

/// Answers GET requests on the monitoring port.
final class MonitorHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let monitor: MonitorServer
    private var head: HTTPRequestHead?

    init(monitor: MonitorServer) { self.monitor = monitor }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
        case .body:
            break
        case .end:
            guard let request = head else { return }
            head = nil
            let (path, query) = Self.split(request.uri)
            let keepAlive = request.isKeepAlive
            let loopBound = NIOLoopBound((context: context, handler: self), eventLoop: context.eventLoop)
            let monitor = self.monitor
            let method = request.method
            let promise = context.eventLoop.makePromise(of: (HTTPResponseStatus, String, String).self)
            promise.completeWithTask {
                if method != .GET && method != .HEAD {
                    return (.methodNotAllowed, "application/json", #"{"error":"method not allowed"}"#)
                }
                return await monitor.respond(path: path, query: query)
            }
            promise.futureResult.whenSuccess { status, contentType, body in
                let (context, handler) = loopBound.value
                handler.write(context: context, status: status, contentType: contentType, body: body,
                              keepAlive: keepAlive, includeBody: method != .HEAD)
            }
        }
    }

    private func write(context: ChannelHandlerContext, status: HTTPResponseStatus, contentType: String, body: String,
                       keepAlive: Bool, includeBody: Bool) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: "\(body.utf8.count)")
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if includeBody {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.whenComplete { _ in context.close(promise: nil) } }
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
