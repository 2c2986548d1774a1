"""Small helpers: progress on stderr, finding binaries, one-line command output, text tails, the JSON
file, and what the report records about the host and the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

from .config import CLK_TCK, ROOT


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
