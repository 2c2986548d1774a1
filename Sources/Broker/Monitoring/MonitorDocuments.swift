import Foundation
import NIOCore

/// The monitoring documents: nats-server's /varz, /connz, /subsz and /jsz (their main fields) and brokerd's own
/// sections (falco, bridges), built from one `BrokerMetrics.Snapshot` per request.
extension MonitorServer {
    /// The counters of every loop summed once, recorded into the metrics; /varz, /subsz and /metrics read it.
    func snapshot() async -> BrokerMetrics.Snapshot {
        let parts = await broker.collect { loop in
            let r = loop.router
            return LoopTotals(inMsgs: r.inMsgs, inBytes: r.inBytes, outMsgs: r.outMsgs, outBytes: r.outBytes,
                              cacheEntries: r.cacheEntries, cacheHits: r.cacheHits, cacheMisses: r.cacheMisses)
        }
        var s = BrokerMetrics.Snapshot()
        for t in parts {
            s.inMsgs += t.inMsgs; s.inBytes += t.inBytes; s.outMsgs += t.outMsgs; s.outBytes += t.outBytes
            s.cacheEntries += t.cacheEntries; s.cacheHits += t.cacheHits; s.cacheMisses += t.cacheMisses
        }
        s.connections = broker.connectionCount.load(ordering: .relaxed)
        s.totalConnections = broker.totalConnections.load(ordering: .relaxed)
        s.subscriptions = broker.sublist.count
        s.slowConsumers = broker.slowConsumers
        s.lameDuck = broker.isLameDuck
        s.uptime = Date().timeIntervalSince(broker.startTime)
        s.bridges = broker.bridgeStats.map { $0.snapshot() }
        s.falco = broker.falcoIngest?.snapshot()
        metrics.record(s)
        return s
    }

    /// One loop's plain counters (read on that loop).
    struct LoopTotals: Sendable {
        var inMsgs: UInt64, inBytes: UInt64, outMsgs: UInt64, outBytes: UInt64
        var cacheEntries: Int, cacheHits: UInt64, cacheMisses: UInt64
    }

    func varz(_ t: BrokerMetrics.Snapshot) -> [String: Any] {
        let opts = broker.options
        let now = Date()
        var document: [String: Any] = [
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
            "http_port": secure ? 0 : boundPort,
            "https_port": secure ? boundPort : 0,
            "max_control_line": opts.maxControlLine,
            "max_payload": opts.maxPayload,
            "max_pending": opts.maxPending,
            "write_deadline": Self.nanoseconds(opts.writeDeadline),
            "start": Self.timestamp(broker.startTime),
            "now": Self.timestamp(now),
            "uptime": Self.uptime(now.timeIntervalSince(broker.startTime)),
            "mem": Self.residentMemory(),
            "cores": ProcessInfo.processInfo.activeProcessorCount,
            "connections": t.connections,
            "total_connections": t.totalConnections,
            "routes": 0,
            "remotes": 0,
            "leafnodes": 0,
            "in_msgs": t.inMsgs,
            "out_msgs": t.outMsgs,
            "in_bytes": t.inBytes,
            "out_bytes": t.outBytes,
            "slow_consumers": t.slowConsumers,
            "subscriptions": t.subscriptions,
            "config_load_time": Self.timestamp(broker.configLoadTime),
            "lame_duck_mode": t.lameDuck,
            "falco": falcoz(t.falco),
            "bridges": t.bridges.map { Self.bridgez($0) },
            // nats-server: the handshake timeout in seconds, TLS or not.
            "tls_timeout": (opts.tls ?? TLSConfig()).effectiveTimeout / .seconds(1),
        ]
        if let tls = opts.tls {
            if !opts.allowNonTLS { document["tls_required"] = true }
            if tls.verify { document["tls_verify"] = true }
            if let notAfter = broker.tlsCertificateNotAfter {
                document["tls_cert_not_after"] = Self.goRFC3339Nano(Self.timestamp(notAfter))
            }
        }
        return document
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
    func falcoz(_ snapshot: FalcoIngest.Snapshot?) -> [String: Any] {
        let opts = broker.options
        guard let s = snapshot else { return [:] }
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
            // brokerd's own: what went wrong with the disk, and what it cost (nats-server has no such field).
            "storage_faults": [
                "sync_failures": s.faults.syncFailures,
                "messages_taken_back": s.faults.messagesTakenBack,
                "last_failure": s.faults.last.map { ["stream": $0.stream, "error": $0.error, "at": $0.at] as [String: Any] } ?? NSNull(),
                "damage_found_at_start": s.faults.damage.map { d -> [String: Any] in
                    var o: [String: Any] = ["stream": d.stream, "file": d.file, "offset": d.offset, "bytes": d.bytes, "outcome": d.outcome]
                    if let consumer = d.consumer { o["consumer"] = consumer }
                    if let first = d.lostFirst { o["lost_first_seq"] = first; o["lost_last_seq"] = d.lostLast ?? first }
                    return o
                },
            ] as [String: Any],
        ]
    }

    func subsz() async -> [String: Any] {
        let t = await snapshot()
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

    // MARK: - Formatting

    /// RFC 3339 with nanoseconds and `Z`, as nats-server writes times.
    static func timestamp(_ date: Date) -> String {
        // RFC 3339 with nanoseconds (nats-server's RFC3339Nano); a new ISO8601DateFormatter per call cost more
        // than the rest of /varz.
        JetStream.timestamp(date)
    }

    /// Go's RFC3339Nano drops trailing zeros of the fraction (and the dot): `2026-12-04T17:25:14Z`.
    static func goRFC3339Nano(_ stamp: String) -> String {
        guard let dot = stamp.lastIndex(of: "."), stamp.hasSuffix("Z") else { return stamp }
        var fraction = stamp[stamp.index(after: dot)..<stamp.index(before: stamp.endIndex)]
        while fraction.last == "0" { fraction = fraction.dropLast() }
        return stamp[..<dot] + (fraction.isEmpty ? "" : "." + fraction) + "Z"
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
