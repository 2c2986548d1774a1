#!/usr/bin/env python3
"""Writes Sources/brokerd/brokerd.order: the functions brokerd runs from start to ready, for the release link.

Why: the release binary is ~30 MB of code, and at start-up the kernel maps 64 KiB of it around every function
touched (fault-around), so functions touched once, scattered over the whole binary, kept about 14 MB of it
resident in an idle brokerd. The release link (Makefile RELEASE_FLAGS: every function in its own section, lld's
--symbol-ordering-file) puts the functions listed here first, next to each other, so start-up touches a few MB.

How: brokerd (a copy of the release build without its debug info, which valgrind cannot read) runs under
valgrind's callgrind with JetStream and the monitoring port, from start until it is ready; then one client
connects, subscribes, publishes, creates a stream, stores a message and asks /varz; then SIGTERM. Every
function callgrind saw, by its symbol name, sorted, is written to the order file. Names that a later change
removes are ignored by the link (--no-warn-symbol-ordering), so a stale file costs memory, never correctness:
regenerate it after large changes with `make order-file` (needs valgrind; ~1 minute).

Python 3.11, standard library only:
    python3 Benchmarks/startup_order.py [--brokerd .build/release/brokerd] [--out Sources/brokerd/brokerd.order]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def exercise(port: int, monitor: int) -> None:
    """One client's usual first steps, on the raw protocol: CONNECT, SUB, PUB, a stream and a stored message."""
    s = socket.create_connection((HOST, port), timeout=30)
    f = s.makefile("rb")
    assert f.readline().startswith(b"INFO "), "no INFO"

    def until(marker: bytes) -> None:
        while marker not in f.readline():
            pass

    s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}\r\nPING\r\n')
    until(b"PONG")
    s.sendall(b"SUB FALCO.> 1\r\nSUB _INBOX.order 2\r\nPUB FALCO.Error 5\r\nhello\r\nPING\r\n")
    until(b"PONG")
    create = json.dumps({"name": "ORDER", "subjects": ["order.>"], "storage": "file"}).encode()
    s.sendall(b"PUB $JS.API.STREAM.CREATE.ORDER _INBOX.order %d\r\n%s\r\n" % (len(create), create))
    until(b"MSG _INBOX.order")
    f.readline()
    s.sendall(b"PUB order.x _INBOX.order 5\r\nhello\r\n")
    until(b"MSG _INBOX.order")
    f.readline()
    s.close()
    urllib.request.urlopen(f"http://{HOST}:{monitor}/varz", timeout=30).read()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brokerd", default=str(REPO / ".build" / "release" / "brokerd"))
    ap.add_argument("--out", default=str(REPO / "Sources" / "brokerd" / "brokerd.order"))
    a = ap.parse_args()
    for tool in ("valgrind", "strip"):
        if not shutil.which(tool):
            print(f"startup_order: {tool} not found (apt-get install valgrind binutils)", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="brokerd-order-") as tmp:
        binary = Path(tmp) / "brokerd"
        subprocess.run(["strip", "-g", "-o", str(binary), a.brokerd], check=True)
        out = Path(tmp) / "callgrind.out"
        port, monitor = free_port(), free_port()
        # Mangled names (--demangle=no), as the linker knows them: demangled C++ names hold spaces and never match.
        argv = ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}", str(binary), "-a", HOST,
                "-p", str(port), "-m", str(monitor), "-js", "-sd", str(Path(tmp) / "store")]
        print("startup_order: " + " ".join(argv), file=sys.stderr)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not wait_port(port, 180) or not wait_port(monitor, 60):
                print("startup_order: brokerd never listened under valgrind", file=sys.stderr)
                return 1
            exercise(port, monitor)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=180)
        names: set[str] = set()
        # callgrind marks a function's recursion or cycle instances with a suffix ('2): the symbol is the name.
        pattern = re.compile(r"^c?fn=\(\d+\) ([^\s']+)")
        with open(out, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = pattern.match(line)
                # Skip what callgrind names without a symbol: "0x..." addresses, "(below main)".
                if m and not m.group(1).startswith(("0x", "(")):
                    names.add(m.group(1))
    Path(a.out).write_text("".join(n + "\n" for n in sorted(names)))
    print(f"startup_order: {len(names)} functions -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
