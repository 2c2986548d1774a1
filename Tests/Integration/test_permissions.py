"""Users, per-user subject permissions, no_auth_user, allow_responses, bcrypt and nkeys: the same configs on
brokerd and nats-server, with the same outcomes and nats-server's exact error texts."""

import asyncio
import base64
import signal
import time

import pytest

from harness import ERR_AUTH_VIOLATION, OK, PING, PONG, connect_line, msg, pub

# The secured Falco setup from docs/falco.md, in miniature.
USERS = """
authorization {
  users: [
    { user: falco, password: falco-pw, permissions: { publish: { allow: ["FALCO.>", "$FALCO.INGEST"] }, subscribe: { deny: ">" } } }
    { user: responder, password: responder-pw, permissions: {
        publish: { allow: "_INBOX.>" }
        subscribe: { allow: ["FALCO.*", "FALCO.Critical responders", "_INBOX.>"], deny: ["FALCO.Debug"] } } }
    { user: reader, password: reader-pw, permissions: { publish: { deny: ["FALCO.>", "$JS.API.>"] }, subscribe: { allow: ["FALCO.>", "cmd.*"], deny: ["FALCO.Debug", "FALCO.Informational"] } } }
    { user: plain, password: plain-pw }
    { user: service, password: service-pw, permissions: { subscribe: "svc.requests", allow_responses: true } }
    { user: service2, password: service2-pw, permissions: { subscribe: "svc.requests", allow_responses: { max: 2, expires: "1m" } } }
  ]
}
"""


def err(text: str) -> bytes:
    return b"-ERR '" + text.encode() + b"'\r\n"


def login(c, user, **extra):
    """CONNECT as `user` and PING: what came back (the buffer is then cleared)."""
    return ask(c, connect_line(user=user, **{"pass": f"{user}-pw"}, **extra))


def ask(c, data: bytes) -> bytes:
    """Send `data` and a PING; what came back up to the PONG (the buffer is then cleared)."""
    c.send(data + PING)
    got = c.read_until(PONG)
    c.reset_buffer()
    return got


@pytest.fixture
def users(server_factory):
    return server_factory(config=USERS)


def test_info_requires_auth_and_has_no_nonce_without_nkeys(users):
    with users.conn() as c:
        assert c.info.get("auth_required") is True
        assert "nonce" not in c.info


def test_publish_violation_keeps_the_connection_and_delivers_nothing(users):
    with users.conn() as sub, users.conn() as falco:
        assert login(sub, "plain") == PONG
        ask(sub, b"SUB FALCO.> 1\r\n")
        assert login(falco, "falco") == PONG
        assert ask(falco, pub("cmd.kill", b"x") + pub("FALCO.Critical", b"alert")) == err('Permissions Violation for Publish to "cmd.kill"') + PONG
        assert not falco.closed
        assert sub.read_until(lambda d: b"alert" in d) == msg("FALCO.Critical", "1", b"alert")


def test_verbose_gets_no_ok_for_a_violation(users):
    with users.conn() as c:
        assert ask(c, connect_line(verbose=True, user="falco", **{"pass": "falco-pw"})) == OK + PONG
        assert ask(c, pub("nope", b"x") + pub("FALCO.Warning", b"y")) == err('Permissions Violation for Publish to "nope"') + OK + PONG


def test_subscription_violations_plain_and_queue(users):
    with users.conn() as c:
        assert login(c, "falco") == PONG
        assert ask(c, b"SUB FALCO.> 1\r\n") == err('Permissions Violation for Subscription to "FALCO.>"') + PONG
    with users.conn() as c:
        assert login(c, "responder") == PONG
        # A queue entry decides queue subscriptions on its subject: only "responders" may queue on FALCO.Critical.
        assert ask(c, b"SUB FALCO.Critical others 1\r\nSUB FALCO.Critical responders 2\r\nSUB FALCO.Warning anyq 3\r\n"
               b"SUB cmd.x 4\r\nSUB FALCO.Debug 5\r\n") == (
            err('Permissions Violation for Subscription to "FALCO.Critical" using queue "others"')
            + err('Permissions Violation for Subscription to "cmd.x"')
            + err('Permissions Violation for Subscription to "FALCO.Debug"') + PONG)
        assert not c.closed


def test_wildcard_overlapping_a_deny_is_filtered_at_delivery(users):
    with users.conn() as reader, users.conn() as falco:
        assert login(reader, "reader") == PONG
        assert ask(reader, b"SUB FALCO.* 1\r\nSUB FALCO.> 2\r\n") == PONG
        assert login(falco, "falco") == PONG
        for level in ("Debug", "Critical", "Informational", "Warning"):
            falco.send(pub(f"FALCO.{level}", level.encode()))
        falco.send(PING)
        falco.read_until(PONG)
        reader.send(PING)
        got = reader.read_until(lambda d: d.count(b"Warning") >= 4)
        assert b"Debug" not in got and b"Informational" not in got
        assert got.count(b"MSG FALCO.Critical") == 2 and got.count(b"MSG FALCO.Warning") == 2


def test_deny_wins_over_allow(users):
    with users.conn() as c:
        assert login(c, "reader") == PONG
        assert ask(c, b"SUB FALCO.Debug 1\r\n" + pub("FALCO.Critical", b"forged")) == (err('Permissions Violation for Subscription to "FALCO.Debug"')
                                      + err('Permissions Violation for Publish to "FALCO.Critical"') + PONG)


def test_default_permissions(server_factory):
    s = server_factory(config="""
authorization {
  default_permissions: { publish: { allow: "_INBOX.>" }, subscribe: { allow: "_INBOX.>" } }
  users: [ { user: dflt, password: dflt-pw } ]
}
""")
    with s.conn() as c:
        assert login(c, "dflt") == PONG
        assert ask(c, b"SUB FALCO.* 1\r\nSUB _INBOX.x 2\r\n" + pub("FALCO.Critical", b"x") + pub("_INBOX.x", b"me")) == (err('Permissions Violation for Subscription to "FALCO.*"')
                                      + err('Permissions Violation for Publish to "FALCO.Critical"')
                                      + msg("_INBOX.x", "2", b"me") + PONG)


def test_allow_responses_lets_a_service_answer_once(users):
    with users.conn() as svc, users.conn() as client:
        assert login(svc, "service") == PONG
        ask(svc, b"SUB svc.requests 1\r\n")
        assert login(client, "plain") == PONG
        ask(client, b"SUB reply.inbox.1 9\r\n" + b"PUB svc.requests reply.inbox.1 3\r\nask\r\n")
        svc.read_until(lambda d: b"ask" in d)
        svc.reset_buffer()
        assert ask(svc, pub("reply.inbox.1", b"answer") + pub("reply.inbox.1", b"again") + pub("reply.other", b"no")) == (err('Permissions Violation for Publish to "reply.inbox.1"')
                                        + err('Permissions Violation for Publish to "reply.other"') + PONG)
        assert client.read_until(lambda d: b"answer" in d) == msg("reply.inbox.1", "9", b"answer")


def test_allow_responses_with_a_maximum(users):
    with users.conn() as svc, users.conn() as client:
        assert login(svc, "service2") == PONG
        ask(svc, b"SUB svc.requests 1\r\n")
        assert login(client, "plain") == PONG
        ask(client, b"SUB r.1 9\r\nPUB svc.requests r.1 3\r\nask\r\n")
        svc.read_until(lambda d: b"ask" in d)
        svc.reset_buffer()
        assert ask(svc, pub("r.1", b"one") + pub("r.1", b"two") + pub("r.1", b"three")) == err('Permissions Violation for Publish to "r.1"') + PONG
        got = client.read_until(lambda d: b"two" in d)
        assert got == msg("r.1", "9", b"one") + msg("r.1", "9", b"two")


def test_reserved_reply_subjects_are_refused_without_auth(server):
    with server.conn() as c:
        c.connect()
        c.reset_buffer()
        assert ask(c, b"SUB x 1\r\nPUB x _R_.abc 1\r\na\r\nPUB x $JS.ACK.s.c.1.1.1.1.0 1\r\nb\r\nPUB _GR_.abc 1\r\nc\r\n"
               b"PUB x ok.reply 1\r\nd\r\n") == (err('Permissions Violation for Publish with Reply of "_R_.abc"')
                                      + err('Permissions Violation for Publish with Reply of "$JS.ACK.s.c.1.1.1.1.0"')
                                      + err('Permissions Violation for Publish to "_GR_.abc"')
                                      + b"MSG x 1 ok.reply 1\r\nd\r\n" + PONG)


def test_subjects_are_quoted_as_go_does(users):
    with users.conn() as c:
        assert login(c, "falco") == PONG
        assert ask(c, b'PUB a"b\\c 1\r\nx\r\nPUB caf\xc3\xa9 1\r\ny\r\n') == (b"-ERR 'Permissions Violation for Publish to \"a\\\"b\\\\c\"'\r\n"
                                      + b"-ERR 'Permissions Violation for Publish to \"caf\xc3\xa9\"'\r\n" + PONG)


def test_jetstream_api_is_subject_to_permissions(server_factory, tmp_path):
    s = server_factory("-js", "-sd", str(tmp_path / "js"), config=USERS)
    with s.conn() as c:
        assert login(c, "reader") == PONG
        assert ask(c, b"PUB $JS.API.INFO cmd.r 0\r\n\r\n") == err('Permissions Violation for Publish to "$JS.API.INFO"') + PONG


def test_no_auth_user(server_factory):
    s = server_factory(config=USERS.replace("authorization {", "no_auth_user: reader\nauthorization {"))
    with s.conn() as c:
        assert "auth_required" not in c.info
        assert ask(c, connect_line() + b"SUB cmd.go 1\r\nSUB secret 2\r\n" + pub("FALCO.Critical", b"forged")) == (err('Permissions Violation for Subscription to "secret"')
                                      + err('Permissions Violation for Publish to "FALCO.Critical"') + PONG)
    with s.conn() as c:
        # Credentials given are still checked.
        c.send(connect_line(user="reader", **{"pass": "wrong"}) + PING)
        assert c.read_until_closed(5)
        assert c.data() == ERR_AUTH_VIOLATION


@pytest.mark.parametrize("config, problem", [
    ("no_auth_user: ghost\nauthorization { users: [ { user: a, password: b } ] }\n", "ghost"),
    ("no_auth_user: ghost\n", "ghost"),
    ("authorization { users: [ { user: a, password: b, permissions: { publish: { allow: \"foo..bar\" } } } ] }\n", "foo..bar"),
    ("authorization { users: [ { user: a, password: b, permissions: { publish: { allow: \"foo q\" } } } ] }\n", "foo q"),
    ("authorization { users: [ { user: a, password: b, permissions: { pub: { permit: \"x\" } } } ] }\n", "permit"),
    ("authorization { users: [ { password: b } ] }\n", "requires a user"),
    ("authorization { users: [ { nkey: UNOTAKEY } ] }\n", "nkey"),
    ("authorization { user: x, password: y, users: [ { user: a, password: b } ] }\n", "users array"),
])
def test_bad_authorization_configs_refuse_to_start(server_factory, config, problem):
    from harness import ServerStartError
    with pytest.raises(ServerStartError) as failure:
        server_factory(config=config)
    assert problem in str(failure.value)


def test_plaintext_passwords_are_warned_about(users):
    deadline = time.time() + 5
    while "Plaintext passwords detected, use nkeys or bcrypt" not in users.log_text() and time.time() < deadline:
        time.sleep(0.1)
    assert "Plaintext passwords detected, use nkeys or bcrypt" in users.log_text()


def test_reload_revokes_subscriptions_the_new_permissions_deny(server_factory):
    s = server_factory(config=USERS)
    with s.conn() as c:
        assert login(c, "reader") == PONG
        assert ask(c, b"SUB cmd.go 1\r\nSUB FALCO.Critical 2\r\n") == PONG
        s.config_path.write_text(USERS.replace('allow: ["FALCO.>", "cmd.*"]', 'allow: ["FALCO.>"]'))
        s.proc.send_signal(signal.SIGHUP)
        assert c.read_until(lambda d: b"sid" in d, timeout=10) == err(
            'Permissions Violation for Subscription to "cmd.go" (sid "1")')
        c.reset_buffer()
        falco = s.conn()
        assert login(falco, "falco") == PONG
        ask(falco, pub("FALCO.Critical", b"still"))
        assert c.read_until(lambda d: b"still" in d) == msg("FALCO.Critical", "2", b"still")
        falco.close()


def test_reload_closes_connections_that_have_not_connected_yet(server_factory):
    """nats-server checks every client on reload, one still waiting to send CONNECT too."""
    s = server_factory(config=USERS)
    with s.conn() as waiting:
        s.config_path.write_text(USERS.replace("plain-pw", "plain-pw2"))
        s.proc.send_signal(signal.SIGHUP)
        assert waiting.read_until_closed(10)
        assert waiting.data() == ERR_AUTH_VIOLATION


# -- bcrypt -------------------------------------------------------------------------------------------------

def test_bcrypt_passwords_and_tokens(server_factory):
    bcrypt = pytest.importorskip("bcrypt")
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=10)).decode()
    s = server_factory(config=f'authorization {{ users: [ {{ user: alice, password: "{hashed}" }} ] }}\n')
    with s.conn() as c:
        assert ask(c, connect_line(user="alice", **{"pass": "s3cret"}) + b"SUB a 1\r\n" + pub("a", b"in")) == msg("a", "1", b"in") + PONG
    with s.conn() as c:
        c.send(connect_line(user="alice", **{"pass": "wrong"}) + PING)
        assert c.read_until_closed(5)
        assert c.data() == ERR_AUTH_VIOLATION
    assert "Plaintext passwords detected" not in s.log_text()
    token = bcrypt.hashpw(b"tok", bcrypt.gensalt(rounds=10)).decode()
    s = server_factory(config=f'authorization {{ token: "{token}" }}\n')
    with s.conn() as c:
        assert ask(c, connect_line(auth_token="tok")) == PONG


def test_bcrypt_check_does_not_stall_other_clients(server_factory):
    """Many slow (cost 12) logins at once: a connected client keeps getting answers meanwhile."""
    bcrypt = pytest.importorskip("bcrypt")
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=12)).decode()
    s = server_factory(config=f'authorization {{ users: [ {{ user: a, password: "{hashed}" }}, {{ user: b, password: plain }} ] }}\n')
    with s.conn() as fast:
        ask(fast, connect_line(user="b", **{"pass": "plain"}))
        slow = [s.conn() for _ in range(4)]
        for c in slow:
            c.send(connect_line(user="a", **{"pass": "pw"}) + b"SUB q 1\r\n" + PING)
        for _ in range(5):
            assert ask(fast, b"") == PONG
        for c in slow:
            assert c.read_until(PONG, timeout=20) == PONG
            c.close()


# -- nkeys --------------------------------------------------------------------------------------------------

def _nkey_pair():
    nkeys = pytest.importorskip("nkeys")
    import secrets
    seed = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)
    kp = nkeys.from_seed(seed)
    return kp, kp.public_key.decode()


def test_nkey_users(server_factory):
    kp, public = _nkey_pair()
    other, _ = _nkey_pair()
    s = server_factory(config=f'authorization {{ users: [ {{ nkey: {public}, permissions: {{ publish: "FALCO.>" }} }} ] }}\n')
    with s.conn() as c:
        nonce = c.info.get("nonce")
        assert nonce and len(nonce) == 15
        sig = base64.urlsafe_b64encode(kp.sign(nonce.encode())).decode().rstrip("=")
        assert ask(c, connect_line(nkey=public, sig=sig) + pub("FALCO.Notice", b"n") + pub("x", b"y")) == err('Permissions Violation for Publish to "x"') + PONG
    for bad in (lambda n: base64.urlsafe_b64encode(other.sign(n.encode())).decode(), lambda n: "", lambda n: "!!"):
        with s.conn() as c:
            c.send(connect_line(nkey=public, sig=bad(c.info["nonce"])) + PING)
            assert c.read_until_closed(5)
            assert c.data() == ERR_AUTH_VIOLATION
    with s.conn() as c:
        c.send(connect_line() + PING)
        assert c.read_until_closed(5)


def test_nats_py_with_nkeys_and_permission_errors(server_factory, tmp_path):
    kp, public = _nkey_pair()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(kp.seed)
    s = server_factory(config=f'authorization {{ users: [ {{ nkey: {public}, permissions: {{ publish: "FALCO.>", subscribe: "FALCO.>" }} }} ] }}\n')
    import nats

    async def run():
        errors = []

        async def on_error(e):
            errors.append(str(e))

        nc = await nats.connect(s.url, nkeys_seed=str(seed_file), error_cb=on_error, allow_reconnect=False)
        got = []
        sub = await nc.subscribe("FALCO.*")
        await nc.publish("FALCO.Critical", b"a")
        await nc.publish("cmd.kill", b"b")
        await nc.flush()
        msg1 = await sub.next_msg(timeout=5)
        got.append(msg1.data)
        await asyncio.sleep(0.3)
        await nc.close()
        return got, errors

    got, errors = asyncio.run(run())
    assert got == [b"a"]
    assert any('permissions violation for publish to "cmd.kill"' in e.lower() for e in errors), errors


def test_brokerd_passwd_hashes_work_on_both_servers(server_factory):
    """`brokerd passwd` (as `nats server passwd`) makes a bcrypt hash both servers accept."""
    import subprocess
    from harness import resolve_target
    brokerd = resolve_target("brokerd")
    if brokerd.skip_reason:
        pytest.skip(brokerd.skip_reason)
    made = subprocess.run([brokerd.binary, "passwd", "--cost", "6"], input=b"pa$$ word\n", capture_output=True, timeout=30)
    assert made.returncode == 0, made.stderr
    hashed = made.stdout.decode().strip()
    assert hashed.startswith("$2a$06$") and len(hashed) == 60
    s = server_factory(config=f'authorization {{ users: [ {{ user: ops, password: "{hashed}" }} ] }}\n')
    with s.conn() as c:
        assert ask(c, connect_line(user="ops", **{"pass": "pa$$ word"})) == PONG
    with s.conn() as c:
        c.send(connect_line(user="ops", **{"pass": "pa$$word"}) + PING)
        assert c.read_until_closed(5)
        assert c.data() == ERR_AUTH_VIOLATION


def test_mappings_apply_before_the_publish_check(server_factory):
    """As nats-server: a mapped subject is judged as what it becomes, so a mapping cannot be used to reach a
    denied subject."""
    s = server_factory(config='mappings { "alias.*": "secret.{{wildcard(1)}}" }\n'
                              'authorization { users: [ { user: u, password: u-pw, permissions: { publish: { deny: "secret.>" } } }\n'
                              '                         { user: reader, password: reader-pw } ] }\n')
    with s.conn() as reader, s.conn() as c:
        assert login(reader, "reader") == PONG
        assert ask(reader, b"SUB secret.> 1\r\n") == PONG
        assert login(c, "u") == PONG
        assert ask(c, pub("alias.x", b"sneaky")) == err('Permissions Violation for Publish to "secret.x"') + PONG
        assert ask(reader, b"") == PONG
