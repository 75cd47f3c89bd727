"""The embedded time-series store for analytics: metric points with rollups, and request logs.

It lives in its own SQLite file (`<data-dir>/analytics.db`), apart from the configuration store:
analytics are written all the time, may be rebuilt, and must never slow a configuration commit. Commits
use `synchronous=NORMAL` — a power loss may lose the last seconds of metrics, never corrupt them.

* **Points** are stored at the finest resolution (5 s by default) as SEs report them, one row per
  (entity, server, metric, time bucket), labelled with the start of the interval they cover.
  `rollup()` merges closed buckets into each coarser resolution (5 min, 1 h) using the metric's
  rollup kind: `avg` (weighted by the number of merged points), `max` or `sum`. `expire()` drops
  points older than each resolution's retention (1 h, 1 day, 30 days).
* **Request logs** are kept newest first up to `max_log_rows` rows (retention bounded by size); they
  are searched by virtual service, time range, status class, client address and URI.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    res INTEGER NOT NULL, entity TEXT NOT NULL, server TEXT NOT NULL, metric TEXT NOT NULL,
    ts INTEGER NOT NULL, value REAL NOT NULL, dur REAL NOT NULL, etype TEXT NOT NULL,
    PRIMARY KEY (res, entity, metric, server, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_state (res INTEGER PRIMARY KEY, done_until INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, vs TEXT NOT NULL, tenant TEXT NOT NULL,
    status INTEGER NOT NULL, client_ip TEXT NOT NULL, uri TEXT NOT NULL, significant TEXT NOT NULL,
    se TEXT NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_logs_vs_ts ON logs (vs, ts);
"""


@dataclass(frozen=True)
class Resolution:
    step_s: int
    retention_s: int


DEFAULT_RESOLUTIONS = (Resolution(5, 3600), Resolution(300, 86400), Resolution(3600, 30 * 86400))


@dataclass(frozen=True)
class Point:
    etype: str
    entity: str
    metric: str
    ts: float  # start of the interval the value covers
    value: float
    server: str = ""
    duration: float = 5.0  # seconds the value covers


# Several reports in one bucket (an SE reporting more often than the finest step) merge by kind:
# rates and averages weighted by the seconds they cover, maxima by max, counts by sum.
MERGE_POINT = """
INSERT INTO points VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (res, entity, metric, server, ts) DO UPDATE SET
    value = CASE ?9
        WHEN 'max' THEN max(value, excluded.value)
        WHEN 'sum' THEN value + excluded.value
        ELSE (value * dur + excluded.value * excluded.dur) / (dur + excluded.dur)
    END,
    dur = dur + excluded.dur
"""


@dataclass(frozen=True)
class LogQuery:
    vs_uuids: Sequence[str]
    since: float | None = None
    until: float | None = None
    status_class: int | None = None  # 2..5, or 0 for requests without an HTTP status
    client_ip: str | None = None
    uri_contains: str | None = None
    significant_only: bool = False
    limit: int = 100


class MetricStore:
    def __init__(
        self,
        path: Path,
        rollup_kind: Callable[[str], str],
        resolutions: Sequence[Resolution] = DEFAULT_RESOLUTIONS,
        max_log_rows: int = 200_000,
    ) -> None:
        if not resolutions or any(b.step_s % a.step_s for a, b in itertools.pairwise(resolutions)):
            raise ValueError("resolutions must be given finest first, each a multiple of the previous")
        self.resolutions = tuple(resolutions)
        self.max_log_rows = max_log_rows
        self._rollup_kind = rollup_kind
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @property
    def finest(self) -> Resolution:
        return self.resolutions[0]

    # --- points -----------------------------------------------------------------------------------

    def add(
        self,
        points: Iterable[Point],
        logs: Iterable[dict[str, Any]] = (),
        se_uuid: str = "",
        tenant_of: Callable[[str], str] = lambda _vs: "",
    ) -> int:
        """Store one report's points and request logs in one transaction; returns the points stored."""
        step = self.finest.step_s
        rows = [
            (
                step,
                p.entity,
                p.server,
                p.metric,
                int(p.ts // step) * step,
                float(p.value),
                p.duration,
                p.etype,
                self._rollup_kind(p.metric),
            )
            for p in points
        ]
        log_rows = self._log_rows(logs, se_uuid, tenant_of)
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(MERGE_POINT, rows)
            if log_rows:
                self._insert_logs(log_rows)
            self._conn.execute("COMMIT")
        return len(rows)

    def rollup(self, now: float) -> int:
        """Merge every closed bucket of each coarser resolution; returns the rows written."""
        written = 0
        with self._lock:
            for finer, coarser in zip(self.resolutions, self.resolutions[1:], strict=False):
                until = int(now // coarser.step_s) * coarser.step_s
                row = self._conn.execute(
                    "SELECT done_until FROM rollup_state WHERE res = ?", (coarser.step_s,)
                ).fetchone()
                start = row[0] if row else 0
                if start >= until:
                    continue
                merged: dict[tuple[str, str, str, str, int], list[float]] = {}
                cursor = self._conn.execute(
                    "SELECT entity, server, metric, etype, ts, value, dur FROM points "
                    "WHERE res = ? AND ts >= ? AND ts < ?",
                    (finer.step_s, start, until),
                )
                for entity, server, metric, etype, ts, value, dur in cursor:
                    # Points are labelled with the start of the interval they cover.
                    bucket = ts // coarser.step_s * coarser.step_s
                    acc = merged.setdefault(
                        (entity, server, metric, etype, bucket), [0.0, 0.0, float("-inf"), 0.0]
                    )
                    acc[0] += value * dur
                    acc[1] += dur
                    acc[2] = max(acc[2], value)
                    acc[3] += value
                rows = []
                for (entity, server, metric, etype, bucket), (weighted, dur, peak, added) in merged.items():
                    kind = self._rollup_kind(metric)
                    value = (
                        peak if kind == "max" else added if kind == "sum" else weighted / dur if dur else 0.0
                    )
                    rows.append((coarser.step_s, entity, server, metric, bucket, value, dur, etype))
                self._conn.execute("BEGIN")
                self._conn.executemany("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                self._conn.execute(
                    "INSERT OR REPLACE INTO rollup_state VALUES (?, ?)", (coarser.step_s, until)
                )
                self._conn.execute("COMMIT")
                written += len(rows)
        return written

    def expire(self, now: float) -> int:
        removed = 0
        with self._lock:
            for res in self.resolutions:
                cursor = self._conn.execute(
                    "DELETE FROM points WHERE res = ? AND ts < ?", (res.step_s, now - res.retention_s)
                )
                removed += cursor.rowcount
        return removed

    def resolution_for(self, step: int | None) -> Resolution:
        """The finest resolution whose step is at least `step` (the coarsest if none is)."""
        if step is None:
            return self.finest
        for res in self.resolutions:
            if res.step_s >= step:
                return res
        return self.resolutions[-1]

    def series(
        self,
        entity: str,
        metrics: Sequence[str],
        step: int | None = None,
        limit: int = 60,
        server: str = "",
    ) -> dict[str, list[tuple[int, float]]]:
        """The newest `limit` points of each metric, oldest first: (bucket start, value)."""
        return {
            metric: [(ts, value) for ts, value, _dur in points]
            for metric, points in self.series_covered(entity, metrics, step, limit, server).items()
        }

    def series_covered(
        self,
        entity: str,
        metrics: Sequence[str],
        step: int | None = None,
        limit: int = 60,
        server: str = "",
    ) -> dict[str, list[tuple[int, float, float]]]:
        """Like `series`, with the seconds of reports each point covers (a rate x covered = a count)."""
        res = self.resolution_for(step)
        found: dict[str, list[tuple[int, float, float]]] = {}
        with self._lock:
            for metric in metrics:
                rows = self._conn.execute(
                    "SELECT ts, value, dur FROM points "
                    "WHERE res = ? AND entity = ? AND metric = ? AND server = ? ORDER BY ts DESC LIMIT ?",
                    (res.step_s, entity, metric, server, limit),
                ).fetchall()
                found[metric] = [(int(ts), float(value), float(dur)) for ts, value, dur in reversed(rows)]
        return found

    def servers(self, entity: str) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT server FROM points WHERE res = ? AND entity = ? AND server != ''",
                (self.finest.step_s, entity),
            ).fetchall()
        return sorted(r[0] for r in rows)

    # --- request logs -----------------------------------------------------------------------------

    @staticmethod
    def _log_rows(
        rows: Iterable[dict[str, Any]], se_uuid: str, tenant_of: Callable[[str], str]
    ) -> list[tuple[Any, ...]]:
        return [
            (
                row["ts"],
                row["vs_uuid"],
                tenant_of(row["vs_uuid"]),
                row.get("status", 0),
                row["client_ip"],
                row.get("uri", ""),
                row.get("significant", ""),
                se_uuid,
                json.dumps(row, separators=(",", ":")),
            )
            for row in rows
        ]

    def _insert_logs(self, values: list[tuple[Any, ...]]) -> None:
        self._conn.executemany(
            "INSERT INTO logs (ts, vs, tenant, status, client_ip, uri, significant, se, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )
        # Retention by size: keep the newest max_log_rows.
        self._conn.execute(
            "DELETE FROM logs WHERE id <= (SELECT MAX(id) FROM logs) - ?", (self.max_log_rows,)
        )

    def search_logs(self, query: LogQuery) -> tuple[int, list[dict[str, Any]]]:
        """(number of matches, newest `limit` matches as stored)."""
        if not query.vs_uuids:
            return 0, []
        where = [f"vs IN ({','.join('?' * len(query.vs_uuids))})"]
        args: list[Any] = list(query.vs_uuids)
        if query.since is not None:
            where.append("ts >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("ts < ?")
            args.append(query.until)
        if query.status_class is not None:
            if query.status_class == 0:
                where.append("status = 0")
            else:
                where.append("status >= ? AND status < ?")
                args += [query.status_class * 100, query.status_class * 100 + 100]
        if query.client_ip:
            where.append("client_ip = ?")
            args.append(query.client_ip)
        if query.uri_contains:
            where.append("instr(uri, ?) > 0")
            args.append(query.uri_contains)
        if query.significant_only:
            where.append("significant != ''")
        clause = " AND ".join(where)
        with self._lock:
            total = self._conn.execute(f"SELECT COUNT(*) FROM logs WHERE {clause}", args).fetchone()[0]  # noqa: S608 - only placeholders
            rows = self._conn.execute(
                f"SELECT data, se FROM logs WHERE {clause} ORDER BY ts DESC, id DESC LIMIT ?",  # noqa: S608
                [*args, query.limit],
            ).fetchall()
        return int(total), [{**json.loads(data), "se_uuid": se} for data, se in rows]

    def log_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM logs").fetchone()[0])
