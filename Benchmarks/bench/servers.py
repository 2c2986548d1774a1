"""Starting and stopping brokerd and nats-server: free loopback ports, readiness (the INFO line), SIGTERM then
SIGKILL, restarts; and the CPU time of a server process, read from /proc."""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .config import CLK_TCK, HOST
from .util import file_tail


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


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


def idle_rss_kb(pid: int, settle: float = 0.3) -> Optional[int]:
    """The resident set (VmRSS, kB) of a server just started and idle (read after `settle` seconds)."""
    time.sleep(settle)
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


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
    tls_ca: Optional[str] = None  # the CA of the server's tls { } certificate (TLS rows)

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
                entry["idle_rss_kb"] = idle_rss_kb(self.proc.pid)
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


def js_server(a: argparse.Namespace, name: str, binary: str, log_dir: Path, store: Path, tag: str) -> Server:
    if store.exists():
        shutil.rmtree(store)
    store.mkdir(parents=True)
    return Server(name, binary, log_dir, a.start_timeout, max(a.stop_timeout, 60.0),
                  extra_args=["-js", "-sd", str(store)], tag=tag)


def make_tls_files(directory: Path) -> tuple[Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (P-256, valid one day), made with the system's openssl, and
    the nats-server `tls { }` config both servers read. Returns (config path, CA path)."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    openssl = shutil.which("openssl")
    if not openssl:
        raise ServerError("the TLS rows need openssl on PATH to make their certificates")
    def run(*args: str) -> None:
        r = subprocess.run([openssl, *args], capture_output=True, text=True, cwd=directory)
        if r.returncode != 0:
            raise ServerError(f"openssl {' '.join(args)}: {r.stderr.strip()[-300:]}")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-days", "1", "-subj", "/CN=brokerd bench CA", "-keyout", "ca-key.pem", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    run("req", "-new", *ec, "-subj", "/CN=localhost", "-keyout", "server-key.pem", "-out", "server.csr")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-days", "1",
        "-extfile", "server.ext", "-out", "server.pem")
    conf = directory / "tls.conf"
    conf.write_text(f'tls {{\n  cert_file: "{directory / "server.pem"}"\n  key_file: "{directory / "server-key.pem"}"\n}}\n')
    return conf, directory / "ca.pem"


def tls_server(a: argparse.Namespace, name: str, binary: str, log_dir: Path, conf: Path, ca: Path) -> Server:
    """A server whose client port takes TLS only (INFO in the clear, then the handshake, as both do by default)."""
    return Server(name, binary, log_dir, a.start_timeout, a.stop_timeout, extra_args=["-c", str(conf)], tag="-tls",
                  tls_ca=str(ca))


# Permission rows: the user the tool connects as. Several patterns on each side, so that a check without the
# per-subject cache would have to walk them; the subscriber's bench.> overlaps a deny entry (bench.denied.>).
PERMS_CONF = """authorization {
  users: [
    { user: bench, password: bench, permissions: {
        publish: { allow: ["FALCO.>", "$FALCO.INGEST", "_INBOX.>", "alerts.*.raw", "bench.>"], deny: ["FALCO.Debug", "bench.denied.>"] }
        subscribe: { allow: ["FALCO.>", "_INBOX.>", "bench.>"], deny: ["bench.denied.>", "FALCO.Debug"] }
    } }
  ]
}
"""


def perms_server(a: argparse.Namespace, name: str, binary: str, log_dir: Path, directory: Path) -> Server:
    """A server started with PERMS_CONF (users with publish and subscribe permissions)."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "perms.conf"
    conf.write_text(PERMS_CONF)
    return Server(name, binary, log_dir, a.start_timeout, a.stop_timeout, extra_args=["-c", str(conf)], tag="-perms")
