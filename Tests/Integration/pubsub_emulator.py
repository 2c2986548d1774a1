"""The real Google Cloud Pub/Sub emulator (installed with the Google Cloud CLI) for the bridge tests.

Started on 127.0.0.1 and a free port (never ::1: the emulator answers 503 there), ready when `GET /` says
`Ok`. Its state is in memory: after a restart, topics and subscriptions must be created again.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from harness import HOST, free_port


def emulator_script() -> Optional[str]:
    gcloud = shutil.which("gcloud")
    roots = []
    if gcloud:
        try:
            out = subprocess.run([gcloud, "info", "--format=value(installation.sdk_root)"], capture_output=True,
                                 text=True, timeout=60).stdout.strip()
            if out:
                roots.append(out)
        except (OSError, subprocess.TimeoutExpired):
            pass
    roots += ["/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk"]
    for root in roots:
        script = Path(root) / "platform/pubsub-emulator/bin/cloud-pubsub-emulator"
        if script.exists():
            return str(script)
    return None


class Emulator:
    def __init__(self, workdir: Path, port: Optional[int] = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.log = workdir / f"emulator-{self.port}.log"

    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, timeout: float = 60.0) -> "Emulator":
        script = emulator_script()
        if script is None:
            raise RuntimeError("the Pub/Sub emulator is not installed (google-cloud-cli-pubsub-emulator)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, JAVA_OPTS="-Xmx512m")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([script, f"--host={HOST}", f"--port={self.port}"], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as r:
                    if r.read().strip() == b"Ok":
                        return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"emulator not ready in {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    # -- REST helpers -----------------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Optional[dict] = None, timeout: float = 30) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://{self.host}/v1/{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            return json.loads(text) if text else {}

    def create_topic(self, project: str, topic: str) -> None:
        try:
            self.call("PUT", f"projects/{project}/topics/{topic}")
        except urllib.error.HTTPError as e:
            if e.code != 409:
                raise

    def create_subscription(self, project: str, topic: str, sub: str) -> None:
        try:
            self.call("PUT", f"projects/{project}/subscriptions/{sub}",
                      {"topic": f"projects/{project}/topics/{topic}", "ackDeadlineSeconds": 60})
        except urllib.error.HTTPError as e:
            if e.code != 409:
                raise

    def pull(self, project: str, sub: str, max_messages: int = 1000) -> list[dict]:
        """Pulls and acks what is there now: [{"data": bytes, "attributes": {...}, "messageId": ...}]."""
        r = self.call("POST", f"projects/{project}/subscriptions/{sub}:pull",
                      {"maxMessages": max_messages, "returnImmediately": True})
        received = r.get("receivedMessages", [])
        if received:
            self.call("POST", f"projects/{project}/subscriptions/{sub}:acknowledge",
                      {"ackIds": [m["ackId"] for m in received]})
        out = []
        for m in received:
            msg = m["message"]
            out.append({"data": base64.b64decode(msg.get("data", "")), "attributes": msg.get("attributes", {}),
                        "messageId": msg["messageId"], "orderingKey": msg.get("orderingKey")})
        return out

    def pull_until(self, project: str, sub: str, count: int, timeout: float = 60, quiet: float = 0) -> list[dict]:
        """Pulls until `count` messages arrived (or timeout), then `quiet` seconds more for extras."""
        got: list[dict] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            batch = self.pull(project, sub)
            got += batch
            if not batch:
                time.sleep(0.1)
        end = time.monotonic() + quiet
        while time.monotonic() < end:
            got += self.pull(project, sub)
            time.sleep(0.1)
        return got
