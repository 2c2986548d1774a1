import ClientLib
import Foundation

/// One message from the consumer, as long as the bridge holds it.
struct Held: Sendable {
    var message: PubSubMessage
    var ackSubject: String
    var streamSequence: UInt64
    var original: NATSMessage
    /// `message.encodedSize`, counted once.
    var size: Int

    init(message: PubSubMessage, ackSubject: String, streamSequence: UInt64, original: NATSMessage) {
        self.message = message
        self.ackSubject = ackSubject
        self.streamSequence = streamSequence
        self.original = original
        self.size = message.encodedSize
    }
}

/// Messages from the pull subscription, waiting to be batched. Filled on the connection's event loop, emptied
/// by the pump, which sleeps on `doorbell` in between: the inbox rings it when the pump may have work (the first
/// message of a batch, a full batch, the end of a pull request, room for a new one); `nextDeadline` is when the
/// oldest message's batch delay runs out or a lost pull request counts as ended.
final class Inbox: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Held] = []
    private var firstArrival: ContinuousClock.Instant?
    /// Stream sequences the bridge holds: a redelivery of one of them is ignored.
    private var held: Set<UInt64> = []
    private var done = true
    private var outstanding = 0
    /// Encoded bytes of `items`.
    private var bytes = 0
    private var missing = false
    private var requestStarted = ContinuousClock.now
    /// A pull request with no answer for this long was lost with a connection (brokerd restarted): it must not
    /// stop the flow. Its expiry is 1 s.
    static let lostRequestAfter: Duration = .seconds(3)

    let doorbell: Doorbell
    /// The batch limits (100 messages, 1 MB, 10 ms by default): a batch is ready when one is reached.
    let batchMessages: Int
    let batchBytes: Int
    let batchDelay: Duration

    init(doorbell: Doorbell, batchMessages: Int, batchBytes: Int, batchDelay: Duration) {
        self.doorbell = doorbell
        self.batchMessages = batchMessages
        self.batchBytes = batchBytes
        self.batchDelay = batchDelay
    }

    func markConsumerMissing() {
        lock.withLock { missing = true }
        doorbell.ring()
    }

    var consumerMissing: Bool { lock.withLock { missing } }

    /// The pull request ended (a status came, or its batch was filled), or it is long past its expiry.
    var requestDone: Bool {
        lock.withLock { done || requestStarted.duration(to: .now) > Self.lostRequestAfter }
    }

    @discardableResult
    func add(_ item: Held) -> Bool {
        lock.lock()
        // Every delivery counts against the pull request's batch: when it is full the request is over
        // (the server sends no status then).
        outstanding -= 1
        var ring = false
        if outstanding <= 0 && !done {
            done = true
            ring = true
        }
        guard held.insert(item.streamSequence).inserted else {
            lock.unlock()
            if ring { doorbell.ring() }
            return false
        }
        if items.isEmpty {
            firstArrival = .now
            ring = true  // the batch delay starts
        }
        items.append(item)
        let before = bytes
        bytes += item.size
        // Ring once as a batch fills up (not for every message).
        if items.count == batchMessages || (before < batchBytes && bytes >= batchBytes) { ring = true }
        lock.unlock()
        if ring { doorbell.ring() }
        return true
    }

    func endOfRequest() {
        lock.withLock { done = true }
        doorbell.ring()
    }

    func startRequest(batch: Int) {
        lock.withLock {
            done = false
            outstanding = batch
            requestStarted = .now
        }
    }

    func release(_ sequences: [UInt64]) {
        lock.withLock { for s in sequences { held.remove(s) } }
        doorbell.ring()  // room for a new pull request
    }

    var heldCount: Int { lock.withLock { held.count } }

    /// When the pump must look again without a ring: the oldest message's batch delay, or the moment an
    /// unanswered pull request counts as lost. Nil: only a ring brings work.
    func nextDeadline() -> ContinuousClock.Instant? {
        lock.withLock {
            let batchDue = firstArrival.map { $0 + batchDelay }
            let requestLost = done ? nil : requestStarted + Self.lostRequestAfter
            switch (batchDue, requestLost) {
            case (let a?, let b?): return min(a, b)
            case (let a?, nil): return a
            case (nil, let b?): return b
            case (nil, nil): return nil
            }
        }
    }

    /// Takes up to `batchMessages` messages (and `batchBytes`) once that many are there or the oldest has
    /// waited `batchDelay`.
    func take() -> [Held]? {
        lock.lock()
        defer { lock.unlock() }
        guard !items.isEmpty, let first = firstArrival else { return nil }
        guard items.count >= batchMessages || self.bytes >= batchBytes || first.duration(to: .now) >= batchDelay else { return nil }
        var count = 0
        var total = 0
        while count < items.count && count < batchMessages {
            let next = items[count].size
            if count > 0 && total + next > batchBytes { break }
            count += 1
            total += next
        }
        let taken = Array(items.prefix(count))
        items.removeFirst(count)
        self.bytes -= total
        firstArrival = items.isEmpty ? nil : .now
        return taken
    }
}

extension PubSubBridge {
    /// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (or the 12-token form).
    static func streamSequence(_ ack: String) -> UInt64? {
        // Read on the bytes (this runs for every message the bridge receives): the 6th or 8th token.
        var dots = 0
        var starts: [Int] = []
        starts.reserveCapacity(13)
        starts.append(0)
        var index = 0
        for byte in ack.utf8 {
            index += 1
            if byte == UInt8(ascii: ".") {
                dots += 1
                starts.append(index)
            }
        }
        let tokenCount = dots + 1
        let wanted = tokenCount == 9 ? 5 : tokenCount >= 12 ? 7 : -1
        guard wanted >= 0 else { return nil }
        var value: UInt64 = 0
        var digits = 0
        for byte in ack.utf8.dropFirst(starts[wanted]) {
            if byte == UInt8(ascii: ".") { break }
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(byte - 0x30))
            guard !o1 && !o2 else { return nil }
            value = a
            digits += 1
        }
        return digits > 0 ? value : nil
    }
}
