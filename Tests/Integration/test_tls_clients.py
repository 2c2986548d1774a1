"""brokerd's own clients over TLS: `brokerd falco-pipe` and `brokerd bridge` with tls:// URLs and --tlsca,
--tlscert, --tlskey (--tlsfirst), and the Pub/Sub bridge brokerd runs itself, which reaches its own TLS port
over loopback. Certificates are made at run time (tls_certs.py); brokerd only (these are brokerd's programs).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import nats
import pytest

from harness import resolve_target, start_server
from pubsub_emulator import emulator_script
from test_bridge import PROJECT, SUB, TOPIC, bridge_conf, emulator, post_all, start_brokerd, wait_bridge  # noqa: F401
from test_falco import alerts
from tls_certs import CA, client_context, server_block


@pytest.fixture
def pki(tmp_path):
    ca = CA(tmp_path / "pki", "brokerd test CA")
    return {
        "ca": ca,
        # The server's certificate allows client authentication too (tls_certs issues serverAuth + clientAuth):
        # the bridge inside brokerd presents it when the port verifies clients.
        "server": ca.issue("server", cn="localhost", dns=["localhost"], ips=["127.0.0.1"]),
        "falco": ca.issue("falco-pipe", cn="falco-pipe"),
    }


def brokerd_target():
    t = resolve_target("brokerd")
    if t.skip_reason:
        pytest.skip(f"brokerd: {t.skip_reason}")
    return t


def tls_url(s) -> str:
    return f"tls://127.0.0.1:{s.port}"


async def test_falco_pipe_over_mtls(tmp_path, pki):
    t = brokerd_target()
    s = start_server(t, tmp_path / "b", [], config=server_block(pki["server"], pki["ca"], verify=True))
    try:
        nc = await nats.connect(tls_url(s), tls=client_context(pki["ca"], pki["falco"]), allow_reconnect=False)
        got = []

        async def cb(m):
            got.append(m.data)

        await nc.subscribe("FALCO.>", cb=cb)
        await nc.flush()
        sent = alerts()[:200]
        argv = [t.binary, "falco-pipe", "--server", tls_url(s), "--tlsca", str(pki["ca"].file),
                "--tlscert", str(pki["falco"].cert_file), "--tlskey", str(pki["falco"].key_file)]
        r = await asyncio.to_thread(subprocess.run, argv, input=b"".join(a + b"\n" for a in sent),
                                    capture_output=True, timeout=60)
        err = r.stderr.decode()
        assert r.returncode == 0, err
        assert f"{len(sent)} accepted, 0 rejected, 0 dropped" in err
        deadline = time.monotonic() + 20
        while len(got) < len(sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert sorted(got) == sorted(sent)  # --window alerts in flight: the order may change
        await nc.close()
    finally:
        s.terminate()


async def test_falco_pipe_tls_file_problems_stop_it(tmp_path, pki):
    t = brokerd_target()
    s = start_server(t, tmp_path / "b", [], config=server_block(pki["server"]))
    try:
        missing = tmp_path / "missing-ca.pem"
        r = await asyncio.to_thread(subprocess.run, [t.binary, "falco-pipe", "--server", tls_url(s), "--tlsca",
                                                     str(missing)], input=b"", capture_output=True, timeout=30)
        assert r.returncode == 1
        assert "falco-pipe: TLS:" in r.stderr.decode()
        # --tlscert without --tlskey: a usage error.
        r = await asyncio.to_thread(subprocess.run, [t.binary, "falco-pipe", "--tlscert", str(pki["falco"].cert_file)],
                                    input=b"", capture_output=True, timeout=30)
        assert r.returncode == 64 or r.returncode == 2, r.stderr.decode()
        assert "--tlscert and --tlskey go together" in r.stderr.decode()
    finally:
        s.terminate()


def test_help_shows_the_tls_flags():
    t = brokerd_target()
    for sub in ("falco-pipe", "bridge"):
        out = subprocess.run([t.binary, sub, "--help"], capture_output=True, timeout=30).stdout.decode()
        for flag in ("--tlsca", "--tlscert", "--tlskey", "--tlsfirst"):
            assert flag in out, f"{sub} --help lacks {flag}"


@pytest.mark.skipif(emulator_script() is None, reason="the Pub/Sub emulator is not installed")
@pytest.mark.parametrize("tls_options", [dict(verify=True), dict(verify=True, handshake_first=True)],
                         ids=["verify", "verify-handshake-first"])
async def test_bridge_inside_brokerd_reaches_its_own_tls_port(tmp_path, pki, emulator, tls_options):  # noqa: F811
    conf = server_block(pki["server"], pki["ca"], **tls_options) + bridge_conf(tmp_path / "store", emulator)
    t = brokerd_target()
    from harness import free_port, wait_for_port
    falco = free_port()
    s = start_server(t, tmp_path / "b", ["--falco_http_port", str(falco)], config=conf, http=True,
                     ready="port" if tls_options.get("handshake_first") else "info")
    try:
        assert wait_for_port(falco)
        wait_bridge(s, lambda b: b["ready"])
        sent = alerts()[:300]
        assert await asyncio.to_thread(post_all, falco, sent) == [200] * len(sent)
        got = await asyncio.to_thread(emulator.pull_until, PROJECT, SUB, len(sent), 60, 0.5)
        assert sorted(m["data"] for m in got) == sorted(sent)
    finally:
        s.terminate()


@pytest.mark.skipif(emulator_script() is None, reason="the Pub/Sub emulator is not installed")
async def test_standalone_bridge_over_mtls(tmp_path, pki, emulator):  # noqa: F811
    t = brokerd_target()
    conf = server_block(pki["server"], pki["ca"], verify=True)
    s = start_server(t, tmp_path / "b", ["-js", "-sd", str(tmp_path / "store")], config=conf)
    bconf = tmp_path / "bridge.conf"
    bconf.write_text(f'gcp_pubsub {{\n  project: "{PROJECT}"\n  topic: "{TOPIC}"\n  subjects: ["FALCO.>"]\n'
                     f'  endpoint: "http://{emulator.host}"\n}}\n')
    bridge = subprocess.Popen([t.binary, "bridge", "-c", str(bconf), "--server", tls_url(s),
                               "--tlsca", str(pki["ca"].file), "--tlscert", str(pki["falco"].cert_file),
                               "--tlskey", str(pki["falco"].key_file)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    nc = await nats.connect(tls_url(s), tls=client_context(pki["ca"], pki["falco"]))
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the bridge creates the stream
            try:
                await js.stream_info("BRIDGE_FALCO-ALERTS")
                break
            except nats.js.errors.NotFoundError:
                await asyncio.sleep(0.1)
        sent = alerts()[:200]
        for a in sent:
            await js.publish("FALCO." + json.loads(a)["priority"], a, timeout=10)
        got = await asyncio.to_thread(emulator.pull_until, PROJECT, SUB, len(sent), 60, 0.5)
        assert sorted(m["data"] for m in got) == sorted(sent)
    finally:
        await nc.close()
        bridge.terminate()
        out = bridge.communicate(timeout=20)[0].decode()
        s.terminate()
    assert bridge.returncode == 0, out[-2000:]
    assert "bridged=200" in out.replace('"', ""), out[-2000:]
