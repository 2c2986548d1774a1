"""Slow consumers, graceful shutdown, stale connections and connection limits."""

import asyncio
import signal
import socket
import time

from harness import (
    ERR_MAX_CONNECTIONS, ERR_STALE_CONNECTION, HOST, PING, PONG, connect_line, sync_subscriptions,
)

WAIT = 10.0


async def test_slow_consumer_is_cut_off(server_factory, nats_clients):
    """A subscriber that never reads is disconnected once more than max_pending
    bytes are queued for it -- with no -ERR. Publisher, server and a healthy
    subscriber carry on."""
    s = server_factory(config="max_pending: 1048576\n")
    slow = s.conn(rcvbuf=4096)
    slow.connect()
    slow.send(b"SUB big 1\r\n")
    assert slow.roundtrip()

    publisher = await nats_clients.connect(s)
    healthy = await nats_clients.connect(s)
    count = {"n": 0, "in_order": True}
    progress = asyncio.Event()

    async def cb(m):
        if int(m.data[:8]) != count["n"]:
            count["in_order"] = False
        count["n"] += 1
        progress.set()

    await healthy.subscribe("big", cb=cb, pending_bytes_limit=256 * 1024 * 1024)
    await sync_subscriptions(healthy)

    size, batch, batches = 10_000, 40, 50  # 2,000 messages, 20 MB in total
    filler = b"x" * (size - 8)
    sent = 0
    for _ in range(batches):
        for _ in range(batch):
            await publisher.publish("big", b"%08d" % sent + filler)
            sent += 1
        await publisher.flush(timeout=WAIT)
        # Pace the publisher on the healthy subscriber so only the slow one
        # can ever have ~1 MB queued.
        deadline = time.monotonic() + WAIT
        while count["n"] < sent and time.monotonic() < deadline:
            progress.clear()
            try:
                await asyncio.wait_for(progress.wait(), max(0.01, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
        assert count["n"] == sent, f"healthy subscriber got {count['n']} of {sent}"

    assert count["in_order"]
    # The slow consumer's socket is closed by the server...
    closed, _ = await asyncio.to_thread(slow.drain_until_closed, 15.0)
    assert closed, "slow consumer was never disconnected"
    # ...without any -ERR (nats-server just closes it).
    assert b"-ERR" not in slow.raw
    # The publisher still works, and so does the server.
    await sync_subscriptions(publisher)
    assert publisher.is_connected and healthy.is_connected
    with s.conn() as c:
        assert c.connect() == PONG
    assert s.proc.poll() is None


async def test_graceful_shutdown_on_sigterm(server_factory, nats_clients):
    s = server_factory()
    raw = s.conn()
    assert raw.connect() == PONG
    disconnected = asyncio.Event()

    async def on_disconnect():
        disconnected.set()

    nc = await nats_clients.connect(s, disconnected_cb=on_disconnect)
    await sync_subscriptions(nc)

    s.proc.send_signal(signal.SIGTERM)
    rc = await asyncio.to_thread(s.proc.wait, WAIT)
    assert rc == 0
    assert await asyncio.to_thread(raw.read_until_closed, 5.0), "raw client not disconnected"
    await asyncio.wait_for(disconnected.wait(), 5.0)
    # Nothing listens on the port any more.
    try:
        socket.create_connection((HOST, s.port), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    assert refused
    raw.close()


def test_sigterm_with_idle_server_exits_zero(server_factory):
    s = server_factory()
    assert s.terminate(timeout=WAIT) == 0


def test_max_connections(server_factory):
    s = server_factory(config="max_connections: 2\n")
    keep = []
    for _ in range(2):
        # The readiness probe's connection may not be reaped yet: retry (bounded).
        for _attempt in range(50):
            c = s.conn()
            if c.connect() == PONG:
                keep.append(c)
                break
            c.close()
            time.sleep(0.05)
    assert len(keep) == 2
    with s.conn() as third:  # INFO first, then the error and close
        assert third.info is not None
        assert third.read_until_closed(5)
        assert third.data() == ERR_MAX_CONNECTIONS
    for c in keep:
        assert c.roundtrip()
        c.close()


def test_stale_connection(server_factory):
    """ping_interval 1s, ping_max 2: a client that never answers the server's
    PINGs gets two PINGs, then -ERR 'Stale Connection' and is closed; a client
    that answers stays connected."""
    s = server_factory(config='ping_interval: "1s"\nping_max: 2\n')
    mute = s.conn()
    mute.send(connect_line())
    live = s.conn()
    live.send(connect_line())

    deadline = time.monotonic() + 10
    answered = 0
    while time.monotonic() < deadline and not mute.closed:
        mute.read_until(lambda d: False, timeout=0.1)
        live.read_until(lambda d: False, timeout=0.1)
        pings = live.frames().count(PING)
        while answered < pings:
            live.send(PONG)
            answered += 1
    assert mute.closed
    assert mute.data() == PING + PING + ERR_STALE_CONNECTION
    assert not live.closed
    assert live.roundtrip()
    mute.close()
    live.close()
