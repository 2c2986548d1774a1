"""The INFO line a server sends on connect, and the -v / -h flags."""

import json
import re

from harness import DEFAULT_MAX_PAYLOAD, HOST, SEMVER_RE, run_binary, semver_tuple


def test_info_line_framing(raw):
    c = raw()
    line = c.info_line
    assert line.startswith(b"INFO {"), line[:40]
    assert line.endswith(b"} \r\n"), line[-40:]
    assert line.count(b"\r\n") == 1
    # The JSON is exactly what sits between "INFO " and " \r\n".
    json.loads(line[len(b"INFO ") : -len(b" \r\n")])


def test_info_fields(server, raw):
    info = raw().info
    assert isinstance(info["server_id"], str) and info["server_id"]
    assert isinstance(info["server_name"], str) and info["server_name"]
    assert isinstance(info["version"], str)
    assert SEMVER_RE.match(info["version"]), info["version"]
    assert semver_tuple(info["version"]) >= (2, 9, 0), info["version"]
    assert info["proto"] == 1
    assert info["host"] == HOST
    assert info["port"] == server.port
    assert info["headers"] is True
    assert info["max_payload"] == DEFAULT_MAX_PAYLOAD
    assert isinstance(info["client_id"], int) and not isinstance(info["client_id"], bool)
    assert info["client_ip"] == HOST
    # auth_required only appears (as true) when auth is on.
    assert info.get("auth_required", False) is False


def test_info_client_ids_distinct_server_id_stable(raw):
    a, b = raw(), raw()
    assert a.info["client_id"] != b.info["client_id"]
    assert a.info["server_id"] == b.info["server_id"]
    assert a.info["server_name"] == b.info["server_name"]


def test_server_name_flag(server_factory):
    s = server_factory("-n", "brokerd-it-name")
    with s.conn() as c:
        assert c.info["server_name"] == "brokerd-it-name"


def test_server_name_long_flag(server_factory):
    s = server_factory("--name", "brokerd-it-long")
    with s.conn() as c:
        assert c.info["server_name"] == "brokerd-it-long"


def test_long_listen_flags(server_factory):
    """--addr/--port/--http_port work like -a/-p/-m."""
    s = server_factory(long_flags=True, http=True)
    with s.conn() as c:
        assert c.info["port"] == s.port
        assert c.connect() == b"PONG\r\n"


def test_version_flag_matches_info(target, server):
    with server.conn() as c:
        version = c.info["version"]
    for flag in ("-v", "--version"):
        r = run_binary(target, [flag])
        assert r.returncode == 0, (flag, r)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        found = re.findall(r"v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)", out)
        assert version in found, f"{flag} printed {out!r}, INFO version is {version!r}"


def test_help_flag(target):
    for flag in ("-h", "--help"):
        r = run_binary(target, [flag])
        assert r.returncode == 0, (flag, r)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        assert "--port" in out and "--addr" in out, out[:500]
