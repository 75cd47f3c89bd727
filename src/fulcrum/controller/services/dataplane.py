"""The data-plane reconciler: observe -> plan -> apply, for Service Engines and the VSs they host.

One pass reads the store and the SEs' reported state, asks the pure placement module where every
virtual service belongs, creates or removes SEs through the cloud connector, records placements,
publishes each SE's desired config, and derives runtime status and events. Passes are idempotent:
a crash half-way is repaired by the next one. A pass runs after every committed config change and at
least every `tick_s` seconds (for heartbeat timeouts and deprovisioning).
"""

from __future__ import annotations

import logging
import threading
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fulcrum.cloud.base import Bootstrap, CloudConnector, SeObservation, SeSpec, VipAllocation
from fulcrum.controller.services import refs, se_config
from fulcrum.controller.services.clock import Clock, usec
from fulcrum.controller.services.events import EventLog
from fulcrum.controller.services.objects import Change, ObjectService
from fulcrum.controller.services.se_registry import SeRegistry
from fulcrum.controller.store import repo
from fulcrum.controller.store.repo import StoredObject
from fulcrum.model.enums import PlacementAlgo, TenantScope
from fulcrum.placement.plan import GroupPolicy, SeStatus, SeView, VsDemand, place
from fulcrum.protocol import se as wire

log = logging.getLogger("fulcrum.dataplane")

STARTUP_GRACE_S = 60.0  # an SE that has not heartbeated this long after creation failed to start
CONFIG_TYPES = (
    "cloud",
    "serviceenginegroup",
    "serviceengine",
    "virtualservice",
    "vsvip",
    "pool",
    "healthmonitor",
    "applicationprofile",
    "applicationpersistenceprofile",
    "sslkeyandcertificate",
)


@dataclass(frozen=True)
class DataPlaneSettings:
    controller_url: str
    tick_s: float = 0.5


@dataclass
class VsStatus:
    oper_status: str
    reason: str = ""
    se_uuids: tuple[str, ...] = ()


@dataclass
class _World:
    """One consistent read of everything a pass needs."""

    objects: dict[str, StoredObject]
    placements: list[tuple[str, str, str]]

    def of_type(self, type_name: str) -> list[StoredObject]:
        return sorted((o for o in self.objects.values() if o.type == type_name), key=lambda o: o.uuid)

    def get(self, uuid: str) -> StoredObject | None:
        return self.objects.get(uuid)

    def ref(self, value: str | None) -> StoredObject | None:
        return self.objects.get(refs.uuid_of(value)) if value else None


@dataclass
class _Memory:
    """What the reconciler remembers between passes (for transitions and delays)."""

    se_status: dict[str, str] = field(default_factory=dict)
    created_at: dict[str, float] = field(default_factory=dict)
    idle_since: dict[str, float] = field(default_factory=dict)
    vs_status: dict[str, VsStatus] = field(default_factory=dict)
    server_health: dict[tuple[str, str], str] = field(default_factory=dict)
    pool_up: dict[str, bool] = field(default_factory=dict)
    reported_failure: dict[str, int] = field(default_factory=dict)


class DataPlane:
    def __init__(
        self,
        objects: ObjectService,
        registry: SeRegistry,
        events: EventLog,
        connectors: Callable[[StoredObject], CloudConnector | None],
        clock: Clock,
        settings: DataPlaneSettings,
    ) -> None:
        self._objects = objects
        self._registry = registry
        self._events = events
        self._connector_for = connectors
        self._clock = clock
        self._settings = settings
        self._memory = _Memory()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pass_lock = threading.Lock()
        objects.listeners.append(self._on_change)

    # --- life cycle -------------------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        if change.type in CONFIG_TYPES:
            self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dataplane-reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._settings.tick_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.reconcile()
            except Exception:
                log.exception("reconcile pass failed; the next pass retries")

    # --- one pass ---------------------------------------------------------------------------------

    def _read(self) -> _World:
        with self._objects.db.read() as conn:
            found = {o.uuid: o for t in CONFIG_TYPES for o in repo.all_of_type(conn, t)}
            return _World(found, repo.all_placements(conn))

    def reconcile(self) -> None:
        with self._pass_lock:
            world = self._read()
            now = self._clock.now()
            runtime = self._registry.snapshot()
            se_status = self._observe_ses(world, runtime, now)
            specs, unsupported = self._vs_specs(world)
            plan_input = self._plan_input(world, se_status, specs)
            plan = place(*plan_input)
            created = self._create_ses(world, plan.new_ses)
            assignments = {
                vs: created.get(se, se) for vs, se in plan.assignments.items() if created.get(se, se)
            }
            with self._objects.db.write() as conn:
                repo.set_placements(
                    conn, [(vs, se, "primary") for vs, se in assignments.items()], usec(self._clock)
                )
            self._plumb_vips(world, assignments, specs)
            self._remove_gone(world, se_status)
            self._publish(world, assignments, specs, created)
            self._deprovision(world, plan.idle_ses, se_status, now)
            reasons = {**unsupported, **plan.unplaced}
            self._derive_status(world, assignments, reasons, self._registry.snapshot())

    def _observe_ses(self, world: _World, runtime: dict[str, Any], now: float) -> dict[str, SeStatus]:
        status: dict[str, SeStatus] = {}
        for se in world.of_type("serviceengine"):
            group = world.ref(se.data["se_group_ref"])
            cloud = world.ref(se.data["cloud_ref"])
            connector = self._connector_for(cloud) if cloud else None
            observed = connector.observe_se(se.uuid) if connector else SeObservation.GONE
            state = runtime.get(se.uuid)
            created = self._memory.created_at.setdefault(se.uuid, now)
            deadline = (
                (group.data["heartbeat_interval"] * group.data["heartbeat_miss_limit"]) if group else 3.0
            )
            if observed == SeObservation.GONE:
                current = SeStatus.DOWN
                reason = "the SE's processes are gone"
            elif state is not None and state.last_heartbeat is not None:
                fresh = now - state.last_heartbeat <= deadline
                current = SeStatus.UP if fresh else SeStatus.PENDING
                reason = "" if fresh else f"no heartbeat for {now - state.last_heartbeat:.1f} s"
            elif now - created > STARTUP_GRACE_S:
                current, reason = SeStatus.DOWN, "the SE never registered"
            else:
                current, reason = SeStatus.PENDING, "starting"
            self._se_transition(se, current, reason)
            status[se.uuid] = current
        return status

    def _se_transition(self, se: StoredObject, current: SeStatus, reason: str) -> None:
        before = self._memory.se_status.get(se.uuid)
        label = "UP" if current == SeStatus.UP else ("DOWN" if current == SeStatus.DOWN else "PENDING")
        if reason.startswith("no heartbeat"):
            label = "HEARTBEAT_FAILURE"
        self._memory.se_status[se.uuid] = label
        if before == label:
            return
        if label == "UP":
            self._event("SE_UP", se, {})
        elif label == "HEARTBEAT_FAILURE" and before == "UP":
            self._event("SE_HEARTBEAT_FAILURE", se, {"reason": reason})
        elif label == "DOWN" and before is not None:
            self._event("SE_DOWN", se, {"reason": reason})

    def _vs_specs(self, world: _World) -> tuple[dict[str, wire.VsSpec], dict[str, str]]:
        specs: dict[str, wire.VsSpec] = {}
        unsupported: dict[str, str] = {}
        for vs in world.of_type("virtualservice"):
            try:
                specs[vs.uuid] = se_config.vs_spec(vs, world.get, self._objects.box_secrets)
            except se_config.Unsupported as exc:
                unsupported[vs.uuid] = str(exc)
        return specs, unsupported

    def _plan_input(
        self, world: _World, status: dict[str, SeStatus], specs: dict[str, wire.VsSpec]
    ) -> tuple[list[GroupPolicy], list[SeView], list[VsDemand]]:
        groups = [
            GroupPolicy(
                uuid=g.uuid,
                algo=PlacementAlgo(g.data["algo"]),
                max_vs_per_se=g.data["max_vs_per_se"],
                max_se=g.data["max_se"],
                per_app=g.data["per_app"],
                tenant_scope=TenantScope(g.data["tenant_scope"]),
            )
            for g in world.of_type("serviceenginegroup")
        ]
        hosted: dict[str, list[str]] = {}
        for vs_uuid, se_uuid, _role in world.placements:
            hosted.setdefault(se_uuid, []).append(vs_uuid)
        ses = [
            SeView(
                uuid=se.uuid,
                group_uuid=refs.uuid_of(se.data["se_group_ref"]),
                status=status[se.uuid],
                vs_uuids=tuple(sorted(hosted.get(se.uuid, []))),
                tenant_uuid=se.data.get("tenant_uuid"),
            )
            for se in world.of_type("serviceengine")
        ]
        demands = [
            VsDemand(vs.uuid, refs.uuid_of(vs.data["se_group_ref"]), vs.tenant_uuid)
            for vs in world.of_type("virtualservice")
            if vs.uuid in specs and vs.data["enabled"]
        ]
        return groups, ses, demands

    def _create_ses(self, world: _World, new_ses: list[Any]) -> dict[str, str]:
        created: dict[str, str] = {}
        for new in new_ses:
            group = world.get(new.group_uuid)
            if group is None:
                continue
            cloud = world.ref(group.data["cloud_ref"])
            connector = self._connector_for(cloud) if cloud else None
            se_uuid = f"serviceengine-{uuidlib.uuid4()}"
            name = f"{group.data['se_name_prefix']}-se-{se_uuid.split('-')[1]}"
            body = {"name": name, "se_group_ref": group.uuid, "cloud_ref": group.data["cloud_ref"]}
            if connector is None:
                self._event(
                    "CREATE_SE_FAIL",
                    group,
                    {"reason": f"no connector for cloud {cloud.name if cloud else '?'}"},
                )
                continue
            self._objects.create_internal("serviceengine", body, uuid=se_uuid)
            token = self._registry.issue_bootstrap(se_uuid)
            spec = SeSpec(
                se_uuid=se_uuid,
                name=name,
                se_group_uuid=group.uuid,
                tenant_context=new.tenant_uuid,
                mgmt_network=None,
                data_networks=(),
                vcpus=group.data["vcpus_per_se"],
                memory_mb=group.data["memory_per_se"],
                bootstrap=Bootstrap(self._settings.controller_url, se_uuid, token),
            )
            try:
                connector.create_se(spec)
            except Exception as exc:  # any cloud failure: report, clean up, retry on a later pass
                log.warning("creating SE %s failed: %s", name, exc)
                obj = self._objects_get(se_uuid)
                if obj is not None:
                    self._event("CREATE_SE_FAIL", obj, {"reason": str(exc)})
                self._objects.delete_internal("serviceengine", se_uuid)
                continue
            self._memory.created_at[se_uuid] = self._clock.now()
            created[new.key] = se_uuid
        return created

    def _plumb_vips(self, world: _World, assignments: dict[str, str], specs: dict[str, wire.VsSpec]) -> None:
        """Attach each newly placed VS's VIPs to its SE (Neutron allowed-address-pairs on OpenStack)."""
        before = {(vs, se) for vs, se, _role in world.placements}
        for vs_uuid, se_uuid in assignments.items():
            if (vs_uuid, se_uuid) in before:
                continue
            vs = world.get(vs_uuid)
            cloud = world.ref(vs.data.get("cloud_ref")) if vs else None
            connector = self._connector_for(cloud) if cloud else None
            if connector is None:
                continue
            for address in specs[vs_uuid].vips:
                connector.attach_vip(VipAllocation(address=address), se_uuid)

    def _objects_get(self, uuid: str) -> StoredObject | None:
        with self._objects.db.read() as conn:
            return repo.get(conn, uuid)

    def _remove_gone(self, world: _World, status: dict[str, SeStatus]) -> None:
        for se in world.of_type("serviceengine"):
            if status.get(se.uuid) == SeStatus.DOWN:
                self._delete_se(world, se)

    def _delete_se(self, world: _World, se: StoredObject) -> None:
        cloud = world.ref(se.data["cloud_ref"])
        connector = self._connector_for(cloud) if cloud else None
        if connector is not None:
            connector.delete_se(se.uuid)
        self._objects.delete_internal("serviceengine", se.uuid)
        self._registry.forget(se.uuid)
        for memo in (self._memory.se_status, self._memory.created_at, self._memory.idle_since):
            memo.pop(se.uuid, None)

    def _publish(
        self,
        world: _World,
        assignments: dict[str, str],
        specs: dict[str, wire.VsSpec],
        created: dict[str, str],
    ) -> None:
        by_se: dict[str, list[wire.VsSpec]] = {}
        for vs_uuid, se_uuid in assignments.items():
            by_se.setdefault(se_uuid, []).append(specs[vs_uuid])
        for se in world.of_type("serviceengine"):
            group = world.ref(se.data["se_group_ref"])
            self._publish_one(se.uuid, group, by_se.get(se.uuid, []))
        for se_uuid in created.values():
            se = self._objects_get(se_uuid)
            if se is not None:
                self._publish_one(se_uuid, world.ref(se.data["se_group_ref"]), by_se.get(se_uuid, []))

    def _publish_one(self, se_uuid: str, group: StoredObject | None, vss: list[wire.VsSpec]) -> None:
        config = wire.SeConfig(
            se_uuid=se_uuid,
            version=0,
            heartbeat_interval_s=group.data["heartbeat_interval"] if group else 1.0,
            virtualservices=tuple(sorted(vss, key=lambda v: v.uuid)),
        )
        self._registry.publish(se_uuid, config)

    def _deprovision(self, world: _World, idle: list[str], status: dict[str, SeStatus], now: float) -> None:
        idle_set = set(idle)
        for se_uuid in list(self._memory.idle_since):
            if se_uuid not in idle_set:
                del self._memory.idle_since[se_uuid]
        for se_uuid in idle:
            since = self._memory.idle_since.setdefault(se_uuid, now)
            se = world.get(se_uuid)
            group = world.ref(se.data["se_group_ref"]) if se else None
            delay = group.data["se_deprovision_delay"] if group else 0.0
            if se is not None and now - since >= delay and status.get(se_uuid) != SeStatus.PENDING:
                self._delete_se(world, se)

    # --- status -----------------------------------------------------------------------------------

    def _derive_status(
        self, world: _World, assignments: dict[str, str], reasons: dict[str, str], runtime: dict[str, Any]
    ) -> None:
        health: dict[tuple[str, str], wire.ServerState] = {}
        for state in runtime.values():
            if state.heartbeat is not None:
                for server in state.heartbeat.servers:
                    health[(server.pool_uuid, server.server_id)] = server
        self._server_events(world, health)
        for se_uuid, state in runtime.items():
            if state.failed_version > self._memory.reported_failure.get(se_uuid, 0):
                self._memory.reported_failure[se_uuid] = state.failed_version
                se = world.get(se_uuid)
                if se is not None:
                    self._event(
                        "CONFIG_APPLY_FAILED",
                        se,
                        {"version": state.failed_version, "error": state.last_error},
                    )
        for vs in world.of_type("virtualservice"):
            se_uuid = assignments.get(vs.uuid)
            status = self._vs_status(world, vs, se_uuid, reasons.get(vs.uuid), runtime, health)
            before = self._memory.vs_status.get(vs.uuid)
            self._memory.vs_status[vs.uuid] = status
            if before is None or before.oper_status != status.oper_status:
                if status.oper_status == "OPER_UP":
                    self._event("VS_UP", vs, {})
                elif status.oper_status == "OPER_DOWN" and before is not None:
                    self._event("VS_DOWN", vs, {"reason": status.reason})
        for gone in set(self._memory.vs_status) - {vs.uuid for vs in world.of_type("virtualservice")}:
            del self._memory.vs_status[gone]

    def _vs_status(
        self,
        world: _World,
        vs: StoredObject,
        se_uuid: str | None,
        reason: str | None,
        runtime: dict[str, Any],
        health: dict[tuple[str, str], wire.ServerState],
    ) -> VsStatus:
        if not vs.data["enabled"]:
            return VsStatus("OPER_DISABLED", "the virtual service is disabled")
        if se_uuid is None:
            return VsStatus("OPER_RESOURCES", reason or "not placed yet")
        state = runtime.get(se_uuid)
        if state is None or state.desired is None or state.applied_version < state.desired.version:
            why = f"SE {se_uuid} has not applied the config yet"
            if state is not None and state.last_error:
                why = f"SE failed to apply the config: {state.last_error}"
            return VsStatus("OPER_INITIALIZING", why, (se_uuid,))
        if self._memory.se_status.get(se_uuid) != "UP":
            return VsStatus("OPER_DOWN", "its SE is not up", (se_uuid,))
        pool = world.ref(vs.data.get("pool_ref"))
        if pool is None:
            return VsStatus("OPER_DOWN", "the virtual service has no pool", (se_uuid,))
        if not self._memory.pool_up.get(pool.uuid, False):
            return VsStatus("OPER_DOWN", f"no server of pool {pool.name!r} is up", (se_uuid,))
        return VsStatus("OPER_UP", "", (se_uuid,))

    def _server_events(self, world: _World, health: dict[tuple[str, str], wire.ServerState]) -> None:
        for pool in world.of_type("pool"):
            any_up = False
            seen = False
            for server in pool.data["servers"]:
                sid = se_config.server_id(server["ip"], server["port"] or pool.data["default_server_port"])
                state = health.get((pool.uuid, sid))
                if state is None:
                    continue
                seen = True
                current = state.health.value
                any_up = any_up or current == "UP"
                before = self._memory.server_health.get((pool.uuid, sid))
                self._memory.server_health[(pool.uuid, sid)] = current
                if (
                    before != current
                    and current in ("UP", "DOWN")
                    and (before is not None or current == "DOWN")
                ):
                    self._event(f"SERVER_{current}", pool, {"server": sid, "reason": state.reason})
            if not seen:
                continue
            before_up = self._memory.pool_up.get(pool.uuid)
            self._memory.pool_up[pool.uuid] = any_up
            if before_up is not None and before_up != any_up:
                self._event("POOL_UP" if any_up else "POOL_DOWN", pool, {})

    def _event(self, event_id: str, obj: StoredObject, details: dict[str, Any]) -> None:
        with self._objects.db.write() as conn:
            self._events.record(
                conn, event_id, tenant_uuid=obj.tenant_uuid, user_name="system", obj_type=obj.type,
                obj_uuid=obj.uuid, obj_name=obj.name, details=details,
            )  # fmt: skip

    # --- runtime views ----------------------------------------------------------------------------

    def vs_runtime(self, vs_uuid: str) -> dict[str, Any]:
        status = self._memory.vs_status.get(vs_uuid) or VsStatus("OPER_INITIALIZING", "not reconciled yet")
        return {
            "oper_status": status.oper_status,
            "reason": status.reason,
            "service_engines": [
                {"se_ref": refs.canonical("serviceengine", se), "role": "primary"} for se in status.se_uuids
            ],
        }

    def se_runtime(self, se: StoredObject) -> dict[str, Any]:
        state = self._registry.snapshot().get(se.uuid)
        with self._objects.db.read() as conn:
            hosted = [vs for vs, s, _r in repo.all_placements(conn) if s == se.uuid]
            world_cloud = repo.get(conn, refs.uuid_of(se.data["cloud_ref"]))
        label = self._memory.se_status.get(se.uuid, "PENDING")
        oper = {"UP": "OPER_UP", "DOWN": "OPER_DOWN", "HEARTBEAT_FAILURE": "OPER_DOWN"}.get(
            label, "OPER_INITIALIZING"
        )
        beat = state.heartbeat if state else None
        connector = self._connector_for(world_cloud) if world_cloud else None
        details = connector.se_details(se.uuid) if connector else None
        return {
            "oper_status": oper,
            "virtualservices": [
                {"vs_ref": refs.canonical("virtualservice", vs), "role": "primary"} for vs in sorted(hosted)
            ],
            "desired_version": state.desired.version if state and state.desired else 0,
            "applied_version": state.applied_version if state else 0,
            "last_error": state.last_error if state else None,
            "last_heartbeat": state.last_heartbeat if state else None,
            "resources": {
                "cpu_percent": beat.cpu_percent if beat else None,
                "memory_rss_bytes": beat.memory_rss_bytes if beat else None,
            },
            "cloud": details.facts if details else {},
        }

    def pool_runtime(self, pool: StoredObject) -> dict[str, Any]:
        reports = {
            entry.server_id: entry
            for state in self._registry.snapshot().values()
            for entry in (state.heartbeat.servers if state.heartbeat else ())
            if entry.pool_uuid == pool.uuid
        }
        servers = []
        for server in pool.data["servers"]:
            sid = se_config.server_id(server["ip"], server["port"] or pool.data["default_server_port"])
            reported = reports.get(sid)
            servers.append(
                {
                    "ip": server["ip"],
                    "port": server["port"] or pool.data["default_server_port"],
                    "oper_status": reported.health.value if reported else "UNKNOWN",
                    "reason": reported.reason if reported else "no SE reports this server yet",
                    "current_sessions": reported.current_sessions if reported else 0,
                }
            )
        up = any(s["oper_status"] == "UP" for s in servers)
        return {"oper_status": "OPER_UP" if up else "OPER_DOWN", "servers": servers}
