"""The Octavia v2 API over the native object model.

Every Octavia write becomes native writes in one transaction (a single-call create lands whole or not
at all), so objects made through either API are the same objects. What the native model has no field
for (display names that need not be unique, descriptions, tags, the load balancer a pool was created
under, listener protocols) is kept in the `octavia_meta` table next to them.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from fulcrum.controller.services import refs
from fulcrum.controller.services.errors import Conflict, Forbidden, InvalidInput, NotFound, Unsupported
from fulcrum.controller.services.objects import Batch, ObjectService, format_validation
from fulcrum.controller.services.octavia import ids, render, schemas
from fulcrum.controller.services.octavia.status import StatusBook, server_key
from fulcrum.controller.services.octavia.view import Snapshot
from fulcrum.controller.services.rbac import Caller
from fulcrum.controller.store import repo
from fulcrum.controller.store.repo import MetaRow, StoredObject
from fulcrum.model.enums import Role

M = TypeVar("M", bound=BaseModel)
Items = list[dict[str, Any]]
Change = Callable[[Batch, StoredObject, Items], Items]
Act = Callable[[Batch, Snapshot, StoredObject, "str | None"], "str | None"]

ALGORITHM_IN = {
    "ROUND_ROBIN": ("LB_ALGORITHM_ROUND_ROBIN", None),
    "LEAST_CONNECTIONS": ("LB_ALGORITHM_LEAST_CONNECTIONS", None),
    "SOURCE_IP": ("LB_ALGORITHM_CONSISTENT_HASH", "LB_ALGORITHM_CONSISTENT_HASH_SOURCE_IP_ADDRESS"),
}
HM_TYPE_IN = {
    "HTTP": "HEALTH_MONITOR_HTTP",
    "HTTPS": "HEALTH_MONITOR_HTTPS",
    "TCP": "HEALTH_MONITOR_TCP",
    "PING": "HEALTH_MONITOR_PING",
    "TLS-HELLO": "HEALTH_MONITOR_TLS_HELLO",
}
# Octavia listeners add only the headers `insert_headers` asks for: the profile without X-Forwarded-For.
HTTP_PROFILE = "/api/applicationprofile?name=System-HTTP-Plain"
L4_PROFILE = "/api/applicationprofile?name=System-L4-Application"
# Pool protocols each listener protocol can use (Octavia's compatibility table, minus UDP/SCTP).
POOL_PROTOCOLS = {
    "HTTP": {"HTTP"},
    "TERMINATED_HTTPS": {"HTTP"},
    "HTTPS": {"HTTPS", "TCP"},
    "TCP": {"TCP", "HTTP", "HTTPS"},
}
INSERT_HEADERS = ("X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto")
QUOTA_KINDS = ("loadbalancer", "listener", "pool", "member", "healthmonitor", "l7policy", "l7rule")


def parse(model: type[M], body: Any, root: str) -> M:
    """The body's `root` object, validated; errors name the attribute as Octavia clients expect."""
    if not isinstance(body, dict) or not isinstance(body.get(root), dict):
        raise InvalidInput(f"Invalid input: the request body must be an object with a '{root}' attribute")
    try:
        return model.model_validate(body[root])
    except ValidationError as exc:
        raise InvalidInput(f"Invalid input for {root}: {format_validation(exc)}") from None


def unsupported(option: str) -> Unsupported:
    return Unsupported(f"Provider '{render.PROVIDER}' does not support a requested option: {option}")


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


class OctaviaService:
    def __init__(self, objects: ObjectService, status: StatusBook) -> None:
        self.objects = objects
        self.status = status

    # --- reading ----------------------------------------------------------------------------------

    def snapshot(self, caller: Caller) -> Snapshot:
        with self.objects.db.read() as conn:
            return Snapshot.read(conn, caller, self.objects.admin_tenant_uuid)

    def _find(self, snap: Snapshot, kind: str, octavia_id: str) -> StoredObject:
        obj = snap.get(ids.native(kind, octavia_id), ids.NATIVE_TYPE[kind])
        if obj is None or obj.builtin:
            raise NotFound(f"{_label(kind)} {octavia_id} could not be found.")
        return obj

    def _lb_status(self, snap: Snapshot, lb_uuid: str | None) -> str:
        if lb_uuid is None or snap.get(lb_uuid, "vsvip") is None:
            return "ACTIVE"
        return self.status.lb_provisioning(lb_uuid, snap)[0]

    def show_lb(self, snap: Snapshot, lb: StoredObject) -> dict[str, Any]:
        provisioning = self._lb_status(snap, lb.uuid)
        return render.loadbalancer(lb, snap, provisioning, self.status.lb_operating(lb, snap, provisioning))

    def show_listener(self, snap: Snapshot, vs: StoredObject) -> dict[str, Any]:
        provisioning = self._lb_status(snap, snap.lb_of_listener(vs))
        return render.listener(vs, snap, provisioning, self.status.listener_operating(vs, snap))

    def show_pool(self, snap: Snapshot, pool: StoredObject) -> dict[str, Any]:
        provisioning = self._lb_status(snap, snap.lb_of_pool(pool))
        has_hm = snap.hm_of_pool(pool) is not None
        operating = self.status.pool_operating(pool, has_hm)
        return render.pool(pool, snap, provisioning, operating)

    def members(self, snap: Snapshot, pool: StoredObject) -> list[dict[str, Any]]:
        provisioning = self._lb_status(snap, snap.lb_of_pool(pool))
        health = self.status.member_status(pool, snap.hm_of_pool(pool) is not None)
        return [
            render.member(pool, s, snap, provisioning, health[server_key(pool, s)])
            for s in pool.data["servers"]
        ]

    def show_hm(self, snap: Snapshot, hm: StoredObject) -> dict[str, Any]:
        provisioning = self._lb_status(snap, snap.lb_of_hm(hm))
        operating = "ONLINE" if snap.data(hm.uuid).get("admin_state_up", True) else "OFFLINE"
        return render.healthmonitor(hm, snap, provisioning, operating)

    def list(self, caller: Caller, kind: str) -> list[dict[str, Any]]:
        snap = self.snapshot(caller)
        if kind == "loadbalancer":
            return [self.show_lb(snap, o) for o in snap.user_objects("vsvip")]
        if kind == "listener":
            return [self.show_listener(snap, o) for o in snap.user_objects("virtualservice")]
        if kind == "pool":
            return [self.show_pool(snap, o) for o in snap.user_objects("pool")]
        if kind == "healthmonitor":
            return [self.show_hm(snap, o) for o in snap.user_objects("healthmonitor")]
        if kind == "l7policy":
            return [
                self.show_policy(snap, p, i + 1)
                for vs in snap.user_objects("virtualservice")
                for i, p in enumerate(snap.policies_of(vs))
            ]
        raise NotFound(f"no resource {kind}")

    def show(self, caller: Caller, kind: str, octavia_id: str) -> dict[str, Any]:
        snap = self.snapshot(caller)
        obj = self._find(snap, kind, octavia_id)
        if kind == "loadbalancer":
            return self.show_lb(snap, obj)
        if kind == "listener":
            return self.show_listener(snap, obj)
        if kind == "pool":
            return self.show_pool(snap, obj)
        if kind == "healthmonitor":
            return self.show_hm(snap, obj)
        return self.show_policy(snap, obj, self._position(snap, obj))

    def list_members(self, caller: Caller, pool_id: str) -> list[dict[str, Any]]:
        snap = self.snapshot(caller)
        return self.members(snap, self._find(snap, "pool", pool_id))

    def show_member(self, caller: Caller, pool_id: str, member_id: str) -> dict[str, Any]:
        for m in self.list_members(caller, pool_id):
            if m["id"] == member_id:
                return m
        raise NotFound(f"Member {member_id} could not be found.")

    # --- writing: common --------------------------------------------------------------------------

    def _write(self, caller: Caller, tenant_uuid: str | None, work: Callable[[Batch, Snapshot], str]) -> str:
        """Run `work` in one transaction as `caller` acting in the object's tenant; returns the LB."""
        acting = self._acting(caller, tenant_uuid)

        def run(batch: Batch) -> str:
            snap = Snapshot.read(batch.conn, acting, self.objects.admin_tenant_uuid)
            return work(batch, snap)

        return self.objects.batch(acting, run)

    def _acting(self, caller: Caller, tenant_uuid: str | None) -> Caller:
        if tenant_uuid is None or tenant_uuid == caller.tenant_uuid:
            return caller
        if not caller.is_system_admin:
            raise Forbidden("Policy does not allow this request to be performed.")
        return dataclasses.replace(caller, tenant_uuid=tenant_uuid)

    def _target_tenant(self, caller: Caller, given: schemas._Owned) -> str | None:
        project = given.project_id or given.tenant_id
        if project is None:
            return None
        tenant = ids.tenant_of(project.replace("-", ""))
        if tenant != caller.tenant_uuid and not caller.is_system_admin:
            raise Forbidden("Policy does not allow this request to be performed.")
        with self.objects.db.read() as conn:
            if repo.get(conn, tenant) is None:
                raise InvalidInput(f"Invalid input: project {project} is not a Fulcrum tenant")
        return tenant

    def _check_mutable(self, snap: Snapshot, lb_uuid: str | None) -> None:
        if lb_uuid is None:
            return
        status = self._lb_status(snap, lb_uuid)
        if status.startswith("PENDING_"):
            raise Conflict(f"Load Balancer {ids.of(lb_uuid)} is immutable and cannot be updated.")

    def _done(self, lb_uuid: str | None, operation: str = "UPDATE") -> None:
        if lb_uuid is not None:
            self.status.mark(lb_uuid, operation)

    def _lb_of(self, snap: Snapshot, kind: str, obj: StoredObject) -> str | None:
        if kind == "loadbalancer":
            return obj.uuid
        if kind == "listener":
            return snap.lb_of_listener(obj)
        if kind == "pool":
            return snap.lb_of_pool(obj)
        if kind == "healthmonitor":
            return snap.lb_of_hm(obj)
        return snap.lb_of_policy(obj)[0]

    def _on(self, caller: Caller, kind: str, oid: str, act: Act) -> str | None:
        """Change the resource `oid` (or something under it) in one transaction, in its tenant: refused
        while its load balancer is PENDING_*, which then goes PENDING_UPDATE. `act` may return an id."""
        found = self._find(self.snapshot(caller), kind, oid)
        result: list[str | None] = []

        def work(batch: Batch, snap: Snapshot) -> str:
            obj = self._find(snap, kind, oid)
            lb_uuid = self._lb_of(snap, kind, obj)
            self._check_mutable(snap, lb_uuid)
            result.append(act(batch, snap, obj, lb_uuid))
            return lb_uuid or ""

        self._done(self._write(caller, found.tenant_uuid, work) or None)
        return result[0]

    @staticmethod
    def _meta(batch: Batch, key: str, kind: str, tenant: str, lb: str | None, data: dict[str, Any]) -> None:
        now = int(datetime.datetime.now(tz=datetime.UTC).timestamp() * 1e6)
        old = repo.get_meta(batch.conn, key)
        merged = {**(old.data if old else {}), **data}
        repo.put_meta(
            batch.conn,
            MetaRow(
                key,
                kind,
                tenant,
                lb if lb is not None else (old.lb_uuid if old else None),
                merged,
                old.created if old else now,
                now,
            ),
        )

    @staticmethod
    def _native_name(batch: Batch, type_name: str, tenant: str, wanted: str, oid: str, exclude: str) -> str:
        base = wanted.strip() or f"{type_name}-{oid[:8]}"
        if not repo.name_taken(batch.conn, type_name, tenant, base, exclude):
            return base
        return f"{base}-{oid[:8]}"

    def _quota(self, batch: Batch, snap: Snapshot, tenant: str, kind: str, adding: int = 1) -> None:
        row = repo.get_meta(batch.conn, f"quota:{tenant}")
        limit = (row.data if row else {}).get(kind)
        if limit is None or limit < 0:
            return
        mine = [o for o in snap.objects.values() if o.tenant_uuid == tenant and not o.builtin]
        count = {
            "loadbalancer": sum(o.type == "vsvip" for o in mine),
            "listener": sum(o.type == "virtualservice" for o in mine),
            "pool": sum(o.type == "pool" for o in mine),
            "healthmonitor": sum(o.type == "healthmonitor" for o in mine),
            "member": sum(len(o.data["servers"]) for o in mine if o.type == "pool"),
            "l7policy": sum(o.type == "httppolicyset" for o in mine),
            "l7rule": sum(len(o.data.get("matches", [])) for o in mine if o.type == "httppolicyset"),
        }[kind]
        if count + adding > limit:
            raise Forbidden(f"Quota has been met for resources: {kind.capitalize()}")

    # --- load balancers ---------------------------------------------------------------------------

    def create_lb(self, caller: Caller, body: Any) -> dict[str, Any]:
        spec = parse(schemas.LoadBalancer, body, "loadbalancer")
        if spec.provider not in (None, render.PROVIDER):
            raise InvalidInput(f"Provider '{spec.provider}' is not enabled.")
        for option, value in (
            ("vip_port_id", spec.vip_port_id),
            ("vip_qos_policy_id", spec.vip_qos_policy_id),
            ("availability_zone", spec.availability_zone),
            ("additional_vips", spec.additional_vips),
            ("vip_sg_ids", spec.vip_sg_ids),
        ):
            if value:
                raise unsupported(option)
        if spec.vip_subnet_id is None and spec.vip_network_id is None:
            raise InvalidInput(
                "Invalid input: VIP must contain one of: vip_port_id, vip_network_id, vip_subnet_id."
            )
        tenant = self._target_tenant(caller, spec)
        if spec.flavor_id is not None:  # one spelling of the id (case, dashes), as flavors are keyed
            spec.flavor_id = str(uuid.UUID(spec.flavor_id))
        lb_id = ids.new_id()
        lb_uuid = f"vsvip-{lb_id}"

        def work(batch: Batch, snap: Snapshot) -> str:
            cloud = self._cloud_for(snap, spec.vip_subnet_id, spec.vip_network_id)
            group = self._flavor_group(batch, spec.flavor_id)
            acting_tenant = batch.caller.tenant_uuid
            self._quota(batch, snap, acting_tenant, "loadbalancer")
            vip: dict[str, Any] = {"vip_id": "0", "enabled": spec.admin_state_up}
            if spec.vip_address:
                vip["ip_address"] = spec.vip_address
            else:
                vip["auto_allocate_ip"] = True
            name = self._native_name(batch, "vsvip", acting_tenant, spec.name, lb_id, lb_uuid)
            batch.create(
                "vsvip",
                {"name": name, "cloud_ref": refs.canonical("cloud", cloud.uuid), "vip": [vip]},
                uuid=lb_uuid,
            )
            self._meta(
                batch,
                lb_uuid,
                "loadbalancer",
                acting_tenant,
                lb_uuid,
                {
                    "name": spec.name,
                    "description": spec.description,
                    "tags": spec.tags,
                    "flavor_id": spec.flavor_id,
                    "se_group_ref": group,
                },
            )
            named: dict[str, str] = {}
            for pool in spec.pools or []:
                pool_uuid = self._create_pool(batch, snap, pool, lb_uuid, None)
                if pool.name:
                    named[pool.name] = pool_uuid
            for listener in spec.listeners or []:
                self._create_listener(batch, snap, listener, lb_uuid, named)
            return lb_uuid

        self._write(caller, tenant, work)
        self._done(lb_uuid, "CREATE")
        return self.show(self._acting(caller, tenant), "loadbalancer", lb_id)

    def _cloud_for(self, snap: Snapshot, subnet: str | None, network: str | None) -> StoredObject:
        for cloud in snap.of_type("cloud"):
            if (subnet and _same(subnet, ids.subnet_id(cloud.uuid))) or (
                network and _same(network, ids.network_id(cloud.uuid))
            ):
                return cloud
        what = f"Subnet {subnet}" if subnet else f"Network {network}"
        raise InvalidInput(f"Invalid input: {what} could not be found.")

    def _flavor_group(self, batch: Batch, flavor_id: str | None) -> str | None:
        if flavor_id is None:
            return None
        flavor = repo.get_meta(batch.conn, f"flavor:{flavor_id}")
        if flavor is None or not flavor.data.get("enabled", True):
            raise InvalidInput(f"Invalid input: Flavor {flavor_id} could not be found or is disabled.")
        profile = repo.get_meta(batch.conn, f"flavorprofile:{flavor.data['flavor_profile_id']}")
        if profile is None:
            raise InvalidInput(f"Invalid input: the profile of flavor {flavor_id} is gone")
        data = json.loads(profile.data["flavor_data"])
        if "se_group" not in data:
            return None
        group = str(data["se_group"]).removeprefix("serviceenginegroup-")
        if ids.is_uuid(group):
            return refs.canonical("serviceenginegroup", f"serviceenginegroup-{group}")
        return f"/api/serviceenginegroup?name={group}"

    def update_lb(self, caller: Caller, lb_id: str, body: Any) -> dict[str, Any]:
        changes = schemas.updates(body, "loadbalancer")

        def work(batch: Batch, snap: Snapshot, lb: StoredObject, _lb_uuid: str | None) -> None:
            for option in ("vip_qos_policy_id", "vip_sg_ids"):
                if changes.get(option):
                    raise unsupported(option)
            data = {k: v for k, v in lb.data.items()}
            if "admin_state_up" in changes:
                data["vip"] = [{**v, "enabled": bool(changes["admin_state_up"])} for v in data["vip"]]
            if "name" in changes:
                data["name"] = self._native_name(
                    batch, "vsvip", lb.tenant_uuid, changes["name"] or "", lb_id, lb.uuid
                )
            batch.replace("vsvip", lb.uuid, data)
            self._meta(
                batch,
                lb.uuid,
                "loadbalancer",
                lb.tenant_uuid,
                lb.uuid,
                {k: changes[k] for k in ("name", "description", "tags") if k in changes},
            )
            for vs in snap.listeners_of(lb.uuid):
                if "admin_state_up" in changes:
                    batch.replace(
                        "virtualservice",
                        vs.uuid,
                        {
                            **vs.data,
                            "enabled": bool(changes["admin_state_up"])
                            and snap.data(vs.uuid).get("admin_state_up", True),
                        },
                    )

        self._on(caller, "loadbalancer", lb_id, work)
        return self.show(caller, "loadbalancer", lb_id)

    def delete_lb(self, caller: Caller, lb_id: str, cascade: bool) -> None:
        def work(batch: Batch, snap: Snapshot, lb: StoredObject, _lb_uuid: str | None) -> None:
            listeners = snap.listeners_of(lb.uuid)
            pools = snap.pools_of(lb.uuid)
            if (listeners or pools) and not cascade:
                raise Conflict(f"Cannot delete Load Balancer {lb_id} - it has children")
            keys = [lb.uuid]
            for vs in listeners:
                keys += self._delete_listener_objects(batch, snap, vs)
            snap = Snapshot.read(batch.conn, batch.caller, self.objects.admin_tenant_uuid)
            for pool in pools:
                keys += self._delete_pool_objects(batch, snap, pool)
            batch.delete("vsvip", lb.uuid)
            repo.delete_meta(batch.conn, keys)

        self._on(caller, "loadbalancer", lb_id, work)
        self.status.forget(ids.native("loadbalancer", lb_id))

    def failover_lb(self, caller: Caller, lb_id: str, dataplane: Any) -> None:
        snap = self.snapshot(caller)
        lb = self._find(snap, "loadbalancer", lb_id)
        if caller.role not in (Role.SYSTEM_ADMIN, Role.TENANT_ADMIN):
            raise Forbidden("Policy does not allow this request to be performed.")
        self._check_mutable(snap, lb.uuid)
        for vs in snap.listeners_of(lb.uuid):
            if vs.data.get("enabled", True):
                dataplane.migrate(vs, None, None, True)
        self._done(lb.uuid)

    def status_tree(self, caller: Caller, lb_id: str) -> dict[str, Any]:
        snap = self.snapshot(caller)
        lb = self._find(snap, "loadbalancer", lb_id)
        view = self.show_lb(snap, lb)
        listeners = []
        for vs in snap.listeners_of(lb.uuid):
            lv = self.show_listener(snap, vs)
            pools = []
            used = [snap.ref(vs.data.get("pool_ref"))] + [
                snap.ref(p.data.get("redirect_pool_ref")) for p in snap.policies_of(vs)
            ]
            for pool in {p.uuid: p for p in used if p is not None}.values():
                pv = self.show_pool(snap, pool)
                entry: dict[str, Any] = {
                    k: pv[k] for k in ("id", "name", "provisioning_status", "operating_status")
                }
                hm = snap.hm_of_pool(pool)
                if hm is not None:
                    hv = self.show_hm(snap, hm)
                    entry["health_monitor"] = {
                        k: hv[k] for k in ("id", "name", "type", "provisioning_status", "operating_status")
                    }
                entry["members"] = [
                    {
                        k: m[k]
                        for k in (
                            "id",
                            "name",
                            "address",
                            "protocol_port",
                            "provisioning_status",
                            "operating_status",
                        )
                    }
                    for m in self.members(snap, pool)
                ]
                pools.append(entry)
            listeners.append(
                {
                    **{k: lv[k] for k in ("id", "name", "provisioning_status", "operating_status")},
                    "l7policies": [
                        {
                            "id": ids.of(p.uuid),
                            "name": snap.data(p.uuid).get("name", p.name),
                            "provisioning_status": lv["provisioning_status"],
                            "operating_status": lv["operating_status"],
                            "rules": [
                                {
                                    "id": m["match_id"],
                                    "type": m["type"],
                                    "provisioning_status": lv["provisioning_status"],
                                    "operating_status": lv["operating_status"],
                                }
                                for m in p.data.get("matches", [])
                            ],
                        }
                        for p in snap.policies_of(vs)
                    ],
                    "pools": pools,
                }
            )
        return {
            "statuses": {
                "loadbalancer": {
                    **{k: view[k] for k in ("id", "name", "provisioning_status", "operating_status")},
                    "listeners": listeners,
                }
            }
        }

    def stats(self, caller: Caller, kind: str, octavia_id: str) -> dict[str, int]:
        snap = self.snapshot(caller)
        obj = self._find(snap, kind, octavia_id)
        vs_uuids = [vs.uuid for vs in snap.listeners_of(obj.uuid)] if kind == "loadbalancer" else [obj.uuid]
        return self.status.stats(vs_uuids)

    # --- listeners --------------------------------------------------------------------------------

    def _tls_refs(self, spec: schemas.Listener) -> list[str]:
        wanted = ([spec.default_tls_container_ref] if spec.default_tls_container_ref else []) + list(
            spec.sni_container_refs
        )
        return [f"/api/sslkeyandcertificate/sslkeyandcertificate-{_tail_uuid(r)}" for r in wanted]

    def _vs_body(
        self,
        batch: Batch,
        snap: Snapshot,
        spec: schemas.Listener,
        lb_uuid: str,
        vs_uuid: str,
        pool_uuid: str | None,
        policies: list[str],
    ) -> dict[str, Any]:
        protocol = spec.protocol
        if protocol in ("UDP", "SCTP", "PROMETHEUS"):
            raise unsupported(f"listener protocol {protocol}")
        if spec.client_authentication != "NONE" or spec.client_ca_tls_container_ref:
            raise unsupported("client_authentication")
        for option in (
            "client_crl_container_ref",
            "tls_ciphers",
            "tls_versions",
            "alpn_protocols",
            "hsts_max_age",
        ):
            if getattr(spec, option):
                raise unsupported(option)
        certs = self._tls_refs(spec)
        if protocol == "TERMINATED_HTTPS" and not certs:
            raise InvalidInput("Invalid input: a TERMINATED_HTTPS listener needs default_tls_container_ref")
        if protocol != "TERMINATED_HTTPS" and certs:
            raise InvalidInput("Invalid input: certificates are only valid on TERMINATED_HTTPS listeners")
        headers = []
        for header, value in spec.insert_headers.items():
            if header not in INSERT_HEADERS:
                raise unsupported(f"insert_headers {header}")
            if str(value).lower() in ("true", "1", "yes"):
                headers.append(header)
        if headers and protocol not in ("HTTP", "TERMINATED_HTTPS"):
            raise InvalidInput("Invalid input: insert_headers are only valid on HTTP listeners")
        lb = snap.get(lb_uuid, "vsvip")
        lb_enabled = lb is None or all(v.get("enabled", True) for v in lb.data["vip"])
        body: dict[str, Any] = {
            "name": self._native_name(
                batch, "virtualservice", batch.caller.tenant_uuid, spec.name, ids.of(vs_uuid), vs_uuid
            ),
            "description": spec.description,
            "enabled": spec.admin_state_up and lb_enabled,
            "services": [{"port": spec.protocol_port, "enable_ssl": protocol == "TERMINATED_HTTPS"}],
            "vsvip_ref": refs.canonical("vsvip", lb_uuid),
            "application_profile_ref": HTTP_PROFILE
            if protocol in ("HTTP", "TERMINATED_HTTPS")
            else L4_PROFILE,
            "pool_ref": refs.canonical("pool", pool_uuid) if pool_uuid else None,
            "ssl_key_and_certificate_refs": certs,
            "connection_limit": spec.connection_limit if spec.connection_limit > 0 else None,
            "allowed_cidrs": list(spec.allowed_cidrs or []),
            "insert_headers": headers,
            "http_policies": [refs.canonical("httppolicyset", p) for p in policies],
        }
        for name, (native_field, _default) in render.LISTENER_TIMEOUTS.items():
            value = getattr(spec, name)
            if value is not None:
                body[native_field] = value
        group = snap.data(lb_uuid).get("se_group_ref")
        if group:
            body["se_group_ref"] = group
        return body

    @staticmethod
    def _check_pool_fits(batch: Batch, protocol: str, pool_uuid: str | None) -> None:
        """Octavia's listener/pool protocol pairs (read in the transaction: the pool may be new)."""
        recorded = repo.get_meta(batch.conn, pool_uuid) if pool_uuid else None
        pool_protocol = recorded.data.get("protocol") if recorded else None
        if pool_protocol and pool_protocol not in POOL_PROTOCOLS.get(protocol, set()):
            raise InvalidInput(
                f"Invalid input: the pool protocol '{pool_protocol}' is invalid while the listener "
                f"protocol is '{protocol}'."
            )

    def _create_listener(
        self, batch: Batch, snap: Snapshot, spec: schemas.Listener, lb_uuid: str, named: dict[str, str]
    ) -> str:
        tenant = batch.caller.tenant_uuid
        self._quota(batch, snap, tenant, "listener")
        for vs in snap.listeners_of(lb_uuid):
            if vs.data["services"][0]["port"] == spec.protocol_port:
                raise Conflict(
                    f"Another Listener on this Load Balancer is already using protocol_port "
                    f"{spec.protocol_port}"
                )
        vs_uuid = f"virtualservice-{ids.new_id()}"
        pool_uuid = self._pool_for(
            batch, snap, lb_uuid, named, "default", spec.default_pool_id, spec.default_pool, spec.protocol
        )
        self._check_pool_fits(batch, spec.protocol, pool_uuid)
        policies = [
            self._create_policy(batch, snap, p, vs_uuid, lb_uuid, named) for p in spec.l7policies or []
        ]
        batch.create(
            "virtualservice",
            self._vs_body(batch, snap, spec, lb_uuid, vs_uuid, pool_uuid, policies),
            uuid=vs_uuid,
        )
        self._meta(
            batch,
            vs_uuid,
            "listener",
            tenant,
            lb_uuid,
            {
                "name": spec.name,
                "tags": spec.tags,
                "protocol": spec.protocol,
                "admin_state_up": spec.admin_state_up,
                "default_tls_container_ref": spec.default_tls_container_ref,
                "sni_container_refs": spec.sni_container_refs,
            },
        )
        return vs_uuid

    def _pool_for(
        self,
        batch: Batch,
        snap: Snapshot,
        lb_uuid: str,
        named: dict[str, str],
        role: str,
        pool_id: str | None,
        inline: schemas.Pool | schemas.NamedPool | None,
        listener_protocol: str | None,
    ) -> str | None:
        """The pool a listener (default) or policy (redirect) uses: by id, by name among the `pools` of
        a single-call create, or created inline; it must belong to the same load balancer."""
        if pool_id:
            pool = self._find(snap, "pool", pool_id)
            if snap.lb_of_pool(pool) not in (None, lb_uuid):
                raise InvalidInput(f"Invalid input: the {role} pool belongs to another load balancer")
            return pool.uuid
        if isinstance(inline, schemas.NamedPool):
            if inline.name not in named:
                raise InvalidInput(f"Invalid input: no pool named {inline.name!r} in 'pools'")
            return named[inline.name]
        if inline is not None:
            return self._create_pool(batch, snap, inline, lb_uuid, None, listener_protocol)
        return None

    def create_listener(self, caller: Caller, body: Any) -> dict[str, Any]:
        spec = parse(schemas.Listener, body, "listener")
        if spec.loadbalancer_id is None:
            raise InvalidInput("Invalid input for field/attribute loadbalancer_id: Mandatory field missing.")
        if spec.default_pool is not None or spec.l7policies:
            raise InvalidInput(
                "Invalid input: default_pool and l7policies are only accepted in a single-call "
                "load balancer create; use default_pool_id"
            )

        def work(batch: Batch, snap: Snapshot, lb: StoredObject, _lb_uuid: str | None) -> str:
            return self._create_listener(batch, snap, spec, lb.uuid, {})

        created = self._on(caller, "loadbalancer", spec.loadbalancer_id, work) or ""
        return self.show(caller, "listener", ids.of(created))

    def update_listener(self, caller: Caller, listener_id: str, body: Any) -> dict[str, Any]:
        changes = schemas.updates(body, "listener")

        def work(batch: Batch, snap: Snapshot, vs: StoredObject, lb_uuid: str | None) -> None:
            current = render.listener(vs, snap, "ACTIVE", "ONLINE")
            merged = {k: current[k] for k in schemas.UPDATABLE["listener"] if k in current}
            merged.update(protocol=current["protocol"], protocol_port=current["protocol_port"])
            merged["allowed_cidrs"] = current["allowed_cidrs"]
            merged.update(changes)
            spec = schemas.validated(schemas.Listener, merged, "listener")
            pool_uuid = None
            if spec.default_pool_id:
                pool = self._find(snap, "pool", spec.default_pool_id)
                if snap.lb_of_pool(pool) not in (None, lb_uuid):
                    raise InvalidInput("Invalid input: the default pool belongs to another load balancer")
                pool_uuid = pool.uuid
            self._check_pool_fits(batch, spec.protocol, pool_uuid)
            policies = [refs.uuid_of(r) for r in vs.data.get("http_policies", [])]
            body_ = self._vs_body(batch, snap, spec, lb_uuid or "", vs.uuid, pool_uuid, policies)
            body_["name"] = (
                self._native_name(batch, "virtualservice", vs.tenant_uuid, spec.name, listener_id, vs.uuid)
                if "name" in changes
                else vs.name
            )
            for keep in ("se_group_ref", "analytics_policy", "flow_dist", "traffic_enabled"):
                if keep in vs.data:
                    body_.setdefault(keep, vs.data[keep])
            batch.replace("virtualservice", vs.uuid, body_)
            self._meta(
                batch,
                vs.uuid,
                "listener",
                vs.tenant_uuid,
                lb_uuid,
                {
                    **{
                        k: changes[k]
                        for k in (
                            "name",
                            "tags",
                            "default_tls_container_ref",
                            "sni_container_refs",
                            "admin_state_up",
                        )
                        if k in changes
                    },
                },
            )

        self._on(caller, "listener", listener_id, work)
        return self.show(caller, "listener", listener_id)

    def _delete_listener_objects(self, batch: Batch, snap: Snapshot, vs: StoredObject) -> list[str]:
        policies = snap.policies_of(vs)
        batch.delete("virtualservice", vs.uuid)
        keys = [vs.uuid]
        for policy in policies:
            batch.delete("httppolicyset", policy.uuid)
            keys += [policy.uuid] + [f"l7rule:{m['match_id']}" for m in policy.data.get("matches", [])]
        return keys

    def delete_listener(self, caller: Caller, listener_id: str) -> None:
        def work(batch: Batch, snap: Snapshot, vs: StoredObject, lb_uuid: str | None) -> None:
            repo.delete_meta(batch.conn, self._delete_listener_objects(batch, snap, vs))

        self._on(caller, "listener", listener_id, work)

    # --- pools and members ------------------------------------------------------------------------

    def _persistence(
        self, spec: schemas.SessionPersistence | None, pool_uuid: str, batch: Batch
    ) -> str | None:
        if spec is None:
            return None
        if spec.persistence_timeout is not None or spec.persistence_granularity is not None:
            raise unsupported("session_persistence persistence_timeout / persistence_granularity")
        if spec.type == "SOURCE_IP":
            if spec.cookie_name:
                raise InvalidInput("Invalid input: Cookie names are not supported for SOURCE_IP persistence")
            return "/api/applicationpersistenceprofile?name=System-Persistence-Client-IP"
        if spec.type == "HTTP_COOKIE":
            if spec.cookie_name:
                raise InvalidInput(
                    "Invalid input: Cookie names are not supported for HTTP_COOKIE persistence"
                )
            return "/api/applicationpersistenceprofile?name=System-Persistence-Http-Cookie"
        if not spec.cookie_name:
            raise InvalidInput("Invalid input: APP_COOKIE session persistence requires cookie_name")
        profile_uuid = f"applicationpersistenceprofile-{ids.new_id()}"
        batch.create(
            "applicationpersistenceprofile",
            {
                "name": f"{pool_uuid}-app-cookie-{profile_uuid[-8:]}",
                "persistence_type": "PERSISTENCE_TYPE_APP_COOKIE",
                "app_cookie_persistence_profile": {"cookie_name": spec.cookie_name},
            },
            uuid=profile_uuid,
            owner=pool_uuid,
        )
        return refs.canonical("applicationpersistenceprofile", profile_uuid)

    def _pool_body(
        self,
        batch: Batch,
        spec: schemas.Pool,
        pool_uuid: str,
        name: str,
        servers: list[dict[str, Any]],
        hm_refs: list[str],
    ) -> dict[str, Any]:
        if spec.protocol in ("UDP", "SCTP", "PROXY", "PROXYV2"):
            raise unsupported(f"pool protocol {spec.protocol}")
        if spec.lb_algorithm not in ALGORITHM_IN:
            raise unsupported(f"lb_algorithm {spec.lb_algorithm}")
        for option in (
            "tls_enabled",
            "tls_container_ref",
            "ca_tls_container_ref",
            "crl_container_ref",
            "tls_ciphers",
            "tls_versions",
            "alpn_protocols",
        ):
            if getattr(spec, option):
                raise unsupported(option)
        algorithm, hashing = ALGORITHM_IN[spec.lb_algorithm]
        body: dict[str, Any] = {
            "name": name,
            "description": spec.description,
            "enabled": spec.admin_state_up,
            "lb_algorithm": algorithm,
            "servers": servers,
            "health_monitor_refs": hm_refs,
            "application_persistence_profile_ref": self._persistence(
                spec.session_persistence, pool_uuid, batch
            ),
        }
        if hashing:
            body["lb_algorithm_hash"] = hashing
        return body

    def _create_pool(
        self,
        batch: Batch,
        snap: Snapshot,
        spec: schemas.Pool,
        lb_uuid: str,
        listener: StoredObject | None,
        listener_protocol: str | None = None,
    ) -> str:
        tenant = batch.caller.tenant_uuid
        self._quota(batch, snap, tenant, "pool")
        if listener_protocol and spec.protocol not in POOL_PROTOCOLS.get(listener_protocol, set()):
            raise InvalidInput(
                f"Invalid input: the pool protocol '{spec.protocol}' is invalid while the "
                f"listener protocol is '{listener_protocol}'."
            )
        pool_id = ids.new_id()
        pool_uuid = f"pool-{pool_id}"
        members = spec.members or []
        self._quota(batch, snap, tenant, "member", len(members))
        servers = []
        seen: set[tuple[str, int]] = set()
        for m in members:
            if (m.address, m.protocol_port) in seen:
                raise Conflict(f"Duplicate member with address {m.address} and port {m.protocol_port}")
            seen.add((m.address, m.protocol_port))
            servers.append(self._server(batch, m, ids.new_id(), tenant))
        name = self._native_name(batch, "pool", tenant, spec.name, pool_id, pool_uuid)
        batch.create("pool", self._pool_body(batch, spec, pool_uuid, name, servers, []), uuid=pool_uuid)
        self._meta(
            batch,
            pool_uuid,
            "pool",
            tenant,
            lb_uuid,
            {"name": spec.name, "tags": spec.tags, "protocol": spec.protocol},
        )
        if spec.healthmonitor is not None:
            self._create_hm(batch, snap, spec.healthmonitor, pool_uuid)
        if listener is not None:
            if listener.data.get("pool_ref"):
                raise Conflict(f"Listener {ids.of(listener.uuid)} already has a default pool")
            batch.replace(
                "virtualservice",
                listener.uuid,
                {**listener.data, "pool_ref": refs.canonical("pool", pool_uuid)},
            )
        return pool_uuid

    def _server(self, batch: Batch, m: schemas.Member, member_id: str, tenant: str) -> dict[str, Any]:
        if m.request_sriov:
            raise unsupported("request_sriov")
        self._meta(
            batch,
            f"member:{member_id}",
            "member",
            tenant,
            None,
            {
                "subnet_id": m.subnet_id,
                "tags": m.tags,
                "created_at": _now(),
                "updated_at": _now(),
            },
        )
        return {
            "ip": m.address,
            "port": m.protocol_port,
            "ratio": m.weight,
            "backup": m.backup,
            "enabled": m.admin_state_up,
            "name": m.name or None,
            "external_uuid": member_id,
            "monitor_address": m.monitor_address,
            "monitor_port": m.monitor_port,
        }

    def create_pool(self, caller: Caller, body: Any) -> dict[str, Any]:
        spec = parse(schemas.Pool, body, "pool")
        if spec.members is not None or spec.healthmonitor is not None:
            raise InvalidInput(
                "Invalid input: members and healthmonitor are only accepted in a single-call "
                "load balancer create"
            )
        snap0 = self.snapshot(caller)
        listener0 = self._find(snap0, "listener", spec.listener_id) if spec.listener_id else None
        if spec.loadbalancer_id:
            lb_uuid = self._find(snap0, "loadbalancer", spec.loadbalancer_id).uuid
            if listener0 is not None and snap0.lb_of_listener(listener0) != lb_uuid:
                raise InvalidInput("Invalid input: the listener belongs to another load balancer")
        elif listener0 is not None:
            lb_uuid = snap0.lb_of_listener(listener0) or ""
        else:
            raise InvalidInput("Invalid input: a pool needs loadbalancer_id or listener_id")
        tenant = snap0.get(lb_uuid, "vsvip")
        created: list[str] = []

        def work(batch: Batch, snap: Snapshot) -> str:
            self._check_mutable(snap, lb_uuid)
            listener = self._find(snap, "listener", spec.listener_id) if spec.listener_id else None
            protocol = render.listener(listener, snap, "", "")["protocol"] if listener else None
            created.append(self._create_pool(batch, snap, spec, lb_uuid, listener, protocol))
            return lb_uuid

        self._write(caller, tenant.tenant_uuid if tenant else None, work)
        self._done(lb_uuid)
        return self.show(caller, "pool", ids.of(created[0]))

    def update_pool(self, caller: Caller, pool_id: str, body: Any) -> dict[str, Any]:
        changes = schemas.updates(body, "pool")

        def work(batch: Batch, snap: Snapshot, pool: StoredObject, lb_uuid: str | None) -> None:
            current = render.pool(pool, snap, "", "")
            merged = {k: current[k] for k in schemas.UPDATABLE["pool"] if k in current}
            merged.update(protocol=current["protocol"], lb_algorithm=current["lb_algorithm"])
            merged.update(changes)
            spec = schemas.validated(schemas.Pool, merged, "pool")
            name = (
                self._native_name(batch, "pool", pool.tenant_uuid, spec.name, pool_id, pool.uuid)
                if ("name" in changes)
                else pool.name
            )
            body_ = self._pool_body(
                batch, spec, pool.uuid, name, pool.data["servers"], pool.data.get("health_monitor_refs", [])
            )
            for keep in (
                "default_server_port",
                "graceful_disable_timeout",
                "connection_ramp_duration",
                "cloud_ref",
            ):
                if keep in pool.data:
                    body_[keep] = pool.data[keep]
            if "session_persistence" not in changes:
                body_["application_persistence_profile_ref"] = pool.data.get(
                    "application_persistence_profile_ref"
                )
            batch.replace("pool", pool.uuid, body_)
            self._meta(
                batch,
                pool.uuid,
                "pool",
                pool.tenant_uuid,
                None,
                {k: changes[k] for k in ("name", "tags") if k in changes},
            )

        self._on(caller, "pool", pool_id, work)
        return self.show(caller, "pool", pool_id)

    def _delete_pool_objects(self, batch: Batch, snap: Snapshot, pool: StoredObject) -> list[str]:
        hm = snap.hm_of_pool(pool)
        members = [
            f"member:{ids.member_id(pool.uuid, s, pool.data['default_server_port'])}"
            for s in pool.data["servers"]
        ]
        for vs in snap.pool_users(pool.uuid):
            if vs.data.get("pool_ref") and refs.uuid_of(vs.data["pool_ref"]) == pool.uuid:
                fresh = batch.load("virtualservice", vs.uuid)
                batch.replace("virtualservice", vs.uuid, {**fresh.data, "pool_ref": None})
        batch.delete("pool", pool.uuid)
        keys = [pool.uuid, *members]
        if hm is not None and len(snap.pools_of_hm(hm.uuid)) <= 1 and not hm.builtin:
            batch.delete("healthmonitor", hm.uuid)
            keys.append(hm.uuid)
        return keys

    def delete_pool(self, caller: Caller, pool_id: str) -> None:
        def work(batch: Batch, snap: Snapshot, pool: StoredObject, lb_uuid: str | None) -> None:
            for vs in snap.pool_users(pool.uuid):
                if any(
                    p.data.get("redirect_pool_ref") and refs.uuid_of(p.data["redirect_pool_ref"]) == pool.uuid
                    for p in snap.policies_of(vs)
                ):
                    raise Conflict(f"Pool {pool_id} is in use by an L7 policy of listener {ids.of(vs.uuid)}")
            repo.delete_meta(batch.conn, self._delete_pool_objects(batch, snap, pool))

        self._on(caller, "pool", pool_id, work)

    def _list_write(self, caller: Caller, kind: str, parent_id: str, field: str, change: Change) -> None:
        """Change the members of a pool or the rules of a policy: a list inside one native object."""

        def work(batch: Batch, snap: Snapshot, parent: StoredObject, lb_uuid: str | None) -> None:
            items = [dict(i) for i in parent.data.get(field, [])]
            if kind == "pool":  # servers made natively get the id Octavia has been showing for them
                for s in items:
                    s["external_uuid"] = ids.member_id(parent.uuid, s, parent.data["default_server_port"])
            batch.replace(
                ids.NATIVE_TYPE[kind], parent.uuid, {**parent.data, field: change(batch, parent, items)}
            )

        self._on(caller, kind, parent_id, work)

    def create_member(self, caller: Caller, pool_id: str, body: Any) -> dict[str, Any]:
        spec = parse(schemas.Member, body, "member")
        member_id = ids.new_id()

        def change(batch: Batch, pool: StoredObject, servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
            snap = Snapshot.read(batch.conn, batch.caller, self.objects.admin_tenant_uuid)
            self._quota(batch, snap, pool.tenant_uuid, "member")
            for s in servers:
                if (
                    s["ip"] == spec.address
                    and (s.get("port") or pool.data["default_server_port"]) == spec.protocol_port
                ):
                    raise Conflict(
                        f"Duplicate member with address {spec.address} and port {spec.protocol_port}"
                    )
            return [*servers, self._server(batch, spec, member_id, pool.tenant_uuid)]

        self._list_write(caller, "pool", pool_id, "servers", change)
        return self.show_member(caller, pool_id, member_id)

    def update_member(self, caller: Caller, pool_id: str, member_id: str, body: Any) -> dict[str, Any]:
        changes = schemas.updates(body, "member")

        def change(batch: Batch, pool: StoredObject, servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for s in servers:
                if s["external_uuid"] == member_id:
                    current = {
                        "name": s.get("name") or "",
                        "address": s["ip"],
                        "protocol_port": s.get("port") or pool.data["default_server_port"],
                        "weight": s.get("ratio", 1),
                        "backup": s.get("backup", False),
                        "admin_state_up": s.get("enabled", True),
                        "monitor_address": s.get("monitor_address"),
                        "monitor_port": s.get("monitor_port"),
                    }
                    spec = schemas.validated(schemas.Member, {**current, **changes}, "member")
                    s.update(self._server(batch, spec, member_id, pool.tenant_uuid))
                    if "tags" in changes:
                        self._meta(
                            batch,
                            f"member:{member_id}",
                            "member",
                            pool.tenant_uuid,
                            None,
                            {"tags": changes["tags"]},
                        )
                    return servers
            raise NotFound(f"Member {member_id} could not be found.")

        self._list_write(caller, "pool", pool_id, "servers", change)
        return self.show_member(caller, pool_id, member_id)

    def delete_member(self, caller: Caller, pool_id: str, member_id: str) -> None:
        def change(batch: Batch, _pool: StoredObject, servers: Items) -> Items:
            return _without(batch, servers, "external_uuid", member_id, "Member", "member")

        self._list_write(caller, "pool", pool_id, "servers", change)

    def batch_members(self, caller: Caller, pool_id: str, body: Any) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("members"), list):
            raise InvalidInput("Invalid input: the request body must be an object with a 'members' list")
        specs = []
        for index, item in enumerate(body["members"]):
            try:
                specs.append(schemas.Member.model_validate(item))
            except ValidationError as exc:
                raise InvalidInput(f"Invalid input for members[{index}]: {format_validation(exc)}") from None

        def change(batch: Batch, pool: StoredObject, servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
            by_key = {(s["ip"], s.get("port") or pool.data["default_server_port"]): s for s in servers}
            new, seen = [], set()
            for spec in specs:
                key = (spec.address, spec.protocol_port)
                if key in seen:
                    raise Conflict(
                        f"Duplicate member with address {spec.address} and port {spec.protocol_port}"
                    )
                seen.add(key)
                old = by_key.get(key)
                member_id = old["external_uuid"] if old else ids.new_id()
                new.append(self._server(batch, spec, member_id, pool.tenant_uuid))
            gone = [f"member:{s['external_uuid']}" for k, s in by_key.items() if k not in seen]
            repo.delete_meta(batch.conn, gone)
            return new

        self._list_write(caller, "pool", pool_id, "servers", change)

    # --- health monitors --------------------------------------------------------------------------

    def _hm_body(self, spec: schemas.HealthMonitor, name: str) -> dict[str, Any]:
        if spec.type not in HM_TYPE_IN:
            raise unsupported(f"health monitor type {spec.type}")
        if spec.timeout > spec.delay:
            raise InvalidInput("Invalid input: The timeout must be less than or equal to the delay")
        delay = max(1, spec.delay)
        timeout = max(1, min(spec.timeout, delay - 1)) if delay > 1 else 1
        body: dict[str, Any] = {
            "name": name,
            "type": HM_TYPE_IN[spec.type],
            "send_interval": delay,
            "receive_timeout": timeout,
            "successful_checks": spec.max_retries,
            "failed_checks": spec.max_retries_down,
        }
        http_fields = (
            spec.http_method,
            spec.url_path,
            spec.expected_codes,
            spec.http_version,
            spec.domain_name,
        )
        if spec.type in ("HTTP", "HTTPS"):
            method = spec.http_method or "GET"
            if method not in ("GET", "HEAD", "POST", "OPTIONS"):
                raise unsupported(f"http_method {method}")
            version = spec.http_version or 1.0
            if spec.domain_name and version != 1.1:
                raise InvalidInput("Invalid input: domain_name requires http_version 1.1")
            monitor: dict[str, Any] = {
                "http_request": f"{method} {spec.url_path or '/'} HTTP/{version:.1f}",
                "http_response_code": _code_classes(spec.expected_codes or "200"),
                "http_response_codes": spec.expected_codes or "200",
            }
            if spec.domain_name:
                monitor["http_request_host"] = spec.domain_name
            body["http_monitor" if spec.type == "HTTP" else "https_monitor"] = monitor
        elif any(f is not None for f in http_fields):
            raise InvalidInput(
                f"Invalid input: HTTP attributes are not valid on a {spec.type} health monitor"
            )
        return body

    def _create_hm(self, batch: Batch, snap: Snapshot, spec: schemas.HealthMonitor, pool_uuid: str) -> str:
        tenant = batch.caller.tenant_uuid
        self._quota(batch, snap, tenant, "healthmonitor")
        pool = batch.load("pool", pool_uuid)
        recorded = repo.get_meta(batch.conn, pool_uuid)
        if pool.data.get("health_monitor_refs") or (recorded and recorded.data.get("disabled_healthmonitor")):
            raise Conflict(f"Pool {ids.of(pool_uuid)} already has a health monitor")
        hm_id = ids.new_id()
        hm_uuid = f"healthmonitor-{hm_id}"
        name = self._native_name(batch, "healthmonitor", tenant, spec.name, hm_id, hm_uuid)
        batch.create("healthmonitor", self._hm_body(spec, name), uuid=hm_uuid)
        self._meta(
            batch,
            hm_uuid,
            "healthmonitor",
            tenant,
            None,
            {
                "name": spec.name,
                "tags": spec.tags,
                "delay": spec.delay,
                "timeout": spec.timeout,
                "expected_codes": spec.expected_codes,
                "admin_state_up": spec.admin_state_up,
            },
        )
        if spec.admin_state_up:
            batch.replace(
                "pool",
                pool_uuid,
                {**pool.data, "health_monitor_refs": [refs.canonical("healthmonitor", hm_uuid)]},
            )
        else:
            self._meta(batch, pool_uuid, "pool", tenant, None, {"disabled_healthmonitor": hm_uuid})
        return hm_uuid

    def create_hm(self, caller: Caller, body: Any) -> dict[str, Any]:
        spec = parse(schemas.HealthMonitor, body, "healthmonitor")
        if spec.pool_id is None:
            raise InvalidInput("Invalid input for field/attribute pool_id: Mandatory field missing.")

        def work(batch: Batch, snap: Snapshot, pool: StoredObject, _lb_uuid: str | None) -> str:
            return self._create_hm(batch, snap, spec, pool.uuid)

        created = self._on(caller, "pool", spec.pool_id, work) or ""
        return self.show(caller, "healthmonitor", ids.of(created))

    def update_hm(self, caller: Caller, hm_id: str, body: Any) -> dict[str, Any]:
        changes = schemas.updates(body, "healthmonitor")

        def work(batch: Batch, snap: Snapshot, hm: StoredObject, lb_uuid: str | None) -> None:
            current = render.healthmonitor(hm, snap, "", "")
            merged = {k: current[k] for k in schemas.UPDATABLE["healthmonitor"] if k in current}
            merged["type"] = current["type"]
            merged.update(changes)
            spec = schemas.validated(schemas.HealthMonitor, merged, "healthmonitor")
            name = (
                self._native_name(batch, "healthmonitor", hm.tenant_uuid, spec.name, hm_id, hm.uuid)
                if ("name" in changes)
                else hm.name
            )
            batch.replace("healthmonitor", hm.uuid, self._hm_body(spec, name))
            self._meta(
                batch,
                hm.uuid,
                "healthmonitor",
                hm.tenant_uuid,
                None,
                {
                    "delay": spec.delay,
                    "timeout": spec.timeout,
                    "expected_codes": spec.expected_codes,
                    "admin_state_up": spec.admin_state_up,
                    **{k: changes[k] for k in ("name", "tags") if k in changes},
                },
            )
            if "admin_state_up" in changes:
                for pool in snap.pools_of_hm(hm.uuid):
                    fresh = batch.load("pool", pool.uuid)
                    wanted = [refs.canonical("healthmonitor", hm.uuid)] if spec.admin_state_up else []
                    batch.replace("pool", pool.uuid, {**fresh.data, "health_monitor_refs": wanted})
                    self._meta(
                        batch,
                        pool.uuid,
                        "pool",
                        pool.tenant_uuid,
                        None,
                        {"disabled_healthmonitor": None if spec.admin_state_up else hm.uuid},
                    )

        self._on(caller, "healthmonitor", hm_id, work)
        return self.show(caller, "healthmonitor", hm_id)

    def delete_hm(self, caller: Caller, hm_id: str) -> None:
        def work(batch: Batch, snap: Snapshot, hm: StoredObject, lb_uuid: str | None) -> None:
            for pool in snap.pools_of_hm(hm.uuid):
                fresh = batch.load("pool", pool.uuid)
                kept = [r for r in fresh.data.get("health_monitor_refs", []) if refs.uuid_of(r) != hm.uuid]
                batch.replace("pool", pool.uuid, {**fresh.data, "health_monitor_refs": kept})
                self._meta(batch, pool.uuid, "pool", pool.tenant_uuid, None, {"disabled_healthmonitor": None})
            batch.delete("healthmonitor", hm.uuid)
            repo.delete_meta(batch.conn, [hm.uuid])

        self._on(caller, "healthmonitor", hm_id, work)

    # --- L7 policies and rules --------------------------------------------------------------------

    def _position(self, snap: Snapshot, policy: StoredObject) -> int:
        _, vs = snap.lb_of_policy(policy)
        if vs is None:
            return 1
        return 1 + [refs.uuid_of(r) for r in vs.data.get("http_policies", [])].index(policy.uuid)

    def show_policy(self, snap: Snapshot, policy: StoredObject, position: int) -> dict[str, Any]:
        lb_uuid, vs = snap.lb_of_policy(policy)
        provisioning = self._lb_status(snap, lb_uuid)
        operating = self.status.listener_operating(vs, snap) if vs is not None else "OFFLINE"
        if not policy.data.get("enabled", True):
            operating = "OFFLINE"
        return render.l7policy(
            policy, snap, provisioning, "ONLINE" if operating == "DEGRADED" else operating, position
        )

    def _rule(self, batch: Batch, spec: schemas.L7Rule, rule_id: str, tenant: str) -> dict[str, Any]:
        self._meta(
            batch,
            f"l7rule:{rule_id}",
            "l7rule",
            tenant,
            None,
            {"tags": spec.tags, "created_at": _now(), "updated_at": _now()},
        )
        return {
            "match_id": rule_id,
            "type": spec.type,
            "compare_type": spec.compare_type,
            "key": spec.key,
            "value": spec.value,
            "invert": spec.invert,
            "enabled": spec.admin_state_up,
        }

    def _policy_body(
        self,
        batch: Batch,
        snap: Snapshot,
        spec: schemas.L7Policy,
        name: str,
        pool_uuid: str | None,
        matches: list[dict[str, Any]],
    ) -> dict[str, Any]:
        code = spec.redirect_http_code
        if spec.action == "REDIRECT_TO_POOL" and pool_uuid is None:
            raise InvalidInput("Invalid input: REDIRECT_TO_POOL needs redirect_pool_id")
        if spec.action == "REDIRECT_TO_URL" and not spec.redirect_url:
            raise InvalidInput("Invalid input: REDIRECT_TO_URL needs redirect_url")
        if spec.action == "REDIRECT_PREFIX" and not spec.redirect_prefix:
            raise InvalidInput("Invalid input: REDIRECT_PREFIX needs redirect_prefix")
        body: dict[str, Any] = {
            "name": name,
            "description": spec.description,
            "enabled": spec.admin_state_up,
            "action": spec.action,
            "redirect_pool_ref": refs.canonical("pool", pool_uuid)
            if spec.action == "REDIRECT_TO_POOL" and pool_uuid
            else None,
            "redirect_url": spec.redirect_url if spec.action == "REDIRECT_TO_URL" else None,
            "redirect_prefix": spec.redirect_prefix if spec.action == "REDIRECT_PREFIX" else None,
            "matches": matches,
        }
        if spec.action in ("REDIRECT_TO_URL", "REDIRECT_PREFIX"):
            body["redirect_http_code"] = code or 302
        return body

    def _create_policy(
        self,
        batch: Batch,
        snap: Snapshot,
        spec: schemas.L7Policy,
        vs_uuid: str,
        lb_uuid: str,
        named: dict[str, str],
    ) -> str:
        tenant = batch.caller.tenant_uuid
        self._quota(batch, snap, tenant, "l7policy")
        pool_uuid = self._pool_for(
            batch, snap, lb_uuid, named, "redirect", spec.redirect_pool_id, spec.redirect_pool, None
        )
        policy_id = ids.new_id()
        policy_uuid = f"httppolicyset-{policy_id}"
        self._quota(batch, snap, tenant, "l7rule", len(spec.rules or []))
        matches = [self._rule(batch, r, ids.new_id(), tenant) for r in spec.rules or []]
        name = self._native_name(batch, "httppolicyset", tenant, spec.name, policy_id, policy_uuid)
        batch.create(
            "httppolicyset", self._policy_body(batch, snap, spec, name, pool_uuid, matches), uuid=policy_uuid
        )
        self._meta(batch, policy_uuid, "l7policy", tenant, lb_uuid, {"name": spec.name, "tags": spec.tags})
        return policy_uuid

    def create_policy(self, caller: Caller, body: Any) -> dict[str, Any]:
        spec = parse(schemas.L7Policy, body, "l7policy")
        if spec.listener_id is None:
            raise InvalidInput("Invalid input for field/attribute listener_id: Mandatory field missing.")
        if spec.redirect_pool is not None:
            raise InvalidInput("Invalid input: redirect_pool is only accepted in a single-call create")

        def work(batch: Batch, snap: Snapshot, vs: StoredObject, lb_uuid: str | None) -> str:
            policy_uuid = self._create_policy(batch, snap, spec, vs.uuid, lb_uuid or "", {})
            order = list(vs.data.get("http_policies", []))
            where = len(order) if spec.position is None else min(spec.position - 1, len(order))
            order.insert(where, refs.canonical("httppolicyset", policy_uuid))
            batch.replace("virtualservice", vs.uuid, {**vs.data, "http_policies": order})
            return policy_uuid

        created = self._on(caller, "listener", spec.listener_id, work) or ""
        return self.show(caller, "l7policy", ids.of(created))

    def update_policy(self, caller: Caller, policy_id: str, body: Any) -> dict[str, Any]:
        changes = schemas.updates(body, "l7policy")

        def work(batch: Batch, snap: Snapshot, policy: StoredObject, lb_uuid: str | None) -> None:
            current = self.show_policy(snap, policy, self._position(snap, policy))
            merged = {k: current[k] for k in schemas.UPDATABLE["l7policy"] if k in current}
            if changes.get("action") and changes["action"] != current["action"]:
                for field in ("redirect_pool_id", "redirect_url", "redirect_prefix", "redirect_http_code"):
                    merged.pop(field, None)
            merged.update(changes)
            merged = {k: v for k, v in merged.items() if v is not None}
            spec = schemas.validated(schemas.L7Policy, merged, "l7policy")
            pool_uuid = (
                self._find(snap, "pool", spec.redirect_pool_id).uuid if spec.redirect_pool_id else None
            )
            name = (
                self._native_name(
                    batch, "httppolicyset", policy.tenant_uuid, spec.name, policy_id, policy.uuid
                )
                if "name" in changes
                else policy.name
            )
            batch.replace(
                "httppolicyset",
                policy.uuid,
                self._policy_body(batch, snap, spec, name, pool_uuid, policy.data.get("matches", [])),
            )
            self._meta(
                batch,
                policy.uuid,
                "l7policy",
                policy.tenant_uuid,
                None,
                {k: changes[k] for k in ("name", "tags") if k in changes},
            )
            if "position" in changes:
                _, vs = snap.lb_of_policy(policy)
                if vs is not None:
                    order = [r for r in vs.data.get("http_policies", []) if refs.uuid_of(r) != policy.uuid]
                    order.insert(
                        min(int(changes["position"]) - 1, len(order)),
                        refs.canonical("httppolicyset", policy.uuid),
                    )
                    fresh = batch.load("virtualservice", vs.uuid)
                    batch.replace("virtualservice", vs.uuid, {**fresh.data, "http_policies": order})

        self._on(caller, "l7policy", policy_id, work)
        return self.show(caller, "l7policy", policy_id)

    def delete_policy(self, caller: Caller, policy_id: str) -> None:
        def work(batch: Batch, snap: Snapshot, policy: StoredObject, lb_uuid: str | None) -> None:
            _, vs = snap.lb_of_policy(policy)
            if vs is not None:
                order = [r for r in vs.data.get("http_policies", []) if refs.uuid_of(r) != policy.uuid]
                batch.replace("virtualservice", vs.uuid, {**vs.data, "http_policies": order})
            batch.delete("httppolicyset", policy.uuid)
            repo.delete_meta(
                batch.conn,
                [policy.uuid] + [f"l7rule:{m['match_id']}" for m in policy.data.get("matches", [])],
            )

        self._on(caller, "l7policy", policy_id, work)

    def list_rules(self, caller: Caller, policy_id: str) -> list[dict[str, Any]]:
        snap = self.snapshot(caller)
        policy = self._find(snap, "l7policy", policy_id)
        view = self.show_policy(snap, policy, self._position(snap, policy))
        return [
            render.l7rule(policy, m, snap, view["provisioning_status"], view["operating_status"])
            for m in policy.data.get("matches", [])
        ]

    def show_rule(self, caller: Caller, policy_id: str, rule_id: str) -> dict[str, Any]:
        for rule in self.list_rules(caller, policy_id):
            if rule["id"] == rule_id:
                return rule
        raise NotFound(f"L7 Rule {rule_id} could not be found.")

    def create_rule(self, caller: Caller, policy_id: str, body: Any) -> dict[str, Any]:
        spec = parse(schemas.L7Rule, body, "rule")
        rule_id = ids.new_id()

        def change(batch: Batch, policy: StoredObject, matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
            snap = Snapshot.read(batch.conn, batch.caller, self.objects.admin_tenant_uuid)
            self._quota(batch, snap, policy.tenant_uuid, "l7rule")
            return [*matches, self._rule(batch, spec, rule_id, policy.tenant_uuid)]

        self._list_write(caller, "l7policy", policy_id, "matches", change)
        return self.show_rule(caller, policy_id, rule_id)

    def update_rule(self, caller: Caller, policy_id: str, rule_id: str, body: Any) -> dict[str, Any]:
        changes = schemas.updates(body, "l7rule")

        def change(batch: Batch, policy: StoredObject, matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for index, m in enumerate(matches):
                if m["match_id"] == rule_id:
                    current = {
                        "type": m["type"],
                        "compare_type": m["compare_type"],
                        "key": m.get("key"),
                        "value": m["value"],
                        "invert": m.get("invert", False),
                        "admin_state_up": m.get("enabled", True),
                    }
                    spec = schemas.validated(schemas.L7Rule, {**current, **changes}, "rule")
                    matches[index] = self._rule(batch, spec, rule_id, policy.tenant_uuid)
                    return matches
            raise NotFound(f"L7 Rule {rule_id} could not be found.")

        self._list_write(caller, "l7policy", policy_id, "matches", change)
        return self.show_rule(caller, policy_id, rule_id)

    def delete_rule(self, caller: Caller, policy_id: str, rule_id: str) -> None:
        def change(batch: Batch, _policy: StoredObject, matches: Items) -> Items:
            return _without(batch, matches, "match_id", rule_id, "L7 Rule", "l7rule")

        self._list_write(caller, "l7policy", policy_id, "matches", change)


def _without(batch: Batch, items: Items, key: str, item_id: str, label: str, meta_kind: str) -> Items:
    kept = [i for i in items if i[key] != item_id]
    if len(kept) == len(items):
        raise NotFound(f"{label} {item_id} could not be found.")
    repo.delete_meta(batch.conn, [f"{meta_kind}:{item_id}"])
    return kept


def _label(kind: str) -> str:
    return ids.LABEL[kind]


def _same(given: str, derived: str) -> bool:
    return given.replace("-", "").lower() == derived.replace("-", "").lower()


def _tail_uuid(ref: str) -> str:
    """A certificate reference: a native ref or uuid, or a Barbican-style URL ending in the id."""
    tail = ref.rstrip("/").rsplit("/", 1)[-1]
    tail = tail.removeprefix("sslkeyandcertificate-")
    if not ids.is_uuid(tail):
        raise InvalidInput(f"Invalid input: {ref!r} is not a certificate reference this provider knows")
    return tail


def _code_classes(expected: str) -> list[str]:
    """Octavia's expected codes ("200", "200-204", "200,202") as the native status classes they span."""
    codes: list[int] = []
    for part in expected.split(","):
        low, _, high = part.partition("-")
        codes += [int(low), int(high or low)]
    return sorted(
        {f"HTTP_{c // 100}XX" for c in codes}
        | {f"HTTP_{d}XX" for d in range(min(codes) // 100, max(codes) // 100 + 1)}
    )
