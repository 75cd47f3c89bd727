"""Elastic HA with real SEs: placement per HA mode, failover, scale-out/in, migration, switchover,
heartbeat-based healing and the circuit breaker.

A controller process with its data plane runs SEs (agent + HAProxy) through the local cloud; traffic
goes to VIPs in 127.100.0.0/16 and reaches back ends on 127.0.0.1. SEs are killed with SIGKILL or
frozen with SIGSTOP by the PIDs their runtime reports, never by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.fullstack import (
    SLOW_CHUNKS,
    Load,
    SlowDownload,
    Stack,
    running_stack,
    se_pids,
    signal_all,
    wait_for,
)
from support.processes import ADMIN_PASSWORD, free_port

pytestmark = pytest.mark.slow

Api = httpx.Client


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as running:
        yield running


# --- helpers --------------------------------------------------------------------------------------


def make_group(api: Api, name: str, ha_mode: str, **settings: Any) -> dict[str, Any]:
    body = {"name": name, "ha_mode": ha_mode, "se_deprovision_delay": 0, **settings}
    response = api.post("/api/serviceenginegroup", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def make_vs(api: Api, stack: Stack, group: dict[str, Any], name: str, vip: str) -> dict[str, Any]:
    servers = [{"ip": "127.0.0.1", "port": b.port} for b in stack.backends]
    pool = api.post("/api/pool", json={"name": f"{name}-pool", "servers": servers})
    assert pool.status_code == 201, pool.text
    body = {
        "name": name,
        "services": [{"port": free_port()}],
        "pool_ref": pool.json()["url"],
        "vip": [{"ip_address": vip}],
        "se_group_ref": group["url"],
    }
    vs = api.post("/api/virtualservice", json=body)
    assert vs.status_code == 201, vs.text
    data = vs.json()
    data["vip_url"] = f"http://{vip}:{body['services'][0]['port']}"  # type: ignore[index]
    return data  # type: ignore[no-any-return]


def runtime(api: Api, vs: dict[str, Any]) -> dict[str, Any]:
    return api.get(f"{vs['url']}/runtime").json()  # type: ignore[no-any-return]


def roles(api: Api, vs: dict[str, Any]) -> dict[str, str]:
    """SE uuid -> role for the VS."""
    return {se["se_uuid"]: se["role"] for se in runtime(api, vs)["service_engines"]}


def group_ses(api: Api, group: dict[str, Any]) -> list[dict[str, Any]]:
    ses = api.get("/api/serviceengine", params={"page_size": 100}).json()["results"]
    return [se for se in ses if se["se_group_ref"].endswith(group["uuid"])]


def se_runtime(api: Api, se_uuid: str) -> dict[str, Any]:
    return api.get(f"/api/serviceengine/{se_uuid}/runtime").json()  # type: ignore[no-any-return]


def events(api: Api, event_id: str, obj_uuid: str | None = None) -> list[dict[str, Any]]:
    found = api.get("/api/event", params={"event_id": event_id, "page_size": 100}).json()["results"]
    return [e for e in found if obj_uuid is None or e["obj_ref"].endswith(obj_uuid)]


def healthy(api: Api, vs: dict[str, Any], ses: int, role_set: set[str]) -> dict[str, str] | None:
    """The VS's roles once it is up with `ses` SEs, all up, with exactly these roles."""
    state = runtime(api, vs)
    current = {se["se_uuid"]: se["role"] for se in state["service_engines"]}
    if (
        state["oper_status"] == "OPER_UP"
        and state["ha_ok"]
        and len(current) == ses
        and set(current.values()) == role_set
        and all(se["oper_status"] == "OPER_UP" for se in state["service_engines"])
    ):
        return current
    return None


def served_by(api: Api, vs: dict[str, Any], se_uuids: list[str]) -> dict[str, int]:
    """HTTP 2xx answers each SE's frontend for the VS has sent so far (from heartbeats; health checks
    of the primary's distributor open connections too, so sessions would overcount)."""
    totals = {}
    for se_uuid in se_uuids:
        entry = next(
            v for v in se_runtime(api, se_uuid)["virtualservices"] if v["vs_ref"].endswith(vs["uuid"])
        )
        totals[se_uuid] = (entry["counters"] or {}).get("http_responses_2xx", 0)
    return totals


def fulcrum(stack: Stack, *args: str) -> str:
    """Runs the `fulcrum` CLI against the stack's controller; returns its output (exit 0 required)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULCRUM_")}
    env.update(FULCRUM_URL=stack.controller.url, FULCRUM_USER="admin", FULCRUM_PASSWORD=ADMIN_PASSWORD)
    proc = subprocess.run(
        [sys.executable, "-m", "fulcrum", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def kill_se(api: Api, se_uuid: str) -> float:
    pids = se_pids(se_runtime(api, se_uuid))
    assert len(pids) >= 3, f"expected agent, HAProxy master and worker, got {pids}"
    signal_all(pids, signal.SIGKILL)
    return time.monotonic()


def failures_after(load: Load, start: float) -> list[tuple[float, str]]:
    return [(round(t - start, 2), e) for t, e in load.failures]


# --- N+M ------------------------------------------------------------------------------------------


def test_shared_n_plus_m_keeps_a_buffer_and_fails_over_to_it(stack: Stack) -> None:
    with stack.controller.client() as api:
        group = make_group(api, "nm", "HA_MODE_SHARED", buffer_se=1, max_vs_per_se=2)
        vs = make_vs(api, stack, group, "nm-vs", "127.100.20.1")
        first = wait_for("VS up on one SE", lambda: healthy(api, vs, 1, {"primary"}))
        primary = next(iter(first))
        # N+M: one SE carries the VS, one empty SE is the buffer.
        ses = wait_for("a buffer SE", lambda: len(g := group_ses(api, group)) == 2 and g)
        buffer = next(se["uuid"] for se in ses if se["uuid"] != primary)
        assert se_runtime(api, buffer)["virtualservices"] == []

        with Load(vs["vip_url"]) as load:
            time.sleep(0.5)
            killed = kill_se(api, primary)
            after = wait_for(
                "the VS on the buffer SE",
                lambda: (h := healthy(api, vs, 1, {"primary"})) and primary not in h and h,
                every=0.05,
            )
            restored = time.monotonic() - killed
            time.sleep(0.5)
        assert after == {buffer: "primary"}, after
        assert restored < 5, restored
        assert load.ok > 20
        # Only requests in the failover window failed.
        assert all(t < restored + 0.5 for t, _ in failures_after(load, killed)), load.failures
        assert httpx.get(vs["vip_url"], timeout=5).status_code == 200  # the same VIP

        # A replacement SE restores the buffer; the dead one is gone.
        wait_for(
            "the buffer restored",
            lambda: len(g := group_ses(api, group)) == 2 and primary not in {s["uuid"] for s in g},
        )
        assert events(api, "SE_DOWN", primary)
        wait_for("VS_SE_HA_ACTIVE", lambda: events(api, "VS_SE_HA_ACTIVE", vs["uuid"]))
        assert events(api, "VS_SE_HA_COMPROMISED", vs["uuid"])

        # Migrate to the buffer SE: an established download through the old SE completes.
        target = next(se["uuid"] for se in group_ses(api, group) if se["uuid"] != buffer)
        wait_for("target up", lambda: se_runtime(api, target)["oper_status"] == "OPER_UP")
        slow = SlowDownload(f"{vs['vip_url']}/slow")
        time.sleep(0.5)
        with Load(vs["vip_url"]) as load:
            moved = api.post(f"{vs['url']}/migrate", json={"to_se_ref": target})
            assert moved.status_code == 202, moved.text
            wait_for("VS_MIGRATE_COMPLETE", lambda: events(api, "VS_MIGRATE_COMPLETE", vs["uuid"]))
            wait_for("VS on the target", lambda: healthy(api, vs, 1, {"primary"}) == {target: "primary"})
            time.sleep(0.3)
        assert slow.result() == (SLOW_CHUNKS * 1000, None)
        assert load.failures == [] and load.ok > 10
        assert api.delete(vs["url"]).status_code == 204


# --- active/active --------------------------------------------------------------------------------


def test_active_active_spreads_heals_scales_and_drains(stack: Stack) -> None:  # noqa: PLR0915 - one story
    with stack.controller.client() as api:
        group = make_group(api, "aa", "HA_MODE_SHARED_PAIR", buffer_se=0, max_vs_per_se=2)
        vs = make_vs(api, stack, group, "aa-vs", "127.100.21.1")
        placed = wait_for("VS on two SEs", lambda: healthy(api, vs, 2, {"primary", "secondary"}))
        primary = next(se for se, role in placed.items() if role == "primary")
        secondary = next(se for se, role in placed.items() if role == "secondary")

        # New connections are spread over both SEs, and back ends see the real client address.
        local = httpx.HTTPTransport(local_address="127.0.0.77")
        with httpx.Client(transport=local, timeout=5) as client:
            for _ in range(40):
                response = client.get(vs["vip_url"], headers={"Connection": "close"})
                assert response.status_code == 200
                assert response.headers["X-Seen-XFF"] == "127.0.0.77"

        def both_served() -> dict[str, int] | None:
            counts = served_by(api, vs, [primary, secondary])
            print("answers per SE:", counts)  # shown if the wait times out
            return counts if all(n >= 10 for n in counts.values()) else None

        spread = wait_for("both SEs to report connections", both_served)
        assert sum(spread.values()) >= 40

        # Losing the primary: the secondary takes the VIP, a replacement secondary is placed.
        with Load(vs["vip_url"]) as load:
            time.sleep(0.5)
            killed = kill_se(api, primary)
            wait_for("the secondary promoted", lambda: roles(api, vs).get(secondary) == "primary", every=0.05)
            healed = wait_for("a new secondary", lambda: healthy(api, vs, 2, {"primary", "secondary"}))
            time.sleep(0.3)
        assert healed[secondary] == "primary" and primary not in healed
        assert load.ok > 20
        assert all(t < 3 for t, _ in failures_after(load, killed)), load.failures
        wait_for("VS_SE_HA_ACTIVE", lambda: events(api, "VS_SE_HA_ACTIVE", vs["uuid"]))

        # Scale out to a new SE: three SEs serve; nothing fails meanwhile.
        with Load(vs["vip_url"]) as load:
            out = api.post(f"{vs['url']}/scaleout", json={"to_new_se": True})
            assert out.status_code == 202, out.text
            three = wait_for(
                "VS on three SEs", lambda: healthy(api, vs, 3, {"primary", "secondary"}), timeout=40
            )
            wait_for("VS_SCALEOUT_COMPLETE", lambda: events(api, "VS_SCALEOUT_COMPLETE", vs["uuid"]))
            time.sleep(0.5)
        assert load.failures == [] and load.ok > 10
        before = served_by(api, vs, list(three))
        for _ in range(30):
            assert httpx.get(vs["vip_url"], headers={"Connection": "close"}, timeout=5).status_code == 200

        def all_three() -> dict[str, int] | None:
            gained = {se: n - before[se] for se, n in served_by(api, vs, list(three)).items()}
            print("new answers per SE:", gained)  # shown if the wait times out
            return gained if all(n >= 5 for n in gained.values()) else None

        wait_for("every SE of three to take new connections", all_three)

        # Scale in: the drained SE finishes its established connections first.
        leaving = sorted(se for se, role in three.items() if role == "secondary")[-1]
        downloads = [SlowDownload(f"{vs['vip_url']}/slow") for _ in range(6)]
        time.sleep(0.5)
        with Load(vs["vip_url"]) as load:
            scaled_in = api.post(f"{vs['url']}/scalein", json={"from_se_ref": leaving})
            assert scaled_in.status_code == 202, scaled_in.text
            assert wait_for("draining", lambda: roles(api, vs).get(leaving) == "draining")
            assert not events(api, "VS_SCALEIN_COMPLETE", vs["uuid"])  # downloads are still running
            for download in downloads:
                assert download.result() == (SLOW_CHUNKS * 1000, None)
            wait_for("VS_SCALEIN_COMPLETE", lambda: events(api, "VS_SCALEIN_COMPLETE", vs["uuid"]))
            two = wait_for("VS on two SEs", lambda: healthy(api, vs, 2, {"primary", "secondary"}))
        assert leaving not in two
        assert load.failures == [] and load.ok > 10

        # Switchover in elastic mode: the secondary becomes the primary and back.
        for _ in range(2):
            old = {role: se for se, role in roles(api, vs).items()}
            assert api.post(f"{vs['url']}/switchover").status_code == 202
            wait_for(
                "roles swapped",
                lambda old=old: (
                    healthy(api, vs, 2, {"primary", "secondary"})
                    == {old["primary"]: "secondary", old["secondary"]: "primary"}
                ),
            )
        assert api.delete(vs["url"]).status_code == 204


def test_controller_restart_under_load_fails_nothing_and_reloads_nothing(stack: Stack) -> None:
    with stack.controller.client() as api:
        group = make_group(api, "restart", "HA_MODE_SHARED_PAIR", buffer_se=0)
        vs = make_vs(api, stack, group, "restart-vs", "127.100.22.1")
        placed = wait_for("VS on two SEs", lambda: healthy(api, vs, 2, {"primary", "secondary"}))
        masters = {se: se_runtime(api, se)["cloud"]["haproxy_master_pid"] for se in placed}
        workers = {se: se_pids(se_runtime(api, se)) for se in placed}
    with Load(vs["vip_url"]) as load:
        time.sleep(0.5)
        assert stack.controller.terminate() == 0
        time.sleep(1.5)  # headless: the SEs keep serving
        stack.controller.start()
        with stack.controller.client() as api:
            wait_for("VS up again", lambda: healthy(api, vs, 2, {"primary", "secondary"}) == placed)
            time.sleep(1.5)
    assert load.failures == [] and load.ok > 50
    with stack.controller.client() as api:
        for se, pid in masters.items():
            assert se_runtime(api, se)["cloud"]["haproxy_master_pid"] == pid
            assert se_pids(se_runtime(api, se)) == workers[se], "an SE reloaded after the restart"
        assert api.delete(vs["url"]).status_code == 204


# --- legacy active/standby ------------------------------------------------------------------------


def test_legacy_active_standby_switchover_and_failover(stack: Stack) -> None:
    with stack.controller.client() as api:
        group = make_group(api, "legacy", "HA_MODE_LEGACY_ACTIVE_STANDBY", max_vs_per_se=2)
        vs = make_vs(api, stack, group, "legacy-vs", "127.100.23.1")
        pair = wait_for("active and standby", lambda: healthy(api, vs, 2, {"primary", "standby"}))
        active = next(se for se, role in pair.items() if role == "primary")
        standby = next(se for se, role in pair.items() if role == "standby")
        # The standby holds the VS warm but does not bind the VIP (it has no frontend for it).
        entry = se_runtime(api, standby)["virtualservices"][0]
        assert entry["role"] == "standby" and entry["counters"] is None

        with Load(vs["vip_url"]) as load:
            swapped, back = {active: "standby", standby: "primary"}, {active: "primary", standby: "standby"}
            assert api.post(f"{vs['url']}/switchover").status_code == 202
            wait_for("switched", lambda: healthy(api, vs, 2, {"primary", "standby"}) == swapped)
            time.sleep(0.5)
            # And back, the way an operator would: with the CLI.
            out = fulcrum(stack, "virtualservice", "switchover", "legacy-vs")
            assert "switchover of virtualservice 'legacy-vs'" in out and "accepted" in out, out
            wait_for("switched back", lambda: healthy(api, vs, 2, {"primary", "standby"}) == back)
            time.sleep(0.5)
        shown = fulcrum(stack, "virtualservice", "runtime", "legacy-vs")
        assert "OPER_UP" in shown and "primary" in shown and "standby" in shown, shown
        assert len(events(api, "VS_SWITCHOVER", vs["uuid"])) >= 2
        assert load.failures == [] and load.ok > 20

        with Load(vs["vip_url"]) as load:
            time.sleep(0.5)
            killed = kill_se(api, active)
            wait_for("the standby took over", lambda: roles(api, vs).get(standby) == "primary", every=0.05)
            healed = wait_for("a new standby", lambda: healthy(api, vs, 2, {"primary", "standby"}))
            time.sleep(0.3)
        assert healed[standby] == "primary" and active not in healed
        assert all(t < 3 for t, _ in failures_after(load, killed)), load.failures
        assert httpx.get(vs["vip_url"], timeout=5).status_code == 200
        refused = api.post(f"{vs['url']}/scaleout", json={})
        assert refused.status_code == 409 and "LEGACY" in refused.text
        assert api.delete(vs["url"]).status_code == 204


# --- health manager -------------------------------------------------------------------------------


def test_silent_se_is_fenced_and_replaced_but_a_silent_majority_trips_the_breaker() -> None:
    with running_stack() as stack, stack.controller.client() as api:
        group = make_group(api, "hb", "HA_MODE_SHARED_PAIR", buffer_se=1, max_vs_per_se=1)
        vs = make_vs(api, stack, group, "hb-vs", "127.100.24.1")
        wait_for("VS on two SEs", lambda: healthy(api, vs, 2, {"primary", "secondary"}))
        ses = wait_for("three SEs up", lambda: len(g := group_ses(api, group)) == 3 and g)
        agents = {se["uuid"]: se_runtime(api, se["uuid"])["cloud"]["agent_pid"] for se in ses}
        wait_for("all up", lambda: all(se_runtime(api, s)["oper_status"] == "OPER_UP" for s in agents))

        # Every agent goes silent at once (their HAProxies keep serving): the breaker holds.
        with Load(vs["vip_url"]) as load:
            signal_all(list(agents.values()), signal.SIGSTOP)
            try:
                wait_for("the breaker to open", lambda: events(api, "HA_CIRCUIT_BREAKER_OPEN"), timeout=15)
                time.sleep(2)
                assert not events(api, "SE_DOWN"), "a failover started although most SEs went silent"
            finally:
                signal_all(list(agents.values()), signal.SIGCONT)
            wait_for("the breaker to close", lambda: events(api, "HA_CIRCUIT_BREAKER_CLOSED"), timeout=15)
            wait_for("VS healthy", lambda: healthy(api, vs, 2, {"primary", "secondary"}))
        assert load.failures == [] and load.ok > 50
        assert {se["uuid"] for se in group_ses(api, group)} == set(agents)
        assert len(events(api, "SE_HEARTBEAT_FAILURE")) >= 2

        # One silent SE is a failure: marked down after heartbeat_miss_limit, fenced and replaced.
        victim = next(se for se, role in roles(api, vs).items() if role == "secondary")
        victim_pids = se_pids(se_runtime(api, victim))
        signal_all([agents[victim]], signal.SIGSTOP)
        wait_for("SE_DOWN", lambda: events(api, "SE_DOWN", victim), timeout=15)
        wait_for("the silent SE fenced", lambda: not any(_alive(p) for p in victim_pids), timeout=15)
        healed = wait_for("a replacement", lambda: healthy(api, vs, 2, {"primary", "secondary"}), timeout=30)
        assert victim not in healed
        assert events(api, "SE_HEARTBEAT_FAILURE", victim)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
