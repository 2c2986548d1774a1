"""The one-off JetStream figures (round 1 only, fresh stores): recovery time after a restart (jsrecovery) and
disk use per alert (jsdisk)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Optional

from .config import HOST, JS_ASYNC_WINDOW, JS_SIZE
from .runs import run_tool_json
from .servers import ServerError, js_server


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
