import ArgumentParser
import ClientLib
import Foundation
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `brokerd falco-pipe`: Falco's `program_output` (`keep_alive: true`) writes one JSON alert per line to our
/// stdin; each goes to brokerd's `$FALCO.INGEST`, where it is checked, published on `FALCO.<Priority>` and
/// (when a stream captures it) stored before brokerd answers. An alert is retried until brokerd accepts or
/// rejects it, so a restart of brokerd delays alerts but loses none (a stream dedupes the retries by
/// `Nats-Msg-Id`). Alerts wait in a bounded buffer meanwhile; when it is full, new alerts are dropped and
/// every drop is reported on stderr.
struct FalcoPipe: AsyncParsableCommand, ClientTLSCommand {
    static let configuration = CommandConfiguration(
        commandName: "falco-pipe",
        abstract: "Publish Falco alerts read from stdin (program_output, one JSON alert per line) through brokerd.",
        discussion: """
            Falco settings (falco.yaml):
              json_output: true
              program_output:
                enabled: true
                keep_alive: true
                program: "brokerd falco-pipe --server nats://brokerd:4222"

            Over TLS (brokerd's tls {} block): --server tls://brokerd:4222 --tlsca ca.pem, plus --tlscert and
            --tlskey when brokerd verifies clients (verify: true); --tlsfirst for handshake_first.

            Each line is sent to $FALCO.INGEST; brokerd validates it, publishes it on FALCO.<Priority> with the
            Falco-* and Nats-Msg-Id headers and answers once it is accepted (stored, when a stream captures
            FALCO.>). Rejected lines are reported on stderr with their line number and reason. Exit status: 0
            when every line was accepted or rejected, 1 when alerts were dropped (buffer full) or could not
            be delivered before --drain-timeout after stdin closed, 2 for a usage error.
            """
    )

    @Option(name: [.customShort("s"), .customLong("server")], help: "brokerd's URL(s), comma-separated.")
    var server = "nats://127.0.0.1:4222"

    @OptionGroup var credentials: AuthOptions

    @OptionGroup(title: "TLS") var tls: ClientTLSFlags
    @OptionGroup(title: "TLS") var certificate: TLSCertificateOptions

    @Option(help: "Alerts in flight at once (waiting for brokerd's answer).")
    var window = 64

    @Option(help: "Alerts kept while brokerd is unreachable or slow; beyond this, new alerts are dropped (loudly).")
    var buffer = 100_000

    @Option(help: "Seconds to wait for brokerd's answer before sending an alert again.")
    var timeout = 5.0

    @Option(help: "Seconds to keep trying to deliver buffered alerts after stdin closes.")
    var drainTimeout = 60.0

    @Flag(help: "Print a summary line only (rejections and drops are still reported).")
    var quiet = false

    func validate() throws {
        try validateTLS()
        guard window > 0, buffer > 0 else { throw ValidationError("--window and --buffer must be positive") }
        guard timeout > 0, drainTimeout > 0 else { throw ValidationError("timeouts must be positive") }
    }

    func run() async throws {
        let queue = PipeQueue(capacity: buffer)
        let reader = Thread {
            let input = fdopen(0, "r")
            var line: UnsafeMutablePointer<CChar>?
            var capacity = 0
            var number = 0
            while true {
                let n = getline(&line, &capacity, input)
                if n < 0 { break }
                number += 1
                var bytes = [UInt8](UnsafeRawBufferPointer(start: line, count: n))
                if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
                if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
                if !queue.push(Line(number: number, bytes: bytes)) {
                    let dropped = queue.dropped
                    warn("buffer full (\(buffer) alerts waiting for brokerd): dropped line \(number); \(dropped) dropped so far")
                }
            }
            free(line)
            queue.finish()
        }
        reader.start()

        var options = NATSOptions(servers: server.split(separator: ",").map { String($0) })
        options.name = "falco-pipe"
        options.user = credentials.sentUser
        options.password = credentials.sentPassword
        options.token = credentials.sentToken
        options.tls = tlsOptions
        options.maxReconnectAttempts = -1
        options.reconnectBufferSize = 64 * 1024 * 1024
        let client = try await connectForever(options)
        let stats = PipeStats()
        let timeout = Duration.milliseconds(Int64(self.timeout * 1000))
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // Connection events, reported until the workers are done (cancellation ends the loop).
                for await event in client.events {
                    switch event {
                    case .disconnected(let reason): warn("disconnected from brokerd (\(reason)); reconnecting, alerts are kept")
                    case .reconnected: warn("reconnected to \(client.connectedServer ?? "brokerd")")
                    case .serverError(let text): warn("brokerd: \(text)")
                    default: break
                    }
                }
            }
            for _ in 0..<window {
                group.addTask {
                    while let line = await queue.next() {
                        await deliver(line, client: client, stats: stats, timeout: timeout, queue: queue)
                    }
                }
            }
            group.addTask {
                // After stdin closes, give up on what is still undelivered after --drain-timeout.
                await queue.waitFinished()
                try? await Task.sleep(for: .milliseconds(Int64(drainTimeout * 1000)))
                queue.abandon()
            }
            // The workers and the drain timer: once `window` of them ended, the rest (and the events loop) stop.
            var workers = window
            for await _ in group {
                workers -= 1
                if workers == 0 { group.cancelAll() }
            }
        }
        await client.close()
        let s = stats.snapshot()
        let undelivered = queue.abandoned
        FileHandle.standardError.write(Data("falco-pipe: \(s.accepted) accepted, \(s.rejected) rejected, \(queue.dropped) dropped (buffer full), \(undelivered) undelivered, \(s.retries) retries\n".utf8))
        if queue.dropped > 0 || undelivered > 0 { throw ExitCode(1) }
    }

    /// Sends one line until brokerd accepts or rejects it (or the pipe gives up after stdin closed).
    private func deliver(_ line: Line, client: NATSClient, stats: PipeStats, timeout: Duration, queue: PipeQueue) async {
        var attempt = 0
        while !queue.isAbandoned {
            do {
                let reply = try await client.request("$FALCO.INGEST", payload: ByteBuffer(bytes: line.bytes), timeout: timeout)
                let text = String(buffer: reply.payload)
                if text.hasPrefix(#"{"ok":true"#) {
                    stats.accepted.add(1, ordering: .relaxed)
                    return
                }
                if text.contains(#""retry":false"#) {
                    stats.rejected.add(1, ordering: .relaxed)
                    warn("line \(line.number) rejected: \(Self.errorText(text))")
                    return
                }
                warn("line \(line.number) not accepted yet (\(Self.errorText(text))); retrying")
            } catch NATSError.noResponders {
                warn("nobody answers on $FALCO.INGEST: is the server brokerd? retrying")
            } catch {
                // Timeout or a lost connection: send it again (a stream dedupes it by Nats-Msg-Id).
            }
            stats.retries.add(1, ordering: .relaxed)
            attempt += 1
            try? await Task.sleep(for: Self.resendBackoff.delay(attempt: attempt))
        }
        queue.markAbandoned()
    }

    static func errorText(_ json: String) -> String {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["error"] as? String ?? json
    }

    /// Resends: 100 ms doubling up to 2 s, each drawn from [d, 1.5 d] so pipes restarted together spread out.
    static let resendBackoff = Backoff(initial: .milliseconds(100), factor: 2, cap: .seconds(2), spread: 1...1.5)
    /// First connection: 100 ms doubling up to 2 s.
    static let connectBackoff = Backoff(initial: .milliseconds(100), factor: 2, cap: .seconds(2))

    private func connectForever(_ options: NATSOptions) async throws -> NATSClient {
        var attempt = 0
        while true {
            do {
                return try await NATSClient.connect(options)
            } catch NATSError.authorizationViolation {
                warn("brokerd refused the credentials")
                throw ExitCode(1)
            } catch NATSError.tlsConfiguration(let reason) {
                warn("TLS: \(reason)")
                throw ExitCode(1)
            } catch {
                warn("cannot reach \(options.servers.joined(separator: ",")) (\(error)); retrying, alerts are kept")
                attempt += 1
                try await Task.sleep(for: Self.connectBackoff.delay(attempt: attempt))
            }
        }
    }
}

private func warn(_ text: String) {
    FileHandle.standardError.write(Data("falco-pipe: \(text)\n".utf8))
}

struct Line: Sendable {
    var number: Int
    var bytes: [UInt8]
}

final class PipeStats: Sendable {
    let accepted = Atomic<Int>(0)
    let rejected = Atomic<Int>(0)
    let retries = Atomic<Int>(0)

    func snapshot() -> (accepted: Int, rejected: Int, retries: Int) {
        (accepted.load(ordering: .relaxed), rejected.load(ordering: .relaxed), retries.load(ordering: .relaxed))
    }
}

/// Lines from the reader thread to the senders: bounded, first in first out.
final class PipeQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [Line] = []
    private var head = 0
    private var waiters: [CheckedContinuation<Line?, Never>] = []
    private var finishWaiters: [CheckedContinuation<Void, Never>] = []
    private var finished = false
    private var abandonedFlag = false
    private var droppedCount = 0
    private var abandonedCount = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    var dropped: Int { lock.withLock { droppedCount } }
    var abandoned: Int { lock.withLock { abandonedCount + (abandonedFlag ? lines.count - head : 0) } }
    var isAbandoned: Bool { lock.withLock { abandonedFlag } }

    /// False (and counted) when the buffer is full.
    func push(_ line: Line) -> Bool {
        lock.lock()
        if let waiter = waiters.first {
            waiters.removeFirst()
            lock.unlock()
            waiter.resume(returning: line)
            return true
        }
        guard lines.count - head < capacity else {
            droppedCount += 1
            lock.unlock()
            return false
        }
        lines.append(line)
        lock.unlock()
        return true
    }

    func next() async -> Line? {
        await withCheckedContinuation { continuation in
            lock.lock()
            if abandonedFlag {
                lock.unlock()
                continuation.resume(returning: nil)
            } else if head < lines.count {
                let line = lines[head]
                head += 1
                if head > 4096 && head * 2 > lines.count {
                    lines.removeFirst(head)
                    head = 0
                }
                lock.unlock()
                continuation.resume(returning: line)
            } else if finished {
                lock.unlock()
                continuation.resume(returning: nil)
            } else {
                waiters.append(continuation)
                lock.unlock()
            }
        }
    }

    func finish() {
        lock.lock()
        finished = true
        let pending = waiters
        waiters.removeAll()
        let done = finishWaiters
        finishWaiters.removeAll()
        lock.unlock()
        for w in pending { w.resume(returning: nil) }
        for w in done { w.resume() }
    }

    func waitFinished() async {
        await withCheckedContinuation { continuation in
            lock.lock()
            if finished {
                lock.unlock()
                continuation.resume()
            } else {
                finishWaiters.append(continuation)
                lock.unlock()
            }
        }
    }

    func abandon() {
        lock.withLock { abandonedFlag = true }
    }

    func markAbandoned() {
        lock.withLock { abandonedCount += 1 }
    }
}
