"""The C client (nats.c from Debian's libnats-dev) through its own JetStream and Key-Value API, against brokerd
and nats-server (-js): c_client/js_kv.c prints one line per step, and both servers must give exactly the
transcript in c_client/js_kv.expected (revisions, create/update refusals, delete and purge, keys, history,
status, dedupe, expectations with their error code, a pull consumer with ack sync, last-message and direct gets).

`make test` installs libnats-dev; without it (or without a C compiler) the test is skipped and says why.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "c_client"


@pytest.fixture(scope="session")
def js_kv_program(tmp_path_factory):
    compiler = shutil.which("cc") or shutil.which("clang") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    if not Path("/usr/include/nats/nats.h").exists():
        pytest.skip("libnats-dev is not installed (make test installs it)")
    out = tmp_path_factory.mktemp("c_client") / "js_kv"
    build = subprocess.run([compiler, "-o", str(out), str(HERE / "js_kv.c"), "-lnats"], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return out


def test_jetstream_and_key_value_through_the_c_client(js_server, js_kv_program):
    run = subprocess.run([str(js_kv_program), js_server.url], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == (HERE / "js_kv.expected").read_text().splitlines()
