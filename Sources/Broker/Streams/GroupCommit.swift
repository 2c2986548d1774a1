/// The group commit's bookkeeping, as plain values (JetStream's queue owns it): the PubAcks waiting for the
/// fsync that covers their message, and the streams appended to since the last sync. One sync then answers every
/// publish that arrived meanwhile, so a burst of publishes costs one fsync, not one each.
struct GroupCommit {
    private var waiting: [(ack: PubAck, answer: PublishAnswer, stream: String)] = []
    private var appendedTo: Set<String> = []
    /// Acks with a reply (confirmed acks), answered once their consumer's state is on disk.
    private var confirmations: [(stream: String, consumer: String, reply: String)] = []
    private var scheduled = false
    /// Streams whose unsynced messages were taken back outside the commit (a failed sync on the tick or in
    /// sourcing): their waiting PubAcks are failures, whatever the next sync does.
    private var takenBack: [String: String] = [:]

    /// `stream`'s unsynced messages were taken back: what waits for the sync is answered 503.
    mutating func fail(stream: String, reason: String) {
        if waiting.contains(where: { $0.stream == stream }) { takenBack[stream] = reason }
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
        if let answer { waiting.append((ack, answer, stream)) }
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

    /// The sync ran; `failed` holds the streams whose fsync failed, with the error. Never a success PubAck for
    /// what did not reach the disk: those publishes get 503/10077. The next append schedules a new sync.
    mutating func synced(failed: [String: String]) -> Batch {
        let failed = failed.merging(takenBack) { a, _ in a }
        takenBack.removeAll()
        let answers = waiting.map { ack, answer, stream in
            (failed[stream].map { PubAck.failed(code: 503, errorCode: 10077, description: "storage failure: \($0)") } ?? ack, answer)
        }
        let batch = Batch(answers: answers, streams: appendedTo, confirmations: confirmations)
        waiting.removeAll(keepingCapacity: true)
        confirmations.removeAll(keepingCapacity: true)
        appendedTo.removeAll(keepingCapacity: true)
        scheduled = false
        return batch
    }
}
