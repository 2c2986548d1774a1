"""HTTPS on brokerd's HTTP listeners, with certificates made at run time (tls_certs.py) and Python's own ssl:

* Falco's http_output endpoint with `falco { tls { } }` (brokerd only: nats-server has no such endpoint), with
  and without `verify: true` (Falco's `mtls: true`, `client_cert`, `client_key`, `ca_cert`), and `pinned_certs`;
* the monitor on `https_port` with the top-level `tls { }` certificate, side by side with nats-server (same
  config, same outcome), and nats-server's start-up refusals.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import time

import pytest

from harness import HOST, ServerStartError, free_port, resolve_target, start_server, wait_for_port
from tls_certs import CA, client_context, server_block

WAIT = 20


@pytest.fixture
def pki(tmp_path):
    ca = CA(tmp_path / "pki", "brokerd test CA")
    other = CA(tmp_path / "other", "unrelated CA")
    return {
        "ca": ca,
        "server": ca.issue("server", cn="localhost", dns=["localhost"], ips=["127.0.0.1"]),
        "falco": ca.issue("falco", cn="falco"),
        "stranger": other.issue("stranger", cn="falco"),
        "other": other,
    }


def falco_alert(rule: str = "Terminal shell in container") -> bytes:
    return json.dumps({
        "time": "2026-01-02T03:04:05.678901234Z", "priority": "Warning", "rule": rule,
        "output": "A shell was spawned", "output_fields": {"proc.name": "bash"}, "hostname": "node-1",
        "source": "syscall", "tags": ["container", "shell"],
    }).encode()


def post(port: int, body: bytes, context: ssl.SSLContext) -> tuple[int, bytes]:
    """One POST over HTTPS, as Falco's http_output sends it (libcurl, Content-Type: application/json)."""
    conn = http.client.HTTPSConnection(HOST, port, timeout=WAIT, context=context)
    try:
        conn.request("POST", "/", body=body, headers={"Content-Type": "application/json",
                                                      "User-Agent": "falcosecurity/falco"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def refused(port: int, context: ssl.SSLContext) -> str:
    """The POST fails at the TLS layer (handshake, or the server's alert right after it with TLS 1.3)."""
    try:
        status, _ = post(port, falco_alert(), context)
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected, OSError) as e:
        return type(e).__name__ + ": " + str(e)
    pytest.fail(f"the POST was answered ({status}); expected the TLS handshake to be refused")


@pytest.fixture
def brokerd(tmp_path):
    """brokerd alone (the Falco endpoint is brokerd's), with a Falco port in the config."""
    target = resolve_target("brokerd")
    if target.skip_reason:
        pytest.skip(f"brokerd: {target.skip_reason}")
    started = []

    def make(falco_block: str, extra_config: str = ""):
        falco_port = free_port()
        config = f"falco {{\n  http_port: {falco_port}\n{falco_block}\n}}\n{extra_config}"
        s = start_server(target, tmp_path / f"brokerd-{len(started)}", [], config=config, seq=len(started))
        started.append(s)
        assert wait_for_port(falco_port), "the Falco HTTPS port never opened"
        s.falco_port = falco_port
        return s

    yield make
    for s in started:
        s.terminate()


async def subscribe_falco(server):
    import nats
    nc = await nats.connect(server.url, allow_reconnect=False, connect_timeout=5)
    got = []

    async def cb(m):
        got.append(m)

    await nc.subscribe("FALCO.>", cb=cb)
    await nc.flush()
    return nc, got


async def wait_for(got: list, n: int):
    deadline = time.monotonic() + WAIT
    while len(got) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return got


# --------------------------------------------------------------------------
# Falco http_output over HTTPS
# --------------------------------------------------------------------------


async def test_falco_https_accepts_alerts_and_refuses_plain_http(brokerd, pki):
    s = brokerd(server_block(pki["server"]).replace("tls {", "  tls {"))
    nc, got = await subscribe_falco(s)
    try:
        # Falco: url: https://..., ca_cert: <the CA>.
        status, body = post(s.falco_port, falco_alert(), client_context(pki["ca"]))
        assert status == 200, body
        assert json.loads(body) == {"accepted": 1}
        msgs = await wait_for(got, 1)
        assert [m.subject for m in msgs] == ["FALCO.Warning"]
        assert json.loads(msgs[0].data)["rule"] == "Terminal shell in container"
        # A client that does not trust the server's CA refuses it.
        refused(s.falco_port, client_context(pki["other"]))
        # Plain HTTP on the HTTPS port gets no HTTP answer.
        conn = http.client.HTTPConnection(HOST, s.falco_port, timeout=WAIT)
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            conn.request("POST", "/", body=falco_alert(), headers={"Content-Type": "application/json"})
            conn.getresponse().read()
        conn.close()
        # None of that published anything more.
        await nc.flush()
        assert len(got) == 1
    finally:
        await nc.close()


async def test_falco_mtls_requires_a_trusted_client_certificate(brokerd, pki):
    block = server_block(pki["server"], pki["ca"], verify=True)
    s = brokerd("  " + block)
    nc, got = await subscribe_falco(s)
    try:
        # Falco: mtls: true, client_cert, client_key, ca_cert.
        status, body = post(s.falco_port, falco_alert(), client_context(pki["ca"], pki["falco"]))
        assert status == 200, body
        # No client certificate, or one from another CA: refused during the handshake.
        refused(s.falco_port, client_context(pki["ca"]))
        refused(s.falco_port, client_context(pki["ca"], pki["stranger"]))
        # The endpoint still works for the trusted client afterwards.
        status, _ = post(s.falco_port, falco_alert("Second"), client_context(pki["ca"], pki["falco"]))
        assert status == 200
        msgs = await wait_for(got, 2)
        assert [json.loads(m.data)["rule"] for m in msgs] == ["Terminal shell in container", "Second"]
    finally:
        await nc.close()


async def test_falco_pinned_certs(brokerd, pki):
    other_client = pki["ca"].issue("other-client", cn="other")
    block = server_block(pki["server"], pki["ca"], verify=True, pinned_certs=[pki["falco"].spki_sha256])
    s = brokerd("  " + block)
    status, body = post(s.falco_port, falco_alert(), client_context(pki["ca"], pki["falco"]))
    assert status == 200, body
    # Trusted by the CA but not pinned: the connection is closed without an answer.
    refused(s.falco_port, client_context(pki["ca"], other_client))


def test_falco_tls_block_errors_stop_brokerd(tmp_path, pki):
    target = resolve_target("brokerd")
    if target.skip_reason:
        pytest.skip(f"brokerd: {target.skip_reason}")
    missing = tmp_path / "missing.pem"
    config = (f"falco {{\n  http_port: {free_port()}\n  tls {{\n    cert_file: \"{missing}\"\n"
              f"    key_file: \"{pki['server'].key_file}\"\n  }}\n}}\n")
    with pytest.raises(ServerStartError) as e:
        start_server(target, tmp_path / "bad", [], config=config, ready_timeout=5)
    assert f"open {missing}: no such file or directory" in str(e.value)


# --------------------------------------------------------------------------
# The monitor on https_port, beside nats-server
# --------------------------------------------------------------------------


def https_get(port: int, path: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection(HOST, port, timeout=WAIT, context=context)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.mark.parametrize("verify", [False, True], ids=["tls", "tls-verify"])
def test_monitor_on_https_port(server_factory, pki, verify):
    https_port = free_port()
    block = server_block(pki["server"], pki["ca"], verify=verify) if verify else server_block(pki["server"])
    s = server_factory(config=block + f"https_port: {https_port}\n")
    assert wait_for_port(https_port)
    # As nats-server: the top-level certificate, and no client certificate asked for even with verify: true.
    status, body = https_get(https_port, "/varz", client_context(pki["ca"]))
    assert status == 200
    varz = json.loads(body)
    assert varz["https_port"] == https_port
    assert varz["http_port"] == 0
    status, body = https_get(https_port, "/healthz", client_context(pki["ca"]))
    assert status == 200 and json.loads(body)["status"] == "ok"
    # The server's certificate is checked as any HTTPS client would.
    with pytest.raises(ssl.SSLError):
        https_get(https_port, "/varz", client_context(pki["other"]))
    # No plain HTTP on it.
    conn = http.client.HTTPConnection(HOST, https_port, timeout=WAIT)
    try:
        conn.request("GET", "/varz")
        assert conn.getresponse().status == 400  # Go's "Client sent an HTTP request to an HTTPS server"
    except (http.client.HTTPException, ConnectionError, OSError):
        pass  # brokerd: the TLS handler drops the connection
    finally:
        conn.close()
    assert s.proc.poll() is None


def test_monitor_https_refusals_at_start(server_factory, pki, target):
    both = server_block(pki["server"]) + f"http_port: {free_port()}\nhttps_port: {free_port()}\n"
    with pytest.raises(ServerStartError) as e:
        server_factory(config=both)
    assert "can't specify both HTTP (" in str(e.value)
    with pytest.raises(ServerStartError) as e:
        server_factory(config=f"https_port: {free_port()}\n")
    assert "TLS cert and key required for HTTPS" in str(e.value)


def served_certificate(port: int, ca: CA) -> bytes:
    """The DER certificate a new TLS connection to `port` is shown."""
    import socket
    ctx = client_context(ca)
    with socket.create_connection((HOST, port), timeout=WAIT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True)


def test_sighup_rotates_the_falco_and_monitor_certificates(tmp_path, pki):
    """cert-manager rewrites the files; SIGHUP makes both HTTPS listeners serve the new certificate to new
    connections (no restart), and an alert still gets through."""
    import signal
    target = resolve_target("brokerd")
    if target.skip_reason:
        pytest.skip(target.skip_reason)
    ca, server = pki["ca"], pki["server"]
    falco_port, https_port = free_port(), free_port()
    block = server_block(server)
    config = (f"https_port: {https_port}\n{block}\n"
              f"falco {{\n  http_port: {falco_port}\n{block.replace('tls {', '  tls {')}\n}}\n")
    s = start_server(target, tmp_path / "b", [], config=config)
    try:
        assert wait_for_port(falco_port) and wait_for_port(https_port)
        before = served_certificate(falco_port, ca)
        assert before == server.der and served_certificate(https_port, ca) == server.der
        rotated = ca.issue("server", cn="localhost", dns=["localhost"], ips=["127.0.0.1"],
                           cert_file=server.cert_file, key_file=server.key_file)
        assert rotated.der != before
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        while served_certificate(falco_port, ca) != rotated.der and time.monotonic() < deadline:
            time.sleep(0.1)
        assert served_certificate(falco_port, ca) == rotated.der
        assert served_certificate(https_port, ca) == rotated.der
        status, _ = post(falco_port, falco_alert(), client_context(ca))
        assert status == 200
    finally:
        s.terminate()


def test_rotated_certificate_files_are_picked_up_without_a_signal(tmp_path, pki):
    """No SIGHUP (nothing sends one in a pod): brokerd notices the certificate files changed (within ~10 s) and
    serves the new certificate on the client port and the Falco endpoint; a client connected before keeps its
    session."""
    import socket
    target = resolve_target("brokerd")
    if target.skip_reason:
        pytest.skip(target.skip_reason)
    ca, server = pki["ca"], pki["server"]
    falco_port = free_port()
    block = server_block(server)
    config = f"{block}\nfalco {{\n  http_port: {falco_port}\n{block.replace('tls {', '  tls {')}\n}}\n"
    s = start_server(target, tmp_path / "b", [], config=config, ready="port")
    try:
        assert wait_for_port(falco_port)
        # A TLS client on the NATS port, connected before the rotation.
        raw = socket.create_connection((HOST, s.port), timeout=WAIT)
        raw.recv(4096)  # INFO in the clear
        old = client_context(ca).wrap_socket(raw, server_hostname="localhost")
        old.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
        assert b"PONG" in old.recv(4096)
        rotated = ca.issue("server", cn="localhost", dns=["localhost"], ips=["127.0.0.1"],
                           cert_file=server.cert_file, key_file=server.key_file)
        deadline = time.monotonic() + 40
        while served_certificate(falco_port, ca) != rotated.der and time.monotonic() < deadline:
            time.sleep(0.5)
        assert served_certificate(falco_port, ca) == rotated.der
        assert "Certificate files changed" in s.log_text()
        old.sendall(b"PING\r\n")
        assert b"PONG" in old.recv(4096)
        old.close()
    finally:
        s.terminate()
