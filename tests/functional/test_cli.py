"""The `fulcrum` client commands, run as a user runs them, against a real controller process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.processes import ADMIN_PASSWORD, ControllerProcess, free_port

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def ok(self) -> Run:
        assert self.code == 0, f"exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"
        return self

    def failed(self) -> Run:
        assert self.code == 1, f"exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"
        assert self.err.startswith("error: "), self.err
        assert "Traceback" not in self.err + self.out
        return self


Cli = Callable[..., Run]


@pytest.fixture
def cli(controller: ControllerProcess) -> Cli:
    """Runs `python -m fulcrum ARGS` in a subprocess, configured through the environment only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FULCRUM_")}
    env.update(FULCRUM_URL=controller.url, FULCRUM_USER="admin", FULCRUM_PASSWORD=ADMIN_PASSWORD)

    def run(*args: str, stdin: str | None = None) -> Run:
        proc = subprocess.run(
            [sys.executable, "-m", "fulcrum", *args],
            capture_output=True,
            text=True,
            env=env,
            input=stdin,
            timeout=60,
            check=False,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run


def find(http: httpx.Client, type_name: str, name: str) -> dict[str, Any] | None:
    results = http.get(f"/api/{type_name}", params={"name": name}).json()["results"]
    return results[0] if results else None


def event_count(http: httpx.Client) -> int:
    return int(http.get("/api/event", params={"page_size": 1}).json()["count"])


def test_object_commands(cli: Cli, admin_http: httpx.Client, tmp_path: Path) -> None:
    servers = json.dumps([{"ip": "10.0.0.1", "port": 8081}, {"ip": "10.0.0.2", "port": 8081}])
    run = cli(
        "pool", "create", "web", "--set", f"servers={servers}",
        "--set", "lb_algorithm=LB_ALGORITHM_ROUND_ROBIN", "--set", 'health_monitor_refs=["System-HTTP"]',
    ).ok()  # fmt: skip
    stored = find(admin_http, "pool", "web")
    assert stored is not None
    assert stored["uuid"] in run.out
    assert [s["ip"] for s in stored["servers"]] == ["10.0.0.1", "10.0.0.2"]
    monitor = find(admin_http, "healthmonitor", "System-HTTP")
    assert monitor is not None
    assert stored["health_monitor_refs"] == [monitor["url"]]

    table = cli("pool", "list").ok().out
    row = next(line for line in table.splitlines() if line.startswith("web "))
    assert row.split() == [
        "web", stored["uuid"], "2", "LB_ALGORITHM_ROUND_ROBIN", "System-HTTP", "yes"
    ]  # fmt: skip
    listed = json.loads(cli("pool", "list", "--json").ok().out)
    assert [o["name"] for o in listed["results"]] == ["web"]
    assert json.loads(cli("pool", "show", "web", "--json").ok().out) == stored
    assert "System-HTTP (" in cli("pool", "show", stored["uuid"]).ok().out

    cli("pool", "update", "web", "--set", "description=front end", "--set", "default_server_port=8080").ok()
    updated = admin_http.get(stored["url"]).json()
    assert (updated["description"], updated["default_server_port"]) == ("front end", 8080)
    assert updated["servers"] == stored["servers"]  # a merge patch leaves the other fields alone

    cli("pool", "delete", "web", "--yes").ok()
    assert admin_http.get(stored["url"]).status_code == 404
    assert "no pool named 'web'" in cli("pool", "show", "web").failed().err

    spec = tmp_path / "monitor.yaml"
    spec.write_text("kind: healthmonitor\nname: probe\ntype: HEALTH_MONITOR_HTTP\nsend_interval: 5\n")
    cli("healthmonitor", "create", "-f", str(spec), "--set", "http_monitor.http_request=GET /ready").ok()
    stored = find(admin_http, "healthmonitor", "probe")
    assert stored is not None
    assert stored["send_interval"] == 5
    assert stored["http_monitor"]["http_request"] == "GET /ready"

    before = event_count(admin_http)
    payload = '{"name": "p1", "health_monitor_refs": ["probe"]}'
    dry = cli("pool", "create", "-f", "-", "--dry-run", "--json", stdin=payload).ok()
    assert json.loads(dry.out)["health_monitor_refs"] == [stored["url"]]
    assert find(admin_http, "pool", "p1") is None
    assert event_count(admin_http) == before


def test_errors_are_one_line_and_exit_1(cli: Cli, admin_http: httpx.Client, tmp_path: Path) -> None:
    reserved = cli("pool", "create", "bad", "--set", 'servers=[{"ip": "169.254.169.254"}]').failed()
    assert "reserved address" in reserved.err
    assert find(admin_http, "pool", "bad") is None

    cli("pool", "create", "twice").ok()
    assert "already exists" in cli("pool", "create", "twice").failed().err
    cli(
        "virtualservice", "create", "uses-twice", "--set", "pool_ref=twice",
        "--set", 'services=[{"port": 80}]', "--set", 'vip=[{"ip_address": "127.100.0.20"}]',
    ).ok()  # fmt: skip
    assert "still referred to" in cli("pool", "delete", "twice", "--yes").failed().err
    assert find(admin_http, "pool", "twice") is not None

    wrong = cli("--password", "not-the-password", "whoami").failed()
    assert "invalid username or password" in wrong.err
    assert "not-the-password" not in wrong.err + wrong.out
    unreachable = cli("--url", f"http://127.0.0.1:{free_port()}", "pool", "list").failed()
    assert "cannot reach the controller at http://127.0.0.1:" in unreachable.err

    assert "admin" in cli("whoami").ok().out

    app = tmp_path / "broken.yaml"
    app.write_text(
        "- {type: pool, name: good}\n"
        "- {type: pool, name: bad, servers: [{ip: 169.254.169.254}]}\n"
        "- {type: pool, name: never}\n"
    )
    run = cli("apply", "-f", str(app)).failed()
    assert run.err.startswith("error: pool bad: servers[0].ip:")
    assert "1 created, 0 updated, 0 unchanged" in run.out
    assert find(admin_http, "pool", "good") is not None
    assert find(admin_http, "pool", "never") is None
    unknown = cli("apply", "-f", "-", stdin="- {type: nothing, name: x}\n").failed()
    assert "type: must be one of" in unknown.err


APP = """\
- type: virtualservice
  name: shop
  services: [{port: 8080}]
  pool_ref: shop-pool
  vip: [{ip_address: 127.100.0.10}]
---
objects:
  - type: pool
    name: shop-pool
    lb_algorithm: LB_ALGORITHM_ROUND_ROBIN
    servers: [{ip: 127.0.0.1, port: 8081}]
    health_monitor_refs: [shop-hm]
  - kind: healthmonitor
    name: shop-hm
    type: HEALTH_MONITOR_HTTP
    send_interval: 5
"""


def test_apply_creates_then_converges(cli: Cli, admin_http: httpx.Client, tmp_path: Path) -> None:
    app = tmp_path / "app.yaml"
    app.write_text(APP)
    before = event_count(admin_http)
    dry = cli("apply", "-f", str(app), "--dry-run").ok().out
    assert "+ create healthmonitor shop-hm\n" in dry
    assert "+ create pool shop-pool (refers to healthmonitor shop-hm" in dry
    assert "3 created, 0 updated, 0 unchanged" in dry
    assert find(admin_http, "healthmonitor", "shop-hm") is None
    assert event_count(admin_http) == before

    created = cli("apply", "-f", str(app)).ok().out
    assert created.splitlines()[:3] == [
        "+ create healthmonitor shop-hm", "+ create pool shop-pool", "+ create virtualservice shop"
    ]  # fmt: skip
    assert "3 created, 0 updated, 0 unchanged" in created
    monitor, pool = find(admin_http, "healthmonitor", "shop-hm"), find(admin_http, "pool", "shop-pool")
    vs, vsvip = find(admin_http, "virtualservice", "shop"), find(admin_http, "vsvip", "shop")
    assert monitor and pool and vs and vsvip
    assert pool["health_monitor_refs"] == [monitor["url"]]
    assert (vs["pool_ref"], vs["vsvip_ref"]) == (pool["url"], vsvip["url"])
    assert vsvip["vip"][0]["ip_address"] == "127.100.0.10"

    after_create = event_count(admin_http)
    again = cli("apply", "-f", str(app)).ok().out
    assert "0 created, 0 updated, 3 unchanged" in again
    assert "= unchanged virtualservice shop" in again
    assert event_count(admin_http) == after_create

    app.write_text(APP.replace("port: 8081", "port: 8082"))
    preview = cli("apply", "-f", str(app), "--dry-run").ok().out
    assert "~ update pool shop-pool\n    servers[0].port: 8081 -> 8082\n" in preview
    assert "0 created, 1 updated, 2 unchanged" in preview
    assert admin_http.get(pool["url"]).json()["servers"][0]["port"] == 8081
    assert event_count(admin_http) == after_create

    updated = cli("apply", "-f", str(app)).ok().out
    assert "servers[0].port: 8081 -> 8082" in updated
    assert "0 created, 1 updated, 2 unchanged" in updated
    assert admin_http.get(pool["url"]).json()["servers"][0]["port"] == 8082
    assert event_count(admin_http) == after_create + 1

    events = json.loads(cli("events", "--event-id", "CONFIG_CREATE", "--json").ok().out)["results"]
    assert {("healthmonitor", "shop-hm"), ("pool", "shop-pool"), ("virtualservice", "shop")} <= {
        (e["obj_type"], e["obj_name"]) for e in events
    }
    table = cli("events", "--obj", "shop-pool", "--type", "pool").ok().out
    assert [line.split()[2] for line in table.splitlines()[1:]] == ["CONFIG_UPDATE", "CONFIG_CREATE"]
