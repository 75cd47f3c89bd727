"""Octavia's side resources over Fulcrum: the provider, flavors and flavor profiles (SE groups),
quotas, amphorae (a read-only view of service engines), and a read-only Networking-API view of the
VIP network of each cloud.

Flavors, flavor profiles and quotas have no native object: they live in the `octavia_meta` table
(`flavor:<id>`, `flavorprofile:<id>`, `quota:<tenant uuid>`), where the Octavia service reads them
when a load balancer is created.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from fulcrum.controller.services import refs
from fulcrum.controller.services.dataplane import DataPlane
from fulcrum.controller.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from fulcrum.controller.services.objects import ObjectService
from fulcrum.controller.services.octavia import ids, render, schemas
from fulcrum.controller.services.octavia.service import QUOTA_KINDS, parse
from fulcrum.controller.services.rbac import Caller
from fulcrum.controller.store import repo
from fulcrum.controller.store.repo import MetaRow, StoredObject
from fulcrum.model.enums import CloudType, HaMode

PROVIDER_DESCRIPTION = "Fulcrum: load balancers as virtual services on Fulcrum service engines"
FLAVOR_CAPABILITIES = [
    {
        "name": "se_group",
        "description": "name or uuid of the Fulcrum SE group the load balancer's listeners are placed on",
    },
]
CAPABILITY_NAMES = {c["name"] for c in FLAVOR_CAPABILITIES}
FORBIDDEN = "Policy does not allow this request to be performed."
# Octavia's old spellings of two quota names, shown next to the current ones.
QUOTA_ALIASES = {"load_balancer": "loadbalancer", "health_monitor": "healthmonitor"}
UNLIMITED = -1


def _usec() -> int:
    return int(datetime.datetime.now(tz=datetime.UTC).timestamp() * 1e6)


def _neutron_stamp(usec: int) -> str:
    return render.stamp(usec) + "Z"


class OctaviaExtras:
    def __init__(self, objects: ObjectService, dataplane: DataPlane, dataplane_running: bool) -> None:
        self.objects = objects
        self.dataplane = dataplane
        self.running = dataplane_running

    # --- providers --------------------------------------------------------------------------------

    @staticmethod
    def providers() -> list[dict[str, Any]]:
        return [{"name": render.PROVIDER, "description": PROVIDER_DESCRIPTION}]

    @staticmethod
    def _provider(name: str) -> None:
        if name != render.PROVIDER:
            raise NotFound(f"Provider '{name}' was not found.")

    def flavor_capabilities(self, provider: str) -> list[dict[str, Any]]:
        self._provider(provider)
        return [dict(c) for c in FLAVOR_CAPABILITIES]

    def availability_zone_capabilities(self, provider: str) -> list[dict[str, Any]]:
        self._provider(provider)
        return []

    # --- flavor profiles --------------------------------------------------------------------------

    @staticmethod
    def _key_id(kind: str, label: str, oid: str) -> str:
        if not ids.is_uuid(oid):
            raise NotFound(f"{label} {oid} could not be found.")
        return f"{kind}:{uuidlib.UUID(oid)}"

    def _row(self, conn: Connection, kind: str, label: str, oid: str) -> MetaRow:
        row = repo.get_meta(conn, self._key_id(kind, label, oid))
        if row is None or row.kind != kind:
            raise NotFound(f"{label} {oid} could not be found.")
        return row

    @staticmethod
    def _rows(conn: Connection, kind: str) -> list[MetaRow]:
        return sorted(repo.metas_of_kind(conn, kind), key=lambda r: (r.created, r.key))

    @staticmethod
    def _profile_view(row: MetaRow) -> dict[str, Any]:
        return {
            "id": row.key.split(":", 1)[1],
            "name": row.data.get("name", ""),
            "provider_name": row.data.get("provider_name", render.PROVIDER),
            "flavor_data": row.data.get("flavor_data", "{}"),
        }

    def _check_profile(self, conn: Connection, spec: schemas.FlavorProfile) -> None:
        if spec.provider_name != render.PROVIDER:
            raise InvalidInput(f"Provider '{spec.provider_name}' is not enabled.")
        try:
            data = json.loads(spec.flavor_data)
        except ValueError:
            raise InvalidInput(
                f"Invalid input for field/attribute flavor_data. Value: '{spec.flavor_data}'. "
                "Value should be a JSON object."
            ) from None
        if not isinstance(data, dict):
            raise InvalidInput("Invalid input for field/attribute flavor_data: it must be a JSON object")
        unknown = sorted(set(data) - CAPABILITY_NAMES)
        if unknown:
            raise InvalidInput(
                f"Invalid input for field/attribute flavor_data: provider '{render.PROVIDER}' has no flavor "
                f"capability '{unknown[0]}' (it has: {', '.join(sorted(CAPABILITY_NAMES))})"
            )
        if "se_group" in data:
            group = data["se_group"]
            if not isinstance(group, str) or not group or self._se_group(conn, group) is None:
                raise InvalidInput(
                    f"Invalid input for field/attribute flavor_data: se_group {group!r} is not an SE group"
                )

    def _se_group(self, conn: Connection, wanted: str) -> StoredObject | None:
        admin = self.objects.admin_tenant_uuid
        tail = wanted.removeprefix("serviceenginegroup-")
        if ids.is_uuid(tail):
            found = repo.get(conn, f"serviceenginegroup-{uuidlib.UUID(tail)}")
            if found is not None and found.type == "serviceenginegroup":
                return found
        return repo.find_by_name(conn, "serviceenginegroup", wanted, [admin])

    def _profile_users(self, conn: Connection, profile_id: str) -> list[MetaRow]:
        return [
            r for r in repo.metas_of_kind(conn, "flavor") if r.data.get("flavor_profile_id") == profile_id
        ]

    def list_profiles(self) -> list[dict[str, Any]]:
        with self.objects.db.read() as conn:
            return [self._profile_view(r) for r in self._rows(conn, "flavorprofile")]

    def show_profile(self, profile_id: str) -> dict[str, Any]:
        with self.objects.db.read() as conn:
            return self._profile_view(self._row(conn, "flavorprofile", "Flavor profile", profile_id))

    def create_profile(self, body: Any) -> dict[str, Any]:
        spec = parse(schemas.FlavorProfile, body, "flavorprofile")
        profile_id = ids.new_id()
        now = _usec()
        with self.objects.db.write() as conn:
            self._check_profile(conn, spec)
            row = MetaRow(
                f"flavorprofile:{profile_id}", "flavorprofile", self.objects.admin_tenant_uuid, None,
                spec.model_dump(), now, now,
            )  # fmt: skip
            repo.put_meta(conn, row)
        return self._profile_view(row)

    def update_profile(self, profile_id: str, body: Any) -> dict[str, Any]:
        changes = schemas.updates(body, "flavorprofile")
        with self.objects.db.write() as conn:
            row = self._row(conn, "flavorprofile", "Flavor profile", profile_id)
            spec = schemas.validated(schemas.FlavorProfile, {**row.data, **changes}, "flavorprofile")
            self._check_profile(conn, spec)
            changed = spec.model_dump()
            behaviour = ("provider_name", "flavor_data")
            in_use = self._profile_users(conn, self._profile_view(row)["id"])
            if in_use and any(changed[k] != row.data.get(k) for k in behaviour):
                raise Conflict(f"Flavor profile {profile_id} is in use and cannot be modified.")
            row = MetaRow(row.key, row.kind, row.tenant_uuid, None, changed, row.created, _usec())
            repo.put_meta(conn, row)
        return self._profile_view(row)

    def delete_profile(self, profile_id: str) -> None:
        with self.objects.db.write() as conn:
            row = self._row(conn, "flavorprofile", "Flavor profile", profile_id)
            if self._profile_users(conn, self._profile_view(row)["id"]):
                raise Conflict(f"Flavor profile {profile_id} is in use and cannot be modified.")
            repo.delete_meta(conn, [row.key])

    # --- flavors ----------------------------------------------------------------------------------

    @staticmethod
    def _flavor_view(row: MetaRow) -> dict[str, Any]:
        return {
            "id": row.key.split(":", 1)[1],
            "name": row.data.get("name", ""),
            "description": row.data.get("description", ""),
            "flavor_profile_id": row.data.get("flavor_profile_id"),
            "enabled": bool(row.data.get("enabled", True)),
        }

    def _check_flavor(self, conn: Connection, spec: schemas.Flavor, key: str) -> None:
        if (
            not ids.is_uuid(spec.flavor_profile_id)
            or repo.get_meta(conn, f"flavorprofile:{uuidlib.UUID(spec.flavor_profile_id)}") is None
        ):
            raise InvalidInput(
                f"Invalid input for field/attribute flavor_profile_id. Value: '{spec.flavor_profile_id}'. "
                "Flavor profile could not be found."
            )
        if any(r.data.get("name") == spec.name and r.key != key for r in repo.metas_of_kind(conn, "flavor")):
            raise Conflict(f"A flavor of {spec.name} already exists.")

    def list_flavors(self) -> list[dict[str, Any]]:
        with self.objects.db.read() as conn:
            return [self._flavor_view(r) for r in self._rows(conn, "flavor")]

    def show_flavor(self, flavor_id: str) -> dict[str, Any]:
        with self.objects.db.read() as conn:
            return self._flavor_view(self._row(conn, "flavor", "Flavor", flavor_id))

    def create_flavor(self, body: Any) -> dict[str, Any]:
        spec = parse(schemas.Flavor, body, "flavor")
        flavor_id = ids.new_id()
        key = f"flavor:{flavor_id}"
        data = {**spec.model_dump(), "flavor_profile_id": str(uuidlib.UUID(spec.flavor_profile_id))}
        now = _usec()
        with self.objects.db.write() as conn:
            self._check_flavor(conn, spec, key)
            row = MetaRow(key, "flavor", self.objects.admin_tenant_uuid, None, data, now, now)
            repo.put_meta(conn, row)
        return self._flavor_view(row)

    def update_flavor(self, flavor_id: str, body: Any) -> dict[str, Any]:
        changes = schemas.updates(body, "flavor")
        with self.objects.db.write() as conn:
            row = self._row(conn, "flavor", "Flavor", flavor_id)
            spec = schemas.validated(schemas.Flavor, {**row.data, **changes}, "flavor")
            self._check_flavor(conn, spec, row.key)
            row = MetaRow(row.key, row.kind, row.tenant_uuid, None, spec.model_dump(), row.created, _usec())
            repo.put_meta(conn, row)
        return self._flavor_view(row)

    def delete_flavor(self, flavor_id: str) -> None:
        with self.objects.db.write() as conn:
            row = self._row(conn, "flavor", "Flavor", flavor_id)
            wanted = self._flavor_view(row)["id"].replace("-", "")
            users = [r for r in repo.metas_of_kind(conn, "loadbalancer") if r.data.get("flavor_id")]
            if any(str(r.data["flavor_id"]).replace("-", "").lower() == wanted for r in users):
                raise Conflict(f"Flavor {flavor_id} is in use and cannot be modified.")
            repo.delete_meta(conn, [row.key])

    # --- quotas -----------------------------------------------------------------------------------

    @staticmethod
    def _project(project_id: str) -> tuple[str, str]:
        """(tenant uuid, project id as shown) of a project id from a path."""
        if not project_id or len(project_id) > 64:
            raise NotFound(f"Project {project_id} could not be found.")
        tenant = ids.tenant_of(project_id.replace("-", "") if ids.is_uuid(project_id) else project_id)
        shown = ids.project_of(tenant) if ids.is_uuid(project_id) else project_id
        return tenant, shown

    @staticmethod
    def _quota_view(limits: dict[str, Any], project_id: str | None) -> dict[str, Any]:
        values = {k: limits[k] if isinstance(limits.get(k), int) else UNLIMITED for k in QUOTA_KINDS}
        view: dict[str, Any] = {}
        for kind in QUOTA_KINDS:
            view[kind] = values[kind]
            view.update({alias: values[kind] for alias, real in QUOTA_ALIASES.items() if real == kind})
        if project_id is not None:
            view["project_id"] = project_id
        return view

    def quota_defaults(self) -> dict[str, Any]:
        return self._quota_view({}, None)

    def list_quotas(self, caller: Caller) -> list[dict[str, Any]]:
        with self.objects.db.read() as conn:
            if caller.is_system_admin:
                rows = self._rows(conn, "quota")
                return [
                    self._quota_view(r.data, r.data.get("project_id") or ids.project_of(r.tenant_uuid))
                    for r in rows
                ]
            row = repo.get_meta(conn, f"quota:{caller.tenant_uuid}")
        return [self._quota_view(row.data if row else {}, ids.project_of(caller.tenant_uuid))]

    def show_quota(self, caller: Caller, project_id: str) -> dict[str, Any]:
        tenant, shown = self._project(project_id)
        if not caller.is_system_admin and tenant != caller.tenant_uuid:
            raise Forbidden(FORBIDDEN)
        with self.objects.db.read() as conn:
            row = repo.get_meta(conn, f"quota:{tenant}")
        return self._quota_view(row.data if row else {}, shown)

    def put_quota(self, project_id: str, body: Any) -> dict[str, Any]:
        spec = parse(schemas.Quota, body, "quota")
        given = spec.model_dump(include=spec.model_fields_set)
        for alias, real in QUOTA_ALIASES.items():
            if alias in given:
                if real in given and given[real] != given[alias]:
                    raise InvalidInput(f"Invalid input: {alias} and {real} give different quotas")
                given[real] = given.pop(alias)
        tenant, shown = self._project(project_id)
        key = f"quota:{tenant}"
        now = _usec()
        with self.objects.db.write() as conn:
            old = repo.get_meta(conn, key)
            limits = {k: v for k, v in (old.data if old else {}).items() if k in QUOTA_KINDS}
            for kind, value in given.items():
                if value is None:  # Octavia: null puts the quota back to its default
                    limits.pop(kind, None)
                else:
                    limits[kind] = value
            row = MetaRow(key, "quota", tenant, None, {**limits, "project_id": shown},
                          old.created if old else now, now)  # fmt: skip
            repo.put_meta(conn, row)
        return self._quota_view(limits, shown)

    def delete_quota(self, project_id: str) -> None:
        tenant, _ = self._project(project_id)
        with self.objects.db.write() as conn:
            repo.delete_meta(conn, [f"quota:{tenant}"])

    # --- amphorae ---------------------------------------------------------------------------------

    def _amphora_world(
        self, conn: Connection
    ) -> tuple[list[StoredObject], dict[str, StoredObject], list[Any]]:
        ses = sorted(repo.all_of_type(conn, "serviceengine"), key=lambda o: (o.created, o.uuid))
        related = {o.uuid: o for t in ("virtualservice", "vsvip") for o in repo.all_of_type(conn, t)}
        return ses, related, repo.all_placements(conn)

    def _amphora(
        self, se: StoredObject, objects: dict[str, StoredObject], placements: list[Any]
    ) -> dict[str, Any]:
        roles_of_vs: dict[str, list[str]] = {}
        for vs_uuid, _, role_text in placements:
            roles_of_vs.setdefault(vs_uuid, []).append(role_text.partition(":")[0])
        hosted = [
            (objects[vs_uuid], role_text.partition(":")[0])
            for vs_uuid, se_uuid, role_text in placements
            if se_uuid == se.uuid and vs_uuid in objects
        ]
        hosted.sort(key=lambda h: (h[1] == "draining", h[0].created, h[0].uuid))
        lb: StoredObject | None = None
        role = "STANDALONE"
        for vs, placed_as in hosted:
            vip = objects.get(refs.uuid_of(vs.data["vsvip_ref"])) if vs.data.get("vsvip_ref") else None
            if vip is None:
                continue
            lb = vip
            peers = [r for r in roles_of_vs.get(vs.uuid, []) if r != "draining"]
            if placed_as == "primary":
                role = "MASTER" if len(peers) > 1 else "STANDALONE"
            elif placed_as in ("secondary", "standby"):
                role = "BACKUP"
            break
        label = self.dataplane.se_runtime_label(se.uuid)
        status = "ERROR" if label == "DOWN" else ("ALLOCATED" if hosted else "READY")
        data_address = self.dataplane.se_runtime(se)["data_address"] if self.running else None
        vips = [v["ip_address"] for v in (lb.data.get("vip", []) if lb else []) if v.get("ip_address")]
        return {
            "id": ids.of(se.uuid),
            "loadbalancer_id": ids.of(lb.uuid) if lb else None,
            "compute_id": se.uuid,
            "lb_network_ip": se.data.get("mgmt_ip"),
            "vrrp_ip": data_address,
            "ha_ip": vips[0] if vips else None,
            "vrrp_port_id": None,
            "ha_port_id": None,
            "cert_expiration": None,
            "cert_busy": False,
            "role": role,
            "status": status,
            "vrrp_interface": None,
            "vrrp_id": None,
            "vrrp_priority": None,
            "cached_zone": None,
            "created_at": render.stamp(se.created),
            "updated_at": render.stamp(se.last_modified),
            "image_id": None,
            "compute_flavor": None,
        }

    def list_amphorae(self) -> list[dict[str, Any]]:
        with self.objects.db.read() as conn:
            ses, objects, placements = self._amphora_world(conn)
        return [self._amphora(se, objects, placements) for se in ses]

    def _se(self, conn: Connection, amphora_id: str) -> StoredObject:
        found = (
            repo.get(conn, f"serviceengine-{uuidlib.UUID(amphora_id)}") if ids.is_uuid(amphora_id) else None
        )
        if found is None or found.type != "serviceengine":
            raise NotFound(f"Amphora {amphora_id} could not be found.")
        return found

    def show_amphora(self, amphora_id: str) -> dict[str, Any]:
        with self.objects.db.read() as conn:
            se = self._se(conn, amphora_id)
            _, objects, placements = self._amphora_world(conn)
        return self._amphora(se, objects, placements)

    def amphora_stats(self, amphora_id: str) -> list[dict[str, Any]]:
        """Per listener on the SE, that SE's own counters (a scaled-out listener also runs elsewhere)."""
        with self.objects.db.read() as conn:
            se = self._se(conn, amphora_id)
            vss = {o.uuid: o for o in repo.all_of_type(conn, "virtualservice")}
            placed = sorted({vs for vs, se_uuid, _ in repo.all_placements(conn) if se_uuid == se.uuid})
        counters: dict[str, dict[str, int]] = {}
        if self.running:
            for entry in self.dataplane.se_runtime(se)["virtualservices"]:
                counters[refs.uuid_of(entry["vs_ref"])] = entry["counters"] or {}
        stats = []
        for vs_uuid in placed:
            vs = vss.get(vs_uuid)
            if vs is None:
                continue
            mine = counters.get(vs_uuid, {})
            lb = refs.uuid_of(vs.data["vsvip_ref"]) if vs.data.get("vsvip_ref") else None
            stats.append({
                "id": ids.of(se.uuid),
                "listener_id": ids.of(vs.uuid),
                "loadbalancer_id": ids.of(lb) if lb else None,
                "active_connections": mine.get("current_sessions", 0),
                "total_connections": mine.get("total_sessions", 0),
                "bytes_in": mine.get("bytes_in", 0),
                "bytes_out": mine.get("bytes_out", 0),
                "request_errors": mine.get("http_responses_5xx", 0),
            })  # fmt: skip
        return stats

    def failover_amphora(self, amphora_id: str, mark: Callable[[str], None]) -> None:
        """Move every virtual service off the SE (in a legacy active/standby group its pair switches
        over instead); `mark` is told each load balancer that changes."""
        with self.objects.db.read() as conn:
            se = self._se(conn, amphora_id)
            hosted = sorted({vs for vs, se_uuid, _ in repo.all_placements(conn) if se_uuid == se.uuid})
        if not self.running:
            raise Conflict(f"Amphora {amphora_id} cannot be failed over: the data plane is not running")
        for vs_uuid in hosted:
            # Read afresh each time: a switchover moves every virtual service of the pair at once.
            with self.objects.db.read() as conn:
                vs = repo.get(conn, vs_uuid)
                roles = [
                    r.partition(":")[0]
                    for v, s, r in repo.all_placements(conn)
                    if (v, s) == (vs_uuid, se.uuid)
                ]
                group_ref = vs.data.get("se_group_ref") if vs is not None else None
                group = repo.get(conn, refs.uuid_of(group_ref)) if group_ref else None
            if vs is None or not roles or roles[0] == "draining":
                continue
            if group is not None and group.data.get("ha_mode") == HaMode.HA_MODE_LEGACY_ACTIVE_STANDBY.value:
                if roles[0] != "primary":
                    continue
                self.dataplane.switchover(vs)
            else:
                self.dataplane.migrate(vs, refs.canonical("serviceengine", se.uuid), None, True)
            if vs.data.get("vsvip_ref"):
                mark(refs.uuid_of(vs.data["vsvip_ref"]))

    # --- networking-API view ----------------------------------------------------------------------

    def _clouds(self, conn: Connection) -> list[StoredObject]:
        clouds = [
            c
            for c in repo.all_of_type(conn, "cloud")
            if c.data.get("vtype") != CloudType.CLOUD_OPENSTACK.value
        ]
        return sorted(clouds, key=lambda c: (c.created, c.uuid))

    @staticmethod
    def _vip_network(cloud: StoredObject) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        config = cloud.data.get("local_configuration") or cloud.data.get("netns_configuration") or {}
        return ipaddress.ip_network(config.get("vip_network", "127.100.0.0/16"))

    def _owner(self) -> str:
        return ids.project_of(self.objects.admin_tenant_uuid)

    def _network(self, cloud: StoredObject) -> dict[str, Any]:
        project = self._owner()
        return {
            "id": ids.network_id(cloud.uuid),
            "name": f"{cloud.name}-vip",
            "description": f"VIP network of Fulcrum cloud {cloud.name}",
            "status": "ACTIVE",
            "admin_state_up": True,
            "subnets": [ids.subnet_id(cloud.uuid)],
            "tenant_id": project,
            "project_id": project,
            "shared": True,
            "router:external": False,
            "mtu": 1500,
            "provider:network_type": "local",
            "provider:physical_network": None,
            "provider:segmentation_id": None,
            "availability_zone_hints": [],
            "availability_zones": [],
            "tags": [],
            "revision_number": 0,
            "created_at": _neutron_stamp(cloud.created),
            "updated_at": _neutron_stamp(cloud.last_modified),
        }

    def _subnet(self, cloud: StoredObject) -> dict[str, Any]:
        project = self._owner()
        network = self._vip_network(cloud)
        if network.num_addresses <= 2:
            start, end = network[0], network[-1]
        elif network.version == 4:
            start, end = network[1], network[-2]
        else:
            start, end = network[1], network[-1]
        return {
            "id": ids.subnet_id(cloud.uuid),
            "name": f"{cloud.name}-vip-subnet",
            "description": f"VIP subnet of Fulcrum cloud {cloud.name}",
            "network_id": ids.network_id(cloud.uuid),
            "cidr": str(network),
            "ip_version": network.version,
            "gateway_ip": None,
            "enable_dhcp": False,
            "allocation_pools": [{"start": str(start), "end": str(end)}],
            "dns_nameservers": [],
            "host_routes": [],
            "ipv6_address_mode": None,
            "ipv6_ra_mode": None,
            "subnetpool_id": None,
            "segment_id": None,
            "service_types": [],
            "tenant_id": project,
            "project_id": project,
            "shared": True,
            "tags": [],
            "revision_number": 0,
            "created_at": _neutron_stamp(cloud.created),
            "updated_at": _neutron_stamp(cloud.last_modified),
        }

    def networks(self) -> list[dict[str, Any]]:
        with self.objects.db.read() as conn:
            return [self._network(c) for c in self._clouds(conn)]

    def subnets(self) -> list[dict[str, Any]]:
        with self.objects.db.read() as conn:
            return [self._subnet(c) for c in self._clouds(conn)]

    def network(self, network_id: str) -> dict[str, Any]:
        for found in self.networks():
            if found["id"] == network_id.lower():
                return found
        raise NotFound(f"Network {network_id} could not be found.")

    def subnet(self, subnet_id: str) -> dict[str, Any]:
        for found in self.subnets():
            if found["id"] == subnet_id.lower():
                return found
        raise NotFound(f"Subnet {subnet_id} could not be found.")
