"""OpenStack's own clients drive Fulcrum through the Octavia v2 API, unchanged: openstacksdk and the
`openstack` CLI (python-octaviaclient) build a load balancer on the subnet Fulcrum's Networking-API view
shows, wait for ACTIVE/ONLINE, send real traffic to the VIP through a real SE, then update, fail over and
cascade-delete it.

Credentials: keystoneauth's `http_basic` plugin with Fulcrum's native user, and `admin_token` with a
token from `POST /login` (sent as X-Auth-Token); `auth_type none` is refused, as every endpoint but the
version document needs credentials.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openstack
import pytest

from support.fullstack import Backend, Stack, running_stack, wait_for
from support.processes import ADMIN_PASSWORD

pytestmark = [
    pytest.mark.slow,
    # openstacksdk warns about its own deprecations (InfluxDB support) on every connection
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

OPENSTACK = str(Path(sys.executable).parent / "openstack")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as running:
        yield running


@pytest.fixture(scope="module")
def token(stack: Stack) -> str:
    answer = httpx.post(
        f"{stack.controller.url}/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def _served_by(url: str) -> set[str]:
    """Which back ends answered 8 requests to `url` (each back end answers with its name)."""
    seen = set()
    for _ in range(8):
        answer = httpx.get(url, timeout=3)
        assert answer.status_code == 200, answer.text
        seen.add(answer.text.split()[0])
    return seen


def _serves(url: str, names: set[str]) -> bool:
    """For wait_for: True once exactly `names` answer; an error in between (a move in progress) is False."""
    try:
        return _served_by(url) == names
    except (AssertionError, httpx.HTTPError):
        return False


def test_openstacksdk_builds_serves_updates_fails_over_and_deletes(stack: Stack, token: str) -> None:
    url = stack.controller.url
    conn = openstack.connect(
        auth_type="admin_token",
        auth={"endpoint": url, "token": token},
        load_balancer_endpoint_override=url,
        network_endpoint_override=url,
    )
    subnet = conn.network.find_subnet("Default-Cloud-vip-subnet", ignore_missing=False)
    lb = conn.load_balancer.create_load_balancer(name="sdk-lb", vip_subnet_id=subnet.id)
    lb = conn.load_balancer.wait_for_load_balancer(lb.id, status="ACTIVE", failures=["ERROR"], wait=60)
    listener = conn.load_balancer.create_listener(
        name="sdk-http", protocol="HTTP", protocol_port=18080, load_balancer_id=lb.id
    )
    conn.load_balancer.wait_for_load_balancer(lb.id, status="ACTIVE", failures=["ERROR"], wait=60)
    pool = conn.load_balancer.create_pool(
        name="sdk-pool", protocol="HTTP", lb_algorithm="ROUND_ROBIN", listener_id=listener.id
    )
    conn.load_balancer.wait_for_load_balancer(lb.id, status="ACTIVE", failures=["ERROR"], wait=60)
    for backend in stack.backends:
        conn.load_balancer.create_member(pool, address="127.0.0.1", protocol_port=backend.port)
        conn.load_balancer.wait_for_load_balancer(lb.id, status="ACTIVE", failures=["ERROR"], wait=60)
    monitor = conn.load_balancer.create_health_monitor(
        pool_id=pool.id, type="HTTP", delay=2, timeout=1, max_retries=1, url_path="/"
    )
    conn.load_balancer.wait_for_load_balancer(lb.id, status="ACTIVE", failures=["ERROR"], wait=60)
    wait_for(
        "the load balancer ONLINE",
        lambda: conn.load_balancer.get_load_balancer(lb.id).operating_status == "ONLINE",
        timeout=60,
    )
    vip = conn.load_balancer.get_load_balancer(lb.id).vip_address
    assert _served_by(f"http://{vip}:18080/") == {"alpha", "beta"}

    # The same objects through the native API.
    with httpx.Client(base_url=url, auth=("admin", ADMIN_PASSWORD)) as api:
        vs = api.get(f"/api/virtualservice/virtualservice-{listener.id}").json()
        assert vs["services"][0]["port"] == 18080
        native_pool = api.get(f"/api/pool/pool-{pool.id}").json()
        assert sorted(s["port"] for s in native_pool["servers"]) == sorted(b.port for b in stack.backends)
        assert native_pool["health_monitor_refs"] == [f"/api/healthmonitor/healthmonitor-{monitor.id}"]

    # Update: weight 0 on one member drains it; new requests all go to the other one.
    members = list(conn.load_balancer.members(pool))
    first = next(m for m in members if m.protocol_port == stack.backends[0].port)
    conn.load_balancer.update_member(first, pool, weight=0)
    conn.load_balancer.wait_for_load_balancer(lb.id, status="ACTIVE", failures=["ERROR"], wait=60)
    assert wait_for("the drained member out", lambda: _serves(f"http://{vip}:18080/", {"beta"}))
    # The status tree (openstacksdk has no call for it; its session does the request).
    tree = conn.load_balancer.get(f"/lbaas/loadbalancers/{lb.id}/status").json()["statuses"]
    member_states = {
        m["protocol_port"]: m["operating_status"]
        for m in tree["loadbalancer"]["listeners"][0]["pools"][0]["members"]
    }
    assert member_states == {stack.backends[0].port: "DRAINING", stack.backends[1].port: "ONLINE"}
    stats = conn.load_balancer.get_load_balancer_statistics(lb.id)
    assert stats.total_connections > 0 and stats.bytes_out > 0

    # Fail over: the listeners move to a new SE; the VIP keeps serving.
    conn.load_balancer.failover_load_balancer(lb.id)
    conn.load_balancer.wait_for_load_balancer(lb.id, status="ACTIVE", failures=["ERROR"], wait=90)
    assert wait_for("traffic after failover", lambda: _serves(f"http://{vip}:18080/", {"beta"}), timeout=60)

    shown = conn.load_balancer.get_load_balancer(lb.id)
    conn.load_balancer.delete_load_balancer(lb.id, cascade=True)
    conn.load_balancer.wait_for_delete(shown, wait=60)
    with httpx.Client(base_url=url, auth=("admin", ADMIN_PASSWORD)) as api:
        assert api.get(f"/api/pool/pool-{pool.id}").status_code == 404
        assert api.get(f"/api/virtualservice/virtualservice-{listener.id}").status_code == 404


def _osc(url: str, *args: str) -> Any:
    env = {
        **os.environ,
        "OS_AUTH_TYPE": "http_basic",
        "OS_USERNAME": "admin",
        "OS_PASSWORD": ADMIN_PASSWORD,
        "OS_ENDPOINT": url,
    }
    done = subprocess.run(
        [OPENSTACK, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"openstack {' '.join(args)} failed: {done.stderr}"
    return json.loads(done.stdout) if "-f" in args and "json" in args else done.stdout


def test_openstack_cli_builds_serves_and_cascade_deletes(stack: Stack) -> None:
    url = stack.controller.url
    subnet = _osc(url, "subnet", "show", "Default-Cloud-vip-subnet", "-f", "json")
    _osc(url, "loadbalancer", "create", "--name", "cli-lb", "--vip-subnet-id", subnet["id"], "--wait")
    _osc(url, "loadbalancer", "listener", "create", "--name", "cli-http", "--protocol", "HTTP",
         "--protocol-port", "18081", "cli-lb", "--wait")  # fmt: skip
    _osc(url, "loadbalancer", "pool", "create", "--name", "cli-pool", "--lb-algorithm", "LEAST_CONNECTIONS",
         "--listener", "cli-http", "--protocol", "HTTP", "--wait")  # fmt: skip
    for backend in stack.backends:
        _osc(url, "loadbalancer", "member", "create", "--address", "127.0.0.1", "--protocol-port",
             str(backend.port), "cli-pool", "--wait")  # fmt: skip
    _osc(url, "loadbalancer", "healthmonitor", "create", "--delay", "2", "--timeout", "1", "--max-retries",
         "1", "--type", "HTTP", "--url-path", "/", "--name", "cli-hm", "cli-pool", "--wait")  # fmt: skip
    wait_for(
        "the CLI's load balancer ONLINE",
        lambda: _osc(url, "loadbalancer", "show", "cli-lb", "-f", "json")["operating_status"] == "ONLINE",
        timeout=60,
    )
    shown = _osc(url, "loadbalancer", "show", "cli-lb", "-f", "json")
    assert shown["provisioning_status"] == "ACTIVE"
    assert _served_by(f"http://{shown['vip_address']}:18081/") == {"alpha", "beta"}
    _osc(url, "loadbalancer", "pool", "set", "--lb-algorithm", "ROUND_ROBIN", "cli-pool", "--wait")
    assert (
        _osc(url, "loadbalancer", "pool", "show", "cli-pool", "-f", "json")["lb_algorithm"] == "ROUND_ROBIN"
    )
    members = _osc(url, "loadbalancer", "member", "list", "cli-pool", "-f", "json")
    assert sorted(m["protocol_port"] for m in members) == sorted(b.port for b in stack.backends)

    # A member whose server dies: ERROR, and the pool and load balancer DEGRADED, still serving.
    doomed = Backend("doomed")
    _osc(url, "loadbalancer", "member", "create", "--name", "doomed", "--address", "127.0.0.1",
         "--protocol-port", str(doomed.port), "cli-pool", "--wait")  # fmt: skip
    wait_for(
        "the new member ONLINE",
        lambda: (
            _osc(url, "loadbalancer", "member", "show", "cli-pool", "doomed", "-f", "json")[
                "operating_status"
            ]
            == "ONLINE"
        ),
        timeout=60,
    )
    doomed.stop()
    wait_for(
        "the dead member ERROR and the load balancer DEGRADED",
        lambda: (
            _osc(url, "loadbalancer", "member", "show", "cli-pool", "doomed", "-f", "json")[
                "operating_status"
            ]
            == "ERROR"
            and _osc(url, "loadbalancer", "show", "cli-lb", "-f", "json")["operating_status"] == "DEGRADED"
        ),
        timeout=60,
    )
    assert _served_by(f"http://{shown['vip_address']}:18081/") == {"alpha", "beta"}

    _osc(url, "loadbalancer", "failover", "--wait", "cli-lb")
    assert _osc(url, "loadbalancer", "show", "cli-lb", "-f", "json")["provisioning_status"] == "ACTIVE"
    assert wait_for(
        "traffic after the CLI's failover",
        lambda: _serves(f"http://{shown['vip_address']}:18081/", {"alpha", "beta"}),
        timeout=60,
    )
    _osc(url, "loadbalancer", "delete", "--cascade", "--wait", "cli-lb")
    assert _osc(url, "loadbalancer", "list", "-f", "json") == []


def test_auth_type_none_is_refused(stack: Stack) -> None:
    """`auth_type none` sends the fixed token `notused`; Fulcrum never serves without credentials."""
    answer = httpx.get(f"{stack.controller.url}/v2/lbaas/loadbalancers", headers={"X-Auth-Token": "notused"})
    assert answer.status_code == 401
    assert "faultstring" in answer.json()
    assert httpx.get(f"{stack.controller.url}/").json()["versions"][-1]["status"] == "CURRENT"
