"""CRUD of every config object: validation, references, tenancy, RBAC, secrets and events in one place.

Every write runs in one transaction: the object, its reference edges, objects created on its behalf
(a VS's inline VIP) and the event describing the change commit together or not at all. A dry run
does the same work and rolls it back, which is how `fulcrum apply --dry-run` shows exact diffs.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from fulcrum.controller.services import refs
from fulcrum.controller.services.clock import Clock, usec
from fulcrum.controller.services.crypto import Passwords, SecretBox
from fulcrum.controller.services.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
)
from fulcrum.controller.services.events import (
    CONFIG_CREATE,
    CONFIG_DELETE,
    CONFIG_UPDATE,
    REDACTED,
    EventLog,
    diff_fields,
)
from fulcrum.controller.services.hooks import HOOKS
from fulcrum.controller.services.rbac import (
    Caller,
    can_see_tenant,
    can_see_user,
    role_allows_write,
    system_caller,
)
from fulcrum.controller.store import repo
from fulcrum.controller.store.db import Database
from fulcrum.controller.store.repo import ListQuery, StoredObject
from fulcrum.model.enums import Role
from fulcrum.model.registry import TYPES, ObjectType, Scope, get_path, map_path, pop_path

T = TypeVar("T")

log = logging.getLogger("fulcrum.objects")

META_FIELDS = ("uuid", "url", "tenant_ref", "_last_modified")


@dataclass(frozen=True)
class ServiceSettings:
    reserved_networks: tuple[str, ...] = ()
    max_page_size: int = 1000


@dataclass(frozen=True)
class Page:
    count: int
    results: list[dict[str, Any]]
    has_next: bool


@dataclass(frozen=True)
class Change:
    """Told to listeners after a commit, so reconcilers can react without polling the store."""

    action: str  # CREATE | UPDATE | DELETE
    type: str
    uuid: str
    tenant_uuid: str


@dataclass
class WriteContext:
    """What a type hook sees and may change while one object is written."""

    service: ObjectService
    conn: Connection
    caller: Caller
    otype: ObjectType
    uuid: str
    tenant_uuid: str
    data: dict[str, Any]
    secrets: dict[str, Any]
    existing: StoredObject | None
    existing_secrets: dict[str, Any] = field(default_factory=dict)

    def raw_secrets(self) -> dict[str, Any]:
        return {**self.existing_secrets, **self.secrets}


class _Rollback(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("dry run")
        self.result = result


def format_validation(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ""
        for part in error["loc"]:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


_format_validation = format_validation  # the name tests used first


class ObjectService:
    def __init__(
        self,
        db: Database,
        box: SecretBox,
        passwords: Passwords,
        events: EventLog,
        clock: Clock,
        settings: ServiceSettings | None = None,
    ) -> None:
        self.db = db
        self.box = box
        self.passwords = passwords
        self.events = events
        self.clock = clock
        self.settings = settings or ServiceSettings()
        self.admin_tenant_uuid = ""
        self.listeners: list[Callable[[Change], None]] = []
        self._hooks = HOOKS

    # --- reading ----------------------------------------------------------------------------------

    def otype(self, type_name: str) -> ObjectType:
        try:
            return TYPES[type_name]
        except KeyError:
            raise NotFound(f"no object type {type_name!r}") from None

    def render(self, obj: StoredObject) -> dict[str, Any]:
        """The API representation: config fields plus uuid, url, tenant_ref, _last_modified."""
        return {
            **obj.data,
            "uuid": obj.uuid,
            "url": refs.canonical(obj.type, obj.uuid),
            "tenant_ref": refs.canonical("tenant", obj.tenant_uuid),
            "_last_modified": str(obj.last_modified),
        }

    def box_secrets(self, obj: StoredObject) -> dict[str, Any]:
        """Decrypted write-only fields of an object, for the controller's own use (SE configs)."""
        return self.box.open(obj.secrets)

    def user_access(self, obj: StoredObject) -> dict[str, Role]:
        return {refs.uuid_of(a["tenant_ref"]): Role(a["role"]) for a in obj.data.get("access", [])}

    def visible(self, caller: Caller, obj: StoredObject) -> bool:
        scope = TYPES[obj.type].scope
        if obj.type == "tenant":
            return can_see_tenant(caller, obj.uuid)
        if obj.type == "user":
            return can_see_user(caller, obj.uuid, self.user_access(obj))
        if obj.tenant_uuid == caller.tenant_uuid:
            return True
        if obj.tenant_uuid == self.admin_tenant_uuid:
            return scope == Scope.SHARED or obj.builtin
        return False

    def load(self, conn: Connection, caller: Caller, type_name: str, uuid: str) -> StoredObject:
        obj = repo.get(conn, uuid)
        if obj is None or obj.type != type_name or not self.visible(caller, obj):
            raise NotFound(f"{type_name} {uuid} not found")
        return obj

    def get(self, caller: Caller, type_name: str, uuid: str) -> dict[str, Any]:
        self.otype(type_name)
        with self.db.read() as conn:
            return self.render(self.load(conn, caller, type_name, uuid))

    def list(
        self,
        caller: Caller,
        type_name: str,
        *,
        name: str | None = None,
        sort: str = "name",
        page: int = 1,
        page_size: int = 25,
    ) -> Page:
        otype = self.otype(type_name)
        descending = sort.startswith("-")
        sort_field = sort.removeprefix("-")
        if sort_field not in repo.SORT_FIELDS:
            raise InvalidInput(f"sort: must be one of {', '.join(repo.SORT_FIELDS)} (prefix - to reverse)")
        if not 1 <= page_size <= self.settings.max_page_size:
            raise InvalidInput(f"page_size: must be between 1 and {self.settings.max_page_size}")
        if page < 1:
            raise InvalidInput("page: must be 1 or more")
        offset = (page - 1) * page_size
        with self.db.read() as conn:
            if otype.scope == Scope.GLOBAL:
                # Tenants and users are few; their visibility depends on access lists, decided here.
                candidates = [o for o in repo.all_of_type(conn, type_name) if self.visible(caller, o)]
                if name is not None:
                    candidates = [o for o in candidates if o.name == name]
                key = {"name": lambda o: o.name, "uuid": lambda o: o.uuid}.get(
                    sort_field, lambda o: o.last_modified
                )
                candidates.sort(key=key, reverse=descending)
                total, rows = len(candidates), candidates[offset : offset + page_size]
            else:
                shared = [t.name for t in TYPES.values() if t.scope == Scope.SHARED]
                query = ListQuery(
                    type=type_name,
                    visible=repo.visible_in(caller.tenant_uuid, self.admin_tenant_uuid, shared),
                    name=name,
                    sort=sort_field,
                    descending=descending,
                    offset=offset,
                    limit=page_size,
                )
                total, rows = repo.list_objects(conn, query)
        return Page(total, [self.render(o) for o in rows], offset + len(rows) < total)

    def referrers(self, caller: Caller, type_name: str, uuid: str) -> list[dict[str, str]]:
        with self.db.read() as conn:
            self.load(conn, caller, type_name, uuid)
            return [
                {"type": r.type, "name": r.name, "field": r.field, "url": refs.canonical(r.type, r.uuid)}
                for r in repo.referrers(conn, uuid)
            ]

    # --- writing ----------------------------------------------------------------------------------

    def create(
        self,
        caller: Caller,
        type_name: str,
        body: Any,
        *,
        dry_run: bool = False,
        flags: str = "",
        uuid: str | None = None,
    ) -> dict[str, Any]:
        """Create an object in the caller's tenant. `flags` and `uuid` are for the controller itself."""
        otype = self.otype(type_name)
        self._authorize(caller, otype, None)
        body = self._plain_body(body, allow_meta=False)
        # Tenants, users, clouds and SE groups are system-wide and live in the admin tenant.
        tenant = caller.tenant_uuid if otype.scope == Scope.TENANT else self.admin_tenant_uuid
        new_uuid = uuid or f"{type_name}-{uuidlib.uuid4()}"
        return self._transact(
            dry_run, lambda conn: self._write(conn, caller, otype, new_uuid, tenant, body, None, flags)
        )

    def create_internal(
        self, type_name: str, body: dict[str, Any], *, uuid: str | None = None
    ) -> dict[str, Any]:
        """Create an object on the controller's own behalf (service engines): no role checks."""
        otype = self.otype(type_name)
        caller = system_caller(self.admin_tenant_uuid)
        new_uuid = uuid or f"{type_name}-{uuidlib.uuid4()}"
        return self._transact(
            False,
            lambda conn: self._write(conn, caller, otype, new_uuid, self.admin_tenant_uuid, body, None, ""),
        )

    def delete_internal(self, type_name: str, uuid: str) -> None:
        caller = system_caller(self.admin_tenant_uuid)

        def work(conn: Connection) -> dict[str, Any]:
            existing = repo.get(conn, uuid)
            if existing is not None and existing.type == type_name:
                self._delete(conn, caller, existing)
            return {}

        self._transact(False, work)

    def replace(
        self, caller: Caller, type_name: str, uuid: str, body: Any, *, dry_run: bool = False
    ) -> dict[str, Any]:
        otype = self.otype(type_name)
        body = self._plain_body(body, allow_meta=True)

        def work(conn: Connection) -> dict[str, Any]:
            existing = self.load(conn, caller, type_name, uuid)
            self._check_meta(body, existing)
            self._authorize(caller, otype, existing)
            return self._write(
                conn, caller, otype, uuid, existing.tenant_uuid, body, existing, existing.flags
            )

        return self._transact(dry_run, work)

    def patch(
        self, caller: Caller, type_name: str, uuid: str, patch: Any, *, dry_run: bool = False
    ) -> dict[str, Any]:
        """JSON merge patch (RFC 7386) on the stored object; the result is validated like a PUT."""
        otype = self.otype(type_name)
        patch = self._plain_body(patch, allow_meta=True)

        def work(conn: Connection) -> dict[str, Any]:
            existing = self.load(conn, caller, type_name, uuid)
            self._check_meta(patch, existing)
            self._authorize(caller, otype, existing)
            body = _merge_patch(dict(existing.data), {k: v for k, v in patch.items() if k not in META_FIELDS})
            return self._write(
                conn, caller, otype, uuid, existing.tenant_uuid, body, existing, existing.flags
            )

        return self._transact(dry_run, work)

    def delete(self, caller: Caller, type_name: str, uuid: str) -> None:
        otype = self.otype(type_name)

        def work(conn: Connection) -> dict[str, Any]:
            existing = self.load(conn, caller, type_name, uuid)
            self._authorize(caller, otype, existing)
            self._delete(conn, caller, existing)
            return {}

        self._transact(False, work)

    def batch(self, caller: Caller, work: Callable[[Batch], T]) -> T:
        """Run several writes in one transaction: all land, or none (Octavia's single-call creates)."""
        box: list[T] = []

        def run(conn: Connection) -> dict[str, Any]:
            box.append(work(Batch(self, conn, caller)))
            return {}

        self._transact(False, run)
        return box[0]

    # --- internals --------------------------------------------------------------------------------

    def _transact(self, dry_run: bool, work: Callable[[Connection], dict[str, Any]]) -> dict[str, Any]:
        changes: list[Change] = []
        try:
            with self.db.write() as conn:
                conn.info["changes"] = changes
                result = work(conn)
                if dry_run:
                    raise _Rollback(result)
        except _Rollback as rollback:
            return rollback.result
        except IntegrityError as exc:
            # Two writers raced past our checks and the database constraint held. Say what a caller
            # would have heard without the race; the raw database text stays in the log.
            log.info("integrity error on write: %s", exc.orig)
            writing = getattr(exc, "fulcrum_writing", None)
            text = str(exc.orig)
            name_clash = (
                "uq_objects_type_tenant_name" in text
                or "objects.type, objects.tenant_uuid, objects.name" in text
            )
            if writing is not None and name_clash:
                raise Conflict(f"a {writing[0]} named {writing[1]!r} already exists") from None
            raise Conflict(
                "the change conflicts with a concurrent change; read the object again and retry"
            ) from None
        for change in changes:
            for listener in self.listeners:
                listener(change)
        return result

    def _plain_body(self, body: Any, *, allow_meta: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidInput("the request body must be a JSON object")
        if not allow_meta:
            present = [k for k in META_FIELDS if k in body]
            if present:
                raise InvalidInput(f"{present[0]}: is set by the controller and cannot be given on create")
        return body

    def _check_meta(self, body: dict[str, Any], existing: StoredObject) -> None:
        if "uuid" in body and body["uuid"] != existing.uuid:
            raise InvalidInput("uuid: does not match the object in the URL")
        tenant_ref = body.get("tenant_ref")
        if tenant_ref is not None and refs.uuid_of(str(tenant_ref).split("#")[0]) != existing.tenant_uuid:
            raise InvalidInput("tenant_ref: an object cannot move to another tenant")
        if "_last_modified" in body and str(body["_last_modified"]) != str(existing.last_modified):
            raise PreconditionFailed(
                f"{existing.type} {existing.name!r} was changed since you read it (_last_modified differs)"
            )

    def _authorize(self, caller: Caller, otype: ObjectType, existing: StoredObject | None) -> None:
        if existing is not None and existing.builtin:
            raise Forbidden(f"{otype.name} {existing.name!r} is built in and read-only")
        hook = self._hooks.get(otype.name)
        if hook is not None and hook.authorize is not None:
            hook.authorize(self, caller, existing)
            return
        if not role_allows_write(caller, otype):
            raise Forbidden(f"role {caller.role.value} may not change {otype.name} objects")

    def _validate(self, otype: ObjectType, body: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in body.items() if k not in META_FIELDS}
        context = {"reserved_networks": self.settings.reserved_networks}
        try:
            model = otype.schema.model_validate(body, context=context)
        except ValidationError as exc:
            raise InvalidInput(format_validation(exc)) from None
        return model.model_dump(mode="json")

    def _write(
        self,
        conn: Connection,
        caller: Caller,
        otype: ObjectType,
        uuid: str,
        tenant_uuid: str,
        body: dict[str, Any],
        existing: StoredObject | None,
        flags: str,
    ) -> dict[str, Any]:
        data = self._validate(otype, body)
        secrets: dict[str, Any] = {}
        for path in otype.secret_paths:
            # Keyed by location (`trap_servers[1].community`): secrets inside list items stay apart.
            def take(value: Any, label: str) -> Any:
                secrets[label] = value
                return value

            map_path(data, path, take)
            pop_path(data, path)
        ctx = WriteContext(
            self, conn, caller, otype, uuid, tenant_uuid, data, secrets, existing,
            self.box.open(existing.secrets) if existing else {},
        )  # fmt: skip
        hook = self._hooks.get(otype.name)
        if hook is not None and hook.before_refs is not None:
            hook.before_refs(ctx)
        for ref_path in otype.ref_paths:
            ctx.data = map_path(
                ctx.data,
                ref_path.path,
                lambda value, where, target=ref_path.target: self.resolve(
                    conn, caller, tenant_uuid, value, target, where
                ),
            )
        if hook is not None and hook.after_refs is not None:
            hook.after_refs(ctx)

        name = ctx.data["name"]
        if repo.name_taken(conn, otype.name, tenant_uuid, name, uuid):
            raise Conflict(f"a {otype.name} named {name!r} already exists")
        stored_secrets = ctx.raw_secrets() if existing else ctx.secrets
        now = max(usec(self.clock), existing.last_modified + 1 if existing else 0)
        obj = StoredObject(
            uuid=uuid,
            type=otype.name,
            tenant_uuid=tenant_uuid,
            name=name,
            data=ctx.data,
            secrets=self.box.seal({k: v for k, v in stored_secrets.items() if v is not None}),
            flags=flags,
            owner_uuid=existing.owner_uuid if existing else conn.info.get("owner"),
            created=existing.created if existing else now,
            last_modified=now,
        )
        changed_secrets = sorted(k for k, v in ctx.secrets.items() if v is not None)
        try:
            self._store(conn, obj, existing)
        except IntegrityError as exc:
            exc.fulcrum_writing = (otype.name, name)  # type: ignore[attr-defined]
            raise
        if existing is None:
            details: dict[str, Any] = {"fields": {**ctx.data, **dict.fromkeys(changed_secrets, REDACTED)}}
            event, action = CONFIG_CREATE, "CREATE"
        else:
            diff = diff_fields(existing.data, ctx.data)
            diff.update({k: {"old": REDACTED, "new": REDACTED} for k in changed_secrets})
            details = {"diff": diff}
            event, action = CONFIG_UPDATE, "UPDATE"
        repo.set_refs(conn, uuid, self._edges(otype, ctx.data))
        self.events.record(
            conn, event, tenant_uuid=tenant_uuid, caller=caller, obj_type=otype.name, obj_uuid=uuid,
            obj_name=name, details=details,
        )  # fmt: skip
        conn.info["changes"].append(Change(action, otype.name, uuid, tenant_uuid))
        if existing is not None:
            self._collect_orphans(conn, caller, uuid)
        if hook is not None and hook.after_write is not None:
            hook.after_write(ctx)
        return self.render(obj)

    @staticmethod
    def _store(conn: Connection, obj: StoredObject, existing: StoredObject | None) -> None:
        if existing is None:
            repo.insert_object(conn, obj)
        else:
            repo.update_object(conn, obj)

    def write_owned(
        self, ctx: WriteContext, type_name: str, body: dict[str, Any], existing: StoredObject | None
    ) -> dict[str, Any]:
        """Create or update an object that `ctx`'s object owns (e.g. the vsvip of an inline VIP)."""
        conn = ctx.conn
        previous_owner = conn.info.get("owner")
        conn.info["owner"] = ctx.uuid
        try:
            uuid = existing.uuid if existing else f"{type_name}-{uuidlib.uuid4()}"
            return self._write(conn, ctx.caller, TYPES[type_name], uuid, ctx.tenant_uuid, body, existing, "")
        finally:
            conn.info["owner"] = previous_owner

    def _edges(self, otype: ObjectType, data: dict[str, Any]) -> list[tuple[str, str]]:
        edges = []
        for ref_path in otype.ref_paths:
            for value in get_path(data, ref_path.path):
                edges.append((ref_path.label, refs.uuid_of(value)))
        return edges

    def resolve(
        self, conn: Connection, caller: Caller, tenant_uuid: str, value: Any, target: str, where: str
    ) -> str:
        """Turn any accepted spelling of a reference into `/api/<type>/<uuid>`, checking visibility."""
        parsed = refs.parse(value, target, where)
        if parsed.uuid is not None:
            obj = repo.get(conn, parsed.uuid)
            missing = f"{where}: no {target} with uuid {parsed.uuid}"
        else:
            obj = repo.find_by_name(conn, target, parsed.name or "", [tenant_uuid, self.admin_tenant_uuid])
            missing = f"{where}: no {target} named {parsed.name!r}"
        if obj is None or obj.type != target or not self._reachable(caller, tenant_uuid, obj):
            raise InvalidInput(missing)
        return refs.canonical(target, obj.uuid)

    def _reachable(self, caller: Caller, tenant_uuid: str, obj: StoredObject) -> bool:
        """May an object in `tenant_uuid`, written by `caller`, point at `obj`?"""
        if obj.type in ("tenant", "user"):
            return self.visible(caller, obj)
        if obj.tenant_uuid == tenant_uuid:
            return True
        return obj.tenant_uuid == self.admin_tenant_uuid and (
            TYPES[obj.type].scope == Scope.SHARED or obj.builtin
        )

    def _delete(self, conn: Connection, caller: Caller, existing: StoredObject) -> None:
        hook = self._hooks.get(existing.type)
        if existing.protected:
            raise Conflict(f"{existing.type} {existing.name!r} is a system default and cannot be deleted")
        if hook is not None and hook.before_delete is not None:
            hook.before_delete(self, conn, caller, existing)
        users = [r for r in repo.referrers(conn, existing.uuid) if r.uuid != existing.uuid]
        if users:
            named = ", ".join(
                f"{r.type} {r.name!r} ({r.field})"
                if self._may_name(conn, caller, r)
                else "an object of another tenant"
                for r in users[:10]
            )
            more = f" and {len(users) - 10} more" if len(users) > 10 else ""
            raise Conflict(f"{existing.type} {existing.name!r} is still referred to by {named}{more}")
        repo.delete_object(conn, existing.uuid)
        self.events.record(
            conn, CONFIG_DELETE, tenant_uuid=existing.tenant_uuid, caller=caller, obj_type=existing.type,
            obj_uuid=existing.uuid, obj_name=existing.name, details={"fields": existing.data},
        )  # fmt: skip
        conn.info["changes"].append(Change("DELETE", existing.type, existing.uuid, existing.tenant_uuid))
        self._collect_orphans(conn, caller, existing.uuid)

    def _may_name(self, conn: Connection, caller: Caller, referrer: repo.Referrer) -> bool:
        obj = repo.get(conn, referrer.uuid)
        return obj is not None and self.visible(caller, obj)

    def _collect_orphans(self, conn: Connection, caller: Caller, owner_uuid: str) -> None:
        """Objects created on an owner's behalf go away once nothing refers to them any more."""
        for owned in repo.owned_by(conn, owner_uuid):
            if not repo.referrers(conn, owned.uuid):
                self._delete(conn, caller, owned)


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


class Batch:
    """Writes inside one `ObjectService.batch` transaction, with the same checks as the API's."""

    def __init__(self, service: ObjectService, conn: Connection, caller: Caller) -> None:
        self.service = service
        self.conn = conn
        self.caller = caller

    def load(self, type_name: str, uuid: str) -> StoredObject:
        return self.service.load(self.conn, self.caller, type_name, uuid)

    def create(
        self, type_name: str, body: dict[str, Any], *, uuid: str, owner: str | None = None
    ) -> dict[str, Any]:
        """Create in the caller's tenant; an `owner` makes the object go away with its last referrer."""
        svc = self.service
        otype = svc.otype(type_name)
        svc._authorize(self.caller, otype, None)
        tenant = self.caller.tenant_uuid if otype.scope == Scope.TENANT else svc.admin_tenant_uuid
        previous = self.conn.info.get("owner")
        self.conn.info["owner"] = owner
        try:
            return svc._write(self.conn, self.caller, otype, uuid, tenant, body, None, "")
        finally:
            self.conn.info["owner"] = previous

    def replace(self, type_name: str, uuid: str, body: dict[str, Any]) -> dict[str, Any]:
        svc = self.service
        otype = svc.otype(type_name)
        existing = self.load(type_name, uuid)
        svc._authorize(self.caller, otype, existing)
        return svc._write(
            self.conn, self.caller, otype, uuid, existing.tenant_uuid, body, existing, existing.flags
        )

    def delete(self, type_name: str, uuid: str) -> None:
        existing = self.load(type_name, uuid)
        self.service._authorize(self.caller, self.service.otype(type_name), existing)
        self.service._delete(self.conn, self.caller, existing)
