"""Alerts: `GET /api/alert[/<uuid>]`, `POST /api/alert/<uuid>/acknowledge|clear`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from fulcrum.controller.api.errors import ERROR_RESPONSES
from fulcrum.controller.api.security import get_caller, services
from fulcrum.controller.services.errors import Forbidden
from fulcrum.controller.services.rbac import Caller
from fulcrum.model.enums import Role

READ_ERRORS = {k: v for k, v in ERROR_RESPONSES.items() if k in (400, 401, 403, 404)}
ACTION_ERRORS = {k: v for k, v in ERROR_RESPONSES.items() if k in (400, 401, 403, 404, 409)}


def build_router() -> APIRouter:
    router = APIRouter(tags=["alerts"])

    @router.get("/api/alert", responses=READ_ERRORS, summary="Alerts, newest first")
    async def list_alerts(
        request: Request,
        state: str | None = Query(None, pattern="^(RAISED|ACKNOWLEDGED|CLEARED)$"),
        page: int = Query(1, ge=1, le=1_000_000),
        page_size: int = Query(25, ge=1, le=1000),
        caller: Caller = Depends(get_caller),
    ) -> JSONResponse:
        engine = services(request).alerts
        return JSONResponse(await run_in_threadpool(engine.list, caller, state, page, page_size))

    @router.get("/api/alert/{uuid}", responses=READ_ERRORS, summary="One alert")
    async def get_alert(request: Request, uuid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
        engine = services(request).alerts
        alert = await run_in_threadpool(engine.get, caller, uuid)
        return JSONResponse(engine.view(alert))

    def _may_act(caller: Caller) -> None:
        if not caller.at_least(Role.APPLICATION_ADMIN):
            raise Forbidden(f"role {caller.role.value} may not acknowledge or clear alerts")

    @router.post(
        "/api/alert/{uuid}/acknowledge", responses=ACTION_ERRORS, summary="Acknowledge a raised alert"
    )
    async def acknowledge(request: Request, uuid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
        _may_act(caller)
        return JSONResponse(await run_in_threadpool(services(request).alerts.acknowledge, caller, uuid))

    @router.post("/api/alert/{uuid}/clear", responses=ACTION_ERRORS, summary="Clear an alert by hand")
    async def clear(request: Request, uuid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
        _may_act(caller)
        return JSONResponse(await run_in_threadpool(services(request).alerts.clear, caller, uuid))

    return router
