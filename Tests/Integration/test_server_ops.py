"""Operating the server: monitoring endpoints, liveness (PING / Stale Connection), max_connections,
lame-duck mode (SIGUSR2), config reload (SIGHUP) and the command line.

Where nats-server behaves the same way, tests run against both targets; brokerd-only features
(Prometheus /metrics, brokerd_version) are checked on brokerd alone.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import pytest

import harness
from harness import ERR_MAX_CONNECTIONS, ERR_STALE_CONNECTION, PING, PONG


def http_get(server, path: str) -> tuple[int, str, str]:
    url = f"http://127.0.0.1:{server.http_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def wait_for(cond, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    return cond()


# --------------------------------------------------------------------------
# Monitoring
# --------------------------------------------------------------------------


def test_healthz(server_factory):
    s = server_factory(http=True)
    status, ctype, body = http_get(s, "/healthz")
    assert status == 200
    assert "application/json" in ctype
    assert json.loads(body) == {"status": "ok"}


def test_varz_counts_messages_and_connections(server_factory):
    s = server_factory(http=True)
    with s.conn() as sub, s.conn() as pub:
        sub.connect()
        sub.send(b"SUB FALCO.* 1\r\n")
        assert sub.roundtrip()
        pub.connect()
        pub.send(b"PUB FALCO.Critical 5\r\nhello\r\nPUB FALCO.Notice 3\r\nabc\r\n")
        assert pub.roundtrip()
        sub.read_until(lambda d: d.count(b"MSG ") >= 2)
        status, _, body = http_get(s, "/varz")
        assert status == 200
        varz = json.loads(body)
        for key in ("server_id", "server_name", "version", "host", "port", "max_payload", "max_connections",
                    "ping_interval", "ping_max", "start", "now", "uptime", "mem", "connections",
                    "total_connections", "in_msgs", "out_msgs", "in_bytes", "out_bytes", "slow_consumers",
                    "subscriptions"):
            assert key in varz, key
        assert varz["port"] == s.port
        assert varz["max_payload"] == 1048576
        assert varz["connections"] >= 2
        assert varz["in_msgs"] >= 2
        assert varz["out_msgs"] >= 2
        assert varz["in_bytes"] >= 8
        assert varz["subscriptions"] >= 1
        assert varz["now"].endswith("Z")


def test_connz_lists_clients_with_names(server_factory):
    s = server_factory(http=True)
    with s.conn() as c:
        c.connect({"name": "falco-worker", "lang": "python3", "version": "9.9.9"})
        c.send(b"SUB a 1\r\nSUB b 2\r\n")
        assert c.roundtrip()
        status, _, body = http_get(s, "/connz")
        assert status == 200
        connz = json.loads(body)
        assert connz["num_connections"] >= 1
        mine = [x for x in connz["connections"] if x.get("name") == "falco-worker"]
        assert len(mine) == 1
        assert mine[0]["lang"] == "python3"
        assert mine[0]["subscriptions"] == 2
        assert mine[0]["ip"] == "127.0.0.1"
        assert isinstance(mine[0]["cid"], int)


def test_subsz(server_factory):
    s = server_factory(http=True)
    with s.conn() as c:
        c.connect()
        c.send(b"SUB FALCO.* 1\r\nSUB FALCO.> 2\r\n")
        assert c.roundtrip()
        status, _, body = http_get(s, "/subsz")
        assert status == 200
        assert json.loads(body)["num_subscriptions"] >= 2


def test_unknown_monitoring_path_is_404(server_factory):
    s = server_factory(http=True)
    status, _, _ = http_get(s, "/no-such-endpoint")
    assert status == 404


def test_prometheus_metrics(server_factory):
    s = server_factory(http=True)
    if s.target.name != "brokerd":
        pytest.skip("/metrics is brokerd's own endpoint")
    with s.conn() as c:
        c.connect()
        c.send(b"PUB x 1\r\na\r\n")
        assert c.roundtrip()
        status, ctype, body = http_get(s, "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain")
    values = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split(" ", 1)
            values[name] = float(value)
    assert values["brokerd_in_msgs_total"] >= 1
    assert values["brokerd_connections"] >= 1
    assert "brokerd_slow_consumers_total" in values
    assert "# TYPE brokerd_in_msgs_total counter" in body


# --------------------------------------------------------------------------
# Liveness and limits
# --------------------------------------------------------------------------


def test_stale_connection_after_unanswered_pings(server_factory):
    s = server_factory(config="ping_interval: \"1s\"\nping_max: 1\n")
    with s.conn() as c:
        c.connect()
        # Never answer the server's PING: after ping_max unanswered PINGs it gives up on us.
        assert c.read_until_closed(10), c.data()
        data = harness.strip_info(c.data())
        assert data.startswith(PONG)
        assert PING in data
        assert data.endswith(ERR_STALE_CONNECTION)


def test_answered_pings_keep_the_connection(server_factory):
    s = server_factory(config="ping_interval: \"1s\"\nping_max: 1\n")
    with s.conn() as c:
        c.connect()
        pongs_sent = 0
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            c._recv(time.monotonic() + 0.2)
            while c.data().count(PING) > pongs_sent:
                c.send(PONG)
                pongs_sent += 1
        assert pongs_sent >= 2
        assert not c.closed
        c.send(PING)
        c.read_until(lambda d: d.count(PONG) >= 2)


def test_max_connections(server_factory):
    s = server_factory(config="max_connections: 2\n")
    with s.conn() as a, s.conn() as b:
        a.connect()
        b.connect()
        with s.conn(read_info=False) as c:
            assert c.read_until_closed(15)  # a wait, not a timing assertion: a loaded CI machine is slow
            assert c.raw.endswith(ERR_MAX_CONNECTIONS)
        # The two admitted clients are unaffected.
        a.send(PING)
        a.read_until(lambda d: d.count(PONG) >= 2)


# --------------------------------------------------------------------------
# Lame duck, reload, command line (brokerd; nats-server's lame duck lasts at least 30 s)
# --------------------------------------------------------------------------


def test_lame_duck_mode(server_factory):
    s = server_factory(config='lame_duck_duration: "30s"\nlame_duck_grace_period: "1s"\n')
    if s.target.name != "brokerd":
        pytest.skip("nats-server's minimum lame-duck duration makes this too slow for the suite")
    with s.conn() as c:
        c.connect()
        s.proc.send_signal(signal.SIGUSR2)
        # New connections are refused while in lame-duck mode.
        def refused():
            try:
                with s.conn(timeout=1):
                    return False
            except Exception:
                return True
        assert wait_for(refused, timeout=5)
        # Clients are told (INFO with ldm:true) and then closed.
        c.read_until(lambda d: b'"ldm":true' in d, timeout=5)
        assert c.read_until_closed(40)
    # Once every client is gone, the server exits cleanly, as nats-server does.
    assert s.proc.wait(timeout=40) == 0


def test_sighup_reloads_authorization(server_factory):
    s = server_factory(config="authorization { token: first }\n")
    if s.target.name != "brokerd":
        pytest.skip("checked on brokerd")
    with s.conn() as c:
        c.send(b'CONNECT {"auth_token":"first","verbose":false}\r\nPING\r\n')
        c.read_until(PONG)
    s.config_path.write_text("authorization { token: second }\n")
    s.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "Reloaded server configuration" in s.log_text(), timeout=5), s.log_text()
    with s.conn() as c:
        c.send(b'CONNECT {"auth_token":"first","verbose":false}\r\nPING\r\n')
        assert c.read_until_closed(5)
        assert b"Authorization Violation" in c.data()
    with s.conn() as c:
        c.send(b'CONNECT {"auth_token":"second","verbose":false}\r\nPING\r\n')
        c.read_until(PONG)


def test_bad_reload_keeps_running_config(server_factory):
    s = server_factory(config="max_payload: 1024\n")
    if s.target.name != "brokerd":
        pytest.skip("checked on brokerd")
    s.config_path.write_text("max_payload: {{{\n")
    s.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "Reload failed" in s.log_text(), timeout=5), s.log_text()
    with s.conn() as c:
        assert c.info["max_payload"] == 1024
        c.connect()


def test_cli_help_version_and_config_errors(target, tmp_path):
    if target.name != "brokerd":
        pytest.skip("brokerd's own command line")
    help_out = harness.run_binary(target, ["--help"])
    assert help_out.returncode == 0
    for flag in ("--addr", "--port", "--http_port", "--config", "--auth", "--user", "--pass", "--log", "--version"):
        assert flag in help_out.stdout.decode(), flag
    version = harness.run_binary(target, ["-v"])
    assert version.returncode == 0
    assert "brokerd" in version.stdout.decode()
    bad = tmp_path / "bad.conf"
    bad.write_text("port: 4222\nmax_payload: lots\n")
    res = harness.run_binary(target, ["-c", str(bad)])
    assert res.returncode != 0
    assert "bad.conf:2" in res.stderr.decode()
    missing = harness.run_binary(target, ["-c", str(tmp_path / "nope.conf")])
    assert missing.returncode != 0
    assert "nope.conf" in missing.stderr.decode()


def test_log_file_flag(server_factory, tmp_path):
    log = tmp_path / "brokerd.log"
    s = server_factory("-l", str(log))
    if s.target.name != "brokerd":
        pytest.skip("checked on brokerd")
    with s.conn() as c:
        c.connect()
    assert wait_for(lambda: log.exists() and "Server is ready" in log.read_text(), timeout=5)


def test_write_deadline_cuts_off_a_stalled_reader(server_factory):
    """A subscriber whose socket takes no bytes for longer than write_deadline is cut off as a slow consumer
    (no -ERR), even though it is far below max_pending; the publisher and other clients carry on."""
    s = server_factory(config='write_deadline: "1s"\nmax_pending: 256MB\n', http=True)
    slow = s.conn(rcvbuf=4096)
    slow.connect()
    slow.send(b"SUB stall 1\r\n")
    assert slow.roundtrip()
    with s.conn() as pub:
        pub.connect()
        chunk = b"PUB stall 8192\r\n" + b"x" * 8192 + b"\r\n"
        # ~16 MB: far more than the socket buffers hold, far less than max_pending.
        for _ in range(16):
            assert pub.send(chunk * 128)
        assert pub.roundtrip(timeout=20)
        # Never read from the slow socket (reading would let the server make progress); watch /varz instead.
        def slow_consumers():
            status, _, body = http_get(s, "/varz")
            return status == 200 and json.loads(body)["slow_consumers"] >= 1
        assert wait_for(slow_consumers, timeout=20), "stalled subscriber was never cut off"
        assert pub.roundtrip()
    slow.close()


def test_publisher_pong_orders_deliveries_before_subscriber_pong(server_factory):
    """Once a publisher has its PONG, every message it sent is queued for the subscribers: a subscriber's
    PING sent after that gets its PONG after those messages. Clients rely on this (publish, flush, then
    flush the subscriber and expect the messages); brokerd must keep it across event loops too."""
    s = server_factory()
    for trial in range(40):  # connections alternate between event loops; cover both placements
        with s.conn() as sub, s.conn() as pub:
            sub.connect()
            sub.send(b"SUB work workers 1\r\nSUB work workers 2\r\nSUB work 3\r\n")
            assert sub.roundtrip()
            pub.connect()
            pub.send(b"".join(b"PUB work %d\r\n%d\r\n" % (len(str(i)), i) for i in range(300)))
            assert pub.roundtrip()
            pongs_before = sub.frames().count(PONG)
            sub.send(PING)
            frames = sub.read_frames(pongs_before + 1, pred=lambda f: f == PONG)
            msgs = [f for f in sub.frames() if f.startswith(b"MSG ")]
            assert len(msgs) == 600, f"trial {trial}: {len(msgs)} of 600 before the PONG"
