"""End-to-end tests with the nats-py client.

After subscribing, tests call sync_subscriptions(nc) (a message round trip on
the same connection) before relying on the subscription from another
connection: nats-py's flush() can send its PING ahead of SUBs still in its
own write buffer.
"""

import asyncio

import nats
import nats.errors
import pytest

from harness import DEFAULT_MAX_PAYLOAD, sync_subscriptions

WAIT = 10.0  # bound for any single wait in this module


async def collect(nc, subject, n, queue="", **kw):
    """Subscribe and return (subscription, list that fills up, event set at n messages)."""
    got = []
    done = asyncio.Event()

    async def cb(m):
        got.append(m)
        if len(got) >= n:
            done.set()

    sub = await nc.subscribe(subject, queue=queue, cb=cb, **kw)
    return sub, got, done


async def test_pub_sub(server, nats_clients):
    sub_nc = await nats_clients.connect(server)
    pub_nc = await nats_clients.connect(server)
    _, got, done = await collect(sub_nc, "greet.joe", 3)
    await sync_subscriptions(sub_nc)
    for i in range(3):
        await pub_nc.publish("greet.joe", b"hello %d" % i)
    await pub_nc.flush()
    await asyncio.wait_for(done.wait(), WAIT)
    assert [m.data for m in got] == [b"hello 0", b"hello 1", b"hello 2"]
    assert all(m.subject == "greet.joe" for m in got)


async def test_server_info_seen_by_client(server, nats_clients):
    nc = await nats_clients.connect(server)
    assert nc.max_payload == DEFAULT_MAX_PAYLOAD
    assert nc.connected_url.port == server.port
    assert nc._server_info["headers"] is True


async def test_wildcards(server, nats_clients):
    nc = await nats_clients.connect(server)
    pub_nc = await nats_clients.connect(server)
    _, star, star_done = await collect(nc, "FALCO.*", 2)
    _, full, full_done = await collect(nc, "FALCO.>", 3)
    await sync_subscriptions(nc)
    await pub_nc.publish("FALCO.Critical", b"c")
    await pub_nc.publish("FALCO.Warning", b"w")
    await pub_nc.publish("FALCO.Critical.k8s", b"k")
    await pub_nc.publish("FALCO", b"none")
    await pub_nc.publish("OTHER.Critical", b"none")
    await pub_nc.flush()
    await asyncio.wait_for(asyncio.gather(star_done.wait(), full_done.wait()), WAIT)
    await sync_subscriptions(nc)  # anything else would have arrived by now
    assert [(m.subject, m.data) for m in star] == [("FALCO.Critical", b"c"), ("FALCO.Warning", b"w")]
    assert [(m.subject, m.data) for m in full] == [
        ("FALCO.Critical", b"c"), ("FALCO.Warning", b"w"), ("FALCO.Critical.k8s", b"k")]


async def test_queue_group_distribution(server, nats_clients):
    n = 3000
    members = [await nats_clients.connect(server) for _ in range(3)]
    watcher = await nats_clients.connect(server)
    publisher = await nats_clients.connect(server)
    received = [[] for _ in members]
    total = {"n": 0}
    all_done = asyncio.Event()

    def make_cb(i):
        async def cb(m):
            received[i].append(int(m.data))
            total["n"] += 1
            if total["n"] >= n:
                all_done.set()
        return cb

    for i, nc in enumerate(members):
        await nc.subscribe("jobs", queue="workers", cb=make_cb(i))
    _, plain, plain_done = await collect(watcher, "jobs", n)
    for nc in members + [watcher]:
        await sync_subscriptions(nc)
    for i in range(n):
        await publisher.publish("jobs", b"%d" % i)
    await publisher.flush()
    await asyncio.wait_for(asyncio.gather(all_done.wait(), plain_done.wait()), WAIT)
    for nc in members:
        await sync_subscriptions(nc)  # flush out any duplicate still in flight
    delivered = sorted(x for r in received for x in r)
    assert delivered == list(range(n)), "every message exactly once across the queue group"
    assert all(len(r) > 0 for r in received), [len(r) for r in received]
    assert [int(m.data) for m in plain] == list(range(n))


async def test_request_reply(server, nats_clients):
    responder = await nats_clients.connect(server)
    requester = await nats_clients.connect(server)

    async def handler(m):
        await m.respond(b"re: " + m.data)

    await responder.subscribe("help", cb=handler)
    await sync_subscriptions(responder)
    for i in range(5):
        r = await requester.request("help", b"q%d" % i, timeout=WAIT)
        assert r.data == b"re: q%d" % i


async def test_request_reply_queue_responders(server, nats_clients):
    responders = [await nats_clients.connect(server) for _ in range(2)]
    requester = await nats_clients.connect(server)
    for i, nc in enumerate(responders):
        async def handler(m, i=i):
            await m.respond(b"%d" % i)
        await nc.subscribe("svc", queue="q", cb=handler)
        await sync_subscriptions(nc)
    answers = [(await requester.request("svc", b"", timeout=WAIT)).data for _ in range(20)]
    assert set(answers) <= {b"0", b"1"} and len(answers) == 20


async def test_no_responders(server, nats_clients):
    nc = await nats_clients.connect(server)
    with pytest.raises(nats.errors.NoRespondersError):
        await nc.request("nobody.home", b"anyone?", timeout=WAIT)
    # The connection is still fine afterwards.
    await sync_subscriptions(nc)
    assert nc.is_connected


async def test_headers_round_trip(server, nats_clients):
    sub_nc = await nats_clients.connect(server)
    pub_nc = await nats_clients.connect(server)
    _, got, done = await collect(sub_nc, "hdr", 2)
    await sync_subscriptions(sub_nc)
    headers = {"Trace-Id": "abc-123", "X-Num": "42", "X-Spaces": "a b  c"}
    await pub_nc.publish("hdr", b"with headers", headers=headers)
    await pub_nc.publish("hdr", b"", headers={"Only": "header"})
    await pub_nc.flush()
    await asyncio.wait_for(done.wait(), WAIT)
    assert got[0].data == b"with headers" and got[0].headers == headers
    assert got[1].data == b"" and got[1].headers == {"Only": "header"}


async def test_headers_request_reply(server, nats_clients):
    responder = await nats_clients.connect(server)
    requester = await nats_clients.connect(server)

    async def handler(m):
        await responder.publish(m.reply, m.data, headers={"Echo": m.headers.get("Ask", "")})

    await responder.subscribe("hsvc", cb=handler)
    await sync_subscriptions(responder)
    r = await requester.request("hsvc", b"x", timeout=WAIT, headers={"Ask": "value"})
    assert r.headers == {"Echo": "value"} and r.data == b"x"


async def test_max_payload_round_trip(server, nats_clients):
    sub_nc = await nats_clients.connect(server)
    pub_nc = await nats_clients.connect(server)
    _, got, done = await collect(sub_nc, "big", 1)
    await sync_subscriptions(sub_nc)
    payload = bytes(i % 251 for i in range(DEFAULT_MAX_PAYLOAD))
    await pub_nc.publish("big", payload)
    await pub_nc.flush()
    await asyncio.wait_for(done.wait(), WAIT)
    assert len(got[0].data) == DEFAULT_MAX_PAYLOAD
    assert got[0].data == payload


async def test_over_max_payload_rejected(server, nats_clients):
    nc = await nats_clients.connect(server)
    with pytest.raises(nats.errors.MaxPayloadError):
        await nc.publish("big", b"x" * (DEFAULT_MAX_PAYLOAD + 1))
    await sync_subscriptions(nc)
    assert nc.is_connected


async def test_order_100k_messages(server, nats_clients):
    n = 100_000
    sub_nc = await nats_clients.connect(server)
    pub_nc = await nats_clients.connect(server)
    seqs = []
    done = asyncio.Event()

    async def cb(m):
        seqs.append(int(m.data))
        if len(seqs) >= n:
            done.set()

    await sub_nc.subscribe("order", cb=cb)
    await sync_subscriptions(sub_nc)
    for i in range(n):
        await pub_nc.publish("order", b"%d" % i)
    await pub_nc.flush(timeout=WAIT)
    await asyncio.wait_for(done.wait(), 30)
    assert len(seqs) == n
    assert seqs == list(range(n))


async def test_200_concurrent_connections(server, nats_clients):
    n, per = 200, 5
    conns = await asyncio.gather(*(nats_clients.connect(server) for _ in range(n)))
    assert len({nc.client_id for nc in conns}) == n
    inboxes = []
    for i, nc in enumerate(conns):
        inboxes.append(await collect(nc, f"conn.{i}", per))
    await asyncio.gather(*(sync_subscriptions(nc) for nc in conns))

    async def send(i, nc):
        for k in range(per):
            await nc.publish(f"conn.{(i + 1) % n}", b"%d:%d" % (i, k))
        await nc.flush(timeout=WAIT)

    await asyncio.gather(*(send(i, nc) for i, nc in enumerate(conns)))
    await asyncio.wait_for(asyncio.gather(*(done.wait() for _, _, done in inboxes)), 20)
    for i, (_, got, _) in enumerate(inboxes):
        sender = (i - 1) % n
        assert [m.data for m in got] == [b"%d:%d" % (sender, k) for k in range(per)]


async def test_unsubscribe_and_auto_unsubscribe(server, nats_clients):
    nc = await nats_clients.connect(server)
    pub_nc = await nats_clients.connect(server)
    sub, got, got_done = await collect(nc, "auto", 3)
    await sub.unsubscribe(limit=3)
    sub2, got2, got2_done = await collect(nc, "auto", 5)
    await sync_subscriptions(nc)
    for i in range(5):
        await pub_nc.publish("auto", b"%d" % i)
    await pub_nc.flush()
    # Wait for delivery before unsubscribing: nats-py drops messages still
    # queued for a subscription it has removed.
    await asyncio.wait_for(asyncio.gather(got_done.wait(), got2_done.wait()), WAIT)
    await sub2.unsubscribe()
    await sync_subscriptions(nc)
    await pub_nc.publish("auto", b"late")
    await sync_subscriptions(pub_nc)
    await sync_subscriptions(nc)
    assert [m.data for m in got] == [b"0", b"1", b"2"]
    assert [m.data for m in got2] == [b"%d" % i for i in range(5)]


async def test_no_echo(server, nats_clients):
    nc = await nats_clients.connect(server, no_echo=True)
    other = await nats_clients.connect(server)
    _, mine, _ = await collect(nc, "echo", 1)
    _, theirs, done = await collect(other, "echo", 1)

    async def pong(m):
        await m.respond(b"pong")

    await other.subscribe("echo.sync", cb=pong)
    await sync_subscriptions(other)
    await nc.publish("echo", b"x")
    await asyncio.wait_for(done.wait(), WAIT)
    # sync_subscriptions() relies on echo, so round-trip through `other`
    # instead: this reply reaches nc after any echo of "x" would have.
    assert (await nc.request("echo.sync", b"", timeout=WAIT)).data == b"pong"
    assert mine == [] and [m.data for m in theirs] == [b"x"]


# -- Auth -------------------------------------------------------------------

async def test_token_auth(server_factory, nats_clients):
    s = server_factory("--auth", "s3cr3t")
    nc = await nats_clients.connect(s, token="s3cr3t")
    await sync_subscriptions(nc)
    for kw in ({"token": "wrong"}, {}):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats_clients.connect(s, **kw)


async def test_user_password_auth(server_factory, nats_clients):
    s = server_factory("--user", "alice", "--pass", "pw")
    nc = await nats_clients.connect(s, user="alice", password="pw")
    await sync_subscriptions(nc)
    nc2 = await nats_clients.connect(f"nats://alice:pw@127.0.0.1:{s.port}")
    await sync_subscriptions(nc2)
    for kw in ({"user": "alice", "password": "bad"}, {"user": "bob", "password": "pw"}, {}):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats_clients.connect(s, **kw)
