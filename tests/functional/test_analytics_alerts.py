"""Analytics and alerts through the API, in process: metric queries, log search, health scores,
alert configs raising alerts from events and metric thresholds, actions delivered to a real HTTP
receiver, alert life cycle, tenant isolation, secrets, and the Prometheus exposition.

SE reports are fed to the controller's ingest directly (the SE side has its own e2e tests); placements
are written to the store as the reconciler would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fulcrum.controller.store import repo
from fulcrum.protocol import se as wire


class HttpReceiver:
    """An HTTP server on loopback that records every POST (a webhook receiver)."""

    @dataclass
    class Request:
        headers: dict[str, str]
        body: bytes

        def json(self) -> Any:
            return json.loads(self.body)

    def __enter__(self) -> HttpReceiver:
        self.requests: list[HttpReceiver.Request] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(HttpReceiver.Request({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


Wait = Callable[[str, Callable[[], Any]], Any]


def wait(what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _services(client: TestClient) -> Any:
    return client.app.state.services  # type: ignore[attr-defined]


def _vs(client: TestClient, name: str = "web", headers: dict[str, str] | None = None) -> dict[str, Any]:
    pool = client.post(
        "/api/pool", json={"name": f"{name}-pool", "servers": [{"ip": "10.0.0.1"}]}, headers=headers
    )
    assert pool.status_code == 201, pool.text
    vs = client.post(
        "/api/virtualservice",
        json={
            "name": name,
            "services": [{"port": 80}],
            "pool_ref": pool.json()["url"],
            "vip": [{"auto_allocate_ip": True}],
        },
        headers=headers,
    )
    assert vs.status_code == 201, vs.text
    return vs.json()  # type: ignore[no-any-return]


def _place(client: TestClient, vs: dict[str, Any], se_uuid: str = "serviceengine-test-1") -> str:
    with _services(client).db.write() as conn:
        repo.set_placements(conn, [(vs["uuid"], se_uuid, "primary")], 0)
    return se_uuid


def _report(
    vs: dict[str, Any],
    se_uuid: str,
    start: float,
    values: dict[str, float],
    logs: tuple[wire.RequestLog, ...] = (),
) -> wire.AnalyticsReport:
    points = [
        wire.MetricPoint(
            entity_type=wire.EntityType.VIRTUALSERVICE, entity_uuid=vs["uuid"], metric_id=m, value=v
        )
        for m, v in values.items()
    ]
    return wire.AnalyticsReport(start=start, end=start + 5, metrics=tuple(points), logs=logs)


def test_metric_ids_list_at_least_thirty_metrics_with_units(client: TestClient) -> None:
    answer = client.get("/api/analytics/metric_ids").json()
    assert answer["count"] >= 30
    ids = {m["metric_id"] for m in answer["results"]}
    for required in (
        "l4_client.avg_bandwidth",
        "l7_client.avg_resp_5xx",
        "se_stats.avg_cpu_usage",
        "l4_server.avg_total_rtt",
    ):
        assert required in ids
    assert all(m["unit"] and m["entity_types"] for m in answer["results"])


def test_reports_become_series_and_only_the_sources_entities_count(client: TestClient) -> None:
    vs = _vs(client)
    other = _vs(client, "other")
    se = _place(client, vs)
    now = time.time()
    analytics = _services(client).analytics
    analytics.ingest(se, _report(vs, se, now - 10, {"l7_client.avg_complete_responses": 4.0}))
    analytics.ingest(se, _report(vs, se, now - 5, {"l7_client.avg_complete_responses": 6.0}))
    # The SE does not serve `other`: its points are refused.
    result = analytics.ingest(se, _report(other, se, now - 5, {"l7_client.avg_complete_responses": 99.0}))
    assert result["points"] == 0

    series = client.get(
        f"/api/analytics/metrics/virtualservice/{vs['uuid']}",
        params={"metric_id": "l7_client.avg_complete_responses", "step": 5, "limit": 10},
    ).json()
    data = series["series"][0]
    assert [p["value"] for p in data["data"]] == [4.0, 6.0]
    assert data["header"]["units"] and data["header"]["statistics"]["max"] == 6.0
    empty = client.get(
        f"/api/analytics/metrics/virtualservice/{other['uuid']}",
        params={"metric_id": "l7_client.avg_complete_responses"},
    ).json()
    assert empty["series"][0]["data"] == []

    bad = client.get(
        f"/api/analytics/metrics/virtualservice/{vs['uuid']}", params={"metric_id": "nope.metric"}
    )
    assert bad.status_code == 400 and "unknown" in bad.text
    wrong_type = client.get(
        f"/api/analytics/metrics/pool/{vs['uuid']}", params={"metric_id": "l7_client.avg_complete_responses"}
    )
    assert wrong_type.status_code == 404  # a VS uuid is not a pool


def _log(
    vs: dict[str, Any],
    ts: float,
    status: int,
    uri: str,
    client_ip: str = "127.0.0.5",
    total_ms: float = 3.0,
    significant: str = "",
) -> wire.RequestLog:
    return wire.RequestLog(
        ts=ts,
        vs_uuid=vs["uuid"],
        client_ip=client_ip,
        client_port=40000,
        method="GET",
        uri=uri,
        status=status,
        total_ms=total_ms,
        significant=significant,
    )


def test_request_logs_are_searchable_and_private_to_the_tenant(client: TestClient) -> None:
    vs = _vs(client)
    se = _place(client, vs)
    now = time.time()
    logs = (
        _log(vs, now - 3, 200, "/index"),
        _log(vs, now - 2, 503, "/api/orders", significant="error"),
        _log(vs, now - 1, 404, "/login", client_ip="127.0.0.9", significant="error"),
    )
    _services(client).analytics.ingest(se, _report(vs, se, now - 5, {}, logs))

    def search(*filters: str, **params: Any) -> dict[str, Any]:
        answer = client.get(
            "/api/analytics/logs", params={"virtualservice": vs["uuid"], "filter": list(filters), **params}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    assert search()["count"] == 3
    assert [r["uri"] for r in search("eq(status_class,5xx)")["results"]] == ["/api/orders"]
    assert [r["status"] for r in search("eq(client_ip,127.0.0.9)")["results"]] == [404]
    assert search("co(uri,/api)")["count"] == 1
    assert search(since=str(now - 1.5))["count"] == 1
    assert client.get("/api/analytics/logs", params={"filter": "drop(table)"}).status_code == 400

    # A user of another tenant sees none of it.
    assert client.post("/api/tenant", json={"name": "other"}).status_code == 201
    user = {
        "name": "eve",
        "password": "correct-horse-battery",
        "access": [{"tenant_ref": "other", "role": "tenant-admin"}],
        "default_tenant_ref": "other",
    }
    assert client.post("/api/user", json=user).status_code == 201
    eve = ("eve", "correct-horse-battery")
    assert client.get("/api/analytics/logs", auth=eve).json()["count"] == 0
    assert (
        client.get("/api/analytics/logs", params={"virtualservice": vs["uuid"]}, auth=eve).status_code == 404
    )
    assert client.get("/metrics", auth=eve).status_code == 403


def test_event_alert_runs_its_webhook_and_goes_through_its_life_cycle(client: TestClient) -> None:
    with HttpReceiver() as receiver:
        hook = client.post(
            "/api/webhook",
            json={
                "name": "ops-hook",
                "callback_url": receiver.url("/alerts"),
                "verification_token": "s3cret-token-value",
                "retry_base_s": 0.01,
            },
        )
        assert hook.status_code == 201, hook.text
        assert "s3cret-token-value" not in hook.text and "verification_token" not in hook.json()
        group = client.post(
            "/api/actiongroupconfig",
            json={"name": "page-me", "level": "ALERT_HIGH", "webhook_ref": "ops-hook"},
        )
        assert group.status_code == 201, group.text
        config = client.post(
            "/api/alertconfig",
            json={
                "name": "pool-created",
                "alert_rule": {
                    "sys_event_rule": [{"event_id": "CONFIG_CREATE"}, {"event_id": "CONFIG_UPDATE"}]
                },
                "object_type": "pool",
                "action_group_ref": "page-me",
                "throttle": 3600,
            },
        )
        assert config.status_code == 201, config.text

        assert (
            client.post("/api/pool", json={"name": "p1", "servers": [{"ip": "10.0.0.1"}]}).status_code == 201
        )
        alert = wait(
            "an alert with its action done",
            lambda: [
                a
                for a in client.get("/api/alert").json()["results"]
                if a["name"] == "pool-created" and a["actions"]
            ],
        )[0]
        assert alert["state"] == "RAISED" and alert["level"] == "ALERT_HIGH" and alert["obj_name"] == "p1"
        assert alert["actions"] == [
            {**alert["actions"][0], "type": "webhook", "target": "ops-hook", "ok": True}
        ]
        request = wait("the webhook call", lambda: receiver.requests)[0]
        assert request.headers["authorization"] == "Bearer s3cret-token-value"
        body = request.json()
        assert "pool-created" in str(body) and "p1" in str(body)

        # Throttled: another matching event for the same object counts, but sends nothing more.
        p1 = client.get("/api/pool", params={"name": "p1"}).json()["results"][0]
        assert client.patch(p1["url"], json={"description": "changed"}).status_code == 200
        wait("the count to grow", lambda: client.get(f"/api/alert/{alert['uuid']}").json()["count"] == 2)
        time.sleep(0.3)
        assert len(receiver.requests) == 1

        ack = client.post(f"/api/alert/{alert['uuid']}/acknowledge")
        assert (
            ack.status_code == 200
            and ack.json()["state"] == "ACKNOWLEDGED"
            and ack.json()["acknowledged_by"] == "admin"
        )
        assert client.post(f"/api/alert/{alert['uuid']}/acknowledge").status_code == 409
        cleared = client.post(f"/api/alert/{alert['uuid']}/clear")
        assert cleared.status_code == 200 and cleared.json()["state"] == "CLEARED"
        assert client.get("/api/alert", params={"state": "CLEARED"}).json()["count"] >= 1

        # The token never shows up in events either.
        events = client.get("/api/event", params={"page_size": 100}).text
        assert "s3cret-token-value" not in events


def test_metric_alert_raises_and_clears_itself(client: TestClient) -> None:
    vs = _vs(client)
    se = _place(client, vs)
    config = client.post(
        "/api/alertconfig",
        json={
            "name": "too-many-5xx",
            "source": "METRICS",
            "object_type": "virtualservice",
            "alert_rule": {
                "metrics_rule": [
                    {
                        "metric_id": "l7_client.avg_resp_5xx",
                        "comparator": "CO_GT",
                        "threshold": 1,
                        "duration": 10,
                    }
                ]
            },
        },
    )
    assert config.status_code == 201, config.text
    services = _services(client)
    now = time.time()
    for i in range(3):
        services.analytics.ingest(se, _report(vs, se, now - 15 + 5 * i, {"l7_client.avg_resp_5xx": 3.0}))
    services.alerts.evaluate()
    raised = [a for a in client.get("/api/alert").json()["results"] if a["name"] == "too-many-5xx"]
    assert (
        len(raised) == 1
        and raised[0]["state"] == "RAISED"
        and "l7_client.avg_resp_5xx is 3" in raised[0]["summary"]
    )
    for i in range(3):
        services.analytics.ingest(se, _report(vs, se, now + 5 * i, {"l7_client.avg_resp_5xx": 0.0}))
    services.alerts.evaluate()
    assert client.get(f"/api/alert/{raised[0]['uuid']}").json()["state"] == "CLEARED"


def test_builtin_alert_configs_exist_and_list_secrets_stay_secret(client: TestClient) -> None:
    names = {c["name"] for c in client.get("/api/alertconfig", params={"page_size": 100}).json()["results"]}
    assert {"System-SE-Down", "System-VS-Down", "System-Server-Down", "System-SE-CPU-High"} <= names
    profile = client.post(
        "/api/snmptrapprofile",
        json={
            "name": "traps",
            "trap_servers": [
                {"ip_addr": "127.0.0.1", "community": "first-community"},
                {
                    "ip_addr": "127.0.0.2",
                    "version": "SNMP_VER3",
                    "user": {
                        "username": "ops",
                        "auth_passphrase": "auth-pass-123",
                        "priv_passphrase": "priv-pass-456",
                    },
                },
            ],
        },
    )
    assert profile.status_code == 201, profile.text
    shown = client.get(profile.json()["url"]).text
    for secret in ("first-community", "auth-pass-123", "priv-pass-456"):
        assert secret not in shown
    stored = _services(client)
    with stored.db.read() as conn:
        obj = repo.get(conn, profile.json()["uuid"])
    assert obj is not None and "first-community" not in str(obj.data)
    secrets = stored.objects.box_secrets(obj)
    assert secrets["trap_servers[0].community"] == "first-community"
    assert secrets["trap_servers[1].user.priv_passphrase"] == "priv-pass-456"


def test_health_score_without_traffic_and_prometheus(client: TestClient) -> None:
    vs = _vs(client)
    se = _place(client, vs)
    score = client.get(f"/api/analytics/healthscore/virtualservice/{vs['uuid']}").json()
    assert score["health_score"] == 0 and "OPER_" in " ".join(score["notes"])  # not up: no data plane here
    _services(client).analytics.ingest(
        se, _report(vs, se, time.time() - 5, {"l4_client.avg_bandwidth": 1234.0})
    )
    text = client.get("/metrics").text
    assert "fulcrum_build_info" in text
    assert 'fulcrum_l4_client_avg_bandwidth{entity_type="virtualservice",name="web"' in text
    assert "fulcrum_api_request_seconds_bucket" in text


@pytest.mark.parametrize("path", ["/api/alert", "/api/analytics/metric_ids", "/metrics"])
def test_anonymous_callers_get_401(client: TestClient, path: str) -> None:
    assert client.get(path, auth=None).status_code == 401
