"""OpenStack Keystone tokens as credentials: validation, role mapping, and project tenants.

OpenStack clients (openstack CLI, openstacksdk, Heat, Terraform) send a Keystone token in
`X-Auth-Token`. keystonemiddleware validates it against Keystone (results cached briefly); the
project becomes a Fulcrum tenant on first use and the Keystone roles map to a Fulcrum role. Keystone
users are not stored as Fulcrum users: the caller is built from the token alone.
"""

from __future__ import annotations

import io
import logging
import threading
import uuid as uuidlib
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from time import monotonic
from typing import Any, Protocol

from fulcrum.controller.services.errors import Conflict, Forbidden, InvalidInput, Unauthenticated, Unavailable
from fulcrum.controller.services.objects import ObjectService
from fulcrum.controller.services.rbac import RANK, Caller, system_caller
from fulcrum.controller.store import repo
from fulcrum.model.enums import Role

log = logging.getLogger("fulcrum.keystone")

# Keystone role -> Fulcrum role, after Octavia's default policy: the load-balancer_* roles are
# Octavia's own, admin/member/reader are Keystone's defaults. Keystone role names compare
# case-insensitively (oslo.policy lower-cases them), so the keys are lower case.
ROLE_MAP: dict[str, Role] = {
    "admin": Role.SYSTEM_ADMIN,
    "load-balancer_admin": Role.SYSTEM_ADMIN,
    "member": Role.APPLICATION_ADMIN,
    "load-balancer_member": Role.APPLICATION_ADMIN,
    "reader": Role.APPLICATION_OPERATOR,
    "load-balancer_observer": Role.APPLICATION_OPERATOR,
    "load-balancer_global_observer": Role.APPLICATION_OPERATOR,
}

# Project ids that are not uuids (never from Keystone's SQL backend, possible from others) still get a
# stable tenant uuid. The Octavia API derives tenants from project ids the same way (octavia/ids.py).
PROJECT_NAMESPACE = uuidlib.UUID("4f0d7c55-2b8e-4f5e-9a57-0f6a1c2d9e31")


@dataclass(frozen=True)
class KeystoneSettings:
    auth_url: str
    username: str
    password: str = field(repr=False)
    project_name: str = "service"
    domain_name: str = "Default"
    # How long a validated token is trusted without asking Keystone again (keystonemiddleware cache).
    token_cache_s: int = 300
    timeout_s: float = 10.0


@dataclass(frozen=True)
class KeystoneIdentity:
    """Who a valid, project-scoped Keystone token belongs to."""

    user_id: str
    user_name: str
    project_id: str
    project_name: str
    roles: tuple[str, ...]


class TokenValidator(Protocol):
    def validate(self, token: str) -> KeystoneIdentity:
        """The identity of a valid token; raises Unauthenticated or Forbidden otherwise."""
        ...


# --- pure rules -----------------------------------------------------------------------------------


def fulcrum_role(keystone_roles: Iterable[str]) -> Role:
    """The highest Fulcrum role any of the Keystone roles maps to."""
    mapped = [ROLE_MAP[r.lower()] for r in keystone_roles if r.lower() in ROLE_MAP]
    if not mapped:
        raise Forbidden(
            "the Keystone token carries no load-balancer role: one of "
            + ", ".join(sorted(ROLE_MAP))
            + " is needed in the project"
        )
    return max(mapped, key=lambda role: RANK[role])


def tenant_uuid_for_project(project_id: str) -> str:
    """The uuid of the tenant that stands for a Keystone project: the project id itself when it is one."""
    try:
        return f"tenant-{uuidlib.UUID(hex=project_id)}"
    except ValueError:
        return f"tenant-{uuidlib.uuid5(PROJECT_NAMESPACE, project_id)}"


def identity_from_environ(environ: dict[str, Any]) -> KeystoneIdentity:
    """Read the headers keystonemiddleware sets on the request it let through."""
    if environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
        raise Unauthenticated("the Keystone token is invalid or expired")
    project_id = environ.get("HTTP_X_PROJECT_ID", "")
    if not project_id:
        raise Forbidden("the Keystone token must be scoped to a project")
    roles = tuple(r.strip() for r in environ.get("HTTP_X_ROLES", "").split(",") if r.strip())
    return KeystoneIdentity(
        user_id=environ.get("HTTP_X_USER_ID", ""),
        user_name=environ.get("HTTP_X_USER_NAME", ""),
        project_id=project_id,
        project_name=environ.get("HTTP_X_PROJECT_NAME", "") or project_id,
        roles=roles,
    )


# --- keystonemiddleware adapter -------------------------------------------------------------------


class TokenCache:
    """Validated tokens, in the memcache-like shape keystonemiddleware expects from a cache it is given.

    Its own in-process cache is deprecated and unbounded; this one is bounded and thread-safe. Keys are
    hashes of the tokens (keystonemiddleware hashes them), never the tokens themselves.
    """

    def __init__(self, ttl_s: float, max_entries: int = 10_000, clock: Callable[[], float] = monotonic):
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[key]
                return None
            return entry[1]

    def set(self, key: str, value: Any, time: float = 0, min_compress_len: int = 0) -> bool:
        with self._lock:
            self._entries[key] = (self._clock() + (time or self._ttl_s), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return True


class KeystoneValidator:
    """Validates tokens by running keystonemiddleware's auth_token over a minimal WSGI request."""

    def __init__(self, settings: KeystoneSettings) -> None:
        self._middleware = _build_middleware(settings)
        self._cache = TokenCache(settings.token_cache_s)

    def validate(self, token: str) -> KeystoneIdentity:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": io.StringIO(),
            "HTTP_X_AUTH_TOKEN": token,
            _CACHE: self._cache,
        }
        statuses: list[str] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            statuses.append(status)

        for _ in self._middleware(environ, start_response):
            pass
        # A valid token reaches the capture app; otherwise the middleware answered itself: 401 for a
        # bad or expired token, 503 when Keystone could not be asked.
        if not environ.get(_SEEN):
            if statuses and statuses[0].startswith("503"):
                raise Unavailable(
                    "Keystone cannot validate tokens now (unreachable, or it refuses the controller's "
                    "service credentials; the controller log says which): retry later"
                )
            if not statuses or not statuses[0].startswith("401"):
                log.warning("keystonemiddleware answered %s instead of passing the request on", statuses)
            raise Unauthenticated("the Keystone token is invalid or expired")
        return identity_from_environ(environ)


_SEEN = "fulcrum.keystone.seen"
_CACHE = "fulcrum.keystone.cache"


def _capture(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    environ[_SEEN] = True
    start_response("204 No Content", [])
    return iter(())


def _build_middleware(settings: KeystoneSettings) -> Callable[..., Iterable[bytes]]:
    # Imported here, so a controller without Keystone never loads the OpenStack libraries. WebOb, which
    # keystonemiddleware uses, still imports the deprecated `cgi` module.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from keystoneauth1 import loading  # noqa: PLC0415
        from keystonemiddleware import auth_token  # noqa: PLC0415
        from oslo_config import cfg  # noqa: PLC0415

    # A private oslo.config object: no global CONF, no config files, no command line. The values are
    # set as overrides on registered options, so the password never passes through a paste-style dict
    # (whose unknown keys keystonemiddleware logs).
    group = "keystone_authtoken"
    conf = cfg.ConfigOpts()
    conf([], project="fulcrum", default_config_files=[], default_config_dirs=[])
    for opts_group, opts in auth_token.list_opts():
        conf.register_opts(opts, group=opts_group)
    conf.register_opts(loading.get_auth_plugin_conf_options("password"), group=group)
    values: dict[str, Any] = {
        "auth_type": "password",
        "auth_url": settings.auth_url,
        "username": settings.username,
        "password": settings.password,
        "project_name": settings.project_name,
        "user_domain_name": settings.domain_name,
        "project_domain_name": settings.domain_name,
        "www_authenticate_uri": settings.auth_url,
        # Decide here: a bad token is answered 401 and an unreachable Keystone 503, not both "invalid".
        "delay_auth_decision": False,
        "service_token_roles_required": True,
        "token_cache_time": settings.token_cache_s,
        "cache": _CACHE,
        "http_connect_timeout": int(settings.timeout_s),
        "include_service_catalog": False,
    }
    for name, value in values.items():
        conf.set_override(name, value, group=group)
    return auth_token.AuthProtocol(_capture, {"oslo_config_config": conf})  # type: ignore[no-any-return]


# --- callers --------------------------------------------------------------------------------------


class KeystoneAuth:
    """Turns a Keystone token into a Caller, creating the project's tenant on first use."""

    def __init__(self, objects: ObjectService, validator: TokenValidator) -> None:
        self._objects = objects
        self._validator = validator
        self._create_lock = threading.Lock()

    def caller(self, token: str, tenant: str | None, source_ip: str) -> Caller:
        identity = self._validator.validate(token)
        role = fulcrum_role(identity.roles)
        home = self.ensure_tenant(identity.project_id, identity.project_name, source_ip)
        target_uuid, target_name = home
        if tenant and tenant not in (target_uuid, target_name):
            target = self._find_tenant(tenant) if role == Role.SYSTEM_ADMIN else None
            if target is None:
                # Same answer whether the tenant exists or not: no probing for tenant names.
                raise Forbidden(f"no access to tenant {tenant!r}")
            target_uuid, target_name = target
        return Caller(
            user_uuid=f"keystone-{identity.user_id}",
            user_name=f"{identity.user_name or identity.user_id}@keystone",
            tenant_uuid=target_uuid,
            tenant_name=target_name,
            role=role,
            access={home[0]: role},
            source_ip=source_ip,
        )

    def ensure_tenant(self, project_id: str, project_name: str, source_ip: str = "") -> tuple[str, str]:
        """(uuid, name) of the project's tenant, created through the object service when missing."""
        tenant_uuid = tenant_uuid_for_project(project_id)
        existing = self._tenant(tenant_uuid)
        if existing is not None:
            return existing
        with self._create_lock:
            existing = self._tenant(tenant_uuid)
            if existing is not None:
                return existing
            return self._create_tenant(tenant_uuid, project_id, project_name, source_ip)

    def _create_tenant(
        self, tenant_uuid: str, project_id: str, project_name: str, source_ip: str
    ) -> tuple[str, str]:
        caller = replace(system_caller(self._objects.admin_tenant_uuid), source_ip=source_ip)
        body = {"description": f"Keystone project {project_name} ({project_id})"}
        names = [project_name, f"{project_name}-{project_id[:8]}", f"keystone-{project_id}"]
        for name in dict.fromkeys(names):
            with self._objects.db.read() as conn:
                if repo.find_by_name(conn, "tenant", name, [self._objects.admin_tenant_uuid]) is not None:
                    continue
            try:
                created = self._objects.create(caller, "tenant", {**body, "name": name}, uuid=tenant_uuid)
            except InvalidInput:
                continue  # a project name Fulcrum does not accept as a tenant name: try the next
            except Conflict:
                # Another controller created it (or took the name) between our read and write.
                existing = self._tenant(tenant_uuid)
                if existing is not None:
                    return existing
                continue
            log.info("created tenant %s for Keystone project %s", created["name"], project_id)
            return tenant_uuid, str(created["name"])
        raise Conflict(f"no free tenant name for Keystone project {project_name!r} ({project_id})")

    def _tenant(self, tenant_uuid: str) -> tuple[str, str] | None:
        with self._objects.db.read() as conn:
            obj = repo.get(conn, tenant_uuid)
        return (obj.uuid, obj.name) if obj is not None and obj.type == "tenant" else None

    def _find_tenant(self, tenant: str) -> tuple[str, str] | None:
        with self._objects.db.read() as conn:
            obj = repo.get(conn, tenant) if tenant.startswith("tenant-") else None
            if obj is None or obj.type != "tenant":
                obj = repo.find_by_name(conn, "tenant", tenant, [self._objects.admin_tenant_uuid])
        return (obj.uuid, obj.name) if obj is not None else None
