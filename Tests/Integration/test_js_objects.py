"""Object Store buckets (ADR-20) through nats-py's own object store API, against brokerd and nats-server (-js).

Each test runs against both servers and asserts the same outcome: chunked put and get with the SHA-256
digest checked by the client, info, list, metadata updates, links, delete, watch, a 50 MiB object, and that
objects survive SIGKILL and a restart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os

import nats
import nats.js.errors
import pytest
from jetstream_helpers import connect, crash_and_restart
from nats.js.api import ObjectMeta

WAIT = 30


async def _connect(server):
    return await connect(server, timeout=WAIT, max_reconnect_attempts=0)




async def test_put_get_info_list_update_link_delete(js_server):
    nc, js = await _connect(js_server)
    try:
        obs = await js.create_object_store("RULES")
        info = await js.stream_info("OBJ_RULES")
        assert sorted(info.config.subjects) == ["$O.RULES.C.>", "$O.RULES.M.>"]
        assert info.config.allow_rollup_hdrs is True and info.config.allow_direct is True

        data = os.urandom(300_000)  # three chunks of 128 KiB
        put = await obs.put("falco_rules.yaml", data)
        assert put.size == len(data)
        assert put.chunks == 3
        got = await obs.get("falco_rules.yaml")
        assert got.data == data
        assert got.info.digest == put.digest

        await obs.put("empty", b"")
        assert (await obs.get("empty")).data == b""
        # Replacing an object drops the old chunks (purge of its chunk subject).
        await obs.put("falco_rules.yaml", b"v2")
        assert (await obs.get("falco_rules.yaml")).data == b"v2"
        state = (await js.stream_info("OBJ_RULES", subjects_filter="$O.RULES.C.>")).state
        assert sum(state.subjects.values()) == 1  # only "v2"'s one chunk is left

        await obs.update_meta("empty", ObjectMeta(name="empty", description="nothing here"))
        assert (await obs.get_info("empty")).description == "nothing here"
        # A link, written as nats.go's AddLink writes it (nats-py reads links but has no call to make one).
        link = {"name": "alias", "bucket": "RULES", "nuid": "LINKNUID", "size": 0, "chunks": 0,
                "options": {"link": {"bucket": "RULES", "name": "falco_rules.yaml"}}}
        alias_subject = "$O.RULES.M." + base64.urlsafe_b64encode(b"alias").decode()
        await js.publish(alias_subject, json.dumps(link).encode(), headers={"Nats-Rollup": "sub"})
        assert (await obs.get("alias")).data == b"v2"

        names = sorted(i.name for i in await obs.list())
        assert names == ["alias", "empty", "falco_rules.yaml"]
        await obs.delete("empty")
        with pytest.raises(nats.js.errors.ObjectNotFoundError):
            await obs.get("empty")
        assert (await obs.get_info("empty", show_deleted=True)).deleted is True
        assert sorted(i.name for i in await obs.list(ignore_deletes=True)) == ["alias", "falco_rules.yaml"]

        status = await obs.status()
        assert status.bucket == "RULES"
        assert await js.delete_object_store("RULES") is True
    finally:
        await nc.close()


async def test_watch_reports_existing_objects_then_changes(js_server):
    nc, js = await _connect(js_server)
    try:
        obs = await js.create_object_store("W")
        await obs.put("a", b"1")
        watcher = await obs.watch()
        first = await watcher.updates(timeout=WAIT)
        assert first.name == "a"
        assert await watcher.updates(timeout=WAIT) is None
        await obs.put("b", b"2")
        assert (await watcher.updates(timeout=WAIT)).name == "b"
        await obs.delete("a")
        gone = await watcher.updates(timeout=WAIT)
        assert (gone.name, gone.deleted) == ("a", True)
        await watcher.stop()
    finally:
        await nc.close()


async def test_a_50_mib_object_round_trips(js_server):
    nc, js = await _connect(js_server)
    try:
        obs = await js.create_object_store("BIG")
        data = os.urandom(50 * 1024 * 1024)
        put = await obs.put("capture.scap", data)
        assert put.size == len(data)
        got = await obs.get("capture.scap")
        assert hashlib.sha256(got.data).digest() == hashlib.sha256(data).digest()
    finally:
        await nc.close()


async def test_objects_survive_sigkill_and_restart(server_factory, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    s = server_factory("-js", "-sd", str(store))
    nc, js = await _connect(s)
    obs = await js.create_object_store("D")
    data = os.urandom(200_000)
    await obs.put("keep", data)
    await obs.put("drop", b"x")
    await obs.delete("drop")
    s, nc, js = await crash_and_restart(nc, s, server_factory, store)
    try:
        obs = await js.object_store("D")
        assert (await obs.get("keep")).data == data
        with pytest.raises(nats.js.errors.ObjectNotFoundError):
            await obs.get("drop")
    finally:
        await nc.close()
