"""Regressions found in review, each checked against nats-server as the reference."""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import pytest

import harness
from harness import PING, PONG


def wait_for(cond, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return bool(cond())


def test_publish_in_a_read_that_closes_the_connection_is_still_delivered(server_factory):
    """nats-server delivers the PUB that precedes a fatal error in the same read; so must we."""
    s = server_factory()
    with s.conn() as sub, s.conn() as pub:
        sub.connect()
        sub.send(b"SUB foo 1\r\n")
        assert sub.roundtrip()
        pub.connect()
        pub.send(b"PUB foo 2\r\nhi\r\nFOO\r\n")
        assert pub.read_until_closed(5)
        sub.read_until(b"MSG foo 1 2\r\nhi\r\n")


def test_subscriber_without_headers_gets_plain_msg(server_factory):
    """A subscriber that did not CONNECT with headers:true gets MSG with the body only, and an empty
    header block is no header block at all."""
    s = server_factory()
    with s.conn() as sub, s.conn() as pub:
        sub.connect({"headers": False})
        sub.send(b"SUB foo 1\r\n")
        assert sub.roundtrip()
        pub.connect({"headers": True})
        pub.send(b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\nHPUB foo 0 2\r\nyo\r\n")
        assert pub.roundtrip()
        assert sub.roundtrip()
        msgs = [f for f in sub.frames() if f.startswith((b"MSG", b"HMSG"))]
        assert msgs == [b"MSG foo 1 2\r\nhi\r\n", b"MSG foo 1 2\r\nyo\r\n"]


def test_monitor_survives_odd_query_strings(server_factory):
    s = server_factory(http=True)
    for path in ("/connz?=", "/connz?&&", "/varz?=x", "/subsz?a=b=c"):
        with urllib.request.urlopen(f"http://127.0.0.1:{s.http_port}{path}", timeout=5) as r:
            assert r.status == 200
            json.loads(r.read())
    assert s.proc.poll() is None


def test_invalid_client_protocol(server_factory):
    s = server_factory()
    with s.conn() as c:
        c.send(b'CONNECT {"verbose":false,"protocol":5}\r\nPING\r\n')
        assert c.read_until_closed(5)
        assert c.data() == b"-ERR 'invalid client protocol'\r\n"


def test_bad_credentials_are_judged_before_other_connect_errors(server_factory):
    s = server_factory("--auth", "secret")
    with s.conn() as c:
        c.send(b'CONNECT {"verbose":false,"no_responders":true,"auth_token":"wrong"}\r\nPING\r\n')
        assert c.read_until_closed(5)
        assert c.data() == harness.ERR_AUTH_VIOLATION


def test_client_info_that_is_not_json_closes(server_factory):
    s = server_factory()
    with s.conn() as c:
        c.connect()
        c.send(b"INFO garbage\r\nPING\r\n")
        assert c.read_until_closed(5)
        assert PONG not in c.data()[len(PONG):]


def test_no_responders_when_the_only_match_is_ourselves_without_echo(server_factory):
    s = server_factory()
    with s.conn() as c:
        c.connect({"headers": True, "no_responders": True, "echo": False})
        c.send(b"SUB inbox 1\r\nSUB req 2\r\nPUB req inbox 2\r\nhi\r\n")
        c.read_until(lambda d: b"HMSG inbox 1 " in d)
        assert b"NATS/1.0 503" in c.data()


def test_reload_that_adds_auth_disconnects_unauthenticated_clients(server_factory):
    s = server_factory(config="max_payload: 1MB\n")
    with s.conn() as c:
        c.connect()
        s.config_path.write_text("max_payload: 1MB\nauthorization { token: now-required }\n")
        s.proc.send_signal(signal.SIGHUP)
        assert c.read_until_closed(10)
        assert harness.ERR_AUTH_VIOLATION in c.data()
    with s.conn() as ok:
        ok.send(b'CONNECT {"verbose":false,"auth_token":"now-required"}\r\nPING\r\n')
        ok.read_until(PONG)


def test_auto_unsubscribe_does_not_take_a_reused_sid(server_factory):
    """UNSUB 1 1, a delivery, then UNSUB 1 and SUB bar 1: the delayed auto-removal of the first
    subscription must not remove the new one."""
    s = server_factory()
    with s.conn() as sub, s.conn() as pub:
        sub.connect()
        pub.connect()
        for round_ in range(30):
            sub.send(b"SUB foo 1\r\nUNSUB 1 1\r\n")
            assert sub.roundtrip()
            pub.send(b"PUB foo 1\r\nx\r\n")
            sub.send(b"UNSUB 1\r\nSUB bar 1\r\n")
            assert pub.roundtrip()
            assert sub.roundtrip()
            before = len([f for f in sub.frames() if f.startswith(b"MSG bar")])
            pub.send(b"PUB bar 1\r\ny\r\n")
            assert pub.roundtrip()
            assert sub.roundtrip()
            after = len([f for f in sub.frames() if f.startswith(b"MSG bar")])
            assert after == before + 1, f"round {round_}: the new subscription was lost"
            sub.send(b"UNSUB 1\r\n")
            assert sub.roundtrip()


def test_publishes_split_at_random_points_arrive_intact(server_factory):
    """PUBs of mixed sizes sent in random-sized pieces (so ops straddle reads everywhere, control lines and
    payloads alike) all arrive, intact and in order."""
    import random
    rng = random.Random(7)
    s = server_factory()
    payloads = [bytes([65 + i % 26]) * rng.choice([0, 1, 5, 100, 1500, 3000, 70000]) for i in range(300)]
    stream = b"".join(b"PUB split %d\r\n%s\r\n" % (len(p), p) for p in payloads)
    with s.conn() as sub, s.conn() as pub:
        sub.connect()
        sub.send(b"SUB split 1\r\n")
        assert sub.roundtrip()
        pub.connect()
        i = 0
        while i < len(stream):
            n = rng.randint(1, 9000)
            assert pub.send(stream[i:i + n])
            i += n
        assert pub.roundtrip(timeout=20)
        assert sub.roundtrip(timeout=20)
        got = [harness.parse_msg(f)["payload"] for f in sub.frames() if f.startswith(b"MSG ")]
        assert got == payloads
