"""Exact -ERR texts, and whether the server closes the connection afterwards.

Every expectation here was checked against nats-server 2.15.1.
"""

import pytest

from harness import (
    DEFAULT_MAX_CONTROL_LINE, DEFAULT_MAX_PAYLOAD, ERR_INVALID_PUB_SUBJECT, ERR_INVALID_SUBJECT,
    ERR_MAX_CONTROL_LINE, ERR_MAX_PAYLOAD, ERR_NO_RESPONDERS_NEEDS_HEADERS, ERR_UNKNOWN_OP, OK, PING,
    PONG, connect_line, msg, pub,
)

CONNECT = connect_line()


def assert_error_and_close(c, err: bytes, timeout: float = 5.0):
    assert c.read_until_closed(timeout), f"connection not closed; got {c.data()!r}"
    assert c.data() == err


def assert_still_open(c):
    assert c.roundtrip(), f"no PONG after error; got {c.data()!r} closed={c.closed}"
    assert not c.closed


# -- Unknown Protocol Operation (fatal) ----------------------------------------

@pytest.mark.parametrize("data", [
    b"FOO\r\n",
    b"FOO",  # no CRLF: rejected as soon as the bytes cannot start a verb
    CONNECT + b"FOO\r\n",
    CONNECT + b"FOO",
    CONNECT + b"PUBLISH foo 1\r\n",
    CONNECT + b"MSG foo 1 1\r\na\r\n",  # server->client verb sent by a client
    CONNECT + b"UNSUB\r\n",
], ids=["FOO-crlf", "FOO-no-crlf", "after-connect", "after-connect-no-crlf", "PUBLISH", "client-MSG", "UNSUB-no-args"])
def test_unknown_protocol_operation_closes(raw, data):
    c = raw()
    c.send(data)
    assert_error_and_close(c, ERR_UNKNOWN_OP)


def test_payload_longer_than_declared_closes(raw):
    c = raw()
    c.send(CONNECT + b"SUB foo 1\r\nPUB foo 1\r\nab\r\nPING\r\n")
    assert_error_and_close(c, ERR_UNKNOWN_OP)


def test_payload_shorter_than_declared_closes(raw):
    """PUB foo 3 with "hi": the CRLF and the next verb are read as payload,
    then the byte after the payload is not CRLF."""
    c = raw()
    c.send(CONNECT + b"PUB foo 3\r\nhi\r\nPING\r\n")
    assert_error_and_close(c, ERR_UNKNOWN_OP)


def test_incomplete_payload_waits(raw):
    """A PUB whose payload has not fully arrived is not an error: the rest can follow."""
    c = raw()
    c.send(CONNECT + b"SUB foo 1\r\nPUB foo 5\r\nhel")
    c.send(b"lo\r\nPING\r\n")
    assert c.read_until(PONG) == msg("foo", "1", b"hello") + PONG


# -- Maximum Payload Violation (fatal) -------------------------------------------

def test_pub_over_max_payload_closes(raw):
    c = raw()
    c.send(CONNECT + f"PUB foo {DEFAULT_MAX_PAYLOAD + 1}\r\n".encode())
    assert_error_and_close(c, ERR_MAX_PAYLOAD)


def test_hpub_over_max_payload_closes(raw):
    c = raw()
    c.send(connect_line(headers=True) + f"HPUB foo 12 {DEFAULT_MAX_PAYLOAD + 1}\r\n".encode())
    assert_error_and_close(c, ERR_MAX_PAYLOAD)


def test_pub_over_max_payload_with_payload_sent_closes(raw):
    c = raw()
    c.send(CONNECT + pub("foo", b"x" * (DEFAULT_MAX_PAYLOAD + 1)) + PING)
    assert_error_and_close(c, ERR_MAX_PAYLOAD)


# -- maximum control line exceeded (fatal) ---------------------------------------

@pytest.mark.parametrize("data", [
    CONNECT + b"PUB " + b"a" * 5000 + b" 1\r\nx\r\n",
    CONNECT + b"SUB " + b"a" * 5000 + b" 1\r\n",
    CONNECT + b"PUB " + b"a" * 5000,  # no CRLF yet
    CONNECT + b"SUB " + b"a" * 5000,
    b'CONNECT {"verbose":false,"name":"' + b"n" * 5000 + b'"}\r\nPING\r\n',
], ids=["PUB", "SUB", "PUB-no-crlf", "SUB-no-crlf", "CONNECT"])
def test_control_line_over_4096_closes(raw, data):
    c = raw()
    c.send(data)
    assert_error_and_close(c, ERR_MAX_CONTROL_LINE)


@pytest.mark.parametrize("verb", [b"PUB", b"SUB"])
def test_control_line_limit_applies_to_arguments(raw, verb):
    """nats-server compares the argument bytes after "VERB " (CRLF excluded)
    with max_control_line: 4096 argument bytes pass, 4097 are rejected."""
    tail = b" 0" if verb == b"PUB" else b" 1"
    ok_args = b"a" * (DEFAULT_MAX_CONTROL_LINE - len(tail)) + tail
    assert len(ok_args) == DEFAULT_MAX_CONTROL_LINE
    body = b"\r\n" if verb == b"PUB" else b""
    c = raw()
    c.send(CONNECT + verb + b" " + ok_args + b"\r\n" + body + PING)
    assert c.read_until(PONG) == PONG
    c.send(verb + b" " + b"a" + ok_args + b"\r\n" + body + PING)
    assert_error_and_close(c, PONG + ERR_MAX_CONTROL_LINE)


# -- Invalid Subject (not fatal) -------------------------------------------------

@pytest.mark.parametrize("subject", [b"foo..bar", b"foo.>.bar", b".foo", b"foo.", b">.foo"])
def test_sub_invalid_subject_keeps_connection(raw, subject):
    c = raw()
    c.send(CONNECT + b"SUB " + subject + b" 1\r\nPING\r\n")
    assert c.read_until(PONG) == ERR_INVALID_SUBJECT + PONG
    assert_still_open(c)
    # The connection is fully usable afterwards.
    c.send(b"SUB ok 2\r\n" + pub("ok", b"y") + PING)
    assert c.read_pongs(3) == ERR_INVALID_SUBJECT + PONG + PONG + msg("ok", "2", b"y") + PONG


def test_sub_invalid_subject_verbose_no_ok(raw):
    c = raw()
    c.send(b'CONNECT {"verbose":true}\r\nSUB foo..bar 1\r\nPING\r\n')
    assert c.read_until(PONG) == OK + ERR_INVALID_SUBJECT + PONG


def test_invalid_subject_sub_not_registered(raw):
    c = raw()
    c.send(CONNECT + b"SUB foo..bar 1\r\n" + pub("foo..bar", b"x") + PING)
    d = c.read_until(PONG)
    assert b"MSG" not in d
    assert d.startswith(ERR_INVALID_SUBJECT)
    assert d.endswith(PONG)


# -- Invalid Publish Subject (not fatal) ------------------------------------------
#
# nats-server checks publish subjects only in pedantic mode, and "pedantic"
# DEFAULTS TO TRUE when CONNECT omits it (like "verbose"). The check only sends
# -ERR 'Invalid Publish Subject': a wildcard publish subject is still routed
# (its "*"/">" tokens match subscriptions as ordinary tokens would).

def test_pedantic_pub_wildcard_keeps_connection(raw):
    c = raw()
    c.send(connect_line(pedantic=True) + pub("foo.*", b"hi") + PING)
    assert c.read_until(PONG) == ERR_INVALID_PUB_SUBJECT + PONG
    assert_still_open(c)


def test_pedantic_pub_wildcard_is_still_delivered(raw):
    c = raw()
    c.send(connect_line(pedantic=True) + b"SUB > 1\r\n" + pub("foo.*", b"hi") + PING)
    assert c.read_until(PONG) == ERR_INVALID_PUB_SUBJECT + msg("foo.*", "1", b"hi") + PONG


@pytest.mark.parametrize("subject", ["foo.>", "*", ">"])
def test_pedantic_pub_other_wildcards(raw, subject):
    c = raw()
    c.send(connect_line(pedantic=True) + pub(subject, b"hi") + PING)
    assert c.read_until(PONG) == ERR_INVALID_PUB_SUBJECT + PONG


def test_pedantic_hpub_wildcard(raw):
    c = raw()
    c.send(connect_line(pedantic=True, headers=True) + b"HPUB foo.> 12 12\r\nNATS/1.0\r\n\r\n\r\nPING\r\n")
    assert c.read_until(PONG) == ERR_INVALID_PUB_SUBJECT + PONG


def test_pedantic_verbose_pub_wildcard_err_then_ok(raw):
    """nats-server sends the -ERR when it parses the PUB line and then still
    sends +OK once the payload has been consumed."""
    c = raw()
    c.send(b'CONNECT {"verbose":true,"pedantic":true}\r\nPUB foo.* 1\r\na\r\nPING\r\n')
    assert c.read_until(PONG) == OK + ERR_INVALID_PUB_SUBJECT + OK + PONG


def test_pedantic_defaults_to_true(raw):
    c = raw()
    c.send(b'CONNECT {"verbose":false}\r\n' + pub("foo.*", b"hi") + PING)
    assert c.read_until(PONG) == ERR_INVALID_PUB_SUBJECT + PONG


def test_non_pedantic_pub_wildcard_delivered_without_error(raw):
    c = raw()
    c.send(connect_line(pedantic=False) + b"SUB > 1\r\n" + pub("foo.*", b"hi") + pub(">", b"x") + PING)
    assert c.read_until(PONG) == msg("foo.*", "1", b"hi") + msg(">", "1", b"x") + PONG


def test_pub_malformed_subject_dropped(raw):
    """A publish subject with an empty token is never routed; pedantic adds -ERR."""
    c = raw()
    c.send(connect_line(pedantic=False) + b"SUB > 1\r\n" + pub("foo..bar", b"hi") + PING)
    assert c.read_until(PONG) == PONG
    c2 = raw()
    c2.send(connect_line(pedantic=True) + b"SUB > 1\r\n" + pub("foo..bar", b"hi") + PING)
    assert c2.read_until(PONG) == ERR_INVALID_PUB_SUBJECT + PONG


# -- Parse errors that close without any -ERR -----------------------------------

@pytest.mark.parametrize("data", [
    CONNECT + b"PUB foo\r\n",  # missing size
    CONNECT + b"PUB foo x\r\n",  # bad size
    CONNECT + b"SUB foo bar baz 1\r\n",  # too many args
    b"CONNECT {bad json\r\n",
    CONNECT + b"SUB foo 1\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",  # HPUB without "headers":true
    CONNECT + b"-ERR 'x'\r\n",
], ids=["PUB-no-size", "PUB-bad-size", "SUB-too-many-args", "CONNECT-bad-json", "HPUB-without-headers", "client-ERR"])
def test_parse_error_closes_silently(raw, data):
    c = raw()
    c.send(data + PING)
    assert c.read_until_closed(5), f"not closed, got {c.data()!r}"
    assert c.data() == b""


def test_no_responders_requires_headers(raw):
    c = raw()
    c.send(connect_line(no_responders=True) + PING)
    assert_error_and_close(c, ERR_NO_RESPONDERS_NEEDS_HEADERS)
