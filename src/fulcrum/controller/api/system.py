"""Health, version, login/logout, events and the OpenAPI document."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from fulcrum import __version__
from fulcrum.controller.api.errors import ERROR_RESPONSES
from fulcrum.controller.api.security import bearer_token, get_caller, services, source_ip
from fulcrum.controller.services import refs
from fulcrum.controller.services.errors import InvalidInput
from fulcrum.controller.services.events import EventFilter
from fulcrum.controller.services.rbac import Caller
from fulcrum.model.enums import Role


class Health(BaseModel):
    status: str


class Version(BaseModel):
    version: str
    api: str


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


class LoginResponse(BaseModel):
    token: str
    expires: int
    user: str
    tenant: str
    role: Role


class Event(BaseModel):
    uuid: str
    event_id: str
    report_timestamp: str
    tenant_ref: str | None
    obj_type: str | None
    obj_ref: str | None
    obj_name: str | None
    user: str | None
    source_ip: str | None
    details: dict[str, Any]


class EventList(BaseModel):
    count: int
    results: list[Event]
    next: str | None


class WhoAmI(BaseModel):
    user: str
    user_ref: str | None = Field(None, description="the Fulcrum user; none for a Keystone identity")
    tenant: str
    tenant_ref: str
    role: Role


MAX_EPOCH_S = 253402300800.0  # 10000-01-01T00:00:00Z


def _parse_time(value: str | None, where: str) -> int | None:
    """ISO 8601 (`2026-11-26T10:00:00Z`) or seconds since the epoch -> microseconds."""
    if value is None:
        return None
    problem = f"{where}: give ISO 8601 time or seconds since the epoch (years 1970-9999)"
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(problem) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        seconds = moment.timestamp()
    if not 0 <= seconds < MAX_EPOCH_S:  # also false for nan and inf
        raise InvalidInput(problem)
    return int(seconds * 1_000_000)


def _event_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "uuid": row["uuid"],
        "event_id": row["event_id"],
        "report_timestamp": dt.datetime.fromtimestamp(row["ts"] / 1_000_000, dt.UTC).isoformat(),
        "tenant_ref": refs.canonical("tenant", row["tenant_uuid"]) if row["tenant_uuid"] else None,
        "obj_type": row["obj_type"],
        "obj_ref": refs.canonical(row["obj_type"], row["obj_uuid"]) if row["obj_uuid"] else None,
        "obj_name": row["obj_name"],
        "user": row["user_name"],
        "source_ip": row["source_ip"],
        "details": row["details"],
    }


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/api/health", response_model=Health, tags=["system"], summary="Ready to serve (no auth)")
    async def health() -> Health:
        return Health(status="ok")

    @router.get("/api/version", response_model=Version, tags=["system"], summary="Version (no auth)")
    async def version() -> Version:
        return Version(version=__version__, api="v1")

    @router.post(
        "/login", response_model=LoginResponse, tags=["auth"], summary="Exchange credentials for a token",
        responses={k: v for k, v in ERROR_RESPONSES.items() if k in (400, 401, 403, 429)},
    )  # fmt: skip
    async def login(request: Request, body: LoginRequest) -> LoginResponse:
        svc = services(request)
        ip = source_ip(request)
        token, expires = await run_in_threadpool(svc.auth.login, body.username, body.password, ip)
        user_uuid = await run_in_threadpool(svc.auth.token_user, token)
        caller = await run_in_threadpool(svc.auth.caller, user_uuid, None, ip)
        return LoginResponse(
            token=token, expires=expires, user=body.username, tenant=caller.tenant_name, role=caller.role
        )

    @router.post(
        "/logout", status_code=204, tags=["auth"], summary="End this token's session",
        response_class=Response, responses={k: v for k, v in ERROR_RESPONSES.items() if k in (401, 403)},
    )  # fmt: skip
    async def logout(request: Request, caller: Caller = Depends(get_caller)) -> Response:
        await run_in_threadpool(services(request).auth.logout, caller, bearer_token(request))
        return Response(status_code=204)

    @router.get(
        "/api/whoami", response_model=WhoAmI, tags=["auth"], summary="Who the credentials belong to",
        responses={k: v for k, v in ERROR_RESPONSES.items() if k in (401, 403)},
    )  # fmt: skip
    async def whoami(caller: Caller = Depends(get_caller)) -> WhoAmI:
        # Keystone identities are not Fulcrum users (their uuid is `keystone-<id>`): no object to name.
        is_user = caller.user_uuid.startswith("user-")
        return WhoAmI(
            user=caller.user_name,
            user_ref=refs.canonical("user", caller.user_uuid) if is_user else None,
            tenant=caller.tenant_name,
            tenant_ref=refs.canonical("tenant", caller.tenant_uuid),
            role=caller.role,
        )

    @router.get(
        "/api/event", response_model=None, tags=["event"], summary="Events of the caller's tenant",
        responses={200: {"model": EventList, "description": "Newest first"}, **ERROR_RESPONSES},
    )  # fmt: skip
    async def list_events(
        request: Request,
        caller: Caller = Depends(get_caller),
        obj_ref: str | None = Query(None, max_length=512, description="/api/<type>/<uuid> or a uuid"),
        event_id: str | None = Query(None, max_length=64),
        since: str | None = Query(None, max_length=64, description="ISO 8601 or epoch seconds"),
        until: str | None = Query(None, max_length=64),
        page: int = Query(1, ge=1, le=1_000_000),
        page_size: int = Query(25, ge=1, le=1000),
    ) -> JSONResponse:
        svc = services(request)
        obj_uuid = refs.uuid_of(obj_ref.split("#")[0].split("?")[0]) if obj_ref else None
        filters = EventFilter(obj_uuid, event_id, _parse_time(since, "since"), _parse_time(until, "until"))
        # A system-admin working in the admin tenant sees every tenant's events; everyone else their tenant's.
        everything = caller.is_system_admin and caller.tenant_uuid == svc.objects.admin_tenant_uuid
        tenants = None if everything else [caller.tenant_uuid]

        def query() -> tuple[int, list[dict[str, Any]]]:
            with svc.db.read() as conn:
                return svc.events.query(conn, tenants, filters, (page - 1) * page_size, page_size)

        total, rows = await run_in_threadpool(query)
        has_next = page * page_size < total
        next_url = None
        if has_next:
            params = dict(request.query_params)
            params["page"] = str(page + 1)
            next_url = f"{request.url.path}?{urlencode(params)}"
        return JSONResponse({"count": total, "results": [_event_view(r) for r in rows], "next": next_url})

    @router.get(
        "/api/{type_name}/{uuid}/referred_by", response_model=None, tags=["system"],
        summary="Objects that refer to this one", responses=ERROR_RESPONSES,
    )  # fmt: skip
    async def referred_by(
        request: Request, type_name: str, uuid: str, caller: Caller = Depends(get_caller)
    ) -> JSONResponse:
        svc = services(request)
        found = await run_in_threadpool(svc.objects.referrers, caller, type_name, uuid)
        return JSONResponse({"count": len(found), "results": found})

    return router


def openapi_router(app: FastAPI) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/api/openapi.json", tags=["system"], summary="This API's OpenAPI document", include_in_schema=False
    )
    async def openapi(_caller: Caller = Depends(get_caller)) -> JSONResponse:
        return JSONResponse(app.openapi())

    return router
