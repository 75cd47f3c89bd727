"""The Service Engine agent: calls home, applies each desired config it is pushed, heartbeats, and
reports analytics.

Three loops share one driver. The config loop long-polls the controller for a version newer than the
applied one, applies it, and acknowledges the result. The heartbeat loop reports server health,
counters and resource usage every `heartbeat_interval_s`. The analytics loop sends a report of metrics
and request logs every `analytics.interval_s` (HAProxy sends request logs to a socket the agent owns).
When the controller cannot be reached the agent keeps serving its last applied config (headless) and
retries with a short backoff; an undelivered analytics report keeps only its metrics, and only the
newest one waits for the next attempt.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from fulcrum import __version__
from fulcrum.protocol import se as wire
from fulcrum.se.analytics.collector import build_report
from fulcrum.se.analytics.counters import CounterWindow
from fulcrum.se.analytics.logs import LogBook, LogReceiver
from fulcrum.se.analytics.resources import ResourceMeter
from fulcrum.se.client import ControllerClient, ControllerUnavailable, Rejected
from fulcrum.se.render.view import View

log = logging.getLogger("fulcrum.se")

LONG_POLL_S = 25.0
RETRY_FAILED_S = 3.0  # a refused config is retried this often: its cause (a busy port) may go away
MAX_BACKOFF_S = 2.0
EARLY_BEAT_S = 0.05  # after an apply, the next heartbeat waits only this long


@dataclass(frozen=True)
class ApplyOutcome:
    ok: bool
    reloaded: bool = False
    runtime_changes: int = 0
    error: str | None = None


class Driver(Protocol):
    """What the agent needs from the forwarding engine (HAProxy in production)."""

    def apply(self, config: wire.SeConfig) -> ApplyOutcome: ...

    def telemetry(
        self, config: wire.SeConfig
    ) -> tuple[list[wire.ServerState], list[wire.VsCounters], list[wire.PeerHealth]]: ...

    def analytics_window(self) -> tuple[View | None, CounterWindow | None]:
        """The applied view and the engine's counter deltas since the previous call."""
        ...

    def log_socket(self) -> Path | None:
        """Where the engine sends request logs (None: it sends none)."""
        ...

    def engine_pid(self) -> int | None: ...

    def stop(self) -> None: ...


def _metrics_only(report: wire.AnalyticsReport) -> wire.AnalyticsReport:
    """What an undelivered report keeps for the next attempt: its logs are counted as dropped."""
    return report.model_copy(update={"logs": (), "logs_dropped": report.logs_dropped + len(report.logs)})


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


class Agent:
    def __init__(self, run_dir: Path, driver: Driver, client: ControllerClient | None = None) -> None:
        self.run_dir = run_dir
        self.driver = driver
        bootstrap = json.loads((run_dir / "bootstrap.json").read_text())
        self.se_uuid: str = bootstrap["se_uuid"]
        self._token: str = bootstrap["token"]
        self.client = client or ControllerClient(bootstrap["controller_url"], self.se_uuid)
        self._stop = threading.Event()
        # Set after a config is applied: the next heartbeat goes out at once (with the new servers'
        # health), so the controller sees a new VS up without waiting out the interval.
        self._beat_now = threading.Event()
        self._engine_family: dict[int, psutil.Process] = {}
        self._applied: wire.SeConfig | None = None
        self._applied_version = 0  # last version applied successfully (what heartbeats report)
        self._seen_version = 0  # last version received, applied or not (what the long-poll asks past)
        self._failed: wire.SeConfig | None = None
        self._interval = 1.0
        self._sequence = 0
        self._lock = threading.Lock()
        self._process = psutil.Process()
        self._process.cpu_percent(None)
        self.logbook = LogBook()
        self._meter = ResourceMeter(os.getpid())
        self._pending_report: wire.AnalyticsReport | None = None

    # --- registration -----------------------------------------------------------------------------

    def _credential_path(self) -> Path:
        return self.run_dir / "credential"

    def ensure_registered(self) -> None:
        """Use the stored credential, or spend the bootstrap token once to get one."""
        path = self._credential_path()
        if path.exists():
            self.client.credential = path.read_text().strip()
            return
        backoff = 0.1
        while not self._stop.is_set():
            try:
                answer = self.client.register(self._token, __version__, os.getpid())
            except ControllerUnavailable as exc:
                log.warning("controller unreachable while registering (%s); retrying", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            _write_private(path, answer.credential)
            self._interval = answer.heartbeat_interval_s
            log.info("registered as %s", self.se_uuid)
            return

    # --- loops ------------------------------------------------------------------------------------

    def apply(self, config: wire.SeConfig) -> wire.Ack:
        outcome = self.driver.apply(config)
        if outcome.ok:
            with self._lock:
                self._applied = config
                self._applied_version = config.version
                self._interval = config.heartbeat_interval_s
            self.logbook.settings = config.analytics
            self._beat_now.set()
            return wire.Ack(
                version=config.version,
                status=wire.AckStatus.APPLIED,
                reloaded=outcome.reloaded,
                runtime_changes=outcome.runtime_changes,
            )
        log.error(
            "config version %s refused, still serving version %s: %s",
            config.version,
            self._applied_version,
            outcome.error,
        )
        return wire.Ack(version=config.version, status=wire.AckStatus.FAILED, error=outcome.error)

    def config_loop(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                wait = RETRY_FAILED_S if self._failed is not None else LONG_POLL_S
                config = self.client.wait_config(self._seen_version, wait)
                backoff = 0.1
                if config is None:
                    if self._failed is None:
                        continue
                    config = self._failed
                self._seen_version = max(self._seen_version, config.version)
                ack = self.apply(config)
                self._failed = config if ack.status == wire.AckStatus.FAILED else None
                self.client.ack(ack)
            except ControllerUnavailable as exc:
                log.info("controller unreachable (%s); serving the last config headless", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            except Rejected as exc:
                log.error("controller rejected the SE: %s", exc)
                self._stop.wait(MAX_BACKOFF_S)

    def heartbeat(self) -> wire.Heartbeat:
        with self._lock:
            config = self._applied
            version = self._applied_version
        self._sequence += 1
        servers, counters, peers = self.driver.telemetry(config) if config else ([], [], [])
        engine = self.driver.engine_pid()
        cpu, rss = self._process.cpu_percent(None), self._process.memory_info().rss
        if engine is not None:
            try:
                cpu_share, engine_rss = self._engine_usage(engine)
                cpu += cpu_share
                rss += engine_rss
            except psutil.Error:
                pass
        self._meter.observe_memory(rss)
        return wire.Heartbeat(
            sequence=self._sequence,
            applied_version=version,
            cpu_percent=cpu,
            memory_rss_bytes=rss,
            agent_pid=os.getpid(),
            haproxy_pid=engine,
            servers=tuple(servers),
            counters=tuple(counters),
            peers=tuple(peers),
        )

    def _engine_usage(self, engine: int) -> tuple[float, int]:
        """CPU percent and RSS of HAProxy's master and workers. The Process objects are kept between
        beats: `cpu_percent` measures since the previous call on the same object (a new one reads 0)."""
        pids = {engine, *(child.pid for child in psutil.Process(engine).children())}
        for gone in set(self._engine_family) - pids:
            del self._engine_family[gone]
        cpu, rss = 0.0, 0
        for pid in pids:
            process = self._engine_family.get(pid)
            if process is None:
                process = self._engine_family[pid] = psutil.Process(pid)
            cpu += process.cpu_percent(None)
            rss += process.memory_info().rss
        return cpu, rss

    def heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.heartbeat(self.heartbeat())
            except (ControllerUnavailable, Rejected) as exc:
                log.debug("heartbeat not delivered: %s", exc)
            except Exception:
                log.exception("heartbeat failed")
            if self._beat_now.wait(self._interval):
                # A config was just applied: give HAProxy a moment to load it, then report.
                self._beat_now.clear()
                self._stop.wait(EARLY_BEAT_S)

    def analytics_report(self) -> wire.AnalyticsReport | None:
        """The report of the interval since the previous call; None while analytics are off (the
        interval's counters and logs are then discarded, so turning them on starts afresh)."""
        with self._lock:
            config = self._applied
        view, window = self.driver.analytics_window()
        logs = self.logbook.drain()
        usage = self._meter.usage(self.driver.engine_pid())
        if config is None or not config.analytics.enabled:
            return None
        return build_report(self.se_uuid, view, window, logs, usage, now=time.time())

    def send_analytics(self) -> None:
        report = self.analytics_report()
        if report is None:
            return
        pending, self._pending_report = self._pending_report, None
        for item in (pending, report):
            if item is None:
                continue
            try:
                self.client.analytics(item)
            except ControllerUnavailable as exc:
                log.debug("analytics report not delivered, keeping its metrics: %s", exc)
                self._pending_report = _metrics_only(report)
                return
            except Rejected as exc:
                log.warning("analytics report refused by the controller: %s", exc)

    def _analytics_interval(self) -> float:
        with self._lock:
            config = self._applied
        return (config.analytics if config else wire.AnalyticsSettings()).interval_s

    def analytics_loop(self) -> None:
        while not self._stop.wait(self._analytics_interval()):
            try:
                self.send_analytics()
            except Exception:
                log.exception("analytics report failed")

    def _start_log_receiver(self) -> LogReceiver | None:
        path = self.driver.log_socket()
        if path is None:
            return None
        receiver = LogReceiver(path, self.logbook.add)
        try:
            receiver.start()
        except OSError as exc:
            log.error("request logs are off: cannot bind %s: %s", path, exc)
            return None
        return receiver

    def run(self) -> None:
        """Serve until stop(): the loops run in daemon threads, so a long-poll in flight never delays exit."""
        self.ensure_registered()
        receiver = self._start_log_receiver()
        loops = (
            (self.heartbeat_loop, "heartbeat"),
            (self.config_loop, "config"),
            (self.analytics_loop, "analytics"),
        )
        for target, name in loops:
            threading.Thread(target=target, name=name, daemon=True).start()
        self._stop.wait()
        log.info("stopping: HAProxy and the agent exit")
        self.driver.stop()
        if receiver is not None:
            receiver.stop()

    def stop(self) -> None:
        self._stop.set()
        self._beat_now.set()


def run_agent(run_dir: Path, driver: Driver) -> None:
    agent = Agent(run_dir, driver)

    def _terminate(_signum: int, _frame: object) -> None:
        agent.stop()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    # The SE shares the controller's session; closing the controller's terminal must not stop it.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    agent.run()
