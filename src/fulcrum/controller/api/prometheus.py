"""Prometheus exposition at `/metrics`: controller internals and the newest value of every analytics
metric of every VS, pool and SE. It spans all tenants, so it needs a system-admin (scrape with basic
auth or a token). A Grafana dashboard over these series is in `deploy/grafana/fulcrum-dashboard.json`.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool

from fulcrum import __version__
from fulcrum.controller.api.security import get_caller
from fulcrum.controller.services.errors import Forbidden
from fulcrum.controller.services.rbac import Caller
from fulcrum.controller.store import repo

_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(metric_id: str) -> str:
    """`l4_client.avg_bandwidth` -> `fulcrum_l4_client_avg_bandwidth`."""
    return "fulcrum_" + _UNSAFE.sub("_", metric_id)


class FulcrumCollector(Collector):
    def __init__(self, app: FastAPI) -> None:
        self._app = app

    def collect(self) -> Iterator[Any]:
        svc = getattr(self._app.state, "services", None)
        if svc is None:
            return
        info = GaugeMetricFamily("fulcrum_build_info", "Fulcrum controller version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        with svc.db.read() as conn:
            names = {
                o.uuid: (o.name, o.tenant_uuid)
                for t in ("virtualservice", "pool", "serviceengine", "tenant")
                for o in repo.all_of_type(conn, t)
            }
            ses = [o.uuid for o in repo.all_of_type(conn, "serviceengine")]
            vss = [o.uuid for o in repo.all_of_type(conn, "virtualservice")]
        se_states = Counter(svc.dataplane.se_runtime_label(se) for se in ses)
        family = GaugeMetricFamily("fulcrum_service_engines", "Service Engines by state", labels=["state"])
        for state, count in sorted(se_states.items()):
            family.add_metric([state], count)
        yield family
        vs_states = Counter(svc.dataplane.vs_runtime(vs)["oper_status"] for vs in vss)
        family = GaugeMetricFamily(
            "fulcrum_virtualservices", "Virtual services by oper status", labels=["oper_status"]
        )
        for state, count in sorted(vs_states.items()):
            family.add_metric([state], count)
        yield family
        stats = svc.analytics.stats
        for name, value, text in (
            ("reports", stats.reports, "analytics reports ingested"),
            ("points", stats.points, "metric points stored"),
            ("logs", stats.logs, "request logs stored"),
            (
                "rejected_points",
                stats.rejected_points,
                "points refused (entity not served by the reporting SE)",
            ),
            (
                "logs_dropped_by_ses",
                stats.logs_dropped_by_ses,
                "request logs SEs could not ship (over their limit)",
            ),
        ):
            yield CounterMetricFamily(f"fulcrum_analytics_{name}", text, value=value)
        yield CounterMetricFamily(
            "fulcrum_analytics_ingest_seconds", "time spent ingesting reports", value=stats.seconds
        )
        by_metric: dict[str, GaugeMetricFamily] = {}
        labels = ["entity_type", "uuid", "name", "tenant", "server"]
        for etype, entity, server, metric_id, value in svc.analytics.latest_all():
            family = by_metric.get(metric_id)
            if family is None:
                family = by_metric[metric_id] = GaugeMetricFamily(
                    metric_name(metric_id), metric_id, labels=labels
                )
            name, tenant = names.get(entity, ("", ""))
            family.add_metric([etype, entity, name, names.get(tenant, ("", ""))[0], server], value)
        yield from by_metric.values()


def install(app: FastAPI) -> APIRouter:
    """Registers the request histogram middleware and returns the router serving `/metrics`."""
    registry = CollectorRegistry()
    latency = Histogram(
        "fulcrum_api_request_seconds",
        "API requests by method, route and status",
        ["method", "route", "status"],
        registry=registry,
    )
    registry.register(FulcrumCollector(app))

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        latency.labels(request.method, template, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response

    router = APIRouter(tags=["system"])

    @router.get("/metrics", summary="Prometheus exposition (system-admin)", response_class=Response)
    async def metrics(caller: Caller = Depends(get_caller)) -> Response:
        if not caller.is_system_admin:
            raise Forbidden("/metrics spans every tenant: it needs a system-admin")
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
