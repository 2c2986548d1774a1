"""Falco ingestion: http_output (HTTP POST), falco-pipe (program_output), falcosidekick's NATS subjects, and
nats-server's `mappings { }` block. Real Falco alerts from ../shared/falco, real sockets, nats-py subscribers.

brokerd-only features run against brokerd alone; `mappings` runs on both servers.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest

from harness import HOST, free_port, resolve_target, start_server, wait_for_port

def _falco_data() -> Path:
    """../shared/falco next to the repository when it is there; otherwise the copy in falco_data/, whose
    deterministic generator writes the same 5,000 alerts (byte for byte) once into .build/."""
    repo = Path(__file__).resolve().parents[2]
    shared = repo.parent / "shared" / "falco"
    if (shared / "alerts.jsonl").exists() and (shared / "bad_alerts.jsonl").exists():
        return shared
    vendored = Path(__file__).resolve().parent / "falco_data"
    cache = repo / ".build" / "falco_data"
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / "alerts.jsonl"
    if not target.exists():
        data = subprocess.run([sys.executable, str(vendored / "make_alerts.py"), "5000"], check=True,
                              capture_output=True).stdout
        tmp = cache / "alerts.jsonl.tmp"
        tmp.write_bytes(data)
        tmp.replace(target)
    bad = cache / "bad_alerts.jsonl"
    if not bad.exists():
        bad.write_bytes((vendored / "bad_alerts.jsonl").read_bytes())
    return cache


FALCO_DATA = _falco_data()
PRIORITIES = ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"]
WAIT = 20


def alerts() -> list[bytes]:
    return [line.rstrip(b"\n") for line in (FALCO_DATA / "alerts.jsonl").read_bytes().splitlines(keepends=True)]


def bad_alerts() -> list[bytes]:
    return [line.rstrip(b"\n") for line in (FALCO_DATA / "bad_alerts.jsonl").read_bytes().splitlines(keepends=True)]


def canonical(priority: str) -> str:
    return next(p for p in PRIORITIES if p.lower() == priority.lower())


@pytest.fixture
def brokerd(tmp_path):
    """Starts brokerd (only) with a Falco HTTP port; returns a factory."""
    target = resolve_target("brokerd")
    if target.skip_reason:
        pytest.skip(f"brokerd: {target.skip_reason}")
    started = []

    def make(*args: str, config: str | None = None, falco_port: bool = True, seq: int = 0):
        falco = free_port() if falco_port else None
        extra = list(args) + (["--falco_http_port", str(falco)] if falco else [])
        s = start_server(target, tmp_path / f"brokerd-{len(started)}", extra, config=config, http=True,
                         seq=len(started))
        s.falco_port = falco
        if falco:
            assert wait_for_port(falco), "the Falco HTTP port never opened"
        started.append(s)
        return s

    yield make
    for s in started:
        s.terminate()


class Poster:
    """One keep-alive HTTP connection to the Falco endpoint."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection(HOST, port, timeout=WAIT)

    def post(self, body: bytes, content_type: str = "application/json", path: str = "/"):
        self.conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        r = self.conn.getresponse()
        data = r.read()
        return r.status, dict(r.getheaders()), data

    def close(self):
        self.conn.close()


def varz(server) -> dict:
    c = http.client.HTTPConnection(HOST, server.http_port, timeout=5)
    c.request("GET", "/varz")
    return json.loads(c.getresponse().read())


class Collector:
    def __init__(self):
        self.msgs = []

    async def cb(self, m):
        self.msgs.append(m)

    async def wait_for(self, n: int, timeout: float = WAIT):
        deadline = time.monotonic() + timeout
        while len(self.msgs) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.msgs


async def test_http_output_alerts_reach_wildcard_and_priority_subscribers_byte_identical(brokerd):
    s = brokerd()
    nc = await nats.connect(s.url)
    try:
        star, full, critical = Collector(), Collector(), Collector()
        await nc.subscribe("FALCO.*", cb=star.cb)
        await nc.subscribe("FALCO.>", cb=full.cb)
        await nc.subscribe("FALCO.Critical", cb=critical.cb)
        await nc.flush()
        sent = alerts()

        def post_all():
            p = Poster(s.falco_port)
            try:
                return [p.post(a)[0] for a in sent]
            finally:
                p.close()

        statuses = await asyncio.to_thread(post_all)
        assert statuses == [200] * len(sent)
        expected_critical = [a for a in sent if json.loads(a)["priority"] == "Critical"]
        await star.wait_for(len(sent))
        await full.wait_for(len(sent))
        await critical.wait_for(len(expected_critical))
        await asyncio.sleep(0.2)
        for got in (star.msgs, full.msgs):
            assert [m.data for m in got] == sent, "every alert, byte-identical and in order"
            assert [m.subject for m in got] == ["FALCO." + json.loads(a)["priority"] for a in sent]
        assert [m.data for m in critical.msgs] == expected_critical
        first = json.loads(sent[0])
        h = star.msgs[0].headers
        assert h["Falco-Priority"] == first["priority"]
        assert h["Falco-Rule"] == first["rule"]
        assert h["Falco-Hostname"] == first["hostname"]
        assert h["Falco-Source"] == first["source"]
        assert h["Nats-Msg-Id"] == "sha256:" + hashlib.sha256(sent[0]).hexdigest()[:32]
        assert len({m.headers["Nats-Msg-Id"] for m in star.msgs}) == len(sent)
        v = varz(s)["falco"]["ingest"]["http"]
        assert v["accepted"] == len(sent) and v["rejected"] == 0
    finally:
        await nc.close()


async def test_bad_alerts_get_a_clear_error_and_the_alerts_around_them_arrive(brokerd):
    s = brokerd()
    nc = await nats.connect(s.url)
    try:
        got = Collector()
        await nc.subscribe("FALCO.>", cb=got.cb)
        await nc.flush()
        good = alerts()[:13]
        bad = bad_alerts()
        assert len(bad) == 12
        valid_cases = {7: "Notice", 12: "Error"}  # lower-case priority maps; unicode is fine
        p = Poster(s.falco_port)
        expected = [good[0]]
        results = {}
        try:
            assert p.post(good[0])[0] == 200
            for i, body in enumerate(bad, start=1):
                status, headers, data = p.post(body)
                results[i] = (status, json.loads(data))
                assert p.post(good[i])[0] == 200
                if i in valid_cases:
                    expected.append(body)
                expected.append(good[i])
        finally:
            p.close()
        for i, (status, answer) in results.items():
            if i in valid_cases:
                assert status == 200, (i, answer)
            else:
                assert status == 400, (i, answer)
                assert answer["error"], (i, answer)
        reasons = {i: results[i][1]["rejected"][0]["reason"] for i in results if i not in valid_cases}
        assert reasons == {1: "not_an_object", 2: "invalid_json", 3: "not_an_object", 4: "missing_priority",
                           5: "unknown_priority", 6: "bad_priority", 8: "unknown_priority", 9: "bad_field",
                           10: "missing_priority", 11: "empty"}
        assert "Catastrophic" in results[5][1]["error"]
        await got.wait_for(len(expected))
        await asyncio.sleep(0.2)
        assert [m.data for m in got.msgs] == expected
        by_body = {m.data: m for m in got.msgs}
        assert by_body[bad[6]].subject == "FALCO.Notice"
        assert by_body[bad[6]].headers["Falco-Priority"] == "Notice"
        assert by_body[bad[11]].headers["Falco-Hostname"] == "узел-1"
        v = varz(s)["falco"]["ingest"]["http"]
        assert v["rejected"] == 10
        assert v["rejected_by_reason"]["unknown_priority"] == 2
        assert v["accepted"] == len(expected)
    finally:
        await nc.close()


async def test_batches_are_all_or_nothing_and_http_errors(brokerd):
    s = brokerd(config="falco {\n  max_body: 64KB\n}\n")
    nc = await nats.connect(s.url)
    try:
        got = Collector()
        await nc.subscribe("FALCO.>", cb=got.cb)
        await nc.flush()
        batch = alerts()[:20]
        p = Poster(s.falco_port)
        try:
            status, _, data = p.post(b"\n".join(batch) + b"\n", "application/x-ndjson")
            assert (status, json.loads(data)) == (200, {"accepted": 20})
            poisoned = batch[:5] + [b'{"priority": "Nope"}'] + batch[5:10]
            status, _, data = p.post(b"\n".join(poisoned), "application/x-ndjson")
            answer = json.loads(data)
            assert status == 400
            assert answer["rejected"] == [{"line": 6, "reason": "unknown_priority", "error": answer["rejected"][0]["error"]}]
            assert "none was published" in answer["error"]
            status, _, _ = p.post(b"<html/>", "text/html")
            assert status == 415
        finally:
            p.close()
        # Over max_body: 413 (and the connection is closed).
        p = Poster(s.falco_port)
        try:
            status, headers, data = p.post(b"\n".join(alerts()[:200]), "application/x-ndjson")
            assert status == 413
            assert "limit" in json.loads(data)["error"]
        finally:
            p.close()
        c = http.client.HTTPConnection(HOST, s.falco_port, timeout=5)
        c.request("GET", "/")
        assert c.getresponse().status == 405
        c.close()
        c = http.client.HTTPConnection(HOST, s.falco_port, timeout=5)
        c.request("GET", "/healthz")
        assert c.getresponse().status == 200
        c.close()
        await got.wait_for(20)
        await asyncio.sleep(0.3)
        assert [m.data for m in got.msgs] == batch, "the good batch only"
        reasons = varz(s)["falco"]["ingest"]["http"]["rejected_by_reason"]
        assert reasons == {"unknown_priority": 1, "unsupported_media_type": 1, "too_large": 1}
    finally:
        await nc.close()


async def test_accepted_means_stored_and_a_full_store_answers_503(brokerd, tmp_path):
    store = tmp_path / "store"
    s = brokerd(config=f'jetstream {{\n  store_dir: "{store}"\n  max_file_store: 64KB\n}}\n')
    nc = await nats.connect(s.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="FALCO", subjects=["FALCO.>"])
        p = Poster(s.falco_port)
        accepted = 0
        last = None
        try:
            for a in alerts()[:200]:
                last = p.post(a)
                if last[0] != 200:
                    break
                accepted += 1
        finally:
            p.close()
        assert last[0] == 503, last
        assert last[1].get("Retry-After") == "1"
        assert "insufficient resources" in json.loads(last[2])["error"]
        assert 20 < accepted < 200
        info = await js.stream_info("FALCO")
        assert info.state.messages == accepted, "every 200 is in the stream, nothing else"
        m = await js.get_msg("FALCO", 1)
        assert m.data == alerts()[0]
        assert m.headers["Nats-Msg-Id"].startswith("sha256:")
    finally:
        await nc.close()


def brokerd_binary() -> str:
    t = resolve_target("brokerd")
    if t.skip_reason:
        pytest.skip(f"brokerd: {t.skip_reason}")
    return t.binary


async def test_falco_pipe_survives_a_restart_and_delivers_every_alert(brokerd, tmp_path):
    store = tmp_path / "store"
    conf = f'jetstream {{\n  store_dir: "{store}"\n}}\n'
    s = brokerd(config=conf, falco_port=False)
    nc = await nats.connect(s.url)
    await nc.jetstream().add_stream(name="FALCO", subjects=["FALCO.>"])
    await nc.close()
    sent = alerts()
    pipe = subprocess.Popen([brokerd_binary(), "falco-pipe", "--server", s.url, "--timeout", "2"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        half = len(sent) // 2
        pipe.stdin.write(b"".join(a + b"\n" for a in sent[:half]))
        pipe.stdin.flush()
        await asyncio.sleep(0.3)
        # Restart brokerd on the same port while alerts are in flight.
        assert s.terminate() == 0
        pipe.stdin.write(b"".join(a + b"\n" for a in sent[half:half + 500]))
        pipe.stdin.flush()
        await asyncio.sleep(0.5)
        again = subprocess.Popen(s.args, stdin=subprocess.DEVNULL, stdout=open(tmp_path / "again.out", "wb"),
                                 stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rest = b"".join(a + b"\n" for a in sent[half + 500:])
            out, err = await asyncio.to_thread(pipe.communicate, rest, 120)
            assert pipe.returncode == 0, err.decode()[-3000:]
            assert f"{len(sent)} accepted, 0 rejected, 0 dropped".encode() in err
            nc = await nats.connect(s.url)
            try:
                js = nc.jetstream()
                info = await js.stream_info("FALCO")
                assert info.state.messages == len(sent), "every alert exactly once (retries dedupe by Nats-Msg-Id)"
                psub = await js.pull_subscribe("FALCO.>", durable="check")
                seen = []
                while len(seen) < len(sent):
                    batch = await psub.fetch(500, timeout=5)
                    seen += [m.data for m in batch]
                    for m in batch:
                        await m.ack()
                assert sorted(seen) == sorted(sent)
            finally:
                await nc.close()
        finally:
            again.terminate()
            again.wait(timeout=10)
    finally:
        if pipe.poll() is None:
            pipe.kill()


async def test_falco_pipe_reports_rejected_lines(brokerd):
    s = brokerd(falco_port=False)
    nc = await nats.connect(s.url)
    try:
        got = Collector()
        await nc.subscribe("FALCO.>", cb=got.cb)
        await nc.flush()
        lines = alerts()[:3] + bad_alerts()
        r = await asyncio.to_thread(subprocess.run, [brokerd_binary(), "falco-pipe", "--server", s.url, "--window", "1"],
                                    input=b"\n".join(lines) + b"\n", capture_output=True, timeout=60)
        err = r.stderr.decode()
        assert r.returncode == 0, err
        assert "5 accepted, 10 rejected, 0 dropped" in err
        assert "line 8 rejected: unknown priority \"Catastrophic\"" in err
        await got.wait_for(5)
        assert [m.data for m in got.msgs] == alerts()[:3] + [bad_alerts()[6], bad_alerts()[11]]
        v = varz(s)["falco"]["ingest"]["pipe"]
        assert (v["accepted"], v["rejected"]) == (5, 10)
    finally:
        await nc.close()


def duplicate_key_alerts() -> list[tuple[bytes, str]]:
    """Real alerts made ambiguous: a key brokerd routes or labels by (priority, rule, hostname, source, uuid) twice,
    as JSON readers disagree on which value counts (Go's encoding/json, falcosidekick's, also matches keys ignoring
    case). Each with the key brokerd names in its error."""
    a = alerts()[0]
    assert a.startswith(b'{"') and a.endswith(b"}") and b'"priority":"Error"' in a

    def before_end(extra: bytes) -> bytes:
        return a[:-1] + b"," + extra + b"}"

    return [
        (b'{"priority":"Emergency",' + a[1:], "priority"),  # the first one wins for some readers, the last for others
        (before_end(b'"priority":"Debug"'), "priority"),
        (before_end(b'"PRIORITY":"Emergency"'), "PRIORITY"),
        (before_end(b'"pri\\u006frity":"Emergency"'), "priority"),  # the same key, escaped
        (before_end(b'"rule":"Something harmless"'), "rule"),
        (before_end(b'"hostname":"elsewhere"'), "hostname"),
        (before_end(b'"source":"k8s_audit"'), "source"),
        (before_end(b'"uuid":"a","uuid":"b"'), "uuid"),
    ]


def repeated_but_unrouted_alert() -> bytes:
    """Repeats brokerd does not route or label by: accepted as they are."""
    a = alerts()[1]
    return a[:-1] + b',"tags":["again"],"output_fields":{"priority":"Debug","priority":"Emergency"}}'


async def test_duplicate_routed_keys_are_rejected_on_every_path(brokerd):
    """HTTP: 400 with the reason; falco-pipe: the line reported and counted; falcosidekick's subjects: counted and
    not published. The alerts around them arrive, nothing is published for them."""
    cases = duplicate_key_alerts()
    unrouted = repeated_but_unrouted_alert()
    good = alerts()[2:2 + len(cases) + 1]
    s = brokerd(config="falco {\n  map_sidekick_subjects: true\n}\n")
    nc = await nats.connect(s.url)
    try:
        got = Collector()
        await nc.subscribe("FALCO.>", cb=got.cb)
        await nc.flush()

        # HTTP http_output, one alert per request.
        p = Poster(s.falco_port)
        try:
            assert p.post(good[0])[0] == 200
            for i, (body, key) in enumerate(cases, start=1):
                status, _, data = p.post(body)
                answer = json.loads(data)
                assert status == 400, (key, answer)
                assert answer["rejected"][0]["reason"] == "duplicate_key", answer
                assert answer["error"].startswith(f'duplicate key "{key}"'), answer
                assert p.post(good[i])[0] == 200
            assert p.post(unrouted)[0] == 200
            # In a batch, one ambiguous alert refuses the batch.
            status, _, data = p.post(b"\n".join([good[0], cases[0][0]]), "application/x-ndjson")
            assert status == 400 and json.loads(data)["rejected"][0] == {
                "line": 2, "reason": "duplicate_key", "error": json.loads(data)["rejected"][0]["error"]}
        finally:
            p.close()
        expected = good + [unrouted]
        await got.wait_for(len(expected))
        assert [m.data for m in got.msgs] == expected
        assert got.msgs[-1].subject == "FALCO." + canonical(json.loads(unrouted)["priority"])

        # falco-pipe: each rejected line on stderr with its reason; the good ones delivered.
        lines = [good[0]] + [body for body, _ in cases] + [good[1]]
        r = await asyncio.to_thread(subprocess.run, [brokerd_binary(), "falco-pipe", "--server", s.url, "--window", "1"],
                                    input=b"\n".join(lines) + b"\n", capture_output=True, timeout=60)
        err = r.stderr.decode()
        assert r.returncode == 0, err
        assert f"2 accepted, {len(cases)} rejected, 0 dropped" in err
        for n, (_, key) in enumerate(cases, start=2):
            assert f'line {n} rejected: duplicate key "{key}"' in err, err

        # falcosidekick's NATS output: counted, not published; the next alert arrives.
        for body, _ in cases:
            sidekick_publish(s.port, "falco.debug.x", body)
        sidekick_publish(s.port, "falco.error.modify_binary_dirs", good[2])
        expected += [good[0], good[1], good[2]]
        await got.wait_for(len(expected))
        assert [m.data for m in got.msgs] == expected

        v = varz(s)["falco"]["ingest"]
        assert v["http"]["rejected_by_reason"] == {"duplicate_key": len(cases) + 1}
        assert v["pipe"]["rejected_by_reason"] == {"duplicate_key": len(cases)}
        assert v["sidekick"]["rejected_by_reason"] == {"duplicate_key": len(cases)}
    finally:
        await nc.close()


def sidekick_publish(port: int, subject: str, payload: bytes, user: str | None = None,
                     password: str | None = None) -> bytes:
    """What falcosidekick's NATS output does: a new connection per alert, one PUB, then close (with its user
    when given). Returns what came back up to the PONG."""
    connect = {"verbose": False, "pedantic": False}
    if user is not None:
        connect.update(user=user, **{"pass": password})
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.recv(4096)  # INFO
        sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\n"
                     + f"PUB {subject} {len(payload)}\r\n".encode() + payload + b"\r\nPING\r\n")
        buf = b""
        while b"PONG" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf


async def test_sidekick_subjects_map_with_one_connection_per_alert_and_no_leak(brokerd):
    s = brokerd(config="falco {\n  map_sidekick_subjects: true\n}\n", falco_port=False)
    nc = await nats.connect(s.url)
    try:
        got = Collector()
        await nc.subscribe("FALCO.>", cb=got.cb)
        await nc.flush()
        sent = alerts()[:2000]

        def fds() -> int:
            return len(os.listdir(f"/proc/{s.proc.pid}/fd"))

        def rss_kb() -> int:
            for line in open(f"/proc/{s.proc.pid}/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
            return 0

        def run(batch):
            for a in batch:
                d = json.loads(a)
                slug = d["rule"].lower().replace(" ", "_")
                sidekick_publish(s.port, f"falco.{d['priority'].lower()}.{slug}", a)

        await asyncio.to_thread(run, sent[:100])
        await got.wait_for(100)
        before = fds()
        rss_before = rss_kb()
        await asyncio.to_thread(run, sent[100:])
        sidekick_publish(s.port, "falco.catastrophic.x", b'{"priority":"Catastrophic"}')
        await got.wait_for(len(sent))
        await asyncio.sleep(0.5)
        assert [m.data for m in got.msgs] == sent
        assert [m.subject for m in got.msgs] == ["FALCO." + json.loads(a)["priority"] for a in sent]
        assert got.msgs[0].headers["Falco-Rule"] == json.loads(sent[0])["rule"]
        v = varz(s)
        assert v["falco"]["ingest"]["sidekick"]["accepted"] == len(sent)
        assert v["falco"]["ingest"]["sidekick"]["rejected_by_reason"] == {"unknown_priority": 1}
        assert v["connections"] == 1, "only the subscriber is left"
        assert fds() <= before + 2, "no descriptor leak over 1,900 connections"
        # Memory: 1,900 connections that each held an alert must not stay behind (a leaked connection with its
        # buffers is tens of KB: 1,900 of them would be well over this).
        assert rss_kb() - rss_before < 16 * 1024, f"RSS grew by {rss_kb() - rss_before} KB"
    finally:
        await nc.close()


async def test_mappings_block_rewrites_subjects(server_factory):
    s = server_factory(config='mappings {\n  "orders.*.*": "o.{{wildcard(2)}}.{{wildcard(1)}}"\n'
                              '  "legacy.alerts": "FALCO.Notice"\n  "a.>": "b.>"\n}\n')
    nc = await nats.connect(s.url)
    try:
        got = Collector()
        for subject in ("o.>", "FALCO.Notice", "b.>", "orders.>", "a.>"):
            await nc.subscribe(subject, cb=got.cb)
        await nc.flush()
        await nc.publish("orders.eu.42", b"1")
        await nc.publish("legacy.alerts", b"2")
        await nc.publish("a.x.y", b"3")
        await nc.flush()
        await got.wait_for(3)
        await asyncio.sleep(0.2)
        assert sorted((m.subject, m.data) for m in got.msgs) == [
            ("FALCO.Notice", b"2"), ("b.x.y", b"3"), ("o.42.eu", b"1")]
    finally:
        await nc.close()


def test_idle_and_half_sent_connections_are_closed(brokerd):
    s = brokerd(config='falco {\n  idle_timeout: "1s"\n}\n')
    idle = socket.create_connection((HOST, s.falco_port), timeout=15)
    slow = socket.create_connection((HOST, s.falco_port), timeout=15)
    try:
        slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prio")  # and then nothing
        assert idle.recv(100) == b"", "an idle keep-alive connection is closed"
        assert slow.recv(100) == b"", "a half-sent request does not hold a connection"
        # The endpoint still serves everyone else.
        p = Poster(s.falco_port)
        try:
            assert p.post(alerts()[0])[0] == 200
        finally:
            p.close()
    finally:
        idle.close()
        slow.close()


def _read_responses(sock: socket.socket, n: int) -> list[tuple[int, dict, bytes]]:
    """Reads n HTTP/1.x responses (each with a Content-Length) off a raw socket, in order."""
    buf = b""
    out = []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(out)} of {n} responses: {buf!r}"
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(buf) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed inside a body"
            buf += chunk
        body, buf = buf[:length], buf[length:]
        if status != 100:
            out.append((status, headers, body))
    return out


async def test_pipelined_requests_are_answered_in_order_and_bad_http_gets_400(brokerd, tmp_path):
    """Falco's libcurl sends one request at a time, but the endpoint is HTTP/1.1: requests pipelined on one
    connection (good, bad, a stream's fsync in between) get their answers in request order; a request the HTTP
    parser refuses gets 400 with Connection: close after the answers before it; Expect: 100-continue gets
    100 Continue; an HTTP/1.0 request is answered in 1.0 and closed."""
    store = tmp_path / "store"
    s = brokerd(config=f'jetstream {{\n  store_dir: "{store}"\n}}\n')
    nc = await nats.connect(s.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="FALCO", subjects=["FALCO.>"])
        good = alerts()[:30]

        def post(body: bytes, content_type: str = "application/json", extra: str = "") -> bytes:
            return (f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n{extra}"
                    f"Content-Length: {len(body)}\r\n\r\n").encode() + body

        # 30 good alerts with a bad one, a 415 and a GET in between, all in one write.
        requests = [post(a) for a in good[:10]] + [post(b'{"priority":"Nope"}')] + [post(a) for a in good[10:20]]
        requests += [post(b"<html/>", "text/html"), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"]
        requests += [post(a) for a in good[20:]]
        sock = socket.create_connection((HOST, s.falco_port), timeout=WAIT)
        try:
            sock.sendall(b"".join(requests))
            answers = _read_responses(sock, len(requests))
        finally:
            sock.close()
        statuses = [status for status, _, _ in answers]
        assert statuses == [200] * 10 + [400] + [200] * 10 + [415, 200] + [200] * 10
        assert answers[0][2] == b'{"accepted":1}\n' and answers[0][1]["content-type"] == "application/json"
        assert json.loads(answers[10][2])["rejected"][0]["reason"] == "unknown_priority"
        assert answers[22][2] == b'{"status":"ok"}\n'
        info = await js.stream_info("FALCO")
        assert info.state.messages == 30, "every 200 is stored"
        stored = [(await js.get_msg("FALCO", seq)).data for seq in range(1, 31)]
        assert stored == good, "stored in request order"

        # Not HTTP: 400 after the answer before it, then the connection closes.
        sock = socket.create_connection((HOST, s.falco_port), timeout=WAIT)
        try:
            sock.sendall(post(alerts()[30]) + b"BREW /pot HTCPCP/1.0\r\n\r\n" + post(alerts()[31]))
            (ok, _, _), (bad, headers, _) = _read_responses(sock, 2)
            assert (ok, bad, headers.get("connection")) == (200, 400, "close")
            rest = b""
            while chunk := sock.recv(4096):
                rest += chunk
            assert rest == b"", "nothing after the 400, and the connection is closed"
        finally:
            sock.close()
        assert (await js.stream_info("FALCO")).state.messages == 31, "nothing after the bad request was taken"

        # Expect: 100-continue: the interim answer comes before the body is sent.
        body = alerts()[32]
        sock = socket.create_connection((HOST, s.falco_port), timeout=WAIT)
        try:
            sock.sendall(post(body, extra="Expect: 100-continue\r\n")[:-len(body)])
            interim = sock.recv(4096)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(body)
            [(status, _, data)] = _read_responses(sock, 1)
            assert (status, data) == (200, b'{"accepted":1}\n')
        finally:
            sock.close()

        # HTTP/1.0 without keep-alive: answered in 1.0, then closed.
        sock = socket.create_connection((HOST, s.falco_port), timeout=WAIT)
        try:
            sock.sendall(post(alerts()[33]).replace(b"HTTP/1.1", b"HTTP/1.0", 1))
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            assert data.startswith(b"HTTP/1.0 200 OK\r\n") and b"Connection: close\r\n" in data, data
            assert data.endswith(b'{"accepted":1}\n')
        finally:
            sock.close()
        assert (await js.stream_info("FALCO")).state.messages == 33
    finally:
        await nc.close()
