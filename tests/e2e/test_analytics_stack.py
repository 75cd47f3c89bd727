"""Analytics end to end: real requests through a real SE (agent + HAProxy) become metrics, request logs,
a health score and alerts on the controller, and the numbers match what was sent.

The controller runs with 1-second analytics reports; back ends on 127.0.0.1 answer `/` with 200,
`/fail` with 500 and `/sleep` after 1.3 s (slower than the 1 s slow-request threshold).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.fullstack import Stack, running_stack, wait_for
from support.processes import free_port

pytestmark = pytest.mark.slow

OK_REQUESTS, FAILED_REQUESTS, SLOW_REQUESTS = 40, 7, 2


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    env = {
        "FULCRUM_ANALYTICS_INTERVAL_S": "1",
        "FULCRUM_SLOW_REQUEST_MS": "1000",
        "FULCRUM_LOG_SAMPLE_PERCENT": "0",
    }
    with running_stack(**env) as running:
        yield running


def _counted(api: httpx.Client, entity: str, uuid: str, metric: str, server: str | None = None) -> float:
    """Requests counted by a rate metric so far: the sum of rate x covered seconds."""
    params: dict[str, Any] = {"metric_id": metric, "step": 5, "limit": 100}
    if server:
        params["server"] = server
    answer = api.get(f"/api/analytics/metrics/{entity}/{uuid}", params=params)
    assert answer.status_code == 200, answer.text
    return sum(p["value"] * p["covered_s"] for p in answer.json()["series"][0]["data"])


def test_traffic_becomes_metrics_logs_health_and_alerts(stack: Stack) -> None:
    with stack.controller.client() as api:
        servers = [{"ip": "127.0.0.1", "port": b.port} for b in stack.backends]
        monitor = api.post(
            "/api/healthmonitor",
            json={"name": "shop-check", "type": "HEALTH_MONITOR_TCP", "send_interval": 1,
                  "receive_timeout": 1, "successful_checks": 1, "failed_checks": 2},
        )  # fmt: skip
        assert monitor.status_code == 201, monitor.text
        pool = api.post(
            "/api/pool", json={"name": "shop", "servers": servers, "health_monitor_refs": ["shop-check"]}
        ).json()
        port = free_port()
        vs = api.post(
            "/api/virtualservice",
            json={
                "name": "shop",
                "services": [{"port": port}],
                "pool_ref": pool["url"],
                "vip": [{"ip_address": "127.100.30.1"}],
            },
        ).json()
        wait_for("VS up", lambda: api.get(f"{vs['url']}/runtime").json()["oper_status"] == "OPER_UP")
        url = f"http://127.100.30.1:{port}"
        alert = api.post(
            "/api/alertconfig",
            json={
                "name": "shop-5xx",
                "source": "METRICS",
                "obj_uuid": vs["uuid"],
                "alert_rule": {
                    "metrics_rule": [
                        {"metric_id": "l7_client.avg_resp_5xx", "comparator": "CO_GT", "threshold": 0}
                    ]
                },
            },
        )
        assert alert.status_code == 201, alert.text

        before = _counted(api, "virtualservice", vs["uuid"], "l7_client.avg_complete_responses")
        local = httpx.HTTPTransport(local_address="127.0.0.33")
        with httpx.Client(transport=local, timeout=10) as client:
            for _ in range(OK_REQUESTS):
                assert client.get(f"{url}/", headers={"Connection": "close"}).status_code == 200
            for n in range(FAILED_REQUESTS):
                assert client.get(f"{url}/fail?n={n}").status_code == 500
            for _ in range(SLOW_REQUESTS):
                assert client.get(f"{url}/sleep").status_code == 200
        sent = OK_REQUESTS + FAILED_REQUESTS + SLOW_REQUESTS

        # Every request is counted once: metrics of 1 s reports merged into 5 s points.
        total = wait_for(
            "every response counted",
            lambda: (
                abs(
                    (c := _counted(api, "virtualservice", vs["uuid"], "l7_client.avg_complete_responses"))
                    - before
                    - sent
                )
                < 0.01
                and c
            ),
        )
        assert round(total - before) == sent
        assert round(_counted(api, "virtualservice", vs["uuid"], "l7_client.avg_resp_5xx")) == FAILED_REQUESTS
        per_server = [
            round(
                _counted(api, "pool", pool["uuid"], "l7_server.avg_complete_responses", f"127.0.0.1:{b.port}")
            )
            for b in stack.backends
        ]
        assert sum(per_server) == sent and all(n > 0 for n in per_server), per_server

        # Every error and every slow request is logged, with who asked and what.
        logs = wait_for(
            "the logs",
            lambda: (
                (
                    r := api.get(
                        "/api/analytics/logs", params={"virtualservice": vs["uuid"], "page_size": 100}
                    ).json()
                )["count"]
                >= FAILED_REQUESTS + SLOW_REQUESTS
                and r
            ),
        )
        errors = api.get(
            "/api/analytics/logs",
            params={"virtualservice": vs["uuid"], "filter": ["eq(status_class,5xx)"], "page_size": 100},
        ).json()["results"]
        assert sorted(e["uri"] for e in errors) == sorted(f"/fail?n={n}" for n in range(FAILED_REQUESTS))
        assert {e["client_ip"] for e in errors} == {"127.0.0.33"}
        assert all(e["method"] == "GET" and e["status"] == 500 and e["server"] for e in errors)
        slow = [e for e in logs["results"] if e["uri"] == "/sleep"]
        assert len(slow) == SLOW_REQUESTS and all(
            e["total_ms"] >= 1000 and e["significant"] == "slow" for e in slow
        )

        # The health score fell because of the errors and the slow answers, and says so.
        score = api.get(f"/api/analytics/healthscore/virtualservice/{vs['uuid']}").json()
        assert score["health_score"] < 100 and score["performance_score"] < 100
        notes = " ".join(score["notes"])
        assert f"{FAILED_REQUESTS} of" in notes and "longer than 1000 ms" in notes

        # A failed server is a resource penalty with its address.
        stack.backends[1].stop()
        wait_for(
            "the server seen down",
            lambda: any(
                r["component"] == "resources" and str(stack.backends[1].port) in r["reason"]
                for r in api.get(f"/api/analytics/healthscore/virtualservice/{vs['uuid']}").json()["reasons"]
            ),
            timeout=30,
        )

        # The metric alert: raised while 5xx responses keep coming (it is evaluated every 5 s).
        def fail_and_look() -> list[dict[str, Any]]:
            httpx.get(f"{url}/fail?again=1", timeout=5)
            return [a for a in api.get("/api/alert").json()["results"] if a["name"] == "shop-5xx"]

        raised = wait_for("the alert", fail_and_look, every=0.5)
        assert raised[0]["obj_name"] == "shop" and "l7_client.avg_resp_5xx" in raised[0]["summary"]
        assert any(a["name"] == "System-Server-Down" for a in api.get("/api/alert").json()["results"])

        # Prometheus sees the same VS.
        text = api.get("/metrics").text
        assert 'fulcrum_l7_client_avg_complete_responses{entity_type="virtualservice",name="shop"' in text
