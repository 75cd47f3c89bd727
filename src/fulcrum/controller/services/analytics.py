"""Analytics on the controller: ingest SE reports, answer metric and log queries, keep rollups going.

An SE may only report on what it serves: itself, the virtual services placed on it and their pools;
anything else in a report is dropped and counted (a compromised SE cannot write another tenant's
numbers). The newest value of every metric is also kept in memory for health scores, alerts and the
Prometheus exposition.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fulcrum.controller.services import refs
from fulcrum.controller.services.clock import Clock
from fulcrum.controller.services.errors import InvalidInput
from fulcrum.controller.services.objects import ObjectService
from fulcrum.controller.store import repo
from fulcrum.controller.store.tsdb import LogQuery, MetricStore, Point
from fulcrum.protocol import metrics as catalog
from fulcrum.protocol import se as wire

log = logging.getLogger("fulcrum.analytics")

ENTITY_TYPES = tuple(t.value for t in wire.EntityType)
MAX_LIMIT = 1000


@dataclass
class Latest:
    value: float
    ts: float


@dataclass
class IngestStats:
    reports: int = 0
    points: int = 0
    logs: int = 0
    rejected_points: int = 0
    rejected_logs: int = 0
    logs_dropped_by_ses: int = 0
    seconds: float = 0.0


@dataclass
class _Scope:
    """What one SE may report on, cached briefly (placements change rarely)."""

    entities: set[str]
    tenants: dict[str, str]  # vs uuid -> tenant uuid
    read_at: float


@dataclass
class Analytics:
    objects: ObjectService
    store: MetricStore
    clock: Clock
    rollup_every_s: float = 30.0
    scope_ttl_s: float = 5.0
    stats: IngestStats = field(default_factory=IngestStats)

    def __post_init__(self) -> None:
        self._latest: dict[tuple[str, str, str], Latest] = {}  # (entity, server, metric)
        self._etype: dict[str, str] = {}
        self._scopes: dict[str, _Scope] = {}
        self._scopes_read_at = float("-inf")
        self._scope_lock = threading.Lock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._maintain, name="analytics-rollup", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.store.close()

    def _maintain(self) -> None:
        while not self._stop.wait(self.rollup_every_s):
            try:
                now = self.clock.now()
                self.store.rollup(now)
                self.store.expire(now)
            except Exception:
                log.exception("analytics rollup failed; retrying later")

    # --- ingest -----------------------------------------------------------------------------------

    def _scope(self, se_uuid: str) -> _Scope:
        """What `se_uuid` serves; every SE's scope is rebuilt together, at most every `scope_ttl_s`."""
        now = self.clock.now()
        with self._scope_lock:
            cached = self._scopes.get(se_uuid)
            if cached is not None and now - cached.read_at < self.scope_ttl_s:
                return cached
            if now - self._scopes_read_at >= self.scope_ttl_s or cached is None:
                self._scopes = self._read_scopes(now)
                self._scopes_read_at = now
            return self._scopes.get(se_uuid) or _Scope({se_uuid}, {}, now)

    def invalidate_scopes(self) -> None:
        """Placements changed: read every SE's scope again on its next report."""
        with self._scope_lock:
            self._scopes_read_at = float("-inf")
            self._scopes = {}

    def _read_scopes(self, now: float) -> dict[str, _Scope]:
        with self.objects.db.read() as conn:
            placements = repo.all_placements(conn)
            vss = {o.uuid: o for o in repo.all_of_type(conn, "virtualservice")}
        scopes: dict[str, _Scope] = {}
        for vs_uuid, se_uuid, _role in placements:
            scope = scopes.setdefault(se_uuid, _Scope({se_uuid}, {}, now))
            vs = vss.get(vs_uuid)
            if vs is None:
                continue
            scope.entities.add(vs_uuid)
            scope.tenants[vs_uuid] = vs.tenant_uuid
            if vs.data.get("pool_ref"):
                scope.entities.add(refs.uuid_of(vs.data["pool_ref"]))
        return scopes

    def ingest(self, se_uuid: str, report: wire.AnalyticsReport) -> dict[str, int]:
        started = time.perf_counter()
        scope = self._scope(se_uuid)
        duration = max(0.001, report.end - report.start)
        points = [
            Point(
                p.entity_type.value,
                p.entity_uuid,
                p.metric_id,
                report.start,
                p.value,
                p.server or "",
                duration,
            )
            for p in report.metrics
            if p.entity_uuid in scope.entities and catalog.is_known(p.metric_id)
        ]
        logs = [entry.model_dump() for entry in report.logs if entry.vs_uuid in scope.tenants]
        self.store.add(points, logs, se_uuid, lambda vs: scope.tenants[vs])
        with self._lock:
            for p in points:
                self._latest[(p.entity, p.server, p.metric)] = Latest(p.value, report.end)
                self._etype[p.entity] = p.etype
            stats = self.stats
            stats.reports += 1
            stats.points += len(points)
            stats.logs += len(logs)
            stats.rejected_points += len(report.metrics) - len(points)
            stats.rejected_logs += len(report.logs) - len(logs)
            stats.logs_dropped_by_ses += report.logs_dropped
            stats.seconds += time.perf_counter() - started
        return {"points": len(points), "logs": len(logs)}

    # --- queries ----------------------------------------------------------------------------------

    def latest(self, entity: str, metric: str, server: str = "", max_age_s: float = 30.0) -> float | None:
        with self._lock:
            found = self._latest.get((entity, server, metric))
        if found is None or self.clock.now() - found.ts > max_age_s:
            return None
        return found.value

    def latest_all(self) -> list[tuple[str, str, str, str, float]]:
        """(entity type, entity, server, metric, value) of every metric reported in the last minute."""
        now = self.clock.now()
        with self._lock:
            return [
                (self._etype.get(entity, ""), entity, server, metric, v.value)
                for (entity, server, metric), v in self._latest.items()
                if now - v.ts <= 60.0
            ]

    def metric_ids(self) -> list[dict[str, Any]]:
        return catalog.describe()

    def series(
        self,
        entity_type: str,
        entity: str,
        metric_ids: list[str],
        step: int | None,
        limit: int,
        server: str = "",
    ) -> dict[str, Any]:
        unknown = [m for m in metric_ids if not catalog.is_known(m)]
        if unknown:
            raise InvalidInput(f"metric_id: unknown {', '.join(unknown)} (see GET /api/analytics/metric_ids)")
        wrong = [m for m in metric_ids if entity_type not in catalog.entity_types(m)]
        if wrong:
            raise InvalidInput(f"metric_id: {', '.join(wrong)} do not apply to a {entity_type}")
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit: must be between 1 and {MAX_LIMIT}")
        res = self.store.resolution_for(step)
        found = self.store.series_covered(entity, metric_ids, step, limit, server)
        series = []
        for metric_id in metric_ids:
            series.append(
                {
                    "header": {
                        "name": metric_id,
                        "units": catalog.unit(metric_id),
                        "entity_uuid": entity,
                        "statistics": _statistics([v for _ts, v, _d in found[metric_id]]),
                    },
                    # covered_s: seconds of SE reports behind the point (rate x covered_s = count).
                    "data": [
                        {"timestamp": _iso(ts), "value": value, "covered_s": round(covered, 3)}
                        for ts, value, covered in found[metric_id]
                    ],
                }
            )
        answer: dict[str, Any] = {"entity_uuid": entity, "step": res.step_s, "limit": limit, "series": series}
        if server:
            answer["server"] = server
        else:
            answer["servers"] = self.store.servers(entity)
        return answer

    def search_logs(self, query: LogQuery) -> dict[str, Any]:
        if not 1 <= query.limit <= MAX_LIMIT:
            raise InvalidInput(f"page_size: must be between 1 and {MAX_LIMIT}")
        total, rows = self.store.search_logs(query)
        return {"count": total, "results": rows}


def _statistics(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"num_samples": 0}
    return {
        "num_samples": len(values),
        "min": min(values),
        "max": max(values),
        "mean": sum(values) / len(values),
        "last": values[-1],
    }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
