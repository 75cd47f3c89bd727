"""Role and tenant isolation over every object type and verb, as one table.

Every case acts as a user of tenant `alpha` on a fresh object that lives either in `alpha` ("own"),
in tenant `beta` ("other"), or in the admin tenant ("shared": clouds and SE groups). The expected
status of every (type, role, verb, whose) is written out below by hand: it is the specification,
not a copy of the server's logic.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import ADMIN, make_settings
from fulcrum.controller.app import create_app
from fulcrum.model.registry import TYPES
from support.certs import self_signed

PASSWORD = "role-test-password"
ROLES = ("operator", "appadmin", "tenantadmin", "sysadmin")
ROLE_USERS = {
    "operator": ("alpha-operator", "application-operator"),
    "appadmin": ("alpha-appadmin", "application-admin"),
    "tenantadmin": ("alpha-tenantadmin", "tenant-admin"),
}
VERBS = ("list", "get", "create", "put", "patch", "delete")


CERT, KEY = self_signed("rbac.example")
_counter = itertools.count()


def _body(type_name: str, tenant: str) -> dict[str, Any]:
    name = f"{type_name}-obj{next(_counter)}"  # "obj" never occurs in a uuid, so leak checks are exact
    bodies: dict[str, dict[str, Any]] = {
        "tenant": {"name": name},
        "user": {
            "name": name,
            "password": PASSWORD,
            "access": [{"tenant_ref": tenant, "role": "application-operator"}],
        },
        "cloud": {"name": name, "vtype": "CLOUD_LOCAL"},
        "serviceengine": {"name": name},
        "serviceenginegroup": {"name": name},
        "healthmonitor": {"name": name, "type": "HEALTH_MONITOR_TCP"},
        "applicationpersistenceprofile": {"name": name},
        "applicationprofile": {"name": name, "type": "APPLICATION_PROFILE_TYPE_L4"},
        "sslkeyandcertificate": {"name": name, "certificate": {"certificate": CERT}, "key": KEY},
        "pool": {"name": name, "servers": [{"ip": "10.0.0.1"}]},
        "httppolicyset": {"name": name, "action": "REJECT"},
        "vsvip": {"name": name, "vip": [{"auto_allocate_ip": True}]},
        "virtualservice": {"name": name, "services": [{"port": 80}], "vip": [{"auto_allocate_ip": True}]},
        "alertsyslogconfig": {"name": name, "syslog_servers": [{"syslog_server": "127.0.0.1"}]},
        "alertemailconfig": {
            "name": name,
            "smtp_server": "127.0.0.1",
            "from_email": "a@example.com",
            "to_emails": "b@example.com",
        },
        "snmptrapprofile": {
            "name": name,
            "trap_servers": [{"ip_addr": "127.0.0.1", "community": "c0mmunity"}],
        },
        "webhook": {"name": name, "callback_url": "http://127.0.0.1:9/hook"},
        "actiongroupconfig": {"name": name},
        "alertconfig": {"name": name, "alert_rule": {"sys_event_rule": [{"event_id": "VS_DOWN"}]}},
    }
    return bodies[type_name]


# --- the specification ----------------------------------------------------------------------------

OK = {"list": 200, "get": 200, "create": 201, "put": 200, "patch": 200, "delete": 204}
READ_ONLY = {"list": 200, "get": 200, "create": 403, "put": 403, "patch": 403, "delete": 403}
HIDDEN = {"list": "absent", "get": 404, "put": 404, "patch": 404, "delete": 404}

APPLICATION_TYPES = (
    "healthmonitor",
    "applicationpersistenceprofile",
    "applicationprofile",
    "sslkeyandcertificate",
    "pool",
    "httppolicyset",
    "vsvip",
    "virtualservice",
)
SHARED_TYPES = ("cloud", "serviceenginegroup")
# Alerting is configured by tenant-admins; everyone in the tenant may read it.
TENANT_ADMIN_TYPES = (
    "alertsyslogconfig",
    "alertemailconfig",
    "snmptrapprofile",
    "webhook",
    "actiongroupconfig",
    "alertconfig",
)

EXPECTED: dict[tuple[str, str, str], dict[str, int | str]] = {}
for _type in APPLICATION_TYPES:
    EXPECTED[(_type, "operator", "own")] = READ_ONLY
    for _role in ("appadmin", "tenantadmin", "sysadmin"):
        EXPECTED[(_type, _role, "own")] = OK
    for _role in ROLES:
        EXPECTED[(_type, _role, "other")] = HIDDEN
for _type in TENANT_ADMIN_TYPES:
    for _role in ("operator", "appadmin"):
        EXPECTED[(_type, _role, "own")] = READ_ONLY
    for _role in ("tenantadmin", "sysadmin"):
        EXPECTED[(_type, _role, "own")] = OK
    for _role in ROLES:
        EXPECTED[(_type, _role, "other")] = HIDDEN
for _type in SHARED_TYPES:
    for _role in ("operator", "appadmin", "tenantadmin"):
        EXPECTED[(_type, _role, "shared")] = READ_ONLY
    EXPECTED[(_type, "sysadmin", "shared")] = OK
# Tenants: everyone sees the tenants they belong to; only system-admins change tenants. "own" is alpha
# itself, which still holds objects, so even a system-admin cannot delete it.
for _role in ("operator", "appadmin", "tenantadmin"):
    EXPECTED[("tenant", _role, "own")] = READ_ONLY
    EXPECTED[("tenant", _role, "other")] = HIDDEN
EXPECTED[("tenant", "sysadmin", "own")] = {**OK, "delete": 409}
EXPECTED[("tenant", "sysadmin", "other")] = {**OK, "delete": 204}
# Users: operators and application-admins see only themselves; a tenant-admin manages the users of its
# tenant and cannot see others; a system-admin manages everyone.
for _role in ("operator", "appadmin"):
    EXPECTED[("user", _role, "own")] = {**HIDDEN, "create": 403}
    EXPECTED[("user", _role, "other")] = HIDDEN
EXPECTED[("user", "tenantadmin", "own")] = OK
EXPECTED[("user", "tenantadmin", "other")] = HIDDEN
EXPECTED[("user", "sysadmin", "own")] = OK
EXPECTED[("user", "sysadmin", "other")] = {k: v for k, v in OK.items() if k != "create"}
# Service engines are created by the controller only; nobody writes them through the API.
for _role in ROLES:
    EXPECTED[("serviceengine", _role, "shared")] = {"list": 200, "create": 405}

CASES = [
    pytest.param(t, role, whose, verb, status, id=f"{t}-{role}-{whose}-{verb}")
    for (t, role, whose), verbs in EXPECTED.items()
    for verb, status in verbs.items()
]


def test_the_table_covers_every_type_and_role() -> None:
    covered = {(t, role) for (t, role, _whose) in EXPECTED}
    assert covered == {(t, role) for t in TYPES for role in ROLES}


# --- the harness ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_dir: Path = tmp_path_factory.mktemp("rbac")
    with TestClient(create_app(make_settings(data_dir))) as admin:
        admin.auth = ADMIN
        for tenant in ("alpha", "beta"):
            assert admin.post("/api/tenant", json={"name": tenant}).status_code == 201
        for user, role in ROLE_USERS.values():
            body = {"name": user, "password": PASSWORD, "access": [{"tenant_ref": "alpha", "role": role}]}
            assert admin.post("/api/user", json=body).status_code == 201
        # Something in alpha, so that deleting alpha is refused (409) rather than allowed.
        assert (
            admin.post(
                "/api/pool", json={"name": "keeps-alpha"}, headers={"X-Fulcrum-Tenant": "alpha"}
            ).status_code
            == 201
        )
        yield {"admin": admin}


def _as(role: str) -> tuple[dict[str, str], tuple[str, str]]:
    headers = {"X-Fulcrum-Tenant": "alpha"}
    if role == "sysadmin":
        return headers, ADMIN
    return headers, (ROLE_USERS[role][0], PASSWORD)


def _make(admin: TestClient, type_name: str, whose: str) -> dict[str, Any]:
    tenant = {"own": "alpha", "other": "beta", "shared": "admin"}[whose]
    if type_name == "tenant":
        if whose == "own":
            found = admin.get("/api/tenant", params={"name": "alpha"}).json()["results"]
            return found[0]  # type: ignore[no-any-return]
        answer = admin.post("/api/tenant", json=_body("tenant", tenant))
    elif type_name == "user":
        answer = admin.post("/api/user", json=_body("user", tenant))
    else:
        answer = admin.post(
            f"/api/{type_name}", json=_body(type_name, tenant), headers={"X-Fulcrum-Tenant": tenant}
        )
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _put_body(obj: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in obj.items() if k not in ("uuid", "url", "tenant_ref", "_last_modified")}
    body["name"] = f"{obj['name']}-put"
    return body


@pytest.mark.parametrize(("type_name", "role", "whose", "verb", "expected"), CASES)
def test_role_and_tenant_isolation(
    world: dict[str, Any], type_name: str, role: str, whose: str, verb: str, expected: int | str
) -> None:
    admin: TestClient = world["admin"]
    headers, auth = _as(role)
    call: Callable[..., Any] = admin.request
    obj = None if type_name == "serviceengine" else _make(admin, type_name, whose)

    if verb == "list":
        answer = call("GET", f"/api/{type_name}", params={"page_size": 1000}, headers=headers, auth=auth)
        assert answer.status_code == 200, answer.text
        if obj is not None:
            listed = {o["uuid"] for o in answer.json()["results"]}
            assert (obj["uuid"] in listed) == (expected != "absent")
        return

    if verb == "create":
        tenant = "alpha" if whose != "shared" else "admin"
        answer = call("POST", f"/api/{type_name}", json=_body(type_name, tenant), headers=headers, auth=auth)
    else:
        assert obj is not None
        url = obj["url"]
        if verb == "get":
            answer = call("GET", url, headers=headers, auth=auth)
        elif verb == "put":
            answer = call("PUT", url, json=_put_body(obj), headers=headers, auth=auth)
        elif verb == "patch":
            answer = call("PATCH", url, json={"name": f"{obj['name']}-patched"}, headers=headers, auth=auth)
        else:
            answer = call("DELETE", url, headers=headers, auth=auth)
    assert answer.status_code == expected, answer.text
    if type_name == "tenant" and whose == "own" and verb in ("put", "patch") and expected == 200:
        # The caller's own tenant was renamed; give it its name back for the cases that follow.
        assert admin.patch(obj["url"], json={"name": "alpha"}).status_code == 200  # type: ignore[index]
    if isinstance(expected, int) and expected >= 400:
        assert answer.json()["error"]
    if expected == 404:
        # Not even the name leaks through the error.
        assert obj is not None and obj["name"] not in answer.text

    # A refused change left the object exactly as it was.
    if obj is not None and verb in ("put", "patch", "delete") and expected != OK[verb]:
        current = admin.get(
            obj["url"],
            headers={"X-Fulcrum-Tenant": {"own": "alpha", "other": "beta", "shared": "admin"}[whose]},
        )
        assert current.status_code == 200
        assert current.json() == obj
