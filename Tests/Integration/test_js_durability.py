"""brokerd's promises beyond nats-server's, tested through SIGKILL at random moments: a confirmed consumer ack
(ack_sync: the ack carries a reply) is answered only once the consumer state holding it is on disk, so after any
crash the ack floor is never below the last confirmed ack and no confirmed message is delivered again.
(nats-server answers an ack_sync before its state is synced: these are brokerd-only.)
"""

from __future__ import annotations

import asyncio
import random
import signal

import nats
import pytest
from jetstream_helpers import connect

WAIT = 10


async def test_confirmed_acks_survive_kill_9(server_factory, tmp_path, target):
    if target.name != "brokerd":
        pytest.skip("nats-server answers ack_sync before its consumer state is on disk")
    rng = random.Random(20261204)
    store = tmp_path / "store"
    store.mkdir()
    confirmed: set[int] = set()
    last_confirmed = 0
    for round_ in range(20):
        s = server_factory("-js", "-sd", str(store))
        nc, js = await connect(s, allow_reconnect=False, max_reconnect_attempts=0)
        if round_ == 0:
            await js.add_stream(name="WORK", subjects=["work.>"])
            for i in range(3000):
                await js.publish("work.job", b"job %d" % i)
            await js.add_consumer("WORK", durable_name="w", ack_policy="explicit", ack_wait=60)
        info = await js.consumer_info("WORK", "w")
        assert info.ack_floor.stream_seq >= last_confirmed, \
            f"round {round_}: ack floor {info.ack_floor.stream_seq} is below the last confirmed ack {last_confirmed}"
        psub = await js.pull_subscribe_bind("w", "WORK")

        async def work_until_killed():
            nonlocal last_confirmed
            while True:
                (m,) = await psub.fetch(1, timeout=2)
                seq = m.metadata.sequence.stream
                assert seq not in confirmed, f"round {round_}: message {seq} came again after its ack was confirmed"
                await m.ack_sync(timeout=2)
                confirmed.add(seq)
                last_confirmed = max(last_confirmed, seq)

        task = asyncio.create_task(work_until_killed())
        await asyncio.sleep(rng.uniform(0.05, 0.4))
        if task.done():
            task.result()  # an assertion inside the worker fails the test here
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait(timeout=10)
        try:
            await asyncio.wait_for(task, 3)
        except AssertionError:
            raise
        except Exception:
            pass
        await nc.close()
    assert len(confirmed) > 100
    s = server_factory("-js", "-sd", str(store))
    nc, js = await connect(s)
    try:
        info = await js.consumer_info("WORK", "w")
        assert info.ack_floor.stream_seq >= last_confirmed
    finally:
        await nc.close()


async def test_idle_consumer_state_is_not_rewritten(js_server, tmp_path, target):
    """A durable consumer's state is written again only after it changed: a pull consumer waiting with a fetch
    (as nats-py's fetch long-polls) and a push consumer with a listener were rewritten every 100 ms tick."""
    if target.name != "brokerd":
        pytest.skip("brokerd's store layout")
    store = tmp_path / "store"  # js_server's
    nc, js = await connect(js_server)
    await js.add_stream(name="IDLE", subjects=["idle.>"])
    await js.publish("idle.x", b"first")
    psub = await js.pull_subscribe("idle.x", durable="puller", stream="IDLE")
    push = await js.subscribe("idle.x", durable="pusher", stream="IDLE", manual_ack=True)
    (m,) = await psub.fetch(1, timeout=WAIT)
    await m.ack_sync()
    pm = await push.next_msg(timeout=WAIT)
    await pm.ack_sync()

    def states():
        files = sorted((store / "jetstream" / "streams" / "IDLE" / "consumers").glob("*/state.*"))
        return {str(f.relative_to(store)): (f.stat().st_mtime_ns, f.read_bytes()) for f in files}

    await asyncio.sleep(0.5)  # the tick after the acks has written them
    before = states()
    assert {k.split("/")[-2] for k in before} == {"puller", "pusher"}
    waiting = asyncio.ensure_future(psub.fetch(1, timeout=3))  # a pull request waits through several ticks
    await asyncio.sleep(1.0)
    assert states() == before, "an idle consumer's state was written again"
    await js.publish("idle.x", b"second")
    (m,) = await waiting
    assert m.data == b"second"
    await m.ack_sync()
    pm = await push.next_msg(timeout=WAIT)
    assert pm.data == b"second"
    await pm.ack_sync()
    await asyncio.sleep(0.5)
    after = states()
    for name in ("puller", "pusher"):
        changed = [k for k in after if f"/{name}/" in k and after[k] != before.get(k)]
        assert changed, f"{name}'s state was not written after a delivery and an ack"
    await nc.close()
