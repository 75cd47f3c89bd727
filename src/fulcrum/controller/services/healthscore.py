"""Health scores, 0-100, for virtual services, pools and SEs, with the reasons behind every deduction.

score = performance - resources penalty - anomaly penalty - security penalty, clamped to 0..100.

* **Performance** (0-100) is an apdex over the last `window_s` (5 min): a response is *satisfied* when it
  took at most T (`apdex_t_ms`, by default the SEs' slow-request threshold), *tolerating* up to 4T,
  *frustrated* beyond 4T or when it failed (5xx, or the connection failed). Slow and failed requests are
  exactly the ones SEs always log, so the apdex is counted, not estimated: apdex = (satisfied +
  tolerating / 2) / total, with the total from `l7_client.avg_complete_responses`. Without traffic the
  performance is 100 (nothing went wrong) and the score says so.
* **Resources** (up to 50): servers of the pool that are down (capacity lost), SEs of the VS short of
  CPU (above 80 %) or memory (above 90 %), an SE that is not up.
* **Anomaly** (up to 20): the last minute's error ratio or average latency far above the window's.
* **Security** (up to 30): a certificate that expires within 30 days, or has expired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fulcrum.controller.services import refs
from fulcrum.controller.services.clock import Clock
from fulcrum.controller.store import repo
from fulcrum.controller.store.repo import StoredObject
from fulcrum.controller.store.tsdb import LogQuery, MetricStore

RESPONSES = "l7_client.avg_complete_responses"
TOTAL_TIME = "l7_client.avg_total_time"
SE_CPU = "se_stats.avg_cpu_usage"
SE_MEM = "se_stats.avg_mem_usage"
MAX_RESOURCES, MAX_ANOMALY, MAX_SECURITY = 50.0, 20.0, 30.0


@dataclass
class Deduction:
    component: str
    points: float
    reason: str


@dataclass
class Score:
    performance: float = 100.0
    deductions: list[Deduction] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def deduct(self, component: str, points: float, reason: str) -> None:
        if points > 0:
            self.deductions.append(Deduction(component, round(points, 1), reason))

    def penalty(self, component: str, cap: float) -> float:
        return min(cap, sum(d.points for d in self.deductions if d.component == component))

    def as_dict(self) -> dict[str, Any]:
        resources = self.penalty("resources", MAX_RESOURCES)
        anomaly = self.penalty("anomaly", MAX_ANOMALY)
        security = self.penalty("security", MAX_SECURITY)
        health = max(0.0, min(100.0, self.performance - resources - anomaly - security))
        return {
            "health_score": round(health, 1),
            "performance_score": round(self.performance, 1),
            "resources_penalty": round(resources, 1),
            "anomaly_penalty": round(anomaly, 1),
            "security_penalty": round(security, 1),
            "reasons": [vars(d) for d in self.deductions],
            "notes": self.notes,
        }


@dataclass
class HealthScorer:
    objects: Any  # ObjectService
    store: MetricStore
    dataplane: Any  # DataPlane: runtime views
    analytics: Any  # Analytics: latest values
    clock: Clock
    apdex_t_ms: float = 1000.0
    window_s: int = 300

    def score(self, obj: StoredObject) -> dict[str, Any]:
        scorer = {"virtualservice": self._vs, "pool": self._pool, "serviceengine": self._se}[obj.type]
        result = scorer(obj).as_dict()
        return {
            "uuid": obj.uuid,
            "name": obj.name,
            "entity_type": obj.type,
            "window_s": self.window_s,
            **result,
        }

    # --- parts ------------------------------------------------------------------------------------

    def _apdex(self, score: Score, vs_uuid: str) -> None:
        points = self.window_s // self.store.finest.step_s
        series = self.store.series(vs_uuid, [RESPONSES], self.store.finest.step_s, points)[RESPONSES]
        since = self.clock.now() - self.window_s
        recent = [(ts, v) for ts, v in series if ts >= since - self.store.finest.step_s]
        total = sum(v * self.store.finest.step_s for _ts, v in recent)
        if total < 1:
            score.notes.append("no responses in the window: performance is not measured")
            return
        _, logs = self.store.search_logs(
            LogQuery(vs_uuids=[vs_uuid], since=since, significant_only=True, limit=100_000)
        )
        t = self.apdex_t_ms
        failed = sum(
            1
            for e in logs
            if e.get("status", 0) >= 500
            or (e.get("status", 0) == 0 and e.get("significant") in ("error", "termination"))
        )
        slow = [
            e
            for e in logs
            if e.get("status", 0) < 500 and e.get("status", 0) != 0 and e.get("total_ms", 0) > t
        ]
        frustrated = failed + sum(1 for e in slow if e["total_ms"] > 4 * t)
        tolerating = sum(1 for e in slow if e["total_ms"] <= 4 * t)
        frustrated, tolerating = min(frustrated, total), min(tolerating, max(0.0, total - frustrated))
        satisfied = max(0.0, total - frustrated - tolerating)
        apdex = (satisfied + tolerating / 2) / total
        score.performance = 100.0 * apdex
        if failed:
            score.notes.append(f"{failed} of {int(total)} responses failed (5xx or connection errors)")
        if slow:
            score.notes.append(f"{len(slow)} of {int(total)} responses took longer than {int(t)} ms")
        score.notes.append(f"apdex {apdex:.3f} over {int(total)} responses (T = {int(t)} ms)")
        self._anomaly(score, vs_uuid, recent)

    def _anomaly(self, score: Score, vs_uuid: str, recent: list[tuple[int, float]]) -> None:
        step = self.store.finest.step_s
        latency = self.store.series(vs_uuid, [TOTAL_TIME], step, self.window_s // step)[TOTAL_TIME]
        values = [v for _ts, v in latency]
        if len(values) >= 6:
            last = values[-min(12, len(values) // 3) :]
            before = values[: len(values) - len(last)]
            usual = sum(before) / len(before)
            now = sum(last) / len(last)
            if usual > 0 and now > 3 * usual and now - usual > 50:
                score.deduct(
                    "anomaly",
                    min(MAX_ANOMALY, 5 * now / usual),
                    f"latency of the last minute ({now:.0f} ms) is {now / usual:.1f}x "
                    f"its usual {usual:.0f} ms",
                )

    def _servers(self, score: Score, pool: StoredObject) -> None:
        runtime = self.dataplane.pool_runtime(pool)
        servers = runtime["servers"]
        down = [s for s in servers if s["oper_status"] == "DOWN"]
        if servers and down:
            names = ", ".join(f"{s['ip']}:{s['port']}" for s in down[:3])
            score.deduct(
                "resources",
                MAX_RESOURCES * len(down) / len(servers),
                f"{len(down)} of {len(servers)} servers of pool {pool.name!r} are down ({names})",
            )

    def _se_resources(self, score: Score, se_uuid: str, label: str) -> None:
        cpu = self.analytics.latest(se_uuid, SE_CPU)
        mem = self.analytics.latest(se_uuid, SE_MEM)
        if cpu is not None and cpu > 80:
            score.deduct("resources", (cpu - 80) / 20 * 25, f"{label} CPU at {cpu:.0f} % (above 80 %)")
        if mem is not None and mem > 90:
            score.deduct("resources", (mem - 90) / 10 * 25, f"{label} memory at {mem:.0f} % (above 90 %)")

    def _certificates(self, score: Score, vs: StoredObject) -> None:
        now = self.clock.now()
        with self.objects.db.read() as conn:
            certs = [repo.get(conn, refs.uuid_of(r)) for r in vs.data.get("ssl_key_and_certificate_refs", [])]
        for cert in certs:
            if cert is None:
                continue
            not_after = (cert.data.get("certificate") or {}).get("not_after")
            if not not_after:
                continue
            expires = datetime.fromisoformat(str(not_after).replace("Z", "+00:00"))
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
            days = (expires.timestamp() - now) / 86400
            if days < 0:
                score.deduct(
                    "security", MAX_SECURITY, f"certificate {cert.name!r} expired {-days:.0f} days ago"
                )
            elif days < 30:
                score.deduct(
                    "security", 10 + (30 - days) / 3, f"certificate {cert.name!r} expires in {days:.0f} days"
                )

    # --- per type ---------------------------------------------------------------------------------

    def _vs(self, vs: StoredObject) -> Score:
        score = Score()
        runtime = self.dataplane.vs_runtime(vs.uuid)
        if runtime["oper_status"] != "OPER_UP":
            score.performance = 0.0
            score.notes.append(
                f"the virtual service is {runtime['oper_status']}: {runtime.get('reason', '')}"
            )
            return score
        self._apdex(score, vs.uuid)
        with self.objects.db.read() as conn:
            pool = repo.get(conn, refs.uuid_of(vs.data["pool_ref"])) if vs.data.get("pool_ref") else None
        if pool is not None:
            self._servers(score, pool)
        for se in runtime["service_engines"]:
            if se["oper_status"] != "OPER_UP" and se["role"] != "draining":
                score.deduct("resources", 15, f"SE {se['se_uuid']} ({se['role']}) is {se['oper_status']}")
            self._se_resources(score, se["se_uuid"], f"SE {se['se_uuid']}")
        self._certificates(score, vs)
        return score

    def _pool(self, pool: StoredObject) -> Score:
        score = Score()
        runtime = self.dataplane.pool_runtime(pool)
        if runtime["oper_status"] != "OPER_UP":
            score.performance = 0.0
            score.notes.append("no server of the pool is up")
            return score
        self._servers(score, pool)
        return score

    def _se(self, se: StoredObject) -> Score:
        score = Score()
        runtime = self.dataplane.se_runtime(se)
        if runtime["oper_status"] != "OPER_UP":
            score.performance = 0.0
            score.notes.append(f"the SE is {runtime['oper_status']}")
            return score
        self._se_resources(score, se.uuid, "the SE's")
        beat = runtime.get("last_heartbeat")
        if beat is not None and self.clock.now() - beat > 2.5:
            score.deduct("anomaly", 10, f"last heartbeat {self.clock.now() - beat:.1f} s ago")
        return score
