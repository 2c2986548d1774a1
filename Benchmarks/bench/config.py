"""Constants shared by every part of run_bench.py: where things are, the scenarios, the message budgets,
the tool's JSON contract and the exit statuses."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent  # the repository root (Benchmarks/bench/../..)
HOST = "127.0.0.1"  # loopback only, never 0.0.0.0
SERVERS = ("brokerd", "nats-server")  # A, B: the order of every round
SIZED_SCENARIOS = ("pub", "pubsub", "fanout", "queue", "wildcard")
# Key-Value and Object Store rows, built on JetStream as nats.go / nats-py use them (same servers as jspub).
KV_OBJ_SCENARIOS = ("kvput", "kvget", "kvwatch", "objput", "objget")
OBJ_SCENARIOS = ("objput", "objget")
JS_ROW_SCENARIOS = ("jspub", "jsconsume", "jsacksync") + KV_OBJ_SCENARIOS  # tool rows against the JetStream-enabled servers
JS_EXTRA_SCENARIOS = ("jsrecovery", "jsdisk")  # one-off measurements, not table rows
JS_SCENARIOS = JS_ROW_SCENARIOS + JS_EXTRA_SCENARIOS
# Falco http_output again with a file stream capturing FALCO.> (brokerd -js): each 200 waits for the alerts'
# fsync. Runs after the JetStream rows, against the same -js servers.
FALCO_CAPTURE_SCENARIOS = ("falcohttpjs",)
FALCO_INGEST_SCENARIOS = ("falcohttp", "falcopipe") + FALCO_CAPTURE_SCENARIOS  # brokerd only: its Falco HTTP endpoint and falco-pipe
TLS_SCENARIOS = ("tlspubsub", "tlsfanout")  # pubsub / fanout over TLS, against a pair started with a tls { } block
TLS_TOOL_SCENARIO = {"tlspubsub": "pubsub", "tlsfanout": "fanout"}
# pub / pubsub with per-user permissions on, against a pair started with an authorization { users } block: the
# publisher's subject goes through the permission check (cached per subject) and the subscriber's wildcard
# overlaps a deny entry (filtered where the trie matches).
PERM_SCENARIOS = ("permpub", "permpubsub")
PERM_TOOL_SCENARIO = {"permpub": "pub", "permpubsub": "pubsub"}
BRIDGE_SCENARIOS = ("bridge",)  # brokerd only, one-off: the Pub/Sub bridge against the emulator (bridge_bench.py)
EXTRA_SCENARIOS = JS_EXTRA_SCENARIOS + BRIDGE_SCENARIOS  # one-off measurements after the table rows
ALL_SCENARIOS = (SIZED_SCENARIOS + ("reqrep", "falco", "falcohttp", "falcopipe") + TLS_SCENARIOS + PERM_SCENARIOS
                 + JS_ROW_SCENARIOS + FALCO_CAPTURE_SCENARIOS + JS_EXTRA_SCENARIOS + BRIDGE_SCENARIOS)
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
FALCOHTTP_CAPTURE_BUDGET = 50_000  # falcohttpjs: each 200 waits for an fsync (group commit across connections)
FALCOHTTP_CAPTURE_CONNS = 64  # falcohttpjs's second row: a cluster's worth of Falco pods posting at once
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
# Confirmed acks (ack_sync): brokerd answers each once the consumer state holding it is fsynced (group commit),
# nats-server at once. One at a time (a nats-py loop of ack_sync) is bounded by the fsync latency.
JS_ACKSYNC_SYNC_BUDGET = 3_000
JS_ACKSYNC_ASYNC_BUDGET = 50_000
JS_RECOVERY_MSGS = 1_000_000  # x 128 B, filled with window 256, then SIGTERM and restart
JS_DISK_ALERTS = 100_000  # the alerts file cycled to this many
JS_DISK_MIN_QUICK = 20_000  # at least two brokerd blocks of 8 MiB are sealed (compressed)
# Key-Value (bucket KV_bench, history 1): synchronous puts (one PubAck at a time, so bounded by brokerd's fsync
# per put like jspub/1), direct gets one at a time (a round trip each, like reqrep), a watch of N values.
KV_SIZE = 128
KV_KEYS = 1_000  # kvput, kvget: keys used round-robin (kvwatch: one key per value)
KV_PUT_BUDGET = 3_000
KV_GET_BUDGET = 20_000
KV_WATCH_BUDGET = 100_000  # kvwatch: one key per value
# Object Store (bucket OBJ_bench): one object of OBJ_CHUNKS x 128 KiB = 50 MiB per run (x --scale, at least
# OBJ_MIN_CHUNKS; --msgs does not apply); put with up to 4,000 chunk PubAcks outstanding (nats.go's default
# PublishAsyncMaxPending, so all 400 chunks are in flight), get through a push consumer on the chunks.
OBJ_CHUNK = 131_072
OBJ_CHUNKS = 400
OBJ_MIN_CHUNKS = 8
OBJ_PUT_WINDOW = 4_000
# Pub/Sub bridge (brokerd only): alerts per phase (plain client 1 and 4 in flight, bridge pre-filled, live), each on
# a fresh emulator; ~15-20k alerts/s at batch 100, so ~40-50 s in all with the emulators' starts and warm-ups.
BRIDGE_ALERTS = 50_000
BRIDGE_MIN_QUICK = 10_000

RESULT_KEYS = ("scenario", "size", "msgs", "subs", "seconds", "msgs_per_sec", "mb_per_sec",
               "delivered", "lost", "duplicated", "reordered", "latency_us")

EXIT_OK, EXIT_ERROR, EXIT_INTEGRITY, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 64, 130

# /proc/<pid>/stat counts CPU time in clock ticks (10 ms on Linux).
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
