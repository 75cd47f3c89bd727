"""Start real controller processes for tests, and stop exactly the ones we started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ADMIN_PASSWORD = "admin-test-pass"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ControllerProcess:
    data_dir: Path
    port: int = field(default_factory=free_port)
    db_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    dataplane: bool = False  # start Service Engines for the VSs created (tests must `local down`)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ControllerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"controller-{self.port}.log"
        argv = [sys.executable, "-m", "fulcrum", "controller", "run", "--listen", f"127.0.0.1:{self.port}"]
        argv += ["--data-dir", str(self.data_dir)]
        if self.db_url:
            argv += ["--db", self.db_url]
        env = {
            **os.environ,
            "FULCRUM_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "FULCRUM_ARGON2_MEMORY_KIB": "8192",
            "FULCRUM_DATAPLANE": "1" if self.dataplane else "0",
            **self.env,
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"controller exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"controller did not become healthy in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def client(self, user: str = "admin", password: str = ADMIN_PASSWORD, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=(user, password), timeout=10, **kwargs)  # type: ignore[arg-type]
