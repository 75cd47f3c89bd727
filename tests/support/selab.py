"""Service Engines' HAProxys for data-plane tests: each one is a `ConfigApplier` (as the agent uses) in a
private run directory, and stopping it stops exactly the HAProxy it started.

Addresses are loopback only: VIPs in 127.100.0.0/16, scale-out worker addresses in 127.101.0.0/16.
"""

from __future__ import annotations

import random
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fulcrum.protocol.se import SeConfig, VsSpec
from fulcrum.se.apply import ApplyResult, ConfigApplier
from fulcrum.se.haproxy import HAProxyProcess
from fulcrum.se.render import RuntimePaths


def random_address(prefix: str, taken: set[str] | None = None) -> str:
    """A random loopback address `prefix.x.y` not in `taken` (which it joins)."""
    taken = taken if taken is not None else set()
    while True:
        address = f"{prefix}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        if address not in taken:
            taken.add(address)
            return address


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
        return True


def free_ports(vip: str, workers: list[str], count: int = 1) -> tuple[int, int]:
    """(first port, worker port offset): `count` consecutive ports free on the VIP, and the same ports
    shifted by the offset free on every worker address."""
    for _ in range(200):
        port = random.randint(20000, 40000 - count)
        offset = random.randint(1000, 65535 - 40000)
        if all(_bindable(vip, p) for p in range(port, port + count)) and all(
            _bindable(worker, p + offset) for worker in workers for p in range(port, port + count)
        ):
            return port, offset
    raise RuntimeError("no free ports found")


@dataclass
class SeLab:
    """One SE's HAProxy, applying successive configurations under increasing versions."""

    se_uuid: str
    run_dir: Path
    applier: ConfigApplier
    version: int = 0

    @classmethod
    def create(cls, se_uuid: str) -> SeLab:
        # A short private directory: UNIX socket paths are limited to 107 bytes.
        run_dir = Path(tempfile.mkdtemp(prefix="fulcrum-se-", dir="/tmp"))
        return cls(se_uuid, run_dir, ConfigApplier(RuntimePaths(run_dir), HAProxyProcess(run_dir)))

    @property
    def process(self) -> HAProxyProcess:
        return self.applier.process

    def apply(self, *virtualservices: VsSpec) -> ApplyResult:
        self.version += 1
        config = SeConfig(se_uuid=self.se_uuid, version=self.version, virtualservices=virtualservices)
        return self.applier.apply(config)

    def apply_ok(self, *virtualservices: VsSpec) -> ApplyResult:
        result = self.apply(*virtualservices)
        assert result.ok, result.error
        return result

    def stat(self, proxy: str, row: str) -> dict[str, str]:
        """One row of `show stat`: `row` is FRONTEND, BACKEND or a server name."""
        rows = self.process.runtime().show_stat()
        return next(r for r in rows if r["pxname"] == proxy and r["svname"] == row)

    def wait_status(self, proxy: str, row: str, expected: str, timeout: float = 8.0) -> None:
        """Wait for a server's exact status: `UP 1/2` (not checked yet, or failing) is not `UP`."""
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            status = self.stat(proxy, row)["status"]
            if status == expected:
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.se_uuid}: {proxy}/{row} is {status!r}, expected {expected!r}")

    def close(self) -> None:
        """Stop the HAProxy this lab started (if it still runs) and remove its run directory."""
        try:
            self.process.stop(graceful=False)
        finally:
            shutil.rmtree(self.run_dir, ignore_errors=True)
