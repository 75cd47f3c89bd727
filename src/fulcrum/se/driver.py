"""Connects the agent loop to HAProxy: apply configs, read health and counters, stop on exit."""

from __future__ import annotations

from pathlib import Path

from fulcrum.protocol import se as wire
from fulcrum.se import telemetry
from fulcrum.se.agent import ApplyOutcome
from fulcrum.se.apply import ConfigApplier
from fulcrum.se.haproxy import HAProxyProcess
from fulcrum.se.render import RuntimePaths


def _content(config: wire.SeConfig) -> wire.SeConfig:
    return config.model_copy(update={"version": 0})


class HAProxyDriver:
    def __init__(self, run_dir: Path, binary: str = "haproxy") -> None:
        self.paths = RuntimePaths(run_dir.resolve())
        self.process = HAProxyProcess(self.paths.run_dir, binary)
        # A restarted agent takes over the HAProxy its predecessor left running instead of starting another.
        self.process.adopt()
        self.applier = ConfigApplier(self.paths, self.process)
        self._applied: wire.SeConfig | None = None

    def apply(self, config: wire.SeConfig) -> ApplyOutcome:
        if self._applied is not None and _content(self._applied) == _content(config) and self.process.running:
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

    def telemetry(
        self, config: wire.SeConfig
    ) -> tuple[list[wire.ServerState], list[wire.VsCounters], list[wire.PeerHealth]]:
        """Server health, VS counters and scale-out peer health from one `show stat` (the worker pauses
        briefly to dump it)."""
        view = self.applier.applied_view
        if view is None:
            return [], [], []
        rows = self.applier.read_stats()
        return (
            telemetry.server_states(view, rows),
            telemetry.vs_counters(view, rows),
            telemetry.peer_states(view, rows),
        )

    def engine_pid(self) -> int | None:
        return self.process.master_pid

    def stop(self) -> None:
        if self.process.running:
            self.process.stop(graceful=False, timeout_s=5)
