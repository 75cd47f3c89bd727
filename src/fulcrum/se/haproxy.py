"""The one HAProxy master-worker process of an SE: config check, start, seamless reload and stop.

The master runs in its own process group with a master CLI socket; reloads go through that
socket and are confirmed by a new worker appearing in `show proc`. Signals go only to the master PID
recorded at start (or adopted from the PID file after verifying it), never to processes found by name.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from fulcrum.se.render.view import RuntimePaths
from fulcrum.se.runtime import RuntimeApi, RuntimeApiError, send_command

_POLL_S = 0.05


class HAProxyError(RuntimeError):
    """HAProxy could not be started, reloaded or reached; the message includes its recent log."""


@dataclass(frozen=True)
class ProcessTable:
    """The master CLI's `show proc`: current workers serve, old workers finish their connections."""

    master_pid: int
    reloads: int
    failed_reloads: int
    workers: tuple[int, ...]
    old_workers: tuple[int, ...]


def parse_show_proc(text: str) -> ProcessTable:
    master_pid = reloads = failed = 0
    workers: list[int] = []
    old_workers: list[int] = []
    section = "master"
    for line in text.splitlines():
        if line.startswith("# "):
            section = line[2:].strip()
            continue
        fields = line.split()
        if len(fields) < 3 or not fields[0].isdigit():
            continue
        if fields[1] == "master":
            master_pid, reloads = int(fields[0]), int(fields[2])
            if match := re.search(r"\[failed: (\d+)\]", line):
                failed = int(match.group(1))
        elif fields[1] == "worker":
            (old_workers if section == "old workers" else workers).append(int(fields[0]))
    if not master_pid:
        raise HAProxyError(f"unexpected `show proc` answer: {text[:300]!r}")
    return ProcessTable(master_pid, reloads, failed, tuple(workers), tuple(old_workers))


class HAProxyProcess:
    """One HAProxy master-worker process and the files of its run directory."""

    def __init__(self, run_dir: Path, binary: str = "haproxy", *, timeout_s: float = 10.0) -> None:
        self.run_dir = run_dir
        self.binary = binary
        self.timeout_s = timeout_s
        paths = RuntimePaths(run_dir)  # the same file names the rendered config uses
        self.master_socket = paths.master_socket
        self.pid_file = paths.pid_file
        self.log_file = paths.log_file
        self._popen: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None

    # --- state ------------------------------------------------------------------------------------

    @property
    def master_pid(self) -> int | None:
        """The recorded master PID while that process runs."""
        return self._pid if self.running else None

    @property
    def running(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return self._pid is not None and _is_alive(self._pid)

    def log_tail(self, since: int = 0, max_chars: int = 2000) -> str:
        """HAProxy's own output (master and workers) from byte offset `since`, at most `max_chars`."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(since)
                return log.read().decode(errors="replace")[-max_chars:]
        except FileNotFoundError:
            return ""

    def _log_size(self) -> int:
        try:
            return self.log_file.stat().st_size
        except FileNotFoundError:
            return 0

    def processes(self) -> ProcessTable:
        return parse_show_proc(send_command(self.master_socket, "show proc", timeout=self.timeout_s))

    def current_worker(self) -> int:
        workers = self.processes().workers
        if not workers:
            raise HAProxyError("HAProxy has no current worker")
        return workers[0]

    def runtime(self) -> RuntimeApi:
        """The runtime API of the current worker, reached through the master socket."""
        return RuntimeApi(self.master_socket, worker_pid=self.current_worker(), timeout=self.timeout_s)

    # --- lifecycle --------------------------------------------------------------------------------

    def check(self, cfg_path: Path) -> tuple[bool, str]:
        """`haproxy -c`: whether the file is valid, and HAProxy's own words about it."""
        try:
            result = subprocess.run(
                [self.binary, "-c", "-f", str(cfg_path)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"cannot run {self.binary} -c: {exc}"
        return result.returncode == 0, (result.stdout + result.stderr).strip()

    def start(self, cfg_path: Path) -> int:
        """Start the master (own process group) and wait until its worker answers; returns the master PID."""
        if self.running:
            raise HAProxyError(f"HAProxy already runs as PID {self._pid}")
        argv = [self.binary, "-W", "-S", f"{self.master_socket},mode,600"]
        argv += ["-f", str(cfg_path), "-p", str(self.pid_file)]
        log_start = self._log_size()
        with open(self.log_file, "ab") as log:
            self._popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, process_group=0
            )
        self._pid = self._popen.pid
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                raise HAProxyError(
                    f"HAProxy exited at start ({self._popen.returncode}):\n{self.log_tail(log_start)}"
                )
            with contextlib.suppress(RuntimeApiError, HAProxyError):
                workers = self.processes().workers
                if workers and self._worker_answers(workers[0]):
                    return self._pid
            time.sleep(_POLL_S)
        self.stop(graceful=False)
        raise HAProxyError(f"HAProxy did not come up within {self.timeout_s}s:\n{self.log_tail(log_start)}")

    def adopt(self) -> bool:
        """Take over a master left running by a previous agent (from the PID file); False if none."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return False
        if not _is_alive(pid) or str(self.master_socket) not in _cmdline(pid):
            return False
        try:
            if self.processes().master_pid != pid:
                return False
        except (RuntimeApiError, HAProxyError):
            return False
        self._popen, self._pid = None, pid
        return True

    def reload(self) -> int:
        """Seamless reload through the master socket; returns the new worker's PID once it answers.

        Old workers keep their established connections and get no new ones (listening sockets are
        handed over with `expose-fd listeners`).
        """
        before = self.processes()
        log_start = self._log_size()
        with contextlib.suppress(RuntimeApiError):  # the master re-executes itself and drops us
            send_command(self.master_socket, "reload", timeout=self.timeout_s)
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            time.sleep(_POLL_S)
            if not self.running:
                raise HAProxyError(f"HAProxy master exited during reload:\n{self.log_tail(log_start)}")
            try:
                table = self.processes()
            except (RuntimeApiError, HAProxyError):
                continue  # master socket is re-created by the new master image
            if table.failed_reloads > before.failed_reloads:
                raise HAProxyError(
                    f"reload failed, the running worker keeps serving:\n{self.log_tail(log_start)}"
                )
            fresh = [pid for pid in table.workers if pid not in before.workers]
            if table.reloads > before.reloads and fresh and self._worker_answers(fresh[0]):
                return fresh[0]
        raise HAProxyError(f"no new worker within {self.timeout_s}s of reload:\n{self.log_tail(log_start)}")

    def stop(self, *, graceful: bool = True, timeout_s: float | None = None) -> None:
        """Soft stop (SIGUSR1: finish connections) or hard stop (SIGTERM) of the recorded master.

        Escalates to SIGTERM, then SIGKILL, of that same PID if it outlives the timeout.
        """
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        signals = [signal.SIGUSR1, signal.SIGTERM] if graceful else [signal.SIGTERM]
        for sig in [*signals, signal.SIGKILL]:
            if not self.running:
                break
            self._signal(sig)
            self._wait_exit(timeout_s)
        if self.running:
            raise HAProxyError(f"HAProxy master {self._pid} did not exit")
        self._popen = None
        self._pid = None

    # --- helpers ----------------------------------------------------------------------------------

    def _worker_answers(self, pid: int) -> bool:
        try:
            return "Pid:" in send_command(self.master_socket, f"@!{pid} show info", timeout=self.timeout_s)
        except RuntimeApiError:
            return False

    def _signal(self, sig: signal.Signals) -> None:
        if self._popen is not None:
            self._popen.send_signal(sig)  # a no-op once the child is reaped: no PID reuse race
        elif self._pid is not None and str(self.master_socket) in _cmdline(self._pid):
            os.kill(self._pid, sig)

    def _wait_exit(self, timeout_s: float) -> None:
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout_s)
            return
        deadline = time.monotonic() + timeout_s
        while self.running and time.monotonic() < deadline:
            time.sleep(_POLL_S)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _is_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has exited
