"""Config file (-c) and command line flag handling."""

import json
import urllib.request

import nats.errors
import pytest

from harness import (
    ERR_MAX_CONTROL_LINE, ERR_MAX_PAYLOAD, HOST, PING, PONG, connect_line, free_port, msg, pub,
    run_binary,
)


def test_config_port_host_max_payload(server_factory):
    s = server_factory(config="max_payload: 2048\n", config_listen=True)
    with s.conn() as c:
        assert c.info["port"] == s.port
        assert c.info["host"] == HOST
        assert c.info["max_payload"] == 2048
        c.send(connect_line() + b"SUB a 1\r\n" + pub("a", b"y" * 2048) + PING)
        assert c.read_until(PONG) == msg("a", "1", b"y" * 2048) + PONG
        c.send(b"PUB a 2049\r\n")
        assert c.read_until_closed(5)
        assert c.data().endswith(PONG + ERR_MAX_PAYLOAD)


async def test_config_max_payload_seen_by_nats_py(server_factory, nats_clients):
    s = server_factory(config="max_payload: 4096\n", config_listen=True)
    nc = await nats_clients.connect(s)
    assert nc.max_payload == 4096
    with pytest.raises(nats.errors.MaxPayloadError):
        await nc.publish("x", b"z" * 4097)


@pytest.mark.parametrize("text,expected", [
    ("max_payload: 2KB\n", 2048),
    ("max_payload: 1MB\n", 1024 * 1024),
    ("max_payload = 3000\n", 3000),
    ("max_payload 3001\n", 3001),
    ("# a comment\nmax_payload: 3002 # trailing comment\n// another comment\n", 3002),
    ('max_payload: 3003\nserver_name: "quoted-name"\n', 3003),
], ids=["KB-suffix", "MB-suffix", "equals", "space", "comments", "quoted-string"])
def test_config_syntax_variants(server_factory, text, expected):
    s = server_factory(config=text, config_listen=True)
    with s.conn() as c:
        assert c.info["max_payload"] == expected
        if "quoted-name" in text:
            assert c.info["server_name"] == "quoted-name"


def test_config_server_name(server_factory):
    s = server_factory(config="server_name: cfg-name\n", config_listen=True)
    with s.conn() as c:
        assert c.info["server_name"] == "cfg-name"


def test_command_line_overrides_config_port(server_factory):
    """-a/-p on the command line win over host/port in the config file."""
    other = free_port()
    s = server_factory(config=f"host: 127.0.0.1\nport: {other}\nmax_payload: 5000\n")
    with s.conn() as c:
        assert c.info["port"] == s.port != other
        assert c.info["max_payload"] == 5000


def test_config_max_control_line(server_factory):
    s = server_factory(config="max_control_line: 512\n", config_listen=True)
    with s.conn() as c:
        c.send(connect_line() + b"SUB " + b"a" * 400 + b" 1\r\nPING\r\n")
        assert c.read_until(PONG) == PONG
        c.send(b"SUB " + b"b" * 600 + b" 2\r\n")
        assert c.read_until_closed(5)
        assert c.data() == PONG + ERR_MAX_CONTROL_LINE


def test_config_all_documented_keys(server_factory):
    """Every config key brokerd documents is accepted together."""
    s = server_factory(config=(
        "server_name: all-keys\n"
        "max_payload: 65536\n"
        "max_pending: 33554432\n"
        "max_control_line: 8192\n"
        'ping_interval: "2m"\n'
        "ping_max: 3\n"
        'write_deadline: "5s"\n'
        "max_connections: 100\n"
        "authorization {\n  token: tok\n}\n"
    ), config_listen=True, http=True)
    with s.conn() as c:
        assert c.info["server_name"] == "all-keys"
        assert c.info["max_payload"] == 65536
        assert c.info["auth_required"] is True
        c.send(connect_line(auth_token="tok") + b"SUB " + b"s" * 6000 + b" 1\r\nPING\r\n")
        assert c.read_until(PONG) == PONG
    assert urllib.request.urlopen(f"http://{HOST}:{s.http_port}/healthz", timeout=5).status == 200


def _get_json(port, path):
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=5) as r:
        assert r.status == 200
        return json.loads(r.read())


@pytest.mark.parametrize("via", ["flag", "config"])
def test_monitoring_port(server_factory, via):
    s = server_factory(http=True, config_listen=(via == "config"))
    with s.conn() as c:
        info = c.info
    assert _get_json(s.http_port, "/healthz") == {"status": "ok"}
    varz = _get_json(s.http_port, "/varz")
    assert varz["server_id"] == info["server_id"]
    assert varz["port"] == s.port
    assert varz["max_payload"] == info["max_payload"]
    assert varz["version"] == info["version"]


@pytest.mark.parametrize("flags", [["-D"], ["-V"], ["-D", "-V"], ["-l", "LOG"], ["--log", "LOG"]],
                         ids=["D", "V", "D-V", "l", "log"])
def test_logging_flags_accepted(server_factory, tmp_path, flags):
    log = tmp_path / "server.log"
    s = server_factory(*[str(log) if f == "LOG" else f for f in flags])
    with s.conn() as c:
        c.send(connect_line() + b"SUB x 1\r\n" + pub("x", b"1") + PING)
        assert c.read_until(PONG) == msg("x", "1", b"1") + PONG
    if "LOG" in flags:
        assert log.exists() and log.stat().st_size > 0


def test_missing_config_file_fails(target, tmp_path):
    r = run_binary(target, ["-a", HOST, "-p", str(free_port()), "-c", str(tmp_path / "does-not-exist.conf")])
    assert r.returncode != 0
