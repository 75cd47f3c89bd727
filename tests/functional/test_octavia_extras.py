"""Octavia's side resources in process: the provider and its capabilities, flavor profiles and
flavors (SE groups), quotas, amphorae (service engines), and the Networking-API view of VIP subnets."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fulcrum.controller.services.octavia.extras import OctaviaExtras
from fulcrum.controller.store import repo
from fulcrum.controller.store.repo import StoredObject

LBAAS = "/v2/lbaas"
PASSWORD = "octavia-extras-pass"
TENANT_USER = ("alpha-admin", PASSWORD)
ALPHA = {"X-Fulcrum-Tenant": "alpha"}
QUOTA_NAMES = ("loadbalancer", "load_balancer", "listener", "pool", "member", "healthmonitor",
               "health_monitor", "l7policy", "l7rule")  # fmt: skip


@pytest.fixture
def alpha(client: TestClient) -> str:
    """Tenant `alpha` with a tenant-admin user; returns alpha's Keystone-style project id."""
    made = client.post("/api/tenant", json={"name": "alpha"})
    assert made.status_code == 201, made.text
    user = {
        "name": TENANT_USER[0],
        "password": PASSWORD,
        "access": [{"tenant_ref": "alpha", "role": "tenant-admin"}],
    }
    assert client.post("/api/user", json=user).status_code == 201
    return uuid.UUID(made.json()["uuid"].removeprefix("tenant-")).hex


def as_tenant(client: TestClient, method: str, path: str, **kwargs: Any) -> Any:
    return client.request(method, path, auth=TENANT_USER, headers=ALPHA, **kwargs)


def profile_body(
    flavor_data: Any = None, provider: str = "fulcrum", name: str = "gold-profile"
) -> dict[str, Any]:
    data = (
        flavor_data
        if isinstance(flavor_data, str)
        else json.dumps(flavor_data or {"se_group": "Default-Group"})
    )
    return {"flavorprofile": {"name": name, "provider_name": provider, "flavor_data": data}}


def make_profile(client: TestClient, **kwargs: Any) -> dict[str, Any]:
    answer = client.post(f"{LBAAS}/flavorprofiles", json=profile_body(**kwargs))
    assert answer.status_code == 201, answer.text
    return answer.json()["flavorprofile"]  # type: ignore[no-any-return]


def make_flavor(client: TestClient, profile_id: str, name: str = "gold") -> dict[str, Any]:
    body = {
        "flavor": {"name": name, "description": "placed on Default-Group", "flavor_profile_id": profile_id}
    }
    answer = client.post(f"{LBAAS}/flavors", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["flavor"]  # type: ignore[no-any-return]


def default_subnet(client: TestClient) -> dict[str, Any]:
    found = client.get("/v2.0/subnets", params={"name": "Default-Cloud-vip-subnet"}).json()["subnets"]
    assert len(found) == 1
    return found[0]  # type: ignore[no-any-return]


# --- providers ------------------------------------------------------------------------------------


def test_providers_and_capabilities(client: TestClient, alpha: str) -> None:
    for prefix in (LBAAS, "/v2.0/lbaas"):
        providers = client.get(f"{prefix}/providers")
        assert providers.status_code == 200
        assert [p["name"] for p in providers.json()["providers"]] == ["fulcrum"]
        assert providers.json()["providers"][0]["description"]
    assert as_tenant(client, "GET", f"{LBAAS}/providers").status_code == 200

    capabilities = client.get(f"{LBAAS}/providers/fulcrum/flavor_capabilities")
    assert capabilities.status_code == 200
    assert [c["name"] for c in capabilities.json()["flavor_capabilities"]] == ["se_group"]
    assert "SE group" in capabilities.json()["flavor_capabilities"][0]["description"]
    zones = client.get(f"{LBAAS}/providers/fulcrum/availability_zone_capabilities")
    assert zones.status_code == 200
    assert zones.json() == {"availability_zone_capabilities": []}

    assert client.get(f"{LBAAS}/providers/amphora/flavor_capabilities").status_code == 404
    assert client.get(f"{LBAAS}/providers/amphora/availability_zone_capabilities").status_code == 404
    # Octavia's default policy shows capabilities to administrators only.
    assert as_tenant(client, "GET", f"{LBAAS}/providers/fulcrum/flavor_capabilities").status_code == 403


# --- flavor profiles ------------------------------------------------------------------------------


def test_flavorprofile_crud(client: TestClient) -> None:
    made = make_profile(client)
    assert set(made) == {"id", "name", "provider_name", "flavor_data"}
    assert made["provider_name"] == "fulcrum"
    assert json.loads(made["flavor_data"]) == {"se_group": "Default-Group"}

    shown = client.get(f"{LBAAS}/flavorprofiles/{made['id']}")
    assert shown.status_code == 200
    assert shown.json() == {"flavorprofile": made}
    listed = client.get(f"{LBAAS}/flavorprofiles")
    assert listed.json() == {"flavorprofiles": [made], "flavorprofiles_links": []}
    assert client.get(f"{LBAAS}/flavorprofiles", params={"name": "nope"}).json()["flavorprofiles"] == []

    renamed = client.put(f"{LBAAS}/flavorprofiles/{made['id']}", json={"flavorprofile": {"name": "silver"}})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["flavorprofile"]["name"] == "silver"
    assert renamed.json()["flavorprofile"]["flavor_data"] == made["flavor_data"]

    assert client.delete(f"{LBAAS}/flavorprofiles/{made['id']}").status_code == 204
    assert client.get(f"{LBAAS}/flavorprofiles/{made['id']}").status_code == 404
    assert client.get(f"{LBAAS}/flavorprofiles/not-a-uuid").status_code == 404
    assert client.delete(f"{LBAAS}/flavorprofiles/{uuid.uuid4()}").status_code == 404


def test_flavorprofile_names_se_group_by_uuid_and_empty_data(client: TestClient) -> None:
    group = client.get("/api/serviceenginegroup", params={"name": "Default-Group"}).json()["results"][0]
    by_native = make_profile(client, flavor_data={"se_group": group["uuid"]})
    bare = group["uuid"].removeprefix("serviceenginegroup-")
    by_bare = make_profile(client, flavor_data={"se_group": bare})
    empty = make_profile(client, flavor_data={})
    assert {by_native["id"], by_bare["id"], empty["id"]} <= {
        p["id"] for p in client.get(f"{LBAAS}/flavorprofiles").json()["flavorprofiles"]
    }


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (profile_body(provider="amphora"), "Provider 'amphora' is not enabled."),
        (profile_body(flavor_data="{not json"), "flavor_data"),
        (profile_body(flavor_data="[1, 2]"), "flavor_data"),
        (profile_body(flavor_data={"loadbalancer_topology": "SINGLE"}), "loadbalancer_topology"),
        (profile_body(flavor_data={"se_group": "No-Such-Group"}), "No-Such-Group"),
        (profile_body(flavor_data={"se_group": 7}), "se_group"),
        (profile_body(flavor_data={"se_group": str(uuid.uuid4())}), "se_group"),
        ({"flavorprofile": {"name": "x", "provider_name": "fulcrum"}}, "flavor_data"),
        ({"flavorprofile": {**profile_body()["flavorprofile"], "id": str(uuid.uuid4())}}, "id"),
        ({"flavor_profile": profile_body()["flavorprofile"]}, "flavorprofile"),
    ],
)
def test_flavorprofile_validation(client: TestClient, body: dict[str, Any], says: str) -> None:
    answer = client.post(f"{LBAAS}/flavorprofiles", json=body)
    assert answer.status_code == 400, answer.text
    assert says in answer.text
    assert client.get(f"{LBAAS}/flavorprofiles").json()["flavorprofiles"] == []


def test_flavorprofile_update_is_validated(client: TestClient) -> None:
    made = make_profile(client)
    path = f"{LBAAS}/flavorprofiles/{made['id']}"
    assert client.put(path, json={"flavorprofile": {"provider_name": "octavia"}}).status_code == 400
    assert (
        client.put(path, json={"flavorprofile": {"flavor_data": '{"se_group": "nope"}'}}).status_code == 400
    )
    assert client.put(path, json={"flavorprofile": {"id": str(uuid.uuid4())}}).status_code == 400
    assert client.get(path).json()["flavorprofile"] == made


def test_flavorprofile_in_use_is_409(client: TestClient) -> None:
    profile = make_profile(client)
    flavor = make_flavor(client, profile["id"])
    path = f"{LBAAS}/flavorprofiles/{profile['id']}"
    assert client.delete(path).status_code == 409
    changed = client.put(path, json={"flavorprofile": {"flavor_data": "{}"}})
    assert changed.status_code == 409
    # A name is not behaviour: renaming a profile in use is fine.
    assert client.put(path, json={"flavorprofile": {"name": "renamed"}}).status_code == 200
    assert client.delete(f"{LBAAS}/flavors/{flavor['id']}").status_code == 204
    assert client.delete(path).status_code == 204


# --- flavors --------------------------------------------------------------------------------------


def test_flavor_crud(client: TestClient, alpha: str) -> None:
    profile = make_profile(client)
    made = make_flavor(client, profile["id"])
    assert made == {
        "id": made["id"],
        "name": "gold",
        "description": "placed on Default-Group",
        "flavor_profile_id": profile["id"],
        "enabled": True,
    }
    # Everyone may read flavors: users pick one when they create a load balancer.
    for reader in (client.get, lambda p, **kw: as_tenant(client, "GET", p, **kw)):
        assert reader(f"{LBAAS}/flavors").json() == {"flavors": [made], "flavors_links": []}
        assert reader(f"{LBAAS}/flavors/{made['id']}").json() == {"flavor": made}
    assert client.get(f"{LBAAS}/flavors/{made['id']}", params={"fields": "id,name"}).json() == {
        "flavor": {"id": made["id"], "name": "gold"}
    }
    assert client.get(f"{LBAAS}/flavors", params={"enabled": "false"}).json()["flavors"] == []

    changed = client.put(
        f"{LBAAS}/flavors/{made['id']}", json={"flavor": {"enabled": False, "description": "off"}}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["flavor"]["enabled"] is False
    assert changed.json()["flavor"]["description"] == "off"
    # The profile is fixed once a flavor exists (Octavia refuses it on update).
    moved = client.put(f"{LBAAS}/flavors/{made['id']}", json={"flavor": {"flavor_profile_id": profile["id"]}})
    assert moved.status_code == 400

    assert client.delete(f"{LBAAS}/flavors/{made['id']}").status_code == 204
    assert client.get(f"{LBAAS}/flavors/{made['id']}").status_code == 404
    assert client.get(f"{LBAAS}/flavors/{uuid.uuid4()}").status_code == 404


def test_flavor_validation(client: TestClient) -> None:
    profile = make_profile(client)
    unknown = {"flavor": {"name": "x", "flavor_profile_id": str(uuid.uuid4())}}
    answer = client.post(f"{LBAAS}/flavors", json=unknown)
    assert answer.status_code == 400
    assert "flavor_profile_id" in answer.text
    assert client.post(f"{LBAAS}/flavors", json={"flavor": {"name": "x"}}).status_code == 400
    assert (
        client.post(f"{LBAAS}/flavors", json={"flavor": {"flavor_profile_id": profile["id"]}}).status_code
        == 400
    )
    bogus = {"flavor": {"name": "x", "flavor_profile_id": profile["id"], "provider": "fulcrum"}}
    assert client.post(f"{LBAAS}/flavors", json=bogus).status_code == 400
    make_flavor(client, profile["id"], name="gold")
    assert (
        client.post(
            f"{LBAAS}/flavors", json={"flavor": {"name": "gold", "flavor_profile_id": profile["id"]}}
        ).status_code
        == 409
    )
    assert len(client.get(f"{LBAAS}/flavors").json()["flavors"]) == 1


def test_flavor_in_use_by_a_load_balancer_is_409(client: TestClient) -> None:
    flavor = make_flavor(client, make_profile(client)["id"])
    body = {
        "loadbalancer": {
            "name": "web",
            "vip_subnet_id": default_subnet(client)["id"],
            "flavor_id": flavor["id"],
        }
    }
    lb = client.post(f"{LBAAS}/loadbalancers", json=body)
    assert lb.status_code == 201, lb.text
    assert lb.json()["loadbalancer"]["flavor_id"] == flavor["id"]
    assert client.delete(f"{LBAAS}/flavors/{flavor['id']}").status_code == 409
    assert client.delete(f"{LBAAS}/loadbalancers/{lb.json()['loadbalancer']['id']}").status_code == 204
    assert client.delete(f"{LBAAS}/flavors/{flavor['id']}").status_code == 204


def test_flavor_and_profile_writes_are_admin_only(client: TestClient, alpha: str) -> None:
    profile = make_profile(client)
    flavor = make_flavor(client, profile["id"])
    flavor_body = {"flavor": {"name": "mine", "flavor_profile_id": profile["id"]}}
    denied = [
        ("GET", f"{LBAAS}/flavorprofiles", None),
        ("GET", f"{LBAAS}/flavorprofiles/{profile['id']}", None),
        ("POST", f"{LBAAS}/flavorprofiles", profile_body()),
        ("PUT", f"{LBAAS}/flavorprofiles/{profile['id']}", {"flavorprofile": {"name": "x"}}),
        ("DELETE", f"{LBAAS}/flavorprofiles/{profile['id']}", None),
        ("POST", f"{LBAAS}/flavors", flavor_body),
        ("PUT", f"{LBAAS}/flavors/{flavor['id']}", {"flavor": {"name": "x"}}),
        ("DELETE", f"{LBAAS}/flavors/{flavor['id']}", None),
    ]
    for method, path, body in denied:
        answer = as_tenant(client, method, path, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
    assert client.get(f"{LBAAS}/flavorprofiles").json()["flavorprofiles"] == [profile]
    assert client.get(f"{LBAAS}/flavors").json()["flavors"] == [flavor]


# --- quotas ---------------------------------------------------------------------------------------


def test_quota_defaults_are_unlimited(client: TestClient, alpha: str) -> None:
    for caller in (client.get, lambda p: as_tenant(client, "GET", p)):
        answer = caller(f"{LBAAS}/quotas/defaults")
        assert answer.status_code == 200
        assert answer.json() == {"quota": dict.fromkeys(QUOTA_NAMES, -1)}


def test_quota_crud(client: TestClient, alpha: str) -> None:
    path = f"{LBAAS}/quotas/{alpha}"
    shown = client.get(path)
    assert shown.status_code == 200
    assert shown.json() == {"quota": {**dict.fromkeys(QUOTA_NAMES, -1), "project_id": alpha}}
    assert client.get(f"{LBAAS}/quotas").json() == {"quotas": [], "quotas_links": []}

    put = client.put(path, json={"quota": {"load_balancer": 2, "listener": 5, "health_monitor": 0}})
    assert put.status_code == 202, put.text
    wanted = {**dict.fromkeys(QUOTA_NAMES, -1), "loadbalancer": 2, "load_balancer": 2, "listener": 5,
              "healthmonitor": 0, "health_monitor": 0, "project_id": alpha}  # fmt: skip
    assert put.json() == {"quota": wanted}
    assert client.get(path).json() == {"quota": wanted}
    # The dashed spelling of the project id names the same project.
    assert client.get(f"{LBAAS}/quotas/{uuid.UUID(alpha)}").json() == {"quota": wanted}
    assert client.get(f"{LBAAS}/quotas").json()["quotas"] == [wanted]
    assert client.get(f"{LBAAS}/quotas", params={"project_id": "nobody"}).json()["quotas"] == []

    # A later PUT changes what it names; null puts one quota back to its default.
    again = client.put(path, json={"quota": {"pool": 9, "listener": None}})
    assert again.status_code == 202
    assert again.json()["quota"] == {**wanted, "pool": 9, "listener": -1}

    assert client.delete(path).status_code == 204
    assert client.get(path).json() == {"quota": {**dict.fromkeys(QUOTA_NAMES, -1), "project_id": alpha}}
    assert client.get(f"{LBAAS}/quotas").json()["quotas"] == []
    assert client.delete(path).status_code == 204


def test_quota_is_enforced_on_load_balancer_create(client: TestClient, alpha: str) -> None:
    assert client.put(f"{LBAAS}/quotas/{alpha}", json={"quota": {"loadbalancer": 1}}).status_code == 202
    body = {"loadbalancer": {"vip_subnet_id": default_subnet(client)["id"]}}
    assert as_tenant(client, "POST", f"{LBAAS}/loadbalancers", json=body).status_code == 201
    assert as_tenant(client, "POST", f"{LBAAS}/loadbalancers", json=body).status_code == 403
    assert client.delete(f"{LBAAS}/quotas/{alpha}").status_code == 204
    assert as_tenant(client, "POST", f"{LBAAS}/loadbalancers", json=body).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"quota": {"loadbalancer": -2}},
        {"quota": {"loadbalancer": "many"}},
        {"quota": {"amphora": 1}},
        {"quota": {"loadbalancer": 1, "load_balancer": 2}},
        {"quotas": {"loadbalancer": 1}},
        [],
    ],
)
def test_quota_validation(client: TestClient, alpha: str, body: Any) -> None:
    answer = client.put(f"{LBAAS}/quotas/{alpha}", json=body)
    assert answer.status_code == 400, answer.text
    assert client.get(f"{LBAAS}/quotas").json()["quotas"] == []


def test_quota_access_for_a_tenant(client: TestClient, alpha: str) -> None:
    assert client.put(f"{LBAAS}/quotas/{alpha}", json={"quota": {"pool": 3}}).status_code == 202
    admin_project = client.get("/v2.0/networks").json()["networks"][0]["project_id"]
    assert client.put(f"{LBAAS}/quotas/{admin_project}", json={"quota": {"pool": 4}}).status_code == 202

    own = as_tenant(client, "GET", f"{LBAAS}/quotas/{alpha}")
    assert own.status_code == 200
    assert own.json()["quota"]["pool"] == 3
    listed = as_tenant(client, "GET", f"{LBAAS}/quotas")
    assert [q["project_id"] for q in listed.json()["quotas"]] == [alpha]
    assert {q["project_id"] for q in client.get(f"{LBAAS}/quotas").json()["quotas"]} == {alpha, admin_project}

    assert as_tenant(client, "GET", f"{LBAAS}/quotas/{admin_project}").status_code == 403
    assert as_tenant(client, "GET", f"{LBAAS}/quotas/{uuid.uuid4().hex}").status_code == 403
    assert (
        as_tenant(client, "PUT", f"{LBAAS}/quotas/{alpha}", json={"quota": {"pool": -1}}).status_code == 403
    )
    assert as_tenant(client, "DELETE", f"{LBAAS}/quotas/{alpha}").status_code == 403
    assert client.get(f"{LBAAS}/quotas/{alpha}").json()["quota"]["pool"] == 3


# --- amphorae -------------------------------------------------------------------------------------


def test_amphorae_without_a_data_plane(client: TestClient, alpha: str) -> None:
    assert client.get("/v2/octavia/amphorae").json() == {"amphorae": [], "amphorae_links": []}
    missing = uuid.uuid4()
    assert client.get(f"/v2/octavia/amphorae/{missing}").status_code == 404
    assert client.get(f"/v2/octavia/amphorae/{missing}/stats").status_code == 404
    assert client.put(f"/v2/octavia/amphorae/{missing}/failover").status_code == 404
    assert client.get("/v2/octavia/amphorae/not-a-uuid").status_code == 404
    for method, path in (
        ("GET", "/v2/octavia/amphorae"),
        ("GET", f"/v2/octavia/amphorae/{missing}"),
        ("GET", f"/v2/octavia/amphorae/{missing}/stats"),
        ("PUT", f"/v2/octavia/amphorae/{missing}/failover"),
    ):
        assert as_tenant(client, method, path).status_code == 403, (method, path)


def _add_se(client: TestClient, name: str, mgmt_ip: str) -> str:
    """A service engine as the data plane would record it (SEs cannot be created through the API)."""
    services = client.app.state.services  # type: ignore[attr-defined]
    group = client.get("/api/serviceenginegroup", params={"name": "Default-Group"}).json()["results"][0]
    se_uuid = f"serviceengine-{uuid.uuid4()}"
    data = {"name": name, "se_group_ref": group["url"], "cloud_ref": group["cloud_ref"], "mgmt_ip": mgmt_ip}
    stamp = 1_700_000_000_000_000
    se = StoredObject(se_uuid, "serviceengine", services.objects.admin_tenant_uuid, name, data, created=stamp,
                      last_modified=stamp)  # fmt: skip
    with services.db.write() as conn:
        repo.insert_object(conn, se)
    return se_uuid


def test_amphorae_show_service_engines(client: TestClient, alpha: str) -> None:
    lb = client.post(f"{LBAAS}/loadbalancers", json={"loadbalancer": {
        "vip_subnet_id": default_subnet(client)["id"], "vip_address": "127.100.0.9"}})  # fmt: skip
    assert lb.status_code == 201, lb.text
    lb_id = lb.json()["loadbalancer"]["id"]
    listener = client.post(f"{LBAAS}/listeners", json={"listener": {
        "loadbalancer_id": lb_id, "protocol": "HTTP", "protocol_port": 80}})  # fmt: skip
    assert listener.status_code == 201, listener.text
    vs_uuid = f"virtualservice-{listener.json()['listener']['id']}"
    primary, secondary, idle = (_add_se(client, f"se-{n}", f"10.199.0.{n}") for n in (1, 2, 3))
    services = client.app.state.services  # type: ignore[attr-defined]
    with services.db.write() as conn:
        repo.set_placements(conn, [(vs_uuid, primary, "primary"), (vs_uuid, secondary, "secondary")], 1)

    listed = client.get("/v2/octavia/amphorae")
    assert listed.status_code == 200
    amphorae = {a["compute_id"]: a for a in listed.json()["amphorae"]}
    assert set(amphorae) == {primary, secondary, idle}
    first = amphorae[primary]
    assert first["id"] == primary.removeprefix("serviceengine-")
    assert first["loadbalancer_id"] == lb_id
    assert first["status"] == "ALLOCATED"
    assert first["role"] == "MASTER"
    assert first["lb_network_ip"] == "10.199.0.1"
    assert first["ha_ip"] == "127.100.0.9"
    assert first["created_at"] == "2023-11-14T22:13:20"
    assert {
        k: first[k] for k in ("image_id", "compute_flavor", "cached_zone", "cert_expiration")
    } == dict.fromkeys(("image_id", "compute_flavor", "cached_zone", "cert_expiration"))
    assert amphorae[secondary]["role"] == "BACKUP"
    assert amphorae[secondary]["loadbalancer_id"] == lb_id
    spare = amphorae[idle]
    assert (spare["status"], spare["role"], spare["loadbalancer_id"], spare["ha_ip"]) == (
        "READY",
        "STANDALONE",
        None,
        None,
    )
    only = client.get("/v2/octavia/amphorae", params={"loadbalancer_id": lb_id, "role": "BACKUP"})
    assert [a["compute_id"] for a in only.json()["amphorae"]] == [secondary]

    shown = client.get(f"/v2/octavia/amphorae/{first['id']}")
    assert shown.json() == {"amphora": first}
    stats = client.get(f"/v2/octavia/amphorae/{first['id']}/stats")
    assert stats.status_code == 200
    assert stats.json() == {"amphora_stats": [{
        "id": first["id"], "listener_id": listener.json()["listener"]["id"], "loadbalancer_id": lb_id,
        "active_connections": 0, "total_connections": 0, "bytes_in": 0, "bytes_out": 0, "request_errors": 0,
    }]}  # fmt: skip
    assert client.get(f"/v2/octavia/amphorae/{amphorae[idle]['id']}/stats").json() == {"amphora_stats": []}
    # Without a data plane nothing can move.
    assert client.put(f"/v2/octavia/amphorae/{first['id']}/failover").status_code == 409
    assert as_tenant(client, "GET", f"/v2/octavia/amphorae/{first['id']}").status_code == 403


# --- networking-API view --------------------------------------------------------------------------


def test_networks_and_subnets(client: TestClient, alpha: str) -> None:
    netns = client.post("/api/cloud", json={"name": "lab", "vtype": "CLOUD_NETNS"})
    assert netns.status_code == 201, netns.text
    networks = client.get("/v2.0/networks").json()["networks"]
    subnets = client.get("/v2.0/subnets").json()["subnets"]
    assert [n["name"] for n in networks] == ["Default-Cloud-vip", "lab-vip"]
    assert [s["name"] for s in subnets] == ["Default-Cloud-vip-subnet", "lab-vip-subnet"]

    network, subnet = networks[1], subnets[1]
    assert network["subnets"] == [subnet["id"]]
    assert subnet["network_id"] == network["id"]
    assert network["status"] == "ACTIVE"
    assert network["shared"] is True
    assert network["router:external"] is False
    assert network["project_id"] == network["tenant_id"] == subnet["project_id"]
    assert subnet["cidr"] == "10.200.0.0/16"
    assert subnet["ip_version"] == 4
    assert subnet["gateway_ip"] is None
    assert subnet["enable_dhcp"] is False
    assert subnet["allocation_pools"] == [{"start": "10.200.0.1", "end": "10.200.255.254"}]
    assert subnets[0]["cidr"] == "127.100.0.0/16"

    # Any authenticated user sees them, as shared networks.
    assert as_tenant(client, "GET", "/v2.0/subnets").json()["subnets"] == subnets
    assert as_tenant(client, "GET", f"/v2.0/networks/{network['id']}").json() == {"network": network}

    assert client.get(f"/v2.0/networks/{network['id']}").json() == {"network": network}
    assert client.get(f"/v2.0/subnets/{subnet['id']}").json() == {"subnet": subnet}
    assert client.get(f"/v2.0/subnets/{subnet['id'].upper()}").json() == {"subnet": subnet}
    assert client.get(f"/v2.0/subnets/{subnet['id']}", params={"fields": "cidr"}).json() == {
        "subnet": {"cidr": "10.200.0.0/16"}
    }
    assert client.get(f"/v2.0/networks/{uuid.uuid4()}").status_code == 404
    assert client.get(f"/v2.0/subnets/{uuid.uuid4()}").status_code == 404
    assert client.get(f"/v2.0/subnets/{network['id']}").status_code == 404

    by_id = client.get("/v2.0/subnets", params={"id": subnet["id"]}).json()["subnets"]
    assert by_id == [subnet]
    assert client.get("/v2.0/networks", params={"name": "lab-vip", "fields": ["id", "name"]}).json() == {
        "networks": [{"id": network["id"], "name": "lab-vip"}]
    }
    assert client.get("/v2.0/networks", params={"name": "nothing"}).json() == {"networks": []}
    # Writes are Neutron's business, not Fulcrum's.
    assert client.post("/v2.0/networks", json={"network": {"name": "x"}}).status_code in (404, 405)


def test_a_subnet_is_found_by_name_as_neutron_clients_look(client: TestClient) -> None:
    """openstackclient's find: GET /v2.0/subnets/<name> (404), then GET /v2.0/subnets?name=<name>."""
    first = client.get("/v2.0/subnets/Default-Cloud-vip-subnet")
    assert first.status_code == 404
    then = client.get("/v2.0/subnets", params={"name": "Default-Cloud-vip-subnet"})
    assert then.status_code == 200
    assert [s["name"] for s in then.json()["subnets"]] == ["Default-Cloud-vip-subnet"]
    assert client.get("/v2.0/networks/Default-Cloud-vip").status_code == 404
    assert len(client.get("/v2.0/networks", params={"name": "Default-Cloud-vip"}).json()["networks"]) == 1
    # ... and the subnet found is one a load balancer can be created on.
    body = {"loadbalancer": {"vip_subnet_id": then.json()["subnets"][0]["id"]}}
    made = client.post(f"{LBAAS}/loadbalancers", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["loadbalancer"]["vip_network_id"] == then.json()["subnets"][0]["network_id"]


def test_networking_view_needs_authentication(client: TestClient) -> None:
    for path in ("/v2.0/networks", "/v2.0/subnets", f"{LBAAS}/flavors", f"{LBAAS}/quotas/defaults"):
        assert client.get(path, auth=None).status_code == 401, path


class RecordingDataPlane:
    """Stands in for the data plane in a failover: records what it is asked to move."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def migrate(
        self, vs: Any, from_se_ref: str | None, to_se_ref: str | None, to_new_se: bool
    ) -> dict[str, Any]:
        self.calls.append(("migrate", vs.uuid, from_se_ref, to_se_ref, to_new_se))
        return {"status": "migrating"}

    def switchover(self, vs: Any) -> dict[str, Any]:
        self.calls.append(("switchover", vs.uuid))
        return {"status": "switching over"}


def test_amphora_failover_migrates_every_virtual_service_off_the_se(client: TestClient) -> None:
    lb = client.post(
        f"{LBAAS}/loadbalancers", json={"loadbalancer": {"vip_subnet_id": default_subnet(client)["id"]}}
    )
    lb_id = lb.json()["loadbalancer"]["id"]
    listeners = [
        client.post(f"{LBAAS}/listeners", json={"listener": {
            "loadbalancer_id": lb_id, "protocol": "TCP", "protocol_port": port}}).json()["listener"]["id"]
        for port in (80, 81)
    ]  # fmt: skip
    se = _add_se(client, "se-1", "10.199.0.1")
    services = client.app.state.services  # type: ignore[attr-defined]
    with services.db.write() as conn:
        repo.set_placements(conn, [(f"virtualservice-{v}", se, "primary") for v in listeners], 1)
    dataplane = RecordingDataPlane()
    marked: list[str] = []
    OctaviaExtras(services.objects, dataplane, True).failover_amphora(
        se.removeprefix("serviceengine-"), marked.append
    )  # type: ignore[arg-type]
    assert dataplane.calls == [
        ("migrate", f"virtualservice-{v}", f"/api/serviceengine/{se}", None, True) for v in sorted(listeners)
    ]
    assert marked == [f"vsvip-{lb_id}"] * 2
