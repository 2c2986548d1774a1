"""Disk faults on a real filesystem (brokerd only: nats-server disables JetStream when its disk fills, brokerd
keeps serving): a store that fills up, a file size limit, and damage in the middle of a stream.

- Full disk: publishes get 503 "storage failure", nothing is acknowledged that is not on disk, what a failed sync
  covered is taken back (not stored later behind the publisher's back), the rest of the stream is served, /jsz
  counts the failures, and once there is room again publishing goes on; after SIGKILL and a restart the stream
  holds exactly the acknowledged messages. The store is a small tmpfs where the machine lets us mount one, else
  the same run under RLIMIT_FSIZE (prlimit on the running brokerd: EFBIG, handled as a full disk).
- Damage: a flipped bit in the middle of the active block and a sealed block cut short are passed over at start,
  the rest is served, the log and /jsz say what was lost.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import nats
import nats.js.errors
import pytest
from jetstream_helpers import connect

WAIT = 10


def jsz(server) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/jsz", timeout=5) as r:
        return json.loads(r.read())


class SmallDisk:
    """A store directory that runs out of room: a 3 MiB tmpfs with a 1 MiB filler file (freed to make room),
    or, where mounting is not allowed, RLIMIT_FSIZE on the brokerd process (lifted to make room)."""

    def __init__(self, root: Path):
        self.root = root
        self.mount = root / "disk"
        self.mount.mkdir()
        # BROKERD_TEST_NO_TMPFS=1 runs the RLIMIT_FSIZE way even where mounting works.
        self.tmpfs = not os.environ.get("BROKERD_TEST_NO_TMPFS") and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(self.mount)], capture_output=True).returncode == 0
        self.store = self.mount / "store"
        self.store.mkdir()
        self.pid = None
        if self.tmpfs:
            (self.mount / "filler").write_bytes(b"\0" * (1 << 20))

    def attach(self, pid: int) -> None:
        """The brokerd whose writes fail: under RLIMIT_FSIZE, block files stop at 2 MiB."""
        self.pid = pid
        if not self.tmpfs:
            subprocess.run(["prlimit", f"--pid={pid}", f"--fsize={2 << 20}:"], check=True)  # the soft limit only

    def make_room(self) -> None:
        if self.tmpfs:
            (self.mount / "filler").unlink()
        else:
            subprocess.run(["prlimit", f"--pid={self.pid}", "--fsize=unlimited:"], check=True)

    def close(self) -> None:
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.mount)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path, target):
    if target.name != "brokerd":
        pytest.skip("nats-server disables JetStream when its disk is full; brokerd's outcome is its own")
    if os.geteuid() != 0 and shutil.which("prlimit") is None:
        pytest.skip("needs root (tmpfs) or prlimit")
    disk = SmallDisk(tmp_path)
    yield disk
    disk.close()


async def test_a_full_disk_refuses_publishes_and_recovers(server_factory, small_disk):
    s = server_factory("-js", "-sd", str(small_disk.store), http=True)
    small_disk.attach(s.proc.pid)
    nc, js = await connect(s, timeout=5)
    acked: dict[int, bytes] = {}
    refused = 0
    try:
        await js.add_stream(name="FULL", subjects=["full.>"])
        payload = b"x" * 16_000
        for i in range(400):
            body = b"%05d" % i + payload
            try:
                ack = await js.publish("full.a", body, headers={"Nats-Msg-Id": f"m{i}"})
            except nats.js.errors.APIError as e:
                assert (e.code, e.err_code) == (503, 10077) and "storage failure" in e.description
                refused += 1
                if refused >= 5:
                    break
                continue
            acked[ack.seq] = body
        assert refused >= 5 and len(acked) > 10
        assert s.proc.poll() is None, "brokerd keeps running"
        info = await js.stream_info("FULL")
        assert info.state.messages == len(acked)
        for seq in (min(acked), max(acked)):
            assert (await js.get_msg("FULL", seq)).data == acked[seq]
        faults = jsz(s)["storage_faults"]
        assert faults["sync_failures"] >= 1 and faults["messages_taken_back"] >= 1
        assert faults["last_failure"]["stream"] == "FULL"
        # Room again: publishing goes on after the last acknowledged sequence.
        small_disk.make_room()
        for i in range(400, 405):
            body = b"%05d" % i + b"after"
            ack = await js.publish("full.a", body, headers={"Nats-Msg-Id": f"m{i}"})
            assert ack.seq == max(acked) + 1
            acked[ack.seq] = body
    finally:
        await nc.close()
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(timeout=10)
    s2 = server_factory("-js", "-sd", str(small_disk.store))
    nc, js = await connect(s2)
    try:
        info = await js.stream_info("FULL")
        assert (info.state.messages, info.state.last_seq) == (len(acked), max(acked))
        got = {seq: (await js.get_msg("FULL", seq)).data for seq in range(info.state.first_seq, info.state.last_seq + 1)}
        assert got == acked, "exactly the acknowledged messages, nothing refused stored later"
    finally:
        await nc.close()


async def test_damage_in_the_middle_is_passed_over_and_reported(js_server, server_factory, tmp_path, target):
    if target.name != "brokerd":
        pytest.skip("brokerd's store layout")
    s = js_server
    store = tmp_path / "store"  # js_server's
    nc, js = await connect(s)
    await js.add_stream(name="D", subjects=["d.>"])
    await js.add_consumer("D", durable_name="c", ack_policy="explicit")
    for i in range(1, 41):
        await js.publish("d.x", b"alert-%02d" % i)
    await nc.close()
    assert s.terminate() == 0
    block = store / "jetstream" / "streams" / "D" / "msgs" / "00000001.blk"
    data = bytearray(block.read_bytes())
    at = data.find(b"alert-20")
    data[at + 3] ^= 0x01  # one flipped bit inside message 20
    block.write_bytes(bytes(data))
    # The consumer's state: both slots damaged (a crash could never do that: reported, delivery starts over).
    for slot in (store / "jetstream" / "streams" / "D" / "consumers" / "c").glob("state.*"):
        slot.write_bytes(b"garbage")
    s2 = server_factory("-js", "-sd", str(store), http=True)
    nc, js = await connect(s2)
    try:
        info = await js.stream_info("D")
        assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (39, 1, 40)
        assert (await js.get_msg("D", 21)).data == b"alert-21"
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.get_msg("D", 20)
        ack = await js.publish("d.x", b"alert-41")
        assert ack.seq == 41
        damage = jsz(s2)["storage_faults"]["damage_found_at_start"]
        stream_damage = [d for d in damage if "consumer" not in d]
        assert [(d["stream"], d["lost_first_seq"], d["lost_last_seq"]) for d in stream_damage] == [("D", 20, 20)]
        assert any(d.get("consumer") == "c" for d in damage)
        psub = await js.pull_subscribe_bind("c", "D")
        msgs = await psub.fetch(3, timeout=WAIT)
        assert [m.data for m in msgs] == [b"alert-01", b"alert-02", b"alert-03"]
        assert "passed over" in s2.log_text(20000)
    finally:
        await nc.close()


async def test_a_refused_publish_displaces_nothing(server_factory, small_disk):
    """A publish that gets 503 on a full disk takes nothing with it: the previous value of its subject under
    max_msgs_per_subject 1 (a KV put), the whole stream under `Nats-Rollup: all`, the oldest message under
    max_msgs with discard old all stay, in memory and after SIGKILL and a restart."""
    s = server_factory("-js", "-sd", str(small_disk.store), http=True)
    small_disk.attach(s.proc.pid)
    nc, js = await connect(s, timeout=5)
    model: dict[str, tuple[int, bytes]] = {}  # subject -> (seq, data): what the acks say the stream holds
    refused = 0

    async def put(subject: str, data: bytes, headers: dict | None = None) -> bool:
        nonlocal refused
        try:
            ack = await js.publish(subject, data, headers=headers)
        except nats.js.errors.APIError as e:
            assert (e.code, e.err_code) == (503, 10077)
            refused += 1
            return False
        if headers and headers.get("Nats-Rollup") == "all":
            model.clear()
        model[subject] = (ack.seq, data)
        while len(model) > 40:  # max_msgs 40, discard old: the oldest goes
            del model[min(model, key=lambda k: model[k][0])]
        return True

    async def check(js) -> None:
        info = await js.stream_info("LAST")
        assert info.state.messages == len(model)
        for subject, (seq, data) in model.items():
            got = await js.get_last_msg("LAST", subject)
            assert (got.seq, got.data) == (seq, data), subject

    try:
        await js.add_stream(name="LAST", subjects=["last.>"], max_msgs_per_subject=1, max_msgs=40,
                            allow_rollup_hdrs=True)
        i = 0
        while refused < 3 and i < 400:
            await put(f"last.{i % 60}", os.urandom(16_000))  # incompressible: sealing frees no room
            i += 1
        assert refused >= 3, "the disk filled up"
        await check(js)
        # On the full disk: puts over existing subjects and a rollup of everything; each either stored (and
        # then displacing) or refused (and then displacing nothing).
        for j in range(12):
            subject = next(iter(model)) if j % 2 else min(model, key=lambda k: model[k][0])
            await put(subject, os.urandom(16_000))
            await check(js)
        await put("last.rollup", os.urandom(16_000), {"Nats-Rollup": "all"})
        await check(js)
        assert refused >= 10, "most of them were refused"
        assert s.proc.poll() is None
    finally:
        await nc.close()
    small_disk.make_room()
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(timeout=10)
    s2 = server_factory("-js", "-sd", str(small_disk.store))
    nc, js = await connect(s2)
    try:
        await check(js)
    finally:
        await nc.close()
