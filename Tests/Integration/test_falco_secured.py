"""The Falco ingest publishes as a user of its own (falco { user }): its publish permissions apply to every
alert, from http_output, `brokerd falco-pipe` and falcosidekick's subjects. brokerd only (nats-server has no
Falco ingest); the permission rules themselves are tested on both servers in test_permissions.py."""

import asyncio
import json
import subprocess

import nats
import pytest

from harness import ServerStartError
from test_falco import Poster, alerts, brokerd, brokerd_binary, sidekick_publish, varz  # noqa: F401

SECURED = """
falco {
  user: falco-ingest
  map_sidekick_subjects: true
}
authorization {
  users: [
    { user: falco-ingest, permissions: { publish: ["FALCO.Emergency", "FALCO.Alert", "FALCO.Critical", "FALCO.Error",
                                                   "FALCO.Warning", "FALCO.Notice"], subscribe: { deny: ">" } } }
    { user: pipe, password: pipe-pw, permissions: { publish: "$FALCO.INGEST", subscribe: "_INBOX.>" } }
    { user: sidekick, password: sidekick-pw, permissions: { publish: "falco.>", subscribe: { deny: ">" } } }
    { user: reader, password: reader-pw, permissions: { publish: { deny: ">" }, subscribe: "FALCO.>" } }
  ]
}
"""


def by_priority(priority: str) -> bytes:
    return next(a for a in alerts() if json.loads(a)["priority"].lower() == priority.lower())


async def test_http_output_is_held_to_the_ingest_users_permissions(brokerd):
    s = brokerd(config=SECURED)
    nc = await nats.connect(s.url, user="reader", password="reader-pw")
    got = []

    async def record(m):
        got.append(m.subject)

    await nc.subscribe("FALCO.>", cb=record)
    await nc.flush()
    poster = Poster(s.falco_port)
    try:
        status, _, body = poster.post(by_priority("Critical"))
        assert status == 200, body
        status, _, body = poster.post(by_priority("Debug"))
        assert status == 403
        assert 'Permissions Violation for Publish to \\"FALCO.Debug\\"' in body.decode()
        # A batch with one forbidden alert publishes none of them.
        status, _, _ = poster.post(by_priority("Warning") + b"\n" + by_priority("Informational"), "application/x-ndjson")
        assert status == 403
        await nc.flush()
        await asyncio.sleep(0.3)
        assert got == ["FALCO.Critical"]
        ingest = varz(s)["falco"]["ingest"]["http"]
        assert ingest["rejected"] >= 2
    finally:
        poster.close()
        await nc.close()


async def test_falco_pipe_and_sidekick_are_held_to_it_too(brokerd):
    s = brokerd(config=SECURED, falco_port=False)
    nc = await nats.connect(s.url, user="reader", password="reader-pw")
    got = []

    async def record(m):
        got.append(m.subject)

    await nc.subscribe("FALCO.>", cb=record)
    await nc.flush()
    try:
        lines = by_priority("Error") + b"\n" + by_priority("Debug") + b"\n"
        pipe = await asyncio.to_thread(subprocess.run, [
            brokerd_binary(), "falco-pipe", "--server", s.url, "--user", "pipe", "--pass", "pipe-pw", "--timeout", "2"],
            input=lines, capture_output=True, timeout=60)
        assert pipe.returncode == 0, pipe.stderr.decode()[-2000:]
        assert b"1 accepted, 1 rejected" in pipe.stderr, pipe.stderr.decode()[-2000:]
        assert b"Permissions Violation for Publish to" in pipe.stderr
        assert sidekick_publish(s.port, "falco.debug.some_rule", by_priority("Debug"), "sidekick", "sidekick-pw") == b"PONG\r\n"
        assert sidekick_publish(s.port, "falco.notice.some_rule", by_priority("Notice"), "sidekick", "sidekick-pw") == b"PONG\r\n"
        await nc.flush()
        await asyncio.sleep(0.3)
        assert sorted(got) == ["FALCO.Error", "FALCO.Notice"]
        ingest = varz(s)["falco"]["ingest"]
        assert (ingest["pipe"]["accepted"], ingest["pipe"]["rejected"]) == (1, 1)
        assert (ingest["sidekick"]["accepted"], ingest["sidekick"]["rejected"]) == (1, 1)
    finally:
        await nc.close()


def test_the_pipe_user_itself_needs_permission_for_the_ingest_subject(brokerd):
    s = brokerd(config=SECURED, falco_port=False)
    pipe = subprocess.run([brokerd_binary(), "falco-pipe", "--server", s.url, "--user", "reader", "--pass", "reader-pw",
                           "--timeout", "2", "--drain-timeout", "3"], input=by_priority("Error") + b"\n",
                          capture_output=True, timeout=60)
    assert b"Permissions Violation" in pipe.stderr, pipe.stderr.decode()[-2000:]


def test_an_unknown_ingest_user_refuses_to_start(brokerd):
    with pytest.raises(ServerStartError) as failure:
        brokerd(config="falco { user: ghost }\nauthorization { users: [ { user: a, password: b } ] }\n")
    assert 'falco.user: "ghost" is not a user of authorization { users }' in str(failure.value)


def test_falco_pipe_reads_its_password_from_the_environment(brokerd):
    """NATS_USER / NATS_PASSWORD (as the nats CLI): the password need not be on falco-pipe's command line."""
    import os
    s = brokerd(config=SECURED, falco_port=False)
    env = dict(os.environ, NATS_USER="pipe", NATS_PASSWORD="pipe-pw")
    pipe = subprocess.run([brokerd_binary(), "falco-pipe", "--server", s.url, "--timeout", "2"],
                          input=by_priority("Error") + b"\n", capture_output=True, timeout=60, env=env)
    assert pipe.returncode == 0, pipe.stderr.decode()[-2000:]
    assert b"1 accepted, 0 rejected" in pipe.stderr
    env["NATS_PASSWORD"] = "wrong"
    pipe = subprocess.run([brokerd_binary(), "falco-pipe", "--server", s.url, "--timeout", "2", "--drain-timeout", "2"],
                          input=by_priority("Error") + b"\n", capture_output=True, timeout=60, env=env)
    assert pipe.returncode != 0
    assert b"brokerd refused the credentials" in pipe.stderr
