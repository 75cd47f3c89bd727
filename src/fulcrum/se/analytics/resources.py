"""CPU and memory of the SE's processes (the agent, HAProxy's master and its workers, old ones included).

CPU is measured from the processes' CPU times between two snapshots, so a report's value is the exact
average over its interval; memory is the resident set, averaged over the samples taken in between.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class ProcessTimes:
    """CPU seconds used so far by each process of the family, keyed by pid with its start time."""

    at: float
    cpu_seconds: dict[int, tuple[float, float]]  # pid -> (create time, user + system seconds)
    rss_bytes: int


@dataclass(frozen=True)
class ResourceUsage:
    cpu_percent: float  # of the host's total capacity: 100 = every core busy
    memory_percent: float
    rss_bytes: float


def cpu_percent(before: ProcessTimes, after: ProcessTimes, cpu_count: int) -> float:
    """Average CPU use of the family between two snapshots, as a share of all cores.

    A process seen in both counts its growth; one started since `before` counts all its time; one that
    exited in between is not seen (its last moments are lost, which only errs low).
    """
    seconds = after.at - before.at
    if seconds <= 0 or cpu_count < 1:
        return 0.0
    used = 0.0
    for pid, (created, cpu) in after.cpu_seconds.items():
        previous = before.cpu_seconds.get(pid)
        if previous is not None and previous[0] == created:
            used += max(cpu - previous[1], 0.0)
        elif created >= before.at:
            used += cpu
    return min(100.0, 100.0 * used / (seconds * cpu_count))


class ResourceMeter:
    """Snapshots of the SE's process family; `usage` reports the interval since its previous call."""

    def __init__(
        self,
        agent_pid: int | None = None,
        *,
        cpu_count: int | None = None,
        memory_total: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.agent_pid = agent_pid if agent_pid is not None else os.getpid()
        self.cpu_count = cpu_count or psutil.cpu_count() or 1
        self.memory_total = memory_total or psutil.virtual_memory().total
        self._clock = clock
        self._previous: ProcessTimes | None = None
        self._rss_samples: list[int] = []
        self._lock = threading.Lock()  # the heartbeat observes, the analytics loop reports

    def snapshot(self, engine_pid: int | None) -> ProcessTimes:
        family = [self.agent_pid]
        if engine_pid is not None:
            with contextlib.suppress(psutil.Error):
                family += [engine_pid, *(p.pid for p in psutil.Process(engine_pid).children(recursive=True))]
        cpu: dict[int, tuple[float, float]] = {}
        rss = 0
        for pid in family:
            try:
                process = psutil.Process(pid)
                with process.oneshot():
                    times = process.cpu_times()
                    cpu[pid] = (process.create_time(), times.user + times.system)
                    rss += process.memory_info().rss
            except psutil.Error:
                continue  # it exited meanwhile
        return ProcessTimes(at=self._clock(), cpu_seconds=cpu, rss_bytes=rss)

    def observe_memory(self, rss_bytes: int) -> None:
        """A resident-memory sample between reports (the heartbeat measures it anyway)."""
        with self._lock:
            if len(self._rss_samples) < 10_000:
                self._rss_samples.append(rss_bytes)

    def usage(self, engine_pid: int | None) -> ResourceUsage | None:
        """Usage since the previous call; None the first time (no interval to average over yet)."""
        now = self.snapshot(engine_pid)
        with self._lock:
            previous, self._previous = self._previous, now
            samples, self._rss_samples = [*self._rss_samples, now.rss_bytes], []
        if previous is None:
            return None
        rss = sum(samples) / len(samples)
        return ResourceUsage(
            cpu_percent=cpu_percent(previous, now, self.cpu_count),
            memory_percent=100.0 * rss / self.memory_total,
            rss_bytes=rss,
        )
