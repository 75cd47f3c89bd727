"""The native object API end to end, in process: CRUD of every type, references, VIPs, certificates,
built-in objects, and the promise that bad input is refused with a 400 and changes nothing."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fulcrum.model.registry import TYPES, WriteAccess
from support.certs import self_signed

# --- helpers --------------------------------------------------------------------------------------


def key_material(pem: str) -> str:
    """The base64 body of a PEM block: what would show if the key leaked in any encoding of the PEM."""
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


def minimal(type_name: str, name: str) -> dict[str, Any]:
    """A minimal valid body of each writable type."""
    if type_name == "sslkeyandcertificate":
        cert, key = self_signed()
        return {"name": name, "certificate": {"certificate": cert}, "key": key}
    bodies: dict[str, dict[str, Any]] = {
        "tenant": {},
        "user": {
            "password": "user-pass-123",
            "access": [{"tenant_ref": "admin", "role": "application-admin"}],
        },
        "cloud": {"vtype": "CLOUD_NETNS"},
        "serviceenginegroup": {},
        "healthmonitor": {"type": "HEALTH_MONITOR_TCP"},
        "applicationpersistenceprofile": {},
        "applicationprofile": {},
        "pool": {},
        "httppolicyset": {
            "action": "REJECT",
            "matches": [
                {
                    "match_id": "0b5d6c1e-3f7a-4e2b-9c8d-1a2b3c4d5e6f",
                    "type": "PATH",
                    "compare_type": "STARTS_WITH",
                    "value": "/admin",
                }
            ],
        },
        "vsvip": {"vip": [{"auto_allocate_ip": True}]},
        "virtualservice": {"services": [{"port": 80}], "vip": [{"auto_allocate_ip": True}]},
        "alertsyslogconfig": {"syslog_servers": [{"syslog_server": "127.0.0.1"}]},
        "alertemailconfig": {
            "smtp_server": "127.0.0.1",
            "from_email": "a@example.com",
            "to_emails": "b@example.com",
        },
        "snmptrapprofile": {"trap_servers": [{"ip_addr": "127.0.0.1", "community": "public-ish"}]},
        "webhook": {"callback_url": "http://127.0.0.1:9/hook"},
        "actiongroupconfig": {},
        "alertconfig": {"alert_rule": {"sys_event_rule": [{"event_id": "VS_DOWN"}]}},
    }
    return {"name": name, **bodies[type_name]}


# A merge patch per type that changes one field, and the field it changes.
PATCHES: dict[str, tuple[dict[str, Any], str, Any]] = {
    "tenant": ({"description": "patched"}, "description", "patched"),
    "user": ({"full_name": "Patched Person"}, "full_name", "Patched Person"),
    "cloud": ({"netns_configuration": {"vip_network": "10.201.0.0/16"}}, "netns_configuration", None),
    "serviceenginegroup": ({"max_se": 7}, "max_se", 7),
    "healthmonitor": ({"send_interval": 20}, "send_interval", 20),
    "applicationpersistenceprofile": ({"description": "patched"}, "description", "patched"),
    "applicationprofile": ({"description": "patched"}, "description", "patched"),
    "sslkeyandcertificate": ({"type": "SSL_CERTIFICATE_TYPE_CA"}, "type", "SSL_CERTIFICATE_TYPE_CA"),
    "pool": ({"servers": [{"ip": "10.0.0.1", "port": 8080}]}, "servers", None),
    "httppolicyset": ({"enabled": False}, "enabled", False),
    "vsvip": ({"vip": [{"ip_address": "127.0.0.77"}]}, "vip", None),
    "virtualservice": ({"traffic_enabled": False}, "traffic_enabled", False),
    "alertsyslogconfig": ({"description": "patched"}, "description", "patched"),
    "alertemailconfig": ({"smtp_port": 2525}, "smtp_port", 2525),
    "snmptrapprofile": ({"description": "patched"}, "description", "patched"),
    "webhook": ({"splunk_hec": True}, "splunk_hec", True),
    "actiongroupconfig": ({"level": "ALERT_HIGH"}, "level", "ALERT_HIGH"),
    "alertconfig": ({"throttle": 60}, "throttle", 60),
}

WRITABLE = [name for name, otype in TYPES.items() if otype.write != WriteAccess.NONE]


def config(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "_last_modified"}


def listing(client: TestClient, type_name: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/{type_name}", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def names(client: TestClient, type_name: str) -> set[str]:
    return {o["name"] for o in listing(client, type_name, page_size=1000)["results"]}


def create(client: TestClient, type_name: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/api/{type_name}", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def event_count(client: TestClient) -> int:
    response = client.get("/api/event", params={"page_size": 1})
    assert response.status_code == 200, response.text
    return response.json()["count"]  # type: ignore[no-any-return]


def snapshot(client: TestClient) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """Every object of every type (as admin sees them) and the number of events."""
    state = {t: sorted(listing(client, t, page_size=1000)["results"], key=lambda o: o["uuid"]) for t in TYPES}
    return state, event_count(client)


def error_of(response: Any) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str)
    return body["error"]  # type: ignore[no-any-return]


# --- CRUD round trip of every type ----------------------------------------------------------------


@pytest.mark.parametrize("type_name", WRITABLE)
def test_round_trip(client: TestClient, type_name: str) -> None:
    created = create(client, type_name, minimal(type_name, f"rt-{type_name}"))
    uuid = created["uuid"]
    assert uuid.startswith(f"{type_name}-")
    assert created["url"] == f"/api/{type_name}/{uuid}"
    assert created["name"] == f"rt-{type_name}"

    fetched = client.get(f"/api/{type_name}/{uuid}")
    assert fetched.status_code == 200
    assert fetched.json() == created
    found = listing(client, type_name, name=f"rt-{type_name}")
    assert found["count"] == 1
    assert [o["uuid"] for o in found["results"]] == [uuid]

    # GET -> PUT of the very same body is accepted and changes no configuration.
    put_same = client.put(f"/api/{type_name}/{uuid}", json=fetched.json())
    assert put_same.status_code == 200, put_same.text
    assert config(put_same.json()) == config(created)
    assert config(client.get(f"/api/{type_name}/{uuid}").json()) == config(created)

    # PUT replaces: a renamed body is stored under the new name.
    renamed = {**put_same.json(), "name": f"rt2-{type_name}"}
    put = client.put(f"/api/{type_name}/{uuid}", json=renamed)
    assert put.status_code == 200, put.text
    assert client.get(f"/api/{type_name}/{uuid}").json()["name"] == f"rt2-{type_name}"
    assert listing(client, type_name, name=f"rt-{type_name}")["count"] == 0

    patch, field, value = PATCHES[type_name]
    before = client.get(f"/api/{type_name}/{uuid}").json()
    patched = client.patch(f"/api/{type_name}/{uuid}", json=patch)
    assert patched.status_code == 200, patched.text
    after = client.get(f"/api/{type_name}/{uuid}").json()
    assert after[field] != before[field]
    if value is not None:
        assert after[field] == value
    assert after["name"] == f"rt2-{type_name}"  # a merge patch leaves other fields alone
    assert int(after["_last_modified"]) > int(before["_last_modified"])

    deleted = client.delete(f"/api/{type_name}/{uuid}")
    assert deleted.status_code == 204, deleted.text
    missing = client.get(f"/api/{type_name}/{uuid}")
    assert missing.status_code == 404
    assert "error" in missing.json()
    assert listing(client, type_name, name=f"rt2-{type_name}")["count"] == 0
    assert client.delete(f"/api/{type_name}/{uuid}").status_code == 404


def test_service_engines_are_read_only(client: TestClient) -> None:
    assert listing(client, "serviceengine")["count"] == 0
    fake = "serviceengine-0b3c9a52-6a7e-4c8e-9d3f-2f1b5e6a7c80"
    body = {"name": "se", "se_group_ref": "Default-Group", "cloud_ref": "Default-Cloud"}
    assert client.post("/api/serviceengine", json=body).status_code == 405
    assert client.put(f"/api/serviceengine/{fake}", json=body).status_code == 405
    assert client.patch(f"/api/serviceengine/{fake}", json={"name": "x"}).status_code == 405
    assert client.delete(f"/api/serviceengine/{fake}").status_code == 405
    assert client.get(f"/api/serviceengine/{fake}").status_code == 404
    assert listing(client, "serviceengine")["count"] == 0


def test_unknown_object_is_404(client: TestClient) -> None:
    response = client.get("/api/pool/pool-0b3c9a52-6a7e-4c8e-9d3f-2f1b5e6a7c80")
    assert response.status_code == 404
    assert "pool" in error_of(response)
    # A uuid of another type is not found through the wrong collection.
    hm = create(client, "healthmonitor", minimal("healthmonitor", "hm"))
    assert client.get(f"/api/pool/{hm['uuid']}").status_code == 404
    assert client.delete(f"/api/pool/{hm['uuid']}").status_code == 404
    assert "hm" in names(client, "healthmonitor")


# --- optimistic concurrency -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch"])
def test_last_modified_mismatch_is_412(client: TestClient, method: str) -> None:
    pool = create(client, "pool", {"name": "p"})
    stale = {**pool, "description": "stale write"}
    assert client.patch(f"/api/pool/{pool['uuid']}", json={"description": "fresh"}).status_code == 200
    response = client.request(method.upper(), f"/api/pool/{pool['uuid']}", json=stale)
    assert response.status_code == 412
    assert "_last_modified" in error_of(response)
    assert client.get(f"/api/pool/{pool['uuid']}").json()["description"] == "fresh"


def test_current_last_modified_is_accepted(client: TestClient) -> None:
    pool = create(client, "pool", {"name": "p"})
    response = client.put(f"/api/pool/{pool['uuid']}", json={**pool, "description": "d"})
    assert response.status_code == 200, response.text
    assert client.get(f"/api/pool/{pool['uuid']}").json()["description"] == "d"


# --- listing --------------------------------------------------------------------------------------


def test_paging_and_sorting(client: TestClient) -> None:
    for name in ("p-c", "p-a", "p-e", "p-b", "p-d"):
        create(client, "pool", {"name": name})
    seen: list[str] = []
    url: str | None = "/api/pool?page_size=2&sort=-name"
    sizes = []
    while url is not None:
        response = client.get(url)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"count", "results", "next"}
        assert page["count"] == 5
        sizes.append(len(page["results"]))
        seen += [o["name"] for o in page["results"]]
        url = page["next"]
        assert len(sizes) <= 3
    assert sizes == [2, 2, 1]
    assert seen == ["p-e", "p-d", "p-c", "p-b", "p-a"]
    ascending = listing(client, "pool", page_size=2, page=2)
    assert [o["name"] for o in ascending["results"]] == ["p-c", "p-d"]
    assert listing(client, "pool", page=4, page_size=2) == {"count": 5, "results": [], "next": None}


def test_sort_by_last_modified_and_uuid(client: TestClient) -> None:
    made = [create(client, "pool", {"name": n}) for n in ("z", "y", "x")]
    newest_first = listing(client, "pool", sort="-_last_modified")["results"]
    assert [o["name"] for o in newest_first] == ["x", "y", "z"]
    by_uuid = listing(client, "pool", sort="uuid")["results"]
    assert [o["uuid"] for o in by_uuid] == sorted(o["uuid"] for o in made)
    response = client.get("/api/pool", params={"sort": "description"})
    assert response.status_code == 400
    assert "sort" in error_of(response)


def test_name_filter(client: TestClient) -> None:
    for name in ("web", "web-2", "api"):
        create(client, "pool", {"name": name})
    found = listing(client, "pool", name="web")
    assert found["count"] == 1
    assert [o["name"] for o in found["results"]] == ["web"]
    assert listing(client, "pool", name="nothing")["count"] == 0
    tenants = listing(client, "tenant", name="admin")
    assert [t["name"] for t in tenants["results"]] == ["admin"]


def test_fields_projection(client: TestClient) -> None:
    pool = create(client, "pool", {"name": "web", "description": "d", "default_server_port": 8080})
    expected_keys = {"name", "uuid", "url", "tenant_ref", "_last_modified", "default_server_port"}
    item = listing(client, "pool", fields="default_server_port")["results"][0]
    assert set(item) == expected_keys
    assert item["default_server_port"] == 8080
    one = client.get(f"/api/pool/{pool['uuid']}", params={"fields": "default_server_port,description"}).json()
    assert set(one) == expected_keys | {"description"}


# --- references -----------------------------------------------------------------------------------


def _spellings(hm: dict[str, Any]) -> dict[str, str]:
    return {
        "name": hm["name"],
        "query": f"/api/healthmonitor?name={hm['name']}",
        "uuid": hm["uuid"],
        "path": hm["url"],
        "path-with-name": f"{hm['url']}#{hm['name']}",
        "full-url": f"http://testserver{hm['url']}",
        "other-host-url": f"https://controller.example.com:9443{hm['url']}",
    }


@pytest.mark.parametrize(
    "spelling", ["name", "query", "uuid", "path", "path-with-name", "full-url", "other-host-url"]
)
def test_reference_spellings(client: TestClient, spelling: str) -> None:
    hm = create(client, "healthmonitor", {"name": "my monitor", "type": "HEALTH_MONITOR_TCP"})
    ref = _spellings(hm)[spelling]
    pool = create(client, "pool", {"name": "p", "health_monitor_refs": [ref]})
    assert pool["health_monitor_refs"] == [hm["url"]]
    assert client.get(f"/api/pool/{pool['uuid']}").json()["health_monitor_refs"] == [hm["url"]]
    referrers = client.get(f"/api/healthmonitor/{hm['uuid']}/referred_by").json()
    assert referrers["count"] == 1
    assert referrers["results"][0]["url"] == pool["url"]


def test_builtin_objects_can_be_referred_to_by_name(client: TestClient) -> None:
    pool = create(
        client,
        "pool",
        {
            "name": "p",
            "health_monitor_refs": ["System-HTTP"],
            "application_persistence_profile_ref": "System-Persistence-Client-IP",
        },
    )
    monitor = client.get(pool["health_monitor_refs"][0]).json()
    assert monitor["name"] == "System-HTTP"
    assert monitor["type"] == "HEALTH_MONITOR_HTTP"


BAD_REFS = [
    pytest.param({"cloud_ref": "/api/vsvip?name=x"}, "cloud_ref", id="wrong-type-query"),
    pytest.param(
        {"health_monitor_refs": ["/api/pool?name=p"]}, "health_monitor_refs[0]", id="wrong-type-in-list"
    ),
    pytest.param({"health_monitor_refs": ["nope"]}, "health_monitor_refs[0]", id="missing-name"),
    pytest.param(
        {"application_persistence_profile_ref": "nope"}, "application_persistence_profile_ref", id="missing"
    ),
    pytest.param({"cloud_ref": "cloud-0b3c9a52-6a7e-4c8e-9d3f-2f1b5e6a7c80"}, "cloud_ref", id="missing-uuid"),
    pytest.param({"cloud_ref": "/api/cloud/not-a-uuid"}, "cloud_ref", id="malformed-path"),
    pytest.param(
        {"health_monitor_refs": ["System-HTTP", "https://[::1"]}, "health_monitor_refs[1]", id="bad-url"
    ),
]


@pytest.mark.parametrize(("extra", "field"), BAD_REFS)
def test_bad_reference_is_400_naming_the_field(client: TestClient, extra: dict[str, Any], field: str) -> None:
    create(client, "pool", {"name": "p"})
    before = snapshot(client)
    response = client.post("/api/pool", json={"name": "bad", **extra})
    assert response.status_code == 400, response.text
    assert error_of(response).startswith(f"{field}:")
    assert snapshot(client) == before


def test_reference_to_object_of_wrong_type_by_uuid(client: TestClient) -> None:
    hm = create(client, "healthmonitor", minimal("healthmonitor", "hm"))
    response = client.post("/api/pool", json={"name": "p", "cloud_ref": hm["url"]})
    assert response.status_code == 400
    assert error_of(response).startswith("cloud_ref:")
    assert "healthmonitor" in error_of(response)
    assert "p" not in names(client, "pool")


def test_deleting_a_referenced_object_is_409_naming_the_referrer(client: TestClient) -> None:
    hm = create(client, "healthmonitor", minimal("healthmonitor", "hm"))
    create(client, "pool", {"name": "users-of-hm", "health_monitor_refs": ["hm"]})
    response = client.delete(f"/api/healthmonitor/{hm['uuid']}")
    assert response.status_code == 409
    message = error_of(response)
    assert "pool 'users-of-hm'" in message
    assert "health_monitor_refs" in message
    assert client.get(f"/api/healthmonitor/{hm['uuid']}").status_code == 200
    # Once the reference is gone the delete goes through.
    pool = listing(client, "pool", name="users-of-hm")["results"][0]
    assert client.patch(f"/api/pool/{pool['uuid']}", json={"health_monitor_refs": []}).status_code == 200
    assert client.delete(f"/api/healthmonitor/{hm['uuid']}").status_code == 204
    assert "hm" not in names(client, "healthmonitor")


def test_http_policy_sets_keep_their_pools_and_are_kept_by_their_virtual_services(client: TestClient) -> None:
    pool = create(client, "pool", {"name": "api-pool"})
    body = {
        **minimal("httppolicyset", "to-api"),
        "action": "REDIRECT_TO_POOL",
        "redirect_pool_ref": "api-pool",
    }
    policy = create(client, "httppolicyset", body)
    assert policy["redirect_pool_ref"] == pool["url"]
    vs = create(
        client,
        "virtualservice",
        {
            "name": "l7",
            "services": [{"port": 80}],
            "vip": [{"auto_allocate_ip": True}],
            "http_policies": ["to-api"],
        },
    )
    assert vs["http_policies"] == [policy["url"]]

    refused = client.delete(pool["url"])
    assert refused.status_code == 409 and "httppolicyset 'to-api'" in error_of(refused)
    refused = client.delete(policy["url"])
    assert refused.status_code == 409 and "virtualservice 'l7'" in error_of(refused)
    # HTTP features need an HTTP application profile.
    l4 = client.patch(vs["url"], json={"application_profile_ref": "System-L4-Application"})
    assert l4.status_code == 400 and error_of(l4).startswith("http_policies:")
    assert client.delete(vs["url"]).status_code == 204
    assert client.delete(policy["url"]).status_code == 204
    assert client.delete(pool["url"]).status_code == 204


def test_duplicate_name_is_409(client: TestClient) -> None:
    create(client, "pool", {"name": "p"})
    before = snapshot(client)
    response = client.post("/api/pool", json={"name": "p"})
    assert response.status_code == 409
    assert "p" in error_of(response)
    assert snapshot(client) == before


# --- VIPs and virtual services --------------------------------------------------------------------


def test_inline_vip_creates_an_owned_vsvip(client: TestClient) -> None:
    pool = create(client, "pool", {"name": "web", "servers": [{"ip": "10.0.0.1"}]})
    vs = create(
        client,
        "virtualservice",
        {"name": "shop", "services": [{"port": 80}], "pool_ref": "web", "vip": [{"auto_allocate_ip": True}]},
    )
    assert "vip" not in vs
    assert vs["pool_ref"] == pool["url"]
    vsvip = client.get(vs["vsvip_ref"]).json()
    assert vsvip["name"] == "shop"
    address = vsvip["vip"][0]["ip_address"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network("127.100.0.0/16")
    fetched = client.get(f"/api/virtualservice/{vs['uuid']}").json()
    assert fetched["vsvip_ref"] == vsvip["url"]
    assert "vip" not in fetched
    # Defaults were filled by name.
    assert client.get(fetched["application_profile_ref"]).json()["name"] == "System-HTTP"
    assert client.get(fetched["se_group_ref"]).json()["name"] == "Default-Group"
    assert client.get(fetched["cloud_ref"]).json()["name"] == "Default-Cloud"

    # A second auto-allocated VIP gets another address.
    other = create(client, "vsvip", {"name": "other", "vip": [{"auto_allocate_ip": True}]})
    assert other["vip"][0]["ip_address"] != address

    # The owned vsvip cannot be deleted while the VS uses it, and goes away with the VS.
    assert client.delete(vsvip["url"]).status_code == 409
    assert client.delete(f"/api/virtualservice/{vs['uuid']}").status_code == 204
    assert client.get(vsvip["url"]).status_code == 404
    assert names(client, "vsvip") == {"other"}
    assert names(client, "pool") == {"web"}


def test_inline_vip_update_keeps_the_address(client: TestClient) -> None:
    vs = create(client, "virtualservice", minimal("virtualservice", "shop"))
    address = client.get(vs["vsvip_ref"]).json()["vip"][0]["ip_address"]
    response = client.patch(
        f"/api/virtualservice/{vs['uuid']}", json={"vsvip_ref": None, "vip": [{"auto_allocate_ip": True}]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["vsvip_ref"] == vs["vsvip_ref"]
    assert client.get(vs["vsvip_ref"]).json()["vip"][0]["ip_address"] == address
    assert names(client, "vsvip") == {"shop"}


def test_switching_to_a_shared_vsvip_removes_the_owned_one(client: TestClient) -> None:
    vs = create(client, "virtualservice", minimal("virtualservice", "shop"))
    shared = create(client, "vsvip", {"name": "shared", "vip": [{"ip_address": "127.0.0.20"}]})
    response = client.patch(f"/api/virtualservice/{vs['uuid']}", json={"vsvip_ref": "shared"})
    assert response.status_code == 200, response.text
    assert response.json()["vsvip_ref"] == shared["url"]
    assert names(client, "vsvip") == {"shared"}


def test_inline_vip_name_clash_is_409(client: TestClient) -> None:
    create(client, "vsvip", {"name": "shop", "vip": [{"ip_address": "127.0.0.9"}]})
    before = snapshot(client)
    response = client.post("/api/virtualservice", json=minimal("virtualservice", "shop"))
    assert response.status_code == 409
    assert "vsvip_ref" in error_of(response)
    assert snapshot(client) == before


def test_vip_address_conflict_is_409(client: TestClient) -> None:
    create(client, "vsvip", {"name": "a", "vip": [{"ip_address": "127.0.0.5"}]})
    before = snapshot(client)
    response = client.post("/api/vsvip", json={"name": "b", "vip": [{"ip_address": "127.0.0.5"}]})
    assert response.status_code == 409
    assert "127.0.0.5" in error_of(response)
    inline = client.post(
        "/api/virtualservice",
        json={"name": "vs", "services": [{"port": 80}], "vip": [{"ip_address": "127.0.0.5"}]},
    )
    assert inline.status_code == 409
    assert snapshot(client) == before


def test_virtual_services_may_share_a_vip_but_not_a_port(client: TestClient) -> None:
    create(client, "vsvip", {"name": "shared", "vip": [{"ip_address": "127.0.0.30"}]})
    create(client, "virtualservice", {"name": "http", "services": [{"port": 80}], "vsvip_ref": "shared"})
    before = snapshot(client)
    clash = client.post(
        "/api/virtualservice",
        json={"name": "also-http", "services": [{"port": 79, "port_range_end": 81}], "vsvip_ref": "shared"},
    )
    assert clash.status_code == 409
    assert "80" in error_of(clash)
    assert snapshot(client) == before
    create(client, "virtualservice", {"name": "https", "services": [{"port": 443}], "vsvip_ref": "shared"})
    assert names(client, "virtualservice") == {"http", "https"}


def test_non_loopback_vip_in_local_cloud_is_400(client: TestClient) -> None:
    before = snapshot(client)
    response = client.post("/api/vsvip", json={"name": "b", "vip": [{"ip_address": "10.1.2.3"}]})
    assert response.status_code == 400
    assert error_of(response).startswith("vip[0].ip_address:")
    inline = client.post(
        "/api/virtualservice",
        json={"name": "vs", "services": [{"port": 80}], "vip": [{"ip_address": "10.1.2.3"}]},
    )
    assert inline.status_code == 400
    assert "vip[0].ip_address" in error_of(inline)
    assert snapshot(client) == before


def test_vs_without_vip_is_400(client: TestClient) -> None:
    response = client.post("/api/virtualservice", json={"name": "vs", "services": [{"port": 80}]})
    assert response.status_code == 400
    assert error_of(response).startswith("vsvip_ref:")
    assert names(client, "virtualservice") == set()


def test_ssl_vs_needs_a_virtual_service_certificate(client: TestClient) -> None:
    cert, key = self_signed()
    create(client, "sslkeyandcertificate", {"name": "site", "certificate": {"certificate": cert}, "key": key})
    ca, _ = self_signed("ca")
    create(
        client,
        "sslkeyandcertificate",
        {"name": "ca", "type": "SSL_CERTIFICATE_TYPE_CA", "certificate": {"certificate": ca}},
    )
    body = {**minimal("virtualservice", "tls"), "services": [{"port": 443, "enable_ssl": True}]}
    refused = client.post("/api/virtualservice", json={**body, "ssl_key_and_certificate_refs": ["ca"]})
    assert refused.status_code == 400
    assert error_of(refused).startswith("ssl_key_and_certificate_refs[0]:")
    assert client.post("/api/virtualservice", json=body).status_code == 400
    ok = client.post("/api/virtualservice", json={**body, "ssl_key_and_certificate_refs": ["site"]})
    assert ok.status_code == 201, ok.text
    assert names(client, "virtualservice") == {"tls"}


# --- dry runs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", ["pool", "virtualservice", "user", "sslkeyandcertificate"])
def test_dry_run_create_stores_nothing(client: TestClient, type_name: str) -> None:
    before = snapshot(client)
    response = client.post(f"/api/{type_name}", params={"dry_run": "true"}, json=minimal(type_name, "dry"))
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "dry"
    assert snapshot(client) == before
    assert client.get(response.json()["url"]).status_code == 404


def test_dry_run_update_and_patch_store_nothing(client: TestClient) -> None:
    pool = create(client, "pool", {"name": "p"})
    before = snapshot(client)
    put = client.put(
        f"/api/pool/{pool['uuid']}", params={"dry_run": "true"}, json={"name": "p", "description": "x"}
    )
    assert put.status_code == 200
    assert put.json()["description"] == "x"
    patch = client.patch(f"/api/pool/{pool['uuid']}", params={"dry_run": "true"}, json={"description": "y"})
    assert patch.status_code == 200
    assert patch.json()["description"] == "y"
    assert snapshot(client) == before


def test_dry_run_reports_the_error_of_a_bad_body(client: TestClient) -> None:
    before = snapshot(client)
    response = client.post("/api/pool", params={"dry_run": "true"}, json={"name": "p", "cloud_ref": "nope"})
    assert response.status_code == 400
    assert error_of(response).startswith("cloud_ref:")
    assert snapshot(client) == before


# --- built-in and protected objects ---------------------------------------------------------------


def _by_name(client: TestClient, type_name: str, name: str) -> dict[str, Any]:
    results = listing(client, type_name, name=name)["results"]
    assert len(results) == 1, results
    return results[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("type_name", "name"),
    [
        ("applicationprofile", "System-HTTP"),
        ("healthmonitor", "System-TCP"),
        ("applicationpersistenceprofile", "System-Persistence-Http-Cookie"),
    ],
)
def test_builtins_are_read_only(client: TestClient, type_name: str, name: str) -> None:
    builtin = _by_name(client, type_name, name)
    url = builtin["url"]
    before = snapshot(client)
    for response in (
        client.put(url, json={**builtin, "description": "mine now"}),
        client.patch(url, json={"description": "mine now"}),
        client.delete(url),
    ):
        assert response.status_code == 403, response.text
        assert "built in" in error_of(response)
    assert snapshot(client) == before
    assert client.get(url).json() == builtin


@pytest.mark.parametrize(
    ("type_name", "name"),
    [("cloud", "Default-Cloud"), ("serviceenginegroup", "Default-Group"), ("tenant", "admin")],
)
def test_system_defaults_cannot_be_deleted(client: TestClient, type_name: str, name: str) -> None:
    target = _by_name(client, type_name, name)
    before = snapshot(client)
    response = client.delete(target["url"])
    assert response.status_code == 409
    assert name in error_of(response)
    assert snapshot(client) == before


def test_system_defaults_are_editable(client: TestClient) -> None:
    group = _by_name(client, "serviceenginegroup", "Default-Group")
    response = client.patch(group["url"], json={"max_se": 3})
    assert response.status_code == 200, response.text
    assert client.get(group["url"]).json()["max_se"] == 3


# --- certificates ---------------------------------------------------------------------------------


def test_certificate_key_is_never_returned(client: TestClient) -> None:
    cert, key = self_signed(dns_names=("www.example.com", "example.com"), ip_names=("127.0.0.1",))
    created = create(
        client, "sslkeyandcertificate", {"name": "site", "certificate": {"certificate": cert}, "key": key}
    )
    fetched = client.get(created["url"])
    listed = client.get("/api/sslkeyandcertificate")
    for response_text, body in ((fetched.text, fetched.json()), (listed.text, listed.json()["results"][0])):
        assert "key" not in body
        assert "key_passphrase" not in body
        assert key_material(key) not in response_text
        assert "PRIVATE KEY" not in response_text
    info = fetched.json()["certificate"]["info"]
    assert info["subject"] == "CN=www.example.com"
    assert info["self_signed"] is True
    assert dt.datetime.fromisoformat(info["not_after"]) > dt.datetime.now(dt.UTC)
    assert set(info["subject_alt_names"]) == {"www.example.com", "example.com", "127.0.0.1"}
    assert len(info["fingerprint_sha256"].split(":")) == 32
    # GET -> PUT without the key keeps the stored key (a VS certificate must have one).
    put = client.put(created["url"], json=fetched.json())
    assert put.status_code == 200, put.text
    assert "key" not in put.json()


def test_certificate_info_cannot_be_forged(client: TestClient) -> None:
    cert, key = self_signed("real.example.com")
    forged = {
        "subject": "CN=bank.example.com",
        "subject_alt_names": ["bank.example.com"],
        "self_signed": False,
    }
    created = create(
        client,
        "sslkeyandcertificate",
        {"name": "c", "certificate": {"certificate": cert, "info": forged}, "key": key},
    )
    info = client.get(created["url"]).json()["certificate"]["info"]
    assert info["subject"] == "CN=real.example.com"
    assert info["subject_alt_names"] == ["real.example.com"]


def test_encrypted_key_with_passphrase(client: TestClient) -> None:
    cert, key = self_signed(passphrase="correct horse")
    assert "ENCRYPTED" in key
    body = {"name": "enc", "certificate": {"certificate": cert}, "key": key}
    without = client.post("/api/sslkeyandcertificate", json=body)
    assert without.status_code == 400
    assert error_of(without).startswith("key:")
    wrong = client.post("/api/sslkeyandcertificate", json={**body, "key_passphrase": "wrong horse"})
    assert wrong.status_code == 400
    assert error_of(wrong).startswith("key:")
    assert "wrong horse" not in wrong.text
    assert names(client, "sslkeyandcertificate") == set()
    ok = client.post("/api/sslkeyandcertificate", json={**body, "key_passphrase": "correct horse"})
    assert ok.status_code == 201, ok.text
    fetched = client.get(ok.json()["url"])
    assert "key_passphrase" not in fetched.json()
    assert "correct horse" not in fetched.text
    assert key_material(key) not in fetched.text


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(lambda b, other_key: {**b, "key": other_key}, "key", id="key-of-another-cert"),
        pytest.param(
            lambda b, _: {**b, "key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"},
            "key",
            id="garbage-key",
        ),
        pytest.param(lambda b, _: {**b, "key": None}, "key", id="no-key-for-vs-cert"),
        pytest.param(
            lambda b, _: {**b, "certificate": {"certificate": "not a certificate"}},
            "certificate.certificate",
            id="not-pem",
        ),
        pytest.param(
            lambda b, _: {
                **b,
                "certificate": {
                    "certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"
                },
            },
            "certificate.certificate",
            id="garbage-pem",
        ),
    ],
)
def test_bad_certificate_or_key_is_400(client: TestClient, mutate: Any, field: str) -> None:
    cert, key = self_signed()
    _, other_key = self_signed()
    before = snapshot(client)
    response = client.post(
        "/api/sslkeyandcertificate",
        json=mutate({"name": "c", "certificate": {"certificate": cert}, "key": key}, other_key),
    )
    assert response.status_code == 400, response.text
    assert error_of(response).startswith(f"{field}:")
    assert "PRIVATE KEY" not in response.text
    assert snapshot(client) == before


def test_replacing_the_certificate_checks_the_stored_key(client: TestClient) -> None:
    cert, key = self_signed()
    created = create(
        client, "sslkeyandcertificate", {"name": "c", "certificate": {"certificate": cert}, "key": key}
    )
    other_cert, other_key = self_signed("other")
    mismatch = client.patch(created["url"], json={"certificate": {"certificate": other_cert}})
    assert mismatch.status_code == 400
    assert error_of(mismatch).startswith("key:")
    both = client.patch(created["url"], json={"certificate": {"certificate": other_cert}, "key": other_key})
    assert both.status_code == 200, both.text
    assert client.get(created["url"]).json()["certificate"]["info"]["subject"] == "CN=other"


# --- users ----------------------------------------------------------------------------------------


def test_user_password_is_never_returned(client: TestClient) -> None:
    password = "Sup3r-Secret-Passw0rd"
    body = {
        "name": "alice",
        "password": password,
        "access": [{"tenant_ref": "admin", "role": "tenant-admin"}],
    }
    created = client.post("/api/user", json=body)
    assert created.status_code == 201
    user_url = created.json()["url"]
    responses = [
        created,
        client.get(user_url),
        client.get("/api/user"),
        client.put(user_url, json={**created.json(), "password": password + "2"}),
        client.patch(user_url, json={"password": password + "3"}),
    ]
    for response in responses:
        assert response.status_code in (200, 201), response.text
        assert password not in response.text
        assert "password" not in response.text
        assert "argon2" not in response.text
    assert client.get(user_url).json()["default_tenant_ref"] == _by_name(client, "tenant", "admin")["url"]


def test_new_user_needs_a_password_and_access(client: TestClient) -> None:
    before = snapshot(client)
    no_password = client.post(
        "/api/user", json={"name": "bob", "access": [{"tenant_ref": "admin", "role": "tenant-admin"}]}
    )
    assert no_password.status_code == 400
    assert error_of(no_password).startswith("password:")
    no_access = client.post("/api/user", json={"name": "bob", "password": "long-enough-pw"})
    assert no_access.status_code == 400
    assert error_of(no_access).startswith("access:")
    assert snapshot(client) == before


# --- bad input leaves the store unchanged ---------------------------------------------------------

JSON_HEADERS = {"content-type": "application/json"}

# (type, body or raw bytes, the field the error must name or None where no field applies)
BAD_BODIES = [
    pytest.param("pool", {"name": 5}, "name", id="name-not-string"),
    pytest.param("pool", {"name": "p", "servers": "10.0.0.1"}, "servers", id="servers-not-list"),
    pytest.param("pool", {"name": "p", "enabled": "maybe"}, "enabled", id="bool-not-bool"),
    pytest.param("pool", {"name": "p", "surprise": 1}, "surprise", id="unknown-field"),
    pytest.param(
        "pool",
        {"name": "p", "servers": [{"ip": "10.0.0.1", "wat": 1}]},
        "servers[0].wat",
        id="unknown-nested",
    ),
    pytest.param("pool", {"name": " p"}, "name", id="name-leading-space"),
    pytest.param("pool", {"name": "p\r\nq"}, "name", id="name-crlf"),
    pytest.param("pool", {"name": "p\u2028"}, "name", id="name-u2028"),
    pytest.param("pool", {"name": ""}, "name", id="name-empty"),
    pytest.param("pool", {"name": "x" * 256}, "name", id="name-256-chars"),
    pytest.param(
        "pool", {"name": "p", "servers": [{"ip": "169.254.169.254"}]}, "servers[0].ip", id="reserved-ip"
    ),
    pytest.param(
        "pool",
        {"name": "p", "servers": [{"ip": "10.0.0.1", "monitor_address": "169.254.169.254"}]},
        "servers[0].monitor_address",
        id="reserved-monitor-address",
    ),
    pytest.param("pool", {"name": "p", "servers": [{"ip": "10.0.0.999"}]}, "servers[0].ip", id="bad-ip"),
    pytest.param(
        "pool", {"name": "p", "health_monitor_refs": ["nope"]}, "health_monitor_refs[0]", id="bad-ref"
    ),
    pytest.param("pool", {"name": "p", "cloud_ref": "/api/pool?name=p"}, "cloud_ref", id="wrong-type-ref"),
    pytest.param(
        "pool",
        {"name": "p", "health_monitor_refs": ["https://[::1"]},
        "health_monitor_refs[0]",
        id="broken-url-ref",
    ),
    pytest.param("pool", {"name": "p", "lb_algorithm": "FASTEST"}, "lb_algorithm", id="bad-enum"),
    pytest.param("pool", {"name": "p", "default_server_port": 65536}, "default_server_port", id="port-65536"),
    pytest.param("pool", {"name": "p", "default_server_port": 0}, "default_server_port", id="port-0"),
    pytest.param(
        "pool",
        {"name": "p", "servers": [{"ip": "10.0.0.1", "port": 10**30}]},
        "servers[0].port",
        id="port-huge",
    ),
    pytest.param("pool", [{"name": "p"}], None, id="json-array"),
    pytest.param("pool", "p", None, id="json-string"),
    pytest.param("pool", b"null", None, id="json-null"),
    pytest.param("pool", b'{"name": "p",', None, id="invalid-json"),
    pytest.param("pool", b"\xff\xfe", None, id="not-utf8"),
    pytest.param("pool", {"name": "p", "uuid": "pool-1"}, "uuid", id="uuid-on-create"),
    pytest.param("healthmonitor", {"name": "h"}, "type", id="missing-required"),
    pytest.param(
        "healthmonitor",
        {"name": "h", "type": "HEALTH_MONITOR_HTTP", "http_monitor": {"http_request": "GET /\r\nHost: x"}},
        "http_monitor.http_request",
        id="monitor-request-injection",
    ),
    pytest.param(
        "virtualservice",
        {"name": "v", "services": [{"port": 70000}], "vip": [{"auto_allocate_ip": True}]},
        "services[0].port",
        id="vs-port",
    ),
    pytest.param(
        "virtualservice",
        {"name": "v", "services": [{"port": 80}], "vip": [{"ip_address": "10.9.9.9"}]},
        "vip[0].ip_address",
        id="vs-non-loopback-vip",
    ),
    pytest.param(
        "user", {"name": "u", "password": "short", "access": []}, "password", id="user-short-password"
    ),
    pytest.param(
        "user",
        {"name": "u", "password": "long-enough", "access": [{"tenant_ref": "admin", "role": "god"}]},
        "access[0].role",
        id="user-bad-role",
    ),
    pytest.param("cloud", {"name": "c", "vtype": "CLOUD_OPENSTACK"}, None, id="cloud-without-config"),
    pytest.param(
        "applicationpersistenceprofile",
        {
            "name": "a",
            "persistence_type": "PERSISTENCE_TYPE_HTTP_COOKIE",
            "http_cookie_persistence_profile": {"cookie_name": "a b"},
        },
        "http_cookie_persistence_profile.cookie_name",
        id="cookie-name",
    ),
]


def _send(client: TestClient, method: str, url: str, body: Any) -> Any:
    if isinstance(body, bytes):
        return client.request(method, url, content=body, headers=JSON_HEADERS)
    return client.request(method, url, json=body)


def _check_refused(response: Any, field: str | None) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    message = error_of(response)
    assert message
    if field is not None:
        assert field in message, message


@pytest.fixture
def existing(client: TestClient) -> dict[str, dict[str, Any]]:
    """One object of each type the bad bodies are sent to, for PUT and PATCH."""
    types = {param.values[0] for param in BAD_BODIES}
    return {t: create(client, t, minimal(t, f"existing-{t}")) for t in sorted(types)}


@pytest.mark.parametrize(("type_name", "body", "field"), BAD_BODIES)
def test_bad_post_leaves_store_unchanged(
    client: TestClient, type_name: str, body: Any, field: str | None
) -> None:
    create(client, "pool", {"name": "p"})
    before = snapshot(client)
    if isinstance(body, dict) and body.get("name") == "p":
        body = {**body, "name": "p2"}  # a clash with the existing pool would be a 409, not what is tested
    _check_refused(_send(client, "POST", f"/api/{type_name}", body), field)
    assert snapshot(client) == before


def _as_update(method: str, body: Any, field: str | None) -> tuple[Any, str | None]:
    """The same mistake, spelled for an update of an existing object."""
    if not isinstance(body, dict):
        return body, field
    if "uuid" in body:  # on an update the uuid may be given, but must be the object's own
        return {**body, "uuid": "pool-0b3c9a52-6a7e-4c8e-9d3f-2f1b5e6a7c80"}, "uuid"
    if method == "PATCH" and field == "type" and set(body) == {"name"}:
        return {"type": None}, "type"  # a patch misses a required field by removing it
    if method == "PATCH" and "vip" in body:
        return {**body, "vsvip_ref": None}, field  # swap the existing vsvip_ref for the bad inline vip
    return body, field


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize(("type_name", "body", "field"), BAD_BODIES)
def test_bad_update_leaves_store_unchanged(
    client: TestClient,
    existing: dict[str, dict[str, Any]],
    method: str,
    type_name: str,
    body: Any,
    field: str | None,
) -> None:
    body, field = _as_update(method, body, field)
    before = snapshot(client)
    _check_refused(_send(client, method, existing[type_name]["url"], body), field)
    assert snapshot(client) == before


def test_invalid_json_error_names_no_field(client: TestClient) -> None:
    response = client.post("/api/pool", content=b'{"name": "p",', headers=JSON_HEADERS)
    assert response.status_code == 400
    # The parser's character offset is not a field; "[12]: ..." reads like a list index.
    assert error_of(response) == "the request body is not valid JSON"


def test_update_of_missing_object_is_404_and_changes_nothing(client: TestClient) -> None:
    before = snapshot(client)
    url = "/api/pool/pool-0b3c9a52-6a7e-4c8e-9d3f-2f1b5e6a7c80"
    assert client.put(url, json={"name": "p"}).status_code == 404
    assert client.patch(url, json={"name": "p"}).status_code == 404
    assert snapshot(client) == before


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 1001}, "page_size"),
        ({"page": 0}, "page"),
        ({"page": "x"}, "page"),
        ({"sort": "-bogus"}, "sort"),
    ],
)
def test_bad_list_query_is_400(client: TestClient, params: dict[str, Any], field: str) -> None:
    response = client.get("/api/pool", params=params)
    assert response.status_code == 400
    assert field in error_of(response)


def test_change_tenant_or_uuid_on_update_is_refused(client: TestClient) -> None:
    pool = create(client, "pool", {"name": "p"})
    tenant = create(client, "tenant", {"name": "other"})
    before = snapshot(client)
    moved = client.put(pool["url"], json={**pool, "tenant_ref": tenant["url"]})
    assert moved.status_code == 400
    assert error_of(moved).startswith("tenant_ref:")
    renumbered = client.patch(pool["url"], json={"uuid": "pool-0b3c9a52-6a7e-4c8e-9d3f-2f1b5e6a7c80"})
    assert renumbered.status_code == 400
    assert error_of(renumbered).startswith("uuid:")
    assert snapshot(client) == before
