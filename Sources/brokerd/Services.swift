import AsyncHTTPClient
import Foundation
import Broker
import Logging
import ClientLib
import PubSubBridge
import ServiceLifecycle
import UnixSignals

/// SIGHUP reloads the configuration; SIGUSR2 enters lame-duck mode, and once lame duck has closed every client
/// this service returns, which shuts the group down gracefully (as nats-server exits after lame duck).
/// The signals are trapped by the caller before the listener binds.
struct SignalService: Service, CustomStringConvertible {
    let signals: UnixSignalsSequence
    let server: BrokerServer
    let reload: @Sendable () -> Void
    var description: String { "signals" }

    func run() async {
        let (lameDuckRequests, requestLameDuck) = AsyncStream.makeStream(of: Void.self)
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                for await signal in signals {
                    if signal == .sighup {
                        reload()
                    } else if signal == .sigusr2 {
                        requestLameDuck.yield()
                    }
                }
            }
            tasks.addTask {
                // Beside the signal loop, so SIGHUP is still handled during lame duck.
                for await _ in lameDuckRequests {
                    await server.enterLameDuckMode()
                    return
                }
            }
            tasks.addTask { try? await gracefulShutdown() }
            await tasks.next()
            tasks.cancelAll()
        }
        requestLameDuck.finish()
    }
}

/// One Pub/Sub bridge inside brokerd: made once the broker listens (it connects over loopback to the bound
/// port), its stats registered for /varz, /metrics and /healthz, then run (it drains on graceful shutdown).
/// A bridge that cannot be made (an unreadable key, say) is a configuration error: brokerd stops.
struct BridgeService: Service, CustomStringConvertible {
    let server: BrokerServer
    let config: BridgeConfig
    let httpClient: HTTPClient
    let logger: Logger
    var description: String { "Pub/Sub bridge \(config.project)/\(config.topic)" }

    func run() async throws {
        try await server.waitUntilStarted()
        let bridge: PubSubBridge
        do {
            bridge = try PubSubBridge.make(config: config, servers: [server.localURL], authorization: server.options.authorization,
                                           tls: Self.loopbackTLS(server.options), httpClient: httpClient, logger: logger)
        } catch {
            logger.error("Pub/Sub bridge cannot start", metadata: ["topic": "\(config.topic)", "error": "\(error)"])
            throw error
        }
        server.register(bridge: bridge.stats)
        await bridge.run()
    }
}

extension BridgeService {
    /// How a client inside brokerd reaches its own TLS port over loopback: TLS (unless `allow_non_tls` lets it
    /// in plain), accepting exactly brokerd's own certificate (loopback's address is not in it, and no CA is
    /// needed to trust ourselves), handshake first when the port wants it, and brokerd's own certificate and key
    /// as the client certificate when the port verifies clients (it must then chain to `ca_file` and allow
    /// client authentication).
    static func loopbackTLS(_ options: BrokerOptions) -> NATSTLSOptions {
        var client = NATSTLSOptions()
        guard let tls = options.tls, !options.allowNonTLS else { return client }
        client.enabled = true
        client.pinnedServerCertificateFile = tls.certFile
        client.handshakeFirst = tls.handshakeFirst
        if tls.verify {
            client.certFile = tls.certFile
            client.keyFile = tls.keyFile
        }
        return client
    }
}

/// The bridges' HTTP client: listed before them, so it shuts down after they have drained.
struct HTTPClientService: Service, CustomStringConvertible {
    let client: HTTPClient
    var description: String { "Pub/Sub HTTP client" }

    func run() async throws {
        try? await gracefulShutdown()
        try await client.shutdown()
    }
}

/// Certificate rotation without a signal: every `interval` it looks at the certificate, key and CA files of the
/// client port's `tls { }` and of `falco { tls { } }` (size and modification time, following symlinks, so a
/// Kubernetes Secret volume's atomic swap counts), and when one changed it reloads as SIGHUP does. cert-manager
/// renews the Secret, the kubelet updates the mounted files, and brokerd serves the new certificate to new
/// connections without a restart; open connections keep their session.
struct CertificateWatchService: Service, CustomStringConvertible {
    let server: BrokerServer
    let interval: Duration
    let logger: Logger
    let reload: @Sendable () -> Void
    var description: String { "certificate watch" }

    static func files(of options: BrokerOptions) -> [String] {
        [options.tls, options.falcoTLS].compactMap { $0 }.flatMap { [$0.certFile, $0.keyFile, $0.caFile].compactMap { $0 } }
    }

    static func fingerprint(_ paths: [String]) -> [String] {
        paths.map { path in
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: URL(fileURLWithPath: path).resolvingSymlinksInPath().path)
            else { return "\(path): missing" }
            let size = (attributes[.size] as? NSNumber)?.int64Value ?? -1
            let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return "\(path): \(size) \(modified)"
        }
    }

    func run() async {
        var seen = Self.fingerprint(Self.files(of: server.options))
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            // Graceful shutdown cuts the wait short.
            guard (try? await cancelWhenGracefulShutdown({ try await Task.sleep(for: interval) })) != nil else { return }
            let files = Self.files(of: server.options)
            guard !files.isEmpty else { continue }
            let now = Self.fingerprint(files)
            if now != seen {
                logger.info("Certificate files changed: reloading", metadata: ["files": "\(files)"])
                reload()
                seen = Self.fingerprint(Self.files(of: server.options))
            }
        }
    }
}
