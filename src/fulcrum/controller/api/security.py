"""The authentication dependency: Basic or Bearer credentials, then the tenant from X-Fulcrum-Tenant."""

from __future__ import annotations

import base64
import binascii

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from fulcrum.controller.services.container import Services
from fulcrum.controller.services.errors import InvalidInput, Unauthenticated
from fulcrum.controller.services.rbac import Caller
from fulcrum.protocol import se as wire

TENANT_HEADER = "X-Fulcrum-Tenant"


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def source_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def bearer_token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("malformed Basic credentials") from None
    name, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthenticated("malformed Basic credentials")
    return name, password


PUBLIC_PATHS = frozenset({"/api/health", "/api/version", "/login"})


def needs_user(path: str) -> bool:
    """Every path needs a user except health, version, login, and the SE protocol (signed by SEs)."""
    return path not in PUBLIC_PATHS and not path.startswith(f"{wire.PREFIX}/")


async def get_caller(request: Request) -> Caller:
    """The caller the authentication middleware established (it runs before any body is parsed)."""
    caller = getattr(request.state, "caller", None)
    return caller if caller is not None else await authenticate(request)


async def authenticate(request: Request) -> Caller:
    svc = services(request)
    ip = source_ip(request)
    token = bearer_token(request)
    if token is not None:
        user_uuid = await run_in_threadpool(svc.auth.token_user, token)
    else:
        credentials = basic_credentials(request)
        if credentials is None:
            raise Unauthenticated("authentication required: HTTP Basic or a Bearer token from POST /login")
        user_uuid = await run_in_threadpool(
            svc.auth.check_password, credentials[0], credentials[1], ip, record_success=False
        )
    tenant = request.headers.get(TENANT_HEADER)
    if tenant is not None and (not tenant.strip() or len(tenant) > 255):
        raise InvalidInput(f"{TENANT_HEADER}: give a tenant name or uuid")
    caller = await run_in_threadpool(svc.auth.caller, user_uuid, tenant, ip)
    request.state.caller = caller
    return caller
