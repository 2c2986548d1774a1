"""What the JetStream test files share: a connection with its JetStream context, an API error as a
(code, err_code, description) tuple, and a raw API request as JSON."""

from __future__ import annotations

import asyncio
import json
import signal

import nats
import nats.js.errors
import pytest

WAIT = 10


async def connect(server, timeout: float = WAIT, **options):
    nc = await nats.connect(server.url, **options)
    return nc, nc.jetstream(timeout=timeout)


async def api_error(coro):
    with pytest.raises(nats.js.errors.APIError) as e:
        await coro
    return (e.value.code, e.value.err_code, e.value.description)


async def api(nc, subject, body):
    return json.loads((await nc.request(subject, json.dumps(body).encode(), timeout=WAIT)).data)


async def crash_and_restart(nc, server, server_factory, store, timeout: float = WAIT, settle: bool = True):
    """Closes `nc`, kills the server with SIGKILL (a crash: nothing shut down in order), starts it again on the
    same store and connects: returns (server, nc, js). nats-server acknowledges before it writes (its writes
    leave the process a moment later), so it gets a second to hand them to the kernel first; brokerd is killed
    at once (it acknowledges only what is on disk). `settle` False kills nats-server at once too."""
    await nc.close()
    if settle and server.target.name != "brokerd":
        await asyncio.sleep(1.0)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=10)
    server = server_factory("-js", "-sd", str(store))
    nc, js = await connect(server, timeout)
    return server, nc, js
