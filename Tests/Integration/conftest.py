"""Fixtures for the brokerd integration suite.

Targets (TEST_TARGETS, default "brokerd,nats-server"):
  brokerd      the binary in $BROKERD_BIN (skipped when unset / not executable)
  nats-server  the reference server ($NATS_SERVER_BIN or `nats-server` on PATH)

Every test that takes `server`, `server_factory` or `target` runs once per
target; ids look like test_x[nats-server].
"""

from __future__ import annotations

import itertools
import socket
from typing import Optional

import nats
import pytest

import harness
from harness import Server, Target, resolve_target, selected_target_names, start_server


# nats-py's flush() writes its PING straight to the socket, ahead of commands still waiting for its flusher task
# (the SUB that subscribe() just queued), so the PONG does not prove the server has them: a SUB read after the
# PING misses a message published from another connection meanwhile, on nats-server as on brokerd (a rare CI
# failure, reproduced with CPU hogs: 19-34 in 3,000). By the time the first PONG is handled the flusher has
# written them, so a second PING goes out behind them and its PONG does prove it. Every test's flush() does both.
_nats_py_flush = nats.aio.client.Client.flush


async def _flush_behind_pending(self, timeout: int = 10) -> None:
    await _nats_py_flush(self, timeout)
    await _nats_py_flush(self, timeout)


nats.aio.client.Client.flush = _flush_behind_pending


def pytest_configure(config):
    try:
        selected_target_names()
    except ValueError as e:
        raise pytest.UsageError(str(e))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep


def _targets() -> list[str]:
    try:
        return selected_target_names()
    except ValueError:
        return []


@pytest.fixture(params=_targets())
def target(request) -> Target:
    t = resolve_target(request.param)
    if t.skip_reason:
        pytest.skip(f"target {t.name}: {t.skip_reason}")
    return t


@pytest.fixture
def reference() -> Target:
    """The reference nats-server (for byte-equality comparisons)."""
    t = resolve_target("nats-server")
    if t.skip_reason:
        pytest.skip(f"reference nats-server unavailable: {t.skip_reason}")
    return t


class _Factory:
    _seq = itertools.count()

    def __init__(self, target: Target, tmp_path, label: str):
        self.target = target
        self.tmp_path = tmp_path
        self.label = label
        self.servers: list[Server] = []

    def __call__(self, *extra_args: str, config: Optional[str] = None, config_listen: bool = False,
                 http: bool = False, long_flags: bool = False, ready: str = "info") -> Server:
        """Start a server: [binary, -a 127.0.0.1, -p PORT, (-m HTTP), (-c CONF), *extra_args]."""
        s = start_server(
            self.target, self.tmp_path / self.label, extra_args, config=config,
            config_listen=config_listen, http=http, long_flags=long_flags, seq=next(self._seq), ready=ready,
        )
        self.servers.append(s)
        return s

    def teardown(self, failed: bool) -> None:
        for s in self.servers:
            s.terminate()
            if failed:
                print(f"\n===== {s.target.name} log ({' '.join(s.args)}) exit={s.returncode} =====")
                print(s.log_text(8000))


def _failed(request) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is not None and rep.failed


@pytest.fixture
def server_factory(target, tmp_path, request):
    f = _Factory(target, tmp_path, "target")
    yield f
    f.teardown(_failed(request))


@pytest.fixture
def reference_factory(reference, tmp_path, request):
    f = _Factory(reference, tmp_path, "reference")
    yield f
    f.teardown(_failed(request))


@pytest.fixture
def js_server(server_factory, tmp_path) -> Server:
    """A server with JetStream on a store of its own (`-js -sd DIR`)."""
    store = tmp_path / "store"
    store.mkdir()
    return server_factory("-js", "-sd", str(store))


@pytest.fixture
def server(server_factory) -> Server:
    """A target server with default options."""
    return server_factory()


@pytest.fixture
def raw(server):
    """A raw connection (INFO already read) to the default target server."""
    conns = []

    def make(**kw) -> harness.RawConn:
        c = server.conn(**kw)
        conns.append(c)
        return c

    yield make
    for c in conns:
        c.close()


# --------------------------------------------------------------------------
# nats-py
# --------------------------------------------------------------------------


class NatsClients:
    def __init__(self):
        self.clients = []
        self.errors = []

    async def connect(self, server_or_url, **kw) -> nats.NATS:
        url = server_or_url.url if isinstance(server_or_url, Server) else server_or_url

        async def error_cb(e):
            self.errors.append(e)

        opts = dict(allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5, error_cb=error_cb)
        opts.update(kw)
        nc = await nats.connect(url, **opts)
        self.clients.append(nc)
        return nc

    async def close_all(self):
        for nc in self.clients:
            try:
                if not nc.is_closed:
                    await nc.close()
            except Exception:
                pass


@pytest.fixture
async def nats_clients():
    c = NatsClients()
    yield c
    await c.close_all()



def pytest_terminal_summary(terminalreporter):
    """One line per target saying whether it ran, so a skipped brokerd is obvious."""
    for name in _targets():
        t = resolve_target(name)
        status = f"SKIPPED ({t.skip_reason})" if t.skip_reason else t.binary
        terminalreporter.write_line(f"target {name}: {status}")
