import ClientLib
import Foundation
import Histogram
import NIOCore
import NIOPosix
import Synchronization

enum Scenario: String, CaseIterable, Sendable {
    case pub, pubsub, fanout, queue, wildcard, reqrep, falco, jspub, jsconsume, jsacksync, falcohttp, falcopipe
    case kvput, kvget, kvwatch, objput, objget
}

enum BenchError: Error, CustomStringConvertible {
    case usage(String)
    case failed(String)

    var description: String {
        switch self {
        case .usage(let text), .failed(let text): text
        }
    }
}

struct BenchConfig: Sendable {
    var url: String
    var scenario: Scenario
    var size: Int
    var msgs: Int
    var subs: Int
    var alertsPath: String?
    var cycleAlerts: Bool
    var drainTimeout: Duration
    var requestTimeout: Duration
    var progress: Bool
    /// The client's outbound window (`NATSOptions.maxPendingOutboundBytes`); nil keeps ClientLib's default.
    var maxPendingBytes: Int?
    /// jspub/jsconsume: PubAcks a publisher may wait for at once (1 = synchronous publish).
    var window: Int = 256
    /// jspub/jsconsume: leave the stream in place at the end (to measure recovery or disk use afterwards).
    var keepStream: Bool = false
    /// falcohttp: brokerd's Falco HTTP endpoint, keep-alive connections, requests in flight per connection,
    /// alerts per request.
    var httpURL: String? = nil
    var conns: Int = 4
    var pipeline: Int = 1
    var batch: Int = 1
    /// falcohttp: a file stream captures FALCO.> while the alerts are posted (answers wait for its fsync).
    var capture: Bool = false
    /// falcopipe: the brokerd binary (its `falco-pipe` subcommand) and the pipe's --window (nil: its default).
    var brokerdPath: String? = nil
    var pipeWindow: Int? = nil
    /// TLS for every connection (a tls:// URL turns it on too).
    var tls = NATSTLSOptions()
    /// kvput, kvget: the keys of the bucket, used round-robin.
    var keys: Int = 1000
}

/// Runs one scenario: connects every publisher and subscriber on its own `NATSClient`, publishes, drains,
/// and tallies what each subscriber saw.
final class Runner: @unchecked Sendable {
    let config: BenchConfig
    private var clients: [NATSClient] = []
    private var watchers: [Task<Void, Never>] = []
    /// Event loop groups of our own (reqrep, kvget), shut down after the clients close.
    var groups: [MultiThreadedEventLoopGroup] = []
    /// Published so far (read by the progress reporter).
    let publishedCount = Atomic<Int>(0)
    let notes = Mutex<[String]>([])
    /// Set when the run is over. ClientLib reports `.disconnected` for a connection that `close()` itself shut
    /// (connectionLost's guard only leaves its locked closure), so disconnects from then on are not news.
    private let closing = Atomic<Bool>(false)

    /// The eight subjects of the wildcard scenario (Falco's priorities).
    static let falcoSubjects = Alerts.priorities.map { "FALCO." + $0 }

    init(config: BenchConfig) {
        self.config = config
    }

    func run() async throws -> BenchResult {
        switch config.scenario {
        case .pub: return try await runSized(subjects: ["bench.pub"], subscriptions: [], grouped: false)
        case .pubsub: return try await runSized(subjects: ["bench.1to1"], subscriptions: [("bench.1to1", nil)], grouped: false)
        case .fanout:
            return try await runSized(subjects: ["bench.fanout"],
                                      subscriptions: Array(repeating: ("bench.fanout", nil), count: config.subs), grouped: false)
        case .queue:
            return try await runSized(subjects: ["bench.queue"],
                                      subscriptions: Array(repeating: ("bench.queue", "bench-workers"), count: config.subs), grouped: true)
        case .wildcard:
            return try await runSized(subjects: Self.falcoSubjects, subscriptions: [("FALCO.*", nil), ("FALCO.>", nil)], grouped: false)
        case .reqrep: return try await runRequestReply()
        case .falco: return try await runFalco()
        case .jspub: return try await runJetStreamPublish()
        case .jsconsume: return try await runJetStreamConsume()
        case .jsacksync: return try await runJetStreamConsume(confirm: true)
        case .falcohttp: return try await runFalcoHTTP()
        case .falcopipe: return try await runFalcoPipe()
        case .kvput: return try await runKVPut()
        case .kvget: return try await runKVGet()
        case .kvwatch: return try await runKVWatch()
        case .objput: return try await runObjectPut()
        case .objget: return try await runObjectGet()
        }
    }

    func closeAll() async {
        closing.store(true, ordering: .sequentiallyConsistent)
        for client in clients { await client.close() }
        for watcher in watchers { await watcher.value }
        for group in groups { try? await group.shutdownGracefully() }
    }

    // MARK: - Connections

    func connect(_ name: String, group: (any EventLoopGroup)? = nil) async throws -> NATSClient {
        var options = NATSOptions(servers: [config.url])
        options.name = "brokerd-bench-\(name)"
        // A run measures one connection each: a lost connection is reported, not papered over.
        options.allowReconnect = false
        options.connectTimeout = .seconds(5)
        options.tls = config.tls
        if let pending = config.maxPendingBytes { options.maxPendingOutboundBytes = pending }
        let client: NATSClient
        do {
            client = try await NATSClient.connect(options, group: group)
        } catch NATSError.connectionFailed(let reason) {
            throw BenchError.failed("cannot connect \(name) to \(config.url): \(reason)")
        } catch {
            throw BenchError.failed("cannot connect \(name) to \(config.url): \(error)")
        }
        clients.append(client)
        watchers.append(Task { [weak self] in
            for await event in client.events {
                switch event {
                case .disconnected(let reason): self?.note("\(name) disconnected: \(reason)")
                case .slowConsumer(let subject, let dropped): self?.note("\(name) slow consumer on \(subject): \(dropped) dropped")
                case .serverError(let text): self?.note("\(name) server error: \(text)")
                case .lameDuck: self?.note("\(name): server entered lame duck mode")
                case .connected, .reconnected, .closed: break
                }
            }
        })
        return client
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case NATSError.closed: "the connection is closed (lost, or the server went away)"
        case NATSError.timeout: "timed out"
        default: "\(error)"
        }
    }

    func note(_ text: String) {
        if closing.load(ordering: .sequentiallyConsistent) { return }
        notes.withLock { $0.append(text) }
        FileHandle.standardError.write(Data("brokerd-bench: \(text)\n".utf8))
    }

    /// A subscriber whose handler (run on its connection's event loop) reads the stamp at the payload's start.
    private func subscribePayloadStamped(_ name: String, subject: String, queue: String?, expected: Int) async throws -> (NATSClient, Tracker) {
        let client = try await connect(name)
        let tracker = Tracker(name: name, expected: expected)
        try await client.subscribe(subject, queue: queue) { message in
            let now = monotonicNanos()
            if let (seq, sentAt) = Stamp.read(message.payload) {
                tracker.record(seq: seq, sentAt: sentAt, now: now)
            } else {
                tracker.recordForeign()
            }
        }
        try await client.flush()
        return (client, tracker)
    }

    // MARK: - pub, pubsub, fanout, queue, wildcard

    private func runSized(subjects: [String], subscriptions: [(subject: String, queue: String?)], grouped: Bool) async throws -> BenchResult {
        let n = config.msgs
        var trackers: [Tracker] = []
        var subscribers: [NATSClient] = []
        for (i, sub) in subscriptions.enumerated() {
            let (client, tracker) = try await subscribePayloadStamped("sub\(i + 1)", subject: sub.subject, queue: sub.queue, expected: n)
            subscribers.append(client)
            trackers.append(tracker)
        }
        let publisher = try await connect("pub")
        let progress = startProgress(trackers: trackers)
        let start = monotonicNanos()
        try await publishStamped(publisher, subjects: subjects, count: n)
        publishedCount.store(n, ordering: .relaxed)
        try await flushPublisher(publisher)
        let published = monotonicNanos()

        await drain(subscribers: subscribers, trackers: trackers, grouped: grouped)
        progress.cancel()

        let tally = grouped ? Tally.group(trackers) : Tally.independent(trackers)
        return result(start: start, published: published, publishedCount: n, tally: trackers.isEmpty ? nil : tally,
                      subs: subscriptions.count, size: config.size, countedBytes: nil)
    }

    /// Publishes `count` stamped messages round-robin over `subjects`, as fast as `publish` takes them (it
    /// buffers, and waits only when the client's outbound window is full).
    private func publishStamped(_ publisher: NATSClient, subjects: [String], count n: Int) async throws {
        var payload = Stamp.makePayload(size: config.size)
        var seq = 0
        var index = 0
        do {
            while seq < n {
                Stamp.write(seq: UInt64(seq), sentAt: monotonicNanos(), into: &payload)
                try await publisher.publish(subjects[index], payload: payload)
                seq += 1
                index += 1
                if index == subjects.count { index = 0 }
                if seq & 1023 == 0 { publishedCount.store(seq, ordering: .relaxed) }
            }
        } catch {
            throw BenchError.failed("publishing message \(seq + 1) of \(n) failed: \(Self.describe(error))")
        }
    }

    func flushPublisher(_ publisher: NATSClient) async throws {
        do {
            // Everything published may still sit in the client's outbound buffer (up to 32 MB): be generous.
            try await publisher.flush(timeout: .seconds(120))
        } catch {
            throw BenchError.failed("publisher flush failed: \(Self.describe(error))")
        }
    }

    /// After the publisher's flush: flush each subscriber connection (its PONG comes after the messages the
    /// server queued for it before), then wait while messages still arrive, at most `drainTimeout` without any.
    func drain(subscribers: [NATSClient], trackers: [Tracker], grouped: Bool) async {
        for client in subscribers {
            do { try await client.flush(timeout: config.drainTimeout) } catch { note("subscriber flush failed: \(error)") }
        }
        func complete() -> Bool {
            if grouped { return trackers.reduce(0) { $0 + $1.distinct } >= (trackers.first?.expected ?? 0) }
            return trackers.allSatisfy { $0.distinct >= $0.expected }
        }
        var lastReceived = -1
        var idleSince = ContinuousClock.now
        while !complete() {
            let received = trackers.reduce(0) { $0 + $1.received }
            if received != lastReceived {
                lastReceived = received
                idleSince = .now
            } else if ContinuousClock.now - idleSince >= config.drainTimeout {
                break
            }
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    func result(start: UInt64, published: UInt64, publishedCount: Int, tally: Tally?, subs: Int, size: Int,
                        countedBytes: Double?) -> BenchResult {
        var notes = self.notes.withLock { $0 }
        let publishSeconds = Double(published &- start) / 1e9
        var seconds = publishSeconds
        if let tally, tally.lastAt > start { seconds = Double(tally.lastAt - start) / 1e9 }
        if let tally, tally.foreign > 0 {
            notes.append("\(tally.foreign) messages without a valid bench stamp (another publisher on these subjects?)")
        }
        let delivered = tally?.delivered ?? 0
        let counted = config.scenario == .pub ? publishedCount : delivered
        return BenchResult(
            scenario: config.scenario, url: config.url, size: size, msgs: publishedCount, subs: subs,
            seconds: seconds, delivered: delivered, lost: tally?.lost ?? 0, duplicated: tally?.duplicated ?? 0,
            reordered: tally?.reordered ?? 0, latency: tally?.latency, published: publishedCount,
            publishSeconds: publishSeconds, countedBytes: countedBytes ?? Double(counted) * Double(size), notes: notes)
    }

    // MARK: - reqrep

    private func runRequestReply() async throws -> BenchResult {
        // One thread for both connections and both tasks (see LoopExecutor).
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        groups.append(group)
        let executor = LoopExecutor(group.next())
        return try await withTaskExecutorPreference(executor) {
            try await requestReply(group: group, executor: executor)
        }
    }

    private func requestReply(group: MultiThreadedEventLoopGroup, executor: LoopExecutor) async throws -> BenchResult {
        let n = config.msgs
        let subject = "bench.reqrep"
        let responder = try await connect("responder", group: group)
        // The responder echoes each request; one task reads the subscription (publish is async).
        let requests = try await responder.subscribe(subject)
        let responderTask = Task(executorPreference: executor) {
            for await request in requests {
                guard let reply = request.reply else { continue }
                do { try await responder.publish(reply, payload: request.payload) } catch { break }
            }
        }
        defer { responderTask.cancel() }
        try await responder.flush()
        let requester = try await connect("requester", group: group)
        var payload = Stamp.makePayload(size: config.size)
        // The first request sets up the client's reply inbox (one SUB): do it before the clock starts.
        _ = try? await requester.request(subject, payload: payload, timeout: config.requestTimeout)

        let tracker = Tracker(name: "requester", expected: n)
        let progress = startProgress(trackers: [tracker])
        var lost = 0, consecutiveTimeouts = 0, mismatched = 0
        let start = monotonicNanos()
        var seq = 0
        while seq < n {
            let sentAt = monotonicNanos()
            Stamp.write(seq: UInt64(seq), sentAt: sentAt, into: &payload)
            do {
                let reply = try await requester.request(subject, payload: payload, timeout: config.requestTimeout)
                let now = monotonicNanos()
                consecutiveTimeouts = 0
                if let (replySeq, _) = Stamp.read(reply.payload), replySeq == UInt64(seq) {
                    tracker.record(seq: replySeq, sentAt: sentAt, now: now)
                } else {
                    mismatched += 1
                    tracker.recordForeign()
                }
            } catch NATSError.timeout {
                lost += 1
                consecutiveTimeouts += 1
                if consecutiveTimeouts >= 5 {
                    note("5 requests in a row timed out: stopped, the remaining \(n - seq - 1) counted as lost")
                    lost += n - seq - 1
                    seq = n
                    break
                }
            } catch NATSError.noResponders {
                throw BenchError.failed("request \(seq): no responders (the responder's subscription is gone)")
            } catch {
                throw BenchError.failed("request \(seq) failed: \(Self.describe(error))")
            }
            seq += 1
            publishedCount.store(seq, ordering: .relaxed)
        }
        let end = monotonicNanos()
        progress.cancel()
        responderTask.cancel()
        await responderTask.value  // it runs on our loop: let it finish before the loop shuts down
        if mismatched > 0 { note("\(mismatched) replies carried another request's sequence number") }
        let s = tracker.snapshot()
        let seconds = Double((s.lastAt > start ? s.lastAt : end) &- start) / 1e9
        return BenchResult(
            scenario: .reqrep, url: config.url, size: config.size, msgs: n, subs: 1, seconds: seconds,
            delivered: s.distinct, lost: lost, duplicated: s.duplicated, reordered: s.reordered + mismatched,
            latency: s.latency, published: n, publishSeconds: Double(end &- start) / 1e9,
            countedBytes: Double(s.distinct) * Double(config.size), notes: notes.withLock { $0 })
    }

    // MARK: - falco

    private func runFalco() async throws -> BenchResult {
        guard let path = config.alertsPath else { throw BenchError.usage("--scenario falco needs --alerts PATH") }
        let loaded = try Alerts.load(path: path, limit: config.cycleAlerts ? .max : config.msgs)
        for (line, reason) in loaded.skipped.prefix(5) { note("\(path):\(line) skipped: \(reason)") }
        if loaded.skipped.count > 5 { note("\(loaded.skipped.count - 5) more lines of \(path) skipped") }
        guard !loaded.alerts.isEmpty else { throw BenchError.failed("no valid alerts in \(path)") }
        let alerts = loaded.alerts
        let n = config.cycleAlerts ? config.msgs : min(alerts.count, config.msgs)

        let subscriber = try await connect("sub1")
        let tracker = Tracker(name: "sub1", expected: n)
        try await subscriber.subscribe("FALCO.>") { message in
            let now = monotonicNanos()
            if let fields = message.headers?.fields,
               let value = fields.first(where: { $0.name == Stamp.headerName })?.value,
               let (seq, sentAt) = Stamp.parseHeaderValue(value) {
                tracker.record(seq: seq, sentAt: sentAt, now: now)
            } else {
                tracker.recordForeign()
            }
        }
        try await subscriber.flush()
        let publisher = try await connect("pub")

        let progress = startProgress(trackers: [tracker])
        var bytes = 0
        let start = monotonicNanos()
        var index = 0
        for seq in 0..<n {
            let alert = alerts[index]
            index += 1
            if index == alerts.count { index = 0 }
            let headers = NATSHeaders([(Stamp.headerName, "\(seq) \(monotonicNanos())")])
            do {
                try await publisher.publish(alert.subject, payload: alert.payload, headers: headers)
            } catch {
                throw BenchError.failed("publishing alert \(seq + 1) of \(n) failed: \(Self.describe(error))")
            }
            bytes += alert.payload.readableBytes
            if seq & 1023 == 0 { publishedCount.store(seq, ordering: .relaxed) }
        }
        publishedCount.store(n, ordering: .relaxed)
        try await flushPublisher(publisher)
        let published = monotonicNanos()
        await drain(subscribers: [subscriber], trackers: [tracker], grouped: false)
        progress.cancel()

        let tally = Tally.independent([tracker])
        let meanSize = Double(bytes) / Double(n)
        return result(start: start, published: published, publishedCount: n, tally: tally, subs: 1,
                      size: Int(meanSize.rounded()), countedBytes: Double(tally.delivered) * meanSize)
    }

    // MARK: - Progress

    /// Every second on stderr: published and delivered so far, and the rates over the last second.
    func startProgress(trackers: [Tracker]) -> Task<Void, Never> {
        let label = config.scenario == .reqrep ? "replies" : "delivered"
        return startProgress(label: trackers.isEmpty ? nil : label) { trackers.reduce(0) { $0 + $1.received } }
    }

    /// Every second on stderr: published so far and, when `label` is set, `counted()` (delivered, acked, ...).
    func startProgress(label: String?, counted: @escaping @Sendable () -> Int) -> Task<Void, Never> {
        guard config.progress else { return Task {} }
        let begin = ContinuousClock.now
        return Task { [weak self] in
            var lastPublished = 0, lastDelivered = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                guard let self, !Task.isCancelled else { return }
                let published = self.publishedCount.load(ordering: .relaxed)
                let delivered = counted()
                let elapsed = ContinuousClock.now - begin
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                let verb = self.config.scenario == .reqrep ? "requests" : "published"
                var line = "[\(BenchResult.fixed(seconds, 1))s] \(verb) \(BenchResult.grouped(published)) (+\(BenchResult.grouped(published - lastPublished))/s)"
                if let label {
                    line += ", \(label) \(BenchResult.grouped(delivered)) (+\(BenchResult.grouped(delivered - lastDelivered))/s)"
                }
                FileHandle.standardError.write(Data((line + "\n").utf8))
                lastPublished = published
                lastDelivered = delivered
            }
        }
    }
}
