"""The authentication dependency: Basic, Bearer or X-Auth-Token credentials, then the tenant.

The tenant comes from X-Fulcrum-Tenant. X-Auth-Token is how OpenStack clients send a token: with
Keystone enabled it is a Keystone token; without, it is a session token from POST /login (so a client
configured with `auth_type=admin_token` works against a Fulcrum-only controller).
"""

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
AUTH_TOKEN_HEADER = "X-Auth-Token"  # noqa: S105 - a header name, not a secret


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def source_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def auth_token(request: Request) -> str | None:
    value = request.headers.get(AUTH_TOKEN_HEADER, "").strip()
    return value or None


def bearer_token(request: Request) -> str | None:
    """The session token: `Authorization: Bearer`, else X-Auth-Token (when it is not a Keystone token)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    keystone = services(request).keystone
    return auth_token(request) if keystone is None else None


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


# "/", "/v2" and "/v2.0" are the Octavia API's version documents, which OpenStack clients read before
# they authenticate.
PUBLIC_PATHS = frozenset({"/api/health", "/api/version", "/login", "/", "/v2", "/v2.0"})


def needs_user(path: str) -> bool:
    """Every path needs a user except health, version, login, and the SE protocol (signed by SEs)."""
    return path not in PUBLIC_PATHS and not path.startswith(f"{wire.PREFIX}/")


async def get_caller(request: Request) -> Caller:
    """The caller the authentication middleware established (it runs before any body is parsed)."""
    caller = getattr(request.state, "caller", None)
    return caller if caller is not None else await authenticate(request)


def _tenant_header(request: Request) -> str | None:
    tenant = request.headers.get(TENANT_HEADER)
    if tenant is not None and (not tenant.strip() or len(tenant) > 255):
        raise InvalidInput(f"{TENANT_HEADER}: give a tenant name or uuid")
    return tenant


async def authenticate(request: Request) -> Caller:
    svc = services(request)
    ip = source_ip(request)
    keystone_token = auth_token(request) if svc.keystone is not None else None
    if svc.keystone is not None and keystone_token is not None:
        # A Keystone token is validated by Keystone only: it never falls back to other credentials.
        caller = await run_in_threadpool(svc.keystone.caller, keystone_token, _tenant_header(request), ip)
        request.state.caller = caller
        return caller
    token = bearer_token(request)
    if token is not None:
        user_uuid = await run_in_threadpool(svc.auth.token_user, token)
    else:
        credentials = basic_credentials(request)
        if credentials is None:
            token_kinds = (
                f"or a Keystone token in {AUTH_TOKEN_HEADER}"
                if svc.keystone is not None
                else f"or {AUTH_TOKEN_HEADER}"
            )
            raise Unauthenticated(
                "authentication required: HTTP Basic, a token from POST /login as a Bearer token, "
                + token_kinds
            )
        user_uuid = await run_in_threadpool(
            svc.auth.check_password, credentials[0], credentials[1], ip, record_success=False
        )
    caller = await run_in_threadpool(svc.auth.caller, user_uuid, _tenant_header(request), ip)
    request.state.caller = caller
    return caller
