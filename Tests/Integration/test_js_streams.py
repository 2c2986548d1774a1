"""Stream features beyond publish and consume, against brokerd and nats-server (-js), same assertions:
publish expectations (Nats-Expected-*), rollups, STREAM.MSG.DELETE, MSG.GET by next subject, DIRECT.GET
(statuses, batches), STREAM.INFO with subject counts and deleted sequences, STREAM.NAMES by subject,
purge with filter/keep/seq, first_seq, sealed / deny_delete / deny_purge, config checks and updates.
"""

from __future__ import annotations

import json

import nats
import nats.js.errors
import pytest
from jetstream_helpers import api as _api, api_error as _error, connect as _connect, crash_and_restart
from nats.js.api import StreamConfig

WAIT = 10





async def test_publish_expectations(js_server):
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="EXP", subjects=["exp.>"])
        assert (await js.publish("exp.a", b"1", headers={"Nats-Msg-Id": "m1"})).seq == 1
        assert await _error(js.publish("exp.a", b"x", headers={"Nats-Expected-Stream": "OTHER"})) == \
            (400, 10060, "expected stream does not match")
        assert (await js.publish("exp.a", b"2", headers={"Nats-Expected-Stream": "EXP"})).seq == 2
        assert await _error(js.publish("exp.b", b"x", headers={"Nats-Expected-Last-Sequence": "1"})) == \
            (400, 10071, "wrong last sequence: 2")
        assert (await js.publish("exp.b", b"3", headers={"Nats-Expected-Last-Sequence": "2"})).seq == 3
        assert await _error(js.publish("exp.a", b"x", headers={"Nats-Expected-Last-Subject-Sequence": "1"})) == \
            (400, 10071, "wrong last sequence: 2")
        assert (await js.publish("exp.a", b"4", headers={"Nats-Expected-Last-Subject-Sequence": "2"})).seq == 4
        # 0: the subject must have no message yet.
        assert (await js.publish("exp.new", b"5", headers={"Nats-Expected-Last-Subject-Sequence": "0"})).seq == 5
        assert await _error(js.publish("exp.new", b"x", headers={"Nats-Expected-Last-Subject-Sequence": "0"})) == \
            (400, 10071, "wrong last sequence: 5")
        # The check may name another subject, wildcards included.
        assert (await js.publish("exp.c", b"6", headers={"Nats-Expected-Last-Subject-Sequence": "5",
                                                         "Nats-Expected-Last-Subject-Sequence-Subject": "exp.*"})).seq == 6
        assert await _error(js.publish("exp.c", b"x", headers={"Nats-Expected-Last-Subject-Sequence-Subject": "exp.*"})) == \
            (400, 10193, "missing sequence for expected last sequence per subject")
        # Last msg id: the id of the newest message ("" when it had none).
        assert (await js.publish("exp.d", b"7", headers={"Nats-Msg-Id": "m7"})).seq == 7
        assert await _error(js.publish("exp.d", b"x", headers={"Nats-Expected-Last-Msg-Id": "m1"})) == \
            (400, 10070, "wrong last msg ID: m7")
        assert (await js.publish("exp.d", b"8", headers={"Nats-Expected-Last-Msg-Id": "m7"})).seq == 8
        # A duplicate id is answered as a duplicate before the last-msg-id check.
        dup = await js.publish("exp.d", b"x", headers={"Nats-Msg-Id": "m7", "Nats-Expected-Last-Msg-Id": "zzz"})
        assert (dup.seq, dup.duplicate) == (7, True)
        assert await _error(js.publish("exp.e", b"x", headers={"Nats-Stream-Source": "X 1 > > exp.e"})) == \
            (400, 10227, "message stream source header is not allowed")
        assert (await js.stream_info("EXP")).state.messages == 8
    finally:
        await nc.close()


async def test_rollups(js_server):
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="RU", subjects=["ru.>"], allow_rollup_hdrs=True)
        for i in range(3):
            await js.publish("ru.a", b"a%d" % i)
            await js.publish("ru.b", b"b%d" % i)
        ack = await js.publish("ru.a", b"sum", headers={"Nats-Rollup": "sub"})
        info = await js.stream_info("RU", subjects_filter=">")
        assert info.state.subjects == {"ru.a": 1, "ru.b": 3}
        await js.publish("ru.c", b"all", headers={"Nats-Rollup": "all"})
        info = await js.stream_info("RU")
        assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (1, ack.seq + 1, ack.seq + 1)
        await js.add_stream(name="NP", subjects=["np.>"], deny_purge=True)
        assert await _error(js.publish("np.a", b"x", headers={"Nats-Rollup": "all"})) == (500, 10111, "rollup not permitted")
        assert await _error(js.add_stream(name="BAD", subjects=["bad.>"], deny_purge=True, allow_rollup_hdrs=True)) == \
            (500, 10052, "roll-ups require the purge permission")
    finally:
        await nc.close()


async def test_message_delete_get_and_info_details(js_server):
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="MD", subjects=["md.>"])
        for i in range(1, 7):
            await js.publish(f"md.{'a' if i % 2 else 'b'}", b"%d" % i)
        assert await js.delete_msg("MD", 3) is True
        assert await _error(js.delete_msg("MD", 3)) == (400, 10043, "sequence 3 not found")
        assert await _error(js.delete_msg("MD", 99)) == (500, 10057, "stream store EOF")
        # no_erase: removed the same way for a reader.
        r = json.loads((await nc.request("$JS.API.STREAM.MSG.DELETE.MD", b'{"seq":4,"no_erase":true}')).data)
        assert r["success"] is True
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.get_msg("MD", 3)
        nxt = await js.get_msg("MD", seq=2, subject="md.a", next=True)
        assert (nxt.seq, nxt.data) == (5, b"5")
        last = await js.get_msg("MD", subject="md.b")
        assert (last.seq, last.data) == (6, b"6")
        info = await js.stream_info("MD", subjects_filter="md.*")
        assert info.state.subjects == {"md.a": 2, "md.b": 2}
        r = json.loads((await nc.request("$JS.API.STREAM.INFO.MD", b'{"deleted_details":true}')).data)
        assert r["state"]["deleted"] == [3, 4]
        assert (r["state"]["num_subjects"], r["state"]["num_deleted"]) == (2, 2)
        assert (r["total"], r["offset"], r["limit"]) == (0, 0, 0)
        r = json.loads((await nc.request("$JS.API.STREAM.INFO.MD", b'{"subjects_filter":"md.b"}')).data)
        assert r["state"]["subjects"] == {"md.b": 2}
        assert (r["total"], r["offset"], r["limit"]) == (1, 0, 100000)
        names = await js.streams_info()
        assert [s.config.name for s in names] == ["MD"]
        r = json.loads((await nc.request("$JS.API.STREAM.NAMES", b'{"subject":"md.x"}')).data)
        assert r["streams"] == ["MD"]
        r = json.loads((await nc.request("$JS.API.STREAM.NAMES", b'{"subject":"zz.>"}')).data)
        assert r["streams"] in (None, [])
    finally:
        await nc.close()


async def test_direct_get(js_server):
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="ND", subjects=["nd.>"])
        await js.add_stream(name="DG", subjects=["dg.>"], allow_direct=True)
        await js.publish("nd.a", b"x")
        await js.publish("dg.a", b"1", headers={"H": "v"})
        await js.publish("dg.b", b"2")
        await js.publish("dg.a", b"3")

        async def ask(subject, body=b""):
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            await nc.publish(subject, body, reply=inbox)
            msgs = []
            try:
                while True:
                    m = await sub.next_msg(timeout=0.5)
                    msgs.append(m)
                    if not m.headers or m.headers.get("Status") in ("404", "408", "204", "503") or len(msgs) > 20:
                        if not (m.headers and m.headers.get("Nats-Num-Pending") and m.headers.get("Status") is None):
                            break
            except nats.errors.TimeoutError:
                pass
            await sub.unsubscribe()
            return msgs

        # Without allow_direct nobody answers: no responders.
        msgs = await ask("$JS.API.DIRECT.GET.ND", b'{"seq":1}')
        assert [m.headers.get("Status") for m in msgs] == ["503"]
        m = (await ask("$JS.API.DIRECT.GET.DG", b'{"seq":1}'))[0]
        assert m.data == b"1"
        assert {k: m.headers[k] for k in ("H", "Nats-Stream", "Nats-Subject", "Nats-Sequence")} == \
            {"H": "v", "Nats-Stream": "DG", "Nats-Subject": "dg.a", "Nats-Sequence": "1"}
        m = (await ask("$JS.API.DIRECT.GET.DG.dg.a"))[0]
        assert (m.data, m.headers["Nats-Sequence"]) == (b"3", "3")
        assert [(m.headers.get("Status"), m.headers.get("Description")) for m in await ask("$JS.API.DIRECT.GET.DG")] == \
            [("408", "Empty Request")]
        assert [m.headers.get("Status") for m in await ask("$JS.API.DIRECT.GET.DG", b"nojson")] == ["408"]
        assert [m.headers.get("Status") for m in await ask("$JS.API.DIRECT.GET.DG", b'{"seq":9}')] == ["404"]
        assert [m.headers.get("Status") for m in await ask("$JS.API.DIRECT.GET.DG", b'{"seq":1,"last_by_subj":"dg.a"}')] == ["408"]
        batch = await ask("$JS.API.DIRECT.GET.DG", b'{"seq":1,"next_by_subj":"dg.a","batch":5}')
        assert [m.data for m in batch] == [b"1", b"3", b""]
        assert [m.headers.get("Nats-Num-Pending") for m in batch] == ["1", "0", "0"]
        assert batch[-1].headers.get("Status") == "204"
        assert batch[-1].headers.get("Nats-Last-Sequence") == "3"
        # nats-py's own direct get.
        got = await js.get_msg("DG", subject="dg.b", direct=True)
        assert (got.seq, got.data) == (2, b"2")
        # multi_last: the last message of each matching subject, oldest first, then EOB with the bound.
        await js.publish("dg.c.x", b"4")
        multi = await ask("$JS.API.DIRECT.GET.DG", b'{"multi_last":["dg.a","dg.c.*"]}')
        assert [(m.data, m.headers.get("Nats-Subject"), m.headers.get("Nats-Num-Pending")) for m in multi[:-1]] == \
            [(b"3", "dg.a", "1"), (b"4", "dg.c.x", "0")]
        assert (multi[-1].headers.get("Status"), multi[-1].headers.get("Nats-Last-Sequence"), multi[-1].headers.get("Nats-UpTo-Sequence")) == \
            ("204", "4", "4")
        multi = await ask("$JS.API.DIRECT.GET.DG", b'{"multi_last":["dg.>"],"up_to_seq":2}')
        assert [m.data for m in multi] == [b"1", b"2", b""]
        multi = await ask("$JS.API.DIRECT.GET.DG", b'{"multi_last":["dg.>"],"batch":1}')
        assert [m.data for m in multi] == [b"2", b""]
        assert multi[-1].headers.get("Nats-Num-Pending") == "2"
        multi = await ask("$JS.API.DIRECT.GET.DG", b'{"multi_last":["none.*"]}')
        assert [(m.headers.get("Status"), m.headers.get("Description")) for m in multi] == [("404", "No Results")]
    finally:
        await nc.close()


async def test_purge_options_first_seq_sealed_and_denials(js_server):
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="PU", subjects=["pu.>"])
        for i in range(10):
            await js.publish("pu.a" if i < 6 else "pu.b", b"%d" % i)
        assert await js.purge_stream("PU", subject="pu.a", keep=2) is True
        info = await js.stream_info("PU", subjects_filter=">")
        assert info.state.subjects == {"pu.a": 2, "pu.b": 4}
        r = json.loads((await nc.request("$JS.API.STREAM.PURGE.PU", b'{"seq":9}')).data)
        assert r["purged"] == 4  # 5, 6, 7, 8
        assert (await js.stream_info("PU")).state.first_seq == 9
        r = json.loads((await nc.request("$JS.API.STREAM.PURGE.PU", b'{"seq":9,"keep":1}')).data)
        assert r["error"]["err_code"] == 10003

        await js.add_stream(StreamConfig(name="FS", subjects=["fs.>"], first_seq=1000))
        assert (await js.publish("fs.a", b"x")).seq == 1000

        await js.add_stream(name="DD", subjects=["dd.>"], deny_delete=True, deny_purge=True)
        await js.publish("dd.a", b"x")
        assert await _error(js.delete_msg("DD", 1)) == (500, 10057, "message delete not permitted")
        assert await _error(js.purge_stream("DD")) == (500, 10110, "stream purge not permitted")
        assert await _error(js.update_stream(name="DD", subjects=["dd.>"], deny_purge=True)) == \
            (500, 10052, "stream configuration update can not cancel deny message deletes")

        assert await _error(js.add_stream(name="SE", subjects=["se.>"], sealed=True)) == \
            (500, 10052, "stream configuration for create can not be sealed")
        await js.add_stream(name="SE", subjects=["se.>"])
        await js.publish("se.a", b"x")
        sealed = await js.update_stream(name="SE", subjects=["se.>"], sealed=True)
        assert sealed.config.sealed is True
        assert await _error(js.publish("se.a", b"y")) == (400, 10109, "invalid operation on sealed stream")
        assert await _error(js.delete_msg("SE", 1)) == (400, 10109, "invalid operation on sealed stream")
        assert await _error(js.purge_stream("SE")) == (400, 10109, "invalid operation on sealed stream")
        assert await _error(js.update_stream(name="SE", subjects=["se.>"])) == \
            (500, 10052, "stream configuration update can not unseal a sealed stream")

        assert await _error(js.add_stream(name="R3", subjects=["r3.>"], num_replicas=3)) == \
            (500, 10074, "replicas > 1 not supported in non-clustered mode")
        assert await _error(js.add_stream(name="DN", subjects=["dn.>"], discard_new_per_subject=True)) == \
            (500, 10052, "discard new per subject requires discard new policy to be set")
        # discard new per subject: a full subject refuses; others still take messages.
        await js.add_stream(name="DNP", subjects=["dnp.>"], discard="new", max_msgs_per_subject=1,
                            discard_new_per_subject=True)
        await js.publish("dnp.a", b"1")
        assert await _error(js.publish("dnp.a", b"2")) == (503, 10077, "maximum messages per subject exceeded")
        assert (await js.publish("dnp.b", b"1")).seq == 2
        # 0 limits are "none", echoed as -1.
        zero = await js.add_stream(name="ZERO", subjects=["zero.>"], max_consumers=0, max_msgs=0)
        assert (zero.config.max_consumers, zero.config.max_msgs) == (-1, -1)
    finally:
        await nc.close()


async def test_account_info_and_stream_consumer_limit(js_server):
    nc, js = await _connect(js_server)
    try:
        r = json.loads((await nc.request("$JS.API.INFO", b"")).data)
        assert r["limits"]["max_streams"] == -1 and r["limits"]["max_consumers"] == -1
        assert r["api"]["level"] >= 1
        # A stream's own max_consumers.
        await js.add_stream(name="MC", subjects=["mc.>"], max_consumers=2)
        await js.add_consumer("MC", durable_name="one")
        await js.add_consumer("MC", durable_name="two")
        assert await _error(js.add_consumer("MC", durable_name="three")) == (400, 10026, "maximum consumers limit reached")
        await js.delete_consumer("MC", "one")
        await js.add_consumer("MC", durable_name="three")
        r = json.loads((await nc.request("$JS.API.INFO", b"")).data)
        assert (r["streams"], r["consumers"]) == (1, 2)
    finally:
        await nc.close()


async def test_options_brokerd_does_not_have_are_refused(server_factory, tmp_path, target):
    """Counters, atomic and batch publishing and schedules: nats-server 2.12+ has them, brokerd refuses the
    stream rather than ignore the option (and refuses their headers on any stream, as nats-server does on a
    stream without them)."""
    store = tmp_path / "store"
    store.mkdir()
    s = server_factory("-js", "-sd", str(store))
    nc, js = await _connect(s)
    try:
        await js.add_stream(name="PLAIN", subjects=["plain.>"])
        assert await _error(js.publish("plain.a", b"", headers={"Nats-Incr": "1"})) == \
            (400, 10168, "message counters is disabled")
        # no_ack: the stream stores, the publisher gets no PubAck.
        await js.add_stream(name="NOACK", subjects=["noack.>"], no_ack=True)
        with pytest.raises(nats.errors.TimeoutError):
            await nc.request("noack.a", b"x", timeout=0.5)
        assert (await js.stream_info("NOACK")).state.messages == 1
        if target.name != "brokerd":
            return
        r = json.loads((await nc.request("$JS.API.STREAM.CREATE.Y", json.dumps(
            {"name": "Y", "subjects": ["y.>"], "consumer_limits": {"max_ack_pending": 5}}).encode())).data)
        assert r["error"]["description"] == "consumer_limits are not supported by brokerd"
        for option, text in [("allow_msg_counter", "message counters are not supported by brokerd"),
                             ("allow_atomic", "atomic batch publishing is not supported by brokerd"),
                             ("allow_msg_schedules", "message schedules are not supported by brokerd")]:
            body = json.dumps({"name": "X", "subjects": ["x.>"], option: True}).encode()
            r = json.loads((await nc.request("$JS.API.STREAM.CREATE.X", body)).data)
            assert (r["error"]["code"], r["error"]["err_code"], r["error"]["description"]) == (500, 10052, text)
    finally:
        await nc.close()


async def test_ttls_of_centuries_and_markers_for_thousands_of_subjects(server_factory, tmp_path):
    """A Nats-TTL of 10^10 s is stored (and the stream opens again after SIGKILL); max_age aging out 3,000
    subjects at once writes a delete marker for each (no recursion through the markers' own publishes)."""
    import asyncio

    store = tmp_path / "store"
    store.mkdir()
    s = server_factory("-js", "-sd", str(store))
    nc, js = await _connect(s)
    await js.add_stream(StreamConfig(name="T", subjects=["t.>"], allow_msg_ttl=True))
    ack = await js.publish("t.a", b"x", headers={"Nats-TTL": "10000000000"})
    assert ack.seq == 1
    # Killed at once: nats-server 2.15.1 given a second to write before the SIGKILL comes back without this
    # message (3 runs of 3), killed at once it keeps it; brokerd keeps it either way.
    s, nc, js = await crash_and_restart(nc, s, server_factory, store, settle=False)
    try:
        assert (await js.stream_info("T")).state.messages == 1
        r = await _api(nc, "$JS.API.STREAM.CREATE.K", {"name": "K", "subjects": ["k.>"], "max_age": 1_000_000_000,
                                                      "subject_delete_marker_ttl": 60_000_000_000, "allow_msg_ttl": True})
        assert "error" not in r
        # A TTL under the marker TTL is raised to it, and the stored header says so.
        ack = await js.publish("k.short", b"s", headers={"Nats-TTL": "1s"})
        assert (await js.get_msg("K", ack.seq)).headers == {"Nats-TTL": "60"}
        # Nats-TTL "0" is invalid (a Go duration under a second) on any stream; a valid one is refused
        # where TTLs are off.
        for stream, value, expected in (("T", "0", 10165), ("K", "abc", 10165)):
            ack = await nc.request(f"{stream.lower()}.x", b"x", headers={"Nats-TTL": value}, timeout=WAIT)
            assert json.loads(ack.data) == {"error": {"code": 400, "err_code": expected, "description": "invalid per-message TTL"},
                                            "stream": stream, "seq": 0}
        await js.add_stream(StreamConfig(name="N", subjects=["n.>"]))
        ack = await nc.request("n.x", b"x", headers={"Nats-TTL": "abc"}, timeout=WAIT)
        assert json.loads(ack.data)["error"]["err_code"] == 10165
        ack = await nc.request("n.x", b"x", headers={"Nats-TTL": "5s"}, timeout=WAIT)
        assert json.loads(ack.data)["error"]["err_code"] == 10166
        for i in range(3000):
            await nc.publish(f"k.{i}", b"v")
        await nc.flush()
        marker = None
        for _ in range(100):
            await asyncio.sleep(0.1)
            try:
                marker = await js.get_last_msg("K", "k.2999")
            except nats.js.errors.NotFoundError:
                continue
            if marker.headers and marker.headers.get("Nats-Marker-Reason"):
                break
        assert marker is not None and marker.headers.get("Nats-Marker-Reason") == "MaxAge"
        assert (await js.stream_info("K")).state.last_seq >= 3001
    finally:
        await nc.close()


async def test_never_expiring_messages_outlive_max_age(js_server):
    import asyncio

    nc, js = await _connect(js_server)
    try:
        await js.add_stream(StreamConfig(name="NV", subjects=["nv.>"], max_age=1.0, allow_msg_ttl=True))
        await js.publish("nv.a", b"old", headers={"Nats-TTL": "never"})
        await js.publish("nv.b", b"goes")
        await js.publish("nv.c", b"stays too", headers={"Nats-TTL": "never"})
        for _ in range(60):
            await asyncio.sleep(0.1)
            if (await js.stream_info("NV")).state.messages == 2:
                break
        await asyncio.sleep(0.5)
        info = await js.stream_info("NV")
        assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (2, 1, 3)
        assert (await js.get_msg("NV", 3)).data == b"stays too"
    finally:
        await nc.close()
