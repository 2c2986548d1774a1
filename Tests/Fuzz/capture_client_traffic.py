"""Records what a real client (nats-py) sends to a NATS server, one file per connection, as the seed corpus of
the client-parser fuzz target (Tests/Fuzz/corpus/client-parser/nats-py-*).

    PATH=$PWD/.build/venv/bin:$PATH .build/venv/bin/python Tests/Fuzz/capture_client_traffic.py Tests/Fuzz/corpus/client-parser

It starts nats-server (with JetStream, on 127.0.0.1) behind a small TCP proxy on 127.0.0.1 that copies every
client's bytes to a file, then runs the client operations the integration tests use: CONNECT (plain, with a
token, with headers), PUB, HPUB, SUB, queue SUB, UNSUB with a max, request/reply, flush (PING), JetStream
publish, a pull consumer with acks.
"""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import nats

HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


async def proxy(listen_port, server_port, out_dir, counter):
    async def handle(reader, writer):
        counter[0] += 1
        path = os.path.join(out_dir, f"nats-py-{counter[0]:02d}.bin")
        up_reader, up_writer = await asyncio.open_connection(HOST, server_port)

        async def pipe(src, dst, record):
            try:
                while data := await src.read(65536):
                    if record is not None:
                        record.write(data)
                        record.flush()
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        with open(path, "wb") as record:
            await asyncio.gather(pipe(reader, up_writer, record), pipe(up_reader, writer, None))

    return await asyncio.start_server(handle, HOST, listen_port)


async def scenarios(url, token_url):
    # Plain: publish, subscribe, queue group, unsubscribe with a max, request/reply, flush.
    nc = await nats.connect(url, name="capture", no_echo=False)
    sub = await nc.subscribe("orders.>")
    qsub = await nc.subscribe("work.*", queue="workers")
    await nc.publish("orders.new", b"hello")
    await nc.publish("orders.new", b"")
    await nc.publish("orders.big", b"x" * 3000)
    await nc.publish("work.1", b"job", reply="_INBOX.reply")
    await nc.publish("orders.h", b"with headers", headers={"Nats-Msg-Id": "id-1", "X-Trace": "a b c"})
    await sub.unsubscribe(limit=5)

    async def responder(msg):
        await msg.respond(b"pong:" + msg.data)

    await nc.subscribe("svc.echo", cb=responder)
    await nc.request("svc.echo", b"ping", timeout=2)
    await nc.flush()
    await qsub.unsubscribe()
    await nc.drain()

    # Token auth (the server requires none, but the CONNECT carries auth_token), no_responders request.
    nc = await nats.connect(token_url, token="s3cret", verbose=True, pedantic=True)
    try:
        await nc.request("nobody.home", b"?", timeout=1)
    except Exception:
        pass
    await nc.close()

    # JetStream: a stream, publishes with PubAcks, a pull consumer with acks.
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="FALCO", subjects=["FALCO.>"])
    for priority in ("Notice", "Error", "Critical"):
        await js.publish(f"FALCO.{priority}", b'{"priority":"%s","rule":"r","output":"o"}' % priority.encode(),
                         headers={"Nats-Msg-Id": f"m-{priority}"})
    psub = await js.pull_subscribe("FALCO.>", durable="reader")
    for msg in await psub.fetch(3, timeout=2):
        await msg.ack()
    await nc.close()


async def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    server_port, proxy_port = free_port(), free_port()
    store = tempfile.mkdtemp(prefix="capture-js-")
    server = subprocess.Popen(["nats-server", "-a", HOST, "-p", str(server_port), "-js", "-sd", store],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection((HOST, server_port), timeout=0.1).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        counter = [0]
        listener = await proxy(proxy_port, server_port, out_dir, counter)
        url = f"nats://{HOST}:{proxy_port}"
        await scenarios(url, url)
        await asyncio.sleep(0.2)
        listener.close()
        print(f"{counter[0]} connections recorded in {out_dir}")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "Tests/Fuzz/corpus/client-parser"))
