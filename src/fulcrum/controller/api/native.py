"""The native REST API: list/create/get/put/patch/delete for every object type in the registry.

Routes are generated per type so that OpenAPI documents each type's real schema. Handlers are thin:
parse the query, call the object service in a worker thread, shape the answer.
"""

# No `from __future__ import annotations` here: FastAPI reads the per-type models from the real
# annotation objects of the generated handlers.

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.concurrency import run_in_threadpool

from fulcrum.controller.api.errors import ERROR_RESPONSES
from fulcrum.controller.api.security import get_caller, services
from fulcrum.controller.services.rbac import Caller
from fulcrum.model.registry import TYPES, ObjectType, WriteAccess

ALWAYS_SHOWN = ("name", "uuid", "url", "tenant_ref", "_last_modified")


def _class_name(otype: ObjectType) -> str:
    return otype.schema.__name__


def output_model(otype: ObjectType) -> type[BaseModel]:
    """What GET returns: every config field (optional, since `fields=` may leave it out) plus metadata."""
    config_fields: dict[str, Any] = {
        field: (info.annotation | None, None)  # type: ignore[operator]
        for field, info in otype.schema.model_fields.items()
        if (field,) not in otype.secret_paths
    }
    return create_model(  # type: ignore[call-overload, no-any-return]
        f"{_class_name(otype)}Object",
        __config__=ConfigDict(extra="forbid"),
        **config_fields,
        uuid=(str, ...),
        url=(str, ...),
        tenant_ref=(str, ...),
        last_modified=(str, Field(alias="_last_modified")),
    )


def replace_model(otype: ObjectType) -> type[BaseModel]:
    """A PUT body may carry the metadata of a GET answer, so GET -> edit -> PUT works as is."""
    return create_model(  # type: ignore[call-overload, no-any-return]
        f"{_class_name(otype)}Replace",
        __base__=otype.schema,
        uuid=(str | None, None),
        url=(str | None, None),
        tenant_ref=(str | None, None),
        last_modified=(str | None, Field(None, alias="_last_modified")),
    )


def list_model(otype: ObjectType, item: type[BaseModel]) -> type[BaseModel]:
    return create_model(  # type: ignore[call-overload, no-any-return]
        f"{_class_name(otype)}List",
        __config__=ConfigDict(extra="forbid"),
        count=(int, ...),
        results=(list[item], ...),  # type: ignore[valid-type]
        next=(str | None, None),
    )


def _project(item: dict[str, Any], fields: str | None) -> dict[str, Any]:
    if not fields:
        return item
    wanted = {f.strip() for f in fields.split(",") if f.strip()} | set(ALWAYS_SHOWN)
    return {k: v for k, v in item.items() if k in wanted}


def _next_url(request: Request, page: int) -> str:
    params = dict(request.query_params)
    params["page"] = str(page + 1)
    return f"{request.url.path}?{urlencode(params)}"


def _type_router(otype: ObjectType) -> APIRouter:
    router = APIRouter(prefix=f"/api/{otype.name}", tags=[otype.name], responses=ERROR_RESPONSES)
    name = otype.name
    out = output_model(otype)
    listing = list_model(otype, out)
    create_body = otype.schema
    put_body = replace_model(otype)

    async def list_objects(
        request: Request,
        caller: Caller = Depends(get_caller),
        name_filter: str | None = Query(None, alias="name", max_length=255),
        page: int = Query(1, ge=1, le=1_000_000),
        page_size: int = Query(25, ge=1, le=1000),
        sort: str = Query("name", max_length=32),
        fields: str | None = Query(None, max_length=2048),
    ) -> Any:
        svc = services(request)
        result = await run_in_threadpool(
            svc.objects.list, caller, name, name=name_filter, sort=sort, page=page, page_size=page_size
        )
        return JSONResponse(
            {
                "count": result.count,
                "results": [_project(item, fields) for item in result.results],
                "next": _next_url(request, page) if result.has_next else None,
            }
        )

    async def get_object(
        request: Request, uuid: str, caller: Caller = Depends(get_caller), fields: str | None = Query(None)
    ) -> Any:
        item = await run_in_threadpool(services(request).objects.get, caller, name, uuid)
        return JSONResponse(_project(item, fields))

    router.add_api_route(
        "", list_objects, methods=["GET"], summary=f"List {name} objects", response_model=None,
        responses={200: {"model": listing, "description": "One page of objects"}},
    )  # fmt: skip
    router.add_api_route(
        "/{uuid}", get_object, methods=["GET"], summary=f"Get one {name}", response_model=None,
        responses={200: {"model": out, "description": "The object"}},
    )  # fmt: skip

    if otype.write == WriteAccess.NONE:
        return router

    async def create_object(
        request: Request,
        body: create_body = Body(...),  # type: ignore[valid-type]
        caller: Caller = Depends(get_caller),
        dry_run: bool = Query(False, description="validate and show the result without storing it"),
    ) -> Any:
        raw = await request.json()
        item = await run_in_threadpool(services(request).objects.create, caller, name, raw, dry_run=dry_run)
        return JSONResponse(item, status_code=200 if dry_run else 201)

    async def replace_object(
        request: Request,
        uuid: str,
        body: put_body = Body(...),  # type: ignore[valid-type]
        caller: Caller = Depends(get_caller),
        dry_run: bool = Query(False),
    ) -> Any:
        raw = await request.json()
        return JSONResponse(
            await run_in_threadpool(
                services(request).objects.replace, caller, name, uuid, raw, dry_run=dry_run
            )
        )

    async def patch_object(
        request: Request,
        uuid: str,
        body: dict[str, Any] = Body(..., description="JSON merge patch (RFC 7386)"),
        caller: Caller = Depends(get_caller),
        dry_run: bool = Query(False),
    ) -> Any:
        return JSONResponse(
            await run_in_threadpool(
                services(request).objects.patch, caller, name, uuid, body, dry_run=dry_run
            )
        )

    async def delete_object(request: Request, uuid: str, caller: Caller = Depends(get_caller)) -> Response:
        await run_in_threadpool(services(request).objects.delete, caller, name, uuid)
        return Response(status_code=204)

    written = {200: {"model": out, "description": "The object as stored (or as it would be, on a dry run)"}}
    router.add_api_route(
        "", create_object, methods=["POST"], status_code=201, summary=f"Create a {name}", response_model=None,
        responses={201: {"model": out, "description": "Created"}, **written},
    )  # fmt: skip
    router.add_api_route(
        "/{uuid}", replace_object, methods=["PUT"], summary=f"Replace a {name}", response_model=None,
        responses=written,
    )  # fmt: skip
    router.add_api_route(
        "/{uuid}", patch_object, methods=["PATCH"], summary=f"Merge-patch a {name}", response_model=None,
        responses=written,
    )  # fmt: skip
    router.add_api_route(
        "/{uuid}", delete_object, methods=["DELETE"], status_code=204, summary=f"Delete a {name}",
        response_class=Response,
    )  # fmt: skip
    return router


def build_router() -> APIRouter:
    router = APIRouter()
    for otype in TYPES.values():
        router.include_router(_type_router(otype))
    return router
