"""The pure decisions of an SE apply: reload or runtime, which runtime commands, and the CLI parsers."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulcrum.protocol.se import (
    Algorithm,
    AppType,
    CertificateSpec,
    HttpSettings,
    ListenerSpec,
    MonitorSpec,
    MonitorType,
    PeerState,
    PersistenceKind,
    PersistenceSpec,
    PoolSpec,
    ScaleOutPeer,
    ScaleOutSpec,
    SeConfig,
    ServerSpec,
    VsRole,
    VsSpec,
)
from fulcrum.se.haproxy import parse_show_proc
from fulcrum.se.plan import (
    AddServer,
    AdminState,
    DeleteServer,
    EnableHealth,
    ObservedServer,
    SetState,
    SetWeight,
    admin_state_from_flags,
    plan_convergence,
    reload_reason,
)
from fulcrum.se.render import RuntimePaths, build_view, server_arguments
from fulcrum.se.render.view import View
from fulcrum.se.runtime import parse_servers_state, parse_show_stat

PATHS = RuntimePaths(Path("/run/fulcrum/se-1"))
CHECK = MonitorSpec(name="tcp", type=MonitorType.TCP, interval_s=2, timeout_s=1, rise=1, fall=2)
A = ServerSpec(id="10.0.0.1:80", ip="10.0.0.1", port=80, weight=1)
B = ServerSpec(id="10.0.0.2:80", ip="10.0.0.2", port=80, weight=1)
C = ServerSpec(id="10.0.0.3:80", ip="10.0.0.3", port=80, weight=1)
POOL = PoolSpec(uuid="pool-1", name="p", algorithm=Algorithm.ROUND_ROBIN, servers=(A, B), monitors=(CHECK,))
VS = VsSpec(
    uuid="vs-1",
    name="web",
    tenant_uuid="t",
    vips=("10.9.0.1",),
    listeners=(ListenerSpec(port=80),),
    app_type=AppType.HTTP,
    pool=POOL,
)
COOKIE = PersistenceSpec(kind=PersistenceKind.HTTP_COOKIE)
BE = "be_vs-1"
BD = "bd_vs-1"  # the scale-out distributor's backend


def peer(uuid: str, state: PeerState = PeerState.READY, address: str | None = None) -> ScaleOutPeer:
    """Scale-out peer `se-<n>`, by default at 10.8.0.<n>."""
    return ScaleOutPeer(se_uuid=uuid, address=address or f"10.8.0.{uuid[3:]}", state=state)


def scaled(*peers: ScaleOutPeer, offset: int = 20000, role: VsRole = VsRole.PRIMARY) -> VsSpec:
    scaleout = ScaleOutSpec(worker_address="10.8.0.1", worker_port_offset=offset, peers=peers)
    return VS.model_copy(update={"role": role, "scaleout": scaleout})


def view_of(*virtualservices: VsSpec) -> View:
    return build_view(SeConfig(se_uuid="se", version=1, virtualservices=virtualservices), PATHS)


def with_pool(**changes: object) -> VsSpec:
    return VS.model_copy(update={"pool": POOL.model_copy(update=changes)})


# (what changes, old VSs, new VSs, expected reason or None for "runtime only")
RELOAD_CASES: list[tuple[str, tuple[VsSpec, ...], tuple[VsSpec, ...], str | None]] = [
    ("nothing", (VS,), (VS,), None),
    ("a server's weight", (VS,), (with_pool(servers=(A, B.model_copy(update={"weight": 5}))),), None),
    ("a server disabled", (VS,), (with_pool(servers=(A, B.model_copy(update={"enabled": False}))),), None),
    ("the pool disabled", (VS,), (with_pool(enabled=False),), None),
    ("the graceful timeout (drain vs maint)", (VS,), (with_pool(graceful_disable_timeout_s=0),), None),
    ("a server added", (VS,), (with_pool(servers=(A, B, C)),), None),
    ("a server removed", (VS,), (with_pool(servers=(A,)),), None),
    ("a server replaced (new port = new id)", (VS,), (with_pool(servers=(A, C)),), None),
    ("servers reordered", (VS,), (with_pool(servers=(B, A)),), None),
    (
        "a server added with cookie persistence",
        (with_pool(persistence=COOKIE),),
        (with_pool(persistence=COOKIE, servers=(A, B, C)),),
        "cannot add servers at runtime",
    ),
    (
        "a server removed with cookie persistence",
        (with_pool(persistence=COOKIE),),
        (with_pool(persistence=COOKIE, servers=(A,)),),
        None,
    ),
    (
        "a server's monitor port",
        (VS,),
        (with_pool(servers=(A, B.model_copy(update={"monitor_port": 81}))),),
        "server be_vs-1/10.0.0.2_80 changed",
    ),
    ("the algorithm", (VS,), (with_pool(algorithm=Algorithm.LEAST_CONNECTIONS),), "backend be_vs-1 settings"),
    ("the monitors", (VS,), (with_pool(monitors=()),), "backend be_vs-1 settings"),
    ("persistence", (VS,), (with_pool(persistence=COOKIE),), "backend be_vs-1 settings"),
    ("a new VS", (VS,), (VS, VS.model_copy(update={"uuid": "vs-2"})), "frontends changed"),
    ("a VS disabled", (VS,), (VS.model_copy(update={"enabled": False}),), "frontends changed"),
    ("a listener", (VS,), (VS.model_copy(update={"listeners": (ListenerSpec(port=81),)}),), "frontends"),
    ("HTTP settings", (VS,), (VS.model_copy(update={"http": HttpSettings(hsts=True)}),), "frontends"),
    ("a pool attached", (VS.model_copy(update={"pool": None}),), (VS,), "frontends changed"),
    ("a peer added", (scaled(peer("se-1")),), (scaled(peer("se-1"), peer("se-2")),), None),
    ("a peer removed", (scaled(peer("se-1"), peer("se-2")),), (scaled(peer("se-1")),), None),
    (
        "a peer drained",
        (scaled(peer("se-1"), peer("se-2")),),
        (scaled(peer("se-1"), peer("se-2", PeerState.DRAIN)),),
        None,
    ),
    (
        "a peer's address",
        (scaled(peer("se-1")),),
        (scaled(peer("se-1", address="10.8.9.9")),),
        "server bd_vs-1/se_se-1 changed",
    ),
    (
        "the worker port offset",
        (scaled(peer("se-1")),),
        (scaled(peer("se-1"), offset=30000),),
        "frontends",
    ),
    ("scaled out", (VS,), (scaled(peer("se-1")),), "frontends changed"),
    ("back to direct", (scaled(peer("se-1")),), (VS,), "frontends changed"),
    (
        "primary to secondary",
        (scaled(peer("se-1")),),
        (scaled(role=VsRole.SECONDARY),),
        "frontends changed",
    ),
    ("to standby", (VS,), (VS.model_copy(update={"role": VsRole.STANDBY}),), "frontends changed"),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"), [c[1:] for c in RELOAD_CASES], ids=[c[0] for c in RELOAD_CASES]
)
def test_only_server_level_changes_avoid_a_reload(
    old: tuple[VsSpec, ...], new: tuple[VsSpec, ...], expected: str | None
) -> None:
    reason = reload_reason(view_of(*old), view_of(*new))
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


def test_a_certificate_change_needs_a_reload() -> None:
    cert = CertificateSpec(uuid="c", name="c", certificate_pem="CERT", key_pem="KEY")
    tls = VS.model_copy(update={"listeners": (ListenerSpec(port=443, tls=True),), "certificates": (cert,)})
    renewed = tls.model_copy(update={"certificates": (cert.model_copy(update={"key_pem": "NEW"}),)})
    assert reload_reason(view_of(tls), view_of(renewed)) == "frontends changed"


def test_nothing_applied_yet_means_reload() -> None:
    assert reload_reason(None, view_of(VS)) == "no previously applied configuration"


# --- convergence ----------------------------------------------------------------------------------


def observed(name: str, flags: int = 0, weight: int = 1) -> ObservedServer:
    return ObservedServer(backend=BE, name=name, admin_flags=flags, user_weight=weight)


def peer_seen(name: str, flags: int = 0) -> ObservedServer:
    return ObservedServer(backend=BD, name=name, admin_flags=flags, user_weight=1)


@pytest.mark.parametrize(
    ("flags", "state"),
    [
        (0x00, AdminState.READY),
        (0x04, AdminState.READY),  # `disabled` in the config, then set ready at runtime
        (0x05, AdminState.MAINT),  # `disabled` in the config
        (0x01, AdminState.MAINT),
        (0x08, AdminState.DRAIN),
        (0x0C, AdminState.DRAIN),
        (0x09, AdminState.MAINT),  # maintenance wins over drain
        (0x20, AdminState.MAINT),  # address resolution failed
    ],
)
def test_admin_state_from_show_servers_state_flags(flags: int, state: AdminState) -> None:
    assert admin_state_from_flags(flags) is state


def test_convergence_of_a_matching_haproxy_is_empty() -> None:
    plan = plan_convergence(view_of(VS), {BE}, [observed("10.0.0.1_80"), observed("10.0.0.2_80")])
    assert plan.ops == () and plan.missing_backends == ()


def test_convergence_adds_checks_and_enables_new_servers_after_deleting_old_ones() -> None:
    view = view_of(with_pool(servers=(A, C)))
    backend = view["backends"][0]
    new_server = backend["servers"][1]

    plan = plan_convergence(view, {BE}, [observed("10.0.0.1_80"), observed("10.0.0.2_80")])

    assert plan.ops == (
        DeleteServer(BE, "10.0.0.2_80"),
        AddServer(BE, "10.0.0.3_80", "10.0.0.3:80", server_arguments(backend, new_server)),
        EnableHealth(BE, "10.0.0.3_80"),
        SetState(BE, "10.0.0.3_80", AdminState.READY),
    )
    assert "cookie" not in plan.ops[1].arguments  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("graceful_s", "enabled", "seen_flags", "expected"),
    [
        (60, False, 0x00, (SetState(BE, "10.0.0.2_80", AdminState.DRAIN),)),
        (0, False, 0x00, (SetState(BE, "10.0.0.2_80", AdminState.MAINT),)),
        (60, False, 0x0C, ()),  # already draining
        (60, True, 0x05, (SetState(BE, "10.0.0.2_80", AdminState.READY),)),  # re-enabled, still `disabled`
        (0, False, 0x05, ()),
    ],
)
def test_convergence_drains_or_stops_disabled_servers(
    graceful_s: int, enabled: bool, seen_flags: int, expected: tuple[SetState, ...]
) -> None:
    servers = (A, B.model_copy(update={"enabled": enabled}))
    view = view_of(with_pool(servers=servers, graceful_disable_timeout_s=graceful_s))
    plan = plan_convergence(view, {BE}, [observed("10.0.0.1_80"), observed("10.0.0.2_80", seen_flags)])
    assert plan.ops == expected


def test_convergence_adds_a_scale_out_peer_with_the_proxy_protocol_and_a_port_offset() -> None:
    view = view_of(scaled(peer("se-1"), peer("se-2")))
    distributor = view["backends"][1]
    new_peer = distributor["servers"][1]

    plan = plan_convergence(
        view, {BE, BD}, [observed("10.0.0.1_80"), observed("10.0.0.2_80"), peer_seen("se_se-1")]
    )

    arguments = server_arguments(distributor, new_peer)
    assert plan.ops == (
        AddServer(BD, "se_se-2", "10.8.0.2:+20000", arguments),
        EnableHealth(BD, "se_se-2"),
        SetState(BD, "se_se-2", AdminState.READY),
    )
    # Checked on the first worker port, with the PROXY header the worker insists on.
    assert arguments.endswith(
        "weight 1 send-proxy-v2 check check-send-proxy inter 1s fall 2 rise 1 port 20080"
    )


def test_convergence_drains_and_removes_scale_out_peers() -> None:
    seen = [observed("10.0.0.1_80"), observed("10.0.0.2_80"), peer_seen("se_se-1"), peer_seen("se_se-2")]
    drained = plan_convergence(view_of(scaled(peer("se-1"), peer("se-2", PeerState.DRAIN))), {BE, BD}, seen)
    removed = plan_convergence(view_of(scaled(peer("se-1"))), {BE, BD}, seen)

    assert drained.ops == (SetState(BD, "se_se-2", AdminState.DRAIN),)
    assert removed.ops == (DeleteServer(BD, "se_se-2"),)


def test_convergence_restores_weights_and_reports_missing_backends() -> None:
    view = view_of(with_pool(servers=(A.model_copy(update={"weight": 4}), B)))
    plan = plan_convergence(
        view, {BE}, [observed("10.0.0.1_80", weight=1), observed("10.0.0.2_80", weight=9)]
    )
    assert plan.ops == (SetWeight(BE, "10.0.0.1_80", 4), SetWeight(BE, "10.0.0.2_80", 1))
    assert plan_convergence(view, set(), []).missing_backends == (BE,)


# --- CLI parsers ----------------------------------------------------------------------------------

SHOW_PROC = """\
#<PID>          <type>          <reloads>       <uptime>        <version>
15496           master          3 [failed: 1]   0d00h00m17s     2.6.12-1+deb12u4
# workers
16027           worker          0               0d00h00m00s     2.6.12-1+deb12u4
# old workers
15999           worker          1               0d00h00m09s     2.6.12-1+deb12u4
# programs

"""

SERVERS_STATE = """\
1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 be_a 123456789 s1 127.0.0.1 0 0 3 3 5 8 2 0 6 0 0 1 - 80 - 0 0 - - 0
3 be_a 2 s2 ::1 0 12 7 1 5 1 0 0 14 0 0 0 - 80 - 0 8080 127.0.0.2 127.0.0.2 8080

"""  # noqa: E501

SHOW_STAT = """\
# pxname,svname,qcur,status,weight,
fe_a,FRONTEND,,OPEN,,
be_a,s1,0,UP,3,
be_a,s2,0,DRAIN,7,

"""


def test_show_proc_is_parsed_into_current_and_old_workers() -> None:
    table = parse_show_proc(SHOW_PROC)
    assert (table.master_pid, table.reloads, table.failed_reloads) == (15496, 3, 1)
    assert (table.workers, table.old_workers) == ((16027,), (15999,))


def test_show_servers_state_is_parsed() -> None:
    assert parse_servers_state(SERVERS_STATE) == [
        ObservedServer("be_a", "s1", admin_flags=0, user_weight=3),
        ObservedServer("be_a", "s2", admin_flags=12, user_weight=7),
    ]


def test_show_stat_csv_is_parsed_by_column_name() -> None:
    rows = parse_show_stat(SHOW_STAT)
    assert [(r["pxname"], r["svname"], r["status"]) for r in rows] == [
        ("fe_a", "FRONTEND", "OPEN"),
        ("be_a", "s1", "UP"),
        ("be_a", "s2", "DRAIN"),
    ]


def test_a_negative_port_offset_is_rendered_with_its_sign() -> None:
    """High listener ports shift down (the controller picks -20000 when +20000 would pass 65535)."""
    high = scaled(peer("se-1"), offset=-20000).model_copy(update={"listeners": (ListenerSpec(port=50000),)})
    server = view_of(high)["backends"][1]["servers"][0]
    assert (server["address"], server["check_port"]) == ("10.8.0.1:-20000", 30000)
