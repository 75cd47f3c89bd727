"""One read of the native objects the Octavia API shows, and how they relate in Octavia's terms.

Octavia's tree (load balancer -> listeners -> pools -> members, health monitor) is derived from the
native references: a listener is a VS whose `vsvip_ref` is the load balancer, a pool belongs to the load
balancer recorded for it (pools made through Octavia) or to that of the first VS using it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from fulcrum.controller.services import refs
from fulcrum.controller.services.rbac import Caller
from fulcrum.controller.store import repo
from fulcrum.controller.store.repo import MetaRow, StoredObject
from fulcrum.model.registry import TYPES

SHOWN = (
    "vsvip", "virtualservice", "pool", "healthmonitor", "httppolicyset", "applicationprofile",
    "applicationpersistenceprofile", "cloud", "serviceenginegroup", "serviceengine",
)  # fmt: skip


@dataclass
class Snapshot:
    objects: dict[str, StoredObject]
    meta: dict[str, MetaRow]
    admin_tenant_uuid: str
    _listeners: dict[str, list[StoredObject]] = field(default_factory=dict)

    @classmethod
    def read(cls, conn: Connection, caller: Caller, admin_tenant_uuid: str) -> Snapshot:
        found: dict[str, StoredObject] = {}
        for type_name in SHOWN:
            if type_name not in TYPES:
                continue
            for obj in repo.all_of_type(conn, type_name):
                if caller.is_system_admin or obj.tenant_uuid in (caller.tenant_uuid, admin_tenant_uuid):
                    found[obj.uuid] = obj
        metas = repo.all_metas(conn)
        snap = cls(found, metas, admin_tenant_uuid)
        for vs in snap.of_type("virtualservice"):
            lb = refs.uuid_of(vs.data["vsvip_ref"]) if vs.data.get("vsvip_ref") else None
            if lb is not None:
                snap._listeners.setdefault(lb, []).append(vs)
        return snap

    def of_type(self, type_name: str) -> list[StoredObject]:
        return sorted(
            (o for o in self.objects.values() if o.type == type_name), key=lambda o: (o.created, o.uuid)
        )

    def user_objects(self, type_name: str) -> list[StoredObject]:
        """Objects of tenants (the admin tenant's built-in profiles and monitors are not Octavia's)."""
        return [o for o in self.of_type(type_name) if not o.builtin]

    def get(self, uuid: str | None, type_name: str) -> StoredObject | None:
        obj = self.objects.get(uuid) if uuid else None
        return obj if obj is not None and obj.type == type_name else None

    def ref(self, value: str | None) -> StoredObject | None:
        return self.objects.get(refs.uuid_of(value)) if value else None

    def data(self, key: str) -> dict[str, Any]:
        row = self.meta.get(key)
        return row.data if row else {}

    # --- relations --------------------------------------------------------------------------------

    def listeners_of(self, lb_uuid: str) -> list[StoredObject]:
        return self._listeners.get(lb_uuid, [])

    def policies_of(self, vs: StoredObject) -> list[StoredObject]:
        found = [self.ref(r) for r in vs.data.get("http_policies", [])]
        return [p for p in found if p is not None]

    def lb_of_listener(self, vs: StoredObject) -> str | None:
        return refs.uuid_of(vs.data["vsvip_ref"]) if vs.data.get("vsvip_ref") else None

    def pool_users(self, pool_uuid: str) -> list[StoredObject]:
        """Listeners using the pool as default pool or through one of their policies."""
        users = []
        for vs in self.of_type("virtualservice"):
            if (vs.data.get("pool_ref") and refs.uuid_of(vs.data["pool_ref"]) == pool_uuid) or any(
                p.data.get("redirect_pool_ref") and refs.uuid_of(p.data["redirect_pool_ref"]) == pool_uuid
                for p in self.policies_of(vs)
            ):
                users.append(vs)
        return users

    def lb_of_pool(self, pool: StoredObject) -> str | None:
        row = self.meta.get(pool.uuid)
        if row is not None and row.lb_uuid:
            return row.lb_uuid
        for vs in self.pool_users(pool.uuid):
            lb = self.lb_of_listener(vs)
            if lb:
                return lb
        return None

    def pools_of(self, lb_uuid: str) -> list[StoredObject]:
        return [p for p in self.user_objects("pool") if self.lb_of_pool(p) == lb_uuid]

    def hm_of_pool(self, pool: StoredObject) -> StoredObject | None:
        for value in pool.data.get("health_monitor_refs", []):
            hm = self.ref(value)
            if hm is not None:
                return hm
        disabled = self.data(pool.uuid).get("disabled_healthmonitor")
        return self.get(disabled, "healthmonitor")

    def pools_of_hm(self, hm_uuid: str) -> list[StoredObject]:
        return [
            p
            for p in self.user_objects("pool")
            if any(refs.uuid_of(r) == hm_uuid for r in p.data.get("health_monitor_refs", []))
            or self.data(p.uuid).get("disabled_healthmonitor") == hm_uuid
        ]

    def lb_of_hm(self, hm: StoredObject) -> str | None:
        for pool in self.pools_of_hm(hm.uuid):
            lb = self.lb_of_pool(pool)
            if lb:
                return lb
        return None

    def lb_of_policy(self, policy: StoredObject) -> tuple[str | None, StoredObject | None]:
        for vs in self.of_type("virtualservice"):
            if any(refs.uuid_of(r) == policy.uuid for r in vs.data.get("http_policies", [])):
                return self.lb_of_listener(vs), vs
        return None, None
