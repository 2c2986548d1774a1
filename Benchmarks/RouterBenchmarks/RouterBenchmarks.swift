// Micro-benchmarks of subject routing: Sublist.match (the trie) and MatchCache.match (the per-loop cache).
//
//   BROKERD_BENCHMARKS=1 swift package --disable-sandbox benchmark --target RouterBenchmarks
//
// Every sample runs `scaledIterations` (1,000) matches. The metrics marked * in the table are shown per match (rounded
// to an integer): wall clock in ns per match, throughput in matches/s (K or M as labelled), mallocs per match.
// The target is 0 mallocs per cached match. Exact allocation counts (and their stacks):
//   BROKERD_BENCHMARKS=1 swift package --disable-sandbox benchmark run --allocation-stacks --target RouterBenchmarks
//
// Subscriptions are installed the way clients install them: a BrokerServer on 127.0.0.1 (an ephemeral port,
// one event loop) receives SUBs over a loopback TCP connection, and the benchmark then matches against
// `server.sublist`. The server's loop is idle while samples run, except for its 1 s sweep timer: malloc counts are
// process-wide, so that timer adds a handful of allocations per run (about 20 in 45 M matches, in NIO scheduling
// and ClientConnection.checkWriteDeadline), which --allocation-stacks shows on the event-loop thread.

import Benchmark
import Broker
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

var configuration: Benchmark.Configuration {
    .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )
}

/// The three subscriptions of nats-server's "FALCO" cache example: all match `FALCO.Critical`.
let falcoSubjects = ["FALCO.*", "FALCO.>", "FALCO.Critical"]

/// 10,000 subscriptions: 9,997 literal `events.r<0-99>.h<0-99>` and three wildcards, so that
/// `events.r42.h7` matches four of them (one literal, `events.*.h7`, `events.r42.*`, `events.>`).
let tenThousandSubjects: [String] =
    (0..<9_997).map { "events.r\($0 / 100).h\($0 % 100)" } + ["events.*.h7", "events.r42.*", "events.>"]

/// A running broker whose sublist holds `subjects`, subscribed by one client connection that stays open.
final class SubscribedBroker: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let server: BrokerServer
    private let socket: Int32

    var sublist: Sublist<Subscription> { server.sublist }

    init(subjects: [String]) async throws {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        var options = BrokerOptions()
        options.host = "127.0.0.1"
        options.port = 0
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        server = BrokerServer(options: options, logger: logger, group: group, randomSeed: 1)
        try await server.start()
        socket = try Self.subscribe(port: server.boundPort, subjects: subjects)
        guard server.sublist.count == subjects.count else {
            fatalError("sublist holds \(server.sublist.count) subscriptions, expected \(subjects.count)")
        }
    }

    func shutdown() async throws {
        close(socket)
        await server.shutdown()
        try await group.shutdownGracefully()
    }

    // The benchmark's teardown hook gets no setup state: the running broker is kept here between the two.
    nonisolated(unsafe) private static var running: SubscribedBroker?

    /// Setup hook: starts a broker holding `subjects`.
    static func start(subjects: [String]) async throws -> SubscribedBroker {
        let broker = try await SubscribedBroker(subjects: subjects)
        running = broker
        return broker
    }

    /// Teardown hook: stops the broker `start` made.
    static func stop() async throws {
        try await running?.shutdown()
        running = nil
    }

    /// Connects, sends CONNECT, one SUB per subject and a PING, and returns once the PONG is back: the server
    /// handles a connection's ops in order, so every SUB is then in the sublist.
    private static func subscribe(port: Int, subjects: [String]) throws -> Int32 {
        #if canImport(Glibc)
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = Darwin.socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw SetupError("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw SetupError("connect() to 127.0.0.1:\(port) failed") }

        var commands = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n"
        for (index, subject) in subjects.enumerated() { commands += "SUB \(subject) \(index + 1)\r\n" }
        commands += "PING\r\n"
        let bytes = Array(commands.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw SetupError("send() failed") }
            sent += n
        }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw SetupError("connection closed before PONG: \(String(decoding: received, as: UTF8.self))") }
            received += chunk[..<n]
            let text = String(decoding: received, as: UTF8.self)
            if text.contains("-ERR") { throw SetupError("server replied \(text)") }
            if text.contains("PONG\r\n") { return fd }
        }
    }

    struct SetupError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = configuration

    // MARK: MatchCache hit, nats-server's FALCO example (3 subscriptions).
    Benchmark(
        "MatchCache.match hit FALCO.Critical (3 subs)",
        closure: { benchmark, broker in
            let sublist = broker.sublist
            let subject = ByteBuffer(string: "FALCO.Critical")
            var cache = MatchCache<Subscription>()
            precondition(cache.match(subject, in: sublist).plain.count == 3)  // the miss that fills the cache

            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(cache.match(subject, in: sublist))
            }
            benchmark.stopMeasurement()
            precondition(cache.misses == 1, "the measured matches must all be cache hits")
        },
        setup: { try await SubscribedBroker.start(subjects: falcoSubjects) },
        teardown: { try await SubscribedBroker.stop() }
    )

    // MARK: 10,000 subscriptions installed.
    Benchmark(
        "Sublist.match events.r42.h7 (10k subs, uncached)",
        closure: { benchmark, broker in
            let sublist = broker.sublist
            let subject = "events.r42.h7"
            precondition(sublist.match(subject).plain.count == 4)

            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(sublist.match(subject))
            }
            benchmark.stopMeasurement()
        },
        setup: { try await SubscribedBroker.start(subjects: tenThousandSubjects) },
        teardown: { try await SubscribedBroker.stop() }
    )

    Benchmark(
        "MatchCache.match hit events.r42.h7 (10k subs)",
        closure: { benchmark, broker in
            let sublist = broker.sublist
            let subject = ByteBuffer(string: "events.r42.h7")
            var cache = MatchCache<Subscription>()
            precondition(cache.match(subject, in: sublist).plain.count == 4)

            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(cache.match(subject, in: sublist))
            }
            benchmark.stopMeasurement()
            precondition(cache.misses == 1, "the measured matches must all be cache hits")
        },
        setup: { try await SubscribedBroker.start(subjects: tenThousandSubjects) },
        teardown: { try await SubscribedBroker.stop() }
    )

    // 1,000 distinct cached subjects (the cache holds up to 1,024), visited in turn: a hit in a full-size table.
    Benchmark(
        "MatchCache.match hit, 1000 hot subjects (10k subs)",
        closure: { benchmark, broker in
            let sublist = broker.sublist
            let subjects = (0..<1_000).map { ByteBuffer(string: "events.r\($0 / 10).h\(($0 * 7) % 100)") }
            var cache = MatchCache<Subscription>()
            for subject in subjects { precondition(!cache.match(subject, in: sublist).isEmpty) }
            precondition(cache.misses == 1_000)

            benchmark.startMeasurement()
            var index = 0
            for _ in benchmark.scaledIterations {
                blackHole(cache.match(subjects[index], in: sublist))
                index = index == subjects.count - 1 ? 0 : index + 1
            }
            benchmark.stopMeasurement()
            precondition(cache.misses == 1_000, "the measured matches must all be cache hits")
        },
        setup: { try await SubscribedBroker.start(subjects: tenThousandSubjects) },
        teardown: { try await SubscribedBroker.stop() }
    )
}
