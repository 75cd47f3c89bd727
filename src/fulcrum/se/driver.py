"""Connects the agent loop to HAProxy: apply configs, read health and counters, stop on exit.

Every `show stat` the driver reads (one per heartbeat, one per analytics report) also feeds the
analytics counter tracker, tagged with the PID of the worker that answered: a reload or restart starts
a worker whose counters start from 0, and the tracker must know. The driver's lock makes the PID and
the statistics come from the same worker (no reload can run in between).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from fulcrum.protocol import se as wire
from fulcrum.se import telemetry
from fulcrum.se.agent import ApplyOutcome
from fulcrum.se.analytics.counters import CounterTracker, CounterWindow, StatSample
from fulcrum.se.apply import ConfigApplier
from fulcrum.se.haproxy import HAProxyError, HAProxyProcess
from fulcrum.se.render import RuntimePaths
from fulcrum.se.render.view import View
from fulcrum.se.runtime import RuntimeApiError


def _content(config: wire.SeConfig) -> wire.SeConfig:
    return config.model_copy(update={"version": 0})


class HAProxyDriver:
    def __init__(self, run_dir: Path, binary: str = "haproxy") -> None:
        self.paths = RuntimePaths(run_dir.resolve())
        self.process = HAProxyProcess(self.paths.run_dir, binary)
        # A restarted agent takes over the HAProxy its predecessor left running instead of starting another.
        self.process.adopt()
        self.applier = ConfigApplier(self.paths, self.process)
        self.counters = CounterTracker()
        self._applied: wire.SeConfig | None = None
        self._lock = threading.Lock()  # an apply never runs between reading a worker's PID and its stats

    def apply(self, config: wire.SeConfig) -> ApplyOutcome:
        with self._lock:
            if (
                self._applied is not None
                and _content(self._applied) == _content(config)
                and self.process.running
            ):
                # The same config under a new version (e.g. after a controller restart): nothing to do.
                self._applied = config
                return ApplyOutcome(ok=True)
            result = self.applier.apply(config)
            if result.ok:
                self._applied = config
        return ApplyOutcome(
            ok=result.ok,
            reloaded=result.reloaded,
            runtime_changes=result.runtime_changes,
            error=result.error,
        )

    def _read_stats(self) -> list[telemetry.StatRow]:
        """`show stat` of the current worker, recorded for analytics too; the caller holds the lock."""
        try:
            worker = self.process.current_worker() if self.process.running else None
        except (HAProxyError, RuntimeApiError):
            worker = None
        rows = self.applier.read_stats()
        if rows and worker is not None:
            self.counters.observe(StatSample(at=time.time(), epoch=worker, rows=rows))
        return rows

    def telemetry(
        self, config: wire.SeConfig
    ) -> tuple[list[wire.ServerState], list[wire.VsCounters], list[wire.PeerHealth]]:
        """Server health, VS counters and scale-out peer health from one `show stat` (the worker pauses
        briefly to dump it)."""
        with self._lock:
            view = self.applier.applied_view
            if view is None:
                return [], [], []
            rows = self._read_stats()
        return (
            telemetry.server_states(view, rows),
            telemetry.vs_counters(view, rows),
            telemetry.peer_states(view, rows),
        )

    def analytics_window(self) -> tuple[View | None, CounterWindow | None]:
        """The applied view and the counter window since the previous call, closed by a fresh read."""
        with self._lock:
            view = self.applier.applied_view
            if view is not None:
                self._read_stats()
            return view, self.counters.drain()

    def log_socket(self) -> Path:
        return self.paths.log_socket

    def engine_pid(self) -> int | None:
        return self.process.master_pid

    def stop(self) -> None:
        if self.process.running:
            self.process.stop(graceful=False, timeout_s=5)
