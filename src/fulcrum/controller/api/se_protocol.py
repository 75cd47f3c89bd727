"""HTTP endpoints of the SE protocol (see fulcrum.protocol.se); SEs authenticate by signature."""

from __future__ import annotations

from typing import TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from fulcrum.controller.api.security import services
from fulcrum.controller.services.errors import InvalidInput
from fulcrum.protocol import se as wire

MAX_WAIT_S = 30.0
_M = TypeVar("_M", bound=BaseModel)


async def _signed(request: Request) -> tuple[str, bytes]:
    body = await request.body()
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    registry = services(request).registry
    headers = {k.lower(): v for k, v in request.headers.items()}
    se_uuid = await run_in_threadpool(registry.authenticate, headers, request.method, path, body)
    return se_uuid, body


def _parse(model: type[_M], body: bytes) -> _M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidInput(f"malformed {model.__name__}: {exc.errors(include_url=False)[0]['msg']}") from None


def build_router() -> APIRouter:
    router = APIRouter(prefix=wire.PREFIX, include_in_schema=False)

    @router.post("/register")
    async def register(request: Request) -> JSONResponse:
        message = _parse(wire.RegisterRequest, await request.body())
        answer = await run_in_threadpool(services(request).registry.register, message)
        services(request).dataplane.poke()
        return JSONResponse(answer.model_dump(mode="json"))

    @router.get("/config")
    async def config(
        request: Request, version: int = Query(0, ge=0), wait: float = Query(25.0, ge=0, le=MAX_WAIT_S)
    ) -> Response:
        se_uuid, _ = await _signed(request)
        desired = await services(request).registry.wait_config(se_uuid, version, wait)
        if desired is None:
            return Response(status_code=304)
        envelope = wire.ConfigEnvelope(version=desired.version, config=desired)
        return JSONResponse(envelope.model_dump(mode="json"))

    @router.post("/ack")
    async def ack(request: Request) -> JSONResponse:
        se_uuid, body = await _signed(request)
        services(request).registry.ack(se_uuid, _parse(wire.Ack, body))
        services(request).dataplane.poke()
        return JSONResponse({})

    @router.post("/heartbeat")
    async def heartbeat(request: Request) -> JSONResponse:
        se_uuid, body = await _signed(request)
        answer = services(request).registry.heartbeat(se_uuid, _parse(wire.Heartbeat, body))
        return JSONResponse(answer.model_dump(mode="json"))

    @router.post("/analytics")
    async def analytics(request: Request) -> JSONResponse:
        se_uuid, body = await _signed(request)
        report = _parse(wire.AnalyticsReport, body)
        accepted = await run_in_threadpool(services(request).analytics.ingest, se_uuid, report)
        return JSONResponse(accepted)

    return router
