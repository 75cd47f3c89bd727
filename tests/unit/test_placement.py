"""Placement decisions as a table: groups, SEs and VSs in; assignments, new SEs and refusals out."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from fulcrum.model.enums import PlacementAlgo, TenantScope
from fulcrum.placement.plan import GroupPolicy, SeStatus, SeView, VsDemand, place

PACKED = PlacementAlgo.PLACEMENT_ALGO_PACKED
DISTRIBUTED = PlacementAlgo.PLACEMENT_ALGO_DISTRIBUTED


def vs(n: int, tenant: str = "t1", group: str = "g") -> VsDemand:
    return VsDemand(f"vs{n:02d}", group, tenant)


@dataclass
class Case:
    name: str
    group: GroupPolicy
    ses: list[SeView]
    demands: list[VsDemand]
    # expected: per SE (or new-N) the sorted VS numbers it hosts
    hosts: dict[str, list[int]]
    unplaced: list[int] = field(default_factory=list)
    idle: list[str] = field(default_factory=list)


CASES = [
    Case(
        "first VS needs a new SE",
        GroupPolicy("g"),
        [],
        [vs(1)],
        {"new-1": [1]},
    ),
    Case(
        "packed fills one SE before the next",
        GroupPolicy("g", algo=PACKED, max_vs_per_se=3),
        [SeView("se-a", "g", SeStatus.UP), SeView("se-b", "g", SeStatus.UP)],
        [vs(i) for i in range(1, 6)],
        {"se-a": [1, 2, 3], "se-b": [4, 5]},
    ),
    Case(
        "packed prefers the fullest SE with room",
        GroupPolicy("g", algo=PACKED, max_vs_per_se=3),
        [SeView("se-a", "g", SeStatus.UP, ("vs01",)), SeView("se-b", "g", SeStatus.UP, ("vs02", "vs03"))],
        [vs(1), vs(2), vs(3), vs(4)],
        {"se-a": [1], "se-b": [2, 3, 4]},
    ),
    Case(
        "distributed spreads over new SEs up to max_se",
        GroupPolicy("g", algo=DISTRIBUTED, max_se=3),
        [SeView("se-a", "g", SeStatus.UP)],
        [vs(1), vs(2), vs(3), vs(4)],
        {"se-a": [1, 4], "new-1": [2], "new-2": [3]},
    ),
    Case(
        "existing placements are kept (no reshuffle)",
        GroupPolicy("g", algo=PACKED, max_vs_per_se=10),
        [SeView("se-a", "g", SeStatus.UP, ("vs02",)), SeView("se-b", "g", SeStatus.UP, ("vs01",))],
        [vs(1), vs(2)],
        {"se-a": [2], "se-b": [1]},
    ),
    Case(
        "a down SE's VSs move, and the SE takes nothing",
        GroupPolicy("g", max_vs_per_se=2),
        [SeView("se-a", "g", SeStatus.DOWN, ("vs01",)), SeView("se-b", "g", SeStatus.UP)],
        [vs(1)],
        {"se-b": [1]},
    ),
    Case(
        "pending SEs keep and take VSs",
        GroupPolicy("g"),
        [SeView("se-a", "g", SeStatus.PENDING, ("vs01",))],
        [vs(1), vs(2)],
        {"se-a": [1, 2]},
    ),
    Case(
        "max_se reached: the rest is refused with a reason",
        GroupPolicy("g", max_vs_per_se=1, max_se=2),
        [],
        [vs(1), vs(2), vs(3)],
        {"new-1": [1], "new-2": [2]},
        unplaced=[3],
    ),
    Case(
        "per_app allows at most two VSs per SE",
        GroupPolicy("g", per_app=True, max_vs_per_se=10),
        [SeView("se-a", "g", SeStatus.UP)],
        [vs(1), vs(2), vs(3)],
        {"se-a": [1, 2], "new-1": [3]},
    ),
    Case(
        "tenant-exclusive groups never mix tenants on an SE",
        GroupPolicy("g", tenant_scope=TenantScope.SE_GROUP_EXCLUSIVE),
        [SeView("se-a", "g", SeStatus.UP, tenant_uuid="t1")],
        [vs(1, "t1"), vs(2, "t2"), vs(3, "t2")],
        {"se-a": [1], "new-1": [2, 3]},
    ),
    Case(
        "an SE with nothing on it is reported idle",
        GroupPolicy("g"),
        [SeView("se-a", "g", SeStatus.UP, ("vs01",)), SeView("se-b", "g", SeStatus.UP)],
        [vs(1)],
        {"se-a": [1]},
        idle=["se-b"],
    ),
    Case(
        "SEs of another group are not used",
        GroupPolicy("g"),
        [SeView("se-x", "other", SeStatus.UP)],
        [vs(1)],
        {"new-1": [1]},
        idle=["se-x"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_placement(case: Case) -> None:
    plan = place([case.group, GroupPolicy("other")], case.ses, case.demands)
    hosts: dict[str, list[int]] = {}
    for vs_uuid, se in plan.assignments.items():
        hosts.setdefault(se, []).append(int(vs_uuid[2:]))
    assert {se: sorted(v) for se, v in hosts.items()} == case.hosts
    assert sorted(int(v[2:]) for v in plan.unplaced) == case.unplaced
    assert all("max_se" in reason for reason in plan.unplaced.values())
    assert sorted(plan.idle_ses) == case.idle
    assert [n.key for n in plan.new_ses] == sorted(k for k in case.hosts if k.startswith("new-"))


def test_new_ses_of_exclusive_groups_belong_to_the_tenant() -> None:
    plan = place(
        [GroupPolicy("g", tenant_scope=TenantScope.SE_GROUP_EXCLUSIVE)], [], [vs(1, "t1"), vs(2, "t2")]
    )
    assert sorted((n.key, n.tenant_uuid) for n in plan.new_ses) == [("new-1", "t1"), ("new-2", "t2")]


def test_a_vs_of_an_unknown_group_is_refused() -> None:
    plan = place([GroupPolicy("g")], [], [vs(1, group="gone")])
    assert plan.unplaced == {"vs01": "its SE group does not exist"}
