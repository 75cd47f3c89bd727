"""Where each virtual service runs: a pure function from SE groups, SEs and VSs to a placement plan.

First version (single SE per VS): keep every VS where it is while its SE is usable, place the others
by the group's algorithm — PACKED fills the fullest SE that still has room (the compactor), DISTRIBUTED
spreads over as many SEs as `max_se` allows — and ask for a new SE when no existing one has room.
Nothing here does I/O; the reconciler applies the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from fulcrum.model.enums import PlacementAlgo, TenantScope

PER_APP_LIMIT = 2


class SeStatus(StrEnum):
    UP = "UP"  # registered and heartbeating
    PENDING = "PENDING"  # being created; may take VSs, they start when it comes up
    DOWN = "DOWN"  # failed: takes nothing, its VSs must move


@dataclass(frozen=True)
class GroupPolicy:
    uuid: str
    algo: PlacementAlgo = PlacementAlgo.PLACEMENT_ALGO_PACKED
    max_vs_per_se: int = 10
    max_se: int = 10
    per_app: bool = False
    tenant_scope: TenantScope = TenantScope.SE_GROUP_SHARED

    @property
    def capacity(self) -> int:
        return min(self.max_vs_per_se, PER_APP_LIMIT) if self.per_app else self.max_vs_per_se


@dataclass(frozen=True)
class SeView:
    uuid: str
    group_uuid: str
    status: SeStatus
    vs_uuids: tuple[str, ...] = ()
    tenant_uuid: str | None = None  # set for SEs of a tenant-exclusive group


@dataclass(frozen=True)
class VsDemand:
    uuid: str
    group_uuid: str
    tenant_uuid: str


@dataclass(frozen=True)
class NewSe:
    """An SE the reconciler must create; `key` names it inside the plan until it has a uuid."""

    key: str
    group_uuid: str
    tenant_uuid: str | None


@dataclass
class Plan:
    assignments: dict[str, str] = field(default_factory=dict)  # vs uuid -> se uuid or NewSe.key
    new_ses: list[NewSe] = field(default_factory=list)
    unplaced: dict[str, str] = field(default_factory=dict)  # vs uuid -> reason
    idle_ses: list[str] = field(default_factory=list)  # usable SEs that host nothing


@dataclass
class _Slot:
    uuid: str
    group_uuid: str
    tenant_uuid: str | None
    hosted: list[str]


def place(groups: list[GroupPolicy], ses: list[SeView], demands: list[VsDemand]) -> Plan:
    policies = {g.uuid: g for g in groups}
    plan = Plan()
    slots: dict[str, _Slot] = {
        se.uuid: _Slot(se.uuid, se.group_uuid, se.tenant_uuid, [])
        for se in sorted(ses, key=lambda s: s.uuid)
        if se.status != SeStatus.DOWN
    }
    wanted = {d.uuid: d for d in demands}

    # Stability first: a VS stays on a usable SE of its group that still suits it.
    for se in sorted(ses, key=lambda s: s.uuid):
        slot = slots.get(se.uuid)
        for vs_uuid in se.vs_uuids:
            demand = wanted.get(vs_uuid)
            if slot is None or demand is None or vs_uuid in plan.assignments:
                continue
            policy = policies.get(demand.group_uuid)
            if policy is None or demand.group_uuid != slot.group_uuid:
                continue
            if len(slot.hosted) < policy.capacity and _tenant_fits(policy, slot, demand):
                _assign(plan, policy, slot, demand)

    for demand in sorted(demands, key=lambda d: d.uuid):
        if demand.uuid in plan.assignments:
            continue
        policy = policies.get(demand.group_uuid)
        if policy is None:
            plan.unplaced[demand.uuid] = "its SE group does not exist"
            continue
        slot = _choose(policy, slots, demand)
        if slot is None:
            in_group = sum(1 for s in slots.values() if s.group_uuid == policy.uuid)
            if in_group >= policy.max_se:
                plan.unplaced[demand.uuid] = (
                    f"SE group is full: max_se={policy.max_se} SEs with {policy.capacity} VSs each"
                )
                continue
            tenant = demand.tenant_uuid if policy.tenant_scope == TenantScope.SE_GROUP_EXCLUSIVE else None
            new = NewSe(f"new-{len(plan.new_ses) + 1}", policy.uuid, tenant)
            plan.new_ses.append(new)
            slot = _Slot(new.key, policy.uuid, tenant, [])
            slots[new.key] = slot
        _assign(plan, policy, slot, demand)

    plan.idle_ses = [s.uuid for s in ses if s.status != SeStatus.DOWN and not slots[s.uuid].hosted]
    return plan


def _assign(plan: Plan, policy: GroupPolicy, slot: _Slot, demand: VsDemand) -> None:
    slot.hosted.append(demand.uuid)
    plan.assignments[demand.uuid] = slot.uuid
    if policy.tenant_scope == TenantScope.SE_GROUP_EXCLUSIVE and slot.tenant_uuid is None:
        slot.tenant_uuid = demand.tenant_uuid


def _tenant_fits(policy: GroupPolicy, slot: _Slot, demand: VsDemand) -> bool:
    if policy.tenant_scope != TenantScope.SE_GROUP_EXCLUSIVE:
        return True
    # `_assign` gives an SE of an exclusive group to the tenant of its first VS.
    return slot.tenant_uuid is None or slot.tenant_uuid == demand.tenant_uuid


def _choose(policy: GroupPolicy, slots: dict[str, _Slot], demand: VsDemand) -> _Slot | None:
    in_group = [s for s in slots.values() if s.group_uuid == policy.uuid]
    room = [s for s in in_group if len(s.hosted) < policy.capacity and _tenant_fits(policy, s, demand)]
    if policy.algo == PlacementAlgo.PLACEMENT_ALGO_DISTRIBUTED:
        empty = [s for s in room if not s.hosted]
        if empty:
            return empty[0]
        if len(in_group) < policy.max_se:
            return None  # spread: a new SE is better than doubling up
        return min(room, key=lambda s: len(s.hosted), default=None)
    # PACKED: the fullest SE with room, so that others stay empty and can be given back.
    return max(room, key=lambda s: len(s.hosted), default=None)
