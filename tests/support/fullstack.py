"""The whole stack for end-to-end tests: a controller process with its data plane, and HTTP back ends.

Everything started here is recorded and stopped exactly: the controller by its PID, the SEs with
`fulcrum local down --data-dir` (which signals only the processes that data dir recorded).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil

from support.processes import ControllerProcess, free_port

SLEEP_S = 1.3
SLOW_CHUNKS = 10
SLOW_PAUSE_S = 0.3


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            self._slow()
            return
        if self.path.startswith("/fail"):  # an injected server error
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/sleep"):  # a slow answer: SLEEP_S before the response
            time.sleep(SLEEP_S)
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Seen-XFF", self.headers.get("X-Forwarded-For", ""))
        self.end_headers()
        self.wfile.write(body)

    def _slow(self) -> None:
        """SLOW_CHUNKS chunks of 1000 bytes, SLOW_PAUSE_S apart: a long-lived established connection."""
        self.send_response(200)
        self.send_header("Content-Length", str(SLOW_CHUNKS * 1000))
        self.end_headers()
        for _ in range(SLOW_CHUNKS):
            self.wfile.write(b"x" * 1000)
            self.wfile.flush()
            time.sleep(SLOW_PAUSE_S)

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        return


class Backend:
    def __init__(self, name: str) -> None:
        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self.server.name = name  # type: ignore[attr-defined]
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value {last!r}")


@dataclass
class Stack:
    controller: ControllerProcess
    backends: list[Backend] = field(default_factory=list)


@contextlib.contextmanager
def running_stack(backends: tuple[str, ...] = ("alpha", "beta"), **env: str) -> Iterator[Stack]:
    """A controller with its data plane in a short data dir (SE run dirs hold UNIX sockets) and back ends."""
    short = Path(tempfile.mkdtemp(prefix="fulcrum-e2e-", dir="/tmp"))
    ctrl = ControllerProcess(data_dir=short / "ctrl", dataplane=True, env=dict(env)).start()
    stack = Stack(ctrl, [Backend(name) for name in backends])
    try:
        yield stack
    finally:
        for backend in stack.backends:
            backend.stop()
        ctrl.kill()
        down = subprocess.run(
            [sys.executable, "-m", "fulcrum", "local", "down", "--data-dir", str(ctrl.data_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert down.returncode == 0, down.stderr
        shutil.rmtree(short, ignore_errors=True)


def se_pids(se_runtime: dict[str, Any]) -> list[int]:
    """Every process of one SE: its agent, its HAProxy master and the master's workers."""
    facts = se_runtime["cloud"]
    pids = [p for p in (facts.get("agent_pid"), facts.get("haproxy_master_pid")) if p]
    for pid in list(pids):
        with contextlib.suppress(psutil.Error):
            pids += [child.pid for child in psutil.Process(pid).children(recursive=True)]
    return sorted(set(pids))


def signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class Load:
    """Steady requests to `url` from a thread, one new connection each, recording every failure."""

    def __init__(self, url: str, pause_s: float = 0.01) -> None:
        self.url = url
        self.pause_s = pause_s
        self.ok = 0
        self.failures: list[tuple[float, str]] = []  # (monotonic time, error)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = httpx.get(self.url, timeout=5)
                if response.status_code == 200:
                    self.ok += 1
                else:
                    self.failures.append((time.monotonic(), f"HTTP {response.status_code}"))
            except httpx.HTTPError as exc:
                self.failures.append((time.monotonic(), repr(exc)))
            time.sleep(self.pause_s)


class SlowDownload:
    """One long download (the back end's /slow) on its own connection, in a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.size = -1
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.size = len(httpx.get(self.url, timeout=30).content)
        except httpx.HTTPError as exc:
            self.error = repr(exc)

    def result(self) -> tuple[int, str | None]:
        self._thread.join(timeout=30)
        return self.size, self.error
