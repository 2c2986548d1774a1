"""TLS on the client port: the tls block, allow_non_tls, the --tls flags, INFO's tls fields, the handshake orders
(INFO first, handshake_first, its fallback, sniffing), timeouts, client certificates, pinning and reload.

Every case runs on brokerd and nats-server from the same config, with certificates made at run time (tls_certs).
Outcomes are asserted, never timings: "closed within a generous bound" is the most any test says about time.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import ssl
import time

import nats
import pytest

from harness import HOST, PING, PONG, RawConn, connect_line, msg, pub
from tls_certs import CA, client_context, server_block

# A short handshake timeout keeps the timeout cases quick; the bound the tests wait is far larger.
TIMEOUT = 1
CLOSE_BOUND = 10.0


@pytest.fixture
def pki(tmp_path):
    ca = CA(tmp_path / "pki", "brokerd test CA")
    server = ca.issue("server", cn="localhost", dns=["localhost"], ips=["127.0.0.1"])
    return ca, server


def tls_socket(port: int, ctx: ssl.SSLContext, *, read_info_first: bool = True, timeout: float = 5.0):
    """Connect, read INFO in the clear (unless handshake-first), handshake. Returns (ssl socket, INFO or None)."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    info = None
    if read_info_first:
        info = _read_line(sock)
    tls = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    return tls, info


def _read_line(sock, limit: int = 1 << 16) -> dict:
    data = b""
    while b"\r\n" not in data and len(data) < limit:
        chunk = sock.recv(1)  # byte by byte: nothing past INFO may be taken from a socket about to do TLS
        if not chunk:
            raise ConnectionError(f"closed before INFO (got {data!r})")
        data += chunk
    assert data.startswith(b"INFO "), data
    return json.loads(data[5:].strip())


def roundtrip(sock) -> bytes:
    """CONNECT, SUB, PUB, PING over an established (TLS) socket; returns what came back up to PONG."""
    sock.sendall(connect_line() + b"SUB tls.x 1\r\n" + pub("tls.x", b"hello") + PING)
    data = b""
    deadline = time.monotonic() + 5
    while PONG not in data and time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(b"INFO "))


def closed_within(sock, bound: float = CLOSE_BOUND) -> bool:
    """True when the peer closes (EOF, reset, or a TLS alert) within `bound` seconds."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if not sock.recv(4096):
                return True
        except socket.timeout:
            return False
        except (ssl.SSLError, ConnectionError, OSError):
            return True
    return False


def tls_fields(info: dict) -> dict:
    return {k: info[k] for k in ("tls_required", "tls_available", "tls_verify") if k in info}


# --------------------------------------------------------------------------
# INFO: tls_required, tls_available, tls_verify (values read from nats-server 2.15)
# --------------------------------------------------------------------------

INFO_MODES = {
    "required": ({}, False, {"tls_required": True}),
    "verify": ({"verify": True}, False, {"tls_required": True, "tls_verify": True}),
    "verify_and_map": ({"verify_and_map": True}, False, {"tls_required": True, "tls_verify": True}),
    "allow_non_tls": ({}, True, {"tls_available": True}),
    "allow_non_tls+verify": ({"verify": True}, True, {"tls_verify": True, "tls_available": True}),
    "auto-fallback": ({"handshake_first": "auto"}, False, {"tls_required": True}),
    "auto-fallback+allow_non_tls": ({"handshake_first": "auto"}, True, {"tls_available": True}),
}


@pytest.mark.parametrize("mode", INFO_MODES, ids=list(INFO_MODES))
def test_info_tls_fields_in_the_clear(server_factory, pki, mode):
    ca, server = pki
    options, allow_non_tls, expected = INFO_MODES[mode]
    config = server_block(server, ca, **options) + ("allow_non_tls: true\n" if allow_non_tls else "")
    s = server_factory(config=config)
    with s.conn() as c:
        assert tls_fields(c.info) == expected


@pytest.mark.parametrize("allow_non_tls", [False, True], ids=["tls-only", "allow_non_tls"])
def test_info_after_handshake_first(server_factory, pki, allow_non_tls):
    """handshake_first: nothing in the clear; INFO comes over TLS with tls_required (tls_available stays)."""
    ca, server = pki
    s = server_factory(config=server_block(server, ca, handshake_first=True)
                       + ("allow_non_tls: true\n" if allow_non_tls else ""), ready="port")
    tls, _ = tls_socket(s.port, client_context(ca), read_info_first=False)
    with tls:
        info = _read_line(tls)
        expected = {"tls_required": True, "tls_available": True} if allow_non_tls else {"tls_required": True}
        assert tls_fields(info) == expected
        assert roundtrip(tls) == msg("tls.x", "1", b"hello") + PONG


def test_no_tls_fields_without_tls(server):
    with server.conn() as c:
        assert tls_fields(c.info) == {}


# --------------------------------------------------------------------------
# Clients: nats-py and raw sockets in every order
# --------------------------------------------------------------------------


async def test_nats_py_over_tls(server_factory, pki, nats_clients):
    ca, server = pki
    s = server_factory(config=server_block(server, ca))
    nc = await nats_clients.connect(s, tls=client_context(ca))
    sub = await nc.subscribe("tls.greet")
    await nc.flush()
    await nc.publish("tls.greet", b"over tls")
    received = await sub.next_msg(timeout=5)
    assert received.data == b"over tls"


@pytest.mark.parametrize("handshake_first", [True, "auto", "300ms"], ids=["true", "auto", "duration"])
async def test_nats_py_tls_handshake_first(server_factory, pki, nats_clients, handshake_first):
    ca, server = pki
    s = server_factory(config=server_block(server, ca, handshake_first=handshake_first),
                       ready="port" if handshake_first is True else "info")
    nc = await nats_clients.connect(s, tls=client_context(ca), tls_handshake_first=True)
    assert nc.is_connected
    resp = await _request_roundtrip(nc)
    assert resp == b"pong"


async def test_handshake_first_fallback_serves_an_info_first_client(server_factory, pki, nats_clients):
    """handshake_first: auto: a client that waits for INFO gets it in the clear after the delay, then does TLS."""
    ca, server = pki
    s = server_factory(config=server_block(server, ca, handshake_first="auto"))
    nc = await nats_clients.connect(s, tls=client_context(ca))
    assert await _request_roundtrip(nc) == b"pong"


async def _request_roundtrip(nc) -> bytes:
    async def responder(m):
        await m.respond(b"pong")

    await nc.subscribe("tls.ping", cb=responder)
    await nc.flush()
    reply = await nc.request("tls.ping", b"ping", timeout=5)
    return reply.data


async def test_allow_non_tls_serves_plain_and_tls_clients(server_factory, pki, nats_clients):
    ca, server = pki
    s = server_factory(config=server_block(server, ca) + "allow_non_tls: true\n")
    plain = await nats_clients.connect(s)
    secure = await nats_clients.connect(s, tls=client_context(ca))
    sub = await plain.subscribe("mixed")
    await plain.flush()
    await secure.publish("mixed", b"from tls")
    assert (await sub.next_msg(timeout=5)).data == b"from tls"
    # Raw: the first byte decides; a plain CONNECT works byte for byte.
    with s.conn() as c:
        c.send(connect_line() + b"SUB a 1\r\n" + pub("a", b"x") + PING)
        assert c.read_until(PONG) == msg("a", "1", b"x") + PONG


def test_allow_non_tls_silent_client_is_a_plain_client(server_factory, pki):
    """nats-server reads the first bytes for the TLS timeout at most; a silent client is then served in the clear."""
    ca, server = pki
    s = server_factory(config=server_block(server, ca, timeout=TIMEOUT) + "allow_non_tls: true\n")
    with s.conn() as c:
        assert c.read_until(lambda d: False, timeout=TIMEOUT + 1.5) == b""
        assert not c.closed
        c.send(connect_line() + PING)
        assert c.read_until(PONG) == PONG


def test_plain_client_on_a_tls_port_is_refused(server_factory, pki):
    ca, server = pki
    s = server_factory(config=server_block(server, ca))
    with s.conn() as c:
        assert c.info["tls_required"] is True
        c.send(connect_line() + PING)
        assert c.read_until_closed(CLOSE_BOUND)
        assert PONG not in c.data()


def test_info_first_client_on_a_handshake_first_port_is_refused(server_factory, pki):
    """handshake_first without a fallback: a client waiting for INFO gets nothing and is closed after the timeout."""
    ca, server = pki
    s = server_factory(config=server_block(server, ca, handshake_first=True, timeout=TIMEOUT), ready="port")
    with s.conn(read_info=False) as c:
        assert c.read_until_closed(CLOSE_BOUND)
        assert c.raw == b""


# --------------------------------------------------------------------------
# Timeouts and bad handshakes: the client is closed, the others are not disturbed
# --------------------------------------------------------------------------


def _healthy(s, ca) -> ssl.SSLSocket:
    tls, _ = tls_socket(s.port, client_context(ca))
    assert roundtrip(tls) == msg("tls.x", "1", b"hello") + PONG
    return tls


def _still_healthy(tls) -> None:
    tls.sendall(pub("tls.x", b"again") + PING)
    data = b""
    deadline = time.monotonic() + 5
    while PONG not in data and time.monotonic() < deadline:
        data += tls.recv(4096)
    assert data == msg("tls.x", "1", b"again") + PONG


@pytest.mark.parametrize("handshake_first", [False, True], ids=["info-first", "handshake-first"])
def test_client_that_never_starts_the_handshake_is_closed(server_factory, pki, handshake_first):
    ca, server = pki
    options = {"timeout": TIMEOUT}
    if handshake_first:
        options["handshake_first"] = True
    s = server_factory(config=server_block(server, ca, **options), ready="port" if handshake_first else "info")
    other = _healthy_for(s, ca, handshake_first)
    with s.conn(read_info=not handshake_first) as c:
        assert c.read_until_closed(CLOSE_BOUND)
    _still_healthy(other)
    other.close()


def _healthy_for(s, ca, handshake_first: bool) -> ssl.SSLSocket:
    if not handshake_first:
        return _healthy(s, ca)
    tls, _ = tls_socket(s.port, client_context(ca), read_info_first=False)
    _read_line(tls)
    assert roundtrip(tls) == msg("tls.x", "1", b"hello") + PONG
    return tls


def test_client_sending_a_byte_a_second_is_closed(server_factory, pki):
    """A slow-loris handshake: the timeout counts from the handshake's start, not from the last byte."""
    ca, server = pki
    s = server_factory(config=server_block(server, ca, timeout=TIMEOUT))
    other = _healthy(s, ca)
    # The start of a real ClientHello, sent one byte a second.
    hello = bytes.fromhex("16030100f4010000f00303") + bytes(32)
    with s.conn() as c:
        closed = False
        for byte in hello:
            if not c.send(bytes([byte])):
                closed = True
                break
            if c.read_until_closed(1.0):
                closed = True
                break
        assert closed or c.read_until_closed(CLOSE_BOUND)
    _still_healthy(other)
    other.close()


def test_garbage_handshake_is_closed(server_factory, pki):
    ca, server = pki
    s = server_factory(config=server_block(server, ca))
    other = _healthy(s, ca)
    with s.conn() as c:
        c.send(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64)
        assert c.read_until_closed(CLOSE_BOUND)
    _still_healthy(other)
    other.close()


# --------------------------------------------------------------------------
# Client certificates: verify, untrusted certificates, pinning
# --------------------------------------------------------------------------


def _handshake_refused(s, ctx, ports: list | None = None) -> bool:
    """True when the server refuses this client: the handshake fails, or the connection dies right after it
    (TLS 1.3 reports a rejected client certificate on the first read). `ports` collects the client's local port."""
    sock = socket.create_connection((HOST, s.port), timeout=5)
    if ports is not None:
        ports.append(sock.getsockname()[1])
    try:
        _read_line(sock)
        tls = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
    except (ssl.SSLError, ConnectionError, OSError):
        sock.close()
        return True
    with tls:
        try:
            tls.sendall(connect_line() + PING)
            data = b""
            deadline = time.monotonic() + CLOSE_BOUND
            while PONG not in data and time.monotonic() < deadline:
                chunk = tls.recv(4096)
                if not chunk:
                    return True
                data += chunk
            return PONG not in data
        except (ssl.SSLError, ConnectionError, OSError):
            return True


@pytest.mark.parametrize("key", ["verify", "verify_and_map"])
def test_verify_requires_a_trusted_client_certificate(server_factory, pki, tmp_path, key):
    ca, server = pki
    alice = ca.issue("alice", cn="alice", emails=["alice@example.com"])
    rogue_ca = CA(tmp_path / "rogue", "rogue CA")
    mallory = rogue_ca.issue("mallory", cn="alice")
    s = server_factory(config=server_block(server, ca, **{key: True}))
    other = _tls_with(s, client_context(ca, alice))
    ports: list[int] = []
    assert _handshake_refused(s, client_context(ca), ports)  # no certificate
    assert _handshake_refused(s, client_context(ca, mallory), ports)  # not signed by ca_file
    assert not _handshake_refused(s, client_context(ca, alice))
    _still_healthy(other)
    other.close()
    # Each failed handshake is logged (an error, so at the default level) with the client's address.
    for port in ports:
        assert _wait_for_log(s, lambda line: "TLS handshake error" in line and f"127.0.0.1:{port}" in line), port


def _wait_for_log(s, predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(predicate(line) for line in s.log_text().splitlines()):
            return True
        time.sleep(0.05)
    return False


def _tls_with(s, ctx) -> ssl.SSLSocket:
    tls, _ = tls_socket(s.port, ctx)
    assert roundtrip(tls) == msg("tls.x", "1", b"hello") + PONG
    return tls


async def test_nats_py_with_a_client_certificate(server_factory, pki, nats_clients):
    ca, server = pki
    alice = ca.issue("alice", cn="alice")
    s = server_factory(config=server_block(server, ca, verify=True))
    nc = await nats_clients.connect(s, tls=client_context(ca, alice))
    assert await _request_roundtrip(nc) == b"pong"
    with pytest.raises(Exception):
        await nats.connect(s.url, tls=client_context(ca), allow_reconnect=False, connect_timeout=3)


def test_untrusted_server_certificate_is_the_clients_business(server_factory, pki, tmp_path):
    """A client that does not trust the server fails its own handshake; the server keeps serving others."""
    ca, server = pki
    s = server_factory(config=server_block(server, ca))
    other = _healthy(s, ca)
    stranger = client_context(CA(tmp_path / "other", "other CA"))
    with pytest.raises(ssl.SSLError):
        tls_socket(s.port, stranger)
    _still_healthy(other)
    other.close()


def test_pinned_certs(server_factory, pki):
    ca, server = pki
    alice = ca.issue("alice", cn="alice")
    bob = ca.issue("bob", cn="bob")
    s = server_factory(config=server_block(server, ca, verify=True, pinned_certs=[alice.spki_sha256.upper()]))
    assert not _handshake_refused(s, client_context(ca, alice))
    assert _handshake_refused(s, client_context(ca, bob))


# --------------------------------------------------------------------------
# Flags
# --------------------------------------------------------------------------


def test_tls_flags(server_factory, pki):
    ca, server = pki
    s = server_factory("--tls", "--tlscert", str(server.cert_file), "--tlskey", str(server.key_file))
    with s.conn() as c:
        assert tls_fields(c.info) == {"tls_required": True}
    tls = _healthy(s, ca)
    tls.close()


def test_tlsverify_flags(server_factory, pki):
    ca, server = pki
    alice = ca.issue("alice", cn="alice")
    s = server_factory("--tlsverify", "--tlscert", str(server.cert_file), "--tlskey", str(server.key_file),
                       "--tlscacert", str(ca.file))
    with s.conn() as c:
        assert tls_fields(c.info) == {"tls_required": True, "tls_verify": True}
    assert _handshake_refused(s, client_context(ca))
    assert not _handshake_refused(s, client_context(ca, alice))


def test_flags_override_the_blocks_certificate(server_factory, pki, tmp_path):
    """The flags' certificate replaces the block's; the block's timeout and handshake order stay (nats-server)."""
    ca, server = pki
    second = ca.issue("second", cn="localhost", dns=["localhost"], ips=["127.0.0.1"])
    s = server_factory("--tls", "--tlscert", str(second.cert_file), "--tlskey", str(second.key_file),
                       config=server_block(server, ca, handshake_first=True), ready="port")
    tls, _ = tls_socket(s.port, client_context(ca), read_info_first=False)
    with tls:
        assert tls.getpeercert(binary_form=True) == second.der
        assert tls_fields(_read_line(tls)) == {"tls_required": True}


@pytest.mark.parametrize("args, text", [
    (["--tls"], "TLS Server certificate must be present and valid"),
    (["--tls", "--tlscert", "x.pem"], "TLS Server private key must be present and valid"),
], ids=["no-cert", "no-key"])
def test_tls_flags_need_a_certificate_and_key(target, tmp_path, args, text):
    out = _run_to_exit(target, ["-a", HOST, "-p", "0", *args], tmp_path)
    assert out.returncode != 0
    assert text in out.stdout.decode() + out.stderr.decode()


def _run_to_exit(target, args, tmp_path):
    import subprocess
    return subprocess.run([target.binary, *args], cwd=tmp_path, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=15)


# --------------------------------------------------------------------------
# Config errors: the same text on both servers
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["missing-cert", "bad-key", "unknown-cipher", "unknown-field", "mismatched-key"])
def test_config_errors(target, pki, tmp_path, case):
    ca, server = pki
    other = ca.issue("other", cn="other")
    (tmp_path / "garbage.key").write_text("not a key\n")
    blocks = {
        "missing-cert": (f'tls {{ cert_file: "{tmp_path}/nope.pem", key_file: "{server.key_file}" }}',
                         f"error parsing X509 certificate/key pair: open {tmp_path}/nope.pem: no such file or directory"),
        "bad-key": (f'tls {{ cert_file: "{server.cert_file}", key_file: "{tmp_path}/garbage.key" }}',
                    "error parsing X509 certificate/key pair: tls: failed to find any PEM data in key input"),
        "mismatched-key": (f'tls {{ cert_file: "{server.cert_file}", key_file: "{other.key_file}" }}',
                           "error parsing X509 certificate/key pair: tls: private key does not match public key"),
        "unknown-cipher": (server_block(server, cipher_suites=["TLS_NOPE"]), "unrecognized cipher TLS_NOPE"),
        "unknown-field": (server_block(server, foo=1), 'error parsing tls config, unknown field "foo"'),
    }
    text, expected = blocks[case]
    conf = tmp_path / "bad.conf"
    conf.write_text(text + "\n")
    out = _run_to_exit(target, ["-a", HOST, "-p", "0", "-c", str(conf)], tmp_path)
    assert out.returncode != 0
    assert expected in out.stdout.decode() + out.stderr.decode()


# --------------------------------------------------------------------------
# Reload: rotated certificate files
# --------------------------------------------------------------------------


def test_sighup_reloads_rotated_certificates(server_factory, pki):
    ca, server = pki
    s = server_factory(config=server_block(server, ca))
    old = _healthy(s, ca)
    assert old.getpeercert(binary_form=True) == server.der
    # Rotate the files in place, then SIGHUP.
    rotated = ca.issue("rotated", cn="localhost", dns=["localhost"], ips=["127.0.0.1"],
                       cert_file=server.cert_file, key_file=server.key_file)
    assert rotated.der != server.der
    s.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    seen = None
    while time.monotonic() < deadline:
        tls, _ = tls_socket(s.port, client_context(ca))
        with tls:
            seen = tls.getpeercert(binary_form=True)
        if seen == rotated.der:
            break
        time.sleep(0.1)
    assert seen == rotated.der
    _still_healthy(old)  # the connection made before keeps its session
    old.close()
