import ClientLib
import Foundation
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// MARK: - The stamp inside the alert's JSON

/// falcohttp and falcopipe go through brokerd's Falco ingest, which publishes the alert's bytes unchanged and
/// sets its own headers: the stamp has to travel inside the JSON. It is inserted as the first field, so the
/// alert stays a valid alert: `{"bench_stamp":"<seq> <send ns> <lane>",<the rest of the alert>`.
enum JSONStamp {
    static let prefix: [UInt8] = Array(#"{"bench_stamp":""#.utf8)

    /// One alert line split at its opening brace: what comes after it, and whether a comma must follow the
    /// stamp (not for an empty object).
    struct Template: Sendable {
        var rest: [UInt8]
        var comma: Bool

        init?(_ line: ByteBuffer) {
            let bytes = Array(line.readableBytesView)
            guard let brace = bytes.firstIndex(of: UInt8(ascii: "{")),
                  bytes[..<brace].allSatisfy({ $0 == 0x20 || $0 == 0x09 }) else { return nil }
            rest = Array(bytes[(brace + 1)...])
            let next = rest.first { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }
            comma = next != UInt8(ascii: "}")
        }
    }

    /// Appends the stamped alert to `out`.
    @inline(__always)
    static func append(_ template: Template, seq: Int, sentAt: UInt64, lane: Int, to out: inout [UInt8]) {
        out.append(contentsOf: prefix)
        appendDecimal(UInt64(seq), to: &out)
        out.append(0x20)
        appendDecimal(sentAt, to: &out)
        out.append(0x20)
        appendDecimal(UInt64(lane), to: &out)
        out.append(UInt8(ascii: "\""))
        if template.comma { out.append(UInt8(ascii: ",")) }
        out.append(contentsOf: template.rest)
    }

    @inline(__always)
    static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        if value == 0 {
            out.append(UInt8(ascii: "0"))
            return
        }
        var digits: (UInt64, Int) = (value, 0)
        var divisor: UInt64 = 1
        while digits.0 / divisor >= 10 {
            divisor *= 10
            digits.1 += 1
        }
        while divisor > 0 {
            out.append(UInt8(ascii: "0") &+ UInt8(value / divisor % 10))
            divisor /= 10
        }
    }

    /// (seq, send ns, lane) from a delivered payload that starts with the stamp.
    @inline(__always)
    static func read(_ payload: ByteBuffer) -> (seq: UInt64, sentAt: UInt64, lane: Int)? {
        payload.withUnsafeReadableBytes { raw -> (UInt64, UInt64, Int)? in
            guard raw.count > prefix.count + 5 else { return nil }
            for i in 0..<prefix.count where raw[i] != prefix[i] { return nil }
            var numbers: (UInt64, UInt64, UInt64) = (0, 0, 0)
            var index = 0, digits = 0
            var i = prefix.count
            while i < raw.count {
                let byte = raw[i]
                i += 1
                if byte == UInt8(ascii: "\"") { break }
                if byte == 0x20 {
                    guard digits > 0, index < 2 else { return nil }
                    index += 1
                    digits = 0
                    continue
                }
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                let d = UInt64(byte &- UInt8(ascii: "0"))
                switch index {
                case 0: numbers.0 = numbers.0 &* 10 &+ d
                case 1: numbers.1 = numbers.1 &* 10 &+ d
                default: numbers.2 = numbers.2 &* 10 &+ d
                }
                digits += 1
            }
            guard index == 2, digits > 0 else { return nil }
            return (numbers.0, numbers.1, Int(numbers.2))
        }
    }
}

// MARK: - A minimal blocking HTTP/1.1 client (one keep-alive connection)

/// Plain sockets, one connection, HTTP/1.1 keep-alive. Requests are written whole; responses are read with
/// Content-Length bodies (what brokerd sends). Not general: enough for a benchmark against brokerd.
final class HTTPConnection: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let host: String
    let port: Int
    private(set) var fd: Int32 = -1
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)
    private var start = 0
    private var end = 0

    init(host: String, port: Int) throws {
        self.host = host
        self.port = port
        try open()
    }

    deinit { close() }

    func open() throws {
        close()
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw Failure(description: "socket(): \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            Glibc.close(s)
            throw Failure(description: "not an IPv4 address: \(host)")
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let text = String(cString: strerror(errno))
            Glibc.close(s)
            throw Failure(description: "connect to \(host):\(port): \(text)")
        }
        fd = s
        start = 0
        end = 0
    }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    func send(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw Failure(description: "send: \(String(cString: strerror(errno)))")
                }
                offset += n
            }
        }
    }

    /// Reads one response: its status code and whether the server closes the connection after it.
    /// Offsets are kept relative to `start`, which fill() may move (it compacts the buffer).
    func readResponse() throws -> (status: Int, close: Bool) {
        var headLength = -1
        var scanned = 0
        while headLength < 0 {
            let available = end - start
            var i = max(0, scanned - 3)
            while i + 3 < available {
                let p = start + i
                if buffer[p] == 13, buffer[p + 1] == 10, buffer[p + 2] == 13, buffer[p + 3] == 10 {
                    headLength = i
                    break
                }
                i += 1
            }
            if headLength >= 0 { break }
            scanned = available
            try fill()
        }
        // Parsed on bytes (a String and Foundation's trimming per header cost this tool a quarter of its CPU).
        let head = buffer[start..<(start + headLength)]
        let lines = head.split(separator: 0x0A, omittingEmptySubsequences: false).map { $0.last == 0x0D ? $0.dropLast() : $0 }
        let statusLine = lines.first ?? head[head.startIndex..<head.startIndex]
        let parts = statusLine.split(separator: 0x20, maxSplits: 2)
        guard parts.count >= 2, parts[0].starts(with: Array("HTTP/1.".utf8)), let status = Self.integer(parts[1]) else {
            throw Failure(description: "not an HTTP response: \(String(decoding: statusLine.prefix(80), as: UTF8.self).debugDescription)")
        }
        var length = 0
        var closeAfter = parts[0].elementsEqual("HTTP/1.0".utf8)
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = line[..<colon]
            var value = line[(colon + 1)...]
            while value.first == 0x20 || value.first == 0x09 { value = value.dropFirst() }
            while value.last == 0x20 || value.last == 0x09 { value = value.dropLast() }
            if Self.named(name, "content-length") { length = Self.integer(value) ?? 0 }
            if Self.named(name, "connection") { closeAfter = Self.named(value, "close") }
            if Self.named(name, "transfer-encoding") { throw Failure(description: "chunked responses are not supported") }
        }
        let total = headLength + 4 + length
        while end - start < total { try fill() }
        start += total
        if start == end {
            start = 0
            end = 0
        }
        return (status, closeAfter)
    }

    /// Whether `bytes` spell `name` (lower case), ignoring ASCII case.
    static func named(_ bytes: ArraySlice<UInt8>, _ name: StaticString) -> Bool {
        let expected = UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        guard bytes.count == expected.count else { return false }
        for (a, b) in zip(bytes, expected) {
            let lower: UInt8 = a >= 0x41 && a <= 0x5A ? a | 0x20 : a
            if lower != b { return false }
        }
        return true
    }

    /// A decimal number of ASCII digits, or nil.
    static func integer(_ bytes: ArraySlice<UInt8>) -> Int? {
        guard !bytes.isEmpty, bytes.count < 19 else { return nil }
        var n = 0
        for b in bytes {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            n = n * 10 + Int(b - 0x30)
        }
        return n
    }

    /// Reads more bytes into the buffer, compacting or growing it first when needed.
    private func fill() throws {
        if end == buffer.count {
            if start > 0 {
                buffer.withUnsafeMutableBytes { raw in
                    _ = memmove(raw.baseAddress!, raw.baseAddress! + start, end - start)
                }
                end -= start
                start = 0
            } else {
                buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count))
            }
        }
        let n = buffer.withUnsafeMutableBytes { raw in recv(fd, raw.baseAddress! + end, raw.count - end, 0) }
        if n == 0 { throw Failure(description: "the server closed the connection") }
        if n < 0 {
            if errno == EINTR { return }
            throw Failure(description: "recv: \(String(cString: strerror(errno)))")
        }
        end += n
    }
}

// MARK: - falcohttp, falcopipe

/// HTTP status counts over all connections (request counts and alert counts per status).
final class StatusCounts: @unchecked Sendable {
    private let state = Mutex<(requests: [Int: Int], alerts: [Int: Int], firstBad: String?)>(([:], [:], nil))

    func add(status: Int, alerts: Int) {
        state.withLock {
            $0.requests[status, default: 0] += 1
            $0.alerts[status, default: 0] += alerts
        }
    }

    var requests: [Int: Int] { state.withLock { $0.requests } }
    var alerts: [Int: Int] { state.withLock { $0.alerts } }
}

extension Runner {
    /// The alerts file as stamp templates (each line split at its opening brace).
    func loadTemplates() throws -> (templates: [JSONStamp.Template], meanSize: Double) {
        guard let path = config.alertsPath else { throw BenchError.usage("--scenario \(config.scenario.rawValue) needs --alerts PATH") }
        let loaded = try Alerts.load(path: path, limit: .max)
        for (line, reason) in loaded.skipped.prefix(5) { note("\(path):\(line) skipped: \(reason)") }
        if loaded.skipped.count > 5 { note("\(loaded.skipped.count - 5) more lines of \(path) skipped") }
        let templates = loaded.alerts.compactMap { JSONStamp.Template($0.payload) }
        guard !templates.isEmpty else { throw BenchError.failed("no valid alerts in \(path)") }
        let mean = Double(templates.reduce(0) { $0 + $1.rest.count + 1 }) / Double(templates.count)
        return (templates, mean)
    }

    /// One subscriber on FALCO.* reading the JSON stamp of each alert.
    func subscribeFalcoStamped(expected: Int, lanes: Int) async throws -> (NATSClient, Tracker) {
        let subscriber = try await connect("sub1")
        let tracker = Tracker(name: "sub1", expected: expected, lanes: lanes)
        try await subscriber.subscribe("FALCO.*") { message in
            let now = monotonicNanos()
            if let (seq, sentAt, lane) = JSONStamp.read(message.payload) {
                tracker.record(seq: seq, sentAt: sentAt, now: now, lane: lane)
            } else {
                tracker.recordForeign()
            }
        }
        try await subscriber.flush()
        return (subscriber, tracker)
    }

    static func runThreads(_ count: Int, name: String, _ body: @escaping @Sendable (Int) -> Void) async {
        let group = DispatchGroup()
        for i in 0..<count {
            group.enter()
            let thread = Thread {
                body(i)
                group.leave()
            }
            thread.name = "\(name)-\(i)"
            thread.start()
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            group.notify(queue: .global()) { c.resume() }
        }
    }

    // MARK: falcohttp

    func runFalcoHTTP() async throws -> BenchResult {
        guard let httpURL = config.httpURL else { throw BenchError.usage("--scenario falcohttp needs --http-url http://HOST:PORT") }
        guard let url = URL(string: httpURL), url.scheme == "http", let host = url.host, let port = url.port else {
            throw BenchError.usage("--http-url must be http://HOST:PORT (IPv4), not \(httpURL)")
        }
        let (templates, meanSize) = try loadTemplates()
        let n = config.msgs, conns = config.conns, batch = config.batch, pipeline = config.pipeline
        let (subscriber, tracker) = try await subscribeFalcoStamped(expected: n, lanes: conns)
        if config.capture {
            try await recreateStream(subscriber, name: Self.falcoStream, subjects: ["FALCO.>"])
        }

        var connections: [HTTPConnection] = []
        for i in 0..<conns {
            do {
                connections.append(try HTTPConnection(host: host, port: port))
            } catch {
                throw BenchError.failed("cannot open HTTP connection \(i + 1) to \(httpURL): \(error)")
            }
        }
        let head = "POST / HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: brokerd-bench\r\n"
            + "Content-Type: \(batch > 1 ? "application/x-ndjson" : "application/json")\r\nContent-Length: "
        let headBytes = Array(head.utf8)
        let next = Atomic<Int>(0)
        let statuses = StatusCounts()
        let accepted = Atomic<Int>(0)
        let reconnects = Atomic<Int>(0)
        let shared = SharedState(connections: connections)

        /// Builds one request for the alerts first..<first+count, stamped now.
        @Sendable func request(first: Int, count: Int, lane: Int, into out: inout [UInt8]) {
            out.removeAll(keepingCapacity: true)
            var body: [UInt8] = []
            body.reserveCapacity(count * (Int(meanSize) + 48))
            let sentAt = monotonicNanos()
            for seq in first..<(first + count) {
                JSONStamp.append(templates[seq % templates.count], seq: seq, sentAt: sentAt, lane: lane, to: &body)
                if batch > 1 { body.append(0x0A) }
            }
            out.append(contentsOf: headBytes)
            JSONStamp.appendDecimal(UInt64(body.count), to: &out)
            out.append(contentsOf: [13, 10, 13, 10])
            out.append(contentsOf: body)
        }
        @Sendable func take() -> (first: Int, count: Int)? {
            let first = next.wrappingAdd(batch, ordering: .relaxed).oldValue
            return first < n ? (first, min(batch, n - first)) : nil
        }
        @Sendable func answered(_ status: Int, alerts: Int) {
            statuses.add(status: status, alerts: alerts)
            if status == 200 {
                let total = accepted.wrappingAdd(alerts, ordering: .relaxed).newValue
                self.publishedCount.store(total, ordering: .relaxed)
            }
        }

        let progress = startProgress(trackers: [tracker])
        let start = monotonicNanos()
        await Self.runThreads(conns, name: "http") { lane in
            let connection = shared.connections[lane]
            if pipeline == 1 {
                // Like Falco's libcurl: one request, wait for its answer, the next.
                var out: [UInt8] = []
                while let (first, count) = take() {
                    request(first: first, count: count, lane: lane, into: &out)
                    do {
                        try connection.send(out)
                        let (status, close) = try connection.readResponse()
                        answered(status, alerts: count)
                        if close {
                            reconnects.add(1, ordering: .relaxed)
                            try connection.open()
                        }
                    } catch {
                        self.note("HTTP connection \(lane + 1): \(error); it stops (its unanswered alerts count as lost)")
                        return
                    }
                }
                return
            }
            // --pipeline N: a writer keeps up to N requests in flight, this thread's partner reads the answers.
            let slots = DispatchSemaphore(value: pipeline)
            let pending = DispatchSemaphore(value: 0)
            let inFlight = Mutex<(counts: [Int], done: Bool, failed: Bool)>(([], false, false))
            let readLoop: @Sendable () -> Void = {
                while true {
                    pending.wait()
                    let count: Int? = inFlight.withLock { state in
                        state.counts.isEmpty ? nil : state.counts.removeFirst()
                    }
                    guard let count else { return }  // done, and every request answered
                    do {
                        let (status, close) = try connection.readResponse()
                        answered(status, alerts: count)
                        if close {
                            self.note("HTTP connection \(lane + 1): the server closes it (status \(status)) while requests are pipelined; it stops")
                            inFlight.withLock { $0.failed = true }
                            connection.close()
                            slots.signal()
                            return
                        }
                    } catch {
                        self.note("HTTP connection \(lane + 1): \(error); it stops (its unanswered alerts count as lost)")
                        inFlight.withLock { $0.failed = true }
                        slots.signal()
                        return
                    }
                    slots.signal()
                }
            }
            let readerDone = DispatchSemaphore(value: 0)
            Thread {
                readLoop()
                readerDone.signal()
            }.start()
            var out: [UInt8] = []
            while true {
                slots.wait()
                if inFlight.withLock({ $0.failed }) { break }
                guard let (first, count) = take() else { break }
                request(first: first, count: count, lane: lane, into: &out)
                inFlight.withLock { $0.counts.append(count) }
                do {
                    try connection.send(out)
                } catch {
                    inFlight.withLock { _ = $0.counts.popLast() }
                    self.note("HTTP connection \(lane + 1): \(error); it stops")
                    break
                }
                pending.signal()
            }
            inFlight.withLock { $0.done = true }
            pending.signal()
            readerDone.wait()
            // libdispatch traps when a semaphore is freed below its initial value: give the slots back.
            for _ in 0..<pipeline { slots.signal() }
        }
        let published = monotonicNanos()
        for connection in connections { connection.close() }
        await drain(subscribers: [subscriber], trackers: [tracker], grouped: false)
        progress.cancel()

        let requests = statuses.requests, alertsByStatus = statuses.alerts
        let bad = alertsByStatus.filter { $0.key != 200 }.reduce(0) { $0 + $1.value }
        let badRequests = requests.filter { $0.key != 200 }.reduce(0) { $0 + $1.value }
        if badRequests > 0 {
            note("\(badRequests) HTTP requests (\(bad) alerts) answered other than 200: "
                 + requests.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))
        }
        let answeredAlerts = alertsByStatus.values.reduce(0, +)
        if answeredAlerts < n { note("\(n - answeredAlerts) alerts were never answered (a connection failed)") }
        if reconnects.load(ordering: .relaxed) > 0 {
            note("the server closed keep-alive connections \(reconnects.load(ordering: .relaxed)) times (reconnected)")
        }
        // With a capturing stream, every 200 promised the alerts were stored: the stream must hold them all.
        var unstored = 0
        if config.capture {
            let info = try await jsAPI(subscriber, "STREAM.INFO.\(Self.falcoStream)")
            let stored = Self.streamState(info, "messages") ?? -1
            let acceptedAlerts = accepted.load(ordering: .relaxed)
            if stored != acceptedAlerts {
                unstored = max(acceptedAlerts - stored, 1)
                note("stream \(Self.falcoStream) holds \(stored) alerts, \(acceptedAlerts) were answered 200")
            }
            await deleteStream(subscriber, name: Self.falcoStream)
        }
        let tally = Tally.independent([tracker])
        var r = result(start: start, published: published, publishedCount: accepted.load(ordering: .relaxed), tally: tally,
                       subs: 1, size: Int(meanSize.rounded()), countedBytes: Double(tally.delivered) * meanSize)
        r.msgs = n
        r.failures = bad + (n - answeredAlerts) + unstored
        let statusJSON = "{" + requests.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
        r.extras = [("conns", String(conns)), ("pipeline", String(pipeline)), ("batch", String(batch)),
                    ("capture", String(config.capture)),
                    ("requests", String(requests.values.reduce(0, +))), ("http_status", statusJSON),
                    ("non_200_alerts", String(bad)), ("reorder_check", BenchResult.quote("per connection"))]
        return r
    }

    /// STREAM.INFO's state.messages, or nil.
    static func streamState(_ json: String, _ key: String) -> Int? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any],
              let state = object["state"] as? [String: Any] else { return nil }
        return (state[key] as? NSNumber)?.intValue
    }

    final class SharedState: @unchecked Sendable {
        let connections: [HTTPConnection]
        init(connections: [HTTPConnection]) { self.connections = connections }
    }

    // MARK: falcopipe

    func runFalcoPipe() async throws -> BenchResult {
        guard let brokerd = config.brokerdPath else { throw BenchError.usage("--scenario falcopipe needs --brokerd PATH") }
        guard FileManager.default.isExecutableFile(atPath: brokerd) else {
            throw BenchError.usage("--brokerd \(brokerd) is not an executable file")
        }
        let (templates, meanSize) = try loadTemplates()
        let n = config.msgs
        let (subscriber, tracker) = try await subscribeFalcoStamped(expected: n, lanes: 0)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: brokerd)
        var arguments = ["falco-pipe", "--server", config.url, "--quiet"]
        if let window = config.pipeWindow { arguments += ["--window", String(window)] }
        process.arguments = arguments
        let stdin = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        let errorText = Mutex<Data>(Data())
        let errorsRead = DispatchSemaphore(value: 0)
        do {
            try process.run()
        } catch {
            throw BenchError.failed("cannot start \(brokerd) falco-pipe: \(error)")
        }
        Thread {
            let data = stderr.fileHandleForReading.readDataToEndOfFile()
            errorText.withLock { $0 = data }
            errorsRead.signal()
        }.start()
        // Let the pipe connect before the clock starts (it reads stdin meanwhile, so nothing would be lost).
        try? await Task.sleep(for: .milliseconds(300))

        let progress = startProgress(trackers: [tracker])
        let start = monotonicNanos()
        let fd = stdin.fileHandleForWriting.fileDescriptor
        let writeError = Mutex<String?>(nil)
        await Self.runThreads(1, name: "pipe-writer") { _ in
            var line: [UInt8] = []
            line.reserveCapacity(4096)
            for seq in 0..<n {
                line.removeAll(keepingCapacity: true)
                JSONStamp.append(templates[seq % templates.count], seq: seq, sentAt: monotonicNanos(), lane: 0, to: &line)
                line.append(0x0A)
                let ok = line.withUnsafeBytes { raw -> Bool in
                    var offset = 0
                    while offset < raw.count {
                        let w = write(fd, raw.baseAddress! + offset, raw.count - offset)
                        if w < 0 {
                            if errno == EINTR { continue }
                            writeError.withLock { $0 = "writing line \(seq + 1) to falco-pipe: \(String(cString: strerror(errno)))" }
                            return false
                        }
                        offset += w
                    }
                    return true
                }
                if !ok { return }
                if seq & 1023 == 0 { self.publishedCount.store(seq, ordering: .relaxed) }
            }
            self.publishedCount.store(n, ordering: .relaxed)
        }
        let written = monotonicNanos()
        try? stdin.fileHandleForWriting.close()
        // falco-pipe exits once every alert is answered (or its --drain-timeout passes).
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                exited.wait()
                c.resume()
            }
        }
        let pipeDone = monotonicNanos()
        errorsRead.wait()
        await drain(subscribers: [subscriber], trackers: [tracker], grouped: false)
        progress.cancel()

        if let text = writeError.withLock({ $0 }) { note(text) }
        let stderrText = String(decoding: errorText.withLock { $0 }, as: UTF8.self)
        var counts: [String: Int] = [:]
        var summaryLine: String?
        for line in stderrText.split(separator: "\n") where line.hasPrefix("falco-pipe: ") && line.contains(" accepted, ") {
            summaryLine = String(line)
            // "falco-pipe: N accepted, R rejected, D dropped (buffer full), U undelivered, X retries"
            let words = line.dropFirst("falco-pipe: ".count).split(separator: " ")
            var i = 0
            while i + 1 < words.count {
                if let value = Int(words[i]) { counts[words[i + 1].trimmingCharacters(in: .punctuationCharacters)] = value }
                i += 1
            }
        }
        let otherLines = stderrText.split(separator: "\n").filter { !$0.hasPrefix("falco-pipe: ") || !$0.contains(" accepted, ") }
        for line in otherLines.prefix(5) { note("falco-pipe: \(line.hasPrefix("falco-pipe: ") ? String(line.dropFirst(12)) : String(line))") }
        if otherLines.count > 5 { note("\(otherLines.count - 5) more lines from falco-pipe on stderr") }
        var failures = 0
        if summaryLine == nil {
            note("falco-pipe printed no summary line (exit status \(process.terminationStatus))")
            failures += 1
        } else {
            let bad = (counts["rejected"] ?? 0) + (counts["dropped"] ?? 0) + (counts["undelivered"] ?? 0)
            if bad > 0 { note("falco-pipe: \(summaryLine!.dropFirst(12))") }
            failures += bad
        }
        if process.terminationStatus != 0 {
            note("falco-pipe exited with status \(process.terminationStatus)")
            failures += failures == 0 ? 1 : 0
        }
        let tally = Tally.independent([tracker])
        var r = result(start: start, published: written, publishedCount: n, tally: tally, subs: 1,
                       size: Int(meanSize.rounded()), countedBytes: Double(tally.delivered) * meanSize)
        r.failures = failures
        r.extras = [("pipe_accepted", String(counts["accepted"] ?? -1)), ("pipe_rejected", String(counts["rejected"] ?? -1)),
                    ("pipe_dropped", String(counts["dropped"] ?? -1)), ("pipe_undelivered", String(counts["undelivered"] ?? -1)),
                    ("pipe_retries", String(counts["retries"] ?? -1)), ("pipe_exit_status", String(process.terminationStatus)),
                    ("pipe_seconds", BenchResult.number(Double(pipeDone &- start) / 1e9, digits: 6)),
                    ("pipe_window", config.pipeWindow.map(String.init) ?? "null"),
                    ("reorder_check", BenchResult.quote("none"))]
        return r
    }
}
