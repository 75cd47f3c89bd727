"""HAProxy's cumulative counters turned into per-interval deltas, and its levels into per-sample values.

`show stat` counters only grow while one HAProxy worker runs; a reload starts a new worker whose
counters start from 0 (and `clear counters` zeroes them). Every read is a `StatSample` tagged with an
`epoch` that the driver changes whenever it starts or reloads HAProxy. Between two samples of the same
epoch a counter's delta is its growth, and a counter that went down was reset, so it counted its whole
current value since; across epochs every counter counted its whole current value (the new worker
started after the previous sample). So a reset never yields a negative or huge delta, and no request is
counted twice. A row that appears in a running worker (a server added at runtime) counts from 0.

Deltas are summed per HAProxy row (proxy, server) over the samples of one window, so rows that
disappear (a removed virtual service) never turn into a decrease of some total.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

StatRow = dict[str, str]
RowKey = tuple[str, str]  # (pxname, svname): svname is FRONTEND, BACKEND or the server name

COUNTER_COLUMNS = (
    "stot",
    "bin",
    "bout",
    "req_tot",
    "hrsp_1xx",
    "hrsp_2xx",
    "hrsp_3xx",
    "hrsp_4xx",
    "hrsp_5xx",
    "hrsp_other",
    "dcon",
    "dses",
    "econ",
    "connect",
    "chkfail",
)
LEVEL_COLUMNS = ("scur",)
MAX_SAMPLES_PER_WINDOW = 1000  # levels of later samples are ignored (one per heartbeat: never reached)


@dataclass(frozen=True)
class StatSample:
    at: float  # UNIX time of the read
    epoch: int  # changes when HAProxy was started or reloaded since the previous sample
    rows: list[StatRow]


@dataclass(frozen=True)
class Level:
    """A row's levels in one sample: its `scur` and its status column (servers' health)."""

    values: dict[str, int]
    status: str


@dataclass
class CounterWindow:
    """What happened between `start` (the last sample of the previous window) and `end`."""

    start: float
    end: float
    deltas: dict[RowKey, dict[str, int]] = field(default_factory=dict)
    samples: list[dict[RowKey, Level]] = field(default_factory=list)  # one entry per sample

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def delta(self, key: RowKey, column: str) -> int:
        return self.deltas.get(key, {}).get(column, 0)


def _counter(row: StatRow, column: str) -> int | None:
    """A counter's value, or None when the row has no such counter (an empty cell)."""
    value = row.get(column, "")
    return int(value) if value.isdigit() else None


def counter_delta(previous: int | None, current: int) -> int:
    """How much a counter counted since the previous read; `previous` None: it did not exist then."""
    if previous is None or current < previous:
        return current  # new, or reset (reload, `clear counters`): it counted from 0
    return current - previous


def _key(row: StatRow) -> RowKey:
    return row.get("pxname", ""), row.get("svname", "")


def _counters(rows: list[StatRow]) -> dict[RowKey, dict[str, int]]:
    table = {}
    for row in rows:
        values = {column: _counter(row, column) for column in COUNTER_COLUMNS}
        table[_key(row)] = {column: value for column, value in values.items() if value is not None}
    return table


def _levels(rows: list[StatRow]) -> dict[RowKey, Level]:
    return {
        _key(row): Level(
            values={column: _counter(row, column) or 0 for column in LEVEL_COLUMNS},
            status=row.get("status", ""),
        )
        for row in rows
    }


class CounterTracker:
    """Accumulates the deltas of successive samples into windows; `drain` closes one and opens the next.

    Thread-safe: the heartbeat samples, the analytics loop drains.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[float, int, dict[RowKey, dict[str, int]]] | None = None
        self._window: CounterWindow | None = None

    def observe(self, sample: StatSample) -> None:
        current = _counters(sample.rows)
        with self._lock:
            if self._last is None:
                # The first read: a baseline, since when these counters counted is unknown.
                self._last = (sample.at, sample.epoch, current)
                self._window = CounterWindow(start=sample.at, end=sample.at, samples=[_levels(sample.rows)])
                return
            _, last_epoch, previous = self._last
            window = self._window or CounterWindow(start=self._last[0], end=self._last[0])
            same_worker = sample.epoch == last_epoch
            for key, values in current.items():
                before = previous.get(key, {}) if same_worker else {}
                deltas = window.deltas.setdefault(key, {})
                for column, value in values.items():
                    deltas[column] = deltas.get(column, 0) + counter_delta(before.get(column), value)
            if len(window.samples) < MAX_SAMPLES_PER_WINDOW:
                window.samples.append(_levels(sample.rows))
            window.end = sample.at
            self._window = window
            self._last = (sample.at, sample.epoch, current)

    def drain(self) -> CounterWindow | None:
        """The window since the previous drain (None before the first sample); a new one starts."""
        with self._lock:
            window = self._window
            if window is None:
                return None
            self._window = CounterWindow(start=window.end, end=window.end)
            return window
