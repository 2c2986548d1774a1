"""One run of the load tool against one server: its JSON result checked, the server's CPU around it."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import time
from typing import Any, Optional

from .config import RESULT_KEYS, ROOT
from .plan import Row, tool_argv
from .servers import Server, ServerError, children_cpu_seconds, process_cpu_seconds
from .util import file_tail, log, tail


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

    counted = obj["msgs"] if row.tool_scenario == "pub" else obj["delivered"]
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
