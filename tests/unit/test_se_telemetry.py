"""HAProxy statistics become heartbeat server states and counters keyed by the controller's ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulcrum.protocol.se import (
    Algorithm,
    AppType,
    ListenerSpec,
    PeerHealth,
    PoolSpec,
    ScaleOutPeer,
    ScaleOutSpec,
    SeConfig,
    ServerHealth,
    ServerSpec,
    ServerState,
    VsCounters,
    VsRole,
    VsSpec,
)
from fulcrum.se.render import RuntimePaths, build_view
from fulcrum.se.telemetry import health_of, peer_states, server_states, vs_counters

A = ServerSpec(id="10.0.0.1:80", ip="10.0.0.1", port=80, weight=1)
B = ServerSpec(id="[fd00::2]:80", ip="fd00::2", port=80, weight=1)
POOL = PoolSpec(uuid="pool-1", name="p", algorithm=Algorithm.ROUND_ROBIN, servers=(A, B))


def vs(uuid: str) -> VsSpec:
    return VsSpec(
        uuid=uuid,
        name=uuid,
        tenant_uuid="t",
        vips=("10.9.0.1",),
        listeners=(ListenerSpec(port=80),),
        app_type=AppType.HTTP,
        pool=POOL,
    )


VIEW = build_view(
    SeConfig(se_uuid="se", version=1, virtualservices=(vs("vs-1"), vs("vs-2"))), RuntimePaths(Path("/run/se"))
)


@pytest.mark.parametrize(
    ("status", "health"),
    [
        ("UP", ServerHealth.UP),
        ("UP 1/3", ServerHealth.UP),
        ("DOWN", ServerHealth.DOWN),
        ("DOWN 1/2", ServerHealth.DOWN),
        ("MAINT", ServerHealth.DISABLED),
        ("MAINT (resolution)", ServerHealth.DISABLED),
        ("DRAIN", ServerHealth.DRAINING),
        ("NOLB", ServerHealth.DRAINING),
        ("no check", ServerHealth.UP),
        ("", ServerHealth.UNKNOWN),
    ],
)
def test_haproxy_status_maps_to_server_health(status: str, health: ServerHealth) -> None:
    assert health_of(status) is health


def test_server_states_use_pool_and_server_ids_once_per_pool_server() -> None:
    rows = [
        {
            "pxname": "be_vs-1",
            "svname": "10.0.0.1_80",
            "status": "UP",
            "scur": "3",
            "check_status": "L7OK",
            "check_code": "200",
            "last_chk": "",
        },
        {
            "pxname": "be_vs-1",
            "svname": "fd00__2_80",
            "status": "DOWN",
            "scur": "",
            "check_status": "L4CON",
            "check_code": "",
            "last_chk": "Connection refused",
        },
        {"pxname": "be_vs-2", "svname": "10.0.0.1_80", "status": "DOWN", "scur": "0"},
    ]
    assert server_states(VIEW, rows) == [
        ServerState(
            pool_uuid="pool-1",
            server_id="10.0.0.1:80",
            health=ServerHealth.UP,
            reason="L7OK 200",
            current_sessions=3,
        ),
        ServerState(
            pool_uuid="pool-1",
            server_id="[fd00::2]:80",
            health=ServerHealth.DOWN,
            reason="L4CON Connection refused",
        ),
    ]


def test_a_server_missing_from_the_statistics_is_unknown() -> None:
    assert {s.health for s in server_states(VIEW, [])} == {ServerHealth.UNKNOWN}


def test_counters_come_from_each_virtual_services_frontend() -> None:
    rows = [
        {
            "pxname": "fe_vs-1",
            "svname": "FRONTEND",
            "scur": "2",
            "stot": "10",
            "bin": "100",
            "bout": "900",
            "hrsp_2xx": "8",
            "hrsp_4xx": "1",
            "hrsp_5xx": "1",
        },
        {"pxname": "be_vs-1", "svname": "BACKEND", "scur": "7"},
    ]
    assert vs_counters(VIEW, rows) == [
        VsCounters(
            vs_uuid="vs-1",
            current_sessions=2,
            total_sessions=10,
            bytes_in=100,
            bytes_out=900,
            http_responses_2xx=8,
            http_responses_4xx=1,
            http_responses_5xx=1,
        )
    ]


def test_a_scaled_out_vs_reports_pool_servers_and_worker_counters_only() -> None:
    scaleout = ScaleOutSpec(
        worker_address="10.8.0.1",
        worker_port_offset=20000,
        peers=(
            ScaleOutPeer(se_uuid="se-1", address="10.8.0.1"),
            ScaleOutPeer(se_uuid="se-2", address="10.8.0.2"),
        ),
    )
    primary = vs("vs-1").model_copy(update={"scaleout": scaleout})
    warm_pool = POOL.model_copy(update={"uuid": "pool-2", "servers": (A,)})
    standby = vs("vs-2").model_copy(update={"role": VsRole.STANDBY, "pool": warm_pool})
    view = build_view(
        SeConfig(se_uuid="se-1", version=1, virtualservices=(primary, standby)), RuntimePaths(Path("/run/se"))
    )
    rows = [
        {"pxname": "fd_vs-1", "svname": "FRONTEND", "scur": "9", "stot": "90"},  # the distributor
        {
            "pxname": "fe_vs-1",
            "svname": "FRONTEND",
            "scur": "4",
            "stot": "45",
            "hrsp_2xx": "40",
        },  # the worker
        {"pxname": "bd_vs-1", "svname": "se_se-1", "status": "UP", "scur": "5"},
        {"pxname": "bd_vs-1", "svname": "se_se-2", "status": "DOWN", "scur": "4"},
        {"pxname": "be_vs-1", "svname": "10.0.0.1_80", "status": "UP", "scur": "4"},
        {"pxname": "be_vs-2", "svname": "10.0.0.1_80", "status": "DOWN", "scur": "0"},
    ]

    states = server_states(view, rows)
    counters = vs_counters(view, rows)

    assert {(s.pool_uuid, s.server_id, s.health) for s in states} == {
        ("pool-1", "10.0.0.1:80", ServerHealth.UP),
        ("pool-1", "[fd00::2]:80", ServerHealth.UNKNOWN),
        ("pool-2", "10.0.0.1:80", ServerHealth.DOWN),  # a standby's servers are checked and reported
    }
    assert counters == [
        VsCounters(vs_uuid="vs-1", current_sessions=4, total_sessions=45, http_responses_2xx=40)
    ]  # the standby binds nothing, so it counts nothing
    # The distributor's view of its peers goes to the controller, which admits a secondary only when
    # the primary sees its worker up.
    assert peer_states(view, rows) == [
        PeerHealth(vs_uuid="vs-1", se_uuid="se-1", health=ServerHealth.UP),
        PeerHealth(vs_uuid="vs-1", se_uuid="se-2", health=ServerHealth.DOWN),
    ]
