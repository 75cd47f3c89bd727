"""Shared pieces of the benchmarks: a controller with the local cloud, fast back ends, wrk.

Everything runs on loopback; every process started here is recorded and stopped by `Lab.close()`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def need(binary: str, package: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if not path:
        raise SystemExit(f"{binary} is missing: apt-get install {package}")
    return path


STATIC_BACKEND = """
global
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend static
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain string "{name}"
"""


class Lab:
    """A throw-away controller (SQLite, local cloud) plus static HTTP back ends."""

    def __init__(self) -> None:
        # SIGTERM (e.g. from `timeout`) unwinds through the callers' `finally: lab.close()`.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
        self.dir = Path(tempfile.mkdtemp(prefix="fulcrum-bench-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.controller: subprocess.Popen[bytes] | None = None

    def backend(self, name: str) -> int:
        """A static HTTP back end (an HAProxy that answers by itself): fast enough not to be the limit."""
        port = free_port()
        cfg = self.dir / f"backend-{name}.cfg"
        cfg.write_text(STATIC_BACKEND.format(port=port, name=name))
        self.procs.append(
            subprocess.Popen([need("haproxy", "haproxy"), "-f", str(cfg)], stdout=subprocess.DEVNULL)
        )
        wait_for(f"back end {name}", lambda: _connects(port))
        return port

    def plain_haproxy(self, listen: str, listen_port: int, servers: list[int]) -> None:
        """A minimal hand-written haproxy.cfg in front of the same back ends, for comparison."""
        lines = [
            "global",
            "defaults",
            "    mode http",
            "    option http-keep-alive",
            "    timeout connect 5s",
            "    timeout client 30s",
            "    timeout server 30s",
            "frontend fe",
            f"    bind {listen}:{listen_port}",
            "    default_backend be",
            "backend be",
            "    balance roundrobin",
            *[f"    server s{i} 127.0.0.1:{port}" for i, port in enumerate(servers)],
        ]
        cfg = self.dir / "plain.cfg"
        cfg.write_text("\n".join(lines) + "\n")
        self.procs.append(
            subprocess.Popen([need("haproxy", "haproxy"), "-f", str(cfg)], stdout=subprocess.DEVNULL)
        )
        wait_for("plain haproxy", lambda: _connects(listen_port, listen))

    def start_controller(self) -> httpx.Client:
        env = {**os.environ, "FULCRUM_ADMIN_PASSWORD": PASSWORD, "FULCRUM_ARGON2_MEMORY_KIB": "8192"}
        argv = [sys.executable, "-m", "fulcrum", "controller", "run", "--listen", f"127.0.0.1:{self.port}"]
        argv += ["--data-dir", str(self.dir / "ctrl"), "--log-level", "warning"]
        log = open(self.dir / "controller.log", "ab")  # noqa: SIM115 - kept open for the process's life
        self.controller = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for("the controller", lambda: _healthy(self.url))
        api = httpx.Client(base_url=self.url, auth=("admin", PASSWORD), timeout=30)
        group = api.get("/api/serviceenginegroup", params={"name": "Default-Group"}).json()["results"][0]
        # No buffer SE: the throughput benchmarks compare one SE with one plain HAProxy.
        api.patch(group["url"], json={"se_deprovision_delay": 0, "max_vs_per_se": 100, "buffer_se": 0})
        return api

    def wait_vs_up(self, api: httpx.Client, vs_url: str, timeout: float = 60) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            runtime = api.get(f"{vs_url}/runtime").json()
            return runtime if runtime["oper_status"] == "OPER_UP" else None

        return wait_for(f"{vs_url} to be up", check, timeout)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.controller is not None:
            self.controller.send_signal(signal.SIGTERM)
            self.controller.wait(timeout=20)
        subprocess.run(
            [sys.executable, "-m", "fulcrum", "local", "down", "--data-dir", str(self.dir / "ctrl")],
            capture_output=True,
            check=False,
        )
        for proc in self.procs:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _connects(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_ERRORS = re.compile(
    r"Non-2xx or 3xx responses:\s+(\d+)|Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)


def wrk(url: str, seconds: float, connections: int = 32, close: bool = False) -> dict[str, float]:
    argv = [need("wrk", "wrk"), "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url]
    if close:
        argv[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    match = _RPS.search(out)
    if match is None:
        raise SystemExit(f"could not read wrk output:\n{out}")
    errors = sum(int(n) for m in _ERRORS.finditer(out) for n in m.groups() if n)
    return {"rps": float(match.group(1)), "errors": errors}
