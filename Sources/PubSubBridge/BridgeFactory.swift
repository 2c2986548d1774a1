import AsyncHTTPClient
import Broker
import ClientLib
import Foundation
import Logging

extension PubSubBridge {
    /// A bridge for `config` that reaches brokerd at `servers` (with these credentials and TLS) and Pub/Sub over
    /// `httpClient`: the emulator (PUBSUB_EMULATOR_HOST, or a plain-HTTP endpoint) without credentials,
    /// otherwise the service-account key in `config.credentials`, otherwise the metadata server.
    public static func make(config: BridgeConfig, servers: [String], authorization: BrokerOptions.Authorization?,
                            tls: NATSTLSOptions = NATSTLSOptions(), httpClient: HTTPClient, environment: [String: String] = ProcessInfo.processInfo.environment,
                            logger: Logger) throws -> PubSubBridge {
        var nats = NATSOptions(servers: servers)
        if config.natsUser != nil || config.natsToken != nil {
            // The bridge's own user (gcp_pubsub { user, password } or { token }).
            nats.user = config.natsUser
            nats.password = config.natsPassword
            nats.token = config.natsToken
        } else {
            nats.token = authorization?.token
            nats.user = authorization?.user
            nats.password = authorization?.password
        }
        nats.tls = tls
        var env = environment
        if let endpoint = config.endpoint, endpoint.hasPrefix("http://") {
            // A plain-HTTP endpoint is an emulator: no credentials, whatever the environment says.
            env["PUBSUB_EMULATOR_HOST"] = String(endpoint.dropFirst("http://".count))
        }
        let credentials = try PubSubCredentials.resolve(keyPath: config.credentials, environment: env)
        let tokens = TokenProvider(credentials: credentials, httpClient: httpClient)
        let transport = PubSubHTTPTransport(config: config, client: httpClient, tokens: tokens, environment: env)
        var policy = RetryPolicy()
        policy.backoff.cap = config.maxBackoff
        return PubSubBridge(config: config, nats: nats, transport: transport, logger: logger, policy: policy)
    }
}
