"""Raw-socket tests of well-formed client protocol traffic."""

import random

import pytest

from harness import (
    DEFAULT_MAX_PAYLOAD, OK, PING, PONG, connect_line, hmsg, hpub, msg, parse_msg, pub,
)


# -- CONNECT / PING / PONG -------------------------------------------------

def test_connect_default_verbose_ok_then_pong(raw):
    c = raw()
    c.send(b"CONNECT {}\r\nPING\r\n")
    assert c.read_until(PONG) == OK + PONG


def test_connect_verbose_false_pong(raw):
    c = raw()
    c.send(b'CONNECT {"verbose":false}\r\nPING\r\n')
    assert c.read_until(PONG) == PONG


def test_connect_protocol_1_extra_info_tolerated(raw):
    """nats-server 2.15 answers CONNECT{"protocol":1}+PING with PONG and then a
    second INFO; data() filters INFO frames, so only the PONG remains."""
    c = raw()
    c.send(connect_line(protocol=1, headers=True, no_responders=True) + PING)
    assert c.read_until(PONG) == PONG
    c.send(PING)
    assert c.read_pongs(2) == PONG + PONG


def test_ping_before_connect_without_auth(raw):
    c = raw()
    c.send(PING)
    assert c.read_until(PONG) == PONG


def test_many_pings(raw):
    c = raw()
    c.send(connect_line() + PING * 10)
    assert c.read_pongs(10) == PONG * 10


def test_client_pong_and_ok_are_ignored(raw):
    c = raw()
    c.send(connect_line() + b"PONG\r\n+OK\r\nPING\r\n")
    assert c.read_until(PONG) == PONG
    assert not c.closed


def test_bare_lf_line_endings(raw):
    c = raw()
    c.send(b'CONNECT {"verbose":false}\nSUB foo 1\nPUB foo 2\nhi\r\nPING\n')
    assert c.read_until(PONG) == msg("foo", "1", b"hi") + PONG


# -- SUB / PUB / MSG -------------------------------------------------------

def test_pub_sub_same_connection(raw):
    c = raw()
    c.send(connect_line() + b"SUB foo 1\r\n" + pub("foo", b"hello") + PING)
    assert c.read_until(PONG) == msg("foo", "1", b"hello") + PONG


def test_msg_with_reply(raw):
    c = raw()
    c.send(connect_line() + b"SUB foo 9\r\nPUB foo bar 2\r\nhi\r\nPING\r\n")
    assert c.read_until(PONG) == b"MSG foo 9 bar 2\r\nhi\r\nPONG\r\n"


def test_pub_sub_across_connections(raw):
    sub, p = raw(), raw()
    sub.connect()
    sub.send(b"SUB a.b.c 42\r\n")
    assert sub.roundtrip()
    sub.reset_buffer()
    p.connect()
    p.send(pub("a.b.c", b"x", reply="r.1") + PING)
    p.read_until(PONG)
    sub.read_frames(1)
    assert sub.data() == msg("a.b.c", "42", b"x", reply="r.1")


def test_zero_length_payload(raw):
    c = raw()
    c.send(connect_line() + b"SUB foo 1\r\nPUB foo 0\r\n\r\nPING\r\n")
    assert c.read_until(PONG) == b"MSG foo 1 0\r\n\r\nPONG\r\n"


def test_payload_may_contain_crlf_and_verbs(raw):
    payload = b"PING\r\nPUB x 1\r\n-ERR\r\nMSG a 1 1\r\n"
    c = raw()
    c.send(connect_line() + b"SUB foo 1\r\n" + pub("foo", payload) + PING)
    assert c.read_until(PONG) == msg("foo", "1", payload) + PONG


def test_binary_payload(raw):
    payload = bytes(range(256)) * 4
    c = raw()
    c.send(connect_line() + b"SUB bin 1\r\n" + pub("bin", payload) + PING)
    assert c.read_until(PONG) == msg("bin", "1", payload) + PONG


def test_pub_exactly_max_payload(raw):
    payload = b"z" * DEFAULT_MAX_PAYLOAD
    c = raw()
    c.send(connect_line() + b"SUB big 1\r\n" + pub("big", payload) + PING)
    d = c.read_until(PONG, timeout=10)
    assert d == msg("big", "1", payload) + PONG
    assert not c.closed


def test_verbose_ok_for_sub_pub_unsub(raw):
    c = raw()
    c.send(b'CONNECT {"verbose":true}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nUNSUB 1\r\nPING\r\n')
    assert c.read_until(PONG) == OK + OK + OK + msg("foo", "1", b"hi") + OK + PONG


def test_verbose_unsub_unknown_sid_still_ok(raw):
    c = raw()
    c.send(b'CONNECT {"verbose":true}\r\nUNSUB 99\r\nPING\r\n')
    assert c.read_until(PONG) == OK + OK + PONG


def test_lower_and_mixed_case_verbs(raw):
    c = raw()
    c.send(b'connect {"verbose":false}\r\nsub foo 1\r\npub foo 2\r\nhi\r\nSuB bar 2\r\nPuB bar 1\r\nx\r\nunsub 1\r\npub foo 1\r\ny\r\nping\r\n')
    assert c.read_until(PONG) == msg("foo", "1", b"hi") + msg("bar", "2", b"x") + PONG


def test_tabs_as_separators(raw):
    c = raw()
    c.send(b'CONNECT\t{"verbose":false}\r\nSUB\tfoo\t1\r\nPUB\tfoo\tbar\t2\r\nhi\r\nPING\r\n')
    assert c.read_until(PONG) == b"MSG foo 1 bar 2\r\nhi\r\nPONG\r\n"


def test_extra_whitespace_between_args(raw):
    c = raw()
    c.send(connect_line() + b"SUB  foo \t 1\r\nPUB  foo   1  \r\na\r\nPING\r\n")
    assert c.read_until(PONG) == msg("foo", "1", b"a") + PONG


def test_unsub_with_max(raw):
    c = raw()
    c.send(connect_line() + b"SUB foo 1\r\nUNSUB 1 2\r\n" + pub("foo", b"a") + pub("foo", b"b") + pub("foo", b"c") + PING)
    assert c.read_until(PONG) == msg("foo", "1", b"a") + msg("foo", "1", b"b") + PONG


def test_unsub_with_max_already_reached(raw):
    c = raw()
    c.send(connect_line() + b"SUB foo 1\r\n" + pub("foo", b"a") + pub("foo", b"b") + b"UNSUB 1 1\r\n" + pub("foo", b"c") + PING)
    assert c.read_until(PONG) == msg("foo", "1", b"a") + msg("foo", "1", b"b") + PONG


def test_unsub_stops_delivery(raw):
    c = raw()
    c.send(connect_line() + b"SUB foo 1\r\n" + pub("foo", b"a") + b"UNSUB 1\r\n" + pub("foo", b"b") + PING)
    assert c.read_until(PONG) == msg("foo", "1", b"a") + PONG


def test_echo_false(raw):
    me, other = raw(), raw()
    other.connect()
    other.send(b"SUB foo 2\r\n")
    assert other.roundtrip()
    other.reset_buffer()
    me.send(connect_line(echo=False) + b"SUB foo 1\r\n" + pub("foo", b"a") + PING)
    assert me.read_until(PONG) == PONG
    assert other.read_frames(1) == [msg("foo", "2", b"a")]


def test_wildcard_subscriptions(raw):
    c = raw()
    c.send(connect_line() + b"SUB foo.* 1\r\nSUB foo.> 2\r\nSUB *.bar 3\r\nSUB > 4\r\n")
    c.send(pub("foo.bar", b"1") + pub("foo.bar.baz", b"2") + pub("foo", b"3") + PING)
    c.read_until(PONG)
    got = sorted((m["subject"], m["sid"], m["payload"]) for m in map(parse_msg, c.frames()[:-1]))
    assert got == sorted([
        ("foo.bar", "1", b"1"), ("foo.bar", "2", b"1"), ("foo.bar", "3", b"1"), ("foo.bar", "4", b"1"),
        ("foo.bar.baz", "2", b"2"), ("foo.bar.baz", "4", b"2"),
        ("foo", "4", b"3"),
    ])
    assert c.frames()[-1] == PONG


def test_multiple_subs_same_subject_each_get_a_copy(raw):
    """Order among several matching subs of one connection is not defined
    (nats-server varies it run to run), so compare as a multiset."""
    c = raw()
    c.send(connect_line() + b"SUB foo 1\r\nSUB foo 2\r\nSUB foo 3\r\nSUB * 4\r\nSUB > 5\r\n" + pub("foo", b"a") + PING)
    c.read_until(PONG)
    frames = c.frames()
    assert frames[-1] == PONG
    assert sorted(frames[:-1]) == sorted(msg("foo", sid, b"a") for sid in "12345")


def test_queue_group_one_member_gets_each_message(raw):
    c = raw()
    c.send(connect_line() + b"SUB work q 1\r\nSUB work q 2\r\nSUB work 3\r\n")
    c.send(b"".join(pub("work", str(i).encode()) for i in range(20)) + PING)
    c.read_until(PONG)
    msgs = [parse_msg(f) for f in c.frames()[:-1]]
    plain = [m["payload"] for m in msgs if m["sid"] == "3"]
    queued = [m["payload"] for m in msgs if m["sid"] in ("1", "2")]
    assert plain == [str(i).encode() for i in range(20)]
    assert sorted(queued, key=int) == [str(i).encode() for i in range(20)]
    assert len(msgs) == 40


def test_queue_sub_message_line(raw):
    c = raw()
    c.send(connect_line() + b"SUB work grp 5\r\n" + pub("work", b"job", reply="inbox.1") + PING)
    assert c.read_until(PONG) == msg("work", "5", b"job", reply="inbox.1") + PONG


# -- Headers ---------------------------------------------------------------

def test_hpub_hmsg_minimal_header(raw):
    c = raw()
    c.send(connect_line(headers=True) + b"SUB foo 1\r\nHPUB foo rep 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n")
    assert c.read_until(PONG) == b"HMSG foo 1 rep 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPONG\r\n"


def test_hpub_hmsg_with_headers(raw):
    h = b"NATS/1.0\r\nFoo: Bar\r\nX-Multi: 1\r\nX-Multi: 2\r\n\r\n"
    c = raw()
    c.send(connect_line(headers=True) + b"SUB foo 1\r\n" + hpub("foo", h, b"payload") + hpub("foo", h, b"", reply="r") + PING)
    assert c.read_until(PONG) == hmsg("foo", "1", h, b"payload") + hmsg("foo", "1", h, b"", reply="r") + PONG


def test_hpub_verbose_ok(raw):
    c = raw()
    c.send(b'CONNECT {"verbose":true,"headers":true}\r\nSUB foo 1\r\nHPUB foo 12 12\r\nNATS/1.0\r\n\r\n\r\nPING\r\n')
    assert c.read_until(PONG) == OK + OK + OK + b"HMSG foo 1 12 12\r\nNATS/1.0\r\n\r\n\r\n" + PONG


def test_hpub_delivered_to_headers_capable_subscriber_only_as_hmsg(raw):
    """A PUB (no headers) arrives as MSG even for a headers-capable subscriber."""
    c = raw()
    c.send(connect_line(headers=True) + b"SUB foo 1\r\n" + pub("foo", b"x") + PING)
    assert c.read_until(PONG) == msg("foo", "1", b"x") + PONG


# -- Framing: split and pipelined input -------------------------------------

SMALL_SEQUENCE = (
    connect_line(headers=True)
    + b"SUB foo 1\r\nSUB bar.* 2\r\n"
    + pub("foo", b"hello", reply="r")
    + hpub("bar.x", b"NATS/1.0\r\nA: b\r\n\r\n", b"hd")
    + b"UNSUB 1\r\n" + pub("foo", b"gone") + PING
)
SMALL_EXPECTED = (
    msg("foo", "1", b"hello", reply="r")
    + hmsg("bar.x", "2", b"NATS/1.0\r\nA: b\r\n\r\n", b"hd")
    + PONG
)


def test_byte_by_byte(raw):
    c = raw()
    assert c.send_chunks(SMALL_SEQUENCE, [1] * len(SMALL_SEQUENCE))
    assert c.read_until(PONG) == SMALL_EXPECTED


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_split_boundaries(raw, seed):
    rng = random.Random(seed)
    payloads = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))) for _ in range(150)]
    data = connect_line(headers=True) + b"SUB s.* 7\r\n"
    expected = b""
    for i, p in enumerate(payloads):
        if i % 3 == 0:
            h = f"NATS/1.0\r\nSeq: {i}\r\n\r\n".encode()
            data += hpub(f"s.{i}", h, p)
            expected += hmsg(f"s.{i}", "7", h, p)
        else:
            data += pub(f"s.{i}", p, reply=f"re.{i}")
            expected += msg(f"s.{i}", "7", p, reply=f"re.{i}")
    data += PING
    expected += PONG
    sizes, total = [], 0
    while total < len(data):
        n = rng.choice([1, 1, 2, 3, 5, 8, 13, 64, 500, 1500])
        sizes.append(n)
        total += n
    c = raw()
    assert c.send_chunks(data, sizes)
    assert c.read_until(PONG, timeout=10) == expected


def test_5000_pipelined_pubs_in_one_send(raw):
    n = 5000
    sub, p = raw(), raw()
    sub.connect()
    sub.send(b"SUB pipe 1\r\n")
    assert sub.roundtrip()
    sub.reset_buffer()
    p.send(connect_line() + b"".join(pub("pipe", b"%d" % i) for i in range(n)) + PING)
    assert p.read_until(PONG, timeout=10) == PONG
    frames = sub.read_frames(n, timeout=10)
    assert len(frames) == n
    assert [parse_msg(f)["payload"] for f in frames] == [b"%d" % i for i in range(n)]


def test_5000_pipelined_pubs_same_connection(raw):
    n = 5000
    c = raw()
    c.send(connect_line() + b"SUB pipe 1\r\n" + b"".join(pub("pipe", b"%d" % i) for i in range(n)) + PING)
    c.read_pongs(1, timeout=10)
    frames = c.frames()
    assert len(frames) == n + 1 and frames[-1] == PONG
    assert [parse_msg(f)["payload"] for f in frames[:-1]] == [b"%d" % i for i in range(n)]
