import ClientLib

/// What the bridge does after a publish request failed: Google's rules for Pub/Sub publish.
public enum PublishFailure: Error, Sendable, Equatable {
    /// The request got an HTTP error with Google's error body (`error.status`, e.g. "UNAVAILABLE").
    case http(code: Int, status: String?, message: String)
    /// No answer in time.
    case timeout
    /// The connection failed (refused, reset, DNS...).
    case connection(String)

    public var description: String {
        switch self {
        case .http(let code, let status, let message): "HTTP \(code)\(status.map { " \($0)" } ?? ""): \(message)"
        case .timeout: "timed out"
        case .connection(let reason): "connection failed: \(reason)"
        }
    }
}

/// Retry decisions and backoff, as plain values (the clock and the random numbers are passed in).
public struct RetryPolicy: Sendable, Equatable {
    /// Google's publisher defaults: 100 ms, x4, up to 60 s, drawn from [delay / 2, delay].
    public var backoff = Backoff(initial: .milliseconds(100), factor: 4, cap: .seconds(60), spread: 0.5...1)

    /// The cap in nanoseconds (`gcp_pubsub.max_backoff`).
    public var maxDelay: Int64 {
        get { backoff.cap.nanoseconds }
        set { backoff.cap = .nanoseconds(newValue) }
    }

    public init() {}

    public enum Decision: Sendable, Equatable {
        /// Try the same request again after this many nanoseconds.
        case retry(after: Int64)
        /// Pub/Sub will never take it as it is. For a batch of more than one message the bridge splits it
        /// and tries each message alone; a single message goes to the dead-letter subject.
        case reject(String)
        /// The credentials are wrong or lack permission, or the topic does not exist: retrying the same
        /// request will not help until someone fixes the setup, but nothing may be lost, so the bridge keeps
        /// trying (slowly) and reports the error.
        case misconfigured(String)
    }

    /// `attempt` counts failures of this request so far (1 after the first).
    public func decide(_ failure: PublishFailure, attempt: Int, random: Double) -> Decision {
        switch failure {
        case .timeout, .connection:
            return .retry(after: delay(attempt: attempt, random: random))
        case .http(let code, let status, let message):
            switch (status ?? "").uppercased() {
            case "ABORTED", "CANCELLED", "DEADLINE_EXCEEDED", "INTERNAL", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "UNKNOWN":
                return .retry(after: delay(attempt: attempt, random: random))
            case "INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE":
                return .reject(message)
            case "UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_FOUND":
                return .misconfigured(failure.description)
            default:
                break
            }
            switch code {
            case 409, 429, 499, 500, 502, 503, 504:
                return .retry(after: delay(attempt: attempt, random: random))
            case 400, 413:
                return .reject(message)
            case 401, 403, 404:
                return .misconfigured(failure.description)
            default:
                // Anything else (an unexpected proxy answer, say): retry rather than lose the alerts.
                return .retry(after: delay(attempt: attempt, random: random))
            }
        }
    }

    /// Exponential backoff with jitter (nanoseconds); `random` in [0, 1).
    public func delay(attempt: Int, random: Double) -> Int64 {
        backoff.delay(attempt: attempt, random: random).nanoseconds
    }
}

extension Duration {
    /// Whole nanoseconds.
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}
