"""The plan: which rows run, with how many messages, and the brokerd-bench command line of each."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Optional

from .config import (ALL_SCENARIOS, BUDGET, BUDGET_BYTES, FALCO_BUDGET, FALCO_CAPTURE_SCENARIOS, FALCO_INGEST_SCENARIOS,
                     FALCOHTTP_CAPTURE_BUDGET, FALCOHTTP_CAPTURE_CONNS,
                     FALCOHTTP_BATCH_BUDGET, FALCOHTTP_BUDGET, FALCOPIPE_BUDGET, HOST, JS_ASYNC_BUDGET,
                     JS_ACKSYNC_ASYNC_BUDGET, JS_ACKSYNC_SYNC_BUDGET, JS_ASYNC_WINDOW, JS_CONSUME_BUDGET, JS_FALCO_BUDGET, JS_ROW_SCENARIOS, JS_SIZE, JS_SYNC_BUDGET,
                     KV_GET_BUDGET, KV_KEYS, KV_PUT_BUDGET, KV_SIZE, KV_WATCH_BUDGET, MIN_MSGS, OBJ_CHUNK, OBJ_CHUNKS,
                     OBJ_MIN_CHUNKS, OBJ_PUT_WINDOW, OBJ_SCENARIOS, PERM_SCENARIOS, PERM_TOOL_SCENARIO, REQREP_BUDGET, SIZED_SCENARIOS, TLS_SCENARIOS,
                     TLS_TOOL_SCENARIO)
from .servers import Server


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
    keys: Optional[int] = None  # kvput, kvget: --keys

    @property
    def brokerd_only(self) -> bool:
        return self.scenario in FALCO_INGEST_SCENARIOS

    @property
    def jetstream(self) -> bool:
        return self.scenario in JS_ROW_SCENARIOS or self.scenario in FALCO_CAPTURE_SCENARIOS

    @property
    def tls(self) -> bool:
        return self.scenario in TLS_SCENARIOS

    @property
    def perms(self) -> bool:
        return self.scenario in PERM_SCENARIOS

    @property
    def pair(self) -> Optional[str]:
        """The server pair started another way that this row runs against (None: the plain pair)."""
        return "tls" if self.tls else "perms" if self.perms else None

    @property
    def tool_scenario(self) -> str:
        if self.scenario in FALCO_CAPTURE_SCENARIOS:
            return "falcohttp"  # with --capture
        return TLS_TOOL_SCENARIO.get(self.scenario) or PERM_TOOL_SCENARIO.get(self.scenario, self.scenario)

    @property
    def key(self) -> str:
        if self.scenario == "jspub":
            return f"{self.scenario}/{'falco' if self.alerts else self.size}/w{self.window}"
        if self.scenario == "jsacksync":
            return f"{self.scenario}/{self.size}/w{self.window}"
        if self.scenario in ("falcohttp", "falcohttpjs"):
            return f"{self.scenario}/c{self.conns}/b{self.batch}"
        return f"{self.scenario}/{self.size}"

    @property
    def label(self) -> str:
        if self.scenario == "jspub":
            return f"{'jsfalco' if self.alerts else 'jspub'}/{self.window}"
        if self.scenario == "jsacksync":
            return f"jsacksync/{self.window}"
        if self.scenario == "falcohttp":
            return f"falcohttp/{self.conns}" + (f"x{self.batch}" if self.batch > 1 else "")
        if self.scenario == "falcohttpjs":
            return f"falcohttp+js/{self.conns}"
        if self.scenario in OBJ_SCENARIOS:
            return f"{self.scenario}/{self.msgs * self.size / 2**20:g}M"  # the object's size in MiB
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
        if sc in SIZED_SCENARIOS or sc in TLS_SCENARIOS or sc in PERM_SCENARIOS:
            for size in a.sizes:
                budget = BUDGET.get(size) or min(2_000_000, max(MIN_MSGS, BUDGET_BYTES // size))
                fanout = sc in ("fanout", "tlsfanout")
                factor = a.subs if fanout else (2 if sc == "wildcard" else 1)
                rows.append(Row(sc, size, msgs_for(budget, factor, a),
                                a.subs if fanout or sc == "queue" else None))
        elif sc == "reqrep":
            rows.append(Row(sc, a.reqrep_size, msgs_for(REQREP_BUDGET, 1, a), None))
        elif sc == "falco":
            rows.append(Row(sc, falco_size, msgs_for(FALCO_BUDGET, 1, a), None))
        elif sc == "falcohttp":
            rows.append(Row(sc, falco_size, msgs_for(FALCOHTTP_BUDGET, 1, a), None, conns=a.falco_conns, batch=1))
            if a.falco_batch > 1:
                rows.append(Row(sc, falco_size, msgs_for(FALCOHTTP_BATCH_BUDGET, 1, a), None, conns=a.falco_conns,
                                batch=a.falco_batch))
        elif sc == "falcohttpjs":
            for conns in sorted({a.falco_conns, FALCOHTTP_CAPTURE_CONNS}):
                rows.append(Row(sc, falco_size, msgs_for(FALCOHTTP_CAPTURE_BUDGET, 1, a), None, conns=conns, batch=1))
        elif sc == "falcopipe":
            rows.append(Row(sc, falco_size, msgs_for(FALCOPIPE_BUDGET, 1, a), None))
        elif sc == "jspub":
            rows.append(Row(sc, JS_SIZE, msgs_for(JS_SYNC_BUDGET, 1, a), None, window=1))
            rows.append(Row(sc, JS_SIZE, msgs_for(JS_ASYNC_BUDGET, 1, a), None, window=JS_ASYNC_WINDOW))
            rows.append(Row(sc, falco_size, msgs_for(JS_FALCO_BUDGET, 1, a), None, window=JS_ASYNC_WINDOW,
                            alerts=True))
        elif sc == "jsconsume":
            rows.append(Row(sc, JS_SIZE, msgs_for(JS_CONSUME_BUDGET, 1, a), None))
        elif sc == "jsacksync":
            rows.append(Row(sc, JS_SIZE, msgs_for(JS_ACKSYNC_SYNC_BUDGET, 1, a), None, window=1))
            rows.append(Row(sc, JS_SIZE, msgs_for(JS_ACKSYNC_ASYNC_BUDGET, 1, a), None, window=JS_ASYNC_WINDOW))
        elif sc == "kvput":
            rows.append(Row(sc, KV_SIZE, msgs_for(KV_PUT_BUDGET, 1, a), None, window=1, keys=KV_KEYS))
        elif sc == "kvget":
            rows.append(Row(sc, KV_SIZE, msgs_for(KV_GET_BUDGET, 1, a), None, keys=KV_KEYS))
        elif sc == "kvwatch":
            rows.append(Row(sc, KV_SIZE, msgs_for(KV_WATCH_BUDGET, 1, a), None))
        elif sc in OBJ_SCENARIOS:
            # msgs = the object's chunks (one object per run); --msgs does not apply, --scale does.
            chunks = max(OBJ_MIN_CHUNKS, int(OBJ_CHUNKS * a.scale))
            rows.append(Row(sc, OBJ_CHUNK, chunks, None, window=OBJ_PUT_WINDOW))
    return rows


def tool_argv(a: argparse.Namespace, tool: str, row: Row, url: str, server: Optional[Server] = None) -> list[str]:
    if row.perms:
        # The same load as the user the permissions apply to.
        url = url.replace("nats://", "nats://bench:bench@", 1)
    if row.tls:
        # The same load over TLS: tls:// and the bench CA (the servers' certificate is for 127.0.0.1).
        url = url.replace("nats://", "tls://", 1)
    argv = [tool, "--url", url, "--scenario", row.tool_scenario, "--size", str(row.size), "--msgs", str(row.msgs)]
    if row.tls:
        ca = server.tls_ca if server and server.tls_ca else "<out dir>/tls/ca.pem"
        argv += ["--tlsca", ca]
    if row.subs:
        argv += ["--subs", str(row.subs)]
    argv.append("--json")
    if row.scenario == "falco" or row.alerts:
        # --cycle: go round the alerts file until --msgs alerts were sent (5,000 lines alone are ~15 ms).
        argv += ["--alerts", a.alerts, "--cycle"]
    if row.window:
        argv += ["--window", str(row.window)]
    if row.keys:
        argv += ["--keys", str(row.keys)]
    if row.scenario in FALCO_INGEST_SCENARIOS:
        argv += ["--alerts", a.alerts]
    if row.scenario in ("falcohttp", "falcohttpjs"):
        http = f"http://{HOST}:{server.falco_port}" if server and server.falco_port else f"http://{HOST}:HTTPPORT"
        argv += ["--http-url", http, "--conns", str(row.conns), "--batch", str(row.batch)]
    if row.scenario in FALCO_CAPTURE_SCENARIOS:
        argv.append("--capture")
    if row.scenario == "falcopipe":
        argv += ["--brokerd", server.binary if server else a.brokerd]
    return argv
