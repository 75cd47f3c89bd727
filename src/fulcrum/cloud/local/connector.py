"""The local cloud: every SE is a process group (agent + HAProxy) on this host, VIPs are loopback addresses.

Each SE runs in its own process group, so that it outlives a controller restart and a Ctrl-C meant for
the controller, but in the controller's session: a new session would also be a new scheduler autogroup,
and on a busy host the kernel would then share CPU between "the SE" and "everything else" as equals
(measured: 0.86 of a plain HAProxy's throughput instead of 1.0 in bench/dataplane.py).
Every process started is recorded, with its start time, in `<data-dir>/local-cloud/ses.json`;
deletion and `fulcrum local down` signal exactly those processes (a recycled PID with another start
time is left alone).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from fulcrum.cloud.base import SeDetails, SeObservation, SeSpec, VipAllocation

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# Each local SE gets its own data address from this loopback range (VIPs may not use it).
SE_DATA_NETWORK = ipaddress.ip_network("127.254.0.0/16")
STOP_GRACE_S = 5.0


log = logging.getLogger("fulcrum.cloud.local")
MIGRATE_REQ = Path("/proc/sys/net/ipv4/tcp_migrate_req")


def warn_without_request_migration() -> None:
    """VIP handover between two local SEs relies on SO_REUSEPORT: both bind the VIP for a moment, then
    the old one closes its listener. Without request migration, connections the kernel had queued on
    that listener are reset instead of moving to the new SE's listener."""
    try:
        if MIGRATE_REQ.read_text().strip() == "0":
            log.warning(
                "net.ipv4.tcp_migrate_req is 0: a VIP handover (migrate, scale-in, switchover) may reset "
                "connections that arrive at the very moment of the handover; `sysctl -w "
                "net.ipv4.tcp_migrate_req=1` avoids it"
            )
    except OSError:
        pass  # not Linux, or a kernel older than 5.14


class LocalCloudError(RuntimeError):
    pass


def _alive(pid: int | None, create_time: float | None) -> bool:
    """True only for the very process we started (same PID and same start time)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 0.5
    except psutil.Error:
        return False


def _stopped(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    except psutil.Error:
        return False


def _start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


class LocalCloud:
    def __init__(self, data_dir: Path, python: str = sys.executable) -> None:
        self.root = data_dir.resolve() / "local-cloud"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._records_path = self.root / "ses.json"
        self._python = python
        self._lock = threading.Lock()
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        warn_without_request_migration()

    # --- records ----------------------------------------------------------------------------------

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads(self._records_path.read_text())  # type: ignore[no-any-return]
        except FileNotFoundError:
            return {}

    def _save(self, records: dict[str, dict[str, Any]]) -> None:
        tmp = self._records_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(records, indent=2, sort_keys=True))
        os.replace(tmp, self._records_path)

    def run_dir(self, se_uuid: str) -> Path:
        """A short directory name: HAProxy's UNIX sockets live there and socket paths are limited."""
        short = se_uuid.removeprefix("serviceengine-").replace("-", "")[:12]
        if not short.isalnum():
            raise LocalCloudError(f"unsafe SE id {se_uuid!r}")
        return self.root / "se" / short

    # --- SEs --------------------------------------------------------------------------------------

    def create_se(self, spec: SeSpec) -> SeDetails:
        run_dir = self.run_dir(spec.se_uuid)
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        bootstrap = run_dir / "bootstrap.json"
        fd = os.open(bootstrap, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(
                {
                    "controller_url": spec.bootstrap.controller_url,
                    "se_uuid": spec.se_uuid,
                    "token": spec.bootstrap.token,
                    "name": spec.name,
                },
                handle,
            )
        argv = [self._python, "-m", "fulcrum", "se", "run", "--run-dir", str(run_dir)]
        with open(run_dir / "agent.log", "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,  # its own group, same session (see the module docstring)
                close_fds=True,
            )
        record = {
            "se_uuid": spec.se_uuid,
            "name": spec.name,
            "data_address": None,
            "run_dir": str(run_dir),
            "agent_pid": proc.pid,
            "agent_start_time": _start_time(proc.pid),
            "created": time.time(),
        }
        with self._lock:
            self._children[spec.se_uuid] = proc
            records = self._load()
            record["data_address"] = self._free_data_address(records)
            records[spec.se_uuid] = record
            self._save(records)
        return SeDetails(cloud_id=f"pid:{proc.pid}", facts={"agent_pid": proc.pid, "run_dir": str(run_dir)})

    def _haproxy_pid(self, run_dir: Path) -> int | None:
        try:
            return int((run_dir / "haproxy.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def _haproxy_alive(self, run_dir: Path) -> int | None:
        """The HAProxy master of this SE, if it runs: its command line names this SE's run dir."""
        pid = self._haproxy_pid(run_dir)
        if pid is None:
            return None
        try:
            cmdline = " ".join(psutil.Process(pid).cmdline())
        except psutil.Error:
            return None
        return pid if str(run_dir) in cmdline else None

    def se_details(self, se_uuid: str) -> SeDetails | None:
        record = self._load().get(se_uuid)
        if record is None:
            return None
        run_dir = Path(record["run_dir"])
        agent_alive = _alive(record["agent_pid"], record.get("agent_start_time"))
        return SeDetails(
            cloud_id=f"pid:{record['agent_pid']}",
            facts={
                "agent_pid": record["agent_pid"] if agent_alive else None,
                "haproxy_master_pid": self._haproxy_alive(run_dir),
                "run_dir": str(run_dir),
            },
        )

    @staticmethod
    def _free_data_address(records: dict[str, dict[str, Any]]) -> str:
        taken = {r.get("data_address") for r in records.values()}
        for host in SE_DATA_NETWORK.hosts():
            if str(host) not in taken:
                return str(host)
        raise LocalCloudError(f"no free SE data address left in {SE_DATA_NETWORK}")

    def data_address(self, se_uuid: str) -> str | None:
        record = self._load().get(se_uuid)
        return record.get("data_address") if record else None

    def observe_se(self, se_uuid: str) -> SeObservation:
        self._reap()
        record = self._load().get(se_uuid)
        if record is None or not _alive(record["agent_pid"], record.get("agent_start_time")):
            return SeObservation.GONE
        if self._haproxy_alive(Path(record["run_dir"])) is None:
            return SeObservation.STARTING
        return SeObservation.RUNNING

    def known_ses(self) -> list[str]:
        return sorted(self._load())

    def delete_se(self, se_uuid: str) -> None:
        with self._lock:
            record = self._load().get(se_uuid)
        if record is None:
            return
        run_dir = Path(record["run_dir"])
        self._stop(record["agent_pid"], record.get("agent_start_time"), run_dir)
        with self._lock:
            records = self._load()
            records.pop(se_uuid, None)
            self._save(records)
            self._children.pop(se_uuid, None)
        shutil.rmtree(run_dir, ignore_errors=True)

    def _stop(self, agent_pid: int, start_time: float | None, run_dir: Path) -> None:
        haproxy = self._haproxy_alive(run_dir)
        if _stopped(agent_pid):
            # A stopped (frozen) SE cannot act on SIGTERM: fence it at once, HAProxy included, so that
            # the SE taking over its VIPs is the only one listening.
            for pid in (agent_pid, haproxy):
                if pid is not None and (pid != agent_pid or _alive(agent_pid, start_time)):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        if _alive(agent_pid, start_time):
            # The agent stops its HAProxy on SIGTERM.
            with contextlib.suppress(ProcessLookupError):
                os.kill(agent_pid, signal.SIGTERM)
            self._wait_gone(agent_pid, start_time)
            if _alive(agent_pid, start_time):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(agent_pid, signal.SIGKILL)
        if haproxy is not None and self._haproxy_alive(run_dir) == haproxy:
            with contextlib.suppress(ProcessLookupError):
                os.kill(haproxy, signal.SIGTERM)
            self._wait_gone(haproxy, None)
            if self._haproxy_alive(run_dir) == haproxy:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(haproxy, signal.SIGKILL)
        self._reap()

    def _wait_gone(self, pid: int, start_time: float | None) -> None:
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and _alive(pid, start_time):
            self._reap()
            time.sleep(0.05)

    def _reap(self) -> None:
        """Collect exit statuses of agents this process started, so they do not linger as zombies."""
        for proc in list(self._children.values()):
            proc.poll()

    def down(self) -> list[str]:
        """Stop every SE this data dir started; returns their uuids."""
        stopped = self.known_ses()
        for se_uuid in stopped:
            self.delete_se(se_uuid)
        return stopped

    # --- VIPs -------------------------------------------------------------------------------------

    def allocate_vip(self, network: str | None, address: str | None) -> VipAllocation:
        """Loopback addresses need no allocation; the controller's IPAM picks them. Only checks."""
        if address is None:
            raise LocalCloudError("the local cloud needs an explicit VIP address (the controller allocates)")
        ip = ipaddress.ip_address(address)
        if not any(ip.version == net.version and ip in net for net in LOOPBACK):
            raise LocalCloudError(f"{address} is not a loopback address")
        return VipAllocation(address=address, network=network)

    def release_vip(self, allocation: VipAllocation) -> None:
        """Nothing to release: loopback addresses exist as long as the host does."""

    def attach_vip(self, allocation: VipAllocation, se_uuid: str) -> None:
        """Every process on the host can bind a loopback address; the SE binds it when configured."""

    def move_vip(self, allocation: VipAllocation, from_se: str, to_se: str) -> None:
        """The new SE binds the address when configured; the old one stops binding it."""
