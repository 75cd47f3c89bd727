"""The whole stack: controller -> reconciler -> local cloud -> SE agent -> HAProxy -> back ends.

Real processes everywhere: a controller process, SE agents and HAProxy started by the local cloud,
and HTTP back ends in this test process. Traffic goes to VIPs in 127.100.0.0/16 only.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from support.fullstack import running_stack, wait_for
from support.processes import ControllerProcess, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def stack() -> Iterator[dict[str, Any]]:
    with running_stack() as running:
        yield {"controller": running.controller, "backends": running.backends}


def _recorded_pids(data_dir: Path) -> list[int]:
    records = json.loads((data_dir / "local-cloud" / "ses.json").read_text())
    pids = []
    for record in records.values():
        pids.append(record["agent_pid"])
        pidfile = Path(record["run_dir"]) / "haproxy.pid"
        if pidfile.exists():
            pids.append(int(pidfile.read_text().split()[0]))
    return pids


def test_traffic_health_restart_and_cleanup(stack: dict[str, Any]) -> None:  # noqa: PLR0915 - one story
    ctrl: ControllerProcess = stack["controller"]
    alpha, beta = stack["backends"]
    vip, port = "127.100.7.7", free_port()
    with ctrl.client() as api:
        assert (
            api.patch(
                api.get("/api/serviceenginegroup", params={"name": "Default-Group"}).json()["results"][0][
                    "url"
                ],
                json={"se_deprovision_delay": 0, "buffer_se": 0},
            ).status_code
            == 200
        )
        monitor = api.post(
            "/api/healthmonitor",
            json={"name": "fast", "type": "HEALTH_MONITOR_HTTP", "send_interval": 1, "receive_timeout": 1,
                  "successful_checks": 1, "failed_checks": 2},
        )  # fmt: skip
        assert monitor.status_code == 201, monitor.text
        pool = api.post(
            "/api/pool",
            json={
                "name": "web",
                "lb_algorithm": "LB_ALGORITHM_ROUND_ROBIN",
                "servers": [{"ip": "127.0.0.1", "port": alpha.port}, {"ip": "127.0.0.1", "port": beta.port}],
                "health_monitor_refs": ["fast"],
            },
        )
        assert pool.status_code == 201, pool.text
        vs = api.post(
            "/api/virtualservice",
            json={
                "name": "web-vs",
                "services": [{"port": port}],
                "pool_ref": "web",
                "vip": [{"ip_address": vip}],
            },
        )
        assert vs.status_code == 201, vs.text
        vs_url = vs.json()["url"]

        runtime = wait_for(
            "the VS to come up",
            lambda: (r := api.get(f"{vs_url}/runtime").json())["oper_status"] == "OPER_UP" and r,
        )
        se_ref = runtime["service_engines"][0]["se_ref"]

        # Round robin over both back ends, through the VIP.
        seen = Counter(httpx.get(f"http://{vip}:{port}/", timeout=5).text for _ in range(20))
        assert seen == {"alpha": 10, "beta": 10}

        se_runtime = api.get(f"{se_ref}/runtime").json()
        assert se_runtime["oper_status"] == "OPER_UP"
        agent_pid = se_runtime["cloud"]["agent_pid"]
        haproxy_pid = se_runtime["cloud"]["haproxy_master_pid"]
        assert psutil.pid_exists(agent_pid) and psutil.pid_exists(haproxy_pid)
        assert [v["vs_ref"] for v in se_runtime["virtualservices"]] == [vs_url]

        # A dead back end is marked DOWN with a reason and gets no more requests.
        alpha.stop()
        pool_runtime = wait_for(
            "server alpha DOWN",
            lambda: (
                (r := api.get(f"{pool.json()['url']}/runtime").json())["servers"][0]["oper_status"] == "DOWN"
                and r
            ),
        )
        assert pool_runtime["servers"][0]["reason"]
        assert {httpx.get(f"http://{vip}:{port}/", timeout=5).text for _ in range(10)} == {"beta"}
        events = api.get("/api/event", params={"event_id": "SERVER_DOWN"}).json()
        assert events["count"] >= 1

    # A controller restart interrupts no request and reloads nothing.
    failures: list[str] = []
    sent = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal sent
        with httpx.Client(timeout=5) as http:
            while not stop.is_set():
                try:
                    if http.get(f"http://{vip}:{port}/").status_code != 200:
                        failures.append("status")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                sent += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        assert ctrl.terminate() == 0
        ctrl.start()
        with ctrl.client() as api:
            wait_for(
                "the VS to be up after restart",
                lambda: api.get(f"{vs_url}/runtime").json()["oper_status"] == "OPER_UP",
            )
            time.sleep(1.0)
    finally:
        stop.set()
        worker.join()
    assert sent > 50
    assert failures == []
    with ctrl.client() as api:
        after = api.get(f"{se_ref}/runtime").json()
        assert after["cloud"]["haproxy_master_pid"] == haproxy_pid
        assert after["cloud"]["agent_pid"] == agent_pid

        # Deleting the last VS gives the SE back (se_deprovision_delay 0): its processes end.
        pids = _recorded_pids(ctrl.data_dir)
        assert api.delete(vs_url).status_code == 204
        wait_for("the SE to be deprovisioned", lambda: api.get("/api/serviceengine").json()["count"] == 0)
        wait_for("the SE processes to end", lambda: not any(psutil.pid_exists(p) for p in pids))


def test_local_down_stops_exactly_the_recorded_ses(stack: dict[str, Any]) -> None:
    ctrl: ControllerProcess = stack["controller"]
    alpha = stack["backends"][0]
    with ctrl.client() as api:
        pool = api.post("/api/pool", json={"name": "p", "servers": [{"ip": "127.0.0.1", "port": alpha.port}]})
        assert pool.status_code == 201
        for n in range(2):
            body = {"name": f"vs{n}", "services": [{"port": free_port()}], "pool_ref": "p",
                    "vip": [{"ip_address": f"127.100.8.{n + 1}"}]}  # fmt: skip
            assert api.post("/api/virtualservice", json=body).status_code == 201
        # One SE for both VSs plus the group's buffer SE (buffer_se defaults to 1).
        wait_for("two SEs", lambda: api.get("/api/serviceengine").json()["count"] == 2)
        wait_for("both VSs up", lambda: all(
            api.get(f"{v['url']}/runtime").json()["oper_status"] == "OPER_UP"
            for v in api.get("/api/virtualservice").json()["results"]
        ))  # fmt: skip
    ctrl.terminate()
    pids = _recorded_pids(ctrl.data_dir)
    assert len(pids) >= 2
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        down = subprocess.run(
            [sys.executable, "-m", "fulcrum", "local", "down", "--data-dir", str(ctrl.data_dir)],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        assert down.returncode == 0, down.stderr
        assert "stopped 2 service engine" in down.stdout
        wait_for(
            "every recorded process to end", lambda: not any(psutil.pid_exists(p) for p in pids), timeout=15
        )
        assert unrelated.poll() is None  # only what was recorded was stopped
    finally:
        unrelated.kill()
        unrelated.wait()


def test_a_config_the_se_cannot_apply_is_reported_and_the_running_one_keeps_serving(
    stack: dict[str, Any],
) -> None:
    ctrl: ControllerProcess = stack["controller"]
    alpha = stack["backends"][0]
    good_port, blocked_vip, blocked_port = free_port(), "127.100.9.9", free_port()
    squatter = socket.socket()
    squatter.bind((blocked_vip, blocked_port))  # no SO_REUSEPORT: HAProxy cannot bind this address
    squatter.listen()
    try:
        with ctrl.client() as api:
            assert (
                api.post(
                    "/api/pool", json={"name": "p", "servers": [{"ip": "127.0.0.1", "port": alpha.port}]}
                ).status_code
                == 201
            )
            good = api.post("/api/virtualservice", json={"name": "good", "services": [{"port": good_port}],
                            "pool_ref": "p", "vip": [{"ip_address": "127.100.9.8"}]}).json()  # fmt: skip
            runtime = wait_for(
                "good up",
                lambda: (r := api.get(f"{good['url']}/runtime").json())["oper_status"] == "OPER_UP" and r,
            )
            se_ref = runtime["service_engines"][0]["se_ref"]
            master = api.get(f"{se_ref}/runtime").json()["cloud"]["haproxy_master_pid"]

            blocked_body = {"name": "blocked", "services": [{"port": blocked_port}], "pool_ref": "p",
                            "vip": [{"ip_address": blocked_vip}]}  # fmt: skip
            blocked = api.post("/api/virtualservice", json=blocked_body).json()
            event = wait_for(
                "CONFIG_APPLY_FAILED",
                lambda: api.get("/api/event", params={"event_id": "CONFIG_APPLY_FAILED"}).json()["results"],
            )
            assert event[0]["obj_ref"] == se_ref and event[0]["details"]["error"]
            state = api.get(f"{blocked['url']}/runtime").json()
            assert state["oper_status"] == "OPER_INITIALIZING" and "failed" in state["reason"]
            # The running config is untouched: the first VS still answers from the same HAProxy.
            assert httpx.get(f"http://127.100.9.8:{good_port}/", timeout=5).text == "alpha"
            assert api.get(f"{se_ref}/runtime").json()["cloud"]["haproxy_master_pid"] == master

            squatter.close()
            assert (
                api.patch(blocked["url"], json={"description": "retry now that the port is free"}).status_code
                == 200
            )
            wait_for(
                "blocked up", lambda: api.get(f"{blocked['url']}/runtime").json()["oper_status"] == "OPER_UP"
            )
            assert httpx.get(f"http://{blocked_vip}:{blocked_port}/", timeout=5).text == "alpha"
    finally:
        squatter.close()
