"""The Octavia v2 API (`/v2/lbaas`, `/v2.0/lbaas`, `/v2/octavia/amphorae`), the version document at
`/`, and a read-only Networking-API view of Fulcrum's VIP networks (`/v2.0/networks`, `/v2.0/subnets`)
so `openstack loadbalancer create --vip-subnet-id` resolves its subnet where no Neutron exists.

Handlers are thin: parse, call the Octavia service in a worker thread, shape the answer the way Octavia
does (`{"loadbalancer": {...}}`, `{"loadbalancers": [...], "loadbalancers_links": []}`), and filter,
sort, page and project lists as Octavia's query parameters ask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from fulcrum.controller.api import octavia_extras as extras
from fulcrum.controller.api.security import get_caller, services
from fulcrum.controller.services.errors import Forbidden, InvalidInput, NotFound
from fulcrum.controller.services.octavia.service import OctaviaService
from fulcrum.controller.services.octavia.status import StatusBook
from fulcrum.controller.services.rbac import Caller, role_allows_write

PREFIXES = ("/v2/lbaas", "/v2.0/lbaas")
API_VERSION = "v2.27"
COLLECTIONS = {
    "loadbalancer": "loadbalancers",
    "listener": "listeners",
    "pool": "pools",
    "healthmonitor": "healthmonitors",
    "l7policy": "l7policies",
}
RESERVED_QUERY = {"fields", "limit", "marker", "page_reverse", "sort", "sort_key", "sort_dir", "cascade"}


def octavia(request: Request) -> OctaviaService:
    return extras.cached(  # type: ignore[no-any-return]
        request,
        "octavia",
        lambda svc: OctaviaService(svc.objects, StatusBook(svc.dataplane, svc.settings.dataplane)),
    )


def _writer(caller: Caller, request: Request) -> None:
    if not role_allows_write(caller, services(request).objects.otype("virtualservice")):
        raise Forbidden("Policy does not allow this request to be performed.")


def _admin(caller: Caller) -> None:
    if not caller.is_system_admin:
        raise Forbidden("Policy does not allow this request to be performed.")


async def _body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise InvalidInput("Invalid input: the request body is not valid JSON") from None


def _matches(item: dict[str, Any], key: str, wanted: list[str]) -> bool:
    if key not in item:
        return True  # Octavia ignores filters on attributes a resource does not have
    value = item[key]
    if isinstance(value, bool):
        return str(value).lower() in [w.lower() for w in wanted]
    if isinstance(value, list):  # tags
        return all(w in value for w in wanted)
    return str(value) in wanted if value is not None else "" in wanted or "None" in wanted


def shape_list(request: Request, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Any]]:
    """Octavia's list query: attribute filters, `sort=key:dir,...`, `limit` + `marker`, `fields`."""
    query = request.query_params
    for key in {k for k in query if k not in RESERVED_QUERY}:
        wanted = query.getlist(key)
        if key == "tags":
            wanted = [t for w in wanted for t in w.split(",")]
        items = [i for i in items if _matches(i, key, wanted)]
    sort = query.get("sort") or (
        f"{query['sort_key']}:{query.get('sort_dir', 'asc')}" if query.get("sort_key") else "created_at:asc"
    )
    for part in reversed(sort.split(",")):
        key, _, direction = part.partition(":")
        if direction not in ("", "asc", "desc"):
            raise InvalidInput(f"Invalid input: sort direction {direction!r} must be asc or desc")
        items.sort(key=lambda i, k=key: (i.get(k) is None, str(i.get(k, ""))), reverse=direction == "desc")
    links: list[Any] = []
    marker = query.get("marker")
    if marker:
        position = next((n for n, i in enumerate(items) if i.get("id") == marker), None)
        if position is None:
            raise NotFound(f"marker {marker} could not be found.")
        items = items[position + 1 :]
    if query.get("limit"):
        try:
            limit = int(query["limit"])
        except ValueError:
            raise InvalidInput("Invalid input: limit must be an integer") from None
        if limit > 0 and len(items) > limit:
            items = items[:limit]
            href = str(request.url.include_query_params(marker=items[-1]["id"]))
            links.append({"rel": "next", "href": href})
    fields = query.getlist("fields")
    if fields:
        wanted = {f for value in fields for f in value.split(",")}
        items = [{k: v for k, v in i.items() if k in wanted} for i in items]
    return items, links


def version_document(request: Request) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return {
        "versions": [
            {"id": "v2.0", "status": "SUPPORTED", "updated": "2016-12-11T00:00:00Z",
             "links": [{"href": f"{base}/v2.0", "rel": "self"}]},
            {"id": API_VERSION, "status": "CURRENT", "updated": "2023-05-03T00:00:00Z",
             "links": [{"href": f"{base}/v2", "rel": "self"}]},
        ]
    }  # fmt: skip


def build_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def root(request: Request) -> JSONResponse:
        return JSONResponse(version_document(request))

    @router.get("/v2")
    @router.get("/v2/")
    @router.get("/v2.0")
    @router.get("/v2.0/")
    async def version(request: Request) -> JSONResponse:
        return JSONResponse(version_document(request))

    def run(call: Callable[[], Any]) -> Any:
        return run_in_threadpool(call)

    for prefix in PREFIXES:
        _resources(router, prefix, run)
        extras.routes(router, prefix, run, shape_list, _admin, _body)
    extras.amphora_routes(router, run, shape_list, _admin)
    extras.network_routes(router, run, shape_list)
    return router


def _resources(router: APIRouter, prefix: str, run: Callable[[Callable[[], Any]], Any]) -> None:
    def collection(kind: str) -> None:
        plural = COLLECTIONS[kind]
        path = f"{prefix}/{plural}"
        creators = {
            "loadbalancer": OctaviaService.create_lb,
            "listener": OctaviaService.create_listener,
            "pool": OctaviaService.create_pool,
            "healthmonitor": OctaviaService.create_hm,
            "l7policy": OctaviaService.create_policy,
        }
        updaters = {
            "loadbalancer": OctaviaService.update_lb,
            "listener": OctaviaService.update_listener,
            "pool": OctaviaService.update_pool,
            "healthmonitor": OctaviaService.update_hm,
            "l7policy": OctaviaService.update_policy,
        }
        deleters = {
            "listener": OctaviaService.delete_listener,
            "pool": OctaviaService.delete_pool,
            "healthmonitor": OctaviaService.delete_hm,
            "l7policy": OctaviaService.delete_policy,
        }

        async def list_(request: Request, caller: Caller = Depends(get_caller)) -> JSONResponse:
            items = await run(lambda: octavia(request).list(caller, kind))
            shown, links = shape_list(request, items)
            return JSONResponse({plural: shown, f"{plural}_links": links})

        async def create(request: Request, caller: Caller = Depends(get_caller)) -> JSONResponse:
            _writer(caller, request)
            body = await _body(request)
            made = await run(lambda: creators[kind](octavia(request), caller, body))
            return JSONResponse({kind: made}, status_code=201)

        async def show(request: Request, oid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
            found = await run(lambda: octavia(request).show(caller, kind, oid))
            return JSONResponse({kind: extras.fields(request, found)})

        async def update(request: Request, oid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
            _writer(caller, request)
            body = await _body(request)
            changed = await run(lambda: updaters[kind](octavia(request), caller, oid, body))
            return JSONResponse({kind: changed}, status_code=200)

        async def delete(request: Request, oid: str, caller: Caller = Depends(get_caller)) -> Response:
            _writer(caller, request)
            if kind == "loadbalancer":
                cascade = request.query_params.get("cascade", "false").lower() in ("true", "1", "yes")
                await run(lambda: octavia(request).delete_lb(caller, oid, cascade))
            else:
                await run(lambda: deleters[kind](octavia(request), caller, oid))
            return Response(status_code=204)

        router.add_api_route(path, list_, methods=["GET"])
        router.add_api_route(path, create, methods=["POST"])
        router.add_api_route(f"{path}/{{oid}}", show, methods=["GET"])
        router.add_api_route(f"{path}/{{oid}}", update, methods=["PUT"])
        router.add_api_route(f"{path}/{{oid}}", delete, methods=["DELETE"])

    for kind in COLLECTIONS:
        collection(kind)

    @router.get(f"{prefix}/loadbalancers/{{oid}}/status")
    async def lb_status(request: Request, oid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
        return JSONResponse(await run(lambda: octavia(request).status_tree(caller, oid)))

    @router.get(f"{prefix}/loadbalancers/{{oid}}/stats")
    async def lb_stats(request: Request, oid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
        return JSONResponse({"stats": await run(lambda: octavia(request).stats(caller, "loadbalancer", oid))})

    @router.get(f"{prefix}/listeners/{{oid}}/stats")
    async def listener_stats(
        request: Request, oid: str, caller: Caller = Depends(get_caller)
    ) -> JSONResponse:
        return JSONResponse({"stats": await run(lambda: octavia(request).stats(caller, "listener", oid))})

    @router.put(f"{prefix}/loadbalancers/{{oid}}/failover")
    async def lb_failover(request: Request, oid: str, caller: Caller = Depends(get_caller)) -> Response:
        dp = services(request).dataplane
        await run(lambda: octavia(request).failover_lb(caller, oid, dp))
        return Response(status_code=202)

    # --- members of a pool, rules of a policy: lists inside their parent ------------------------------
    _children(router, f"{prefix}/pools/{{parent}}/members", "member", "members", run)
    _children(router, f"{prefix}/l7policies/{{parent}}/rules", "rule", "rules", run)

    @router.put(f"{prefix}/pools/{{parent}}/members")
    async def batch_members(request: Request, parent: str, caller: Caller = Depends(get_caller)) -> Response:
        _writer(caller, request)
        body = await _body(request)
        await run(lambda: octavia(request).batch_members(caller, parent, body))
        return Response(status_code=202)


def _children(
    router: APIRouter, path: str, one: str, many: str, run: Callable[[Callable[[], Any]], Any]
) -> None:
    """List, create, show, update and delete of members (`one` = "member") or L7 rules ("rule")."""

    def call(request: Request, verb: str, *args: Any) -> Any:
        return run(lambda: getattr(octavia(request), f"{verb}_{one}{'s' if verb == 'list' else ''}")(*args))

    async def list_(request: Request, parent: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
        shown, links = shape_list(request, await call(request, "list", caller, parent))
        return JSONResponse({many: shown, f"{many}_links": links})

    async def create(request: Request, parent: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
        _writer(caller, request)
        body = await _body(request)
        return JSONResponse({one: await call(request, "create", caller, parent, body)}, status_code=201)

    async def show(
        request: Request, parent: str, child: str, caller: Caller = Depends(get_caller)
    ) -> JSONResponse:
        return JSONResponse({one: await call(request, "show", caller, parent, child)})

    async def update(
        request: Request, parent: str, child: str, caller: Caller = Depends(get_caller)
    ) -> JSONResponse:
        _writer(caller, request)
        body = await _body(request)
        return JSONResponse({one: await call(request, "update", caller, parent, child, body)})

    async def delete(
        request: Request, parent: str, child: str, caller: Caller = Depends(get_caller)
    ) -> Response:
        _writer(caller, request)
        await call(request, "delete", caller, parent, child)
        return Response(status_code=204)

    router.add_api_route(path, list_, methods=["GET"])
    router.add_api_route(path, create, methods=["POST"])
    router.add_api_route(f"{path}/{{child}}", show, methods=["GET"])
    router.add_api_route(f"{path}/{{child}}", update, methods=["PUT"])
    router.add_api_route(f"{path}/{{child}}", delete, methods=["DELETE"])
