import Logging
import ServiceLifecycle

/// A listener with `start(host:port:)` and `stop()`: the monitor and the Falco HTTP endpoint.
public protocol StartStopListener: Sendable {
    func start(host: String, port: Int) async throws
    func stop() async
}

extension MonitorServer: StartStopListener {}
extension FalcoHTTPServer: StartStopListener {}

/// Runs a `StartStopListener` as a `Service`: made and started once the broker listens (they need its Falco
/// ingest and event loops), stopped (no more connections accepted) on graceful shutdown. An adapter until
/// those servers are services themselves.
public struct ListenerService<Listener: StartStopListener>: Service, CustomStringConvertible {
    public let description: String
    let broker: BrokerServer
    let host: String
    let port: Int
    let make: @Sendable () throws -> Listener

    public init(_ name: String, broker: BrokerServer, host: String, port: Int, make: @escaping @Sendable () throws -> Listener) {
        self.description = name
        self.broker = broker
        self.host = host
        self.port = port
        self.make = make
    }

    public func run() async throws {
        try await broker.waitUntilStarted()
        let listener = try make()
        try await listener.start(host: host, port: port)
        try? await gracefulShutdown()
        await listener.stop()
    }
}

extension ListenerService where Listener == MonitorServer {
    /// The monitor (`http_port`, or `https_port` with the top-level `tls { }`), when the options ask for one
    /// (`BrokerOptions.monitorProblem` has said whether they can).
    public static func monitor(of broker: BrokerServer, logger: Logger) -> ListenerService? {
        let options = broker.options
        if let port = options.httpPort {
            return ListenerService("monitor", broker: broker, host: options.httpHost ?? options.host, port: port) {
                try MonitorServer(broker: broker, logger: logger)
            }
        }
        guard let port = options.httpsPort, let tls = options.tls else { return nil }
        return ListenerService("monitor (https)", broker: broker, host: options.httpHost ?? options.host, port: port) {
            try MonitorServer(broker: broker, tls: tls, logger: logger)
        }
    }
}

extension ListenerService where Listener == FalcoHTTPServer {
    /// Falco's http_output endpoint (`falco_http_port`), when the options ask for one.
    public static func falco(of broker: BrokerServer, logger: Logger) -> ListenerService? {
        let options = broker.options
        guard let port = options.falcoHTTPPort else { return nil }
        return ListenerService("Falco HTTP", broker: broker, host: options.falcoHTTPHost ?? options.host, port: port) {
            guard let falco = broker.falcoIngest else { throw ListenerServiceError.notStarted }
            return try FalcoHTTPServer(broker: broker, falco: falco, maxBody: options.falcoMaxBody,
                                       idleTimeout: options.falcoIdleTimeout, tls: options.falcoTLS, logger: logger)
        }
    }
}

enum ListenerServiceError: Error {
    /// The broker's start did not set up what the listener needs (cannot happen after `waitUntilStarted`).
    case notStarted
}
