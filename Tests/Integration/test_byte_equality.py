"""Byte-for-byte equality with the reference nats-server.

Each scenario is a fixed byte sequence sent on one connection. It is run
against a fresh reference nats-server and a fresh target server in the same
test; everything each server sends after its first INFO line (minus any
further INFO lines) must be identical, and so must the close/open outcome.
Against the nats-server target this doubles as a check that the scenario
itself is deterministic.

Scenarios never let two subscriptions of the connection match the same
message: nats-server's delivery order among those varies from run to run.
"""

from dataclasses import dataclass
from typing import Optional

import pytest

from harness import DEFAULT_MAX_PAYLOAD, PING, connect_line, hpub, pub

H1 = b"NATS/1.0\r\nFoo: Bar\r\n\r\n"
H2 = b"NATS/1.0\r\nA: 1\r\nA: 2\r\nB-Long-Header-Name: some value with spaces\r\n\r\n"
H_EMPTY = b"NATS/1.0\r\n\r\n"


@dataclass
class Scenario:
    name: str
    data: bytes
    pongs: Optional[int] = None  # read until this many PONGs; None = read until the server closes
    chunk: Optional[int] = None  # send in pieces of this size

    @property
    def closes(self) -> bool:
        return self.pongs is None


SCENARIOS = [
    Scenario("basic", connect_line() + b"SUB foo 1\r\nSUB bar.* 2\r\nSUB baz.> 3\r\n"
             + pub("foo", b"hello") + pub("foo", b"", reply="r.1") + pub("bar.x", b"abc")
             + pub("baz.a.b", b"z") + pub("nobody", b"lost") + b"UNSUB 1\r\n" + pub("foo", b"gone") + PING, 1),
    Scenario("verbose", b"CONNECT {}\r\nSUB foo 1\r\nSUB bar.* 2\r\n" + pub("foo", b"hello")
             + pub("bar.q", b"x", reply="rep") + b"UNSUB 1\r\nUNSUB 99\r\n" + pub("foo", b"gone") + PING, 1),
    Scenario("verbose-headers", b'CONNECT {"verbose":true,"headers":true}\r\nSUB h 5\r\n'
             + hpub("h", H1, b"p") + hpub("h", H_EMPTY, b"", reply="r") + pub("h", b"plain") + PING, 1),
    Scenario("headers", connect_line(headers=True) + b"SUB h.* 10\r\n"
             + hpub("h.1", H1, b"payload") + hpub("h.2", H2, b"", reply="inbox.x") + hpub("h.3", H_EMPTY, b"x" * 100)
             + pub("h.4", b"no headers") + PING, 1),
    Scenario("unsub-max", connect_line() + b"SUB foo 1\r\nUNSUB 1 3\r\n"
             + b"".join(pub("foo", b"%d" % i) for i in range(6)) + PING, 1),
    Scenario("unsub-max-reached-early", connect_line() + b"SUB foo 1\r\n" + pub("foo", b"a") + pub("foo", b"b")
             + b"UNSUB 1 2\r\n" + pub("foo", b"c") + PING, 1),
    Scenario("queue-single-member", connect_line() + b"SUB work grp 3\r\n"
             + b"".join(pub("work", b"j%d" % i, reply=f"_INBOX.{i}") for i in range(5)) + PING, 1),
    Scenario("multi-ping", connect_line() + PING + PING + b"SUB x 1\r\n" + PING + pub("x", b"1") + PING, 4),
    Scenario("ping-before-connect", PING + connect_line() + PING, 2),
    Scenario("protocol-1", connect_line(protocol=1, headers=True, no_responders=True) + PING
             + b"SUB a 1\r\n" + pub("a", b"b") + PING, 2),
    Scenario("lowercase-tabs-spaces", b'connect {"verbose":false}\r\nsub\tfoo\t1\r\npub  foo\tbar  2\r\nhi\r\n'
             b"SuB x 2\r\nPuB x 1\r\ny\r\nunsub 1\r\nping\r\n", 1),
    Scenario("echo-false", connect_line(echo=False) + b"SUB foo 1\r\n" + pub("foo", b"mine") + PING, 1),
    Scenario("zero-and-binary-payloads", connect_line() + b"SUB z 1\r\n" + pub("z", b"") + pub("z", bytes(range(256)))
             + pub("z", b"\r\n\r\n") + PING, 1),
    Scenario("bare-lf", b'CONNECT {"verbose":false}\nSUB foo 1\nPUB foo 2\nhi\r\nPING\n', 1),
    Scenario("invalid-subject-stays-open", connect_line() + b"SUB foo..bar 1\r\nSUB foo.>.bar 2\r\nSUB ok 3\r\n"
             + pub("ok", b"1") + PING, 1),
    Scenario("invalid-subject-verbose", b"CONNECT {}\r\nSUB foo..bar 1\r\nSUB ok 3\r\n" + pub("ok", b"1") + PING, 1),
    Scenario("pedantic-publish", connect_line(pedantic=True) + b"SUB > 1\r\n" + pub("foo.*", b"w") + pub("a.b", b"ok")
             + pub("foo..bar", b"bad") + PING, 1),
    Scenario("pedantic-verbose-publish", b'CONNECT {"verbose":true,"pedantic":true}\r\nPUB foo.* 1\r\na\r\nPING\r\n', 1),
    Scenario("non-pedantic-wildcard-publish", connect_line(pedantic=False) + b"SUB > 1\r\n" + pub("foo.*", b"w")
             + pub("foo..bar", b"bad") + PING, 1),
    Scenario("byte-by-byte", connect_line(headers=True) + b"SUB a.* 1\r\n" + pub("a.b", b"x", reply="r")
             + hpub("a.c", H1, b"y") + PING, 1, chunk=1),
    Scenario("chunks-of-7", connect_line() + b"SUB s 1\r\n" + b"".join(pub("s", b"m%d" % i) for i in range(50)) + PING,
             1, chunk=7),
    Scenario("pipelined-1000", connect_line() + b"SUB p 1\r\n" + b"".join(pub("p", b"%d" % i) for i in range(1000)) + PING, 1),
    Scenario("max-payload-exact", connect_line() + b"SUB big 1\r\n" + pub("big", b"q" * DEFAULT_MAX_PAYLOAD) + PING, 1),
    # Closing scenarios: read until the server closes.
    Scenario("unknown-op", connect_line() + b"SUB foo 1\r\n" + pub("foo", b"a") + b"FOO\r\n" + PING),
    Scenario("unknown-op-before-connect", b"FOO\r\n"),
    Scenario("max-payload-violation", connect_line() + b"SUB foo 1\r\n" + pub("foo", b"a") + f"PUB foo {DEFAULT_MAX_PAYLOAD + 1}\r\n".encode()),
    Scenario("max-control-line", connect_line() + b"SUB " + b"x" * 5000 + b" 1\r\n"),
    Scenario("payload-size-mismatch", connect_line() + b"SUB foo 1\r\nPUB foo 1\r\nab\r\n" + PING),
    Scenario("verbose-then-unknown-op", b"CONNECT {}\r\nSUB foo 1\r\nFOO\r\n"),
    Scenario("parse-error-silent", connect_line() + b"SUB foo 1\r\n" + pub("foo", b"a") + b"PUB foo\r\n" + PING),
    Scenario("hpub-without-headers", connect_line() + b"SUB foo 1\r\n" + hpub("foo", H1, b"x") + PING),
    Scenario("no-responders-needs-headers", connect_line(no_responders=True) + PING),
]


def run_scenario(server, sc: Scenario) -> tuple[bytes, bool]:
    with server.conn() as c:
        if sc.chunk:
            c.send_chunks(sc.data, [sc.chunk] * (len(sc.data) // sc.chunk + 1))
        else:
            c.send(sc.data)
        if sc.closes:
            c.read_until_closed(5)
        else:
            c.read_pongs(sc.pongs, timeout=10)
        return c.data(), c.closed


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_same_bytes_as_nats_server(scenario, server, reference_factory):
    ref = reference_factory()
    want, want_closed = run_scenario(ref, scenario)
    # The scenario must have reached its end on the reference itself.
    assert want_closed == scenario.closes, f"reference: closed={want_closed}, got {want[-300:]!r}"
    got, got_closed = run_scenario(server, scenario)
    assert got_closed == want_closed, f"closed={got_closed}, reference closed={want_closed}; got {got[-300:]!r}"
    if got != want:
        # Show the first differing region instead of a 1 MiB diff.
        i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), min(len(got), len(want)))
        lo = max(0, i - 120)
        pytest.fail(
            f"bytes differ at offset {i} (target {len(got)} bytes, reference {len(want)} bytes)\n"
            f"target:    {got[lo:i + 120]!r}\nreference: {want[lo:i + 120]!r}"
        )
