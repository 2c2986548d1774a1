import Foundation
import Logging
import NATSConfig
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Protocol
import Synchronization

/// brokerd's NATS server: listener, event loops, sublist, authentication, statistics, lame duck and shutdown.
public final class BrokerServer: @unchecked Sendable {
    /// The nats-server protocol level we implement, reported as INFO `version`. Clients pick features from it
    /// (nats-py and nats.go choose the JetStream consumer-create API from it), so it is a SemVer >= 2.9.0.
    public static let natsCompatibleVersion = "2.10.0"
    /// brokerd's own version, reported as INFO `brokerd_version` and by `--version`.
    public static let version = "0.1.0"

    public let serverID: String
    let group: MultiThreadedEventLoopGroup
    let loops: [LoopContext]
    public let sublist = Sublist<Subscription>()
    /// Where clients and the server's own features (JetStream, the Falco ingest) meet: see `SubjectSpace`.
    let subjectSpace: SubjectSpace
    let logger: Logger
    private let optionsLock = NIOLockedValueBox(BrokerOptions())
    /// The client port's TLS context (nil without `tls`): built at start and again on every reload, so new
    /// connections use the certificate files as they are then; a connection keeps the context it started with.
    private let tlsContextBox = NIOLockedValueBox<NIOSSLContext?>(nil)
    /// When the client port's certificate expires (`/varz`), read with each context.
    private let tlsNotAfterBox = NIOLockedValueBox<Date?>(nil)
    var tlsCertificateNotAfter: Date? { tlsNotAfterBox.withLockedValue { $0 } }
    /// `tls { connection_rate_limit }`, nil without one (set at start, as nats-server).
    private let tlsRateLimit = NIOLockedValueBox<TLSRateLimit?>(nil)
    /// Who may connect, as whom, with which permissions: rebuilt with the options (start, reload).
    private let authenticatorLock = NIOLockedValueBox(Authenticator(options: BrokerOptions()))
    /// bcrypt comparisons (tens of milliseconds each) run here, never on an event loop.
    let authPool = NIOThreadPool(numberOfThreads: 1)
    private var listener: (any Channel)?
    private var sweepTask: RepeatedTask?
    private let ownsGroup: Bool

    let connectionCount = Atomic<Int>(0)
    let totalConnections = Atomic<UInt64>(0)
    private let nextClientID = Atomic<UInt64>(0)
    private let slowConsumerTotal = Atomic<UInt64>(0)
    private let lameDuck = Atomic<Bool>(false)
    public let startTime = Date()
    public private(set) var configLoadTime = Date()
    /// The port actually bound (useful with port 0).
    public private(set) var boundPort: Int = 0
    /// JetStream, when enabled (`-js`). Set in `start()` before the first connection is accepted.
    public private(set) var jetStream: JetStream?

    /// `mappings { }`, applied to every published subject (nil when there are none). Fixed at start.
    public private(set) var subjectMapper: SubjectMapper?
    /// Falco ingest counters and limits; `$FALCO.INGEST` (falco-pipe) works on every server.
    public private(set) var falcoIngest: FalcoIngest?
    /// `falco { map_sidekick_subjects: true }`: falcosidekick's `falco.<priority>.<rule>` -> `FALCO.<Priority>`.
    public private(set) var mapSidekickSubjects = false

    public var options: BrokerOptions { optionsLock.withLockedValue { $0 } }

    /// Pub/Sub bridges running in this process (for /varz, /metrics and /healthz).
    private let bridgeStatsBox = NIOLockedValueBox<[BridgeStats]>([])
    public var bridgeStats: [BridgeStats] { bridgeStatsBox.withLockedValue { $0 } }
    public func register(bridge stats: BridgeStats) { bridgeStatsBox.withLockedValue { $0.append(stats) } }

    public var isLameDuck: Bool { lameDuck.load(ordering: .relaxed) }

    /// Opens when `start()` has bound the listener (or fails with its error): the HTTP listeners and the
    /// bridges wait for it (they need the Falco ingest and the bound port).
    private let started = Readiness()

    public init(options: BrokerOptions, logger: Logger, group: MultiThreadedEventLoopGroup? = nil, randomSeed: UInt64? = nil) {
        self.serverID = Self.makeServerID()
        self.logger = logger
        self.ownsGroup = group == nil
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        var seed = randomSeed ?? UInt64.random(in: 0...UInt64.max)
        let sublist = self.sublist
        self.loops = self.group.makeIterator().enumerated().map { index, loop in
            seed &+= 0x9E37_79B9_7F4A_7C15
            return LoopContext(router: Router(index: index, eventLoop: loop, sublist: sublist, random: SplitMix64(seed: seed)))
        }
        self.subjectSpace = SubjectSpace(sublist: sublist, routers: loops.map(\.router))
        optionsLock.withLockedValue { $0 = options }
        authenticatorLock.withLockedValue { $0 = Self.makeAuthenticator(options) }
        authPool.start()
    }

    public var serverName: String { options.serverName ?? serverID }
    var authenticator: Authenticator { authenticatorLock.withLockedValue { $0 } }
    /// Bumped by every reload: a CONNECT verdict made under an older configuration is not used.
    private let authGenerationCounter = Atomic<UInt64>(0)
    var authGeneration: UInt64 { authGenerationCounter.load(ordering: .acquiring) }
    var authRequired: Bool { authenticator.required }

    // MARK: - Lifecycle

    /// Binds the client listener. Returns once clients can connect.
    public func start() async throws {
        do {
            try await bind()
            started.open()
        } catch {
            started.fail(error)
            throw error
        }
    }

    /// Returns once `start()` has bound the listener; throws its error if it failed, or when cancelled.
    public func waitUntilStarted() async throws {
        try await started.wait()
    }

    /// `nats://host:port` to reach this server from this process (loopback when it listens on every address).
    public var localURL: String {
        let host = ["0.0.0.0", "", "::"].contains(options.host) ? "127.0.0.1" : options.host
        return host.contains(":") ? "nats://[\(host)]:\(boundPort)" : "nats://\(host):\(boundPort)"
    }

    private func bind() async throws {
        let opts = options
        if opts.jetStream {
            // As nats-server: <store_dir>/jetstream, or a folder in the temporary directory.
            let base = opts.storeDirectory.map { URL(fileURLWithPath: $0) }
                ?? FileManager.default.temporaryDirectory.appendingPathComponent("brokerd")
            let js = try JetStream(storeDirectory: base, logger: logger)
            js.syncPolicy = opts.jetStreamSync
            js.syncInterval = TimeAmount(opts.jetStreamSyncInterval).nanoseconds
            js.maxMemory = opts.jetStreamMaxMemory
            js.maxStore = opts.jetStreamMaxStore
            js.prepareCaptureBatches(loopCount: loops.count)
            try js.attach(to: subjectSpace)
            jetStream = js
            logger.info("JetStream enabled", metadata: ["store_dir": "\(base.appendingPathComponent("jetstream").path)"])
        }
        if !opts.subjectMappings.isEmpty {
            var mapper = SubjectMapper()
            for m in opts.subjectMappings {
                try mapper.add(source: m.source, destinations: m.destinations.map { ($0.subject, $0.weight) })
            }
            subjectMapper = mapper
        }
        mapSidekickSubjects = opts.mapSidekickSubjects
        let falco = FalcoIngest(maxInFlight: opts.falcoMaxPending, logger: logger)
        try falco.attach(to: subjectSpace, mapSidekickSubjects: opts.mapSidekickSubjects)
        falcoIngest = falco
        if let tls = opts.tls {
            do {
                let context = try TLSContextFactory.makeServerContext(tls)
                tlsContextBox.withLockedValue { $0 = context }
                tlsNotAfterBox.withLockedValue { $0 = TLSContextFactory.certificateNotAfter(tls) }
                if tls.connectionRateLimit > 0 {
                    tlsRateLimit.withLockedValue { $0 = TLSRateLimit(limit: tls.connectionRateLimit) }
                }
            } catch let error as TLSContextError {
                throw ConfigError(file: opts.configFile ?? "tls", line: 0, reason: error.description)
            }
        }
        applyFalcoUser()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 4)  // bounds what one read cycle takes in before a stall can act
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 512, initial: 16384, maximum: 256 * 1024))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try initializeClient(channel)
                }
            }
        let channel = try await bootstrap.bind(host: opts.host, port: opts.port).get()
        listener = channel
        boundPort = channel.localAddress?.port ?? opts.port
        sweepTask = group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
            sweep()
        }
        logger.info("Listening for client connections on \(opts.host):\(boundPort)")
        if let tls = opts.tls {
            // nats-server's notices: handshake_first without a fallback overrides allow_non_tls.
            let handshakeFirstOnly = tls.handshakeFirst && tls.handshakeFirstFallback == nil
            logger.info(opts.allowNonTLS && !handshakeFirstOnly ? "TLS available for client connections" : "TLS required for client connections")
            if handshakeFirstOnly {
                logger.warning("Clients that are not using \"TLS Handshake First\" option will fail to connect")
            }
        }
        warnAboutPlaintextPasswords()
        logger.info("Server is ready", metadata: ["server_id": "\(serverID)", "version": "\(Self.version)"])
    }

    private func initializeClient(_ channel: any Channel) throws {
        guard let loop = loops.first(where: { $0.eventLoop === channel.eventLoop }) else {
            throw ChannelError.ioOnClosedChannel
        }
        let opts = options
        let tlsContext = opts.tls == nil ? nil : tlsContextBox.withLockedValue { $0 }
        var settings = ConnectionSettings(
            maxPayload: opts.maxPayload,
            maxControlLine: opts.maxControlLine,
            maxPending: opts.maxPending,
            pingInterval: TimeAmount(opts.pingInterval),
            pingMax: opts.pingMax,
            writeDeadline: TimeAmount(opts.writeDeadline),
            authTimeout: TimeAmount(Self.authTimeout(opts)),
            authRequired: authRequired
        )
        let id = nextClientID.add(1, ordering: .relaxed).newValue
        let sync = channel.pipeline.syncOperations
        // Unwritable past 75% of max_pending (the fast-producer gate, as nats-server), writable again below 50%.
        try channel.syncOptions?.setOption(.writeBufferWaterMark,
                                           value: .init(low: max(1, opts.maxPending / 2), high: max(2, opts.maxPending / 4 * 3)))
        guard let tls = opts.tls, let tlsContext else {
            try sync.addHandler(ClientConnection(id: id, server: self, router: loop.router, settings: settings,
                                                 loopCount: loops.count, logger: logger))
            return
        }
        // A TLS port: the negotiator goes in front until the connection's start is settled (see TLSNegotiation).
        let mode = TLSNegotiation.Mode(tls, allowNonTLS: opts.allowNonTLS)
        settings.infoFirst = mode.infoFirst
        settings.awaitsTLS = true
        let client = ClientConnection(id: id, server: self, router: loop.router, settings: settings,
                                      loopCount: loops.count, logger: logger)
        let negotiator = TLSNegotiationHandler(negotiation: TLSNegotiation(mode: mode, timeout: tls.effectiveTimeout),
                                               sslContext: tlsContext, tls: tls, client: client, logger: client.logger)
        client.tlsNegotiator = negotiator
        try sync.addHandler(negotiator)
        try sync.addHandler(client)
    }

    /// Users are looked up by the client certificate with `tls { verify_and_map: true }`.
    static func makeAuthenticator(_ options: BrokerOptions) -> Authenticator {
        Authenticator(options: options, mapsCertificates: options.tls?.verifyAndMap ?? false)
    }

    /// nats-server's getDefaultAuthTimeout: with TLS, the TLS timeout plus a second unless authorization sets one.
    /// (brokerd cannot tell an explicit `timeout: 2` from the default, and treats it as the default.)
    static func authTimeout(_ opts: BrokerOptions) -> Duration {
        guard let tls = opts.tls, opts.authTimeout == BrokerOptions().authTimeout else { return opts.authTimeout }
        return tls.effectiveTimeout + .seconds(1)
    }

    /// Stops accepting, flushes and closes every client, closes JetStream and stops the event loops (when we
    /// own them): the steps of graceful shutdown in one call (brokerd runs them as services, see BrokerServices).
    public func shutdown() async {
        await stopAccepting()
        await closeClients()
        closeJetStream()
        await shutdownEventLoops()
    }

    /// Step 1: the listener closes; connected clients stay.
    public func stopAccepting() async {
        logger.info("Initiating Shutdown...")
        try? await listener?.close()
    }

    /// Step 2: every client connection is flushed and closed.
    public func closeClients() async {
        sweepTask?.cancel()
        await closeAllClients()
    }

    /// Step 3: JetStream writes its consumer state and closes its store.
    public func closeJetStream() {
        jetStream?.close()
    }

    /// Last: the event loops stop (when this server made them). Nothing may use them afterwards, the monitor and
    /// Falco HTTP listeners included.
    public func shutdownEventLoops() async {
        try? await authPool.shutdownGracefully()
        if ownsGroup {
            try? await group.shutdownGracefully()
        }
        logger.info("Server Exiting..")
    }

    private func closeAllClients() async {
        await withTaskGroup(of: Void.self) { tasks in
            for loop in loops {
                tasks.addTask {
                    try? await loop.eventLoop.submit {
                        for connection in loop.connections.values { connection.close() }
                    }.get()
                }
            }
        }
    }

    /// Lame-duck mode (SIGUSR2): stop accepting, tell clients (`ldm: true` in INFO) so they move elsewhere,
    /// wait the grace period, then close the clients spread over the rest of the lame-duck duration.
    public func enterLameDuckMode() async {
        guard !lameDuck.exchange(true, ordering: .relaxed) else { return }
        let opts = options
        logger.info("Entering lame duck mode, stop accepting new clients")
        try? await listener?.close()
        for loop in loops {
            loop.eventLoop.execute { [self] in
                // Only clients that speak protocol 1 understand an async INFO (nats-server sends it to those).
                for connection in loop.connections.values where connection.options.protocolVersion >= 1 {
                    connection.sendInfo(infoJSON(clientID: connection.id, clientIP: connection.remoteHost, lameDuck: true))
                }
            }
        }
        try? await Task.sleep(for: opts.lameDuckGracePeriod)
        let clients = await allConnections()
        // As nats-server: spread the closes over the rest of the duration, but never more than 1 s apart.
        let spread = max(Duration.zero, opts.lameDuckDuration - opts.lameDuckGracePeriod)
        let interval = clients.isEmpty ? Duration.zero : min(.seconds(1), spread / clients.count)
        // Below a millisecond apart, close in groups rather than sleeping per client.
        let perPause = interval >= .milliseconds(1) ? 1 : max(1, Int(Duration.milliseconds(1) / max(interval, .nanoseconds(1))))
        for (index, connection) in clients.enumerated() {
            connection.router.eventLoop.execute { connection.close() }
            if (index + 1) % perPause == 0, index + 1 < clients.count {
                try? await Task.sleep(for: max(interval * perPause, .milliseconds(1)))
            }
        }
        logger.info("Lame duck mode: all clients closed")
    }

    /// Applies a reloaded configuration (SIGHUP). Listener address and port changes need a restart; other
    /// settings apply to connections made from now on, and authorization to every new CONNECT.
    /// What else SIGHUP reloads (the HTTPS listeners' certificates): called with the new options.
    private let reloadHooks = NIOLockedValueBox<[@Sendable (BrokerOptions) -> Void]>([])

    public func onReload(_ hook: @escaping @Sendable (BrokerOptions) -> Void) {
        reloadHooks.withLockedValue { $0.append(hook) }
    }

    public func reload(_ newOptions: BrokerOptions) {
        let old = options
        var applied = newOptions
        if applied.host != old.host || applied.port != old.port {
            logger.warning("Reload: host/port changes need a restart; keeping \(old.host):\(old.port)")
            applied.host = old.host
            applied.port = old.port
        }
        if applied.httpPort != old.httpPort {
            logger.warning("Reload: http_port changes need a restart; keeping the monitor where it is")
            applied.httpPort = old.httpPort
        }
        if let tls = applied.tls {
            // The certificate and key files again: new connections get the rotated certificate, open ones keep theirs.
            do {
                let context = try TLSContextFactory.makeServerContext(tls)
                tlsContextBox.withLockedValue { $0 = context }
                tlsNotAfterBox.withLockedValue { $0 = TLSContextFactory.certificateNotAfter(tls) }
            } catch {
                logger.error("Reload: keeping the running TLS configuration: \(error)")
                applied.tls = old.tls
            }
        }
        optionsLock.withLockedValue { $0 = applied }
        let authenticator = Self.makeAuthenticator(applied)
        authenticatorLock.withLockedValue { $0 = authenticator }
        authGenerationCounter.add(1, ordering: .releasing)
        applyFalcoUser()
        configLoadTime = Date()
        if applied.authorization != old.authorization || applied.noAuthUser != old.noAuthUser {
            warnAboutPlaintextPasswords()
            // Connected clients must pass the new rules too.
            for loop in loops {
                loop.eventLoop.execute {
                    for connection in loop.connections.values { connection.recheckAuthorization() }
                }
            }
        }
        for hook in reloadHooks.withLockedValue({ $0 }) { hook(applied) }
        logger.info("Reloaded server configuration")
    }

    // MARK: - Per-connection services

    /// `tlsRequired` overrides the server's own `tls_required` (true after a handshake_first handshake).
    func infoJSON(clientID: UInt64, clientIP: String, lameDuck: Bool = false, nonce: String? = nil,
                  tlsRequired: Bool? = nil) -> String {
        let opts = options
        var info = ServerInfo(
            serverID: serverID, serverName: opts.serverName ?? serverID, version: Self.natsCompatibleVersion,
            host: opts.host, port: boundPort, authRequired: authenticator.infoAuthRequired,
            maxPayload: opts.maxPayload, clientID: clientID, clientIP: clientIP, brokerdVersion: Self.version
        )
        if let tls = opts.tls {
            // nats-server: tls_required unless allow_non_tls, then tls_available; tls_verify with client certificates.
            let required = tlsRequired ?? !opts.allowNonTLS
            if required { info.tlsRequired = true }
            if tls.verify { info.tlsVerify = true }
            if opts.allowNonTLS { info.tlsAvailable = true }
        }
        info.nonce = nonce
        if lameDuck { info.ldm = true }
        if jetStream != nil { info.jetstream = true }
        return info.json()
    }

    /// A client's connection became active / closed (on its loop).
    func register(_ connection: ClientConnection) { loops[connection.router.index].connections[connection.id] = connection }
    func unregister(_ connection: ClientConnection) { loops[connection.router.index].connections[connection.id] = nil }

    /// Counts a new connection; false when that would exceed max_connections.
    func connectionAccepted() -> Bool {
        let count = connectionCount.add(1, ordering: .relaxed).newValue
        totalConnections.add(1, ordering: .relaxed)
        if count > options.maxConnections {
            logger.warning("Maximum connections exceeded", metadata: ["max_connections": "\(options.maxConnections)"])
            return false
        }
        return true
    }

    func connectionClosed() {
        connectionCount.subtract(1, ordering: .relaxed)
    }

    func countSlowConsumer() {
        slowConsumerTotal.add(1, ordering: .relaxed)
    }

    /// Checks a CONNECT (see `Authenticator`) and returns the verdict, or nil when it takes a bcrypt comparison:
    /// that runs on `authPool`, and `later` gets the verdict on `loop`.
    func authenticate(_ connect: ConnectOptions, nonce: [UInt8], certificateIdentities: [String]? = nil,
                      on loop: any EventLoop, later: @escaping @Sendable (Authenticator.Result) -> Void) -> Authenticator.Result? {
        let authenticator = self.authenticator
        guard authenticator.isExpensive(connect) else {
            return authenticator.authenticate(connect, nonce: nonce, certificateIdentities: certificateIdentities)
        }
        authPool.runIfActive(eventLoop: loop) {
            authenticator.authenticate(connect, nonce: nonce, certificateIdentities: certificateIdentities)
        }.whenComplete { result in
            later((try? result.get()) ?? .denied)
        }
        return nil
    }

    /// The Falco ingest publishes as `falco { user }`, with that user's publish permissions.
    private func applyFalcoUser() {
        guard let falcoIngest else { return }
        let authenticator = self.authenticator
        if let name = options.falcoUser {
            let user = authenticator.users[name] ?? authenticator.nkeys[name]
            falcoIngest.publishAs(user?.rules)
        } else {
            falcoIngest.publishAs(nil)
            if authenticator.required, options.falcoHTTPPort != nil {
                logger.warning("The Falco HTTP endpoint publishes without a user: set falco { user: NAME } to limit what it may publish")
            }
        }
    }

    /// nats-server's start-up warning for passwords kept in clear text in the configuration.
    func warnAboutPlaintextPasswords() {
        if authenticator.hasPlaintextPasswords {
            logger.warning("Plaintext passwords detected, use nkeys or bcrypt")
        }
    }

    /// Every second: write-deadline checks on each loop's connections.
    /// Whether one more TLS handshake may begin now (`connection_rate_limit`).
    func allowTLSHandshake() -> Bool {
        tlsRateLimit.withLockedValue { limit in
            guard limit != nil else { return true }
            return limit!.allow(now: .now())
        }
    }

    private func sweep() {
        let now = NIODeadline.now()
        if let blocked = tlsRateLimit.withLockedValue({ $0?.takeBlocked() }), blocked > 0 {
            logger.warning("Rejected \(blocked) connections due to TLS rate limiting")
        }
        for loop in loops {
            loop.eventLoop.execute {
                for connection in loop.connections.values { connection.checkWriteDeadline(now: now) }
            }
        }
    }

    // MARK: - Monitoring snapshots

    func allConnections() async -> [ClientConnection] {
        var all: [ClientConnection] = []
        for loop in loops {
            let some = (try? await loop.eventLoop.submit { Array(loop.connections.values) }.get()) ?? []
            all.append(contentsOf: some)
        }
        return all.sorted { $0.id < $1.id }
    }

    /// Runs `body` on every loop (on that loop) and collects the results.
    func collect<T: Sendable>(_ body: @escaping @Sendable (LoopContext) -> T) async -> [T] {
        var results: [T] = []
        for loop in loops {
            if let value = try? await loop.eventLoop.submit({ body(loop) }).get() { results.append(value) }
        }
        return results
    }

    public var slowConsumers: UInt64 { slowConsumerTotal.load(ordering: .relaxed) }

    private static func makeServerID() -> String {
        // nats-server ids are 56 characters of base32; ours look alike: "N" + 55 random base32 characters.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var generator = SystemRandomNumberGenerator()
        return "N" + String((0..<55).map { _ in alphabet[Int(generator.next() % 32)] })
    }
}

