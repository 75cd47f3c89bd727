"""Octavia's side resources: providers, flavors and flavor profiles (SE groups), quotas, amphorae
(a read-only view of SEs), and the read-only Networking-API view of VIP networks and subnets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from fulcrum.controller.api.security import get_caller, services
from fulcrum.controller.services.container import Services
from fulcrum.controller.services.octavia.extras import OctaviaExtras
from fulcrum.controller.services.rbac import Caller

Run = Callable[[Callable[[], Any]], Any]


def cached(request: Request, name: str, build: Callable[[Services], Any]) -> Any:
    """A service kept on the app, built anew when the app's services are (each lifespan builds its own)."""
    svc = services(request)
    found = getattr(request.app.state, name, None)
    if found is None or found.objects is not svc.objects:
        found = build(svc)
        setattr(request.app.state, name, found)
    return found


def extras(request: Request) -> OctaviaExtras:
    return cached(  # type: ignore[no-any-return]
        request,
        "octavia_extras",
        lambda svc: OctaviaExtras(svc.objects, svc.dataplane, svc.settings.dataplane),
    )


def fields(request: Request, item: dict[str, Any]) -> dict[str, Any]:
    """Octavia's `fields=` projection of one resource."""
    wanted = {f for v in request.query_params.getlist("fields") for f in v.split(",")}
    return {k: v for k, v in item.items() if not wanted or k in wanted}


def _mark_lb(request: Request) -> Callable[[str], None]:
    """Marks a load balancer PENDING_UPDATE in the Octavia service's status book, if it has one yet."""
    octavia = getattr(request.app.state, "octavia", None)
    current = octavia is not None and octavia.objects is services(request).objects

    def mark(lb_uuid: str) -> None:
        if current:
            octavia.status.mark(lb_uuid, "UPDATE")

    return mark


def routes(router: APIRouter, prefix: str, run: Run, shape_list: Any, admin: Any, body: Any) -> None:
    """Providers, flavors, flavor profiles and quotas under `prefix`."""

    # --- providers --------------------------------------------------------------------------------

    @router.get(f"{prefix}/providers")
    async def list_providers(request: Request, caller: Caller = Depends(get_caller)) -> JSONResponse:
        shown, _ = shape_list(request, OctaviaExtras.providers())
        return JSONResponse({"providers": shown})

    @router.get(f"{prefix}/providers/{{provider}}/flavor_capabilities")
    async def flavor_capabilities(
        request: Request, provider: str, caller: Caller = Depends(get_caller)
    ) -> JSONResponse:
        admin(caller)
        found = extras(request).flavor_capabilities(provider)
        shown, _ = shape_list(request, found)
        return JSONResponse({"flavor_capabilities": shown})

    @router.get(f"{prefix}/providers/{{provider}}/availability_zone_capabilities")
    async def az_capabilities(
        request: Request, provider: str, caller: Caller = Depends(get_caller)
    ) -> JSONResponse:
        admin(caller)
        found = extras(request).availability_zone_capabilities(provider)
        shown, _ = shape_list(request, found)
        return JSONResponse({"availability_zone_capabilities": shown})

    # --- flavor profiles (admin only) and flavors (read: everyone; write: admin) -------------------
    _crud(router, f"{prefix}/flavorprofiles", "flavorprofile", "profile", run, shape_list, admin, body, True)
    _crud(router, f"{prefix}/flavors", "flavor", "flavor", run, shape_list, admin, body, False)

    # --- quotas -----------------------------------------------------------------------------------

    quotas = f"{prefix}/quotas"

    @router.get(quotas)
    async def list_quotas(request: Request, caller: Caller = Depends(get_caller)) -> JSONResponse:
        shown, links = shape_list(request, await run(lambda: extras(request).list_quotas(caller)))
        return JSONResponse({"quotas": shown, "quotas_links": links})

    # Registered before `/quotas/{project_id}`, which would otherwise take "defaults" for a project.
    @router.get(f"{quotas}/defaults")
    async def quota_defaults(request: Request, caller: Caller = Depends(get_caller)) -> JSONResponse:
        return JSONResponse({"quota": extras(request).quota_defaults()})

    @router.get(f"{quotas}/{{project_id}}")
    async def show_quota(
        request: Request, project_id: str, caller: Caller = Depends(get_caller)
    ) -> JSONResponse:
        found = await run(lambda: extras(request).show_quota(caller, project_id))
        return JSONResponse({"quota": found})

    @router.put(f"{quotas}/{{project_id}}")
    async def put_quota(
        request: Request, project_id: str, caller: Caller = Depends(get_caller)
    ) -> JSONResponse:
        admin(caller)
        given = await body(request)
        changed = await run(lambda: extras(request).put_quota(project_id, given))
        return JSONResponse({"quota": changed}, status_code=202)

    @router.delete(f"{quotas}/{{project_id}}")
    async def delete_quota(
        request: Request, project_id: str, caller: Caller = Depends(get_caller)
    ) -> Response:
        admin(caller)
        await run(lambda: extras(request).delete_quota(project_id))
        return Response(status_code=204)


def _crud(
    router: APIRouter,
    path: str,
    one: str,
    noun: str,
    run: Run,
    shape_list: Any,
    admin: Any,
    body: Any,
    admin_reads: bool,
) -> None:
    """List, create, show, update, delete of an admin-managed resource (`OctaviaExtras.<verb>_<noun>`)."""
    many = f"{one}s"

    def call(request: Request, verb: str, *args: Any) -> Any:
        method = getattr(extras(request), f"{verb}_{noun}{'s' if verb == 'list' else ''}")
        return run(lambda: method(*args))

    def reader(caller: Caller) -> None:
        if admin_reads:
            admin(caller)

    async def list_(request: Request, caller: Caller = Depends(get_caller)) -> JSONResponse:
        reader(caller)
        shown, links = shape_list(request, await call(request, "list"))
        return JSONResponse({many: shown, f"{many}_links": links})

    async def create(request: Request, caller: Caller = Depends(get_caller)) -> JSONResponse:
        admin(caller)
        given = await body(request)
        return JSONResponse({one: await call(request, "create", given)}, status_code=201)

    async def show(request: Request, oid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
        reader(caller)
        return JSONResponse({one: fields(request, await call(request, "show", oid))})

    async def update(request: Request, oid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
        admin(caller)
        given = await body(request)
        return JSONResponse({one: await call(request, "update", oid, given)})

    async def delete(request: Request, oid: str, caller: Caller = Depends(get_caller)) -> Response:
        admin(caller)
        await call(request, "delete", oid)
        return Response(status_code=204)

    router.add_api_route(path, list_, methods=["GET"])
    router.add_api_route(path, create, methods=["POST"])
    router.add_api_route(f"{path}/{{oid}}", show, methods=["GET"])
    router.add_api_route(f"{path}/{{oid}}", update, methods=["PUT"])
    router.add_api_route(f"{path}/{{oid}}", delete, methods=["DELETE"])


def amphora_routes(router: APIRouter, run: Run, shape_list: Any, admin: Any) -> None:
    """`/v2/octavia/amphorae`."""
    path = "/v2/octavia/amphorae"

    @router.get(path)
    async def list_amphorae(request: Request, caller: Caller = Depends(get_caller)) -> JSONResponse:
        admin(caller)
        shown, links = shape_list(request, await run(lambda: extras(request).list_amphorae()))
        return JSONResponse({"amphorae": shown, "amphorae_links": links})

    @router.get(f"{path}/{{oid}}")
    async def show_amphora(request: Request, oid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
        admin(caller)
        found = await run(lambda: extras(request).show_amphora(oid))
        return JSONResponse({"amphora": fields(request, found)})

    @router.get(f"{path}/{{oid}}/stats")
    async def amphora_stats(request: Request, oid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
        admin(caller)
        return JSONResponse({"amphora_stats": await run(lambda: extras(request).amphora_stats(oid))})

    @router.put(f"{path}/{{oid}}/failover")
    async def failover_amphora(request: Request, oid: str, caller: Caller = Depends(get_caller)) -> Response:
        admin(caller)
        mark = _mark_lb(request)
        await run(lambda: extras(request).failover_amphora(oid, mark))
        return Response(status_code=202)


def network_routes(router: APIRouter, run: Run, shape_list: Any) -> None:
    """`/v2.0/networks` and `/v2.0/subnets`."""

    def collection(kind: str, plural: str, many: Callable[[OctaviaExtras], list[dict[str, Any]]],
                   one: Callable[[OctaviaExtras, str], dict[str, Any]]) -> None:  # fmt: skip
        async def list_(request: Request, caller: Caller = Depends(get_caller)) -> JSONResponse:
            shown, links = shape_list(request, await run(lambda: many(extras(request))))
            answer: dict[str, Any] = {plural: shown}
            if links:
                answer[f"{plural}_links"] = links
            return JSONResponse(answer)

        async def show(request: Request, oid: str, caller: Caller = Depends(get_caller)) -> JSONResponse:
            found = await run(lambda: one(extras(request), oid))
            return JSONResponse({kind: fields(request, found)})

        # `/v2.0` is Neutron's path; `/v2` is where openstacksdk's version discovery lands when one
        # endpoint serves both APIs (the shared version document's CURRENT entry is Octavia's `/v2`).
        for base in ("/v2.0", "/v2"):
            router.add_api_route(f"{base}/{plural}", list_, methods=["GET"])
            router.add_api_route(f"{base}/{plural}/{{oid}}", show, methods=["GET"])

    collection("network", "networks", OctaviaExtras.networks, OctaviaExtras.network)
    collection("subnet", "subnets", OctaviaExtras.subnets, OctaviaExtras.subnet)
