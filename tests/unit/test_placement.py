"""Placement decisions as a table: groups, SEs, current placements and VSs in; placements out.

Notation: a placement is `"<vs number><role letter>"` on an SE: P primary, S secondary, B standby
(backup), D draining. `new-N` is the N-th SE the plan asks the reconciler to create.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from fulcrum.model.enums import HaMode, PlacementAlgo, TenantScope
from fulcrum.placement.plan import GroupPolicy, Placement, Role, SeStatus, SeView, VsDemand, place

PACKED = PlacementAlgo.PLACEMENT_ALGO_PACKED
DISTRIBUTED = PlacementAlgo.PLACEMENT_ALGO_DISTRIBUTED
SHARED = HaMode.HA_MODE_SHARED
PAIR = HaMode.HA_MODE_SHARED_PAIR
LEGACY = HaMode.HA_MODE_LEGACY_ACTIVE_STANDBY
LETTERS = {"P": Role.PRIMARY, "S": Role.SECONDARY, "B": Role.STANDBY, "D": Role.DRAINING}
UP, PENDING, DOWN = SeStatus.UP, SeStatus.PENDING, SeStatus.DOWN


def vs(n: int, tenant: str = "t1", group: str = "g", extra: int = 0, new_se: bool = False) -> VsDemand:
    return VsDemand(f"vs{n:02d}", group, tenant, extra, new_se)


def se(name: str, status: SeStatus = UP, group: str = "g", tenant: str | None = None) -> SeView:
    return SeView(name, group, status, tenant)


def on(se_uuid: str, *placed: str) -> list[Placement]:
    return [Placement(f"vs{int(p[:-1]):02d}", se_uuid, LETTERS[p[-1]]) for p in placed]


@dataclass
class Case:
    name: str
    group: GroupPolicy
    ses: list[SeView]
    current: list[Placement]
    demands: list[VsDemand]
    hosts: dict[str, list[str]]  # SE -> sorted placements on it
    unplaced: list[int] = field(default_factory=list)
    short: list[int] = field(default_factory=list)
    idle: list[str] = field(default_factory=list)


def g(**kwargs: object) -> GroupPolicy:
    return GroupPolicy("g", **kwargs)  # type: ignore[arg-type]


CASES = [
    # --- single SE per VS (N+M without buffer) and the compactor ---------------------------------
    Case("first VS needs a new SE", g(), [], [], [vs(1)], {"new-1": ["1P"]}),
    Case(
        "packed fills one SE before the next",
        g(algo=PACKED, max_vs_per_se=3),
        [se("se-a"), se("se-b")],
        [],
        [vs(i) for i in range(1, 6)],
        {"se-a": ["1P", "2P", "3P"], "se-b": ["4P", "5P"]},
    ),
    Case(
        "packed prefers the fullest SE with room",
        g(algo=PACKED, max_vs_per_se=3),
        [se("se-a"), se("se-b")],
        on("se-a", "1P") + on("se-b", "2P", "3P"),
        [vs(1), vs(2), vs(3), vs(4)],
        {"se-a": ["1P"], "se-b": ["2P", "3P", "4P"]},
    ),
    Case(
        "distributed spreads over new SEs up to max_se",
        g(algo=DISTRIBUTED, max_se=3),
        [se("se-a")],
        [],
        [vs(1), vs(2), vs(3), vs(4)],
        {"se-a": ["1P", "4P"], "new-1": ["2P"], "new-2": ["3P"]},
    ),
    Case(
        "existing placements are kept (no reshuffle)",
        g(max_vs_per_se=10),
        [se("se-a"), se("se-b")],
        on("se-a", "2P") + on("se-b", "1P"),
        [vs(1), vs(2)],
        {"se-a": ["2P"], "se-b": ["1P"]},
    ),
    Case(
        "a down SE's VSs move, and the SE takes nothing",
        g(max_vs_per_se=2),
        [se("se-a", DOWN), se("se-b")],
        on("se-a", "1P"),
        [vs(1)],
        {"se-b": ["1P"]},
    ),
    Case(
        "pending SEs keep and take VSs",
        g(),
        [se("se-a", PENDING)],
        on("se-a", "1P"),
        [vs(1), vs(2)],
        {"se-a": ["1P", "2P"]},
    ),
    Case(
        "max_se reached: the rest is refused with a reason",
        g(max_vs_per_se=1, max_se=2),
        [],
        [],
        [vs(1), vs(2), vs(3)],
        {"new-1": ["1P"], "new-2": ["2P"]},
        unplaced=[3],
    ),
    Case(
        "per_app allows at most two VSs per SE",
        g(per_app=True, max_vs_per_se=10),
        [se("se-a")],
        [],
        [vs(1), vs(2), vs(3)],
        {"se-a": ["1P", "2P"], "new-1": ["3P"]},
    ),
    Case(
        "tenant-exclusive groups never mix tenants on an SE",
        g(tenant_scope=TenantScope.SE_GROUP_EXCLUSIVE),
        [se("se-a", tenant="t1")],
        [],
        [vs(1, "t1"), vs(2, "t2"), vs(3, "t2")],
        {"se-a": ["1P"], "new-1": ["2P", "3P"]},
    ),
    Case(
        "an SE with nothing on it is reported idle",
        g(),
        [se("se-a"), se("se-b")],
        on("se-a", "1P"),
        [vs(1)],
        {"se-a": ["1P"]},
        idle=["se-b"],
    ),
    Case(
        "SEs of another group are not used",
        g(),
        [se("se-x", group="other")],
        [],
        [vs(1)],
        {"new-1": ["1P"]},
        idle=["se-x"],
    ),
    # --- N+M buffer --------------------------------------------------------------------------------
    Case(
        "buffer_se=1 keeps one empty SE beside the busy one",
        g(buffer_se=1, max_vs_per_se=2),
        [],
        [],
        [vs(1), vs(2)],
        {"new-1": ["1P", "2P"], "new-2": []},
    ),
    Case(
        "spare room on partly used SEs counts toward the buffer",
        g(buffer_se=1, max_vs_per_se=2, algo=DISTRIBUTED),
        [se("se-a"), se("se-b")],
        on("se-a", "1P") + on("se-b", "2P"),
        [vs(1), vs(2)],
        {"se-a": ["1P"], "se-b": ["2P"]},
    ),
    Case(
        "a failed SE's VSs move to the buffer at once and a new buffer SE is asked for",
        g(buffer_se=1, max_vs_per_se=2),
        [se("se-a", DOWN), se("se-b")],
        on("se-a", "1P", "2P"),
        [vs(1), vs(2)],
        {"se-b": ["1P", "2P"], "new-1": []},
    ),
    Case(
        "empty SEs beyond the buffer are idle; up SEs are kept before pending ones",
        g(buffer_se=1),
        [se("se-a", PENDING), se("se-b"), se("se-c")],
        on("se-c", "1P"),
        [vs(1)],
        {"se-c": ["1P"], "se-b": []},
        idle=["se-a"],
    ),
    Case(
        "a group without VSs keeps no buffer SE",
        g(buffer_se=2),
        [se("se-a")],
        [],
        [],
        {},
        idle=["se-a"],
    ),
    Case(
        "the buffer never exceeds max_se",
        g(buffer_se=2, max_se=2),
        [],
        [],
        [vs(1)],
        {"new-1": ["1P"], "new-2": []},
    ),
    # --- scale-out (N+M and active/active) ---------------------------------------------------------
    Case(
        "scale-out adds a secondary on another SE",
        g(),
        [se("se-a"), se("se-b")],
        on("se-a", "1P"),
        [vs(1, extra=1)],
        {"se-a": ["1P"], "se-b": ["1S"]},
    ),
    Case(
        "scale-out to a new SE creates one even when others have room",
        g(),
        [se("se-a"), se("se-b"), se("se-c")],
        on("se-a", "1P") + on("se-b", "2P"),
        [vs(1, extra=1, new_se=True), vs(2)],
        {"se-a": ["1P"], "se-b": ["2P"], "new-1": ["1S"]},
        idle=["se-c"],
    ),
    Case(
        "max_scaleout caps the SEs of a VS",
        g(max_scaleout=2),
        [se("se-a"), se("se-b"), se("se-c")],
        on("se-a", "1P") + on("se-b", "1S"),
        [vs(1, extra=5)],
        {"se-a": ["1P"], "se-b": ["1S"]},
        idle=["se-c"],
    ),
    Case(
        "scale-in leaves the draining SE in place until the reconciler removes it",
        g(),
        [se("se-a"), se("se-b")],
        on("se-a", "1P") + on("se-b", "1D"),
        [vs(1)],
        {"se-a": ["1P"], "se-b": ["1D"]},
    ),
    Case(
        "migrating the primary promotes the target and drains the source",
        g(),
        [se("se-a"), se("se-b")],
        on("se-a", "1D") + on("se-b", "1S"),
        [vs(1)],
        {"se-a": ["1D"], "se-b": ["1P"]},
    ),
    Case(
        "active/active places every VS on two SEs",
        g(ha_mode=PAIR, max_vs_per_se=4),
        [],
        [],
        [vs(1), vs(2)],
        {"new-1": ["1P", "2P"], "new-2": ["1S", "2S"]},
    ),
    Case(
        "active/active: a lost primary promotes the secondary and a replacement is placed",
        g(ha_mode=PAIR),
        [se("se-a", DOWN), se("se-b"), se("se-c")],
        on("se-a", "1P") + on("se-b", "1S"),
        [vs(1)],
        {"se-b": ["1P"], "se-c": ["1S"]},
    ),
    Case(
        "active/active with min_scaleout 3 and buffer 1",
        g(ha_mode=PAIR, min_scaleout=3, buffer_se=1, max_vs_per_se=1),
        [],
        [],
        [vs(1)],
        {"new-1": ["1P"], "new-2": ["1S"], "new-3": ["1S"], "new-4": []},
    ),
    Case(
        "active/active at max_se runs short and says so",
        g(ha_mode=PAIR, max_se=1),
        [],
        [],
        [vs(1)],
        {"new-1": ["1P"]},
        short=[1],
    ),
    Case(
        "distributed active/active spreads primaries",
        g(ha_mode=PAIR, algo=DISTRIBUTED, max_se=4),
        [],
        [],
        [vs(1), vs(2)],
        {"new-1": ["1P"], "new-2": ["1S"], "new-3": ["2P"], "new-4": ["2S"]},
    ),
    # --- legacy active/standby ---------------------------------------------------------------------
    Case(
        "legacy: a pair, the active carries every VS, the standby backs them all",
        g(ha_mode=LEGACY, max_vs_per_se=3),
        [],
        [],
        [vs(1), vs(2)],
        {"new-1": ["1P", "2P"], "new-2": ["1B", "2B"]},
    ),
    Case(
        "legacy: a full pair means a second pair",
        g(ha_mode=LEGACY, max_vs_per_se=1),
        [],
        [],
        [vs(1), vs(2)],
        {"new-1": ["1P"], "new-2": ["1B"], "new-3": ["2P"], "new-4": ["2B"]},
    ),
    Case(
        "legacy: the standby takes over every VS of a failed active and gets a new standby",
        g(ha_mode=LEGACY),
        [se("se-a", DOWN), se("se-b"), se("se-c")],
        on("se-a", "1P", "2P") + on("se-b", "1B", "2B"),
        [vs(1), vs(2)],
        {"se-b": ["1P", "2P"], "se-c": ["1B", "2B"]},
    ),
    Case(
        "legacy: a failed standby is replaced by a new SE",
        g(ha_mode=LEGACY),
        [se("se-a"), se("se-b", DOWN)],
        on("se-a", "1P") + on("se-b", "1B"),
        [vs(1)],
        {"se-a": ["1P"], "new-1": ["1B"]},
    ),
    Case(
        "legacy: roles are kept as they are (after a switchover)",
        g(ha_mode=LEGACY),
        [se("se-a"), se("se-b")],
        on("se-a", "1B", "2B") + on("se-b", "1P", "2P"),
        [vs(1), vs(2), vs(3)],
        {"se-a": ["1B", "2B", "3B"], "se-b": ["1P", "2P", "3P"]},
    ),
    Case(
        "legacy: max_se 1 runs without a standby and says so",
        g(ha_mode=LEGACY, max_se=1),
        [],
        [],
        [vs(1)],
        {"new-1": ["1P"]},
        short=[1],
    ),
    Case(
        "legacy distributed: one pair per VS while max_se allows",
        g(ha_mode=LEGACY, algo=DISTRIBUTED, max_se=4),
        [],
        [],
        [vs(1), vs(2), vs(3)],
        {"new-1": ["1P", "3P"], "new-2": ["1B", "3B"], "new-3": ["2P"], "new-4": ["2B"]},
    ),
    Case(
        "legacy tenant-exclusive pairs never mix tenants",
        g(ha_mode=LEGACY, tenant_scope=TenantScope.SE_GROUP_EXCLUSIVE),
        [],
        [],
        [vs(1, "t1"), vs(2, "t2")],
        {"new-1": ["1P"], "new-2": ["1B"], "new-3": ["2P"], "new-4": ["2B"]},
    ),
    Case(
        "legacy: an unpaired idle SE becomes the standby before a new one is made",
        g(ha_mode=LEGACY),
        [se("se-a"), se("se-b", DOWN), se("se-c")],
        on("se-a", "1P") + on("se-b", "1B"),
        [vs(1)],
        {"se-a": ["1P"], "se-c": ["1B"]},
    ),
]


def _hosts(
    case: Case, plan_placements: dict[str, list[Placement]], new_keys: list[str]
) -> dict[str, list[str]]:
    letters = {role: letter for letter, role in LETTERS.items()}
    hosts: dict[str, list[str]] = {key: [] for key in new_keys}
    for placements in plan_placements.values():
        for p in placements:
            hosts.setdefault(p.se_uuid, []).append(f"{int(p.vs_uuid[2:])}{letters[p.role]}")
    for key, busy in case.hosts.items():
        if not busy:
            hosts.setdefault(key, [])
    return {k: sorted(v, key=lambda s: (int(s[:-1]), s)) for k, v in hosts.items() if v or k in case.hosts}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_placement(case: Case) -> None:
    plan = place([case.group, GroupPolicy("other")], case.ses, case.current, case.demands)
    assert _hosts(case, plan.placements, [n.key for n in plan.new_ses]) == case.hosts
    assert sorted(int(v[2:]) for v in plan.unplaced) == case.unplaced
    assert all("max_se" in reason for reason in plan.unplaced.values())
    assert sorted(int(v[2:]) for v in plan.short) == case.short
    assert sorted(plan.idle_ses) == case.idle
    assert [n.key for n in plan.new_ses] == sorted(k for k in case.hosts if k.startswith("new-"))
    for placements in plan.placements.values():
        roles = [p.role for p in placements]
        if any(r != Role.DRAINING for r in roles):
            assert roles.count(Role.PRIMARY) == 1 and roles[0] == Role.PRIMARY
        assert len({p.se_uuid for p in placements}) == len(placements), "a VS twice on one SE"


def test_new_ses_of_exclusive_groups_belong_to_the_tenant() -> None:
    plan = place(
        [GroupPolicy("g", tenant_scope=TenantScope.SE_GROUP_EXCLUSIVE)], [], [], [vs(1, "t1"), vs(2, "t2")]
    )
    assert sorted((n.key, n.tenant_uuid) for n in plan.new_ses) == [("new-1", "t1"), ("new-2", "t2")]


def test_a_vs_of_an_unknown_group_is_refused() -> None:
    plan = place([GroupPolicy("g")], [], [], [vs(1, group="gone")])
    assert plan.unplaced == {"vs01": "its SE group does not exist"}


def test_placement_is_stable_when_applied_to_its_own_result() -> None:
    """Feeding a plan back (with its new SEs up) changes nothing: the reconciler converges."""
    for case in CASES:
        groups = [case.group, GroupPolicy("other")]
        plan = place(groups, case.ses, case.current, case.demands)
        ses = [s for s in case.ses if s.status != DOWN] + [
            SeView(n.key, n.group_uuid, UP, n.tenant_uuid) for n in plan.new_ses
        ]
        current = [p for ps in plan.placements.values() for p in ps]
        again = place(groups, ses, current, case.demands)
        assert again.placements == plan.placements, case.name
        assert again.new_ses == [], case.name
