import Histogram
import Synchronization

/// What one subscriber saw: which sequence numbers arrived (a bitmap, so duplicates and losses are exact),
/// how many arrived out of order, and the end-to-end latency of each.
///
/// `record` runs on the subscriber connection's event loop; the progress reporter and the final tally read
/// from other threads, hence the lock (uncontended: one event loop writes, a reader comes once a second).
final class Tracker: @unchecked Sendable {
    let name: String
    let expected: Int
    private let state: Mutex<State>

    struct State {
        var seen: [UInt64]
        var received = 0
        var distinct = 0
        var duplicated = 0
        var reordered = 0
        /// Messages without a readable stamp, or with a sequence number outside 0..<expected.
        var foreign = 0
        var last: UInt64?
        /// Per lane (falcohttp: per HTTP connection), the last sequence number seen there.
        var lastByLane: [UInt64?] = []
        var firstAt: UInt64 = 0
        var lastAt: UInt64 = 0
        var latency: Histogram<UInt64>
    }

    /// One hour in nanoseconds: anything slower is recorded as one hour.
    static let maxLatencyNanos: UInt64 = 3_600_000_000_000

    static func makeHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: maxLatencyNanos,
                          numberOfSignificantValueDigits: .three)
    }

    /// Order check: `lanes == nil` compares every sequence number with the previous one (one publisher);
    /// `lanes: k` only within each of k lanes (`record(..., lane:)`), since lanes race each other;
    /// `lanes: 0` checks no order at all (falcopipe: the pipe has many alerts in flight at once).
    let lanes: Int?

    init(name: String, expected: Int, lanes: Int? = nil) {
        self.name = name
        self.expected = expected
        self.lanes = lanes
        var initial = State(seen: [UInt64](repeating: 0, count: (expected + 63) / 64), latency: Self.makeHistogram())
        if let lanes { initial.lastByLane = Array(repeating: nil, count: lanes) }
        state = Mutex(initial)
    }

    /// One delivered message, stamped `seq` at `sentAt`, received at `now`.
    @inline(__always)
    func record(seq: UInt64, sentAt: UInt64, now: UInt64, lane: Int = 0) {
        let expected = UInt64(self.expected)
        let perLane = lanes != nil
        state.withLock { state in
            state.received += 1
            state.lastAt = now
            if state.firstAt == 0 { state.firstAt = now }
            guard seq < expected else {
                state.foreign += 1
                return
            }
            let word = Int(seq >> 6), bit = UInt64(1) << (seq & 63)
            if state.seen[word] & bit != 0 {
                state.duplicated += 1
            } else {
                state.seen[word] |= bit
                state.distinct += 1
            }
            if !perLane {
                if let last = state.last, seq < last { state.reordered += 1 }
                state.last = seq
            } else if lane >= 0, lane < state.lastByLane.count {
                if let last = state.lastByLane[lane], seq < last { state.reordered += 1 }
                state.lastByLane[lane] = seq
            }
            state.latency.record(min(now &- min(sentAt, now), Tracker.maxLatencyNanos))
        }
    }

    func recordForeign() {
        state.withLock { state in
            state.received += 1
            state.foreign += 1
        }
    }

    var received: Int { state.withLock { $0.received } }
    var distinct: Int { state.withLock { $0.distinct } }
    func snapshot() -> State { state.withLock { $0 } }
}

/// The integrity and latency figures of a group of trackers.
struct Tally {
    var delivered = 0
    var lost = 0
    var duplicated = 0
    var reordered = 0
    var foreign = 0
    var lastAt: UInt64 = 0
    var latency = Tracker.makeHistogram()

    /// Every tracker must see every sequence number (pubsub, fanout, wildcard, falco).
    static func independent(_ trackers: [Tracker]) -> Tally {
        var tally = Tally()
        for tracker in trackers {
            let s = tracker.snapshot()
            tally.add(s)
            tally.duplicated += s.duplicated
            tally.lost += tracker.expected - s.distinct
        }
        return tally
    }

    /// The trackers together must see each sequence number exactly once (a queue group: each message goes to
    /// one member). A number seen by two members is a duplicate just like one seen twice by the same member.
    static func group(_ trackers: [Tracker]) -> Tally {
        var tally = Tally()
        guard let expected = trackers.first?.expected else { return tally }
        var union = [UInt64](repeating: 0, count: (expected + 63) / 64)
        var distinctSum = 0
        for tracker in trackers {
            let s = tracker.snapshot()
            tally.add(s)
            tally.duplicated += s.duplicated
            distinctSum += s.distinct
            for i in union.indices { union[i] |= s.seen[i] }
        }
        let unionCount = union.reduce(0) { $0 + $1.nonzeroBitCount }
        tally.duplicated += distinctSum - unionCount
        tally.lost = expected - unionCount
        return tally
    }

    private mutating func add(_ s: Tracker.State) {
        delivered += s.received - s.foreign
        reordered += s.reordered
        foreign += s.foreign
        lastAt = max(lastAt, s.lastAt)
        latency.add(s.latency)
    }
}
