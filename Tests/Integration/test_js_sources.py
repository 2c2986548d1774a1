"""JetStream mirrors, sources, subject transforms and republish through nats-py, against brokerd and
nats-server (-js): contents, sequences, headers and errors must be the same; positions survive a restart and
SIGKILL (nothing lost, nothing stored twice).
"""

from __future__ import annotations

import asyncio
import signal

import nats
import pytest
from jetstream_helpers import crash_and_restart
from nats.js.api import RePublish, StreamConfig, StreamSource, SubjectTransform

WAIT = 10


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "store"
    path.mkdir()
    return path


async def wait_for(js, stream, messages, timeout=WAIT):
    """Waits until `stream` holds `messages` messages; returns its info."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        info = await js.stream_info(stream)
        if info.state.messages >= messages or loop.time() > deadline:
            return info
        await asyncio.sleep(0.05)


async def contents(js, stream):
    """(seq, subject, data, headers) of every message in `stream`."""
    info = await js.stream_info(stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            m = await js.get_msg(stream, seq)
        except nats.js.errors.NotFoundError:
            continue
        out.append((m.seq, m.subject, m.data, dict(m.headers or {})))
    return out


def source_fields(value):
    """A Nats-Stream-Source value without nats-server's optional sixth field (the origin's identity hash)."""
    return value.split(" ")[:5]


async def test_mirror_keeps_origin_sequences_and_refuses_publishes(server_factory, store):
    s = server_factory("-js", "-sd", str(store))
    nc = await nats.connect(s.url)
    try:
        js = nc.jetstream()
        # The origin no longer has its first message: the mirror starts at the origin's first sequence.
        await js.add_stream(name="O", subjects=["o.>"], max_msgs=4)
        for i in range(5):
            await js.publish(f"o.{i % 2}", b"m%d" % i, headers={"X-I": str(i)} if i == 3 else None)
        info = await js.add_stream(name="M", mirror=StreamSource(name="O"))
        assert info.config.subjects in (None, [])
        assert info.config.mirror.name == "O"
        info = await wait_for(js, "M", 4)
        assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (4, 2, 5)
        assert info.mirror.name == "O"
        assert info.mirror.lag == 0
        # The mirror's consumer on the origin is not listed (nats-server hides direct consumers).
        assert (await js.stream_info("O")).state.consumer_count == 0
        origin = await contents(js, "O")
        assert await contents(js, "M") == origin
        # The mirror keeps the origin's times.
        assert (await js.get_msg("M", 5)).headers is None
        # More messages follow; a mirror has no subjects, so nothing can publish into it.
        await js.publish("o.x", b"late")
        await asyncio.sleep(0.3)
        info = await js.stream_info("M")
        assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (5, 2, 6)
        assert (await contents(js, "M"))[1:] == await contents(js, "O")
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await js.publish("M", b"direct")
        # A filtered mirror starting at a sequence.
        await js.add_stream(name="MF", mirror=StreamSource(name="O", filter_subject="o.1", opt_start_seq=3))
        info = await wait_for(js, "MF", 1)
        await asyncio.sleep(0.3)
        assert [(seq, subj, data) for seq, subj, data, _ in await contents(js, "MF")] == [(4, "o.1", b"m3")]
    finally:
        await nc.close()


async def test_mirror_config_errors(server_factory, store):
    s = server_factory("-js", "-sd", str(store))
    nc = await nats.connect(s.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="O", subjects=["o.>"])
        cases = [
            (dict(name="M1", subjects=["m"], mirror=StreamSource(name="O")), 10034, "stream mirrors can not contain subjects"),
            (dict(name="M2", mirror=StreamSource(name="O"), sources=[StreamSource(name="O")]), 10031,
             "stream mirrors can not also contain other sources"),
            (dict(name="M3", mirror=StreamSource(name="O", filter_subject="o.1",
                                                 subject_transforms=[SubjectTransform(src="o.2", dest="x")])), 10150,
             "mirror with multiple subject transforms cannot also have a single subject filter"),
            (dict(name="M4", mirror=StreamSource(name="O.X")), 10142, "mirrored stream name is invalid"),
            (dict(name="S1", sources=[StreamSource(name="O"), StreamSource(name="O")]), 10140,
             "duplicate source configuration detected"),
            (dict(name="S2", sources=[StreamSource(name="O", subject_transforms=[
                SubjectTransform(src="o.>", dest="a.>"), SubjectTransform(src="o.1", dest="b")])]), 10147,
             "source filters can not overlap"),
            (dict(name="S3", sources=[StreamSource(name="a*b")]), 10141, "sourced stream name is invalid"),
            (dict(name="R1", subjects=["r.>"], republish=RePublish(src=">", dest="r.x")), 10052,
             "stream configuration for republish destination forms a cycle"),
        ]
        for kwargs, err_code, description in cases:
            with pytest.raises(nats.js.errors.APIError) as e:
                await js.add_stream(StreamConfig(**kwargs))
            assert (e.value.err_code, e.value.description) == (err_code, description), kwargs["name"]
        await js.add_stream(name="M", mirror=StreamSource(name="O"))
        with pytest.raises(nats.js.errors.APIError) as e:
            await js.update_stream(StreamConfig(name="M", mirror=StreamSource(name="O", filter_subject="o.1")))
        assert e.value.err_code == 10055
        # A mirror of a stream that does not exist yet starts when it appears.
        await js.add_stream(name="LATE", mirror=StreamSource(name="NOTYET"))
        await js.add_stream(name="NOTYET", subjects=["ny"])
        await js.publish("ny", b"hello")
        info = await wait_for(js, "LATE", 1)
        assert info.state.messages == 1
    finally:
        await nc.close()


async def test_sources_with_own_subjects_headers_and_transforms(server_factory, store):
    s = server_factory("-js", "-sd", str(store))
    nc = await nats.connect(s.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="A", subjects=["a.>"])
        await js.add_stream(name="B", subjects=["b.>"])
        await js.publish("a.1", b"a1", headers={"Nats-Msg-Id": "x1", "K": "v"})
        await js.publish("b.1", b"b1")
        await js.publish("a.2", b"a2")
        info = await js.add_stream(name="AGG", subjects=["agg"], sources=[
            StreamSource(name="A", filter_subject="a.1"),
            StreamSource(name="B", subject_transforms=[SubjectTransform(src="b.*", dest="from.b.{{wildcard(1)}}")]),
        ])
        assert [src.name for src in info.config.sources] == ["A", "B"]
        await js.publish("agg", b"own")
        info = await wait_for(js, "AGG", 3)
        await asyncio.sleep(0.3)
        info = await js.stream_info("AGG")
        assert info.state.messages == 3
        assert sorted(src.name for src in info.sources) == ["A", "B"]
        assert all(src.lag == 0 for src in info.sources)
        got = await contents(js, "AGG")
        by_subject = {subj: (data, hdrs) for _, subj, data, hdrs in got}
        assert set(by_subject) == {"a.1", "from.b.1", "agg"}
        data, hdrs = by_subject["a.1"]
        assert data == b"a1"
        assert hdrs["K"] == "v" and hdrs["Nats-Msg-Id"] == "x1"
        assert source_fields(hdrs["Nats-Stream-Source"]) == ["A", "1", "a.1", ">", "a.1"]
        data, hdrs = by_subject["from.b.1"]
        assert source_fields(hdrs["Nats-Stream-Source"]) == ["B", "1", "b.*", "from.b.{{wildcard(1)}}", "b.1"]
        assert "Nats-Stream-Source" not in by_subject["agg"][1]
        # New messages in the origins keep coming, in order.
        await js.publish("a.1", b"a1-2")
        await js.publish("b.7", b"b7")
        await wait_for(js, "AGG", 5)
        await asyncio.sleep(0.2)
        got = await contents(js, "AGG")
        assert [(subj, data) for _, subj, data, _ in got][3:] in ([("a.1", b"a1-2"), ("from.b.7", b"b7")],
                                                                  [("from.b.7", b"b7"), ("a.1", b"a1-2")])
        # Sourcing a stream that sources (a chain): the header names the nearest origin only.
        await js.add_stream(name="CHAIN", sources=[StreamSource(name="AGG", filter_subject="a.>")])
        await wait_for(js, "CHAIN", 2)
        chain = await contents(js, "CHAIN")
        expected = [["AGG", str(seq)] for seq, subj, _, _ in await contents(js, "AGG") if subj.startswith("a.")]
        assert [source_fields(h["Nats-Stream-Source"])[:2] for _, _, _, h in chain] == expected
    finally:
        await nc.close()


async def test_subject_transform_and_republish(server_factory, store):
    s = server_factory("-js", "-sd", str(store))
    nc = await nats.connect(s.url)
    try:
        js = nc.jetstream()
        got = []

        async def on_msg(m):
            got.append(m)

        await nc.subscribe("rp.>", cb=on_msg)
        await nc.flush()
        await js.add_stream(name="T", subjects=["in.>"], subject_transform=SubjectTransform(src="in.*", dest="stored.{{wildcard(1)}}"),
                            republish=RePublish(src="stored.*", dest="rp.{{wildcard(1)}}"))
        await js.add_stream(name="H", subjects=["h.>"], republish=RePublish(src="h.>", dest="rp.h.>", headers_only=True))
        a1 = await js.publish("in.x", b"one")
        a2 = await js.publish("in.x", b"two", headers={"Mine": "1"})
        await js.publish("in.y", b"three")
        await js.publish("h.1", b"12345")
        assert (a1.seq, a2.seq) == (1, 2)
        assert (await js.get_msg("T", 1)).subject == "stored.x"
        for _ in range(100):
            if len(got) >= 4:
                break
            await asyncio.sleep(0.05)
        assert len(got) == 4
        by = {(m.subject, m.headers["Nats-Sequence"]): m for m in got}
        m = by[("rp.x", "1")]
        assert m.data == b"one"
        assert (m.headers["Nats-Stream"], m.headers["Nats-Subject"], m.headers["Nats-Last-Sequence"]) == ("T", "stored.x", "0")
        assert m.headers["Nats-Time-Stamp"].endswith("Z")
        m = by[("rp.x", "2")]
        assert (m.data, m.headers["Mine"], m.headers["Nats-Last-Sequence"]) == (b"two", "1", "1")
        assert by[("rp.y", "3")].headers["Nats-Last-Sequence"] == "0"
        m = by[("rp.h.1", "1")]
        assert (m.data, m.headers["Nats-Msg-Size"], m.headers["Nats-Subject"]) == (b"", "5", "h.1")
        with pytest.raises(nats.js.errors.APIError) as e:
            await js.add_stream(name="BAD", subjects=["bad.>"], subject_transform=SubjectTransform(src="bad..x", dest="y"))
        assert e.value.err_code == 10155
    finally:
        await nc.close()


async def test_positions_survive_restart_and_kill_9(server_factory, store):
    """A mirror and a source keep copying while the server is restarted (SIGTERM) and killed (SIGKILL);
    after each start they continue where they were: in the end both hold every origin message exactly once.
    """
    s = server_factory("-js", "-sd", str(store))
    nc = await nats.connect(s.url)
    js = nc.jetstream()
    await js.add_stream(name="O", subjects=["o.>"])
    await js.add_stream(name="M", mirror=StreamSource(name="O"))
    await js.add_stream(name="S", subjects=["s"], sources=[StreamSource(name="O")])
    total = 0
    for round_ in range(4):
        for _ in range(30):
            total += 1
            await js.publish(f"o.{total % 3}", b"%d" % total)
        if round_ % 2 == 0:
            # Let some of it arrive, then stop in the middle of whatever is in flight.
            await asyncio.sleep(0.02)
            await nc.close()
            s.proc.send_signal(signal.SIGKILL)
            s.proc.wait(timeout=10)
        else:
            await wait_for(js, "S", total)
            await nc.close()
            s.terminate()
        s = server_factory("-js", "-sd", str(store))
        nc = await nats.connect(s.url)
        js = nc.jetstream()
        # The origin may lose unsynced messages to a kill on nats-server: count what it holds.
        total = (await js.stream_info("O")).state.last_seq
    try:
        await wait_for(js, "M", total)
        await wait_for(js, "S", total)
        await asyncio.sleep(0.5)
        origin = await contents(js, "O")
        assert await contents(js, "M") == origin
        sourced = await contents(js, "S")
        assert [(subj, data) for _, subj, data, _ in sourced] == [(subj, data) for _, subj, data, _ in origin]
        assert [int(source_fields(h["Nats-Stream-Source"])[1]) for _, _, _, h in sourced] == [seq for seq, _, _, _ in origin]
        info = await js.stream_info("S")
        assert info.sources[0].name == "O"
    finally:
        await nc.close()


async def test_more_than_the_flow_control_window(js_server):
    """6 MiB through a mirror and a source: the origin's consumer runs with flow control, which the sourcing
    stream answers (without it, copying stops after the first few MiB)."""
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="O", subjects=["o.>"])
        for i in range(60):
            await js.publish("o.big", bytes([i]) * 100_000)
        await js.add_stream(name="S", sources=[StreamSource(name="O")])
        await js.add_stream(name="M", mirror=StreamSource(name="O"))
        assert (await wait_for(js, "S", 60, timeout=30)).state.messages == 60
        assert (await wait_for(js, "M", 60, timeout=30)).state.messages == 60
        assert (await js.get_msg("S", 60)).data == bytes([59]) * 100_000
    finally:
        await nc.close()


async def test_a_sourced_rollup_purges_only_where_rollups_are_allowed(js_server):
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="RO", subjects=["r.>"], allow_rollup_hdrs=True)
        await js.add_stream(name="RS", subjects=["rs.>"], sources=[StreamSource(name="RO")])
        await js.add_stream(name="RA", subjects=["ra.>"], sources=[StreamSource(name="RO")], allow_rollup_hdrs=True)
        await js.publish("rs.keep", b"mine")
        await js.publish("ra.keep", b"mine")
        await js.publish("r.a", b"1")
        await wait_for(js, "RS", 2)
        await wait_for(js, "RA", 2)
        await js.publish("r.a", b"2", headers={"Nats-Rollup": "all"})
        await wait_for(js, "RS", 3)
        await asyncio.sleep(0.5)
        # Stored with its header, but RS (no allow_rollup_hdrs) keeps everything it had.
        assert [(s, d) for _, s, d, _ in await contents(js, "RS")] == [("rs.keep", b"mine"), ("r.a", b"1"), ("r.a", b"2")]
        # RA allows rollups: the sourced rollup-all leaves only itself.
        assert [(s, d) for _, s, d, _ in await contents(js, "RA")] == [("r.a", b"2")]
    finally:
        await nc.close()


async def test_a_message_the_limits_refuse_is_taken_later(js_server):
    """discard new at max_msgs: what the sourcing stream cannot take now is not passed over; once there is room
    (a purge), sourcing goes on from the first message it refused."""
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="O", subjects=["o.>"])
        for i in range(6):
            await js.publish("o.x", b"%d" % i)
        await js.add_stream(name="S", sources=[StreamSource(name="O")], max_msgs=3, discard="new")
        await wait_for(js, "S", 3)
        await asyncio.sleep(1)
        assert [d for _, _, d, _ in await contents(js, "S")] == [b"0", b"1", b"2"]
        await js.purge_stream("S")
        await wait_for(js, "S", 3, timeout=30)
        assert [d for _, _, d, _ in await contents(js, "S")] == [b"3", b"4", b"5"]
    finally:
        await nc.close()


async def test_a_drained_work_queue_does_not_source_again_after_sigkill(server_factory, store):
    """The sourcing positions outlive the messages: a work queue that sourced and handed out everything is
    empty, and after a SIGKILL and restart it stays empty (nothing sourced twice)."""
    s = server_factory("-js", "-sd", str(store))
    nc = await nats.connect(s.url)
    js = nc.jetstream()
    await js.add_stream(name="O", subjects=["o.>"])
    await js.add_stream(name="Q", sources=[StreamSource(name="O")], retention="workqueue")
    for i in range(5):
        await js.publish("o.job", b"%d" % i)
    await wait_for(js, "Q", 5)
    psub = await js.pull_subscribe("o.job", durable="w", stream="Q")
    got = await psub.fetch(5, timeout=WAIT)
    for m in got:
        await m.ack_sync()
    assert (await js.stream_info("Q")).state.messages == 0
    await asyncio.sleep(0.5)
    s, nc, js = await crash_and_restart(nc, s, server_factory, store)
    try:
        await asyncio.sleep(3)
        info = await js.stream_info("Q")
        assert (info.state.messages, info.state.last_seq) == (0, 5)
        await js.publish("o.job", b"5")
        info = await wait_for(js, "Q", 1)
        assert (info.state.messages, info.state.last_seq) == (1, 6)
    finally:
        await nc.close()


async def test_a_mirror_applies_rollups_where_allowed(js_server):
    nc = await nats.connect(js_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="O", subjects=["o.>"], allow_rollup_hdrs=True)
        await js.add_stream(name="M", mirror=StreamSource(name="O"), allow_rollup_hdrs=True)
        await js.add_stream(name="K", mirror=StreamSource(name="O"))
        for i in range(3):
            await js.publish(f"o.{i}", b"%d" % i)
        await wait_for(js, "M", 3)
        await wait_for(js, "K", 3)
        await js.publish("o.1", b"roll", headers={"Nats-Rollup": "sub"})
        await js.publish("o.9", b"last")
        info = await wait_for(js, "K", 5)
        await asyncio.sleep(0.3)
        origin = await contents(js, "O")
        assert [(seq, s, d) for seq, s, d, _ in origin] == [(1, "o.0", b"0"), (3, "o.2", b"2"), (4, "o.1", b"roll"), (5, "o.9", b"last")]
        assert await contents(js, "M") == origin
        # K does not allow rollups: it keeps o.1's first message.
        assert [seq for seq, _, _, _ in await contents(js, "K")] == [1, 2, 3, 4, 5]
        assert info.state.messages == 5
    finally:
        await nc.close()
