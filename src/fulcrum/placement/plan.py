"""Where each virtual service runs: a pure function from SE groups, SEs, current placements and VSs to a plan.

Nothing here does I/O; the reconciler applies the plan. The rules, per SE group:

* **Stability first.** A VS keeps every SE it has while that SE is usable (not DOWN), still belongs to
  its group and suits its tenant; only the missing SEs are chosen.
* **Choosing an SE.** PACKED fills the fullest SE that still has room (the compactor), so that others
  stay empty and can be given back; DISTRIBUTED puts a VS on an empty SE, and creates one while the
  group is below `max_se`, before it doubles up. `per_app` SEs take at most 2 VSs; an SE of a
  tenant-exclusive group belongs to the tenant of its first VS.
* **Elastic HA (HA_MODE_SHARED = N+M, HA_MODE_SHARED_PAIR = active/active).** A VS wants
  `min_scaleout + extra` SEs (`extra` from scale-out actions), at most `max_scaleout`; the first is
  its primary (owns the VIP), the others secondaries. When the primary is lost the first surviving
  secondary is promoted. Spare room equal to `buffer_se` empty SEs is kept at all times, so a failed
  SE's VSs move at once and a replacement is created to restore the buffer.
* **Legacy active/standby.** SEs work in pairs: the active carries every VS of the pair as primary,
  the standby carries them all as standby (warm, no VIP). When either fails the survivor is (or stays)
  active and a new standby is found: an unpaired empty SE, or a new one.
* A placement in role DRAINING (a scale-in or migration in progress) is kept while its SE is usable;
  it takes room but does not count toward the VS's SEs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from fulcrum.model.enums import HaMode, PlacementAlgo, TenantScope

PER_APP_LIMIT = 2


class SeStatus(StrEnum):
    UP = "UP"  # registered and heartbeating
    PENDING = "PENDING"  # being created or not heard from yet; may take VSs, they start when it comes up
    DOWN = "DOWN"  # failed: takes nothing, its VSs must move


class Role(StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    STANDBY = "standby"
    DRAINING = "draining"


ROLE_ORDER = {Role.PRIMARY: 0, Role.SECONDARY: 1, Role.STANDBY: 2, Role.DRAINING: 3}


@dataclass(frozen=True)
class GroupPolicy:
    uuid: str
    algo: PlacementAlgo = PlacementAlgo.PLACEMENT_ALGO_PACKED
    max_vs_per_se: int = 10
    max_se: int = 10
    per_app: bool = False
    tenant_scope: TenantScope = TenantScope.SE_GROUP_SHARED
    ha_mode: HaMode = HaMode.HA_MODE_SHARED
    buffer_se: int = 0
    min_scaleout: int = 1
    max_scaleout: int = 4

    @property
    def capacity(self) -> int:
        return min(self.max_vs_per_se, PER_APP_LIMIT) if self.per_app else self.max_vs_per_se

    @property
    def exclusive(self) -> bool:
        return self.tenant_scope == TenantScope.SE_GROUP_EXCLUSIVE

    def wanted(self, extra: int) -> int:
        floor = 2 if self.ha_mode == HaMode.HA_MODE_SHARED_PAIR else 1
        return max(1, min(max(self.min_scaleout, floor) + extra, self.max_scaleout))


@dataclass(frozen=True)
class SeView:
    uuid: str
    group_uuid: str
    status: SeStatus
    tenant_uuid: str | None = None  # set for SEs of a tenant-exclusive group


@dataclass(frozen=True)
class Placement:
    vs_uuid: str
    se_uuid: str  # an SE uuid, or the key of a NewSe of the same plan
    role: Role
    note: str = ""  # carried through unchanged (the reconciler records why a placement drains)


@dataclass(frozen=True)
class VsDemand:
    uuid: str
    group_uuid: str
    tenant_uuid: str
    extra: int = 0  # SEs beyond the group's minimum, from scale-out actions
    new_se: bool = False  # the next SE this VS gets must be a new one


@dataclass(frozen=True)
class NewSe:
    """An SE the reconciler must create; `key` names it inside the plan until it has a uuid."""

    key: str
    group_uuid: str
    tenant_uuid: str | None


@dataclass
class Plan:
    placements: dict[str, list[Placement]] = field(default_factory=dict)  # primary first
    new_ses: list[NewSe] = field(default_factory=list)
    unplaced: dict[str, str] = field(default_factory=dict)  # vs uuid -> why it has no SE
    short: dict[str, str] = field(default_factory=dict)  # vs uuid -> why it has fewer SEs than wanted
    idle_ses: list[str] = field(default_factory=list)  # usable SEs that host nothing and are not needed

    def primary(self, vs_uuid: str) -> str | None:
        for p in self.placements.get(vs_uuid, []):
            if p.role == Role.PRIMARY:
                return p.se_uuid
        return None


@dataclass
class _Slot:
    uuid: str
    group_uuid: str
    tenant_uuid: str | None
    status: SeStatus
    hosted: list[str] = field(default_factory=list)


class _Planner:
    def __init__(self, ses: list[SeView], plan: Plan) -> None:
        self.plan = plan
        self.slots: dict[str, _Slot] = {
            se.uuid: _Slot(se.uuid, se.group_uuid, se.tenant_uuid, se.status)
            for se in sorted(ses, key=lambda s: s.uuid)
            if se.status != SeStatus.DOWN
        }

    def in_group(self, policy: GroupPolicy) -> list[_Slot]:
        return [s for s in self.slots.values() if s.group_uuid == policy.uuid]

    def fits(self, policy: GroupPolicy, slot: _Slot, tenant: str) -> bool:
        if slot.group_uuid != policy.uuid:
            return False
        # `host` gives an SE of an exclusive group to the tenant of its first VS.
        return not policy.exclusive or slot.tenant_uuid is None or slot.tenant_uuid == tenant

    def has_room(self, policy: GroupPolicy, slot: _Slot) -> bool:
        return len(slot.hosted) < policy.capacity

    def host(self, policy: GroupPolicy, slot: _Slot, vs_uuid: str, tenant: str) -> None:
        slot.hosted.append(vs_uuid)
        if policy.exclusive and slot.tenant_uuid is None:
            slot.tenant_uuid = tenant

    def can_create(self, policy: GroupPolicy, count: int = 1) -> bool:
        return len(self.in_group(policy)) + count <= policy.max_se

    def create(self, policy: GroupPolicy, tenant: str | None) -> _Slot:
        tenant = tenant if policy.exclusive else None
        new = NewSe(f"new-{len(self.plan.new_ses) + 1}", policy.uuid, tenant)
        self.plan.new_ses.append(new)
        slot = _Slot(new.key, policy.uuid, tenant, SeStatus.PENDING)
        self.slots[new.key] = slot
        return slot

    def choose(self, policy: GroupPolicy, tenant: str, exclude: set[str]) -> _Slot | None:
        group = self.in_group(policy)
        room = [
            s
            for s in group
            if s.uuid not in exclude and self.has_room(policy, s) and self.fits(policy, s, tenant)
        ]
        if policy.algo == PlacementAlgo.PLACEMENT_ALGO_DISTRIBUTED:
            empty = [s for s in room if not s.hosted]
            if empty:
                return _prefer_up(empty)
            if len(group) < policy.max_se:
                return None  # spread: a new SE is better than doubling up
            return min(room, key=lambda s: len(s.hosted), default=None)
        fullest = max((len(s.hosted) for s in room), default=None)
        if fullest is None:
            return None
        return _prefer_up([s for s in room if len(s.hosted) == fullest])

    def full_reason(self, policy: GroupPolicy) -> str:
        return f"SE group is full: max_se={policy.max_se} SEs with {policy.capacity} VSs each"


def _prefer_up(slots: list[_Slot]) -> _Slot:
    return min(slots, key=lambda s: (s.status != SeStatus.UP, s.uuid))


def place(
    groups: list[GroupPolicy], ses: list[SeView], current: list[Placement], demands: list[VsDemand]
) -> Plan:
    plan = Plan()
    planner = _Planner(ses, plan)
    policies = {g.uuid: g for g in groups}
    by_vs: dict[str, list[Placement]] = {}
    for p in sorted(current, key=lambda p: (ROLE_ORDER[p.role], p.se_uuid)):
        by_vs.setdefault(p.vs_uuid, []).append(p)
    by_group: dict[str, list[VsDemand]] = {}
    for demand in sorted(demands, key=lambda d: d.uuid):
        if demand.group_uuid not in policies:
            plan.unplaced[demand.uuid] = "its SE group does not exist"
            continue
        by_group.setdefault(demand.group_uuid, []).append(demand)
    for group_uuid in sorted(by_group):
        policy = policies[group_uuid]
        if policy.ha_mode == HaMode.HA_MODE_LEGACY_ACTIVE_STANDBY:
            _place_legacy(planner, policy, by_group[group_uuid], by_vs)
        else:
            _place_elastic(planner, policy, by_group[group_uuid], by_vs)
    for policy in sorted(groups, key=lambda g: g.uuid):
        if policy.ha_mode != HaMode.HA_MODE_LEGACY_ACTIVE_STANDBY:
            _keep_buffer(planner, policy)
    return plan


# --- elastic HA -----------------------------------------------------------------------------------


def _place_elastic(
    planner: _Planner, policy: GroupPolicy, demands: list[VsDemand], by_vs: dict[str, list[Placement]]
) -> None:
    kept: dict[str, list[Placement]] = {}
    for demand in demands:
        keep: list[Placement] = []
        active = 0
        for p in by_vs.get(demand.uuid, []):
            slot = planner.slots.get(p.se_uuid)
            if slot is None or not planner.fits(policy, slot, demand.tenant_uuid):
                continue
            if p.role == Role.DRAINING:
                keep.append(p)
            elif (
                p.role != Role.STANDBY
                and active < policy.wanted(demand.extra)
                and planner.has_room(policy, slot)
            ):
                keep.append(p)
                active += 1
            else:
                continue
            planner.host(policy, slot, demand.uuid, demand.tenant_uuid)
        kept[demand.uuid] = keep
    for demand in demands:
        keep = kept[demand.uuid]
        active = [p for p in keep if p.role != Role.DRAINING]
        draining = [p for p in keep if p.role == Role.DRAINING]
        wanted = policy.wanted(demand.extra)
        taken = {p.se_uuid for p in keep}
        new_se = demand.new_se
        while len(active) < wanted:
            slot = None if new_se else planner.choose(policy, demand.tenant_uuid, taken)
            if slot is None:
                if not planner.can_create(policy):
                    break
                slot = planner.create(policy, demand.tenant_uuid)
            new_se = False
            planner.host(policy, slot, demand.uuid, demand.tenant_uuid)
            taken.add(slot.uuid)
            active.append(Placement(demand.uuid, slot.uuid, Role.SECONDARY))
        if not active:
            planner.plan.unplaced[demand.uuid] = planner.full_reason(policy)
            if draining:
                planner.plan.placements[demand.uuid] = draining
            continue
        # One primary: the current one if it survived, else the first survivor (promotion).
        primary = next((p for p in active if p.role == Role.PRIMARY), active[0])
        ordered = [Placement(demand.uuid, primary.se_uuid, Role.PRIMARY)]
        ordered += [Placement(demand.uuid, p.se_uuid, Role.SECONDARY) for p in active if p is not primary]
        planner.plan.placements[demand.uuid] = ordered + draining
        if len(active) < wanted:
            planner.plan.short[demand.uuid] = (
                f"runs on {len(active)} of {wanted} SEs: {planner.full_reason(policy)}"
            )


def _keep_buffer(planner: _Planner, policy: GroupPolicy) -> None:
    """Keep spare room worth `buffer_se` SEs; empty SEs beyond that are idle (to be given back)."""
    cap = policy.capacity
    group = planner.in_group(policy)
    # A group that hosts nothing keeps nothing running: the buffer protects VSs, not an empty group.
    target = policy.buffer_se * cap if any(s.hosted for s in group) else 0
    spare = sum(cap - len(s.hosted) for s in group if len(s.hosted) < cap)
    while spare < target and planner.can_create(policy):
        planner.create(policy, None)
        spare += cap
    empty = sorted(
        (s for s in planner.in_group(policy) if not s.hosted), key=lambda s: (s.status != SeStatus.UP, s.uuid)
    )
    spare_elsewhere = spare - cap * len(empty)
    keep = max(0, math.ceil((target - spare_elsewhere) / cap)) if cap else 0
    planner.plan.idle_ses += [
        s.uuid for s in empty[keep:] if s.uuid in planner.slots and not s.uuid.startswith("new-")
    ]


# --- legacy active/standby ------------------------------------------------------------------------


@dataclass
class _Pair:
    active: _Slot | None
    standby: _Slot | None
    vss: list[VsDemand] = field(default_factory=list)


def _surviving_pairs(
    planner: _Planner, policy: GroupPolicy, demands: list[VsDemand], by_vs: dict[str, list[Placement]]
) -> tuple[dict[str, _Pair], list[VsDemand], set[str]]:
    """The pairs that still have a usable SE, with their VSs; VSs that lost both SEs are homeless."""
    pairs: dict[str, _Pair] = {}  # by the active SE's uuid
    homeless: list[VsDemand] = []
    paired: set[str] = set()
    for demand in demands:
        current = by_vs.get(demand.uuid, [])
        roles = {p.role: p.se_uuid for p in current}
        active = _usable(planner, policy, demand, roles.get(Role.PRIMARY))
        standby = _usable(planner, policy, demand, roles.get(Role.STANDBY))
        if active is None and standby is not None:
            active, standby = standby, None  # the standby takes over
        if active is None:
            homeless.append(demand)
            continue
        pair = pairs.get(active.uuid)
        if pair is None:
            if active.uuid in paired or (standby is not None and standby.uuid in paired):
                homeless.append(demand)  # inconsistent roles: place this VS afresh
                continue
            pair = pairs[active.uuid] = _Pair(active, standby)
            paired.update(s.uuid for s in (active, standby) if s is not None)
        if len(pair.vss) >= policy.capacity:
            homeless.append(demand)
            continue
        pair.vss.append(demand)
        for slot in (pair.active, pair.standby):
            if slot is not None:
                planner.host(policy, slot, demand.uuid, demand.tenant_uuid)
    return pairs, homeless, paired


def _place_legacy(
    planner: _Planner, policy: GroupPolicy, demands: list[VsDemand], by_vs: dict[str, list[Placement]]
) -> None:
    pairs, homeless, paired = _surviving_pairs(planner, policy, demands, by_vs)
    for demand in homeless:
        pair = _choose_pair(planner, policy, list(pairs.values()), demand)
        if pair is None:
            active = _spare(planner, policy, demand, paired)
            if active is None:
                if not planner.can_create(policy):
                    planner.plan.unplaced[demand.uuid] = planner.full_reason(policy)
                    continue
                active = planner.create(policy, demand.tenant_uuid)
            paired.add(active.uuid)
            pair = pairs[active.uuid] = _Pair(active, None)
            _find_standby(planner, policy, pair, demand, paired)
        pair.vss.append(demand)
        assert pair.active is not None
        planner.host(policy, pair.active, demand.uuid, demand.tenant_uuid)
        if pair.standby is not None:
            planner.host(policy, pair.standby, demand.uuid, demand.tenant_uuid)

    for pair in pairs.values():
        if not pair.vss or pair.active is None:
            continue
        if pair.standby is None and _find_standby(planner, policy, pair, pair.vss[0], paired):
            assert pair.standby is not None
            for demand in pair.vss:
                planner.host(policy, pair.standby, demand.uuid, demand.tenant_uuid)
        for demand in pair.vss:
            placements = [Placement(demand.uuid, pair.active.uuid, Role.PRIMARY)]
            if pair.standby is not None:
                placements.append(Placement(demand.uuid, pair.standby.uuid, Role.STANDBY))
            else:
                planner.plan.short[demand.uuid] = f"no standby SE: {planner.full_reason(policy)}"
            planner.plan.placements[demand.uuid] = placements
    planner.plan.idle_ses += [
        s.uuid for s in planner.in_group(policy) if s.uuid not in paired and not s.uuid.startswith("new-")
    ]


def _find_standby(
    planner: _Planner, policy: GroupPolicy, pair: _Pair, demand: VsDemand, paired: set[str]
) -> bool:
    """Give `pair` a standby: an unpaired empty SE, else a new one while `max_se` allows."""
    standby = _spare(planner, policy, demand, paired)
    if standby is None and planner.can_create(policy):
        standby = planner.create(policy, demand.tenant_uuid)
    if standby is None:
        return False
    pair.standby = standby
    paired.add(standby.uuid)
    return True


def _usable(planner: _Planner, policy: GroupPolicy, demand: VsDemand, se_uuid: str | None) -> _Slot | None:
    slot = planner.slots.get(se_uuid) if se_uuid else None
    return slot if slot is not None and planner.fits(policy, slot, demand.tenant_uuid) else None


def _spare(planner: _Planner, policy: GroupPolicy, demand: VsDemand, paired: set[str]) -> _Slot | None:
    """An empty SE of the group that is in no pair, to become an active or a standby."""
    free = [
        s
        for s in planner.in_group(policy)
        if s.uuid not in paired and not s.hosted and planner.fits(policy, s, demand.tenant_uuid)
    ]
    return _prefer_up(free) if free else None


def _choose_pair(
    planner: _Planner, policy: GroupPolicy, pairs: list[_Pair], demand: VsDemand
) -> _Pair | None:
    room = [
        p
        for p in pairs
        if p.active is not None
        and len(p.vss) < policy.capacity
        and all(planner.fits(policy, s, demand.tenant_uuid) for s in (p.active, p.standby) if s is not None)
    ]
    if policy.algo == PlacementAlgo.PLACEMENT_ALGO_DISTRIBUTED:
        empty = [p for p in room if not p.vss]
        if empty:
            return empty[0]
        if planner.can_create(policy, 2):
            return None
        return min(room, key=lambda p: len(p.vss), default=None)
    return max(room, key=lambda p: len(p.vss), default=None)
