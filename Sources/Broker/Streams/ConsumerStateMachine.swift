/// The delivery and acknowledgement rules of one JetStream consumer, as plain values: which stream message to
/// deliver next, when to redeliver, when to pause (max_ack_pending) and when to give up (max_deliver).
/// Time is passed in (nanoseconds), so every rule is tested without a clock; the server layer that sends
/// messages and parses `$JS.ACK` replies drives it. Its state encodes to bytes so a consumer resumes from its
/// ack floor after a restart.
struct ConsumerStateMachine: Equatable {
    enum AckPolicy: String, Codable, Sendable { case none, all, explicit }

    struct Configuration: Equatable, Sendable {
        var ackPolicy: AckPolicy = .explicit
        /// Nanoseconds before an unacknowledged delivery is redelivered (nats-server default 30 s).
        var ackWait: Int64 = 30_000_000_000
        /// Redelivery delays by delivery count; when set they replace ackWait (the last one repeats).
        var backoff: [Int64] = []
        /// -1 = unlimited.
        var maxDeliver: Int = -1
        /// Deliveries awaiting an ack at most; at the limit delivery pauses until acks arrive. -1 = unlimited.
        var maxAckPending: Int = 1000
    }

    struct Pending: Equatable {
        var consumerSequence: UInt64
        var deadline: Int64
    }

    struct Delivery: Equatable {
        var streamSequence: UInt64
        var consumerSequence: UInt64
        /// 1 for the first delivery, 2 for the first redelivery...
        var deliveryCount: Int
    }

    var configuration: Configuration
    /// The last stream sequence handed out for the first time.
    private(set) var deliveredStream: UInt64
    /// Consumer sequences count every delivery, redeliveries included.
    private(set) var deliveredConsumer: UInt64 = 0
    /// Everything at or below this stream sequence is acknowledged (or needs no ack).
    private(set) var ackFloorStream: UInt64
    private(set) var pending: [UInt64: Pending] = [:]
    private(set) var deliveryCounts: [UInt64: Int] = [:]
    /// Stream sequences that hit max_deliver (for the max-deliveries advisory), oldest first.
    private(set) var exhausted: [UInt64] = []
    /// Counts the changes to what `encoded()` holds (deliveries, acks, naks, terms, undeliveries): the caller
    /// writes the state again only after a change.
    private(set) var revision: UInt64 = 0
    /// No pending deadline is earlier than this, so `next` scans `pending` only when a redelivery can be due
    /// (without it, every delivery cost a pass over up to max_ack_pending entries).
    private var earliestDeadline: Int64 = .max

    /// `startSequence` is the first stream sequence to consider (from the deliver policy).
    init(configuration: Configuration, startSequence: UInt64) {
        self.configuration = configuration
        self.deliveredStream = startSequence > 0 ? startSequence - 1 : 0
        self.ackFloorStream = deliveredStream
    }

    var isPaused: Bool {
        configuration.ackPolicy != .none && configuration.maxAckPending >= 0 && pending.count >= configuration.maxAckPending
    }

    /// The next delivery, or nil when there is nothing to send now (caught up, or paused at max_ack_pending).
    /// `available(seq)` says whether the stream holds `seq` and it passes the consumer's filter; `skipTo(seq)`,
    /// when given, the first sequence at or after `seq` that may pass it (nil: none), so that a consumer of a
    /// few subjects jumps over the others' messages instead of reading each one.
    mutating func next(now: Int64, lastSequence: UInt64, available: (UInt64) -> Bool,
                       skipTo: ((UInt64) -> UInt64?)? = nil) -> Delivery? {
        // Redeliveries first, oldest first, once their deadline has passed. A loop, not recursion: after a
        // purge thousands of pending entries may be dropped in one call.
        while now >= earliestDeadline, let due = nextDue(now: now) {
            let count = (deliveryCounts[due] ?? 1)
            if configuration.maxDeliver > 0 && count >= configuration.maxDeliver {
                // Given up on: no more deliveries; counts as handled for the ack floor.
                revision &+= 1
                pending[due] = nil
                deliveryCounts[due] = nil
                exhausted.append(due)
                advanceAckFloor()
                continue
            }
            if !available(due) {  // removed from the stream meanwhile
                revision &+= 1
                pending[due] = nil
                deliveryCounts[due] = nil
                advanceAckFloor()
                continue
            }
            return deliver(due, count: count + 1, now: now)
        }
        if isPaused { return nil }
        var candidate = deliveredStream + 1
        while candidate <= lastSequence {
            if let skipTo {
                guard let next = skipTo(candidate), next <= lastSequence else { break }
                candidate = next
            }
            if available(candidate) {
                deliveredStream = candidate
                return deliver(candidate, count: 1, now: now)
            }
            candidate += 1
        }
        if lastSequence > deliveredStream {
            revision &+= 1  // passed over what it does not take
            deliveredStream = lastSequence
        }
        if pending.isEmpty, deliveredStream > ackFloorStream {
            revision &+= 1
            ackFloorStream = deliveredStream
        }
        return nil
    }

    /// Due sequences found by the last scan, lowest first (consumed from the end): one pass over `pending`
    /// serves many redeliveries, instead of one pass each.
    private var dueQueue: [UInt64] = []

    /// The next pending sequence whose deadline has passed; refreshes `earliestDeadline` when none has.
    private mutating func nextDue(now: Int64) -> UInt64? {
        while let s = dueQueue.popLast() {
            if let entry = pending[s], entry.deadline <= now { return s }
        }
        var due: [UInt64] = []
        var earliest = Int64.max
        for (sequence, entry) in pending {
            if entry.deadline <= now {
                due.append(sequence)
            } else if entry.deadline < earliest {
                earliest = entry.deadline
            }
        }
        guard !due.isEmpty else {
            earliestDeadline = earliest
            return nil
        }
        dueQueue = due.sorted(by: >)
        return dueQueue.popLast()
    }

    private mutating func deliver(_ sequence: UInt64, count: Int, now: Int64) -> Delivery {
        revision &+= 1
        deliveredConsumer += 1
        if configuration.ackPolicy == .none {
            ackFloorStream = max(ackFloorStream, sequence)
        } else {
            let deadline = now.saturatingAdd(wait(forDelivery: count))
            earliestDeadline = min(earliestDeadline, deadline)
            pending[sequence] = Pending(consumerSequence: deliveredConsumer, deadline: deadline)
            deliveryCounts[sequence] = count
        }
        return Delivery(streamSequence: sequence, consumerSequence: deliveredConsumer, deliveryCount: count)
    }

    private func wait(forDelivery count: Int) -> Int64 {
        // 0 or less means "the default" (nats-server: 30 s); it must never make a delivery due at once, or a
        // consumer would redeliver in a tight loop.
        let ackWait = configuration.ackWait > 0 ? configuration.ackWait : 30_000_000_000
        guard !configuration.backoff.isEmpty else { return ackWait }
        let step = configuration.backoff[min(count - 1, configuration.backoff.count - 1)]
        return step > 0 ? step : ackWait
    }

    /// +ACK (or an empty body). Under ack policy all, it acknowledges everything up to `sequence`.
    mutating func ack(_ sequence: UInt64) {
        revision &+= 1
        switch configuration.ackPolicy {
        case .none:
            return
        case .explicit:
            pending[sequence] = nil
            deliveryCounts[sequence] = nil
        case .all:
            for s in pending.keys where s <= sequence {
                pending[s] = nil
                deliveryCounts[s] = nil
            }
        }
        advanceAckFloor()
    }

    /// -NAK: redeliver after `delay` nanoseconds (0 = now).
    mutating func nak(_ sequence: UInt64, delay: Int64 = 0, now: Int64) {
        revision &+= 1
        guard pending[sequence] != nil else { return }
        let deadline = now.saturatingAdd(max(0, delay))
        pending[sequence]?.deadline = deadline
        earliestDeadline = min(earliestDeadline, deadline)
    }

    /// A delivery that never left (a pull request too small for it): undone exactly, so it costs no delivery
    /// attempt (max_deliver) and goes to the next request as it would have (nats-server does the same).
    mutating func undeliver(_ delivery: Delivery, now: Int64) {
        revision &+= 1
        let sequence = delivery.streamSequence
        deliveredConsumer -= 1
        if delivery.deliveryCount <= 1 {
            // A new message: the consumer had not got to it.
            pending[sequence] = nil
            deliveryCounts[sequence] = nil
            deliveredStream = min(deliveredStream, sequence - 1)
            ackFloorStream = min(ackFloorStream, deliveredStream)
        } else {
            // A redelivery: still pending, due at once, with the count it had.
            deliveryCounts[sequence] = delivery.deliveryCount - 1
            pending[sequence]?.deadline = now
            earliestDeadline = min(earliestDeadline, now)
        }
    }

    /// +WPI: still working on it; the ack wait starts again.
    mutating func inProgress(_ sequence: UInt64, now: Int64) {
        guard pending[sequence] != nil else { return }
        let deadline = now.saturatingAdd(wait(forDelivery: deliveryCounts[sequence] ?? 1))
        pending[sequence]?.deadline = deadline
    }

    /// +TERM: never redeliver.
    mutating func terminate(_ sequence: UInt64) {
        revision &+= 1
        pending[sequence] = nil
        deliveryCounts[sequence] = nil
        advanceAckFloor()
    }

    /// The earliest redelivery deadline, for the caller's timer.
    var nextDeadline: Int64? { pending.values.map(\.deadline).min() }

    private mutating func advanceAckFloor() {
        guard !pending.isEmpty else {
            ackFloorStream = max(ackFloorStream, deliveredStream)
            return
        }
        // Every pending sequence is above the floor: walk up to the lowest one. Each sequence is walked over
        // once, so in-order acks cost O(1) each instead of a pass over `pending`.
        var next = ackFloorStream + 1
        while next <= deliveredStream, pending[next] == nil { next += 1 }
        ackFloorStream = max(ackFloorStream, next - 1)
    }

    /// The consumer sequence of the ack floor: everything delivered before the oldest pending delivery.
    var ackFloorConsumer: UInt64 {
        guard let oldest = pending.values.map(\.consumerSequence).min() else { return deliveredConsumer }
        return oldest - 1
    }

    /// After a restart: nothing can be delivered or pending beyond the stream's last sequence.
    mutating func clamp(toLastSequence last: UInt64) {
        revision &+= 1
        guard deliveredStream > last else { return }
        deliveredStream = last
        ackFloorStream = min(ackFloorStream, last)
        for s in pending.keys where s > last {
            pending[s] = nil
            deliveryCounts[s] = nil
        }
        dueQueue.removeAll()
    }

    // MARK: - Persistence

    /// State as bytes: delivered and ack-floor sequences, then each pending message with its count. Deadlines
    /// are not kept: after a restart pending messages are redelivered at once.
    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        func put(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put(deliveredStream)
        put(deliveredConsumer)
        put(ackFloorStream)
        put(UInt64(pending.count))
        for (sequence, entry) in pending.sorted(by: { $0.key < $1.key }) {
            put(sequence)
            put(entry.consumerSequence)
            put(UInt64(deliveryCounts[sequence] ?? 1))
        }
        return out
    }

    /// Restores `encoded()` state; nil when the bytes are not a whole state.
    init?(configuration: Configuration, decoding bytes: [UInt8]) {
        var offset = 0
        func get() -> UInt64? {
            guard offset + 8 <= bytes.count else { return nil }
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
            offset += 8
            return v
        }
        guard let delivered = get(), let consumer = get(), let floor = get(), let count = get(), count < 10_000_000 else {
            return nil
        }
        self.configuration = configuration
        self.deliveredStream = delivered
        self.deliveredConsumer = consumer
        self.ackFloorStream = floor
        for _ in 0..<count {
            guard let sequence = get(), let consumerSequence = get(), let deliveries = get() else { return nil }
            pending[sequence] = Pending(consumerSequence: consumerSequence, deadline: 0)
            earliestDeadline = 0
            deliveryCounts[sequence] = Int(deliveries)
        }
        guard offset == bytes.count else { return nil }
    }
}
