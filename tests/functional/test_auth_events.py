"""Authentication, brute-force protection, tenant selection, and the audit events of config changes."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from conftest import make_settings
from fulcrum.controller.app import create_app
from support.certs import self_signed
from support.processes import ADMIN_PASSWORD

ADMIN = ("admin", ADMIN_PASSWORD)
REDACTED = "<redacted>"
# The version documents OpenStack clients read before they authenticate are public too.
NO_AUTH_ROUTES = {
    ("GET", "/api/health"),
    ("GET", "/api/version"),
    ("GET", "/"),
    ("GET", "/v2"),
    ("GET", "/v2.0"),
}
SE_PROTOCOL = "/api/se-protocol/"  # service engines authenticate by bootstrap token, then by signature


class FakeClock:
    def __init__(self) -> None:
        self.t = dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp()

    def now(self) -> float:
        return self.t


@pytest.fixture
def custom_client(tmp_path: Path) -> Iterator[Any]:
    """Start a controller with custom settings (and optionally a fake clock): custom_client(**settings)."""
    clients: list[TestClient] = []

    def start(clock: FakeClock | None = None, **overrides: Any) -> TestClient:
        settings = make_settings(tmp_path / f"data{len(clients)}", **overrides)
        test_client = TestClient(create_app(settings, clock), raise_server_exceptions=False)
        test_client.__enter__()
        test_client.auth = ADMIN
        clients.append(test_client)
        return test_client

    yield start
    for test_client in clients:
        test_client.__exit__(None, None, None)


# --- helpers --------------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def anonymous(client: TestClient, method: str, url: str, **kwargs: Any) -> Any:
    """A request without the client's admin credentials (or with the given headers instead)."""
    return client.request(method, url, auth=None, **kwargs)  # type: ignore[arg-type]


def create(client: TestClient, type_name: str, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = client.post(f"/api/{type_name}", json=body, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def make_user(
    client: TestClient, name: str, password: str, role: str = "application-admin", tenant: str = "admin"
) -> dict[str, Any]:
    body = {"name": name, "password": password, "access": [{"tenant_ref": tenant, "role": role}]}
    return create(client, "user", body)


def events(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/event", params={"page_size": 1000, **params})
    assert response.status_code == 200, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


def login(client: TestClient, user: str, password: str) -> Any:
    return anonymous(client, "POST", "/login", json={"username": user, "password": password})


def error_of(response: Any) -> str:
    """The message of an error answer: `{"error"}` natively, Octavia's and Neutron's shapes on theirs."""
    body = response.json()
    if "NeutronError" in body:
        return body["NeutronError"]["message"]  # type: ignore[no-any-return]
    if "faultstring" in body:
        assert set(body) == {"faultcode", "faultstring", "debuginfo"}, body
        return body["faultstring"]  # type: ignore[no-any-return]
    assert set(body) == {"error"}, body
    return body["error"]  # type: ignore[no-any-return]


def api_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every route, looking through included routers of any FastAPI version."""
    found: list[tuple[str, str]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI keeps included routers as branches
                walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif isinstance(route, APIRoute):
                path = route.path if route.path.startswith(prefix) else prefix + route.path
                found.extend((method, path) for method in sorted(route.methods))

    walk(app.routes, "")
    return found


def credentials_in_body(path: str) -> dict[str, Any] | None:
    """Routes that take their credentials in the body get wrong ones there."""
    if path == "/login":
        return {"username": "admin", "password": "not-it"}
    if path.startswith(SE_PROTOCOL) and path.endswith("/register"):
        return {
            "se_uuid": "serviceengine-0b3c9a52-6a7e-4c8e-9d3f-2f1b5e6a7c80",
            "bootstrap_token": "not-a-bootstrap-token-at-all",
            "agent_version": "test",
        }
    return None


def concrete(path: str) -> str:
    return path.replace("{type_name}", "pool").replace("{uuid}", "pool-0b3c9a52-6a7e-4c8e-9d3f-2f1b5e6a7c80")


# --- who may call what ----------------------------------------------------------------------------


def test_every_route_but_health_and_version_needs_authentication(custom_client: Any) -> None:
    # Generous throttle limits: this test sends wrong credentials to every route on purpose.
    client = custom_client(max_failures_per_user=100_000, max_failures_per_source=100_000)
    routes = api_routes(client.app)
    assert len(routes) > 60  # every type's routes were found, not just the system ones
    assert ("GET", "/api/openapi.json") in routes
    assert ("DELETE", "/api/virtualservice/{uuid}") in routes
    assert set(routes) >= NO_AUTH_ROUTES
    for method, path in routes:
        url = concrete(path)
        if (method, path) in NO_AUTH_ROUTES:
            response = anonymous(client, method, url)
            assert response.status_code == 200, (method, path)
            continue
        body = credentials_in_body(path)
        response = anonymous(client, method, url, json=body)
        assert response.status_code == 401, (method, path, response.status_code, response.text)
        assert error_of(response)
        if body is not None:
            continue
        if not path.startswith(SE_PROTOCOL):
            assert response.headers["WWW-Authenticate"].startswith("Basic")
        # Wrong credentials of every kind are refused the same way.
        for headers in (bearer("not-a-token"), basic("admin", "wrong"), {"Authorization": "Basic !!!"}):
            assert anonymous(client, method, url, headers=headers).status_code == 401, (method, path, headers)


def test_health_and_version_answer_without_credentials(client: TestClient) -> None:
    assert anonymous(client, "GET", "/api/health").json() == {"status": "ok"}
    version = anonymous(client, "GET", "/api/version").json()
    assert version["api"] == "v1"
    assert version["version"]


def test_unauthenticated_body_is_not_parsed_before_authentication(client: TestClient) -> None:
    # A client without credentials learns it must authenticate, not how its body was malformed.
    response = anonymous(
        client, "POST", "/api/pool", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 401


def test_unauthenticated_write_changes_nothing(client: TestClient) -> None:
    assert anonymous(client, "POST", "/api/pool", json={"name": "p"}).status_code == 401
    assert client.get("/api/pool").json()["count"] == 0


def test_basic_auth(client: TestClient) -> None:
    make_user(client, "alice", "alice-pass-1", role="tenant-admin")
    response = anonymous(client, "GET", "/api/whoami", headers=basic("alice", "alice-pass-1"))
    assert response.status_code == 200
    assert response.json()["user"] == "alice"
    assert response.json()["role"] == "tenant-admin"
    assert anonymous(client, "GET", "/api/whoami", headers=basic("alice", "alice-pass-2")).status_code == 401
    assert anonymous(client, "GET", "/api/whoami", headers=basic("nobody", "alice-pass-1")).status_code == 401


def test_login_token_works_as_bearer_until_logout(client: TestClient) -> None:
    response = login(client, "admin", ADMIN_PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"] == "admin"
    assert body["role"] == "system-admin"
    assert body["tenant"] == "admin"
    assert body["expires"] > dt.datetime.now(dt.UTC).timestamp()
    token = body["token"]
    assert anonymous(client, "GET", "/api/whoami", headers=bearer(token)).json()["user"] == "admin"
    created = anonymous(client, "POST", "/api/pool", headers=bearer(token), json={"name": "by-token"})
    assert created.status_code == 201

    assert anonymous(client, "POST", "/logout", headers=bearer(token)).status_code == 204
    after = anonymous(client, "GET", "/api/whoami", headers=bearer(token))
    assert after.status_code == 401
    assert anonymous(client, "POST", "/logout", headers=bearer(token)).status_code == 401
    assert [e["event_id"] for e in events(client, event_id="USER_LOGOUT")] == ["USER_LOGOUT"]
    assert [e["user"] for e in events(client, event_id="USER_LOGIN")] == ["admin"]


def test_logout_ends_only_that_session(client: TestClient) -> None:
    first = login(client, "admin", ADMIN_PASSWORD).json()["token"]
    second = login(client, "admin", ADMIN_PASSWORD).json()["token"]
    assert anonymous(client, "POST", "/logout", headers=bearer(first)).status_code == 204
    assert anonymous(client, "GET", "/api/whoami", headers=bearer(first)).status_code == 401
    assert anonymous(client, "GET", "/api/whoami", headers=bearer(second)).status_code == 200


def test_bad_password_is_401_and_recorded(client: TestClient) -> None:
    make_user(client, "carol", "carol-pass-1")
    response = login(client, "carol", "not-carols-password")
    assert response.status_code == 401
    assert error_of(response) == "invalid username or password"
    unknown = login(client, "nobody-by-this-name", "whatever-pw")
    assert unknown.status_code == 401
    assert error_of(unknown) == error_of(response)  # no hint whether the user exists
    failed = events(client, event_id="USER_LOGIN_FAILED")
    assert {e["obj_name"] for e in failed} == {"carol", "nobody-by-this-name"}
    assert all(e["user"] in {"carol", "nobody-by-this-name"} for e in failed)
    assert all(e["source_ip"] == "testclient" for e in failed)
    raw = client.get("/api/event", params={"page_size": 1000}).text
    assert "not-carols-password" not in raw


def test_inactive_user_cannot_log_in(client: TestClient) -> None:
    user = make_user(client, "dave", "dave-pass-1")
    assert login(client, "dave", "dave-pass-1").status_code == 200
    assert client.patch(user["url"], json={"is_active": False}).status_code == 200
    assert login(client, "dave", "dave-pass-1").status_code == 401
    assert anonymous(client, "GET", "/api/whoami", headers=basic("dave", "dave-pass-1")).status_code == 401


def test_sixth_bad_attempt_is_429_even_with_the_right_password(client: TestClient) -> None:
    make_user(client, "erin", "erin-pass-1")
    for _ in range(5):
        assert login(client, "erin", "guess-guess").status_code == 401
    locked = login(client, "erin", "erin-pass-1")
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) >= 1
    assert error_of(locked)
    basic_locked = anonymous(client, "GET", "/api/whoami", headers=basic("erin", "erin-pass-1"))
    assert basic_locked.status_code == 429
    assert "Retry-After" in basic_locked.headers
    # Only erin is locked: the admin (same source) still gets in.
    assert client.get("/api/whoami").status_code == 200
    assert len(events(client, event_id="USER_LOGIN_FAILED")) == 5  # throttled attempts are not checked


def test_failures_per_source_are_limited(custom_client: Any) -> None:
    client = custom_client(max_failures_per_source=3)
    for name in ("u1", "u2", "u3"):
        assert login(client, name, "guess-guess").status_code == 401
    locked = login(client, "admin", ADMIN_PASSWORD)
    assert locked.status_code == 429
    assert "Retry-After" in locked.headers


def test_lockout_ends_after_the_window(custom_client: Any) -> None:
    clock = FakeClock()
    client = custom_client(clock=clock, max_failures_per_user=2, login_window_s=30)
    make_user(client, "frank", "frank-pass-1")
    assert login(client, "frank", "guess-guess").status_code == 401
    clock.t += 10
    assert login(client, "frank", "guess-guess").status_code == 401
    locked = login(client, "frank", "frank-pass-1")
    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == "20"
    clock.t += 20
    assert login(client, "frank", "frank-pass-1").status_code == 200
    # A success resets frank's count: two more failures are needed to lock him out again.
    assert login(client, "frank", "guess-guess").status_code == 401
    assert login(client, "frank", "frank-pass-1").status_code == 200


def test_password_change_revokes_tokens(client: TestClient) -> None:
    user = make_user(client, "gina", "gina-pass-1")
    token = login(client, "gina", "gina-pass-1").json()["token"]
    other = login(client, "admin", ADMIN_PASSWORD).json()["token"]
    assert anonymous(client, "GET", "/api/whoami", headers=bearer(token)).status_code == 200
    assert client.patch(user["url"], json={"full_name": "Gina"}).status_code == 200
    assert anonymous(client, "GET", "/api/whoami", headers=bearer(token)).status_code == 200  # not a password
    assert client.patch(user["url"], json={"password": "gina-pass-2"}).status_code == 200
    assert anonymous(client, "GET", "/api/whoami", headers=bearer(token)).status_code == 401
    assert anonymous(client, "GET", "/api/whoami", headers=bearer(other)).status_code == 200
    assert anonymous(client, "GET", "/api/whoami", headers=basic("gina", "gina-pass-1")).status_code == 401
    assert anonymous(client, "GET", "/api/whoami", headers=basic("gina", "gina-pass-2")).status_code == 200


def test_own_password_change_revokes_own_tokens(client: TestClient) -> None:
    user = make_user(client, "hank", "hank-pass-1")
    token = login(client, "hank", "hank-pass-1").json()["token"]
    response = anonymous(
        client, "PATCH", user["url"], headers=bearer(token), json={"password": "hank-pass-2"}
    )
    assert response.status_code == 200, response.text
    assert anonymous(client, "GET", "/api/whoami", headers=bearer(token)).status_code == 401
    assert login(client, "hank", "hank-pass-2").status_code == 200


def test_deleted_user_loses_access(client: TestClient) -> None:
    user = make_user(client, "ivy", "ivy-pass-123")
    token = login(client, "ivy", "ivy-pass-123").json()["token"]
    assert anonymous(client, "GET", "/api/whoami", headers=basic("ivy", "ivy-pass-123")).status_code == 200
    assert client.delete(user["url"]).status_code == 204
    assert anonymous(client, "GET", "/api/whoami", headers=bearer(token)).status_code == 401
    assert anonymous(client, "GET", "/api/whoami", headers=basic("ivy", "ivy-pass-123")).status_code == 401


# --- tenants --------------------------------------------------------------------------------------


def test_tenant_header_by_name_and_uuid(client: TestClient) -> None:
    tenant = create(client, "tenant", {"name": "blue"})
    for value in ("blue", tenant["uuid"]):
        who = client.get("/api/whoami", headers={"X-Fulcrum-Tenant": value})
        assert who.status_code == 200
        assert who.json()["tenant"] == "blue"
        assert who.json()["tenant_ref"] == tenant["url"]
    pool = create(client, "pool", {"name": "blue-pool"}, headers={"X-Fulcrum-Tenant": "blue"})
    assert pool["tenant_ref"] == tenant["url"]
    in_blue = client.get("/api/pool", headers={"X-Fulcrum-Tenant": tenant["uuid"]}).json()
    assert [p["name"] for p in in_blue["results"]] == ["blue-pool"]
    assert client.get("/api/pool").json()["count"] == 0  # not in the admin tenant
    assert client.get(pool["url"]).status_code == 404
    # The same name may exist in another tenant.
    create(client, "pool", {"name": "blue-pool"})


def test_tenant_objects_cannot_refer_across_tenants(client: TestClient) -> None:
    create(client, "tenant", {"name": "blue"})
    admin_monitor = create(client, "healthmonitor", {"name": "admin-hm", "type": "HEALTH_MONITOR_TCP"})
    blue = {"X-Fulcrum-Tenant": "blue"}
    for ref in ("admin-hm", admin_monitor["url"], admin_monitor["uuid"]):
        response = client.post("/api/pool", json={"name": "p", "health_monitor_refs": [ref]}, headers=blue)
        assert response.status_code == 400, response.text
        assert error_of(response).startswith("health_monitor_refs[0]:")
    # Shared (clouds) and built-in (System-*) objects of the admin tenant are fine.
    ok = client.post(
        "/api/pool",
        json={"name": "p", "cloud_ref": "Default-Cloud", "health_monitor_refs": ["System-TCP"]},
        headers=blue,
    )
    assert ok.status_code == 201, ok.text


def _tenant_error(client: TestClient, value: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    response = anonymous(client, "GET", "/api/whoami", headers={**(headers or {}), "X-Fulcrum-Tenant": value})
    return response.status_code, error_of(response) if response.status_code != 200 else ""


def test_unknown_tenant_answers_like_a_tenant_without_access(client: TestClient) -> None:
    red = create(client, "tenant", {"name": "red"})
    create(client, "tenant", {"name": "green"})
    make_user(client, "greta", "greta-pass-1", role="tenant-admin", tenant="green")
    greta = basic("greta", "greta-pass-1")
    assert _tenant_error(client, "green", greta)[0] == 200

    status_red, message_red = _tenant_error(client, "red", greta)
    status_none, message_none = _tenant_error(client, "no-such-tenant", greta)
    assert status_red == status_none == 403
    assert message_red.replace("red", "X") == message_none.replace("no-such-tenant", "X")

    made_up = "tenant-0b3c9a52-6a7e-4c8e-9d3f-2f1b5e6a7c80"
    status_uuid, message_uuid = _tenant_error(client, red["uuid"], greta)
    status_fake, message_fake = _tenant_error(client, made_up, greta)
    assert status_uuid == status_fake == 403
    assert message_uuid.replace(red["uuid"], "X") == message_fake.replace(made_up, "X")

    # A system-admin gets the same 403 for a tenant that does not exist.
    assert _tenant_error(client, "no-such-tenant", basic(*ADMIN)) == (status_none, message_none)


def test_tenant_header_must_not_be_blank(client: TestClient) -> None:
    response = client.get("/api/whoami", headers={"X-Fulcrum-Tenant": " "})
    assert response.status_code == 400
    assert "X-Fulcrum-Tenant" in error_of(response)


# --- config events --------------------------------------------------------------------------------


def _one(found: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(found) == 1, found
    return found[0]


def test_create_update_delete_events(client: TestClient) -> None:
    admin_tenant = client.get("/api/whoami").json()["tenant_ref"]
    pool = create(client, "pool", {"name": "web", "servers": [{"ip": "10.0.0.1"}]})
    assert (
        client.patch(pool["url"], json={"description": "new", "default_server_port": 8080}).status_code == 200
    )
    assert client.delete(pool["url"]).status_code == 204

    mine = events(client, obj_ref=pool["url"])
    assert [e["event_id"] for e in mine] == [
        "CONFIG_DELETE",
        "CONFIG_UPDATE",
        "CONFIG_CREATE",
    ]  # newest first
    for event in mine:
        assert event["user"] == "admin"
        assert event["tenant_ref"] == admin_tenant
        assert event["obj_ref"] == pool["url"]
        assert event["obj_type"] == "pool"
        assert event["obj_name"] == "web"
        assert event["source_ip"] == "testclient"
    created = mine[2]["details"]["fields"]
    assert created["name"] == "web"
    assert created["servers"][0]["ip"] == "10.0.0.1"
    assert mine[1]["details"] == {
        "diff": {
            "description": {"old": "", "new": "new"},
            "default_server_port": {"old": 80, "new": 8080},
        }
    }
    assert mine[0]["details"]["fields"]["description"] == "new"


def test_unchanged_put_records_an_empty_diff(client: TestClient) -> None:
    pool = create(client, "pool", {"name": "web"})
    assert client.put(pool["url"], json=pool).status_code == 200
    update = _one(events(client, obj_ref=pool["url"], event_id="CONFIG_UPDATE"))
    assert update["details"] == {"diff": {}}


def test_failed_write_records_no_event(client: TestClient) -> None:
    before = client.get("/api/event").json()["count"]
    assert client.post("/api/pool", json={"name": "p", "cloud_ref": "nope"}).status_code == 400
    assert client.post("/api/pool", params={"dry_run": "true"}, json={"name": "p"}).status_code == 200
    assert client.get("/api/event").json()["count"] == before


def _pem_body(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def test_secrets_never_appear_in_events(client: TestClient) -> None:
    password, new_password, wrong = "Pa55-first-secret", "Pa55-second-secret", "Pa55-wrong-guess"
    user = make_user(client, "jane", password)
    assert (
        client.patch(user["url"], json={"password": new_password, "email": "jane@example.com"}).status_code
        == 200
    )
    assert login(client, "jane", wrong).status_code == 401
    assert client.delete(user["url"]).status_code == 204

    cert, key = self_signed("secret.example.com")
    enc_cert, enc_key = self_signed("secret.example.com", passphrase="Pa55-phrase-secret")
    site = create(
        client, "sslkeyandcertificate", {"name": "site", "certificate": {"certificate": cert}, "key": key}
    )
    create(
        client,
        "sslkeyandcertificate",
        {
            "name": "enc",
            "certificate": {"certificate": enc_cert},
            "key": enc_key,
            "key_passphrase": "Pa55-phrase-secret",
        },
    )
    assert client.patch(site["url"], json={"key": key}).status_code == 200
    openstack = {
        "auth_url": "https://keystone.example.com/v3",
        "username": "fulcrum",
        "password": "Pa55-cloud-secret",
        "admin_tenant": "admin",
        "mgmt_network_name": "mgmt",
    }
    create(client, "cloud", {"name": "os", "vtype": "CLOUD_OPENSTACK", "openstack_configuration": openstack})

    raw = client.get("/api/event", params={"page_size": 1000}).text
    for secret in (password, new_password, wrong, "Pa55-phrase-secret", "Pa55-cloud-secret"):
        assert secret not in raw, secret
    for pem in (key, enc_key):
        for line in _pem_body(pem):
            assert line not in raw
    assert "PRIVATE KEY" not in raw
    assert "$argon2" not in raw

    user_created = _one(events(client, obj_ref=user["url"], event_id="CONFIG_CREATE"))["details"]["fields"]
    password_fields = {k: v for k, v in user_created.items() if "password" in k}
    assert password_fields
    assert set(password_fields.values()) == {REDACTED}
    user_updated = _one(events(client, obj_ref=user["url"], event_id="CONFIG_UPDATE"))["details"]["diff"]
    assert user_updated["email"] == {"old": "", "new": "jane@example.com"}
    changed_password = {k: v for k, v in user_updated.items() if "password" in k}
    assert changed_password
    assert all(v == {"old": REDACTED, "new": REDACTED} for v in changed_password.values())
    assert "password" not in str(
        _one(events(client, obj_ref=user["url"], event_id="CONFIG_DELETE"))["details"]
    )

    cert_created = _one(events(client, obj_ref=site["url"], event_id="CONFIG_CREATE"))["details"]["fields"]
    assert cert_created["key"] == REDACTED
    cert_updated = _one(events(client, obj_ref=site["url"], event_id="CONFIG_UPDATE"))["details"]["diff"]
    assert cert_updated["key"] == {"old": REDACTED, "new": REDACTED}


def test_event_filters(client: TestClient) -> None:
    first = create(client, "pool", {"name": "first"})
    second = create(client, "pool", {"name": "second"})
    assert client.patch(second["url"], json={"description": "x"}).status_code == 200

    by_ref = events(client, obj_ref=second["url"])
    assert {e["obj_ref"] for e in by_ref} == {second["url"]}
    assert len(by_ref) == 2
    assert len(events(client, obj_ref=second["uuid"])) == 2  # a bare uuid works too
    assert len(events(client, obj_ref=f"{second['url']}#second")) == 2

    updates = events(client, event_id="CONFIG_UPDATE")
    assert [e["obj_ref"] for e in updates] == [second["url"]]
    assert events(client, event_id="NO_SUCH_EVENT") == []

    second_created = _one(events(client, obj_ref=second["url"], event_id="CONFIG_CREATE"))
    since = events(client, since=second_created["report_timestamp"])
    refs = {e["obj_ref"] for e in since}
    assert second["url"] in refs
    assert first["url"] not in refs
    assert {e["event_id"] for e in since} == {"CONFIG_CREATE", "CONFIG_UPDATE"}
    epoch = dt.datetime.fromisoformat(second_created["report_timestamp"]).timestamp()
    assert events(client, since=str(epoch + 3600)) == []
    assert len(events(client, since="0")) == client.get("/api/event").json()["count"]
    until = events(client, until=second_created["report_timestamp"], obj_ref=first["url"])
    assert [e["event_id"] for e in until] == ["CONFIG_CREATE"]
    bad = client.get("/api/event", params={"since": "yesterday"})
    assert bad.status_code == 400
    assert error_of(bad).startswith("since:")


@pytest.mark.parametrize("param", ["since", "until"])
@pytest.mark.parametrize("value", ["inf", "-inf", "1e300", "99999999999999", "yesterday", "2026-13-01"])
def test_event_time_filter_never_fails_the_server(client: TestClient, param: str, value: str) -> None:
    response = client.get("/api/event", params={param: value})
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert error_of(response).startswith(f"{param}:")


def test_event_paging(client: TestClient) -> None:
    for index in range(3):
        create(client, "pool", {"name": f"p{index}"})
    total = client.get("/api/event").json()["count"]
    page = client.get("/api/event", params={"page_size": 2, "event_id": "CONFIG_CREATE"})
    assert page.status_code == 200
    body = page.json()
    assert len(body["results"]) == 2
    assert body["next"] is not None
    following = client.get(body["next"]).json()
    assert following["results"][0]["uuid"] not in {e["uuid"] for e in body["results"]}
    assert total >= 3


def test_events_are_scoped_to_the_tenant(client: TestClient) -> None:
    blue = create(client, "tenant", {"name": "blue"})
    create(client, "tenant", {"name": "green"})
    in_blue = create(client, "pool", {"name": "b"}, headers={"X-Fulcrum-Tenant": "blue"})
    in_admin = create(client, "pool", {"name": "a"})
    make_user(client, "bart", "bart-pass-1", role="tenant-admin", tenant="green")

    blue_events = client.get(
        "/api/event", params={"page_size": 1000}, headers={"X-Fulcrum-Tenant": "blue"}
    ).json()
    assert {e["tenant_ref"] for e in blue_events["results"]} == {blue["url"]}
    assert in_blue["url"] in {e["obj_ref"] for e in blue_events["results"]}
    # The system-admin in the admin tenant sees every tenant's events.
    everything = {e["obj_ref"] for e in events(client)}
    assert {in_blue["url"], in_admin["url"]} <= everything
    # A tenant-admin of green sees nothing of blue or admin.
    green = anonymous(
        client, "GET", "/api/event", headers=basic("bart", "bart-pass-1"), params={"page_size": 1000}
    )
    assert green.status_code == 200
    assert {e["obj_ref"] for e in green.json()["results"]} & {in_blue["url"], in_admin["url"]} == set()


def test_event_timestamps_are_utc_iso(client: TestClient) -> None:
    create(client, "pool", {"name": "p"})
    for event in events(client):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", event["report_timestamp"])
