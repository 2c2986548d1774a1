"""Consumer features through nats-py, against brokerd and nats-server (-js), same assertions: several filter
subjects, the CREATE action (create / update / create-or-update) and what an update may change, pull
requests with idle heartbeats and max_bytes, push idle heartbeats and flow control, ordered consumers,
headers_only, pause and resume (kept over SIGKILL), ack floors with their consumer sequence.
"""

from __future__ import annotations

import asyncio
import datetime
import json

import nats
import nats.js.errors
import pytest
from jetstream_helpers import api as _api, api_error as _error, connect as _connect, crash_and_restart
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

WAIT = 10






async def test_filter_subjects_and_their_checks(js_server):
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="F", subjects=["f.>"])
        for subject in ["f.a", "f.b", "f.c", "f.a", "f.c"]:
            await js.publish(subject, subject.encode())
        await js.add_consumer("F", ConsumerConfig(durable_name="ac", filter_subjects=["f.a", "f.c"], ack_policy=AckPolicy.EXPLICIT))
        info = await js.consumer_info("F", "ac")
        assert info.num_pending == 4
        sub = await js.pull_subscribe_bind("ac", "F")
        msgs = await sub.fetch(10, timeout=2)
        assert [m.subject for m in msgs] == ["f.a", "f.c", "f.a", "f.c"]
        assert [m.metadata.num_pending for m in msgs] == [3, 2, 1, 0]
        for m in msgs:
            await m.ack_sync()
        info = await js.consumer_info("F", "ac")
        assert (info.num_pending, info.num_ack_pending) == (0, 0)
        assert (info.ack_floor.consumer_seq, info.ack_floor.stream_seq) == (4, 5)
        assert await _error(js.add_consumer("F", ConsumerConfig(durable_name="x", filter_subject="f.a",
                                                                 filter_subjects=["f.b"]))) == \
            (400, 10136, "consumer cannot have both FilterSubject and FilterSubjects specified")
        assert await _error(js.add_consumer("F", ConsumerConfig(durable_name="x", filter_subjects=["f.*", "f.a"]))) == \
            (400, 10138, "consumer subject filters cannot overlap")
        # A filter outside the stream's subjects is allowed (nats-server 2.15): it matches nothing.
        await js.add_consumer("F", ConsumerConfig(durable_name="x", filter_subjects=["g.a"]))
        assert (await js.consumer_info("F", "x")).num_pending == 0
    finally:
        await nc.close()


async def test_create_update_actions(js_server):
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="A", subjects=["a.>"])
        base = {"durable_name": "d", "ack_policy": "explicit", "ack_wait": 30_000_000_000}
        r = await _api(nc, "$JS.API.CONSUMER.CREATE.A.d", {"stream_name": "A", "config": base, "action": "update"})
        assert (r["error"]["err_code"], r["error"]["description"]) == (10149, "consumer does not exist")
        r = await _api(nc, "$JS.API.CONSUMER.CREATE.A.d", {"stream_name": "A", "config": base, "action": "create"})
        assert r["name"] == "d"
        # create again, same config: fine; another config: "already exists".
        r = await _api(nc, "$JS.API.CONSUMER.CREATE.A.d", {"stream_name": "A", "config": base, "action": "create"})
        assert r["name"] == "d"
        changed = dict(base, ack_wait=10_000_000_000)
        r = await _api(nc, "$JS.API.CONSUMER.CREATE.A.d", {"stream_name": "A", "config": changed, "action": "create"})
        assert (r["error"]["code"], r["error"]["err_code"]) == (400, 10148)
        # Even a description or metadata that differs is another config for "create".
        for extra in ({"description": "other"}, {"metadata": {"team": "sec"}}):
            r = await _api(nc, "$JS.API.CONSUMER.CREATE.A.d", {"stream_name": "A", "config": dict(base, **extra), "action": "create"})
            assert (r["error"]["code"], r["error"]["err_code"]) == (400, 10148)
        # update (and create-or-update, no action) changes what may change...
        r = await _api(nc, "$JS.API.CONSUMER.CREATE.A.d", {"stream_name": "A", "config": changed, "action": "update"})
        assert r["config"]["ack_wait"] == 10_000_000_000
        r = await _api(nc, "$JS.API.CONSUMER.CREATE.A.d", {"stream_name": "A", "config": dict(changed, max_ack_pending=5)})
        assert r["config"]["max_ack_pending"] == 5
        assert (await js.consumer_info("A", "d")).config.max_ack_pending == 5
        # ... and refuses what may not.
        r = await _api(nc, "$JS.API.CONSUMER.CREATE.A.d", {"stream_name": "A", "config": dict(changed, ack_policy="none")})
        assert (r["error"]["code"], r["error"]["err_code"], r["error"]["description"]) == \
            (500, 10012, "ack policy can not be updated")
        r = await _api(nc, "$JS.API.CONSUMER.CREATE.A.d", {"stream_name": "A", "config": dict(changed, deliver_policy="new")})
        assert r["error"]["description"] == "deliver policy can not be updated"
        r = await _api(nc, "$JS.API.CONSUMER.CREATE.A.d", {"stream_name": "A", "config": dict(changed, deliver_subject="push.d")})
        assert r["error"]["description"] == "can not update pull consumer to push based"
    finally:
        await nc.close()


async def test_pull_heartbeats_timeouts_and_max_bytes(js_server):
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="P", subjects=["p.>"])
        await js.add_consumer("P", ConsumerConfig(durable_name="w", ack_policy=AckPolicy.EXPLICIT))
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        body = {"batch": 2, "expires": 1_500_000_000, "idle_heartbeat": 300_000_000}
        await nc.publish("$JS.API.CONSUMER.MSG.NEXT.P.w", json.dumps(body).encode(), reply=inbox)
        statuses = []
        while True:
            m = await sub.next_msg(timeout=WAIT)
            statuses.append((m.headers.get("Status"), m.headers.get("Description")))
            if m.headers.get("Status") != "100":
                break
        assert ("100", "Idle Heartbeat") in statuses
        assert statuses[-1] == ("408", "Request Timeout")
        assert m.headers.get("Nats-Pending-Messages") == "2"

        await js.publish("p.x", b"x" * 100)
        await nc.publish("$JS.API.CONSUMER.MSG.NEXT.P.w", json.dumps({"batch": 1, "max_bytes": 10}).encode(), reply=inbox)
        m = await sub.next_msg(timeout=WAIT)
        assert (m.headers.get("Status"), m.headers.get("Description")) == ("409", "Message Size Exceeds MaxBytes")
        # The message is still there for the next request.
        psub = await js.pull_subscribe_bind("w", "P")
        got = await psub.fetch(1, timeout=5)
        assert got[0].data == b"x" * 100
        # nats-py's fetch with a heartbeat works end to end.
        await js.publish("p.y", b"y")
        await got[0].ack()
        got = await psub.fetch(1, timeout=3, heartbeat=0.5)
        assert got[0].data == b"y"
    finally:
        await nc.close()


async def test_push_heartbeats_flow_control_headers_only(js_server):
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="H", subjects=["h.>"])
        await js.publish("h.a", b"payload", headers={"K": "v"})
        deliver = "deliver.h"
        sub = await nc.subscribe(deliver)
        await nc.flush()
        await js.add_consumer("H", ConsumerConfig(durable_name="hb", deliver_subject=deliver, ack_policy=AckPolicy.NONE,
                                                  idle_heartbeat=0.5, flow_control=True, headers_only=True))
        m = await sub.next_msg(timeout=WAIT)
        assert m.data == b"" and m.headers["Nats-Msg-Size"] == "7" and m.headers["K"] == "v"
        hb = await sub.next_msg(timeout=WAIT)
        while hb.headers.get("Status") == "100" and hb.headers.get("Description") == "FlowControl Request":
            await nc.publish(hb.reply, b"")
            hb = await sub.next_msg(timeout=WAIT)
        assert (hb.headers.get("Status"), hb.headers.get("Description")) == ("100", "Idle Heartbeat")
        assert (hb.headers.get("Nats-Last-Consumer"), hb.headers.get("Nats-Last-Stream")) == ("1", "1")

        # Flow control: requests come with a $JS.FC reply; answering them gets every message through.
        await js.add_stream(name="FC", subjects=["fc.>"])
        chunk = b"z" * 100_000
        for _ in range(100):
            await js.publish("fc.x", chunk)
        fsub = await nc.subscribe("deliver.fc")
        await nc.flush()
        await js.add_consumer("FC", ConsumerConfig(durable_name="fc", deliver_subject="deliver.fc", ack_policy=AckPolicy.NONE,
                                                   idle_heartbeat=1, flow_control=True))
        data, requests = 0, 0
        while data < 100:
            m = await fsub.next_msg(timeout=WAIT)
            if m.headers and m.headers.get("Status") == "100":
                if m.reply:
                    assert m.reply.startswith("$JS.FC.")
                    requests += 1
                    await nc.publish(m.reply, b"")
                continue
            data += 1
        assert requests >= 1
    finally:
        await nc.close()


async def test_ordered_consumer_gets_everything_in_order(js_server):
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="O", subjects=["o.>"])
        for i in range(300):
            await js.publish(f"o.{i % 3}", b"%d" % i)
        sub = await js.subscribe("o.>", ordered_consumer=True)
        got = [int((await sub.next_msg(timeout=WAIT)).data) for _ in range(300)]
        assert got == list(range(300))
    finally:
        await nc.close()


async def test_pause_and_resume_survive_sigkill(server_factory, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    s = server_factory("-js", "-sd", str(store))
    nc, js = await _connect(s)
    await js.add_stream(name="Z", subjects=["z.>"])
    await js.add_consumer("Z", ConsumerConfig(durable_name="p", ack_policy=AckPolicy.EXPLICIT))
    until = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = await js.pause_consumer("Z", "p", until)
    assert r.paused is True
    await js.publish("z.a", b"1")
    psub = await js.pull_subscribe_bind("p", "Z")
    with pytest.raises(nats.errors.TimeoutError):
        await psub.fetch(1, timeout=1)
    info = await js.consumer_info("Z", "p")
    assert info.paused is True and info.pause_remaining > 0
    s, nc, js = await crash_and_restart(nc, s, server_factory, store)
    try:
        info = await js.consumer_info("Z", "p")
        assert info.paused is True
        r = await js.resume_consumer("Z", "p")
        assert r.paused is False
        psub = await js.pull_subscribe_bind("p", "Z")
        got = await psub.fetch(1, timeout=5)
        assert got[0].data == b"1"
    finally:
        await nc.close()


async def test_pull_request_limits(js_server):
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="L", subjects=["l.>"])
        # nats-py's ConsumerConfig has no max_batch / max_expires / max_bytes: a raw create.
        cfg = {"durable_name": "lim", "ack_policy": "explicit", "max_batch": 2, "max_expires": 1_500_000_000,
               "max_bytes": 100, "max_waiting": 1}
        r = await _api(nc, "$JS.API.CONSUMER.CREATE.L.lim", {"stream_name": "L", "config": cfg})
        assert r["config"]["max_batch"] == 2
        assert (await js.consumer_info("L", "lim")).config.max_waiting == 1
        await js.add_consumer("L", ConsumerConfig(durable_name="dflt", ack_policy=AckPolicy.EXPLICIT))
        assert (await js.consumer_info("L", "dflt")).config.max_waiting == 512
        await js.add_consumer("L", ConsumerConfig(durable_name="push", deliver_subject="push.l", ack_policy=AckPolicy.NONE))

        async def status(consumer, body):
            m = await nc.request(f"$JS.API.CONSUMER.MSG.NEXT.L.{consumer}", json.dumps(body).encode(), timeout=WAIT)
            return (m.headers.get("Status"), m.headers.get("Description"))

        assert await status("lim", {"batch": 3}) == ("409", "Exceeded MaxRequestBatch of 2")
        assert await status("lim", {"batch": 1, "expires": 2_000_000_000}) == ("409", "Exceeded MaxRequestExpires of 1.5s")
        assert await status("lim", {"batch": 1, "max_bytes": 1000}) == ("409", "Exceeded MaxRequestMaxBytes of 100")
        assert await status("push", {"batch": 1}) == ("409", "Consumer is push based")
        # One request may wait; a second one is refused.
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("$JS.API.CONSUMER.MSG.NEXT.L.lim", json.dumps({"batch": 1, "expires": 1_000_000_000}).encode(), reply=inbox)
        await nc.flush()
        assert await status("lim", {"batch": 1, "expires": 1_000_000_000}) == ("409", "Exceeded MaxWaiting")
        m = await sub.next_msg(timeout=WAIT)
        assert m.headers.get("Status") == "408"
    finally:
        await nc.close()


async def test_inactive_consumers_are_removed(js_server):
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="I", subjects=["i.>"])
        await js.publish("i.a", b"1")
        # An ephemeral pull consumer with a 1 s threshold, a durable with one, and a durable without.
        await _api(nc, "$JS.API.CONSUMER.CREATE.I", {"stream_name": "I", "config": {"name": "eph", "inactive_threshold": 1_000_000_000}})
        await js.add_consumer("I", ConsumerConfig(durable_name="dur1", inactive_threshold=1))
        await js.add_consumer("I", ConsumerConfig(durable_name="keep"))
        # nats-py's ephemeral (ordered) push consumer goes once it is unsubscribed (5 s after, by default).
        sub = await js.subscribe("i.>", ordered_consumer=True)
        assert (await sub.next_msg(timeout=WAIT)).data == b"1"
        await sub.unsubscribe()
        for _ in range(100):
            names = sorted((await _api(nc, "$JS.API.CONSUMER.NAMES.I", {}))["consumers"] or [])
            if names == ["keep"]:
                break
            await asyncio.sleep(0.2)
        assert names == ["keep"]
    finally:
        await nc.close()


async def test_consumer_options_brokerd_does_not_have_are_refused(server_factory, tmp_path, target):
    """Priority groups, rate limits and replay original: nats-server has them; brokerd refuses the consumer
    rather than ignore the option."""
    if target.name != "brokerd":
        pytest.skip("nats-server implements these options")
    store = tmp_path / "store"
    store.mkdir()
    s = server_factory("-js", "-sd", str(store))
    nc, js = await _connect(s)
    try:
        await js.add_stream(name="U", subjects=["u.>"])
        for option, text in [({"priority_groups": ["g"], "priority_policy": "pinned_client"}, "priority groups are not supported by brokerd"),
                             ({"rate_limit_bps": 1000}, "rate_limit_bps is not supported by brokerd"),
                             ({"replay_policy": "original"}, "replay policy original is not supported by brokerd")]:
            r = await _api(nc, "$JS.API.CONSUMER.CREATE.U.c", {"stream_name": "U", "config": dict({"durable_name": "c"}, **option)})
            assert (r["error"]["code"], r["error"]["err_code"], r["error"]["description"]) == (500, 10012, text)
    finally:
        await nc.close()


async def test_rebinding_a_push_consumer_needs_the_old_deliver_subject_free(js_server):
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="RB", subjects=["rb.>"])
        await js.publish("rb.a", b"1")
        old = await nc.subscribe("deliver.old")
        await nc.flush()
        await js.add_consumer("RB", ConsumerConfig(durable_name="d", deliver_subject="deliver.old", ack_policy=AckPolicy.NONE))
        assert (await old.next_msg(timeout=WAIT)).data == b"1"
        assert await _error(js.add_consumer("RB", ConsumerConfig(durable_name="d", deliver_subject="deliver.new",
                                                                  ack_policy=AckPolicy.NONE))) == \
            (400, 10013, "consumer name already in use")
        await old.unsubscribe()
        await nc.flush()
        new = await nc.subscribe("deliver.new")
        await nc.flush()
        info = await js.add_consumer("RB", ConsumerConfig(durable_name="d", deliver_subject="deliver.new", ack_policy=AckPolicy.NONE))
        assert info.config.deliver_subject == "deliver.new"
        await js.publish("rb.a", b"2")
        assert (await new.next_msg(timeout=WAIT)).data == b"2"
    finally:
        await nc.close()


async def _pull(nc, stream, consumer, body):
    """The first message a pull request gets (on an inbox of its own, as the clients' fetch does)."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}", json.dumps(body).encode(), reply=inbox)
    try:
        return await sub.next_msg(timeout=WAIT)
    finally:
        await sub.unsubscribe()


async def test_unacked_deliveries_keep_an_idle_pull_consumer(js_server):
    """inactive_threshold counts from the last ack deadline: a pull consumer whose fetched messages are still
    inside their ack wait is not deleted, though nobody asks for more; once acked and idle, it goes."""
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="U", subjects=["u.>"])
        await js.publish("u.a", b"1")
        cfg = {"name": "busy", "ack_policy": "explicit", "ack_wait": 30_000_000_000, "inactive_threshold": 1_000_000_000}
        await _api(nc, "$JS.API.CONSUMER.CREATE.U.busy", {"stream_name": "U", "config": cfg})
        m = await _pull(nc, "U", "busy", {"batch": 1, "expires": 1_000_000_000})
        assert m.data == b"1"
        await asyncio.sleep(2.5)
        assert (await js.consumer_info("U", "busy")).num_ack_pending == 1
        await m.respond(b"")
        await nc.flush()
        for _ in range(50):
            names = (await _api(nc, "$JS.API.CONSUMER.NAMES.U", {}))["consumers"] or []
            if not names:
                break
            await asyncio.sleep(0.2)
        assert names == []
    finally:
        await nc.close()


async def test_a_message_too_big_for_a_request_costs_no_delivery(js_server):
    """A pull request whose max_bytes cannot hold the next message ends with 409; the message goes to the next
    request as its first delivery (max_deliver 1 does not lose it)."""
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="B", subjects=["b.>"])
        await js.publish("b.a", b"x" * 1000)
        cfg = {"durable_name": "c", "ack_policy": "explicit", "max_deliver": 1}
        await _api(nc, "$JS.API.CONSUMER.CREATE.B.c", {"stream_name": "B", "config": cfg})
        m = await _pull(nc, "B", "c", {"batch": 1, "max_bytes": 100, "expires": 1_000_000_000})
        assert (m.headers.get("Status"), m.headers.get("Description")) == ("409", "Message Size Exceeds MaxBytes")
        m = await _pull(nc, "B", "c", {"batch": 1, "expires": 2_000_000_000})
        assert len(m.data) == 1000
        assert m.metadata.num_delivered == 1 and m.metadata.sequence.consumer == 1
        info = await js.consumer_info("B", "c")
        assert (info.delivered.consumer_seq, info.num_ack_pending, info.num_redelivered) == (1, 1, 0)
    finally:
        await nc.close()


async def test_far_future_times_and_durations_are_taken(js_server):
    """Dates past 2262 and durations of centuries (pause_until, pull expires, NAK delay) do not overflow:
    the server answers and keeps running."""
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="F", subjects=["f.>"])
        await js.publish("f.a", b"1")
        await js.add_consumer("F", ConsumerConfig(durable_name="p", ack_policy=AckPolicy.EXPLICIT))
        r = await _api(nc, "$JS.API.CONSUMER.PAUSE.F.p", {"pause_until": "3000-01-01T00:00:00Z"})
        assert r["paused"] is True
        r = await _api(nc, "$JS.API.CONSUMER.PAUSE.F.p", {})
        assert r["paused"] is False
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("$JS.API.CONSUMER.MSG.NEXT.F.p", json.dumps({"batch": 1, "expires": 2**63 - 1}).encode(), reply=inbox)
        m = await sub.next_msg(timeout=WAIT)
        assert m.data == b"1"
        await m.respond(b'-NAK {"delay": 9223372036854775807}')
        await nc.flush()
        info = await js.consumer_info("F", "p")
        assert info.num_ack_pending == 1
        start = {"durable_name": "t", "deliver_policy": "by_start_time", "opt_start_time": "9999-12-31T23:59:59Z"}
        r = await _api(nc, "$JS.API.CONSUMER.CREATE.F.t", {"stream_name": "F", "config": start})
        assert "error" not in r and r["config"]["deliver_policy"] == "by_start_time"
        assert (await js.stream_info("F")).state.messages == 1
    finally:
        await nc.close()


async def test_num_pending_follows_filter_and_stream_updates(js_server):
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="P", subjects=["p.>"])
        for subject in ("p.x", "p.x", "p.x", "p.y", "p.y"):
            await js.publish(subject, b"m")
        await js.add_consumer("P", ConsumerConfig(durable_name="f", filter_subject="p.x", ack_policy=AckPolicy.EXPLICIT))
        assert (await js.consumer_info("P", "f")).num_pending == 3
        await js.add_consumer("P", ConsumerConfig(durable_name="f", filter_subject="p.>", ack_policy=AckPolicy.EXPLICIT))
        assert (await js.consumer_info("P", "f")).num_pending == 5
        # A stream update that drops messages (max_msgs) shows in the count at once.
        await js.update_stream(StreamConfig(name="P", subjects=["p.>"], max_msgs=2))
        assert (await js.consumer_info("P", "f")).num_pending == 2
    finally:
        await nc.close()


async def test_interest_retention_counts_only_interested_consumers(js_server):
    """Under interest retention a message leaves once every consumer whose filter takes it has acked it;
    a consumer filtered elsewhere does not hold it."""
    nc, js = await _connect(js_server)
    try:
        await js.add_stream(name="IR", subjects=["ir.>"], retention="interest")
        await js.add_consumer("IR", ConsumerConfig(durable_name="a", filter_subject="ir.a", ack_policy=AckPolicy.EXPLICIT))
        await js.add_consumer("IR", ConsumerConfig(durable_name="b", filter_subject="ir.b", ack_policy=AckPolicy.EXPLICIT))
        await js.publish("ir.a", b"for a")
        await js.publish("ir.b", b"for b")
        psub = await js.pull_subscribe_bind("a", "IR")
        (m,) = await psub.fetch(1, timeout=WAIT)
        await m.ack_sync()
        info = await js.stream_info("IR")
        assert (info.state.messages, info.state.first_seq) == (1, 2)
        psub = await js.pull_subscribe_bind("b", "IR")
        (m,) = await psub.fetch(1, timeout=WAIT)
        assert m.data == b"for b"
        await m.ack_sync()
        assert (await js.stream_info("IR")).state.messages == 0
    finally:
        await nc.close()


async def test_last_per_subject_consumer_keeps_its_bound_across_an_update_and_a_restart(server_factory, tmp_path, target):
    """A durable last_per_subject consumer that caught up, was updated, then restarted, delivers every message
    stored after it caught up: its start bound survives (brokerd once saved it as gone once the consumer was
    past it, and a restart then took the stream's end as the bound and skipped the older of the new ones)."""
    store = tmp_path / "store"
    store.mkdir()
    s = server_factory("-js", "-sd", str(store))
    nc, js = await _connect(s)
    await js.add_stream(name="LPS", subjects=["k.>"])
    for subject, n in (("k.a", 3), ("k.b", 2)):
        for i in range(n):
            await js.publish(subject, f"{subject}-{i}".encode())
    config = nats.js.api.ConsumerConfig(durable_name="lps", deliver_policy=nats.js.api.DeliverPolicy.LAST_PER_SUBJECT,
                                        ack_policy=nats.js.api.AckPolicy.EXPLICIT, filter_subject="k.>")
    await js.add_consumer("LPS", config)
    psub = await js.pull_subscribe_bind("lps", "LPS")
    got = await psub.fetch(2, timeout=WAIT)
    assert sorted(m.data for m in got) == [b"k.a-2", b"k.b-1"]
    for m in got:
        await m.ack_sync()
    await asyncio.sleep(0.3)  # a tick pumps the consumer past its bound
    config.description = "updated"
    await js.add_consumer("LPS", config)  # an update: the consumer's record is written again
    await js.publish("k.a", b"k.a-3")
    await js.publish("k.a", b"k.a-4")
    await asyncio.sleep(0.3)
    await nc.close()
    s.terminate()
    s = server_factory("-js", "-sd", str(store))
    nc, js = await _connect(s)
    psub = await js.pull_subscribe_bind("lps", "LPS")
    got = await psub.fetch(2, timeout=WAIT)
    assert [m.data for m in got] == [b"k.a-3", b"k.a-4"]
    await nc.close()
