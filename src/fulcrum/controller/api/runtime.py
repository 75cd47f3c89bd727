"""Runtime state and actions, kept apart from config.

`GET /api/<type>/<uuid>/runtime` for SEs, VSs and pools; `POST /api/virtualservice/<uuid>/<action>`
for scaleout, scalein, migrate and switchover (elastic HA). Actions need write access to the VS.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from fulcrum.controller.api.errors import ERROR_RESPONSES
from fulcrum.controller.api.security import get_caller, services
from fulcrum.controller.services.errors import Forbidden
from fulcrum.controller.services.rbac import Caller, role_allows_write

READ_ERRORS = {k: v for k, v in ERROR_RESPONSES.items() if k in (400, 401, 403, 404)}
ACTION_ERRORS = {k: v for k, v in ERROR_RESPONSES.items() if k in (400, 401, 403, 404, 409)}


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vip_id: str = Field("0", description="accepted for compatibility; every VIP of the VS moves together")


class ScaleOut(_Action):
    to_se_ref: str | None = Field(None, description="scale out to this SE of the VS's group")
    to_new_se: bool = Field(False, description="scale out to a newly created SE")


class ScaleIn(_Action):
    from_se_ref: str | None = Field(None, description="the SE to take away (default: the last secondary)")


class Migrate(_Action):
    vs_se_ref: str | None = Field(None, description="the SE to move away from (default: the only one)")
    to_se_ref: str | None = None
    to_new_se: bool = False


class Switchover(_Action):
    pass


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

    def _writable(request: Request, caller: Caller, uuid: str) -> Any:
        svc = services(request)
        obj = _load(request, caller, "virtualservice", uuid)
        if obj.tenant_uuid != caller.tenant_uuid or not role_allows_write(
            caller, svc.objects.otype("virtualservice")
        ):
            raise Forbidden(f"role {caller.role.value} may not act on virtual service {obj.name!r} here")
        return obj

    async def _act(request: Request, caller: Caller, uuid: str, call: Any) -> JSONResponse:
        obj = await run_in_threadpool(_writable, request, caller, uuid)
        result = await run_in_threadpool(call, obj)
        return JSONResponse({"uuid": obj.uuid, "name": obj.name, **result}, status_code=202)

    @router.post(
        "/api/virtualservice/{uuid}/scaleout",
        responses=ACTION_ERRORS,
        status_code=202,
        summary="Run the VS on one more SE (the primary distributes connections to it)",
    )
    async def scaleout(
        request: Request, uuid: str, body: ScaleOut | None = None, caller: Caller = Depends(get_caller)
    ) -> JSONResponse:
        body = body or ScaleOut()
        dp = services(request).dataplane
        return await _act(request, caller, uuid, lambda vs: dp.scale_out(vs, body.to_se_ref, body.to_new_se))

    @router.post(
        "/api/virtualservice/{uuid}/scalein",
        responses=ACTION_ERRORS,
        status_code=202,
        summary="Drain one SE of the VS, then remove it",
    )
    async def scalein(
        request: Request, uuid: str, body: ScaleIn | None = None, caller: Caller = Depends(get_caller)
    ) -> JSONResponse:
        body = body or ScaleIn()
        dp = services(request).dataplane
        return await _act(request, caller, uuid, lambda vs: dp.scale_in(vs, body.from_se_ref))

    @router.post(
        "/api/virtualservice/{uuid}/migrate",
        responses=ACTION_ERRORS,
        status_code=202,
        summary="Move the VS from one SE to another (drained first)",
    )
    async def migrate(
        request: Request, uuid: str, body: Migrate | None = None, caller: Caller = Depends(get_caller)
    ) -> JSONResponse:
        body = body or Migrate()
        dp = services(request).dataplane
        return await _act(
            request, caller, uuid, lambda vs: dp.migrate(vs, body.vs_se_ref, body.to_se_ref, body.to_new_se)
        )

    @router.post(
        "/api/virtualservice/{uuid}/switchover",
        responses=ACTION_ERRORS,
        status_code=202,
        summary="Swap the active and standby SE (legacy) or the primary and a secondary (elastic)",
    )
    async def switchover(
        request: Request, uuid: str, body: Switchover | None = None, caller: Caller = Depends(get_caller)
    ) -> JSONResponse:
        dp = services(request).dataplane
        return await _act(request, caller, uuid, dp.switchover)

    return router
