"""Authentication: passwords (HTTP Basic or login), session tokens, tenant selection, login events."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

from sqlalchemy import Connection

from fulcrum.controller.services import refs
from fulcrum.controller.services.clock import Clock, usec
from fulcrum.controller.services.errors import Forbidden, Unauthenticated
from fulcrum.controller.services.events import USER_LOGIN, USER_LOGIN_FAILED, USER_LOGOUT, EventLog
from fulcrum.controller.services.objects import Change, ObjectService
from fulcrum.controller.services.rbac import Caller, effective_role
from fulcrum.controller.services.throttle import LoginThrottle
from fulcrum.controller.store import repo
from fulcrum.controller.store.repo import StoredObject
from fulcrum.model.enums import Role


@dataclass(frozen=True)
class AuthSettings:
    token_ttl_s: int = 8 * 3600
    basic_cache_s: float = 60.0


class AuthService:
    def __init__(
        self,
        objects: ObjectService,
        events: EventLog,
        throttle: LoginThrottle,
        clock: Clock,
        settings: AuthSettings | None = None,
    ) -> None:
        self._objects = objects
        self._events = events
        self._throttle = throttle
        self._clock = clock
        self._settings = settings or AuthSettings()
        # Basic auth re-sends the password on every request; an Argon2 check each time would cap the API
        # at a few requests per second. Remember successful checks briefly, keyed by a keyed hash.
        self._cache_key = secrets.token_bytes(32)
        self._basic_cache: dict[bytes, tuple[str, float]] = {}
        self._lock = threading.Lock()
        objects.listeners.append(self._on_change)

    def _on_change(self, change: Change) -> None:
        if change.type == "user":
            with self._lock:
                self._basic_cache.clear()

    # --- credentials ------------------------------------------------------------------------------

    def _user_by_name(self, conn: Connection, name: str) -> StoredObject | None:
        return repo.find_by_name(conn, "user", name, [self._objects.admin_tenant_uuid])

    def check_password(self, name: str, password: str, source_ip: str, *, record_success: bool) -> str:
        """Return the user uuid for valid credentials; count and record failures."""
        self._throttle.check(name, source_ip)
        cache_key = hmac.new(self._cache_key, f"{name}\0{password}".encode(), hashlib.sha256).digest()
        with self._lock:
            cached = self._basic_cache.get(cache_key)
        if cached and cached[1] > self._clock.now() and not record_success:
            return cached[0]
        with self._objects.db.read() as conn:
            user = self._user_by_name(conn, name)
        stored_hash = self._objects.box.open(user.secrets).get("password_hash") if user else None
        ok = self._objects.passwords.verify(stored_hash, password)
        if not ok or user is None or not user.data.get("is_active", True):
            self._throttle.failure(name, source_ip)
            with self._objects.db.write() as conn:
                self._events.record(
                    conn, USER_LOGIN_FAILED, tenant_uuid=self._objects.admin_tenant_uuid, user_name=name,
                    source_ip=source_ip, obj_type="user", obj_uuid=user.uuid if user else None,
                    obj_name=name, details={"reason": "bad credentials or inactive user"},
                )  # fmt: skip
            raise Unauthenticated("invalid username or password")
        self._throttle.success(name)
        with self._lock:
            if len(self._basic_cache) > 10000:
                self._basic_cache.clear()
            self._basic_cache[cache_key] = (user.uuid, self._clock.now() + self._settings.basic_cache_s)
        if record_success:
            with self._objects.db.write() as conn:
                self._events.record(
                    conn, USER_LOGIN, tenant_uuid=self._default_tenant(user), user_name=name,
                    source_ip=source_ip, obj_type="user", obj_uuid=user.uuid, obj_name=name, details={},
                )  # fmt: skip
        return user.uuid

    def login(self, name: str, password: str, source_ip: str) -> tuple[str, int]:
        """Exchange credentials for a bearer token; returns (token, expiry in seconds since epoch)."""
        user_uuid = self.check_password(name, password, source_ip, record_success=True)
        token = secrets.token_urlsafe(32)
        now = usec(self._clock)
        expires = now + self._settings.token_ttl_s * 1_000_000
        with self._objects.db.write() as conn:
            repo.purge_expired_tokens(conn, now)
            repo.insert_token(conn, _digest(token), user_uuid, now, expires)
        return token, expires // 1_000_000

    def logout(self, caller: Caller, token: str | None) -> None:
        with self._objects.db.write() as conn:
            if token:
                repo.delete_token(conn, _digest(token))
            self._events.record(
                conn, USER_LOGOUT, tenant_uuid=caller.tenant_uuid, caller=caller, obj_type="user",
                obj_uuid=caller.user_uuid, obj_name=caller.user_name, details={},
            )  # fmt: skip

    def token_user(self, token: str) -> str:
        with self._objects.db.read() as conn:
            user_uuid = repo.token_user(conn, _digest(token), usec(self._clock))
        if user_uuid is None:
            raise Unauthenticated("the token is unknown or expired; log in again")
        return user_uuid

    # --- caller -----------------------------------------------------------------------------------

    def _default_tenant(self, user: StoredObject) -> str:
        ref = user.data.get("default_tenant_ref")
        return refs.uuid_of(ref) if ref else self._objects.admin_tenant_uuid

    def caller(self, user_uuid: str, tenant: str | None, source_ip: str) -> Caller:
        """Build the caller for a user acting in `tenant` (name or uuid; default: the user's default)."""
        with self._objects.db.read() as conn:
            user = repo.get(conn, user_uuid)
            if user is None or not user.data.get("is_active", True):
                raise Unauthenticated("the user no longer exists or is inactive")
            access = self._objects.user_access(user)
            if tenant:
                target = repo.get(conn, tenant) if tenant.startswith("tenant-") else None
                if target is None or target.type != "tenant":
                    target = repo.find_by_name(conn, "tenant", tenant, [self._objects.admin_tenant_uuid])
            else:
                target = repo.get(conn, self._default_tenant(user))
        role = effective_role(access, target.uuid) if target else None
        if target is None or role is None:
            # Same answer whether the tenant exists or not: no probing for tenant names.
            raise Forbidden(f"no access to tenant {tenant!r}")
        return Caller(
            user_uuid=user.uuid,
            user_name=user.name,
            tenant_uuid=target.uuid,
            tenant_name=target.name,
            role=Role(role),
            access=access,
            source_ip=source_ip,
        )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
