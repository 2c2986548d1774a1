"""The Google Cloud Pub/Sub bridge against the real Pub/Sub emulator: end to end from Falco's http_output to a
pull subscription, an emulator outage, brokerd killed with SIGKILL, and poison messages to the dead-letter
subject. brokerd only (nats-server has no bridge).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import time

import nats
import pytest

from harness import HOST, free_port, resolve_target, start_server, wait_for_port
from pubsub_emulator import Emulator, emulator_script
from test_falco import Poster, alerts

PROJECT = "brokerd-test"
TOPIC = "falco-alerts"
SUB = "falco-alerts-check"

pytestmark = pytest.mark.skipif(emulator_script() is None, reason="the Pub/Sub emulator is not installed")


@pytest.fixture
def emulator(tmp_path):
    e = Emulator(tmp_path / "emulator").start()
    e.create_topic(PROJECT, TOPIC)
    e.create_subscription(PROJECT, TOPIC, SUB)
    yield e
    e.stop()


def bridge_conf(store, emulator, extra: str = "") -> str:
    return f"""
max_payload: 16MB
jetstream {{ store_dir: "{store}" }}
gcp_pubsub {{
  project: "{PROJECT}"
  topic: "{TOPIC}"
  subjects: ["FALCO.>"]
  attributes: {{ cluster: "prod" }}
  endpoint: "http://{emulator.host}"
  max_backoff: "1s"
  {extra}
}}
"""


def start_brokerd(tmp_path, conf: str, name: str = "b"):
    target = resolve_target("brokerd")
    if target.skip_reason:
        pytest.skip(f"brokerd: {target.skip_reason}")
    falco = free_port()
    s = start_server(target, tmp_path / name, ["--falco_http_port", str(falco)], config=conf, http=True)
    s.falco_port = falco
    assert wait_for_port(falco), "the Falco HTTP port never opened"
    return s


def varz(s) -> dict:
    c = http.client.HTTPConnection(HOST, s.http_port, timeout=5)
    c.request("GET", "/varz")
    return json.loads(c.getresponse().read())


def wait_bridge(s, pred, timeout=60) -> dict:
    deadline = time.monotonic() + timeout
    b = {}
    while time.monotonic() < deadline:
        b = varz(s)["bridges"][0]
        if pred(b):
            return b
        time.sleep(0.1)
    raise AssertionError(f"bridge state not reached: {b}")


def post_all(port: int, items: list[bytes]) -> list[int]:
    p = Poster(port)
    try:
        return [p.post(a)[0] for a in items]
    finally:
        p.close()


def by_id(messages: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for m in messages:
        out.setdefault(m["attributes"]["nats_msg_id"], []).append(m)
    return out


async def test_alerts_arrive_in_pubsub_once_byte_identical_with_attributes(tmp_path, emulator):
    s = start_brokerd(tmp_path, bridge_conf(tmp_path / "store", emulator))
    try:
        wait_bridge(s, lambda b: b["ready"])
        sent = alerts()[:2000]
        assert await asyncio.to_thread(post_all, s.falco_port, sent) == [200] * len(sent)
        got = await asyncio.to_thread(emulator.pull_until, PROJECT, SUB, len(sent), 90, 1.0)
        ids = by_id(got)
        assert len(got) == len(sent), "each alert exactly once"
        assert len(ids) == len(sent)
        for a in sent:
            d = json.loads(a)
            [m] = ids["sha256:" + __import__("hashlib").sha256(a).hexdigest()[:32]]
            assert m["data"] == a, "byte-identical"
            attrs = m["attributes"]
            assert attrs["nats_subject"] == "FALCO." + d["priority"]
            assert attrs["falco_priority"] == d["priority"]
            assert attrs["falco_rule"] == d["rule"]
            assert attrs["falco_source"] == d["source"]
            assert attrs["falco_hostname"] == d["hostname"]
            assert attrs["cluster"] == "prod"
        b = wait_bridge(s, lambda b: b["lag"] == 0 and b["bridged"] == len(sent))
        assert b["dead_lettered"] == 0
    finally:
        s.terminate()


async def test_emulator_outage_delays_but_loses_nothing_published_after_it(tmp_path, emulator):
    s = start_brokerd(tmp_path, bridge_conf(tmp_path / "store", emulator))
    try:
        wait_bridge(s, lambda b: b["ready"])
        first = alerts()[:300]
        assert await asyncio.to_thread(post_all, s.falco_port, first) == [200] * len(first)
        await asyncio.to_thread(emulator.pull_until, PROJECT, SUB, len(first), 60)
        emulator.stop()
        during = alerts()[300:600]
        assert await asyncio.to_thread(post_all, s.falco_port, during) == [200] * len(during)
        await asyncio.sleep(10)
        b = varz(s)["bridges"][0]
        assert b["lag"] >= len(during) or b["retried"] > 0, b
        assert b["retried"] > 0 and "last_error" in b
        emulator.start()
        emulator.create_topic(PROJECT, TOPIC)
        emulator.create_subscription(PROJECT, TOPIC, SUB)
        after = alerts()[600:900]
        assert await asyncio.to_thread(post_all, s.falco_port, after) == [200] * len(after)
        got = await asyncio.to_thread(emulator.pull_until, PROJECT, SUB, len(after), 90, 2.0)
        ids = by_id(got)
        import hashlib
        missing = [a for a in after if "sha256:" + hashlib.sha256(a).hexdigest()[:32] not in ids]
        assert not missing, f"{len(missing)} alerts published after the restart never arrived"
        wait_bridge(s, lambda b: b["lag"] == 0)
    finally:
        s.terminate()


async def test_kill_9_loses_nothing_pubsub_acked(tmp_path, emulator):
    conf = bridge_conf(tmp_path / "store", emulator)
    s = start_brokerd(tmp_path, conf)
    sent = alerts()[:1500]
    try:
        wait_bridge(s, lambda b: b["ready"])
        assert await asyncio.to_thread(post_all, s.falco_port, sent[:1000]) == [200] * 1000
        await asyncio.sleep(0.3)
        s.proc.kill()  # SIGKILL mid-flow
        s.proc.wait(timeout=10)
        again = subprocess.Popen(s.args, stdin=subprocess.DEVNULL, stdout=open(tmp_path / "again.out", "wb"),
                                 stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    if varz(s)["bridges"][0]["ready"]:
                        break
                except (OSError, KeyError, IndexError, json.JSONDecodeError, http.client.HTTPException):
                    pass
                time.sleep(0.1)
            assert await asyncio.to_thread(post_all, s.falco_port, sent[1000:]) == [200] * 500
            got = await asyncio.to_thread(emulator.pull_until, PROJECT, SUB, len(sent), 90, 2.0)
            ids = by_id(got)
            assert len(ids) == len(sent), "every accepted alert reached Pub/Sub at least once"
            duplicates = len(got) - len(ids)
            print(f"duplicates after kill -9: {duplicates}")
        finally:
            again.terminate()
            again.wait(timeout=10)
    finally:
        s.terminate()


async def test_poison_messages_go_to_the_dead_letter_subject_and_do_not_block(tmp_path, emulator):
    s = start_brokerd(tmp_path, bridge_conf(tmp_path / "store", emulator))
    nc = await nats.connect(s.url, max_reconnect_attempts=1)
    try:
        wait_bridge(s, lambda b: b["ready"])
        before = alerts()[:100]
        assert await asyncio.to_thread(post_all, s.falco_port, before) == [200] * 100
        js = nc.jetstream()
        await js.publish("FALCO.Notice", b"x" * 10_500_000, timeout=30)
        await js.publish("FALCO.Notice", b'{"priority":"Notice"}',
                         headers={f"X-Attr-{i}": "v" for i in range(120)}, timeout=10)
        after = alerts()[100:200]
        assert await asyncio.to_thread(post_all, s.falco_port, after) == [200] * 100
        got = await asyncio.to_thread(emulator.pull_until, PROJECT, SUB, 200, 90, 1.0)
        assert sorted(m["data"] for m in got) == sorted(before + after), "the alerts around them all arrive"
        dlq = await js.pull_subscribe("BRIDGE.DLQ.>", durable="check", stream="BRIDGE_DLQ")
        dead = await dlq.fetch(2, timeout=10)
        reasons = sorted(m.headers["Bridge-Reason"] for m in dead)
        assert [m.subject for m in dead] == [f"BRIDGE.DLQ.{TOPIC.replace('-', '-')}"] * 2
        assert any("10000000-byte limit" in r for r in reasons), reasons
        assert any("too many attributes" in r for r in reasons), reasons
        assert all(m.headers["Bridge-Subject"] == "FALCO.Notice" for m in dead)
        assert len(next(m for m in dead if len(m.data) > 1000).data) == 10_500_000
        b = wait_bridge(s, lambda b: b["lag"] == 0)
        assert b["dead_lettered"] == 2
    finally:
        await nc.close()
        s.terminate()


async def test_standalone_bridge_with_an_ordering_key(tmp_path, emulator):
    """`brokerd bridge -c FILE` against a running brokerd; ordering_key: hostname sets each message's key."""
    target = resolve_target("brokerd")
    s = start_server(target, tmp_path / "plain", ["-js", "-sd", str(tmp_path / "store")], http=True)
    conf = tmp_path / "bridge.conf"
    conf.write_text(f'gcp_pubsub {{\n  project: "{PROJECT}"\n  topic: "{TOPIC}"\n  subjects: ["FALCO.>"]\n'
                    f'  ordering_key: hostname\n  endpoint: "http://{emulator.host}"\n}}\n')
    bridge = subprocess.Popen([target.binary, "bridge", "-c", str(conf), "--server", s.url],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    nc = await nats.connect(s.url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the bridge creates the stream
            try:
                await js.stream_info("BRIDGE_FALCO-ALERTS")
                break
            except nats.js.errors.NotFoundError:
                await asyncio.sleep(0.1)
        sent = alerts()[:300]
        for a in sent:
            d = json.loads(a)
            await js.publish("FALCO." + d["priority"], a, timeout=10)
        got = await asyncio.to_thread(emulator.pull_until, PROJECT, SUB, len(sent), 60, 0.5)
        assert sorted(m["data"] for m in got) == sorted(sent)
        assert all(m["orderingKey"] == json.loads(m["data"])["hostname"] for m in got)
        assert all(m["attributes"]["falco_hostname"] == m["orderingKey"] for m in got)
    finally:
        await nc.close()
        bridge.terminate()
        out = bridge.communicate(timeout=20)[0].decode()
        s.terminate()
    assert bridge.returncode == 0, out[-2000:]
    assert "Bridge stopped" in out and "bridged=300" in out.replace('"', ""), out[-2000:]


SECURED_USERS = """
falco { user: falco-ingest }
authorization {
  users: [
    { user: falco-ingest, permissions: { publish: "FALCO.>", subscribe: { deny: ">" } } }
    { user: bridge, password: bridge-pw, permissions: {
        publish: ["$JS.API.>", "$JS.ACK.>", "BRIDGE.DLQ.>"], subscribe: ["_INBOX.>", "_BRIDGE.>"] } }
    { user: reader, password: reader-pw, permissions: { publish: { deny: ">" }, subscribe: "FALCO.>" } }
  ]
}
"""


async def test_the_bridge_logs_in_as_its_own_user(tmp_path, emulator):
    """With users and permissions, the bridge in brokerd logs in as gcp_pubsub { user, password } and needs only
    JetStream's API, acks, its inboxes and its dead-letter subject."""
    conf = bridge_conf(tmp_path / "store", emulator, extra="user: bridge\n  password: bridge-pw") + SECURED_USERS
    s = start_brokerd(tmp_path, conf)
    try:
        wait_bridge(s, lambda b: b["ready"])
        sent = alerts()[:200]
        assert await asyncio.to_thread(post_all, s.falco_port, sent) == [200] * len(sent)
        got = await asyncio.to_thread(emulator.pull_until, PROJECT, SUB, len(sent), 90, 1.0)
        assert sorted(m["data"] for m in got) == sorted(sent)
        wait_bridge(s, lambda b: b["lag"] == 0 and b["bridged"] == len(sent))
        assert "Violation" not in s.log_text()
    finally:
        s.terminate()


async def test_a_bridge_user_without_a_permission_says_so(tmp_path, emulator):
    conf = bridge_conf(tmp_path / "store", emulator, extra="user: bridge\n  password: bridge-pw") + SECURED_USERS.replace(
        '["_INBOX.>", "_BRIDGE.>"]', '"_INBOX.>"')
    s = start_brokerd(tmp_path, conf)
    try:
        b = wait_bridge(s, lambda b: "Permissions Violation" in (b.get("last_error") or ""))
        assert 'Permissions Violation for Subscription to "_BRIDGE.' in b["last_error"]
    finally:
        s.terminate()
