"""Analytics endpoints: metric series, the metric catalog, request logs and health scores.

Every query names an object the caller must be able to see (404 otherwise, as for the object itself).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from fulcrum.controller.api.errors import ERROR_RESPONSES
from fulcrum.controller.api.security import get_caller, services
from fulcrum.controller.services import refs
from fulcrum.controller.services.errors import InvalidInput
from fulcrum.controller.services.rbac import Caller
from fulcrum.controller.store import repo
from fulcrum.controller.store.tsdb import LogQuery

READ_ERRORS = {k: v for k, v in ERROR_RESPONSES.items() if k in (400, 401, 403, 404)}
ENTITY_PATTERN = "^(virtualservice|pool|serviceengine)$"
_FILTER = re.compile(r"^(eq|co)\(([a-z_]+),(.*)\)$", re.DOTALL)
_STATUS_CLASS = re.compile(r"^([0-5])(xx)?$")


def parse_time(value: str | None, what: str) -> float | None:
    """UNIX seconds or ISO 8601 (a missing zone means UTC)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{what}: {value!r} is neither UNIX seconds nor an ISO 8601 time") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=datetime.now().astimezone().tzinfo).timestamp()
    return parsed.timestamp()


def parse_filters(filters: list[str]) -> dict[str, Any]:
    """`eq(status_class,5xx)`, `eq(client_ip,10.0.0.1)`, `co(uri,/login)`, `eq(significant,true)`."""
    found: dict[str, Any] = {}
    for text in filters:
        match = _FILTER.match(text.strip())
        if not match:
            raise InvalidInput(f"filter: {text!r} is not eq(field,value) or co(field,value)")
        op, key, value = match.groups()
        if (op, key) == ("eq", "status_class"):
            status = _STATUS_CLASS.match(value)
            if not status:
                raise InvalidInput(f"filter: status_class must be 0..5 or 2xx..5xx, got {value!r}")
            found["status_class"] = int(status.group(1))
        elif (op, key) == ("eq", "client_ip"):
            found["client_ip"] = value
        elif (op, key) == ("co", "uri"):
            found["uri_contains"] = value
        elif (op, key) == ("eq", "significant"):
            found["significant_only"] = value.lower() in ("1", "true", "yes")
        else:
            raise InvalidInput(
                f"filter: {op}({key},...) is not supported; use eq(status_class,..), eq(client_ip,..), "
                "co(uri,..) or eq(significant,true)"
            )
    return found


def build_router() -> APIRouter:
    router = APIRouter(tags=["analytics"])

    def _visible(request: Request, caller: Caller, type_name: str, uuid: str) -> Any:
        svc = services(request)
        with svc.db.read() as conn:
            return svc.objects.load(conn, caller, type_name, refs.uuid_of(uuid))

    @router.get(
        "/api/analytics/metric_ids", summary="Every metric with its unit and the objects it applies to"
    )
    async def metric_ids(request: Request, caller: Caller = Depends(get_caller)) -> JSONResponse:
        items = services(request).analytics.metric_ids()
        return JSONResponse({"count": len(items), "results": items})

    @router.get(
        "/api/analytics/metrics/{entity_type}/{uuid}",
        responses=READ_ERRORS,
        summary="Time series of metrics of a VS, pool or SE",
    )
    async def metrics(
        request: Request,
        entity_type: str = PathParam(..., pattern=ENTITY_PATTERN),
        uuid: str = PathParam(...),
        metric_id: str = Query(..., description="comma-separated metric ids"),
        step: int | None = Query(None, ge=1, description="seconds per point: 5, 300 or 3600 by default"),
        limit: int = Query(60, ge=1, le=1000),
        server: str | None = Query(None, max_length=80, description="a pool's server `ip:port`"),
        caller: Caller = Depends(get_caller),
    ) -> JSONResponse:
        obj = await run_in_threadpool(_visible, request, caller, entity_type, uuid)
        ids = [m.strip() for m in metric_id.split(",") if m.strip()]
        if not ids:
            raise InvalidInput("metric_id: give at least one metric id")
        analytics = services(request).analytics
        answer = await run_in_threadpool(
            analytics.series, entity_type, obj.uuid, ids, step, limit, server or ""
        )
        return JSONResponse(answer)

    @router.get("/api/analytics/logs", responses=READ_ERRORS, summary="Search request logs")
    async def logs(
        request: Request,
        virtualservice: str | None = Query(None, description="uuid or ref; default: every VS you can see"),
        since: str | None = None,
        until: str | None = None,
        filter: list[str] = Query([], description="eq(status_class,5xx), eq(client_ip,IP), co(uri,TEXT)"),
        page_size: int = Query(100, ge=1, le=1000),
        caller: Caller = Depends(get_caller),
    ) -> JSONResponse:
        svc = services(request)
        if virtualservice:
            vs_uuids = [
                (await run_in_threadpool(_visible, request, caller, "virtualservice", virtualservice)).uuid
            ]
        else:

            def visible_vss() -> list[str]:
                with svc.db.read() as conn:
                    return [
                        o.uuid
                        for o in repo.all_of_type(conn, "virtualservice")
                        if svc.objects.visible(caller, o)
                    ]

            vs_uuids = await run_in_threadpool(visible_vss)
        query = LogQuery(
            vs_uuids=vs_uuids,
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
            limit=page_size,
            **parse_filters(filter),
        )
        return JSONResponse(await run_in_threadpool(svc.analytics.search_logs, query))

    @router.get(
        "/api/analytics/healthscore/{entity_type}/{uuid}",
        responses=READ_ERRORS,
        summary="Health score 0-100 of a VS, pool or SE, with the reasons behind each deduction",
    )
    async def healthscore(
        request: Request,
        entity_type: str = PathParam(..., pattern=ENTITY_PATTERN),
        uuid: str = PathParam(...),
        caller: Caller = Depends(get_caller),
    ) -> JSONResponse:
        obj = await run_in_threadpool(_visible, request, caller, entity_type, uuid)
        return JSONResponse(await run_in_threadpool(services(request).health.score, obj))

    return router
