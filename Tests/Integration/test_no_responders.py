"""No-responders status messages (CONNECT headers:true, no_responders:true).

The exact header block is NOT compared: nats-server 2.15 sends
"NATS/1.0 503\r\nNats-Subject: req\r\n\r\n" while brokerd may send
"NATS/1.0 503\r\n\r\n". Only the status line, subject, sid and sizes are checked.
"""

from harness import PING, PONG, connect_line, hpub, msg, parse_msg, pub


def _single_hmsg(c):
    d = c.read_until(PONG)
    frames = c.frames()
    assert frames[-1] == PONG, d
    assert len(frames) == 2, d
    return parse_msg(frames[0])


def test_no_responders_status(raw):
    c = raw()
    c.send(connect_line(headers=True, no_responders=True) + b"SUB _INBOX.abc 1\r\n" + pub("req", b"", reply="_INBOX.abc") + PING)
    m = _single_hmsg(c)
    assert m["verb"] == "HMSG"
    assert m["subject"] == "_INBOX.abc"
    assert m["sid"] == "1"
    assert m["reply"] is None
    assert m["headers"].split(b"\r\n", 1)[0] == b"NATS/1.0 503"
    assert m["headers"].endswith(b"\r\n\r\n")
    assert m["payload"] == b""
    assert m["hsize"] == m["size"] == len(m["headers"])


def test_no_responders_for_hpub_request_with_payload(raw):
    c = raw()
    c.send(connect_line(headers=True, no_responders=True) + b"SUB _INBOX.r.* 7\r\n"
           + hpub("svc.x", b"NATS/1.0\r\nA: b\r\n\r\n", b"payload", reply="_INBOX.r.1") + PING)
    m = _single_hmsg(c)
    assert (m["subject"], m["sid"]) == ("_INBOX.r.1", "7")
    assert m["headers"].split(b"\r\n", 1)[0] == b"NATS/1.0 503"
    assert m["payload"] == b""


def test_no_responders_verbose(raw):
    c = raw()
    c.send(connect_line(verbose=True, headers=True, no_responders=True) + b"SUB _INBOX.v 2\r\n" + pub("req", b"x", reply="_INBOX.v") + PING)
    c.read_until(PONG)
    frames = c.frames()
    assert frames[:3] == [b"+OK\r\n"] * 3
    assert frames[-1] == PONG and len(frames) == 5
    m = parse_msg(frames[3])
    assert (m["verb"], m["subject"], m["sid"]) == ("HMSG", "_INBOX.v", "2")
    assert m["headers"].startswith(b"NATS/1.0 503\r\n")


def test_no_status_when_a_responder_exists(raw):
    responder, c = raw(), raw()
    responder.connect()
    responder.send(b"SUB req 1\r\n")
    assert responder.roundtrip()
    c.send(connect_line(headers=True, no_responders=True) + b"SUB _INBOX.ok 1\r\n" + pub("req", b"q", reply="_INBOX.ok") + PING)
    assert c.read_until(PONG) == PONG
    assert responder.read_frames(3)[-1] == msg("req", "1", b"q", reply="_INBOX.ok")


def test_no_status_without_no_responders_flag(raw):
    c = raw()
    c.send(connect_line(headers=True) + b"SUB _INBOX.n 1\r\n" + pub("req", b"", reply="_INBOX.n") + PING)
    assert c.read_until(PONG) == PONG


def test_no_status_without_reply_subject(raw):
    c = raw()
    c.send(connect_line(headers=True, no_responders=True) + b"SUB > 1\r\nUNSUB 1\r\n" + pub("req", b"") + PING)
    assert c.read_until(PONG) == PONG
