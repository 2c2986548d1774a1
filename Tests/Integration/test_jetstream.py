"""JetStream through nats-py's JetStream API, against brokerd and nats-server (-js).

Streams (create/info/names/delete/purge, PubAck, dedupe, message get, limits, server store limits),
consumers (durable queue groups, pull, acks, nak/term, redelivery, max_deliver, max_ack_pending, deliver
policies) and restarts, kill -9 and torn writes.
"""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.api import StreamConfig

WAIT = 10



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


async def test_no_acknowledged_message_is_lost_to_kill_9(server_factory, tmp_path, target):
    """A publisher waits for PubAcks while the server is killed with SIGKILL at random moments, 20 times.
    After each restart every acknowledged message is in the stream, exactly once. (brokerd acks only after
    fsync; nats-server by default syncs every 2 minutes, so this is brokerd's promise, not its.)"""
    if target.name != "brokerd":
        pytest.skip("nats-server's default sync interval does not promise this")
    import random
    import signal as _signal
    rng = random.Random(20261123)
    store = tmp_path / "store"
    store.mkdir()
    acked: dict[int, bytes] = {}
    counter = 0
    for round_ in range(20):
        s = server_factory("-js", "-sd", str(store))
        nc = await nats.connect(s.url, allow_reconnect=False, max_reconnect_attempts=0)
        js = nc.jetstream()
        if round_ == 0:
            await js.add_stream(name="FALCO", subjects=["FALCO.>"])
        # Check what survived the previous kill.
        info = await js.stream_info("FALCO")
        assert info.state.messages >= len(acked)
        # The newest acks are the ones a kill could have lost; all of them are checked at the end.
        for seq in sorted(acked)[-30:]:
            assert (await js.get_msg("FALCO", seq)).data == acked[seq], f"round {round_}: acked seq {seq} lost"

        async def publish_until_killed():
            nonlocal counter
            while True:
                counter += 1
                payload = b"alert-%d" % counter
                ack = await js.publish("FALCO.Critical", payload, timeout=1)
                assert ack.seq not in acked, "a sequence was acknowledged twice"
                acked[ack.seq] = payload

        task = asyncio.create_task(publish_until_killed())
        await asyncio.sleep(rng.uniform(0.05, 0.4))
        s.proc.send_signal(_signal.SIGKILL)
        s.proc.wait(timeout=10)
        try:
            await asyncio.wait_for(task, 2)
        except Exception:
            pass
        await nc.close()
    assert len(acked) > 100
    s = server_factory("-js", "-sd", str(store))
    nc = await nats.connect(s.url)
    try:
        js = nc.jetstream()
        payloads = [(await js.get_msg("FALCO", seq)).data for seq in sorted(acked)]
        assert payloads == [acked[seq] for seq in sorted(acked)]
        assert len(set(payloads)) == len(payloads), "each acknowledged message exactly once"
    finally:
        await nc.close()


async def test_torn_tail_is_cut_at_startup_and_logged(server_factory, tmp_path, target):
    if target.name != "brokerd":
        pytest.skip("brokerd's store layout")
    store = tmp_path / "store"
    store.mkdir()
    s = server_factory("-js", "-sd", str(store))
    nc = await nats.connect(s.url)
    js = nc.jetstream()
    await js.add_stream(name="FALCO", subjects=["FALCO.>"])
    for i in range(50):
        await js.publish("FALCO.Error", b"alert %d" % i, timeout=WAIT)
    await nc.close()
    assert s.terminate() == 0
    block = store / "jetstream" / "streams" / "FALCO" / "msgs" / "00000001.blk"
    data = block.read_bytes()
    block.write_bytes(data[:-7])  # a write torn in the last record
    s2 = server_factory("-js", "-sd", str(store))
    nc = await nats.connect(s2.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("FALCO")
        assert info.state.messages == 49
        assert (await js.get_msg("FALCO", 49)).data == b"alert 48"
        assert (await js.publish("FALCO.Error", b"new", timeout=WAIT)).seq == 50
        assert "cut a torn or corrupt tail" in s2.log_text()
    finally:
        await nc.close()


async def test_jsz_reports_streams(server_factory, tmp_path):
    import json as _json
    import urllib.request
    store = tmp_path / "store"
    store.mkdir()
    s = server_factory("-js", "-sd", str(store), http=True)
    nc = await nats.connect(s.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="FALCO", subjects=["FALCO.>"])
        for i in range(3):
            await js.publish("FALCO.Notice", b"n", timeout=WAIT)
        with urllib.request.urlopen(f"http://127.0.0.1:{s.http_port}/jsz", timeout=5) as r:
            jsz = _json.loads(r.read())
        assert jsz["streams"] == 1
        assert jsz["messages"] == 3
        assert jsz["bytes"] > 0
    finally:
        await nc.close()


async def test_durable_queue_group_shares_the_work(js_server):
    """A durable push consumer with a deliver group shared by two subscribers: each message to exactly one."""
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="FALCO", subjects=["FALCO.>"])
        got = {"a": [], "b": []}

        def handler(who):
            async def cb(msg):
                got[who].append(msg.data)
                await msg.ack()
            return cb

        await js.subscribe("FALCO.>", durable="workers", queue="workers", cb=handler("a"))
        await js.subscribe("FALCO.>", durable="workers", queue="workers", cb=handler("b"))
        for i in range(100):
            await js.publish("FALCO.Critical", b"%d" % i, timeout=WAIT)
        for _ in range(200):
            if len(got["a"]) + len(got["b"]) >= 100:
                break
            await asyncio.sleep(0.05)
        everything = got["a"] + got["b"]
        assert sorted(everything) == sorted(b"%d" % i for i in range(100))
        assert len(everything) == 100, "each message to exactly one member"
        info = await js.consumer_info("FALCO", "workers")
        for _ in range(100):
            if info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.05)
            info = await js.consumer_info("FALCO", "workers")
        assert info.num_ack_pending == 0
    finally:
        await nc.close()


async def test_pull_fetch_ack_and_redelivery(js_server):
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="FALCO", subjects=["FALCO.>"])
        for i in range(5):
            await js.publish("FALCO.Error", b"%d" % i, timeout=WAIT)
        psub = await js.pull_subscribe("FALCO.>", durable="puller", config=nats.js.api.ConsumerConfig(ack_wait=1))
        msgs = await psub.fetch(5, timeout=5)
        assert [m.data for m in msgs] == [b"%d" % i for i in range(5)]
        for m in msgs[:4]:
            await m.ack()
        # The fifth was not acked: it comes back after ack_wait, marked as a redelivery.
        again = await psub.fetch(1, timeout=5)
        assert again[0].data == b"4"
        assert again[0].metadata.num_delivered == 2
        await again[0].ack()
        with pytest.raises(nats.errors.TimeoutError):
            await psub.fetch(1, timeout=1)
    finally:
        await nc.close()


async def test_consumer_resumes_from_its_ack_floor_after_restart(server_factory, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    s = server_factory("-js", "-sd", str(store))
    nc = await nats.connect(s.url)
    js = nc.jetstream()
    await js.add_stream(name="FALCO", subjects=["FALCO.>"])
    for i in range(10):
        await js.publish("FALCO.Notice", b"%d" % i, timeout=WAIT)
    psub = await js.pull_subscribe("FALCO.>", durable="resume")
    for m in await psub.fetch(6, timeout=5):
        await m.ack_sync()
    await nc.close()
    assert s.terminate() == 0
    s2 = server_factory("-js", "-sd", str(store))
    nc = await nats.connect(s2.url)
    try:
        js = nc.jetstream()
        psub = await js.pull_subscribe("FALCO.>", durable="resume")
        rest = await psub.fetch(4, timeout=5)
        assert [m.data for m in rest] == [b"6", b"7", b"8", b"9"]
    finally:
        await nc.close()


async def test_nak_term_max_deliver_and_advisory(js_server):
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="FALCO", subjects=["FALCO.>"])
        advisories = []

        async def on_advisory(m):
            advisories.append(m.subject)

        await nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>", cb=on_advisory)
        await js.publish("FALCO.Alert", b"nak-me", timeout=WAIT)
        await js.publish("FALCO.Alert", b"term-me", timeout=WAIT)
        psub = await js.pull_subscribe("FALCO.>", durable="p", config=nats.js.api.ConsumerConfig(ack_wait=1, max_deliver=2))
        first = await psub.fetch(2, timeout=5)
        await first[0].nak()
        await first[1].term()
        again = await psub.fetch(1, timeout=5)
        assert again[0].data == b"nak-me"
        assert again[0].metadata.num_delivered == 2
        # Not acked a second time: max_deliver is 2, so it is given up on and an advisory says so.
        with pytest.raises(nats.errors.TimeoutError):
            await psub.fetch(1, timeout=2.5)
        for _ in range(50):
            if advisories:
                break
            await asyncio.sleep(0.1)
        assert advisories == ["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.FALCO.p"]
    finally:
        await nc.close()


async def test_max_ack_pending_pauses_then_resumes(js_server):
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="FALCO", subjects=["FALCO.>"])
        for i in range(6):
            await js.publish("FALCO.Debug", b"%d" % i, timeout=WAIT)
        psub = await js.pull_subscribe("FALCO.>", durable="slow", config=nats.js.api.ConsumerConfig(max_ack_pending=2))
        batch = await psub.fetch(6, timeout=2)
        assert [m.data for m in batch] == [b"0", b"1"], "paused at max_ack_pending"
        for m in batch:
            await m.ack_sync()
        rest = []
        while len(rest) < 4:
            for m in await psub.fetch(2, timeout=5):
                rest.append(m.data)
                await m.ack_sync()
        assert rest == [b"2", b"3", b"4", b"5"], "never stalls for good"
    finally:
        await nc.close()


async def test_workqueue_retention_removes_acked_messages(js_server):
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="WORK", subjects=["work.>"], retention="workqueue")
        for i in range(3):
            await js.publish("work.item", b"%d" % i, timeout=WAIT)
        psub = await js.pull_subscribe("work.>", durable="w")
        for m in await psub.fetch(3, timeout=5):
            await m.ack_sync()
        info = await js.stream_info("WORK")
        assert info.state.messages == 0
    finally:
        await nc.close()


async def test_interest_retention_and_deliver_policies(js_server):
    import datetime
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="INT", subjects=["int.>"], retention="interest")
        a = await js.pull_subscribe("int.>", durable="a")
        b = await js.pull_subscribe("int.>", durable="b")
        for i in range(2):
            await js.publish("int.x", b"%d" % i, timeout=WAIT)
        for m in await a.fetch(2, timeout=5):
            await m.ack_sync()
        assert (await js.stream_info("INT")).state.messages == 2, "b has not acked yet"
        for m in await b.fetch(2, timeout=5):
            await m.ack_sync()
        assert (await js.stream_info("INT")).state.messages == 0, "acked by every consumer"

        await js.add_stream(name="T", subjects=["t.>"])
        await js.publish("t.x", b"old", timeout=WAIT)
        await asyncio.sleep(0.2)
        since = datetime.datetime.now(datetime.timezone.utc)
        await asyncio.sleep(0.2)
        await js.publish("t.x", b"new", timeout=WAIT)
        cfg = nats.js.api.ConsumerConfig(deliver_policy=nats.js.api.DeliverPolicy.BY_START_TIME,
                                         opt_start_time=since.isoformat().replace("+00:00", "Z"))
        c = await js.pull_subscribe("t.>", durable="since", config=cfg)
        got = await c.fetch(1, timeout=5)
        assert got[0].data == b"new"
    finally:
        await nc.close()


@pytest.mark.parametrize("policy", ["always", "interval"])
async def test_sync_policies_acknowledge_and_keep_messages(server_factory, tmp_path, target, policy):
    if target.name != "brokerd":
        pytest.skip("brokerd's sync setting")
    store = tmp_path / "store"
    store.mkdir()
    setting = "sync: always" if policy == "always" else 'sync_interval: "1s"'
    conf = f"jetstream {{\n  store_dir: \"{store}\"\n  {setting}\n}}\n"
    s = server_factory(config=conf)
    nc = await nats.connect(s.url)
    js = nc.jetstream()
    await js.add_stream(name="FALCO", subjects=["FALCO.>"])
    acks = [await js.publish("FALCO.Notice", b"%d" % i, timeout=WAIT) for i in range(20)]
    assert [a.seq for a in acks] == list(range(1, 21))
    await nc.close()
    assert s.terminate() == 0
    s2 = server_factory(config=conf)
    nc = await nats.connect(s2.url)
    try:
        assert (await nc.jetstream().stream_info("FALCO")).state.messages == 20
    finally:
        await nc.close()


async def test_deliver_policy_last_per_subject(js_server):
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="LPS", subjects=["lps.>"])
        for subject, body in [("lps.a", b"a1"), ("lps.b", b"b1"), ("lps.a", b"a2"), ("lps.c", b"c1"),
                              ("lps.b", b"b2"), ("lps.a", b"a3")]:
            await js.publish(subject, body, timeout=WAIT)
        cfg = nats.js.api.ConsumerConfig(deliver_policy=nats.js.api.DeliverPolicy.LAST_PER_SUBJECT)
        c = await js.pull_subscribe("lps.>", durable="latest", config=cfg)
        got = await c.fetch(3, timeout=5)
        assert [m.data for m in got] == [b"c1", b"b2", b"a3"], "the newest of each subject, in stream order"
        for m in got:
            await m.ack_sync()
        await js.publish("lps.a", b"a4", timeout=WAIT)
        got = await c.fetch(1, timeout=5)
        assert [m.data for m in got] == [b"a4"], "then every new message"
        # With a filter: only the subjects it matches.
        f = await js.pull_subscribe("lps.b", durable="latest-b", config=cfg)
        assert [m.data for m in await f.fetch(1, timeout=5)] == [b"b2"]
    finally:
        await nc.close()


async def test_max_file_store_refuses_big_streams_and_publishes_past_the_limit(server_factory, tmp_path, target):
    store = tmp_path / "store"
    store.mkdir()
    conf = f'jetstream {{\n  store_dir: "{store}"\n  max_file_store: 64KB\n}}\n'
    s = server_factory(config=conf)
    nc = await nats.connect(s.url)
    try:
        js = nc.jetstream()
        # A stream that reserves more than the server may store is refused as nats-server does.
        with pytest.raises(nats.js.errors.APIError) as refused:
            await js.add_stream(name="BIG", subjects=["big.>"], max_bytes=1 << 20)
        assert refused.value.err_code == 10047
        assert refused.value.description == "insufficient storage resources available"
        await js.add_stream(name="FALCO", subjects=["FALCO.>"])
        acked = 0
        error = None
        for i in range(200):
            try:
                await js.publish("FALCO.Notice", b"x" * 1000, timeout=WAIT)
                acked += 1
            except nats.js.errors.APIError as e:
                error = e
                break
        assert error is not None, "the 64 KB limit must stop a 200 KB flow"
        assert error.err_code == 10023 and error.description == "insufficient resources"
        assert 30 <= acked < 70
        # Nothing acknowledged is lost, nothing refused is stored.
        assert (await js.stream_info("FALCO")).state.messages == acked
    finally:
        await nc.close()


async def test_ack_all_releases_everything_below_it(js_server):
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="WQ", subjects=["wq.>"], retention="workqueue")
        await js.add_stream(name="IN", subjects=["in.>"], retention="interest")
        cfg = nats.js.api.ConsumerConfig(ack_policy=nats.js.api.AckPolicy.ALL)
        with pytest.raises(nats.js.errors.BadRequestError) as refused:
            await js.pull_subscribe("wq.>", durable="w", config=cfg)
        assert refused.value.err_code == 10098
        assert refused.value.description == "workqueue stream requires explicit ack"
        sub = await js.pull_subscribe("in.>", durable="i", config=cfg)
        for n in range(5):
            await js.publish("in.item", b"%d" % n, timeout=WAIT)
        got = await sub.fetch(5, timeout=5)
        assert len(got) == 5
        await got[3].ack_sync()  # acks 1..4
        assert (await js.stream_info("IN")).state.messages == 1
        await got[4].ack_sync()
        assert (await js.stream_info("IN")).state.messages == 0
    finally:
        await nc.close()
