"""Keystone tokens against a real Keystone and a real controller process.

The controller validates X-Auth-Token through keystonemiddleware, maps the project to a tenant and
the Keystone roles to a Fulcrum role. Each Keystone project, user and role used here is created for
this module and deleted afterwards (support.keystone.KeystoneLab).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import make_settings
from fulcrum.controller.app import create_app
from fulcrum.controller.services.keystone import tenant_uuid_for_project
from support.keystone import KeystoneLab, KeystoneUser, admin_password
from support.processes import ADMIN_PASSWORD, ControllerProcess, free_port

pytestmark = [pytest.mark.keystone, pytest.mark.slow]


@dataclass
class Cloud:
    """Two projects with users of each kind, and a controller that trusts this Keystone."""

    lab: KeystoneLab
    controller: ControllerProcess
    service_password: str
    blue: dict[str, Any]
    green: dict[str, Any]
    member: KeystoneUser  # member in blue
    lb_member: KeystoneUser  # load-balancer_member in green
    reader: KeystoneUser  # reader in blue
    outsider: KeystoneUser  # only an unrelated role in blue

    def token(self, user: KeystoneUser, project: dict[str, Any]) -> str:
        return self.lab.token(user, project["id"])

    def http(self, token: str | None = None, **headers: str) -> httpx.Client:
        if token is not None:
            headers["X-Auth-Token"] = token
        return httpx.Client(base_url=self.controller.url, headers=headers, timeout=30)

    def admin(self) -> httpx.Client:
        return self.controller.client()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    lab = KeystoneLab()
    controller: ControllerProcess | None = None
    try:
        service_project = lab.project("fulcrum-service")
        service_user = lab.user("fulcrum", service_project["id"], roles=("service",))
        blue, green = lab.project("blue"), lab.project("green")
        controller = ControllerProcess(
            data_dir=tmp_path_factory.mktemp("keystone-ctrl"),
            env={
                "FULCRUM_KEYSTONE_URL": lab.url,
                "FULCRUM_KEYSTONE_USER": service_user.name,
                "FULCRUM_KEYSTONE_PASSWORD": service_user.password,
                "FULCRUM_KEYSTONE_PROJECT": service_project["name"],
                "FULCRUM_KEYSTONE_DOMAIN": "Default",
            },
        ).start()
        yield Cloud(
            lab=lab,
            controller=controller,
            service_password=service_user.password,
            blue=blue,
            green=green,
            member=lab.user("member", blue["id"], roles=("member",)),
            lb_member=lab.user("lb-member", green["id"], roles=("load-balancer_member",)),
            reader=lab.user("reader", blue["id"], roles=("reader",)),
            outsider=lab.user("outsider", blue["id"], roles=(lab.name("unrelated-role"),)),
        )
    finally:
        if controller is not None:
            controller.kill()
        lab.close()


def _tenants_named(cloud: Cloud, name: str) -> list[dict[str, Any]]:
    with cloud.admin() as admin:
        return [
            t
            for t in admin.get("/api/tenant", params={"page_size": 1000}).json()["results"]
            if t["name"] == name
        ]


def test_member_token_creates_a_pool_in_its_project_tenant(cloud: Cloud) -> None:
    with cloud.http(cloud.token(cloud.member, cloud.blue)) as http:
        me = http.get("/api/whoami")
        assert me.status_code == 200, me.text
        assert me.json()["role"] == "application-admin"
        assert me.json()["user"] == f"{cloud.member.name}@keystone"
        assert me.json()["user_ref"] is None  # not a Fulcrum user object
        assert me.json()["tenant"] == cloud.blue["name"]
        assert me.json()["tenant_ref"].endswith(tenant_uuid_for_project(cloud.blue["id"]))

        created = http.post("/api/pool", json={"name": "web", "servers": [{"ip": "127.0.0.1", "port": 8080}]})
        assert created.status_code == 201, created.text
        assert created.json()["tenant_ref"].endswith(tenant_uuid_for_project(cloud.blue["id"]))
        listed = http.get("/api/pool").json()
        assert [p["name"] for p in listed["results"]] == ["web"]

    # The project's tenant was created once, through the object service, with its audit event.
    assert len(_tenants_named(cloud, cloud.blue["name"])) == 1
    with cloud.admin() as admin:
        events = admin.get("/api/event", params={"event_id": "CONFIG_CREATE", "page_size": 1000}).json()
    tenant_events = [e for e in events["results"] if e["obj_name"] == cloud.blue["name"]]
    assert [e["obj_type"] for e in tenant_events] == ["tenant"]
    pool_events = [e for e in events["results"] if e["obj_type"] == "pool" and e["obj_name"] == "web"]
    assert [e["user"] for e in pool_events] == [f"{cloud.member.name}@keystone"]


def test_second_token_of_the_project_reuses_its_tenant(cloud: Cloud) -> None:
    for _ in range(2):
        with cloud.http(cloud.token(cloud.reader, cloud.blue)) as http:
            assert http.get("/api/whoami").status_code == 200
    assert len(_tenants_named(cloud, cloud.blue["name"])) == 1


def test_reader_token_reads_but_cannot_write(cloud: Cloud) -> None:
    with cloud.http(cloud.token(cloud.member, cloud.blue)) as http:
        assert http.post("/api/pool", json={"name": "seen-by-reader"}).status_code == 201
    with cloud.http(cloud.token(cloud.reader, cloud.blue)) as http:
        assert http.get("/api/whoami").json()["role"] == "application-operator"
        names = [p["name"] for p in http.get("/api/pool", params={"page_size": 1000}).json()["results"]]
        assert "seen-by-reader" in names
        refused = http.post("/api/pool", json={"name": "by-reader"})
        assert refused.status_code == 403, refused.text


def test_other_project_cannot_see_the_pool(cloud: Cloud) -> None:
    with cloud.http(cloud.token(cloud.member, cloud.blue)) as http:
        pool = http.post("/api/pool", json={"name": "blue-only"}).json()
    with cloud.http(cloud.token(cloud.lb_member, cloud.green)) as http:
        assert http.get("/api/whoami").json()["role"] == "application-admin"
        assert http.get("/api/pool", params={"name": "blue-only"}).json()["count"] == 0
        assert http.get(f"/api/pool/{pool['uuid']}").status_code == 404
        # Naming the other project's tenant does not help.
        other = http.get("/api/pool", headers={"X-Fulcrum-Tenant": cloud.blue["name"]})
        assert other.status_code == 403
        assert http.post("/api/pool", json={"name": "green-pool"}).status_code == 201


def test_bogus_and_revoked_tokens_are_refused(cloud: Cloud) -> None:
    revoked = cloud.token(cloud.member, cloud.blue)
    cloud.lab.revoke(revoked)  # before first use: the controller caches tokens it has validated
    for token in ("not-a-token", "gAAAAAB" + "x" * 180, revoked):
        with cloud.http(token) as http:
            response = http.get("/api/pool")
            assert response.status_code == 401, response.text
            assert "error" in response.json()


def test_unscoped_token_is_refused(cloud: Cloud) -> None:
    with cloud.http(cloud.lab.token(cloud.member)) as http:
        response = http.get("/api/pool")
    assert response.status_code == 403
    assert "project" in response.json()["error"]


def test_token_without_a_load_balancer_role_is_forbidden(cloud: Cloud) -> None:
    with cloud.http(cloud.token(cloud.outsider, cloud.blue)) as http:
        response = http.get("/api/pool")
    assert response.status_code == 403
    assert "load-balancer role" in response.json()["error"]


def test_admin_token_is_system_admin(cloud: Cloud) -> None:
    admin_project = cloud.lab.client.get("/projects", params={"name": "admin"}).json()["projects"][0]
    admin = KeystoneUser(id="", name="admin", password=admin_password())
    with cloud.http(cloud.lab.token(admin, admin_project["id"])) as http:
        me = http.get("/api/whoami").json()
        assert me["role"] == "system-admin"
        # Fulcrum's own tenant is called admin, so the Keystone admin project gets a suffixed name.
        assert me["tenant"] == f"admin-{admin_project['id'][:8]}"
        created = http.post("/api/tenant", json={"name": cloud.lab.name("made-by-keystone-admin")})
        assert created.status_code == 201, created.text
        assert http.delete(f"/api/tenant/{created.json()['uuid']}").status_code == 204
        with cloud.http(cloud.token(cloud.member, cloud.blue)) as member:
            member.post("/api/pool", json={"name": "admin-can-see"})
        in_blue = http.get(
            "/api/pool", params={"name": "admin-can-see"}, headers={"X-Fulcrum-Tenant": cloud.blue["name"]}
        )
        assert in_blue.json()["count"] == 1


def test_native_credentials_still_work_with_keystone_enabled(cloud: Cloud) -> None:
    with cloud.admin() as admin:
        assert admin.get("/api/whoami").json()["user"] == "admin"
        token = admin.post("/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
    with cloud.http(Authorization=f"Bearer {token}") as http:
        assert http.get("/api/whoami").json()["role"] == "system-admin"
    # With Keystone enabled X-Auth-Token is a Keystone token, so a Fulcrum session token there is refused.
    with cloud.http(token) as http:
        assert http.get("/api/whoami").status_code == 401


def test_service_password_never_reaches_the_log(cloud: Cloud) -> None:
    with cloud.http("not-a-token") as http:
        assert http.get("/api/pool").status_code == 401
    assert cloud.service_password not in cloud.controller.log()


def test_wrong_service_password_refuses_tokens_without_leaking_it(
    cloud: Cloud, controllers: list[ControllerProcess], tmp_path: Path
) -> None:
    wrong = "wrong-" + cloud.service_password
    proc = ControllerProcess(
        data_dir=tmp_path / "ctrl",
        env={
            "FULCRUM_KEYSTONE_URL": cloud.lab.url,
            "FULCRUM_KEYSTONE_USER": "no-such-service-user",
            "FULCRUM_KEYSTONE_PASSWORD": wrong,
            "FULCRUM_KEYSTONE_PROJECT": "service",
        },
    ).start()
    controllers.append(proc)
    with httpx.Client(base_url=proc.url, timeout=30) as http:
        response = http.get("/api/pool", headers={"X-Auth-Token": cloud.token(cloud.member, cloud.blue)})
    # The user's token is fine; the controller cannot check it: a server-side 503, not a 401.
    assert response.status_code == 503
    assert "service credentials" in response.json()["error"]
    assert wrong not in response.text
    assert wrong not in proc.log()


# --- without Keystone -----------------------------------------------------------------------------


@pytest.fixture
def plain_client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path / "data")), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("path", ["/", "/v2", "/v2.0"])
def test_version_discovery_paths_need_no_credentials(plain_client: TestClient, path: str) -> None:
    # The routes are the Octavia API's; without them the answer is 404, never 401.
    assert plain_client.get(path).status_code != 401


def test_without_keystone_x_auth_token_is_a_session_token(plain_client: TestClient) -> None:
    login = plain_client.post("/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    token = login.json()["token"]
    me = plain_client.get("/api/whoami", headers={"X-Auth-Token": token})
    assert me.status_code == 200
    assert me.json()["role"] == "system-admin"
    assert plain_client.get("/api/whoami", headers={"X-Auth-Token": "bogus"}).status_code == 401
    assert plain_client.post("/logout", headers={"X-Auth-Token": token}).status_code == 204
    assert plain_client.get("/api/whoami", headers={"X-Auth-Token": token}).status_code == 401


def test_unreachable_keystone_is_503_not_a_bad_token(
    controllers: list[ControllerProcess], tmp_path: Path
) -> None:
    """Nothing listens at the Keystone URL: the caller's token is not to blame, so the answer is 503."""
    proc = ControllerProcess(
        data_dir=tmp_path / "ctrl",
        env={
            "FULCRUM_KEYSTONE_URL": f"http://127.0.0.1:{free_port()}/v3",
            "FULCRUM_KEYSTONE_USER": "fulcrum",
            "FULCRUM_KEYSTONE_PASSWORD": "service-password-1",
        },
    ).start()
    controllers.append(proc)
    with httpx.Client(base_url=proc.url, timeout=60) as http:
        native = http.get("/api/pool", headers={"X-Auth-Token": "a-token"})
        octavia = http.get("/v2/lbaas/loadbalancers", headers={"X-Auth-Token": "a-token"})
    assert native.status_code == 503, native.text
    assert "Keystone cannot validate tokens now" in native.json()["error"]
    assert octavia.status_code == 503
    assert octavia.json()["faultcode"] == "Server"
