#!/usr/bin/env python3
"""The `bridge` scenario of run_bench.py: brokerd's Pub/Sub bridge against the Pub/Sub emulator's own limit.

Python 3.11, standard library only. Used by run_bench.py (scenario `bridge`), or alone:
    python3 Benchmarks/bridge_bench.py --brokerd .build/release/brokerd [--alerts N] [--json OUT]

Each phase gets a fresh emulator (the Google Cloud CLI's, JAVA_OPTS=-Xmx512m, topic projects/bench/topics/
falco-alerts, no subscription), warmed up (JIT) with 20,000 alerts from the plain client first: the emulator keeps
what it is sent in direct memory even without a subscription, and fails with OutOfMemoryError (direct buffer
memory) after ~100k alerts at -Xmx512m. The phases:
  plain/1      a plain HTTP client: one keep-alive connection, one request in flight, 100 alerts per
               POST .../topics/falco-alerts:publish (the bodies built before the clock starts)
  plain/4      the same with 4 processes, one connection and one request in flight each (the bridge's
               default: 4 requests in flight)
  bridge       brokerd without the bridge fills stream BRIDGE_FALCO-ALERTS (FALCO.>) with N alerts (PubAcks
               awaited; the headers brokerd's Falco ingest sets), stops (SIGTERM), and is started again on
               the same store with the gcp_pubsub block (default batching: 100 msgs / 1 MB / 10 ms, 4 in
               flight). /varz is polled (every 5 ms until the bridge is ready, then every 50 ms): alerts/s
               from the first poll where the bridge is ready until bridged == N (and from brokerd's spawn)
  live         the bridge running on an empty stream while N alerts are published into it (windowed
               PubAcks): alerts/s from the first publish until bridged == N
Every request carries the same alerts and attributes as the bridge's (nats_subject, falco_priority, falco_rule,
falco_source, falco_hostname, nats_msg_id); the file is cycled, each pass with fresh Nats-Msg-Ids (brokerd
dedupes on them). The ratio bridge / plain at the same concurrency is the figure of merit: >= 90 % means the
bridge is not the bottleneck. CPU seconds of the JVM, brokerd and the Python clients are recorded per phase.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

HOST = "127.0.0.1"
PROJECT = "bench"
TOPIC = "falco-alerts"
STREAM = "BRIDGE_FALCO-ALERTS"
BATCH = 100  # the bridge's default batch (and Google's clients')
IN_FLIGHT = 4  # the bridge's default requests in flight
DEFAULT_ALERTS = 50_000
WARMUP_ALERTS = 20_000
FILL_WINDOW = 2_000  # PubAcks outstanding while filling the stream
POLL = 0.05  # /varz poll interval
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def cpu_seconds(pid: Optional[int]) -> Optional[float]:
    """utime+stime of a process (and its waited-for children), in seconds."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().decode("ascii", "replace").rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def emulator_script() -> Optional[str]:
    """The emulator's start script under the Google Cloud SDK root, or None when it is not installed."""
    roots = []
    gcloud = shutil.which("gcloud")
    if gcloud:
        try:
            out = subprocess.run([gcloud, "info", "--format=value(installation.sdk_root)"], capture_output=True,
                                 text=True, timeout=60, stdin=subprocess.DEVNULL).stdout.strip()
            if out:
                roots.append(out)
        except (OSError, subprocess.SubprocessError):
            pass
    roots += ["/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk"]
    for root in roots:
        script = Path(root) / "platform/pubsub-emulator/bin/cloud-pubsub-emulator"
        if script.is_file() and shutil.which("java"):
            return str(script)
    return None


# --------------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------------


class Proc:
    """A child in its own session (so the whole group can be stopped), logging to a file."""

    def __init__(self, argv: list[str], log_path: Path, env: Optional[dict] = None):
        self.argv, self.log_path = argv, log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.spawned_at = time.monotonic()
        with open(log_path, "ab") as f:
            self.proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 1500) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> Optional[int]:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode


def start_emulator(script: str, log_path: Path, timeout: float = 60.0) -> tuple[Proc, int]:
    port = free_port()
    env = dict(os.environ, JAVA_OPTS="-Xmx512m")
    p = Proc([script, f"--host={HOST}", f"--port={port}"], log_path, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not p.alive():
            raise RuntimeError(f"the emulator exited: {p.log_tail()}")
        try:
            c = http.client.HTTPConnection(HOST, port, timeout=1)
            c.request("GET", "/")
            if c.getresponse().read().strip() == b"Ok":
                c.close()
                return p, port
        except OSError:
            pass
        time.sleep(0.1)
    p.stop()
    raise RuntimeError(f"the emulator was not ready within {timeout:g} s: {p.log_tail()}")


def emulator_call(port: int, method: str, path: str, body: Optional[dict] = None) -> tuple[int, bytes]:
    c = http.client.HTTPConnection(HOST, port, timeout=30)
    c.request(method, f"/v1/{path}", body=json.dumps(body or {}).encode(),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def start_brokerd(binary: str, log_path: Path, conf: Path, timeout: float = 30.0) -> tuple[Proc, int, int]:
    """brokerd -a HOST -p P -m M -c conf; ready when the NATS port sends INFO."""
    port, mport = free_port(), free_port()
    p = Proc([binary, "-a", HOST, "-p", str(port), "-m", str(mport), "-c", str(conf)], log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not p.alive():
            raise RuntimeError(f"brokerd exited ({p.proc.returncode}): {p.log_tail()}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                if s.makefile("rb").readline().startswith(b"INFO "):
                    return p, port, mport
        except OSError:
            pass
        time.sleep(0.01)
    p.stop()
    raise RuntimeError(f"brokerd did not answer within {timeout:g} s: {p.log_tail()}")


def varz_bridge(mport: int) -> Optional[dict]:
    try:
        c = http.client.HTTPConnection(HOST, mport, timeout=2)
        c.request("GET", "/varz")
        doc = json.loads(c.getresponse().read())
        c.close()
    except (OSError, ValueError):
        return None
    bridges = doc.get("bridges") or []
    return bridges[0] if bridges else None


# --------------------------------------------------------------------------------------------------
# the alerts
# --------------------------------------------------------------------------------------------------


def load_alerts(path: str) -> list[bytes]:
    with open(path, "rb") as f:
        return [line.rstrip(b"\r\n") for line in f if line.strip()]


class Alert:
    __slots__ = ("payload", "subject", "attributes")

    def __init__(self, payload: bytes, subject: str, attributes: dict[str, str]):
        self.payload, self.subject, self.attributes = payload, subject, attributes


def make_alerts(lines: list[bytes], n: int, salt: str) -> list[Alert]:
    """n alerts, the file cycled; each with a Nats-Msg-Id of its own (sha256:<32 hex>, as brokerd's ingest
    makes them; `salt` keeps two phases' ids apart)."""
    parsed = [json.loads(l) for l in lines]
    out = []
    for i in range(n):
        k = i % len(lines)
        d = parsed[k]
        msg_id = "sha256:" + hashlib.sha256(lines[k] + f"#{salt}{i // len(lines)}".encode()).hexdigest()[:32]
        attrs = {"nats_subject": f"FALCO.{d.get('priority', 'Unknown')}", "falco_priority": str(d.get("priority", "")),
                 "falco_rule": str(d.get("rule", "")), "falco_source": str(d.get("source", "")),
                 "falco_hostname": str(d.get("hostname", "")), "nats_msg_id": msg_id}
        out.append(Alert(lines[k], attrs["nats_subject"], attrs))
    return out


def publish_bodies(alerts: list[Alert], batch: int) -> list[tuple[int, bytes]]:
    """(count, JSON body) per publish request, as the bridge builds them."""
    out = []
    for i in range(0, len(alerts), batch):
        chunk = alerts[i:i + batch]
        msgs = [{"data": base64.b64encode(a.payload).decode(), "attributes": a.attributes} for a in chunk]
        out.append((len(chunk), json.dumps({"messages": msgs}, separators=(",", ":")).encode()))
    return out


def hpub_frames(alerts: list[Alert], inbox: str) -> list[bytes]:
    """HPUB frames with the headers brokerd's Falco ingest sets; replies to inbox.<i>."""
    frames = []
    for i, a in enumerate(alerts):
        at = a.attributes
        hdr = ("NATS/1.0\r\n"
               f"Falco-Rule: {at['falco_rule']}\r\nFalco-Priority: {at['falco_priority']}\r\n"
               f"Falco-Hostname: {at['falco_hostname']}\r\nFalco-Source: {at['falco_source']}\r\n"
               f"Nats-Msg-Id: {at['nats_msg_id']}\r\n\r\n").encode()
        frames.append(f"HPUB {a.subject} {inbox}.{i} {len(hdr)} {len(hdr) + len(a.payload)}\r\n".encode()
                      + hdr + a.payload + b"\r\n")
    return frames


# --------------------------------------------------------------------------------------------------
# the plain HTTP client
# --------------------------------------------------------------------------------------------------

_BODIES: list[tuple[int, bytes]] = []  # set before forking the workers (inherited, not pickled)


def _worker(port: int, next_index, start_evt, results, wid: int) -> None:
    path = f"/v1/projects/{PROJECT}/topics/{TOPIC}:publish"
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    conn.connect()
    sent = errors = requests = 0
    first_error = None
    start_evt.wait()
    t0 = time.monotonic()
    c0 = os.times()
    while True:
        with next_index.get_lock():
            i = next_index.value
            next_index.value += 1
        if i >= len(_BODIES):
            break
        count, body = _BODIES[i]
        requests += 1
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            ids = json.loads(data).get("messageIds", []) if r.status == 200 else []
        except (OSError, http.client.HTTPException, ValueError) as e:
            errors += 1
            first_error = first_error or f"{type(e).__name__}: {e}"
            conn.close()
            if errors > 20:
                break
            continue
        if len(ids) == count:
            sent += count
        else:
            errors += 1
            first_error = first_error or f"HTTP {r.status}: {data[:200]!r}"
    t1 = time.monotonic()
    c1 = os.times()
    conn.close()
    results.put({"worker": wid, "sent": sent, "requests": requests, "errors": errors, "first_error": first_error,
                 "t0": t0, "t1": t1, "cpu": (c1.user - c0.user) + (c1.system - c0.system)})


def plain_publish(port: int, bodies: list[tuple[int, bytes]], conns: int, jvm_pid: Optional[int]) -> dict:
    """Publishes every body over `conns` processes (one keep-alive connection, one request in flight each)."""
    global _BODIES
    _BODIES = bodies
    ctx = mp.get_context("fork")
    next_index, start_evt, results = ctx.Value("l", 0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(port, next_index, start_evt, results, w), daemon=True)
             for w in range(conns)]
    for p in procs:
        p.start()
    time.sleep(0.3)  # all connected
    jvm0 = cpu_seconds(jvm_pid)
    start_evt.set()
    outs = [results.get(timeout=600) for _ in procs]
    jvm1 = cpu_seconds(jvm_pid)
    for p in procs:
        p.join(timeout=10)
    _BODIES = []
    t0, t1 = min(o["t0"] for o in outs), max(o["t1"] for o in outs)
    sent = sum(o["sent"] for o in outs)
    wall = t1 - t0
    return {"conns": conns, "alerts": sent, "requests": sum(o["requests"] for o in outs),
            "errors": sum(o["errors"] for o in outs), "first_error": next((o["first_error"] for o in outs if o["first_error"]), None),
            "seconds": round(wall, 4), "alerts_per_sec": round(sent / wall, 1) if wall > 0 else None,
            "client_cpu_seconds": round(sum(o["cpu"] for o in outs), 3),
            "client_cpu_max_share": round(max(o["cpu"] / (o["t1"] - o["t0"]) for o in outs if o["t1"] > o["t0"]), 3),
            "emulator_cpu_seconds": round(jvm1 - jvm0, 3) if jvm0 is not None and jvm1 is not None else None}


# --------------------------------------------------------------------------------------------------
# brokerd: fill the stream, run the bridge
# --------------------------------------------------------------------------------------------------


class NatsConn:
    """A minimal NATS client: CONNECT, SUB to an inbox, pipelined HPUB with PubAcks counted."""

    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=30)
        self.f = self.sock.makefile("rb")
        if not self.f.readline().startswith(b"INFO "):
            raise RuntimeError("no INFO from brokerd")
        self.inbox = "_INBOX.bridgebench"
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,'
                          b'"protocol":1,"name":"bridge_bench"}\r\n' + f"SUB {self.inbox}.* 1\r\nPING\r\n".encode())
        while (line := self.f.readline()) != b"PONG\r\n":
            if not line or line.startswith(b"-ERR"):
                raise RuntimeError(f"brokerd refused the connection: {line!r}")

    def read_msg(self) -> tuple[str, bytes]:
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("brokerd closed the connection")
            if line.startswith(b"MSG "):
                parts = line.split()
                n = int(parts[-1])
                data = self.f.read(n + 2)[:n]
                return parts[1].decode(), data
            if line.startswith(b"HMSG "):
                parts = line.split()
                n = int(parts[-1])
                data = self.f.read(n + 2)[:n]
                return parts[1].decode(), data
            if line.startswith(b"PING"):
                self.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise RuntimeError(f"brokerd: {line.decode().strip()}")

    def request(self, subject: str, body: dict) -> dict:
        payload = json.dumps(body).encode()
        self.sock.sendall(f"PUB {subject} {self.inbox}.req {len(payload)}\r\n".encode() + payload + b"\r\n")
        while True:
            subj, data = self.read_msg()
            if subj.endswith(".req"):
                return json.loads(data) if data else {}

    def publish_acked(self, frames: list[bytes], window: int = FILL_WINDOW) -> dict:
        """Sends every frame with at most `window` PubAcks outstanding; counts ok / duplicate / error acks."""
        sent = acked = ok = dup = errors = 0
        first_error = None
        n = len(frames)
        while acked < n:
            if sent < n and sent - acked < window:
                end = min(n, acked + window)
                self.sock.sendall(b"".join(frames[sent:end]))
                sent = end
            _, data = self.read_msg()
            acked += 1
            if b'"error"' in data:
                errors += 1
                first_error = first_error or data[:200].decode("utf-8", "replace")
            elif b'"duplicate":true' in data:
                dup += 1
            else:
                ok += 1
        return {"ok": ok, "duplicates": dup, "errors": errors, "first_error": first_error}

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def write_conf(path: Path, store: Path, emulator_port: Optional[int]) -> Path:
    text = f'jetstream {{ store_dir: "{store}" }}\n'
    if emulator_port is not None:
        text += (f'gcp_pubsub {{\n  project: "{PROJECT}"\n  topic: "{TOPIC}"\n  subjects: ["FALCO.>"]\n'
                 f'  endpoint: "http://{HOST}:{emulator_port}"\n}}\n')
    path.write_text(text)
    return path


def wait_bridged(b: Proc, mport: int, n: int, timeout: float, on_poll: Optional[Callable[[dict], None]] = None) -> dict:
    """Polls /varz every POLL s until bridges[0].bridged >= n: times (monotonic) of the first ready poll, the
    first poll with bridged > 0, the last poll; the last snapshot; stalls (polls without progress, after the first)."""
    out: dict[str, Any] = {"t_ready": None, "t_first": None, "t_done": None, "last": None, "max_stall_seconds": 0.0}
    deadline = time.monotonic() + timeout
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        if not b.alive():
            out["error"] = f"brokerd exited ({b.proc.returncode}): {b.log_tail(600)}"
            return out
        s = varz_bridge(mport)
        now = time.monotonic()
        if s:
            out["last"] = s
            if on_poll:
                on_poll(s)
            if s.get("ready") and out["t_ready"] is None:
                out["t_ready"] = now
            if s.get("bridged", 0) > 0 and out["t_first"] is None:
                out["t_first"] = now
            if s.get("bridged", 0) != last_count:
                if out["t_first"] is not None and last_count > 0:
                    out["max_stall_seconds"] = max(out["max_stall_seconds"], now - last_change)
                last_count, last_change = s.get("bridged", 0), now
            if s.get("bridged", 0) >= n:
                out["t_done"] = now
                return out
        time.sleep(POLL if out["t_ready"] is not None else 0.005)  # fine-grained until ready: the clock's start
    out["error"] = f"bridged did not reach {n} within {timeout:g} s (last: {out['last']})"
    return out


def bridge_snapshot(s: Optional[dict]) -> dict:
    keys = ("bridged", "retried", "dead_lettered", "lag", "ready", "last_error", "degraded")
    return {k: s.get(k) for k in keys if k in s} if s else {}


# --------------------------------------------------------------------------------------------------
# the whole measurement
# --------------------------------------------------------------------------------------------------


def rss_mb(pid: int) -> Optional[float]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def fresh_emulator(script: str, work: Path, tag: str, lines: list[bytes], rec: dict,
                   progress: Callable[[str], None]) -> tuple[Proc, int]:
    """A new emulator with the topic, warmed up (JIT) with WARMUP_ALERTS from the plain client at 4 in flight.
    A new one per phase: the emulator keeps what it is sent in direct memory even without a subscription and
    fails with OutOfMemoryError (direct buffer memory, the -Xmx512m limit) after ~100k alerts."""
    t = time.monotonic()
    emu, port = start_emulator(script, work / f"emulator-{tag}.log")
    started = time.monotonic() - t
    status, body = emulator_call(port, "PUT", f"projects/{PROJECT}/topics/{TOPIC}")
    if status != 200:
        emu.stop()
        raise RuntimeError(f"cannot create the topic: HTTP {status} {body[:200]!r}")
    w = plain_publish(port, publish_bodies(make_alerts(lines, WARMUP_ALERTS, "w" + tag), BATCH), IN_FLIGHT, emu.pid)
    if w["errors"]:
        emu.stop()
        raise RuntimeError(f"emulator warm-up: {w['errors']} failed requests, the first: {w['first_error']}")
    rec.setdefault("emulator", {})[tag] = {"start_seconds": round(started, 2), "warmup_alerts_per_sec": w["alerts_per_sec"]}
    return emu, port


def measure(brokerd: str, alerts_path: str, n: int, work: Path, live: bool = True,
            progress: Callable[[str], None] = log) -> dict:
    """Runs every phase; a dict with the figures (see the module doc), or {"skipped": reason}."""
    script = emulator_script()
    if script is None:
        return {"skipped": "the Pub/Sub emulator is not installed (google-cloud-cli-pubsub-emulator and java)"}
    rec: dict[str, Any] = {"alerts": n, "batch": BATCH, "in_flight": IN_FLIGHT, "warmup_alerts": WARMUP_ALERTS,
                           "error": None, "notes": []}
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    lines = load_alerts(alerts_path)
    rec["alert_bytes_mean"] = round(sum(map(len, lines)) / len(lines))
    emu: Optional[Proc] = None
    brk: Optional[Proc] = None
    try:
        bodies = publish_bodies(make_alerts(lines, n, "p"), BATCH)
        for conns, key in ((1, "plain_1"), (IN_FLIGHT, f"plain_{IN_FLIGHT}")):
            emu, eport = fresh_emulator(script, work, key, lines, rec, progress)
            r = plain_publish(eport, bodies, conns, emu.pid)
            r["emulator_rss_mb"] = rss_mb(emu.pid)
            emu.stop()
            emu = None
            rec[key] = r
            progress(f"      plain HTTP, {conns} in flight: {r['alerts_per_sec']:,.0f} alerts/s ({r['seconds']:.2f} s; "
                     f"client CPU {r['client_cpu_max_share']:.0%} of a core per process, emulator "
                     f"{(r['emulator_cpu_seconds'] or 0) / r['seconds']:.2f} cores)")
            if r["errors"]:
                rec["notes"].append(f"plain/{conns}: {r['errors']} failed requests, the first: {r['first_error']}")
        del bodies

        # Fill the stream with the bridge off, then start brokerd with the bridge on the same store.
        store = work / "store"
        frames = hpub_frames(make_alerts(lines, n, "b"), "_INBOX.bridgebench")
        brk, port, mport = start_brokerd(brokerd, work / "brokerd-fill.log", write_conf(work / "fill.conf", store, None))
        c = NatsConn(port)
        made = c.request(f"$JS.API.STREAM.CREATE.{STREAM}", {"name": STREAM, "subjects": ["FALCO.>"], "storage": "file"})
        if "error" in made:
            raise RuntimeError(f"cannot create {STREAM}: {made['error']}")
        t = time.monotonic()
        fill = c.publish_acked(frames)
        fill["seconds"] = round(time.monotonic() - t, 3)
        fill["alerts_per_sec"] = round(n / fill["seconds"], 1)
        c.close()
        del frames
        rec["fill"] = fill
        if fill["ok"] != n:
            raise RuntimeError(f"filling {STREAM}: {fill}")
        brk.stop()
        brk = None

        emu, eport = fresh_emulator(script, work, "bridge", lines, rec, progress)
        cpu_emu0 = cpu_seconds(emu.pid)
        brk, port, mport = start_brokerd(brokerd, work / "brokerd-bridge.log", write_conf(work / "bridge.conf", store, eport))
        cpu_b0 = cpu_seconds(brk.pid)
        w = wait_bridged(brk, mport, n, timeout=max(120.0, n / 500))
        cpu_b1, cpu_emu1 = cpu_seconds(brk.pid), cpu_seconds(emu.pid)
        if w.get("error"):
            raise RuntimeError("bridge (pre-filled): " + w["error"])
        ready = w["t_ready"] or w["t_first"]
        busy = w["t_done"] - ready
        rec["bridge"] = {
            "seconds_from_ready": round(busy, 4), "seconds_from_spawn": round(w["t_done"] - brk.spawned_at, 4),
            "ready_after_spawn_seconds": round(ready - brk.spawned_at, 4),
            "alerts_per_sec": round(n / busy, 1), "alerts_per_sec_from_spawn": round(n / (w["t_done"] - brk.spawned_at), 1),
            "max_stall_seconds": round(w["max_stall_seconds"], 3), "varz": bridge_snapshot(w["last"]),
            "brokerd_cpu_seconds": round(cpu_b1 - cpu_b0, 3) if cpu_b0 is not None and cpu_b1 is not None else None,
            "emulator_cpu_seconds": round(cpu_emu1 - cpu_emu0, 3) if cpu_emu0 is not None and cpu_emu1 is not None else None,
            "emulator_rss_mb": rss_mb(emu.pid),
        }
        rb = rec["bridge"]
        progress(f"      bridge, pre-filled {n:,}: {rb['alerts_per_sec']:,.0f} alerts/s ({busy:.2f} s from ready; "
                 f"{rb['alerts_per_sec_from_spawn']:,.0f}/s from spawn); brokerd {(rb['brokerd_cpu_seconds'] or 0) / busy:.2f} "
                 f"cores, emulator {(rb['emulator_cpu_seconds'] or 0) / busy:.2f} cores; varz {rb['varz']}")
        time.sleep(1.1)  # lag is refreshed once a second
        rb["varz_after"] = bridge_snapshot(varz_bridge(mport))
        brk.stop()
        brk = None
        emu.stop()
        emu = None

        if live:
            shutil.rmtree(store, ignore_errors=True)
            frames = hpub_frames(make_alerts(lines, n, "l"), "_INBOX.bridgebench")
            emu, eport = fresh_emulator(script, work, "live", lines, rec, progress)
            brk, port, mport = start_brokerd(brokerd, work / "brokerd-live.log", write_conf(work / "live.conf", store, eport))
            deadline = time.monotonic() + 30
            while not (varz_bridge(mport) or {}).get("ready") and time.monotonic() < deadline:
                time.sleep(0.01)
            c = NatsConn(port)
            cpu_b0, cpu_emu0 = cpu_seconds(brk.pid), cpu_seconds(emu.pid)
            t0 = time.monotonic()
            pub = c.publish_acked(frames)
            t_pub = time.monotonic() - t0
            w = wait_bridged(brk, mport, n, timeout=max(120.0, n / 500))
            cpu_b1, cpu_emu1 = cpu_seconds(brk.pid), cpu_seconds(emu.pid)
            c.close()
            if w.get("error"):
                raise RuntimeError("bridge (live): " + w["error"])
            busy = w["t_done"] - t0
            rec["live"] = {"seconds": round(busy, 4), "alerts_per_sec": round(n / busy, 1),
                           "publish_seconds": round(t_pub, 4), "publish_alerts_per_sec": round(n / t_pub, 1),
                           "pub_acks": pub, "max_stall_seconds": round(w["max_stall_seconds"], 3),
                           "varz": bridge_snapshot(w["last"]),
                           "brokerd_cpu_seconds": round(cpu_b1 - cpu_b0, 3) if cpu_b0 is not None and cpu_b1 is not None else None,
                           "emulator_cpu_seconds": round(cpu_emu1 - cpu_emu0, 3) if cpu_emu0 is not None and cpu_emu1 is not None else None}
            rl = rec["live"]
            progress(f"      bridge, live {n:,}: {rl['alerts_per_sec']:,.0f} alerts/s ({busy:.2f} s from the first publish; "
                     f"published at {rl['publish_alerts_per_sec']:,.0f}/s); brokerd {(rl['brokerd_cpu_seconds'] or 0) / busy:.2f} "
                     f"cores, emulator {(rl['emulator_cpu_seconds'] or 0) / busy:.2f} cores; varz {rl['varz']}")
            brk.stop()
            brk = None
            emu.stop()
            emu = None

        base = rec[f"plain_{IN_FLIGHT}"]["alerts_per_sec"]
        rec["baseline_alerts_per_sec"] = base
        rec["ratio"] = round(rec["bridge"]["alerts_per_sec"] / base, 3)
        rec["ratio_vs_1_in_flight"] = round(rec["bridge"]["alerts_per_sec"] / rec["plain_1"]["alerts_per_sec"], 3)
        if "live" in rec:
            rec["live_ratio"] = round(rec["live"]["alerts_per_sec"] / base, 3)
        rec["meets_90_percent"] = rec["ratio"] >= 0.9
        for key in ("bridge", "live"):
            v = (rec.get(key) or {}).get("varz") or {}
            if v.get("retried") or v.get("dead_lettered"):
                rec["notes"].append(f"{key}: retried {v.get('retried')}, dead-lettered {v.get('dead_lettered')}, "
                                    f"last error {v.get('last_error')}")
    except (RuntimeError, OSError, ValueError) as e:
        rec["error"] = str(e)
    finally:
        if brk is not None:
            rec["brokerd_exit"] = brk.stop()
        if emu is not None:
            emu.stop()
        shutil.rmtree(work / "store", ignore_errors=True)
    return rec


def render(rec: dict) -> list[str]:
    """Lines for run_bench.py's output."""
    if rec.get("skipped"):
        return [f"Pub/Sub bridge: skipped: {rec['skipped']}"]
    n = rec.get("alerts", 0)
    out = [f"Pub/Sub bridge vs the emulator's own limit: {n:,} Falco alerts (~{rec.get('alert_bytes_mean', 0)} B) per phase, "
           f"batches of {BATCH}, a fresh emulator (JVM, -Xmx512m) per phase, warmed up with {rec.get('warmup_alerts', 0):,}"]
    if rec.get("error"):
        out.append(f"  ERROR: {' '.join(rec['error'].split())[:400]}")

    def plain(key: str, label: str):
        r = rec.get(key)
        if r:
            out.append(f"  {label:<34} {r['alerts_per_sec']:>9,.0f} alerts/s  ({r['seconds']:.2f} s; client CPU "
                       f"{r['client_cpu_max_share']:.0%} of a core per process; emulator "
                       f"{(r['emulator_cpu_seconds'] or 0) / r['seconds']:.2f} cores)")
    plain("plain_1", "plain HTTP client, 1 in flight")
    plain(f"plain_{IN_FLIGHT}", f"plain HTTP client, {IN_FLIGHT} in flight")
    b = rec.get("bridge")
    if b:
        v = b["varz"]
        out.append(f"  {'bridge, stream pre-filled':<34} {b['alerts_per_sec']:>9,.0f} alerts/s  ({b['seconds_from_ready']:.2f} s "
                   f"from ready; {b['alerts_per_sec_from_spawn']:,.0f}/s from brokerd's spawn; brokerd "
                   f"{(b['brokerd_cpu_seconds'] or 0) / b['seconds_from_ready']:.2f} cores, emulator "
                   f"{(b['emulator_cpu_seconds'] or 0) / b['seconds_from_ready']:.2f} cores; retried {v.get('retried')}, "
                   f"dead-lettered {v.get('dead_lettered')})")
    lv = rec.get("live")
    if lv:
        v = lv["varz"]
        out.append(f"  {'bridge, live (alerts published)':<34} {lv['alerts_per_sec']:>9,.0f} alerts/s  ({lv['seconds']:.2f} s from "
                   f"the first publish; published at {lv['publish_alerts_per_sec']:,.0f}/s; retried {v.get('retried')}, "
                   f"dead-lettered {v.get('dead_lettered')})")
    if rec.get("ratio") is not None:
        out.append(f"  bridge / plain ({IN_FLIGHT} in flight): {rec['ratio']:.0%}"
                   + (f" (live {rec['live_ratio']:.0%})" if rec.get("live_ratio") is not None else "")
                   + f": {'meets' if rec['meets_90_percent'] else 'BELOW'} the 90 % goal")
    for note in rec.get("notes") or []:
        out.append(f"  note: {note}")
    return out


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--brokerd", default=str(root / ".build/release/brokerd"))
    p.add_argument("--alerts-file", default=str(root.parent / "shared/falco/alerts.jsonl"))
    p.add_argument("--alerts", type=int, default=DEFAULT_ALERTS, help=f"alerts per phase (default {DEFAULT_ALERTS:,})")
    p.add_argument("--no-live", action="store_true")
    p.add_argument("--work", default=str(root / ".build/bench/bridge"))
    p.add_argument("--json", default=None, metavar="PATH")
    a = p.parse_args(argv)
    rec = measure(a.brokerd, a.alerts_file, a.alerts, Path(a.work), live=not a.no_live)
    print("\n".join(render(rec)))
    if a.json:
        Path(a.json).write_text(json.dumps(rec, indent=2))
    return 1 if rec.get("error") else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
