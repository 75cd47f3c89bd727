"""Transactional apply of a new desired configuration to the SE's HAProxy.

render -> candidate file -> `haproxy -c` -> (refused: keep the running config, keep the candidate as
`haproxy.cfg.failed`) -> atomic rename over haproxy.cfg -> start HAProxy the first time; otherwise apply
server-level changes through the runtime API when `plan.reload_reason` allows it, else save the server
state and reload seamlessly. HAProxy is never restarted to apply a config.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from fulcrum.protocol.se import SeConfig
from fulcrum.se.haproxy import HAProxyError, HAProxyProcess
from fulcrum.se.plan import plan_convergence, reload_reason
from fulcrum.se.render import RenderError, RuntimePaths, Tuning, build_view, render
from fulcrum.se.render.view import View
from fulcrum.se.runtime import RuntimeApiError


@dataclass(frozen=True)
class ApplyResult:
    version: int
    ok: bool
    started: bool = False
    reloaded: bool = False
    runtime_changes: int = 0
    reload_reason: str | None = None
    error: str | None = None


class ConfigApplier:
    """Applies successive `SeConfig`s to one HAProxy and remembers the last applied one.

    `apply` and `read_stats` may be called from different threads (config loop, heartbeat loop): one
    lock keeps a statistics read from landing in the middle of a reload.
    """

    def __init__(
        self, paths: RuntimePaths, process: HAProxyProcess | None = None, tuning: Tuning | None = None
    ) -> None:
        self.paths = paths
        self.process = process or HAProxyProcess(paths.run_dir)
        self.tuning = tuning
        self.applied_version: int | None = None
        self._applied_view: View | None = None
        self._applied_text: str | None = None
        self._lock = threading.Lock()

    @property
    def applied_view(self) -> View | None:
        """The view HAProxy runs (maps backend/server names to VS, pool and server ids for telemetry)."""
        return self._applied_view

    def read_stats(self) -> list[dict[str, str]]:
        """`show stat` of the current worker (see `telemetry`); empty while HAProxy does not run."""
        with self._lock:
            if not self.process.running:
                return []
            try:
                return self.process.runtime().show_stat()
            except (HAProxyError, RuntimeApiError):
                return []

    def apply(self, config: SeConfig) -> ApplyResult:
        """Apply `config`; never raises for a bad config or a HAProxy refusal, it returns the error.

        `ok=False` with `applied_version == config.version` means HAProxy runs the new file but a
        server-level step failed; applying the same config again retries those steps without a reload.
        """
        with self._lock:
            try:
                return self._apply(config)
            except OSError as exc:  # the run directory is not writable, the disk is full, ...
                return ApplyResult(config.version, ok=False, error=f"cannot write the configuration: {exc}")

    def _apply(self, config: SeConfig) -> ApplyResult:
        version = config.version
        try:
            view = build_view(config, self.paths, self.tuning)
            text = render(view)
        except RenderError as exc:
            return ApplyResult(version, ok=False, error=f"render: {exc}")
        self._prepare_run_dir()
        created = _write_files(view["files"])
        _write_atomic(self.paths.candidate, text, 0o600)
        valid, message = self.process.check(self.paths.candidate)
        if not valid:
            os.replace(self.paths.candidate, self.paths.failed)
            for path in created:
                path.unlink(missing_ok=True)
            return ApplyResult(version, ok=False, error=f"haproxy -c refused the configuration:\n{message}")
        os.replace(self.paths.candidate, self.paths.config)
        _fsync_dir(self.paths.run_dir)
        try:
            started, reloaded, reason, changes = self._load(view)
        except (HAProxyError, RuntimeApiError) as exc:
            self._roll_back_file(text)
            return ApplyResult(version, ok=False, error=str(exc))
        # HAProxy now runs this configuration, whatever happens to the server-level steps below.
        self.applied_version, self._applied_view, self._applied_text = version, view, text
        self._remove_unreferenced_files(view)
        result = ApplyResult(version, ok=True, started=started, reloaded=reloaded, reload_reason=reason)
        if changes is None:
            try:
                changes = self._converge(view)
            except (HAProxyError, RuntimeApiError) as exc:
                error = f"configuration loaded, but server states could not be set: {exc}"
                return replace(result, ok=False, error=error)
        return replace(result, runtime_changes=changes)

    # --- steps ------------------------------------------------------------------------------------

    def _load(self, view: View) -> tuple[bool, bool, str | None, int | None]:
        """Make HAProxy run the new file: (started, reloaded, reload reason, runtime changes if done)."""
        if not self.process.running:
            self.process.start(self.paths.config)
            return True, False, None, None
        reason = reload_reason(self._applied_view, view)
        if reason is None:
            try:
                return False, False, None, self._converge(view)
            except (HAProxyError, RuntimeApiError) as exc:
                # The file already says what we want; a reload gets HAProxy there another way.
                reason = f"runtime change failed ({exc})"
        self.process.runtime().save_server_state(self.paths.state_file)
        self.process.reload()
        return False, True, reason, None

    def _converge(self, view: View) -> int:
        runtime = self.process.runtime()
        plan = plan_convergence(view, set(runtime.show_backends()), runtime.show_servers_state())
        if plan.missing_backends:
            raise RuntimeApiError(f"backends missing at runtime: {', '.join(plan.missing_backends)}")
        for op in plan.ops:
            runtime.execute(op)
        return len(plan.ops)

    def _roll_back_file(self, text: str) -> None:
        """HAProxy refused what `-c` accepted (e.g. an address in use): keep the file it runs from."""
        _write_atomic(self.paths.failed, text, 0o600)
        if self._applied_text is not None:
            _write_atomic(self.paths.config, self._applied_text, 0o600)

    def _prepare_run_dir(self) -> None:
        for directory in (self.paths.run_dir, self.paths.cert_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
        if not self.paths.state_file.exists():
            _write_atomic(self.paths.state_file, "1\n", 0o600)  # an empty state, so HAProxy does not warn

    def _remove_unreferenced_files(self, view: View) -> None:
        keep = {Path(f["path"]) for f in view["files"]}
        for path in self.paths.cert_dir.iterdir():
            if path not in keep and path.suffix in (".pem", ".crtlist"):
                path.unlink(missing_ok=True)


def _write_files(files: list[View]) -> list[Path]:
    """Write the view's files that do not exist yet (their names are content hashes); returns those."""
    created = []
    for entry in files:
        path = Path(entry["path"])
        if not path.exists():
            _write_atomic(path, entry["content"], entry["mode"])
            created.append(path)
    return created


def _write_atomic(path: Path, content: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    # Created with its final mode: a private key is never readable by others, not even for a moment.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
