import ArgumentParser
import ClientLib
import Foundation

extension Scenario: ExpressibleByArgument {}

/// `brokerd-bench`: the end-to-end load tool. Same tool against brokerd and nats-server, so the two compare.
@main
struct BrokerdBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "brokerd-bench",
        abstract: "Load a NATS server (brokerd or nats-server) and measure throughput, latency and integrity.",
        discussion: """
        SCENARIOS (each publisher and subscriber has its own connection)
          pub       one publisher, no subscribers: how fast the server takes messages
          pubsub    one publisher, one subscriber (1:1)
          fanout    one publisher, --subs subscribers on one subject (each gets all)
          queue     one publisher, a queue group of --subs members (each message
                    goes to exactly one member)
          wildcard  one publisher going round FALCO.Emergency, .Alert, .Critical,
                    .Error, .Warning, .Notice, .Informational, .Debug; one
                    subscriber on FALCO.* and one on FALCO.> (each gets all)
          reqrep    --msgs requests, one at a time, to a responder on another
                    connection that echoes them. Both connections and both
                    tasks share one event loop thread, so a round trip has
                    no thread hand-off inside the tool.
          falco     replays --alerts (JSONL, one Falco alert per line): each
                    alert's JSON, untouched, to FALCO.<priority> as fast as
                    possible, with one FALCO.> subscriber. Sends min(--msgs,
                    valid lines) alerts; with --cycle, --msgs alerts, going
                    round the file. The stamp travels in a header,
                    'Bench-Stamp: <seq> <send ns>'. Lines that are not a JSON
                    object with a known string "priority" are skipped (noted);
                    priorities match ignoring case (notice -> FALCO.Notice).
          jspub     JetStream publish: deletes and creates a file-storage
                    stream BENCH on bench.js.> ($JS.API.STREAM.DELETE/CREATE),
                    then publishes --msgs stamped messages of --size bytes to
                    bench.js.x, each with its own reply subject _BA.<run>.<i>
                    (one wildcard subscription of the publisher), at most
                    --window PubAcks outstanding (1: synchronous publish, one
                    message in flight). With --alerts: the alerts' JSON to
                    FALCO.<priority> into stream BENCHFALCO on FALCO.>
                    (--cycle as for falco). Deletes the stream at the end
                    (unless --keep-stream).
          jsconsume JetStream consume: fills stream BENCH with --msgs stamped
                    messages of --size (window max(--window, 256), not timed),
                    then creates a durable push consumer 'bench' (explicit
                    acks, max_ack_pending 8192, ack_wait 30 s) delivering to
                    an inbox, and acks every delivery (an empty publish to its
                    $JS.ACK reply subject) while timing the drain. Deletes the
                    stream at the end (unless --keep-stream).
          jsacksync JetStream consume with confirmed acks: as jsconsume, but
                    each ack carries a reply subject (ack_sync / AckSync) and
                    counts once the server answers it, at most --window
                    confirmations outstanding (1: one at a time, as a nats-py
                    loop of ack_sync). Rate: confirmed acks/s; latency: ack
                    to confirmation.
          kvput     Key-Value put: creates bucket 'bench' as nats.go and
                    nats-py do (stream KV_bench on $KV.bench.>, history 1,
                    file storage, rollups, deny_delete, allow_direct,
                    discard new, duplicate window 2 min, allow_msg_ttl),
                    then puts --msgs stamped values of --size bytes to
                    $KV.bench.k<i mod --keys>, at most --window PubAcks
                    outstanding (1: kv.put, one at a time). Latency: put to
                    PubAck. Deletes the bucket's stream at the end.
          kvget     Key-Value get: puts --keys values (not timed), then
                    --msgs direct gets round-robin over them, one at a time
                    ($JS.API.DIRECT.GET.KV_bench.$KV.bench.<key>, empty body,
                    as kv.get does on an allow_direct bucket); each reply
                    must be the stored message (Nats-Sequence header, the
                    key's value), else it counts as lost. Latency: the round
                    trip.
          kvwatch   Key-Value watch: puts --msgs values, each under its own
                    key (not timed), then an ephemeral push consumer as
                    kv.watch(">") makes it (deliver last_per_subject, ack
                    none, max_deliver 1, memory storage, no flow control)
                    delivers them all: values/s from its creation.
          objput    Object Store put of one object of --msgs chunks of --size
                    bytes (run_bench.py: 400 x 128 KiB = 50 MiB) into bucket
                    'bench' (stream OBJ_bench on $O.bench.C.> and
                    $O.bench.M.>), as nats.go's Put: GetInfo (a direct get of
                    the meta subject), the chunks to $O.bench.C.<nuid> with
                    at most --window PubAcks outstanding (nats.go's
                    PublishAsyncMaxPending defaults to 4000), the SHA-256
                    digest computed on the way, then the meta message with
                    Nats-Rollup: sub to $O.bench.M.<base64url name>, then
                    the wait for every PubAck. Latency: the one object's put.
          objget    Object Store get: puts the object as objput (not timed),
                    then GetInfo and an ephemeral push consumer on the chunk
                    subject (deliver all, ack none, no flow control)
                    receiving every chunk; the digest must match the meta's.
                    Latency: the one object's get (GetInfo to last chunk).

          falcohttp Falco's http_output against brokerd's Falco HTTP endpoint
                    (brokerd --falco_http_port; --http-url http://HOST:PORT):
                    --conns HTTP/1.1 keep-alive connections POST / the alerts
                    of --alerts (going round the file) until --msgs alerts
                    are posted; --batch alerts per request (1: one alert,
                    Content-Type application/json, like Falco; more: JSON
                    lines, application/x-ndjson); --pipeline requests in
                    flight per connection (1: wait for each answer before
                    the next request, like Falco's libcurl). One subscriber
                    on FALCO.* (brokerd publishes each alert there). The
                    stamp travels inside the alert's JSON, as its first
                    field: {"bench_stamp":"<seq> <send ns> <connection>",...
                    (still a valid alert; a batch shares its send time).
                    Every answer must be 200: other statuses are counted per
                    status (http_status) and fail the run (noted). Order is
                    checked per connection only (connections race each
                    other).
          falcopipe Falco's program_output through 'brokerd falco-pipe'
                    (--brokerd PATH; started as 'brokerd falco-pipe --server
                    --url --quiet [--window --pipe-window]'): --msgs alerts
                    of --alerts (going round the file), stamped as for
                    falcohttp, written one per line to its stdin as fast as
                    it reads them; one subscriber on FALCO.*. The clock
                    starts at the first line written (the pipe is given
                    0.3 s to connect first) and stops at the last delivery.
                    falco-pipe's summary line (accepted, rejected, dropped,
                    undelivered, retries) goes into the result; rejected,
                    dropped or undelivered alerts, or a non-zero exit, fail
                    the run. Order is not checked (the pipe has --window
                    alerts in flight at once, answered in any order).

        PAYLOADS
          Each sized message starts with an 8-byte big-endian sequence number
          and an 8-byte big-endian send time (CLOCK_MONOTONIC nanoseconds, this
          process), padded to --size bytes (at least 16).

        MEASURES
          seconds       first publish to last delivery (pub: to the end of the
                        publisher's flush; reqrep: first request to last reply)
          msgs_per_sec  published/s for pub, delivered/s otherwise (falcohttp,
                        falcopipe: alerts delivered to the FALCO.*
                        subscriber per second, first POST / first line
                        written to last delivery) (fanout
                        counts every copy: msgs x subs); jspub: messages with
                        a good PubAck per second (first publish to last
                        PubAck); jsconsume: distinct stream sequences delivered
                        per second (consumer creation to last delivery);
                        kvput: good PubAcks/s; kvget: gets/s; kvwatch:
                        values delivered/s; objput, objget: chunks acked /
                        received per second (MB/s is the object's rate)
          mb_per_sec    msgs_per_sec x payload bytes / 10^6 (falco: the mean
                        alert length)
          latency       end to end (receive time - send stamp) of every
                        delivered message; reqrep: the round trip. HdrHistogram,
                        3 significant digits; p50/p90/p99/p99.9 in microseconds.
                        The publisher runs as fast as it can, ahead of the
                        subscribers, so outside reqrep this includes queueing
                        (in the client, the sockets and the server).
                        falcohttp: the POST's send time to delivery to the
                        subscriber (so it includes the 200 wait of earlier
                        requests on no connection: each request is stamped
                        when it is written); falcopipe: the line's write to
                        the pipe to delivery (the pipe's buffering included).
                        jspub: publish to its PubAck, per message (with
                        --window 1 the synchronous round trip, fsync
                        included where the server syncs). jsconsume: null.
          integrity     per subscriber: delivered, lost (never arrived: after
                        the publisher's flush every subscriber connection is
                        flushed too, then missing messages are awaited until
                        --drain-timeout passes without any), duplicated, and
                        reordered (a sequence number below the last one seen).
                        A queue group is counted as a whole. reqrep counts
                        timed-out requests as lost. jspub: each message
                        must get exactly one PubAck with a "seq" and no
                        "error": lost = no PubAck or an error PubAck (noted),
                        duplicated = a second PubAck, reordered = stream
                        sequences not growing with the publish order; when no
                        PubAck comes for --drain-timeout the publisher stops
                        and the rest count as lost. jsconsume: by stream
                        sequence (from the $JS.ACK reply subject, 9-token or
                        12-token form): lost = never delivered, duplicated =
                        delivered again, reordered = a first delivery below
                        an earlier one, or a payload that is not the message
                        of its sequence; redeliveries are noted.

        OUTPUT
          A readable summary on stdout; with --json, one JSON object on the last
          stdout line: scenario, size, msgs, subs, seconds, msgs_per_sec,
          mb_per_sec, delivered, lost, duplicated, reordered, latency_us
          ({p50, p90, p99, p999} or null), and extras: published,
          publish_seconds, publish_msgs_per_sec, latency_max_us, notes; jspub
          also window, pub_ack_errors, stream; jsconsume also fill_seconds
          (publish_seconds is the fill too), acks_sent, redelivered,
          max_ack_pending; kvput also window, keys, pub_ack_errors, stream;
          kvget also keys, fill_seconds; kvwatch also fill_seconds,
          redelivered; objput also window, object_bytes, object_seconds,
          meta_ok; objget also object_bytes, object_seconds, put_seconds,
          digest_ok; falcohttp also conns, pipeline, batch, requests,
          http_status ({"200": requests, ...}), non_200_alerts; falcopipe
          also pipe_accepted, pipe_rejected, pipe_dropped, pipe_undelivered,
          pipe_retries, pipe_exit_status, pipe_seconds (first line to the
          pipe's exit).
          Progress (every second) and notes (disconnects, slow consumers,
          server errors, skipped alert lines) go to stderr; --quiet hides the
          progress.

        EXIT STATUS
          0 success; 2 integrity failed (lost, duplicated or reordered > 0; a
          subscriber the server cut off shows here, with a note; falcohttp: a
          non-200 answer; falcopipe: alerts rejected, dropped or undelivered
          by the pipe); 1 error (bad
          arguments, cannot connect, the publisher's connection lost, a flush
          failed, unreadable --alerts), with the reason on stderr.

        EXAMPLES
          brokerd-bench --url nats://127.0.0.1:4222 --scenario pubsub --msgs 2000000
          brokerd-bench --scenario fanout --subs 8 --size 1024 --msgs 200000 --json
          brokerd-bench --scenario falco --alerts alerts.jsonl --msgs 200000 --cycle
          brokerd-bench --scenario jspub --window 1 --size 128 --msgs 5000
          brokerd-bench --scenario jspub --window 256 --alerts alerts.jsonl --cycle --msgs 100000
          brokerd-bench --scenario jsconsume --size 128 --msgs 200000
          brokerd-bench --scenario kvput --window 1 --size 128 --keys 1000 --msgs 3000
          brokerd-bench --scenario kvget --size 128 --keys 1000 --msgs 20000
          brokerd-bench --scenario objput --size 131072 --msgs 400 --window 4000
          brokerd-bench --scenario falcohttp --http-url http://127.0.0.1:2801 --alerts alerts.jsonl --conns 4 --msgs 200000
          brokerd-bench --scenario falcohttp --http-url http://127.0.0.1:2801 --alerts alerts.jsonl --batch 100
          brokerd-bench --scenario falcopipe --brokerd .build/release/brokerd --alerts alerts.jsonl --msgs 100000
        """
    )

    @Option(help: "The server, nats://HOST:PORT (tls://HOST:PORT for TLS).")
    var url = "nats://127.0.0.1:4222"

    @Option(name: .customLong("tlsca"), help: ArgumentHelp("TLS certificate authority chain file (turns TLS on).", valueName: "file"))
    var tlsCA: String?

    @Option(name: .customLong("tlscert"), help: ArgumentHelp("TLS client certificate file (servers with verify: true).", valueName: "file"))
    var tlsCert: String?

    @Option(name: .customLong("tlskey"), help: ArgumentHelp("TLS client key file.", valueName: "file"))
    var tlsKey: String?

    @Option(help: "The load to run (see SCENARIOS above).")
    var scenario: Scenario

    @Option(help: ArgumentHelp("Payload bytes per message, at least 16 (falco: ignored, the alerts' own length).", valueName: "bytes"))
    var size = 16

    @Option(help: ArgumentHelp("Messages to publish (reqrep: requests; falco: at most this many alerts).", valueName: "n"))
    var msgs = 100_000

    @Option(help: ArgumentHelp("Subscribers for fanout, members of the queue group for queue (default 4; other scenarios have fixed counts).", valueName: "k"))
    var subs: Int?

    @Flag(help: "Print the result as one JSON object on the last stdout line.")
    var json = false

    @Option(help: ArgumentHelp("Falco alerts, JSONL (falco scenario; jspub: publish these instead of sized messages).", valueName: "path"))
    var alerts: String?

    @Flag(help: "falco, jspub --alerts: send --msgs alerts, going round the file as often as needed.")
    var cycle = false

    @Option(help: ArgumentHelp("Seconds to keep waiting for missing messages while none arrive, after the final flushes.", valueName: "seconds"))
    var drainTimeout = 5.0

    @Option(help: ArgumentHelp("reqrep: seconds before a request counts as lost.", valueName: "seconds"))
    var requestTimeout = 2.0

    @Option(help: ArgumentHelp("Bytes a publisher may have buffered in its client before publish waits (ClientLib's maxPendingOutboundBytes; default: the client's, 32 MiB).", valueName: "bytes"))
    var pendingBytes: Int?

    @Option(help: ArgumentHelp("kvput, kvget: keys in the bucket, used round-robin.", valueName: "k"))
    var keys = 1000

    @Option(help: ArgumentHelp("jspub, jsconsume, kvput, objput: PubAcks a publisher may wait for at once (1 = synchronous publish); jsacksync: ack confirmations outstanding.", valueName: "w"))
    var window = 256

    @Flag(help: "jspub, jsconsume: leave the stream (and its messages) in place at the end.")
    var keepStream = false

    @Option(help: ArgumentHelp("falcohttp: brokerd's Falco HTTP endpoint (brokerd --falco_http_port).", valueName: "http://host:port"))
    var httpUrl: String?

    @Option(help: ArgumentHelp("falcohttp: HTTP/1.1 keep-alive connections posting at once.", valueName: "c"))
    var conns = 4

    @Option(help: ArgumentHelp("falcohttp: requests in flight per connection (1: wait for each answer, like Falco).", valueName: "n"))
    var pipeline = 1

    @Option(help: ArgumentHelp("falcohttp: alerts per request (more than 1: JSON lines, application/x-ndjson).", valueName: "b"))
    var batch = 1

    @Flag(help: "falcohttp: a file stream BENCHFALCO captures FALCO.> (brokerd -js): each 200 then waits for the alerts' fsync; the stream must hold every accepted alert at the end (then it is deleted, unless --keep-stream).")
    var capture = false

    @Option(help: ArgumentHelp("falcopipe: the brokerd binary whose falco-pipe subcommand to run (default: brokerd next to this tool).", valueName: "path"))
    var brokerd: String?

    @Option(help: ArgumentHelp("falcopipe: falco-pipe's --window (alerts in flight; default: falco-pipe's own).", valueName: "w"))
    var pipeWindow: Int?

    @Flag(help: "No progress lines on stderr (notes and errors still go there).")
    var quiet = false

    func validate() throws {
        guard size >= 16 || [.falco, .falcohttp, .falcopipe].contains(scenario) || (scenario == .jspub && alerts != nil) else { throw ValidationError("--size must be at least 16 (the sequence number and the timestamp)") }
        guard size <= 64 * 1024 * 1024 else { throw ValidationError("--size must be at most 64 MiB") }
        guard msgs > 0 else { throw ValidationError("--msgs must be positive") }
        if let subs, subs <= 0 { throw ValidationError("--subs must be positive") }
        if [.falco, .falcohttp, .falcopipe].contains(scenario), alerts == nil { throw ValidationError("--scenario \(scenario.rawValue) needs --alerts PATH") }
        if scenario == .falcohttp, httpUrl == nil { throw ValidationError("--scenario falcohttp needs --http-url http://HOST:PORT") }
        guard conns > 0, pipeline > 0, batch > 0 else { throw ValidationError("--conns, --pipeline and --batch must be positive") }
        if let pipeWindow, pipeWindow <= 0 { throw ValidationError("--pipe-window must be positive") }
        guard window > 0 else { throw ValidationError("--window must be positive") }
        guard keys > 0 else { throw ValidationError("--keys must be positive") }
        if [.objput, .objget].contains(scenario), msgs > 32768 { throw ValidationError("--msgs (chunks of the object) must be at most 32768") }
        guard drainTimeout > 0, requestTimeout > 0 else { throw ValidationError("timeouts must be positive") }
        guard url.hasPrefix("nats://") || url.hasPrefix("tls://") || !url.contains("://") else {
            throw ValidationError("--url must be nats://HOST:PORT or tls://HOST:PORT")
        }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tlscert and --tlskey go together") }
    }

    var benchConfig: BenchConfig {
        let subscribers = switch scenario {
        case .pub, .jspub, .kvput, .objput: 0
        case .pubsub, .reqrep, .falco, .jsconsume, .jsacksync, .falcohttp, .falcopipe, .kvget, .kvwatch, .objget: 1
        case .wildcard: 2
        case .fanout, .queue: subs ?? 4
        }
        return BenchConfig(url: url, scenario: scenario, size: size, msgs: msgs, subs: subscribers, alertsPath: alerts,
                           cycleAlerts: cycle, drainTimeout: .milliseconds(Int64(drainTimeout * 1000)),
                           requestTimeout: .milliseconds(Int64(requestTimeout * 1000)), progress: !quiet,
                           maxPendingBytes: pendingBytes, window: window, keepStream: keepStream,
                           httpURL: httpUrl, conns: conns, pipeline: pipeline, batch: batch, capture: capture,
                           brokerdPath: brokerd ?? Self.siblingBrokerd, pipeWindow: pipeWindow, tls: tlsOptions,
                           keys: keys)
    }

    var tlsOptions: NATSTLSOptions {
        var tls = NATSTLSOptions()
        tls.caFile = tlsCA
        tls.certFile = tlsCert
        tls.keyFile = tlsKey
        return tls
    }

    /// `brokerd` in the directory of this executable (both are built into the same .build/<config>/).
    static var siblingBrokerd: String? {
        guard let url = Bundle.main.executableURL else { return nil }
        return url.deletingLastPathComponent().appendingPathComponent("brokerd").path
    }

    /// Exit status 1 for bad arguments too (the contract: 0 ok, 2 integrity, 1 error); --help exits 0.
    static func main() async {
        let command: BrokerdBench
        do {
            command = try parse()
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }
            FileHandle.standardError.write(Data("brokerd-bench: error: \(message(for: error))\n\(usageString())\nSee 'brokerd-bench --help'.\n".utf8))
            Foundation.exit(1)
        }
        Foundation.exit(await command.execute())
    }

    func run() async throws {
        let code = await execute()
        if code != 0 { throw ExitCode(code) }
    }

    func execute() async -> Int32 {
        let runner = Runner(config: benchConfig)
        let outcome: Result<BenchResult, any Error>
        do {
            outcome = .success(try await runner.run())
        } catch {
            outcome = .failure(error)
        }
        await runner.closeAll()
        switch outcome {
        case .failure(let error):
            FileHandle.standardError.write(Data("brokerd-bench: error: \(error)\n".utf8))
            return 1
        case .success(let result):
            print(json ? result.json() : result.summary())
            fflush(nil)
            if result.integrityFailed {
                FileHandle.standardError.write(Data("brokerd-bench: integrity failed: lost \(result.lost), duplicated \(result.duplicated), reordered \(result.reordered)\n".utf8))
                return 2
            }
            return 0
        }
    }
}
