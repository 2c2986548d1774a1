"""Shared helpers for the brokerd integration suite.

* ``start_server`` starts a NATS server process (brokerd or the reference
  nats-server; both take the same command line flags) on a free port of
  127.0.0.1 and waits until it speaks the protocol.
* ``RawConn`` is a blocking raw-socket client for byte-level protocol tests.
* ``split_frames`` splits server->client bytes into protocol frames so that
  INFO lines can be filtered out and MSG/HMSG payloads are never mistaken for
  protocol lines.

Every wait in this module is bounded by a deadline.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

HOST = "127.0.0.1"
DEFAULT_MAX_PAYLOAD = 1024 * 1024
DEFAULT_MAX_CONTROL_LINE = 4096

READY_TIMEOUT = 10.0  # seconds to wait for a server to accept connections
STOP_TIMEOUT = 10.0  # seconds to wait after SIGTERM before SIGKILL
IO_TIMEOUT = 5.0  # default bound for any raw-socket read

# https://semver.org/#is-there-a-suggested-regular-expression-regex-to-check-a-semver-string
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

ERR_UNKNOWN_OP = b"-ERR 'Unknown Protocol Operation'\r\n"
ERR_MAX_PAYLOAD = b"-ERR 'Maximum Payload Violation'\r\n"
ERR_MAX_CONTROL_LINE = b"-ERR 'maximum control line exceeded'\r\n"
ERR_INVALID_SUBJECT = b"-ERR 'Invalid Subject'\r\n"
ERR_INVALID_PUB_SUBJECT = b"-ERR 'Invalid Publish Subject'\r\n"
ERR_AUTH_VIOLATION = b"-ERR 'Authorization Violation'\r\n"
ERR_AUTH_TIMEOUT = b"-ERR 'Authentication Timeout'\r\n"
ERR_MAX_CONNECTIONS = b"-ERR 'maximum connections exceeded'\r\n"
ERR_STALE_CONNECTION = b"-ERR 'Stale Connection'\r\n"
ERR_NO_RESPONDERS_NEEDS_HEADERS = b"-ERR 'no responders requires headers support'\r\n"

OK = b"+OK\r\n"
PONG = b"PONG\r\n"
PING = b"PING\r\n"


# --------------------------------------------------------------------------
# Targets and binaries
# --------------------------------------------------------------------------

ALL_TARGETS = ("brokerd", "nats-server")


@dataclass(frozen=True)
class Target:
    name: str
    binary: Optional[str]
    skip_reason: Optional[str] = None


def _is_executable_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def nats_server_binary() -> Optional[str]:
    """The reference server: $NATS_SERVER_BIN, else `nats-server` on PATH."""
    env = os.environ.get("NATS_SERVER_BIN")
    if env:
        path = os.path.abspath(env)
        return path if _is_executable_file(path) else None
    return shutil.which("nats-server")


def resolve_target(name: str) -> Target:
    if name == "brokerd":
        env = os.environ.get("BROKERD_BIN")
        if not env:
            return Target(name, None, "BROKERD_BIN is not set (path to the brokerd binary)")
        path = os.path.abspath(env)
        if not _is_executable_file(path):
            return Target(name, None, f"BROKERD_BIN={env!r} is not an executable file")
        return Target(name, path)
    if name == "nats-server":
        path = nats_server_binary()
        if path is None:
            return Target(name, None, "nats-server not found (not on PATH and NATS_SERVER_BIN unset/invalid)")
        return Target(name, path)
    raise ValueError(f"unknown target {name!r}; known targets: {', '.join(ALL_TARGETS)}")


def selected_target_names() -> list[str]:
    raw = os.environ.get("TEST_TARGETS", ",".join(ALL_TARGETS))
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL_TARGETS]
    if unknown:
        raise ValueError(f"TEST_TARGETS has unknown target(s) {unknown}; known: {list(ALL_TARGETS)}")
    # keep order, drop duplicates
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------
# Server processes
# --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _port_speaks_nats(port: int, timeout: float) -> bool:
    """True once something on the port accepts a connection and sends an INFO line."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.settimeout(timeout)
            data = b""
            while b"\n" not in data and len(data) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                data += chunk
            return data.startswith(b"INFO ")
    except OSError:
        return False


def _port_accepts(port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port: int, timeout: float = 10.0) -> bool:
    """Polls until 127.0.0.1:port accepts a connection (bounded); True when it does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_accepts(port, 0.5):
            return True
        time.sleep(0.02)
    return False


@dataclass
class Server:
    target: Target
    args: list[str]
    port: int
    http_port: Optional[int]
    proc: subprocess.Popen
    log_path: Path
    config_path: Optional[Path] = None
    host: str = HOST
    returncode: Optional[int] = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def conn(self, **kw) -> "RawConn":
        return RawConn(self.host, self.port, **kw)

    def log_text(self, limit: int = 20000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def terminate(self, timeout: float = STOP_TIMEOUT) -> Optional[int]:
        """SIGTERM, wait (bounded), SIGKILL if needed. Returns the exit code of a
        graceful exit, None if it had to be killed."""
        if self.proc.poll() is not None:
            self.returncode = self.proc.returncode
            return self.returncode
        try:
            self.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.returncode = self.proc.wait(timeout=timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)
            self.returncode = None
            return None


class ServerStartError(RuntimeError):
    pass


_started: list[subprocess.Popen] = []


@atexit.register
def _kill_leftovers() -> None:
    """Safety net: never leave a server running after the test process exits."""
    for proc in _started:
        if proc.poll() is None:
            proc.kill()


def start_server(
    target: Target,
    workdir: Path,
    extra_args: Sequence[str] = (),
    *,
    config: Optional[str] = None,
    config_listen: bool = False,
    http: bool = False,
    long_flags: bool = False,
    ready_timeout: float = READY_TIMEOUT,
    seq: int = 0,
    ready: str = "info",
) -> Server:
    """Start `target` listening on 127.0.0.1:<free port>.

    Command: [binary, "-a", "127.0.0.1", "-p", PORT, ("-m", HTTP)?, ("-c", CONF)?, *extra_args].

    config:        text of a config file written to `workdir` and passed with -c.
    config_listen: put `host`/`port` (and `http_port`) into the config file
                   instead of on the command line.
    long_flags:    use --addr/--port/--http_port/--config instead of -a/-p/-m/-c.
    ready:         "info": ready once the port sends an INFO line; "port": once it accepts
                   connections (a TLS handshake-first server sends no INFO in the clear).
    """
    if target.binary is None:
        raise ServerStartError(f"target {target.name} has no binary: {target.skip_reason}")
    workdir.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for attempt in range(3):  # retry only if the free port got taken meanwhile
        port = free_port()
        http_port = free_port() if http else None
        args: list[str] = [target.binary]
        config_path = None
        if not config_listen:
            args += ["--addr" if long_flags else "-a", HOST, "--port" if long_flags else "-p", str(port)]
            if http_port is not None:
                args += ["--http_port" if long_flags else "-m", str(http_port)]
        if config is not None or config_listen:
            text = config or ""
            if config_listen:
                head = f"host: {HOST}\nport: {port}\n"
                if http_port is not None:
                    head += f"http_port: {http_port}\n"
                text = head + text
            config_path = workdir / f"server-{seq}-{attempt}.conf"
            config_path.write_text(text)
            args += ["--config" if long_flags else "-c", str(config_path)]
        args += list(extra_args)
        log_path = workdir / f"server-{seq}-{attempt}.out"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _started.append(proc)
        server = Server(target, args, port, http_port, proc, log_path, config_path)
        deadline = time.monotonic() + ready_timeout
        ready = False
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            port_ready = _port_speaks_nats(port, timeout=1.0) if ready == "info" else _port_accepts(port, 1.0)
            if port_ready and (http_port is None or _port_accepts(http_port, 1.0)):
                ready = True
                break
            time.sleep(0.02)
        if ready:
            return server
        exited = proc.poll() is not None
        server.terminate(timeout=2.0)
        last_error = (
            f"{target.name} {'exited with ' + str(proc.returncode) if exited else 'did not become ready'}"
            f" (command: {' '.join(args)})\n--- output ---\n{server.log_text()}"
        )
        if not exited or "in use" not in server.log_text():
            break
    raise ServerStartError(last_error)


def run_binary(target: Target, args: Sequence[str], timeout: float = 10.0) -> subprocess.CompletedProcess:
    """Run the target binary to completion (e.g. -v / -h), bounded."""
    return subprocess.run(
        [target.binary, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout
    )


# --------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------


def split_frames(buf: bytes) -> tuple[list[bytes], int]:
    """Split server->client bytes into complete frames.

    A frame is a CRLF-terminated control line, or for MSG/HMSG the control
    line plus its payload and trailing CRLF. Returns (frames, bytes consumed);
    an incomplete trailing frame is left unconsumed.
    """
    frames: list[bytes] = []
    pos = 0
    n = len(buf)
    while pos < n:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            break
        line = buf[pos:eol]
        head = line[:5].upper()
        if head.startswith(b"MSG ") or head.startswith(b"HMSG "):
            try:
                size = int(line.split()[-1])
            except ValueError:
                size = -1
            if size >= 0:
                end = eol + 2 + size + 2
                if end > n:
                    break
                frames.append(buf[pos:end])
                pos = end
                continue
        frames.append(buf[pos : eol + 2])
        pos = eol + 2
    return frames, pos


def is_info(frame: bytes) -> bool:
    return frame[:5].upper() == b"INFO "


def strip_info(buf: bytes) -> bytes:
    """`buf` minus every INFO frame (an incomplete tail is kept as is)."""
    frames, used = split_frames(buf)
    return b"".join(f for f in frames if not is_info(f)) + buf[used:]


def parse_msg(frame: bytes) -> dict:
    """Parse one MSG/HMSG frame into its fields."""
    eol = frame.index(b"\r\n")
    parts = frame[:eol].split()
    verb = parts[0].upper()
    body = frame[eol + 2 : -2]
    if verb == b"MSG":
        if len(parts) == 4:
            subj, sid, size = parts[1], parts[2], parts[3]
            reply = None
        else:
            subj, sid, reply, size = parts[1], parts[2], parts[3], parts[4]
        return {"verb": "MSG", "subject": subj.decode(), "sid": sid.decode(),
                "reply": reply.decode() if reply else None, "size": int(size),
                "headers": None, "payload": body}
    if verb == b"HMSG":
        if len(parts) == 5:
            subj, sid, hsize, size = parts[1], parts[2], parts[3], parts[4]
            reply = None
        else:
            subj, sid, reply, hsize, size = parts[1:6]
        h = int(hsize)
        return {"verb": "HMSG", "subject": subj.decode(), "sid": sid.decode(),
                "reply": reply.decode() if reply else None, "size": int(size), "hsize": h,
                "headers": body[:h], "payload": body[h:]}
    raise ValueError(f"not a MSG/HMSG frame: {frame[:80]!r}")


# --------------------------------------------------------------------------
# Raw socket client
# --------------------------------------------------------------------------


class RawConn:
    """A blocking raw TCP client.

    ``info_line``/``info`` hold the first INFO line. ``raw`` accumulates every
    byte received after it; ``data()`` is the same minus INFO frames (nats-server
    sends a second INFO right after the first PONG when CONNECT has
    "protocol":1; brokerd need not).
    """

    def __init__(self, host: str, port: int, *, timeout: float = IO_TIMEOUT,
                 rcvbuf: Optional[int] = None, read_info: bool = True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.raw = b""
        self.closed = False  # peer closed (EOF or reset)
        self.send_failed = False
        self.info_line: Optional[bytes] = None
        self.info: Optional[dict] = None
        if read_info:
            self.read_info(timeout)

    # -- lifecycle --------------------------------------------------------
    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawConn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- receive ----------------------------------------------------------
    def _recv(self, deadline: float, bufsize: int = 1 << 16) -> bool:
        """One recv bounded by `deadline`. True if bytes arrived."""
        if self.closed:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(bufsize)
        except socket.timeout:
            return False
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            self.closed = True
            return False
        if not chunk:
            self.closed = True
            return False
        self.raw += chunk
        return True

    def read_info(self, timeout: float = IO_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.raw and not self.closed and time.monotonic() < deadline:
            self._recv(deadline)
        eol = self.raw.find(b"\r\n")
        assert eol >= 0, f"no INFO line received (got {self.raw[:200]!r}, closed={self.closed})"
        self.info_line = self.raw[: eol + 2]
        self.raw = self.raw[eol + 2 :]
        assert self.info_line.startswith(b"INFO "), f"first line is not INFO: {self.info_line[:200]!r}"
        self.info = json.loads(self.info_line[5:].strip())
        return self.info

    def data(self) -> bytes:
        """Everything received after the first INFO line, minus INFO frames."""
        return strip_info(self.raw)

    def frames(self) -> list[bytes]:
        frames, _ = split_frames(self.raw)
        return [f for f in frames if not is_info(f)]

    def read_until(self, cond: "bytes | Callable[[bytes], bool]", timeout: float = IO_TIMEOUT) -> bytes:
        """Read until `cond` holds for data() (a bytes `cond` means "is contained
        in data()"), the peer closes, or `timeout` passes. Returns data()."""
        check = (lambda d: cond in d) if isinstance(cond, (bytes, bytearray)) else cond
        deadline = time.monotonic() + timeout
        while True:
            d = self.data()
            if check(d) or self.closed or time.monotonic() >= deadline:
                return d
            self._recv(deadline)

    def read_frames(self, count: int, timeout: float = IO_TIMEOUT,
                    pred: Callable[[bytes], bool] = lambda f: True) -> list[bytes]:
        """Read until at least `count` non-INFO frames satisfy `pred` (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            fs = [f for f in self.frames() if pred(f)]
            if len(fs) >= count or self.closed or time.monotonic() >= deadline:
                return fs
            self._recv(deadline)

    def read_pongs(self, count: int, timeout: float = IO_TIMEOUT) -> bytes:
        """Read until `count` PONG frames arrived (or close/timeout). Returns data()."""
        self.read_frames(count, timeout, pred=lambda f: f == PONG)
        return self.data()

    def read_until_closed(self, timeout: float = IO_TIMEOUT) -> bool:
        """Drain until the peer closes; True if it closed within `timeout`."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._recv(deadline)
        return self.closed

    def drain_until_closed(self, timeout: float, keep: int = 1 << 16) -> tuple[bool, int]:
        """Like read_until_closed but for big streams: only the last `keep`
        bytes stay in `raw`. Returns (closed within timeout, bytes received)."""
        deadline = time.monotonic() + timeout
        total = 0
        while not self.closed and time.monotonic() < deadline:
            before = len(self.raw)
            self._recv(deadline)
            total += len(self.raw) - before
            if len(self.raw) > keep:
                self.raw = self.raw[-keep:]
        return self.closed, total

    # -- send -------------------------------------------------------------
    def send(self, data: bytes) -> bool:
        """sendall; a failure because the server already closed is recorded in
        `send_failed` instead of raised (tests assert on what was received)."""
        self.sock.settimeout(IO_TIMEOUT)
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.send_failed = True
            return False

    def send_chunks(self, data: bytes, sizes: Sequence[int]) -> bool:
        """Send `data` in pieces of the given sizes (the rest in one piece)."""
        pos = 0
        for size in sizes:
            if pos >= len(data):
                break
            if not self.send(data[pos : pos + size]):
                return False
            pos += size
        if pos < len(data):
            return self.send(data[pos:])
        return True

    # -- convenience --------------------------------------------------------
    def connect(self, opts: Optional[dict] = None, *, verbose: bool = False, ping: bool = True) -> bytes:
        """Send CONNECT (verbose false unless asked) and optionally PING and wait
        for the PONG. Returns data()."""
        o = {"verbose": verbose}
        if opts:
            o.update(opts)
        self.send(b"CONNECT " + json.dumps(o, separators=(",", ":")).encode() + b"\r\n" + (PING if ping else b""))
        if ping:
            return self.read_until(PONG)
        return self.data()

    def reset_buffer(self) -> None:
        """Forget what was received so far (INFO info is kept)."""
        self.raw = b""

    def roundtrip(self, timeout: float = IO_TIMEOUT) -> bool:
        """PING and wait for one more PONG than seen so far."""
        have = self.frames().count(PONG)
        self.send(PING)
        return len(self.read_frames(have + 1, timeout, pred=lambda f: f == PONG)) >= have + 1


def connect_line(**opts) -> bytes:
    o = {"verbose": False}
    o.update(opts)
    return b"CONNECT " + json.dumps(o, separators=(",", ":")).encode() + b"\r\n"


def pub(subject: str, payload: bytes, reply: Optional[str] = None) -> bytes:
    r = f" {reply}" if reply else ""
    return f"PUB {subject}{r} {len(payload)}\r\n".encode() + payload + b"\r\n"


def hpub(subject: str, headers: bytes, payload: bytes, reply: Optional[str] = None) -> bytes:
    r = f" {reply}" if reply else ""
    return f"HPUB {subject}{r} {len(headers)} {len(headers) + len(payload)}\r\n".encode() + headers + payload + b"\r\n"


def msg(subject: str, sid: str, payload: bytes, reply: Optional[str] = None) -> bytes:
    r = f" {reply}" if reply else ""
    return f"MSG {subject} {sid}{r} {len(payload)}\r\n".encode() + payload + b"\r\n"


def hmsg(subject: str, sid: str, headers: bytes, payload: bytes, reply: Optional[str] = None) -> bytes:
    r = f" {reply}" if reply else ""
    return f"HMSG {subject} {sid}{r} {len(headers)} {len(headers) + len(payload)}\r\n".encode() + headers + payload + b"\r\n"


def semver_tuple(version: str) -> tuple[int, int, int]:
    m = SEMVER_RE.match(version)
    assert m, f"not a SemVer version: {version!r}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


# --------------------------------------------------------------------------
# nats-py helpers
# --------------------------------------------------------------------------
async def sync_subscriptions(nc, timeout: float = 5.0) -> None:
    """Make sure the server has processed every SUB/PUB `nc` sent so far.

    nats-py's flush() can put its PING on the wire ahead of SUBs still in its
    own write buffer, so instead round-trip a message through the server on
    this connection: it comes back only after everything before it was
    processed.
    """
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(inbox, b"sync")
    await sub.next_msg(timeout=timeout)
    await sub.unsubscribe()
