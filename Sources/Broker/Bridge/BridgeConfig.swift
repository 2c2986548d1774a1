/// One `gcp_pubsub { }` block (parsed by ConfigLoader, run by the PubSubBridge target): which subjects go to which Pub/Sub topic, and how.
public struct BridgeConfig: Sendable, Equatable {
    public var project: String
    public var topic: String
    /// Subjects to bridge; a stream capturing them is used (or created) with a durable consumer.
    public var subjects: [String] = ["FALCO.>"]
    public var orderingKey: OrderingKey = .none
    /// Static attributes added to every message.
    public var attributes: [String: String] = [:]
    /// A service-account JSON key; without it: the emulator (PUBSUB_EMULATOR_HOST) or the metadata server.
    public var credentials: String?
    /// How the bridge logs in to brokerd (its own user, with its own permissions, when `authorization` lists
    /// users): `user`/`password` or `token` in the block. Without them the bridge in brokerd uses the single
    /// token or user of `authorization`, and `brokerd bridge` its command-line credentials.
    public var natsUser: String?
    public var natsPassword: String?
    public var natsToken: String?
    /// The stream to read; default: one that captures `subjects`, else `BRIDGE_<TOPIC>` is created.
    public var stream: String?
    /// The durable consumer's name; default `bridge_<topic>`.
    public var durable: String?
    /// The API root, e.g. `https://pubsub.googleapis.com` (default) or `http://127.0.0.1:8085`
    /// (PUBSUB_EMULATOR_HOST sets this too).
    public var endpoint: String?
    /// Google's client defaults: 100 messages, 1 MB or 10 ms, whichever comes first.
    public var batchMessages = 100
    public var batchBytes = 1_000_000
    public var batchDelay: Duration = .milliseconds(10)
    /// Requests in flight at once (without an ordering key; with one, one batch per key).
    public var maxInFlight = 4
    /// Per-request timeout.
    public var requestTimeout: Duration = .seconds(30)
    /// The longest wait between retries (Google's default: 60 s).
    public var maxBackoff: Duration = .seconds(60)

    /// The Falco field whose value orders messages in Pub/Sub (none: no ordering).
    public enum OrderingKey: String, Sendable, Equatable {
        case none, hostname, rule
    }

    public init(project: String, topic: String) {
        self.project = project
        self.topic = topic
    }

    /// `BRIDGE.DLQ.<topic>`: messages Pub/Sub will never accept, with the reason in `Bridge-Reason`.
    public var deadLetterSubject: String { "BRIDGE.DLQ." + Self.token(topic) }

    public var durableName: String { durable ?? "bridge_" + Self.token(topic) }

    public var defaultStreamName: String { "BRIDGE_" + Self.token(topic).uppercased() }

    /// A name usable as a subject token, stream or consumer name.
    static func token(_ text: String) -> String {
        String(text.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
    }
}
