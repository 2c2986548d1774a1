/// The group commit's bookkeeping, as plain values (JetStream's queue owns it): the PubAcks waiting for the
/// fsync that covers their message, and the streams appended to since the last sync. One sync then answers every
/// publish that arrived meanwhile, so a burst of publishes costs one fsync, not one each.
struct GroupCommit {
    private var waiting: [(PubAck, PublishAnswer)] = []
    /// The stream of each waiting answer, by position (apart, so that a sync with no failure hands `waiting`
    /// over whole, without copying an answer).
    private var waitingStreams: [String] = []
    private var appendedTo: Set<String> = []
    /// Acks with a reply (confirmed acks), answered once their consumer's state is on disk.
    private var confirmations: [(stream: String, consumer: String, reply: String)] = []
    private var scheduled = false
    /// Answers settled by a failed sync (`fail`), sent with the next batch.
    private var settled: [(PubAck, PublishAnswer)] = []

    /// A sync of `stream` failed and its unsynced messages were taken back: the store now ends at `lastKept`.
    /// A waiting PubAck whose message is gone is answered 503; one whose message an earlier sync already made
    /// durable (a full block's seal syncs it) keeps its success. Both go out with the next batch.
    mutating func fail(stream: String, reason: String, lastKept: UInt64) {
        guard waitingStreams.contains(stream) else { return }
        let failure = PubAck.failed(code: 503, errorCode: 10077, description: "storage failure: \(reason)")
        var kept: [(PubAck, PublishAnswer)] = [], keptStreams: [String] = []
        for ((ack, answer), name) in zip(waiting, waitingStreams) {
            guard name == stream else {
                kept.append((ack, answer))
                keptStreams.append(name)
                continue
            }
            if case .stored(_, let sequence, _) = ack, sequence <= lastKept {
                settled.append((ack, answer))
            } else {
                settled.append((failure, answer))
            }
        }
        waiting = kept
        waitingStreams = keptStreams
    }

    /// A confirmed ack waits for the sync; true when the caller must schedule it.
    mutating func confirming(stream: String, consumer: String, reply: String) -> Bool {
        confirmations.append((stream, consumer, reply))
        if scheduled { return false }
        scheduled = true
        return true
    }

    /// A message was appended to `stream`; its PubAck, when someone wants one, waits for the sync. Returns true
    /// when the caller must schedule the sync (the first append since the last one).
    mutating func appended(to stream: String, ack: PubAck, answer: PublishAnswer?) -> Bool {
        if let answer {
            waiting.append((ack, answer))
            waitingStreams.append(stream)
        }
        appendedTo.insert(stream)
        if scheduled { return false }
        scheduled = true
        return true
    }

    /// What one sync answers.
    struct Batch {
        /// Every waiting answer, in arrival order.
        var answers: [(PubAck, PublishAnswer)]
        /// The streams whose consumers may now deliver what was appended.
        var streams: Set<String>
        /// The confirmed acks to answer once their consumers' states are written.
        var confirmations: [(stream: String, consumer: String, reply: String)] = []
    }

    /// The sync ran; `failed` holds the streams whose fsync failed, with the error (their waiting PubAcks were
    /// settled by `fail`; any still waiting get 503/10077). Never a success PubAck for what did not reach the
    /// disk. The next append schedules a new sync.
    mutating func synced(failed: [String: String]) -> Batch {
        var answers: [(PubAck, PublishAnswer)] = []
        let waited = waiting.count
        if settled.isEmpty, failed.isEmpty {
            swap(&answers, &waiting)  // the usual sync: handed over whole
        } else {
            answers = settled
            for ((ack, answer), stream) in zip(waiting, waitingStreams) {
                answers.append((failed[stream].map { PubAck.failed(code: 503, errorCode: 10077, description: "storage failure: \($0)") } ?? ack, answer))
            }
            waiting.removeAll()
        }
        waiting.reserveCapacity(waited)
        waitingStreams.removeAll(keepingCapacity: true)
        settled.removeAll(keepingCapacity: true)
        let batch = Batch(answers: answers, streams: appendedTo, confirmations: confirmations)
        confirmations.removeAll(keepingCapacity: true)
        appendedTo.removeAll(keepingCapacity: true)
        scheduled = false
        return batch
    }
}
