"""Token and user/password authorization (command line flags and config file)."""

import pytest

from harness import (
    ERR_AUTH_TIMEOUT, ERR_AUTH_VIOLATION, PING, PONG, connect_line, msg, pub,
)

# mode -> (command line args, config authorization block, good CONNECT opts, bad CONNECT opts)
MODES = {
    "token": (
        ["--auth", "secret"],
        "authorization {\n  token: secret\n}\n",
        {"auth_token": "secret"},
        [{"auth_token": "wrong"}, {}, {"user": "u", "pass": "p"}],
    ),
    "userpass": (
        ["--user", "u", "--pass", "p"],
        "authorization {\n  user: u\n  password: p\n}\n",
        {"user": "u", "pass": "p"},
        [{"user": "u", "pass": "wrong"}, {"user": "x", "pass": "p"}, {"user": "u"}, {}, {"auth_token": "secret"}],
    ),
}


@pytest.fixture(params=[(m, src) for m in MODES for src in ("flags", "config")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def auth_server(request, server_factory):
    mode, source = request.param
    args, block, good, bad = MODES[mode]
    if source == "flags":
        s = server_factory(*args)
    else:
        s = server_factory(config=block)
    return s, good, bad


def test_info_auth_required(auth_server):
    s, _, _ = auth_server
    with s.conn() as c:
        assert c.info.get("auth_required") is True


def test_good_credentials(auth_server):
    s, good, _ = auth_server
    with s.conn() as c:
        c.send(connect_line(**good) + b"SUB foo 1\r\n" + pub("foo", b"ok") + PING)
        assert c.read_until(PONG) == msg("foo", "1", b"ok") + PONG
        assert not c.closed


def test_good_credentials_verbose(auth_server):
    s, good, _ = auth_server
    with s.conn() as c:
        c.send(connect_line(verbose=True, **good) + PING)
        assert c.read_until(PONG) == b"+OK\r\n" + PONG


def test_bad_or_missing_credentials(auth_server):
    s, _, bad = auth_server
    for opts in bad:
        with s.conn() as c:
            c.send(connect_line(**opts) + PING)
            assert c.read_until_closed(5), (opts, c.data())
            assert c.data() == ERR_AUTH_VIOLATION, opts


@pytest.mark.parametrize("first", [PING, b"SUB foo 1\r\n", b"PUB foo 1\r\nx\r\n", b"FOO\r\n"],
                         ids=["PING", "SUB", "PUB", "unknown-op"])
def test_command_before_connect(auth_server, first):
    s, _, _ = auth_server
    with s.conn() as c:
        c.send(first)
        assert c.read_until_closed(5), c.data()
        assert c.data() == ERR_AUTH_VIOLATION


def test_authentication_timeout(auth_server):
    """No CONNECT within 2 s (the default auth timeout)."""
    s, _, _ = auth_server
    with s.conn() as c:
        assert c.read_until_closed(8), c.data()
        assert c.data() == ERR_AUTH_TIMEOUT


def test_no_auth_timeout_without_auth(server):
    """Without auth configured an idle unauthenticated client is not cut off at 2 s."""
    with server.conn() as c:
        assert c.read_until(lambda d: False, timeout=2.5) == b""
        assert not c.closed
        c.send(PING)
        assert c.read_until(PONG) == PONG
