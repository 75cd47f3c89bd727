"""The data-plane reconciler and health manager: observe -> plan -> apply, for SEs and the VSs they host.

One pass reads the store and the SEs' reported state, marks SEs down (connector says gone, or
`heartbeat_miss_limit` heartbeats missed), asks the pure placement module where every virtual service
belongs (by its group's HA mode), creates SEs through the cloud connector, fences and removes dead
ones, records placements, publishes each SE's desired config (roles, scale-out peers, VIP handover),
finishes drains, and derives runtime status and events. Passes are idempotent: a crash half-way is
repaired by the next one. A pass runs after every committed config change, every SE acknowledgement,
and at least every `tick_s` seconds.

The circuit breaker: when more than `breaker_share` of the SEs that were up go silent in the same
moment (and at least `breaker_min_ses` of them), the controller is probably cut off from them rather
than they all died; no failover starts (an event says so) and healing resumes when heartbeats return.
SEs the connector reports gone are replaced regardless.
"""

from __future__ import annotations

import logging
import threading
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fulcrum.cloud.base import Bootstrap, CloudConnector, SeObservation, SeSpec, VipAllocation
from fulcrum.controller.services import refs, scaleout, se_config
from fulcrum.controller.services.clock import Clock, usec
from fulcrum.controller.services.errors import Conflict, InvalidInput
from fulcrum.controller.services.events import EventLog
from fulcrum.controller.services.objects import Change, ObjectService
from fulcrum.controller.services.se_registry import SeRegistry, SeRuntime
from fulcrum.controller.store import repo
from fulcrum.controller.store.repo import StoredObject, VsScale
from fulcrum.model.enums import HaMode, PlacementAlgo, TenantScope
from fulcrum.placement.plan import (
    GroupPolicy,
    Placement,
    Plan,
    Role,
    SeStatus,
    SeView,
    VsDemand,
    place,
)
from fulcrum.protocol import se as wire

log = logging.getLogger("fulcrum.dataplane")

STARTUP_GRACE_S = 60.0  # an SE that has not heartbeated this long after creation failed to start
QUIET_AFTER_BEATS = 1.5  # an SE whose last heartbeat is older than this many intervals missed one
DRAIN_MIN_S = 0.5  # a drain lasts at least this long, so the primary's `drain` has taken effect
CONFIG_TYPES = (
    "cloud",
    "serviceenginegroup",
    "serviceengine",
    "virtualservice",
    "vsvip",
    "pool",
    "httppolicyset",
    "healthmonitor",
    "applicationprofile",
    "applicationpersistenceprofile",
    "sslkeyandcertificate",
)


@dataclass(frozen=True)
class DataPlaneSettings:
    controller_url: str
    tick_s: float = 0.25
    drain_timeout_s: float = 60.0  # scale-in and migration wait at most this long for connections
    breaker_share: float = 0.5
    breaker_min_ses: int = 2
    analytics: wire.AnalyticsSettings = field(default_factory=wire.AnalyticsSettings)


@dataclass
class VsStatus:
    oper_status: str
    reason: str = ""


@dataclass
class _World:
    """One consistent read of everything a pass needs."""

    objects: dict[str, StoredObject]
    placements: list[Placement]
    scale: dict[str, VsScale]

    def of_type(self, type_name: str) -> list[StoredObject]:
        return sorted((o for o in self.objects.values() if o.type == type_name), key=lambda o: o.uuid)

    def get(self, uuid: str) -> StoredObject | None:
        return self.objects.get(uuid)

    def ref(self, value: str | None) -> StoredObject | None:
        return self.objects.get(refs.uuid_of(value)) if value else None

    def group_of(self, obj: StoredObject) -> StoredObject | None:
        return self.ref(obj.data.get("se_group_ref"))


@dataclass
class _Op:
    """A scale-out or switchover in progress, to report when it has taken effect."""

    kind: str  # VS_SCALEOUT_COMPLETE or VS_SWITCHOVER
    details: dict[str, Any]
    target_ses: int = 0
    new_primary: str | None = None


@dataclass
class _Memory:
    """What the reconciler remembers between passes (for transitions, delays and the handover)."""

    se_status: dict[str, str] = field(default_factory=dict)
    created_at: dict[str, float] = field(default_factory=dict)
    idle_since: dict[str, float] = field(default_factory=dict)
    vs_status: dict[str, VsStatus] = field(default_factory=dict)
    server_health: dict[tuple[str, str], str] = field(default_factory=dict)
    pool_up: dict[str, bool] = field(default_factory=dict)
    reported_failure: dict[str, int] = field(default_factory=dict)
    placements: dict[str, list[Placement]] = field(default_factory=dict)
    applied: dict[str, wire.SeConfig] = field(default_factory=dict)  # last config each SE applied
    drain_started: dict[tuple[str, str], float] = field(default_factory=dict)
    ha_ok: dict[str, bool] = field(default_factory=dict)
    ops: dict[str, _Op] = field(default_factory=dict)
    breaker_open: bool = False
    peer_health: dict[str, dict[str, str]] = field(default_factory=dict)  # vs -> se -> as its primary sees it


def encode_role(p: Placement) -> str:
    return f"{p.role.value}:{p.note}" if p.note else p.role.value


def decode_role(vs_uuid: str, se_uuid: str, text: str) -> Placement:
    role, _, note = text.partition(":")
    return Placement(vs_uuid, se_uuid, Role(role), note)


def in_sync(state: SeRuntime | None) -> bool:
    return state is not None and state.desired is not None and state.applied_version >= state.desired.version


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
        # Pass counters: a change made while pass N ran is on the SEs once pass N+1 has completed.
        self.passes_started = 0
        self.passes_completed = 0
        self.on_placements: list[Callable[[], None]] = []  # called after placements change
        objects.listeners.append(self._on_change)
        registry.on_ack.append(self.poke)

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
            placements = [decode_role(*row) for row in repo.all_placements(conn)]
            return _World(found, placements, repo.all_vs_scale(conn))

    def reconcile(self) -> None:
        with self._pass_lock:
            self.passes_started += 1
            number = self.passes_started
            world = self._read()
            now = self._clock.now()
            runtime = self._registry.snapshot()
            self._remember_applied(runtime)
            se_status = self._observe_ses(world, runtime, now)
            specs, unsupported = self._vs_specs(world)
            plan = place(*self._plan_input(world, se_status, specs))
            created = self._create_ses(world, plan.new_ses)
            placements = self._resolve(plan, created)
            self._finish_drains(world, placements, runtime, now)
            self._store(world, placements, specs, created, now)
            self._plumb_vips(world, placements, specs)
            self._remove_down(world, se_status)
            self._publish(world, placements, specs, se_status)
            self._deprovision(world, plan.idle_ses, se_status, now)
            self._memory.placements = placements
            reasons = {**unsupported, **plan.unplaced}
            runtime = self._registry.snapshot()
            self._derive_status(world, placements, reasons, runtime)
            self._ha_events(world, placements, plan, se_status, runtime)
            self.passes_completed = number

    def _remember_applied(self, runtime: dict[str, SeRuntime]) -> None:
        for se_uuid, state in runtime.items():
            if in_sync(state):
                assert state.desired is not None
                self._memory.applied[se_uuid] = state.desired

    # --- SE health --------------------------------------------------------------------------------

    def _observe_ses(self, world: _World, runtime: dict[str, SeRuntime], now: float) -> dict[str, SeStatus]:
        status: dict[str, SeStatus] = {}
        reasons: dict[str, str] = {}
        silent: list[StoredObject] = []
        silent_uuids: set[str] = set()
        quiet = 0
        for se in world.of_type("serviceengine"):
            group = world.group_of(se)
            cloud = world.ref(se.data["cloud_ref"])
            connector = self._connector_for(cloud) if cloud else None
            observed = connector.observe_se(se.uuid) if connector else SeObservation.GONE
            state = runtime.get(se.uuid)
            created = self._memory.created_at.setdefault(se.uuid, now)
            interval = group.data["heartbeat_interval"] if group else 1.0
            misses = group.data["heartbeat_miss_limit"] if group else 3
            if observed == SeObservation.GONE:
                status[se.uuid], reasons[se.uuid] = SeStatus.DOWN, "the SE's processes are gone"
            elif state is not None and state.last_heartbeat is not None:
                age = now - state.last_heartbeat
                # Quiet: missed at least one heartbeat. SEs that go silent together cross the miss
                # limit up to one interval apart; counting the quiet ones sees them together.
                quiet += age > interval * QUIET_AFTER_BEATS
                if age <= interval * misses:
                    status[se.uuid] = SeStatus.UP
                else:
                    silent.append(se)
                    silent_uuids.add(se.uuid)
                    reasons[se.uuid] = f"missed {int(age / interval)} heartbeats ({age:.1f} s)"
            elif now - created > STARTUP_GRACE_S:
                status[se.uuid], reasons[se.uuid] = SeStatus.DOWN, "the SE never registered"
            else:
                status[se.uuid], reasons[se.uuid] = SeStatus.PENDING, "starting"
        established = len(silent) + sum(1 for s in status.values() if s == SeStatus.UP)
        breaker = (
            bool(silent)
            and quiet >= self._settings.breaker_min_ses
            and quiet > self._settings.breaker_share * established
        )
        self._breaker_transition(world, breaker, quiet, established)
        for se in silent:
            status[se.uuid] = SeStatus.PENDING if breaker else SeStatus.DOWN
        for se in world.of_type("serviceengine"):
            self._se_transition(se, status[se.uuid], reasons.get(se.uuid, ""), se.uuid in silent_uuids)
        return status

    def _breaker_transition(self, world: _World, opened: bool, silent: int, established: int) -> None:
        if opened == self._memory.breaker_open:
            return
        self._memory.breaker_open = opened
        anchor = next(iter(world.of_type("cloud")), None)
        if anchor is None:
            return
        if opened:
            self._event(
                "HA_CIRCUIT_BREAKER_OPEN",
                anchor,
                {
                    "silent_ses": silent,
                    "ses": established,
                    "reason": "most SEs went silent at once: the controller is probably cut off from "
                    "them; no failover until heartbeats return",
                },
            )
        else:
            self._event("HA_CIRCUIT_BREAKER_CLOSED", anchor, {"silent_ses": silent, "ses": established})

    def _se_transition(self, se: StoredObject, current: SeStatus, reason: str, silent: bool) -> None:
        before = self._memory.se_status.get(se.uuid)
        label = current.value
        if silent and current != SeStatus.DOWN:
            label = "HEARTBEAT_FAILURE"
        self._memory.se_status[se.uuid] = label
        if before == label:
            return
        if label == "UP":
            self._event("SE_UP", se, {})
            return
        if silent and before == "UP":
            self._event("SE_HEARTBEAT_FAILURE", se, {"reason": reason})
        if label == "DOWN" and before is not None:
            self._event("SE_DOWN", se, {"reason": reason})

    # --- planning ---------------------------------------------------------------------------------

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
    ) -> tuple[list[GroupPolicy], list[SeView], list[Placement], list[VsDemand]]:
        groups = [
            GroupPolicy(
                uuid=g.uuid,
                algo=PlacementAlgo(g.data["algo"]),
                max_vs_per_se=g.data["max_vs_per_se"],
                max_se=g.data["max_se"],
                per_app=g.data["per_app"],
                tenant_scope=TenantScope(g.data["tenant_scope"]),
                ha_mode=HaMode(g.data["ha_mode"]),
                buffer_se=g.data["buffer_se"],
                min_scaleout=g.data["min_scaleout_per_vs"] or 1,
                max_scaleout=g.data["max_scaleout_per_vs"],
            )
            for g in world.of_type("serviceenginegroup")
        ]
        ses = [
            SeView(
                uuid=se.uuid,
                group_uuid=refs.uuid_of(se.data["se_group_ref"]),
                status=SeStatus.DOWN if se.data["enable_state"] != "SE_STATE_ENABLED" else status[se.uuid],
                tenant_uuid=se.data.get("tenant_uuid"),
            )
            for se in world.of_type("serviceengine")
        ]
        demands = []
        for vs in world.of_type("virtualservice"):
            if vs.uuid not in specs or not vs.data["enabled"]:
                continue
            scale = world.scale.get(vs.uuid) or VsScale(vs.uuid)
            demands.append(
                VsDemand(
                    vs.uuid, refs.uuid_of(vs.data["se_group_ref"]), vs.tenant_uuid, scale.extra, scale.new_se
                )
            )
        return groups, ses, world.placements, demands

    @staticmethod
    def _resolve(plan: Plan, created: dict[str, str]) -> dict[str, list[Placement]]:
        """The plan's placements, new SEs' keys replaced by uuids (dropped when creation failed)."""
        resolved: dict[str, list[Placement]] = {}
        for vs_uuid, placements in plan.placements.items():
            kept = []
            for p in placements:
                se_uuid = created.get(p.se_uuid, p.se_uuid) if p.se_uuid.startswith("new-") else p.se_uuid
                if not se_uuid.startswith("new-"):
                    kept.append(Placement(vs_uuid, se_uuid, p.role, p.note))
            if kept and not any(p.role == Role.PRIMARY for p in kept):
                first = next((p for p in kept if p.role != Role.DRAINING), None)
                if first is not None:
                    kept = [
                        Placement(vs_uuid, p.se_uuid, Role.PRIMARY, "") if p is first else p for p in kept
                    ]
            if kept:
                resolved[vs_uuid] = kept
        return resolved

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
            obj = self._objects_get(se_uuid)
            if obj is not None:
                world.objects[se_uuid] = obj
        return created

    # --- drains -----------------------------------------------------------------------------------

    def _finish_drains(
        self, world: _World, placements: dict[str, list[Placement]], runtime: dict[str, SeRuntime], now: float
    ) -> None:
        """Remove DRAINING placements whose SE has no connection of the VS left (or the drain timed out)."""
        draining = set()
        for vs_uuid, ps in placements.items():
            primary = next((p.se_uuid for p in ps if p.role == Role.PRIMARY), None)
            for p in [p for p in ps if p.role == Role.DRAINING]:
                key = (vs_uuid, p.se_uuid)
                draining.add(key)
                started = self._memory.drain_started.setdefault(key, now)
                if not self._drained(vs_uuid, p.se_uuid, primary, runtime, now - started):
                    continue
                ps.remove(p)
                del self._memory.drain_started[key]
                vs = world.get(vs_uuid)
                if vs is not None:
                    kind = "VS_MIGRATE_COMPLETE" if p.note == "migrate" else "VS_SCALEIN_COMPLETE"
                    self._event(kind, vs, {"se_uuid": p.se_uuid, "drained_s": round(now - started, 3)})
        for key in set(self._memory.drain_started) - draining:
            del self._memory.drain_started[key]

    def _drained(
        self, vs_uuid: str, se_uuid: str, primary: str | None, runtime: dict[str, SeRuntime], age: float
    ) -> bool:
        if primary is None:
            return False  # nothing else serves the VS: keep the draining SE
        if age >= self._settings.drain_timeout_s:
            return True
        if age < DRAIN_MIN_S or not in_sync(runtime.get(primary)):
            return False
        state = runtime.get(se_uuid)
        if state is None or state.heartbeat is None or state.desired is None:
            return False
        # Only a heartbeat sent after the drain config was applied counts.
        if state.heartbeat.applied_version < state.desired.version:
            return False
        reported = [c for c in state.heartbeat.counters if c.vs_uuid == vs_uuid]
        # No row for the VS is not the same as none left: a beat taken while HAProxy was still loading
        # the drain config would otherwise end the drain with connections in flight.
        return bool(reported) and sum(c.current_sessions for c in reported) == 0

    # --- storing ----------------------------------------------------------------------------------

    def _store(
        self,
        world: _World,
        placements: dict[str, list[Placement]],
        specs: dict[str, wire.VsSpec],
        created: dict[str, str],
        now: float,
    ) -> None:
        new_ses = set(created.values())
        scale = dict(world.scale)
        taken: set[int] = set()
        for vs_uuid, row in scale.items():
            if row.worker_port_offset is not None and vs_uuid in specs:
                taken |= {p + row.worker_port_offset for p in scaleout.listener_ports(specs[vs_uuid])}
        changed: list[VsScale] = []
        for vs_uuid, ps in sorted(placements.items()):
            row = scale.get(vs_uuid) or VsScale(vs_uuid)
            before = (row.new_se, row.worker_port_offset)
            if row.new_se and any(p.se_uuid in new_ses for p in ps):
                row.new_se = False
            if scaleout.is_scaled_out(ps) and vs_uuid in specs:
                ports = scaleout.listener_ports(specs[vs_uuid])
                own = {p + row.worker_port_offset for p in ports} if row.worker_port_offset else set()
                if row.worker_port_offset is None or not scaleout.offset_fits(
                    row.worker_port_offset, ports, taken - own
                ):
                    row.worker_port_offset = scaleout.allocate_offset(ports, taken - own)
                    taken |= {p + row.worker_port_offset for p in ports} if row.worker_port_offset else set()
            if (row.new_se, row.worker_port_offset) != before or vs_uuid not in scale:
                scale[vs_uuid] = row
                changed.append(row)
        gone = [vs for vs in scale if world.get(vs) is None]
        rows = [(p.vs_uuid, p.se_uuid, encode_role(p)) for ps in placements.values() for p in ps]
        before = {(p.vs_uuid, p.se_uuid, encode_role(p)) for p in world.placements}
        if set(rows) != before or changed or gone:  # an idle pass writes nothing (no fsync)
            stamp = usec(self._clock)
            with self._objects.db.write() as conn:
                repo.set_placements(conn, rows, stamp)
                for row in changed:
                    repo.put_vs_scale(conn, row, stamp)
                repo.delete_vs_scale(conn, gone)
            for listener in self.on_placements:
                listener()
        for vs in gone:
            scale.pop(vs, None)
        world.scale = scale

    def _plumb_vips(
        self, world: _World, placements: dict[str, list[Placement]], specs: dict[str, wire.VsSpec]
    ) -> None:
        """Give each VS's VIPs to its (new) primary: Neutron allowed-address-pairs on OpenStack."""
        before = {p.vs_uuid: p.se_uuid for p in world.placements if p.role == Role.PRIMARY}
        for vs_uuid, ps in placements.items():
            primary = next((p.se_uuid for p in ps if p.role == Role.PRIMARY), None)
            if primary is None or before.get(vs_uuid) == primary or vs_uuid not in specs:
                continue
            vs = world.get(vs_uuid)
            cloud = world.ref(vs.data.get("cloud_ref")) if vs else None
            connector = self._connector_for(cloud) if cloud else None
            if connector is None:
                continue
            old = before.get(vs_uuid)
            for address in specs[vs_uuid].vips:
                if old is None:
                    connector.attach_vip(VipAllocation(address=address), primary)
                else:
                    connector.move_vip(VipAllocation(address=address), old, primary)

    def _objects_get(self, uuid: str) -> StoredObject | None:
        with self._objects.db.read() as conn:
            return repo.get(conn, uuid)

    def _remove_down(self, world: _World, status: dict[str, SeStatus]) -> None:
        """Fence and remove failed SEs (the connector stops whatever is left of them)."""
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
        world.objects.pop(se.uuid, None)
        for memo in (self._memory.se_status, self._memory.created_at, self._memory.idle_since):
            memo.pop(se.uuid, None)
        self._memory.applied.pop(se.uuid, None)

    # --- publishing -------------------------------------------------------------------------------

    def _addresses(self, world: _World) -> dict[str, str | None]:
        addresses: dict[str, str | None] = {}
        for se in world.of_type("serviceengine"):
            cloud = world.ref(se.data["cloud_ref"])
            connector = self._connector_for(cloud) if cloud else None
            addresses[se.uuid] = connector.data_address(se.uuid) if connector else None
        return addresses

    def _bound(self) -> dict[str, set[str]]:
        """VS uuid -> SEs whose applied config binds its VIP."""
        bound: dict[str, set[str]] = {}
        for se_uuid, config in self._memory.applied.items():
            for vs in config.virtualservices:
                if vs.role == wire.VsRole.PRIMARY:
                    bound.setdefault(vs.uuid, set()).add(se_uuid)
        return bound

    def _publish(
        self,
        world: _World,
        placements: dict[str, list[Placement]],
        specs: dict[str, wire.VsSpec],
        status: dict[str, SeStatus],
    ) -> None:
        addresses = self._addresses(world)
        bound = self._bound()
        alive = {se for se, s in status.items() if s == SeStatus.UP}
        by_se: dict[str, list[wire.VsSpec]] = {}
        for vs_uuid, ps in placements.items():
            if vs_uuid not in specs:
                continue
            row = world.scale.get(vs_uuid)
            renders = scaleout.vs_renders(
                specs[vs_uuid],
                ps,
                addresses,
                row.worker_port_offset if row else None,
                bound.get(vs_uuid, set()),
                alive,
            )
            for se_uuid, spec in renders.items():
                by_se.setdefault(se_uuid, []).append(spec)
        for se in world.of_type("serviceengine"):
            if status.get(se.uuid) == SeStatus.DOWN:
                continue
            group = world.group_of(se)
            config = wire.SeConfig(
                se_uuid=se.uuid,
                version=0,
                heartbeat_interval_s=group.data["heartbeat_interval"] if group else 1.0,
                virtualservices=tuple(sorted(by_se.get(se.uuid, []), key=lambda v: v.uuid)),
                analytics=self._settings.analytics,
            )
            self._registry.publish(se.uuid, config)

    def _deprovision(self, world: _World, idle: list[str], status: dict[str, SeStatus], now: float) -> None:
        idle_set = set(idle)
        for se_uuid in list(self._memory.idle_since):
            if se_uuid not in idle_set:
                del self._memory.idle_since[se_uuid]
        for se_uuid in idle:
            since = self._memory.idle_since.setdefault(se_uuid, now)
            se = world.get(se_uuid)
            group = world.group_of(se) if se else None
            delay = group.data["se_deprovision_delay"] if group else 0.0
            if se is not None and now - since >= delay and status.get(se_uuid) != SeStatus.PENDING:
                self._delete_se(world, se)

    # --- status -----------------------------------------------------------------------------------

    def _derive_status(
        self,
        world: _World,
        placements: dict[str, list[Placement]],
        reasons: dict[str, str],
        runtime: dict[str, SeRuntime],
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
        bound = self._bound()
        for vs in world.of_type("virtualservice"):
            status = self._vs_status(
                world, vs, placements.get(vs.uuid, []), reasons.get(vs.uuid), runtime, bound
            )
            before = self._memory.vs_status.get(vs.uuid)
            self._memory.vs_status[vs.uuid] = status
            if before is None or before.oper_status != status.oper_status:
                if status.oper_status == "OPER_UP":
                    self._event("VS_UP", vs, {})
                elif (
                    status.oper_status == "OPER_DOWN"
                    and before is not None
                    and before.oper_status == "OPER_UP"
                ):
                    self._event("VS_DOWN", vs, {"reason": status.reason})
        for gone in set(self._memory.vs_status) - {vs.uuid for vs in world.of_type("virtualservice")}:
            del self._memory.vs_status[gone]

    def _vs_status(
        self,
        world: _World,
        vs: StoredObject,
        placements: list[Placement],
        reason: str | None,
        runtime: dict[str, SeRuntime],
        bound: dict[str, set[str]],
    ) -> VsStatus:
        if not vs.data["enabled"]:
            return VsStatus("OPER_DISABLED", "the virtual service is disabled")
        primary = next((p.se_uuid for p in placements if p.role == Role.PRIMARY), None)
        if primary is None:
            return VsStatus("OPER_RESOURCES", reason or "not placed yet")
        serving = {se for se in bound.get(vs.uuid, set()) if self._memory.se_status.get(se) == "UP"}
        if not serving:
            state = runtime.get(primary)
            if not in_sync(state):
                why = f"SE {primary} has not applied the config yet"
                if state is not None and state.last_error:
                    why = f"SE failed to apply the config: {state.last_error}"
                return VsStatus("OPER_INITIALIZING", why)
            return VsStatus("OPER_DOWN", "the SE that owns its VIP is not up")
        pool = world.ref(vs.data.get("pool_ref"))
        if pool is None:
            return VsStatus("OPER_DOWN", "the virtual service has no pool")
        if not self._memory.pool_up.get(pool.uuid, False):
            return VsStatus("OPER_DOWN", f"no server of pool {pool.name!r} is up")
        return VsStatus("OPER_UP", "")

    def _ha_events(
        self,
        world: _World,
        placements: dict[str, list[Placement]],
        plan: Plan,
        status: dict[str, SeStatus],
        runtime: dict[str, SeRuntime],
    ) -> None:
        """VS_SE_HA_COMPROMISED / VS_SE_HA_ACTIVE transitions, and completion of actions in progress.

        An SE counts for a VS when it is up and has applied its config, and, for a secondary of a
        scaled-out VS, when the primary's distributor sees its worker up."""
        self._memory.peer_health = self._peer_health(placements, runtime)
        pending_groups = {
            refs.uuid_of(se.data["se_group_ref"])
            for se in world.of_type("serviceengine")
            if status.get(se.uuid) != SeStatus.UP
        }
        for vs in world.of_type("virtualservice"):
            ps = [p for p in placements.get(vs.uuid, []) if p.role != Role.DRAINING]
            group = world.group_of(vs)
            reason = plan.short.get(vs.uuid, "")
            if not ps:
                reason = reason or "not placed"
            for p in ps:
                if not reason and not self._ready(vs.uuid, p, ps, status, runtime):
                    reason = f"SE {p.se_uuid} is not serving yet"
            if not reason and group is not None and group.uuid in pending_groups:
                reason = "a buffer or replacement SE of its group is being created"
            ok = not reason
            before = self._memory.ha_ok.get(vs.uuid)
            self._memory.ha_ok[vs.uuid] = ok
            if before is True and not ok:
                self._event("VS_SE_HA_COMPROMISED", vs, {"reason": reason})
            elif before is False and ok:
                self._event("VS_SE_HA_ACTIVE", vs, {"ses": len(ps)})
            op = self._memory.ops.get(vs.uuid)
            if op is not None and self._op_done(op, vs.uuid, ps, status, runtime):
                del self._memory.ops[vs.uuid]
                self._event(op.kind, vs, op.details)
        for gone in set(self._memory.ha_ok) - {vs.uuid for vs in world.of_type("virtualservice")}:
            del self._memory.ha_ok[gone]
            self._memory.ops.pop(gone, None)

    @staticmethod
    def _peer_health(
        placements: dict[str, list[Placement]], runtime: dict[str, SeRuntime]
    ) -> dict[str, dict[str, str]]:
        seen: dict[str, dict[str, str]] = {}
        for vs_uuid, ps in placements.items():
            primary = next((p.se_uuid for p in ps if p.role == Role.PRIMARY), None)
            state = runtime.get(primary) if primary else None
            if state is not None and state.heartbeat is not None:
                seen[vs_uuid] = {
                    peer.se_uuid: peer.health.value
                    for peer in state.heartbeat.peers
                    if peer.vs_uuid == vs_uuid
                }
        return seen

    def _ready(
        self,
        vs_uuid: str,
        p: Placement,
        ps: list[Placement],
        status: dict[str, SeStatus],
        runtime: dict[str, SeRuntime],
    ) -> bool:
        if status.get(p.se_uuid) != SeStatus.UP or not in_sync(runtime.get(p.se_uuid)):
            return False
        if p.role == Role.SECONDARY and scaleout.is_scaled_out(ps):
            return self._memory.peer_health.get(vs_uuid, {}).get(p.se_uuid) == "UP"
        return True

    def _op_done(
        self,
        op: _Op,
        vs_uuid: str,
        ps: list[Placement],
        status: dict[str, SeStatus],
        runtime: dict[str, SeRuntime],
    ) -> bool:
        ready = [p for p in ps if self._ready(vs_uuid, p, ps, status, runtime)]
        if op.new_primary is not None:
            primary = next((p.se_uuid for p in ps if p.role == Role.PRIMARY), None)
            return primary == op.new_primary and any(p.se_uuid == primary for p in ready)
        return len(ready) >= op.target_ses

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

    # --- actions ----------------------------------------------------------------------------------

    def _action_context(self, vs: StoredObject) -> tuple[_World, StoredObject, list[Placement]]:
        world = self._read()
        group = world.group_of(vs)
        if group is None:
            raise Conflict("the virtual service's SE group is gone")
        current = sorted(
            (p for p in world.placements if p.vs_uuid == vs.uuid),
            key=lambda p: (p.role != Role.PRIMARY, p.se_uuid),
        )
        if not current:
            raise Conflict("the virtual service is not placed on any SE yet")
        return world, group, current

    def _target_se(self, world: _World, group: StoredObject, vs: StoredObject, ref: str | None) -> str | None:
        if not ref:
            return None
        se = world.get(refs.uuid_of(ref))
        if se is None or se.type != "serviceengine":
            raise InvalidInput(f"no service engine {ref}")
        if refs.uuid_of(se.data["se_group_ref"]) != group.uuid:
            raise InvalidInput(f"SE {se.name!r} is not in the virtual service's SE group")
        if self._memory.se_status.get(se.uuid) != "UP":
            raise Conflict(f"SE {se.name!r} is not up")
        if group.data["tenant_scope"] == TenantScope.SE_GROUP_EXCLUSIVE.value:
            others = {p.vs_uuid for p in world.placements if p.se_uuid == se.uuid}
            if any((o := world.get(v)) is not None and o.tenant_uuid != vs.tenant_uuid for v in others):
                raise Conflict(f"SE {se.name!r} belongs to another tenant (tenant-exclusive SE group)")
        return se.uuid

    def _write_action(self, vs: StoredObject, rows: list[Placement], scale: VsScale) -> None:
        stamp = usec(self._clock)
        with self._objects.db.write() as conn:
            keep = [
                (vs_uuid, se_uuid, role)
                for vs_uuid, se_uuid, role in repo.all_placements(conn)
                if vs_uuid != vs.uuid
            ]
            repo.set_placements(conn, keep + [(p.vs_uuid, p.se_uuid, encode_role(p)) for p in rows], stamp)
            repo.put_vs_scale(conn, scale, stamp)
        self.poke()

    @staticmethod
    def _elastic(group: StoredObject, action: str) -> None:
        if group.data["ha_mode"] == HaMode.HA_MODE_LEGACY_ACTIVE_STANDBY.value:
            raise Conflict(f"{action} is not available in HA_MODE_LEGACY_ACTIVE_STANDBY (use switchover)")

    def scale_out(
        self, vs: StoredObject, to_se_ref: str | None = None, to_new_se: bool = False
    ) -> dict[str, Any]:
        with self._pass_lock:
            world, group, current = self._action_context(vs)
            self._elastic(group, "scale-out")
            active = [p for p in current if p.role != Role.DRAINING]
            if len(active) >= group.data["max_scaleout_per_vs"]:
                raise Conflict(f"the virtual service already runs on max_scaleout_per_vs={len(active)} SEs")
            target = self._target_se(world, group, vs, to_se_ref)
            if target is not None and any(p.se_uuid == target for p in current):
                raise Conflict("the virtual service already runs on that SE")
            scale = world.scale.get(vs.uuid) or VsScale(vs.uuid)
            scale.extra += 1
            scale.new_se = to_new_se and target is None
            rows = list(current)
            if target is not None:
                rows.append(Placement(vs.uuid, target, Role.SECONDARY))
            self._write_action(vs, rows, scale)
            self._memory.ops[vs.uuid] = _Op(
                "VS_SCALEOUT_COMPLETE", {"ses": len(active) + 1}, target_ses=len(active) + 1
            )
            return {"status": "scaling out", "target_se_count": len(active) + 1}

    def scale_in(self, vs: StoredObject, from_se_ref: str | None = None) -> dict[str, Any]:
        with self._pass_lock:
            world, group, current = self._action_context(vs)
            self._elastic(group, "scale-in")
            active = [p for p in current if p.role != Role.DRAINING]
            floor = 2 if group.data["ha_mode"] == HaMode.HA_MODE_SHARED_PAIR.value else 1
            floor = max(floor, group.data["min_scaleout_per_vs"] or 1)
            if len(active) <= floor:
                raise Conflict(f"the virtual service runs on {len(active)} SEs, the minimum of its SE group")
            source = self._source_se(world, active, from_se_ref)
            scale = world.scale.get(vs.uuid) or VsScale(vs.uuid)
            scale.extra = max(0, scale.extra - 1)
            rows = [
                Placement(vs.uuid, p.se_uuid, Role.DRAINING, "scalein") if p.se_uuid == source else p
                for p in current
            ]
            self._write_action(vs, rows, scale)
            return {"status": "draining", "from_se_uuid": source}

    def migrate(
        self,
        vs: StoredObject,
        from_se_ref: str | None = None,
        to_se_ref: str | None = None,
        to_new_se: bool = False,
    ) -> dict[str, Any]:
        with self._pass_lock:
            world, group, current = self._action_context(vs)
            self._elastic(group, "migrate")
            active = [p for p in current if p.role != Role.DRAINING]
            source = self._source_se(world, active, from_se_ref, default_primary=True)
            target = self._target_se(world, group, vs, to_se_ref)
            if target is not None and any(p.se_uuid == target for p in current):
                raise Conflict("the virtual service already runs on that SE")
            if target is None and not to_new_se:
                usable = [
                    se
                    for se in world.of_type("serviceengine")
                    if refs.uuid_of(se.data["se_group_ref"]) == group.uuid
                    and self._memory.se_status.get(se.uuid) == "UP"
                    and all(p.se_uuid != se.uuid for p in current)
                ]
                in_group = [
                    se
                    for se in world.of_type("serviceengine")
                    if refs.uuid_of(se.data["se_group_ref"]) == group.uuid
                ]
                if not usable and len(in_group) >= group.data["max_se"]:
                    raise Conflict("no other SE to migrate to and the SE group is at max_se")
            scale = world.scale.get(vs.uuid) or VsScale(vs.uuid)
            scale.new_se = to_new_se and target is None
            rows = [
                Placement(vs.uuid, p.se_uuid, Role.DRAINING, "migrate") if p.se_uuid == source else p
                for p in current
            ]
            if target is not None:
                rows.append(Placement(vs.uuid, target, Role.SECONDARY))
            self._write_action(vs, rows, scale)
            return {"status": "migrating", "from_se_uuid": source, "to_se_uuid": target}

    def _source_se(
        self, world: _World, active: list[Placement], ref: str | None, default_primary: bool = False
    ) -> str:
        if ref:
            uuid = refs.uuid_of(ref)
            if all(p.se_uuid != uuid for p in active):
                raise InvalidInput(f"the virtual service does not run on SE {ref}")
            return uuid
        if default_primary:
            if len(active) > 1:
                raise InvalidInput("the virtual service runs on several SEs: say which with vs_se_ref")
            return active[0].se_uuid
        secondaries = [p for p in active if p.role == Role.SECONDARY]
        return (secondaries or active)[-1].se_uuid

    def switchover(self, vs: StoredObject) -> dict[str, Any]:
        """Legacy: the standby of the VS's pair becomes active for every VS of the pair. Elastic: the
        first secondary becomes the primary."""
        with self._pass_lock:
            world, group, current = self._action_context(vs)
            primary = next((p.se_uuid for p in current if p.role == Role.PRIMARY), None)
            legacy = group.data["ha_mode"] == HaMode.HA_MODE_LEGACY_ACTIVE_STANDBY.value
            other_role = Role.STANDBY if legacy else Role.SECONDARY
            other = next((p.se_uuid for p in current if p.role == other_role), None)
            if primary is None or other is None:
                raise Conflict(f"the virtual service has no {other_role.value} SE to switch over to")
            if self._memory.se_status.get(other) != "UP":
                raise Conflict(f"the {other_role.value} SE is not up")
            swapped: list[tuple[str, str, str]] = []
            affected = {vs.uuid}
            if legacy:  # the whole pair switches
                pairs: dict[str, set[str]] = {}
                for p in world.placements:
                    pairs.setdefault(p.vs_uuid, set()).add(f"{p.se_uuid}|{p.role.value}")
                want = {f"{primary}|primary", f"{other}|standby"}
                affected = {v for v, s in pairs.items() if s == want}
            for p in world.placements:
                role = encode_role(p)
                if p.vs_uuid in affected and p.se_uuid == primary:
                    role = other_role.value
                elif p.vs_uuid in affected and p.se_uuid == other:
                    role = Role.PRIMARY.value
                swapped.append((p.vs_uuid, p.se_uuid, role))
            with self._objects.db.write() as conn:
                repo.set_placements(conn, swapped, usec(self._clock))
            details = {"from_se_uuid": primary, "to_se_uuid": other, "virtualservices": len(affected)}
            for vs_uuid in affected:
                self._memory.ops[vs_uuid] = _Op("VS_SWITCHOVER", details, new_primary=other)
            self.poke()
            return {"status": "switching over", **details}

    # --- runtime views ----------------------------------------------------------------------------

    def vs_counters(self, vs_uuid: str) -> dict[str, int]:
        """The VS's traffic counters summed over the SEs that report it (since each SE's HAProxy began)."""
        total = {"current_sessions": 0, "total_sessions": 0, "bytes_in": 0, "bytes_out": 0, "errors": 0}
        for state in self._registry.snapshot().values():
            for c in state.heartbeat.counters if state.heartbeat else ():
                if c.vs_uuid == vs_uuid:
                    total["current_sessions"] += c.current_sessions
                    total["total_sessions"] += c.total_sessions
                    total["bytes_in"] += c.bytes_in
                    total["bytes_out"] += c.bytes_out
                    total["errors"] += c.http_responses_5xx
        return total

    def vs_runtime(self, vs_uuid: str) -> dict[str, Any]:
        status = self._memory.vs_status.get(vs_uuid) or VsStatus("OPER_INITIALIZING", "not reconciled yet")
        return {
            "oper_status": status.oper_status,
            "reason": status.reason,
            "ha_ok": self._memory.ha_ok.get(vs_uuid),
            "service_engines": [
                {
                    "se_ref": refs.canonical("serviceengine", p.se_uuid),
                    "se_uuid": p.se_uuid,
                    "role": p.role.value,
                    "oper_status": self._se_oper(p.se_uuid),
                    # How the primary's distributor sees this SE (scaled-out VSs only).
                    "distributor_health": self._memory.peer_health.get(vs_uuid, {}).get(p.se_uuid),
                }
                for p in self._memory.placements.get(vs_uuid, [])
            ],
        }

    def vs_provisioning(self, vs_uuid: str) -> tuple[str, str]:
        """ACTIVE when every SE of the VS applied its latest config, PENDING while one has not, ERROR
        when the VS cannot be placed or an SE refused the config, with the reason."""
        status = self._memory.vs_status.get(vs_uuid)
        if status is None:
            return "PENDING", "not reconciled yet"
        if status.oper_status == "OPER_DISABLED":
            return "ACTIVE", ""
        placed = self._memory.placements.get(vs_uuid, [])
        if not placed:
            if status.oper_status == "OPER_RESOURCES" and status.reason != "not placed yet":
                return "ERROR", status.reason
            return "PENDING", status.reason
        runtime = self._registry.snapshot()
        for p in placed:
            state = runtime.get(p.se_uuid)
            desired = state.desired.version if state and state.desired else 0
            if state is not None and state.failed_version and state.failed_version >= desired:
                return "ERROR", f"SE {p.se_uuid} failed to apply the config: {state.last_error}"
            if not in_sync(state):
                return "PENDING", f"SE {p.se_uuid} has not applied the config yet"
        return "ACTIVE", ""

    def se_runtime_label(self, se_uuid: str) -> str:
        """UP, PENDING, HEARTBEAT_FAILURE or DOWN, as the health manager last saw the SE."""
        return self._memory.se_status.get(se_uuid, "PENDING")

    def _se_oper(self, se_uuid: str) -> str:
        label = self._memory.se_status.get(se_uuid, "PENDING")
        return {"UP": "OPER_UP", "DOWN": "OPER_DOWN", "HEARTBEAT_FAILURE": "OPER_DOWN"}.get(
            label, "OPER_INITIALIZING"
        )

    def se_runtime(self, se: StoredObject) -> dict[str, Any]:
        state = self._registry.snapshot().get(se.uuid)
        with self._objects.db.read() as conn:
            hosted = [decode_role(*row) for row in repo.all_placements(conn) if row[1] == se.uuid]
            world_cloud = repo.get(conn, refs.uuid_of(se.data["cloud_ref"]))
        beat = state.heartbeat if state else None
        counters = {c.vs_uuid: c for c in beat.counters} if beat else {}
        connector = self._connector_for(world_cloud) if world_cloud else None
        details = connector.se_details(se.uuid) if connector else None
        return {
            "oper_status": self._se_oper(se.uuid),
            "virtualservices": [
                {
                    "vs_ref": refs.canonical("virtualservice", p.vs_uuid),
                    "role": p.role.value,
                    "counters": counters[p.vs_uuid].model_dump(exclude={"vs_uuid"})
                    if p.vs_uuid in counters
                    else None,
                }
                for p in sorted(hosted, key=lambda p: p.vs_uuid)
            ],
            "data_address": connector.data_address(se.uuid) if connector else None,
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
