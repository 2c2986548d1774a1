/// Exponential backoff with a cap and jitter, as a plain value: the random number is passed in, so a test
/// (or a caller with its own generator) decides it. The one retry schedule of ClientLib's reconnects, the
/// Pub/Sub bridge's publish retries and `brokerd falco-pipe`'s resends.
///
/// Attempt n (1 after the first failure) waits `initial × factor^(n-1)`, at most `cap`, then jittered:
/// multiplied by a factor drawn from `spread`, plus up to `extra`.
///
/// ```swift
/// let backoff = Backoff(initial: .milliseconds(100), factor: 4, cap: .seconds(60), spread: 0.5...1)  // Google's
/// try await Task.sleep(for: backoff.delay(attempt: attempt))
/// ```
public struct Backoff: Sendable, Equatable {
    public var initial: Duration
    public var factor: Double
    public var cap: Duration
    /// The capped delay is multiplied by a factor drawn uniformly from this range: `0.5...1` draws from
    /// [d/2, d] (Google's clients), `1...1.5` from [d, 1.5 d], `1...1` means no proportional jitter.
    public var spread: ClosedRange<Double>
    /// Up to this much more, drawn uniformly (the NATS clients' `reconnect_jitter`).
    public var extra: Duration

    public init(initial: Duration, factor: Double, cap: Duration, spread: ClosedRange<Double> = 1...1,
                extra: Duration = .zero) {
        self.initial = initial
        self.factor = factor
        self.cap = cap
        self.spread = spread
        self.extra = extra
    }

    /// The delay before retry `attempt` (1 after the first failure; below 1 counts as 1); `random` in [0, 1]
    /// picks the jitter: 0 the shortest, 1 the longest.
    public func delay(attempt: Int, random: Double) -> Duration {
        let capNanos = Self.nanoseconds(cap)
        var d = Self.nanoseconds(initial)
        // Multiply step by step and stop at the cap: no overflow for any attempt count.
        for _ in 1..<max(attempt, 1) {
            d *= factor
            if d >= capNanos { break }
        }
        d = min(d, capNanos)
        let r = min(max(random, 0), 1)
        let scaled = d * (spread.lowerBound + (spread.upperBound - spread.lowerBound) * r)
        return .nanoseconds(Int64(scaled) + Int64(Self.nanoseconds(extra) * r))
    }

    /// `delay(attempt:random:)` with a random number from `generator`.
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        delay(attempt: attempt, random: Double.random(in: 0...1, using: &generator))
    }

    /// `delay(attempt:random:)` with the system's random numbers.
    public func delay(attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }

    static func nanoseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds / 1_000_000_000)
    }
}
