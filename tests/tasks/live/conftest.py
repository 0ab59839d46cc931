"""Real streams on loopback for the live tests: the sample camera (`python -m tasks.ops.stream`, H.264 in MPEG-TS
over TCP at its frame rate) in its own process, which a test may kill and start again on the same port; `human3r
live` in its own process, with a WebSocket client collecting its feed."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Camera:
    """The sample camera on a port: `start()`, `kill()` (SIGKILL, as a camera that dies), `start()` again, or
    `swap()`."""

    def __init__(self, port: int, fps: float, *extra: str):
        self.port, self.fps, self.extra = port, fps, extra
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> Camera:
        self.proc = subprocess.Popen([sys.executable, "-m", "tasks.ops.stream", "--port", str(self.port), "--fps",
                                      str(self.fps), *self.extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=ENV, cwd=REPO)
        line = self.proc.stdout.readline()
        assert "listening" in line, line + self.proc.stderr.read()
        return self

    def kill(self) -> None:
        if self.proc is not None:
            _end(self.proc)

    def swap(self) -> None:
        """A new camera process takes over the port (it listens beside the old one), then the old one is killed
        mid-stream: its client's stream drops and can come back at once."""
        old = self.proc
        self.start()
        _end(old)


def _end(proc: subprocess.Popen) -> None:
    """Kill a camera process (if still running), reap it and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@pytest.fixture
def camera():
    """`camera(fps=10, *extra_args)`: a started sample camera on a free port (killed at the end)."""
    made: list[Camera] = []

    def make(fps: float = 10, *extra: str) -> Camera:
        made.append(Camera(free_port(), fps, *extra).start())
        return made[-1]

    yield make
    for cam in made:
        cam.kill()


class LiveProcess:
    """`human3r live` in its own process; `messages` collects its feed (a WebSocket client thread)."""

    def __init__(self, source: str, root: Path, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "tasks.cli.main", "live", source, "--out", str(root),
                                      "--checkpoint", "untrained:tiny", "--feed-port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.messages: list[dict] = []
        self.feed_url: str | None = None
        self._connected = threading.Event()
        threading.Thread(target=self._drain, args=(self.proc.stderr, self.stderr), daemon=True).start()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _drain(self, pipe, into: list[str]) -> None:
        for line in pipe:
            into.append(line)

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self.stdout.append(line)
            match = re.search(r"ws://127\.0\.0\.1:\d+/feed", line)
            if match and self.feed_url is None:
                self.feed_url = match.group(0)
                threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        from websockets.sync.client import connect

        with connect(self.feed_url, open_timeout=30) as ws:
            self._connected.set()
            try:
                for text in ws:
                    self.messages.append(json.loads(text))
            except Exception:  # noqa: BLE001 - the process went away
                return

    def wait_connected(self, timeout: float = 60) -> None:
        assert self._connected.wait(timeout), "".join(self.stdout + self.stderr)[-3000:]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        rc = self.proc.wait(timeout)
        time.sleep(0.2)  # the readers reach the end of the pipes
        return rc

    @property
    def log(self) -> str:
        return "".join(self.stdout + self.stderr)[-4000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        time.sleep(0.2)  # the reader threads reach the end of the pipes, then the pipes are closed
        for pipe in (self.proc.stdout, self.proc.stderr):
            pipe.close()


@pytest.fixture
def live_process():
    """`live_process(source, root, *args)`: `human3r live` started in its own process (killed at the end)."""
    made: list[LiveProcess] = []

    def make(source: str, root: Path, *args: str) -> LiveProcess:
        made.append(LiveProcess(source, root, *args))
        return made[-1]

    yield make
    for p in made:
        p.close()


def _wait_for(predicate, timeout: float, what: str, every: float = 0.25, *, logs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}" + "".join(f"\n--- {p.log}" for p in logs))


@pytest.fixture(scope="session")
def wait_for():
    """`wait_for(predicate, timeout, what)`: poll until `predicate()` is truthy (returns it); fail naming `what`."""
    return _wait_for
