"""Key-Value buckets (ADR-8) through nats-py's own KV API, against brokerd and nats-server (-js).

Each test runs against both servers and asserts the same outcome: puts and revisions, update(last=) and
create(), deletes and purges (KV-Operation headers, Nats-Rollup), history, keys(), watch() with its initial
"done" marker and live updates, bucket and per-key TTLs, purge_deletes, status, direct and non-direct gets, and
that revisions, deletes and purges survive SIGKILL and a restart.
"""

from __future__ import annotations

import asyncio

import nats
import nats.js.errors
import pytest
from jetstream_helpers import api as _api, api_error as _error, connect as _connect, crash_and_restart
from nats.js.api import KeyValueConfig

WAIT = 10




@pytest.mark.parametrize("direct", [True, False])
async def test_put_get_update_create_delete_purge_history(js_server, direct):
    nc, js = await _connect(js_server)
    try:
        kv = await js.create_key_value(bucket="CFG", history=5, direct=direct)
        info = await js.stream_info("KV_CFG")
        assert info.config.subjects == ["$KV.CFG.>"]
        assert info.config.allow_rollup_hdrs is True
        assert info.config.deny_delete is True
        assert info.config.max_msgs_per_subject == 5
        assert bool(info.config.allow_direct) is direct

        assert await kv.put("rules.critical", b"1") == 1
        assert await kv.put("rules.critical", b"2") == 2
        assert await kv.put("rules.notice", b"n") == 3
        entry = await kv.get("rules.critical")
        assert (entry.value, entry.revision, entry.key) == (b"2", 2, "rules.critical")
        assert (await kv.get("rules.critical", revision=1)).value == b"1"

        # update with the right last revision works; with a stale one it fails with nats-server's error.
        assert await kv.update("rules.critical", b"3", last=2) == 4
        with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
            await kv.update("rules.critical", b"x", last=2)
        # create() only when the key does not exist (or was deleted).
        with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
            await kv.create("rules.critical", b"again")
        assert await kv.create("rules.new", b"fresh") == 5

        await kv.delete("rules.notice")
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv.get("rules.notice")
        # A deleted key may be created again.
        assert await kv.create("rules.notice", b"back") == 7

        history = await kv.history("rules.critical")
        assert [e.value for e in history] == [b"1", b"2", b"3"]

        # Purge drops every revision of the key and leaves one purge marker (rollup sub).
        await kv.purge("rules.critical")
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv.get("rules.critical")
        history = await kv.history("rules.critical")
        assert len(history) == 1 and history[0].operation == "PURGE"

        assert sorted(await kv.keys()) == ["rules.new", "rules.notice"]
        status = await kv.status()
        assert status.bucket == "CFG"
        assert status.history == 5
        assert status.values == (await js.stream_info("KV_CFG")).state.messages

        # Writes beyond the history limit keep only the newest five.
        for i in range(8):
            await kv.put("counter", b"%d" % i)
        assert [e.value for e in await kv.history("counter")] == [b"3", b"4", b"5", b"6", b"7"]

        assert await js.delete_key_value("CFG") is True
        with pytest.raises(nats.js.errors.BucketNotFoundError):
            await js.key_value("CFG")
    finally:
        await nc.close()


async def test_the_server_refuses_what_kv_relies_on_when_not_allowed(js_server):
    """The raw rules under KV: rollups need allow_rollup_hdrs, deletes are refused under deny_delete, the
    expected-last-subject-sequence check and its error."""
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="PLAIN", subjects=["plain.>"])
        with pytest.raises(nats.js.errors.APIError) as e:
            await js.publish("plain.a", b"x", headers={"Nats-Rollup": "sub"})
        assert (e.value.code, e.value.err_code, e.value.description) == (500, 10111, "rollup not permitted")

        kv = await js.create_key_value(bucket="K")
        await kv.put("a", b"1")
        with pytest.raises(nats.js.errors.APIError) as e:
            await js.delete_msg("KV_K", 1)
        assert (e.value.err_code, e.value.description) == (10057, "message delete not permitted")
        with pytest.raises(nats.js.errors.APIError) as e:
            await js.publish("$KV.K.a", b"2", headers={"Nats-Expected-Last-Subject-Sequence": "7"})
        assert (e.value.code, e.value.err_code, e.value.description) == (400, 10071, "wrong last sequence: 1")
        with pytest.raises(nats.js.errors.APIError) as e:
            await js.publish("$KV.K.a", b"2", headers={"Nats-Rollup": "bogus"})
        assert (e.value.err_code, e.value.description) == (10111, 'rollup value invalid: "bogus"')
    finally:
        await nc.close()


async def test_watch_sends_current_values_then_done_then_live_updates(js_server):
    nc, js = await _connect(js_server)
    try:
        kv = await js.create_key_value(bucket="W", history=3)
        await kv.put("a", b"1")
        await kv.put("b", b"1")
        await kv.put("a", b"2")
        await kv.put("c", b"1")
        await kv.delete("c")

        watcher = await kv.watchall()
        initial = []
        while True:
            e = await watcher.updates(timeout=WAIT)
            if e is None:
                break
            initial.append((e.key, e.value, e.revision, e.operation))
        # The newest entry per key, oldest first: "b" (2), "a" (3), the delete of "c" (5).
        assert initial == [("b", b"1", 2, None), ("a", b"2", 3, None), ("c", b"", 5, "DEL")]

        await kv.put("b", b"2")
        live = await watcher.updates(timeout=WAIT)
        assert (live.key, live.value, live.revision) == ("b", b"2", 6)
        await kv.purge("a")
        live = await watcher.updates(timeout=WAIT)
        assert (live.key, live.operation) == ("a", "PURGE")
        await watcher.stop()

        # A watch of one key, with its history; and one of an empty pattern gets the marker at once.
        w2 = await kv.watch("b", include_history=True)
        seen = []
        while (e := await w2.updates(timeout=WAIT)) is not None:
            seen.append(e.value)
        assert seen == [b"1", b"2"]
        await w2.stop()
        w3 = await kv.watch("nothing.here")
        assert await w3.updates(timeout=WAIT) is None
        await w3.stop()
    finally:
        await nc.close()


async def test_bucket_ttl_and_per_key_ttl_expire_entries(js_server):
    nc, js = await _connect(js_server)
    try:
        kv = await js.create_key_value(bucket="T", ttl=1)
        await kv.put("short", b"x")
        assert (await kv.get("short")).value == b"x"
        plain = await js.create_key_value(bucket="P")
        await plain.create("session", b"s", msg_ttl=1)
        await plain.put("stays", b"y")
        # Both expire within a few seconds (nats-server checks ages at least every second).
        for _ in range(60):
            await asyncio.sleep(0.25)
            try:
                await kv.get("short")
                continue
            except nats.js.errors.KeyNotFoundError:
                pass
            try:
                await plain.get("session")
                continue
            except nats.js.errors.KeyNotFoundError:
                break
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv.get("short")
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await plain.get("session")
        assert (await plain.get("stays")).value == b"y"
        # A TTL on a stream that does not allow it is refused with nats-server's error.
        await js.add_stream(name="NOTTL", subjects=["nottl.>"])
        with pytest.raises(nats.js.errors.APIError) as e:
            await js.publish("nottl.a", b"x", headers={"Nats-TTL": "5s"})
        assert (e.value.err_code, e.value.description) == (10166, "per-message TTL is disabled")
        await js.add_stream(name="TTL", subjects=["ttl.>"], allow_msg_ttl=True)
        with pytest.raises(nats.js.errors.APIError) as e:
            await js.publish("ttl.a", b"x", headers={"Nats-TTL": "500ms"})
        assert (e.value.err_code, e.value.description) == (10165, "invalid per-message TTL")
    finally:
        await nc.close()


async def test_limit_markers_tell_watchers_a_key_aged_out(js_server):
    nc, js = await _connect(js_server)
    try:
        kv = await js.create_key_value(bucket="M", ttl=1, limit_marker_ttl=2)
        info = await js.stream_info("KV_M")
        assert info.config.subject_delete_marker_ttl == 2
        await kv.put("k", b"v")
        watcher = await kv.watchall()
        first = await watcher.updates(timeout=WAIT)
        assert first.value == b"v"
        assert await watcher.updates(timeout=WAIT) is None
        marker = await watcher.updates(timeout=WAIT)
        assert (marker.key, marker.operation) == ("k", "PURGE")
        await watcher.stop()
    finally:
        await nc.close()


async def test_purge_deletes_removes_old_markers(js_server):
    nc, js = await _connect(js_server)
    try:
        kv = await js.create_key_value(bucket="PD", history=10)
        for key in ("a", "b", "c"):
            await kv.put(key, b"1")
            await kv.put(key, b"2")
        await kv.delete("a")
        await kv.purge("b")
        before = (await js.stream_info("KV_PD")).state.messages
        assert before == 6  # c:2 values, a: 2 values + delete marker, b: purge marker
        await kv.purge_deletes(olderthan=-1)
        info = await js.stream_info("KV_PD", subjects_filter=">")
        assert info.state.subjects == {"$KV.PD.c": 2}
        assert sorted(await kv.keys()) == ["c"]
    finally:
        await nc.close()


async def test_kv_state_survives_sigkill_and_restart(server_factory, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    s = server_factory("-js", "-sd", str(store))
    nc, js = await _connect(s)
    kv = await js.create_key_value(bucket="D", history=4)
    await kv.put("a", b"1")
    await kv.put("a", b"2")
    await kv.put("b", b"1")
    await kv.delete("b")
    await kv.put("c", b"1")
    await kv.purge("c")
    await kv.put("d", b"1")
    s, nc, js = await crash_and_restart(nc, s, server_factory, store)
    try:
        kv = await js.key_value("D")
        entry = await kv.get("a")
        assert (entry.value, entry.revision) == (b"2", 2)
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv.get("b")
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv.get("c")
        assert [e.operation for e in await kv.history("c")] == ["PURGE"]
        assert sorted(await kv.keys()) == ["a", "d"]
        # Expectations carry on from the recovered state.
        assert await kv.update("a", b"3", last=2) == 8
        with pytest.raises(nats.js.errors.KeyWrongLastSequenceError):
            await kv.update("d", b"x", last=1)
    finally:
        await nc.close()
