"""Runtime state, kept apart from config: `/api/<type>/<uuid>/runtime` for SEs, VSs and pools."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from fulcrum.controller.api.errors import ERROR_RESPONSES
from fulcrum.controller.api.security import get_caller, services
from fulcrum.controller.services.rbac import Caller

READ_ERRORS = {k: v for k, v in ERROR_RESPONSES.items() if k in (400, 401, 403, 404)}


def build_router() -> APIRouter:
    router = APIRouter(tags=["runtime"])

    def _load(request: Request, caller: Caller, type_name: str, uuid: str) -> Any:
        svc = services(request)
        with svc.db.read() as conn:
            return svc.objects.load(conn, caller, type_name, uuid)

    @router.get("/api/virtualservice/{uuid}/runtime", responses=READ_ERRORS, summary="VS oper status and SEs")
    async def vs_runtime(request: Request, uuid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
        obj = await run_in_threadpool(_load, request, caller, "virtualservice", uuid)
        return JSONResponse(
            {"uuid": obj.uuid, "name": obj.name, **services(request).dataplane.vs_runtime(obj.uuid)}
        )

    @router.get(
        "/api/serviceengine/{uuid}/runtime", responses=READ_ERRORS, summary="SE status, VSs, resources"
    )
    async def se_runtime(request: Request, uuid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
        obj = await run_in_threadpool(_load, request, caller, "serviceengine", uuid)
        runtime = await run_in_threadpool(services(request).dataplane.se_runtime, obj)
        return JSONResponse({"uuid": obj.uuid, "name": obj.name, **runtime})

    @router.get(
        "/api/pool/{uuid}/runtime", responses=READ_ERRORS, summary="Each server UP/DOWN with the reason"
    )
    async def pool_runtime(request: Request, uuid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
        obj = await run_in_threadpool(_load, request, caller, "pool", uuid)
        return JSONResponse(
            {"uuid": obj.uuid, "name": obj.name, **services(request).dataplane.pool_runtime(obj)}
        )

    return router
