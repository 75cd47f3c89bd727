"""The controller's ASGI application: services built at start-up, routers, error mapping."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from fulcrum import __version__
from fulcrum.controller.api import (
    alerts,
    analytics,
    errors,
    native,
    octavia,
    prometheus,
    runtime,
    se_protocol,
    system,
)
from fulcrum.controller.api.security import authenticate, needs_user
from fulcrum.controller.services.clock import Clock
from fulcrum.controller.services.container import build_services
from fulcrum.controller.services.errors import ServiceError
from fulcrum.controller.settings import ControllerSettings

log = logging.getLogger("fulcrum.controller")


def create_app(settings: ControllerSettings, clock: Clock | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await run_in_threadpool(build_services, settings, clock)
        app.state.services = services
        services.start()
        if services.started.generated_password:
            path = settings.data_dir / "admin-password"
            # Printed once, on the start that created the admin user; the file keeps it (mode 0600).
            print(f"Created user 'admin' with password: {services.started.generated_password}", flush=True)
            print(f"(also written to {path}, readable only by you)", flush=True)
        log.info(
            "controller ready on %s:%s, data in %s",
            settings.listen_host,
            settings.listen_port,
            settings.data_dir,
        )
        try:
            yield
        finally:
            services.close()

    app = FastAPI(
        title="Fulcrum Controller API",
        version=__version__,
        description="Native API of the Fulcrum application delivery controller.",
        lifespan=lifespan,
        openapi_url=None,  # served below, behind authentication
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)

    @app.middleware("http")
    async def require_authentication(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Authenticate before routing parses a body, so an anonymous caller learns nothing, not even 400.
        if needs_user(request.url.path):
            try:
                request.state.caller = await authenticate(request)
            except ServiceError as exc:
                return errors.service_error_response(exc, request.url.path)
        return await call_next(request)

    metrics_router = prometheus.install(app)
    app.include_router(system.build_router())
    app.include_router(runtime.build_router())
    app.include_router(analytics.build_router())
    app.include_router(alerts.build_router())
    app.include_router(metrics_router)
    app.include_router(se_protocol.build_router())
    app.include_router(native.build_router())
    app.include_router(octavia.build_router())
    app.include_router(system.openapi_router(app))
    return app
