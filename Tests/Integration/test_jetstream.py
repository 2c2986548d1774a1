"""JetStream streams through nats-py's JetStream API, against brokerd and nats-server (-js).

Consumers (durable queue groups, pull, acks, redelivery) are not implemented in brokerd yet; these tests
cover streams: create/info/names/delete/purge, publish with PubAck, dedupe, message get, and restarts.
"""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.api import StreamConfig

WAIT = 10


@pytest.fixture
def js_server(server_factory, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    return server_factory("-js", "-sd", str(store))


async def test_info_advertises_jetstream(js_server):
    nc = await nats.connect(js_server.url)
    try:
        assert nc._server_info.get("jetstream") is True
        js = nc.jetstream()
        info = await js.account_info()
        assert info.streams == 0
    finally:
        await nc.close()


async def test_stream_create_publish_ack_and_info(js_server):
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        created = await js.add_stream(name="FALCO", subjects=["FALCO.>"])
        assert created.config.name == "FALCO"
        assert created.config.subjects == ["FALCO.>"]
        acks = [await js.publish(f"FALCO.{p}", f"alert {i}".encode(), timeout=WAIT)
                for i, p in enumerate(["Critical", "Notice", "Error"])]
        assert [a.seq for a in acks] == [1, 2, 3]
        assert all(a.stream == "FALCO" for a in acks)
        info = await js.stream_info("FALCO")
        assert info.state.messages == 3
        assert info.state.first_seq == 1
        assert info.state.last_seq == 3
        msg = await js.get_msg("FALCO", 2)
        assert msg.data == b"alert 1"
        assert msg.subject == "FALCO.Notice"
        # Creating the identical stream again is fine; a different config under the same name is not.
        again = await js.add_stream(name="FALCO", subjects=["FALCO.>"])
        assert again.config.name == "FALCO"
        with pytest.raises(nats.js.errors.BadRequestError):
            await js.add_stream(name="FALCO", subjects=["OTHER.>"])
    finally:
        await nc.close()


async def test_plain_subscribers_still_get_captured_messages(js_server):
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="FALCO", subjects=["FALCO.>"])
        got = []

        async def on_alert(m):
            got.append(m.data)

        await nc.subscribe("FALCO.*", cb=on_alert)
        await nc.flush()
        await js.publish("FALCO.Warning", b"w", timeout=WAIT)
        await nc.flush()
        for _ in range(50):
            if got:
                break
            await asyncio.sleep(0.05)
        assert got == [b"w"]
    finally:
        await nc.close()


async def test_dedupe_by_msg_id(js_server):
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="FALCO", subjects=["FALCO.>"])
        first = await js.publish("FALCO.Alert", b"x", headers={"Nats-Msg-Id": "uuid-1"}, timeout=WAIT)
        second = await js.publish("FALCO.Alert", b"x", headers={"Nats-Msg-Id": "uuid-1"}, timeout=WAIT)
        assert first.seq == second.seq == 1
        assert second.duplicate is True
        assert (await js.stream_info("FALCO")).state.messages == 1
    finally:
        await nc.close()


async def test_missing_stream_and_delete_and_purge(js_server):
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.stream_info("NOPE")
        await js.add_stream(name="A", subjects=["a.>"])
        await js.add_stream(name="B", subjects=["b.>"])
        names = sorted(s.config.name for s in await js.streams_info())
        assert names == ["A", "B"]
        for i in range(5):
            await js.publish("a.x", b"%d" % i, timeout=WAIT)
        await js.purge_stream("A")
        assert (await js.stream_info("A")).state.messages == 0
        assert (await js.publish("a.x", b"after", timeout=WAIT)).seq == 6
        assert await js.delete_stream("B")
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.stream_info("B")
    finally:
        await nc.close()


async def test_acknowledged_messages_survive_a_restart(server_factory, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    s = server_factory("-js", "-sd", str(store))
    nc = await nats.connect(s.url)
    js = nc.jetstream()
    await js.add_stream(name="FALCO", subjects=["FALCO.>"])
    for i in range(200):
        await js.publish("FALCO.Critical", b"alert %d" % i, timeout=WAIT)
    await nc.close()
    s.terminate()
    s2 = server_factory("-js", "-sd", str(store))
    nc = await nats.connect(s2.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("FALCO")
        assert info.state.messages == 200
        assert (await js.get_msg("FALCO", 200)).data == b"alert 199"
        assert (await js.publish("FALCO.Critical", b"next", timeout=WAIT)).seq == 201
    finally:
        await nc.close()


async def test_update_applies_new_limits(js_server):
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="FALCO", subjects=["FALCO.>"])
        for i in range(10):
            await js.publish("FALCO.Debug", b"%d" % i, timeout=WAIT)
        updated = await js.update_stream(name="FALCO", subjects=["FALCO.>"], max_msgs=3)
        assert updated.config.max_msgs == 3
        info = await js.stream_info("FALCO")
        assert info.state.messages == 3
        assert info.state.first_seq == 8
    finally:
        await nc.close()
