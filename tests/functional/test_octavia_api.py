"""The Octavia v2 API in-process (no data plane: statuses behave as with Octavia's no-op driver and
go ACTIVE at once). A table walks every resource and verb under both prefixes; other tests check that
Octavia objects are native objects, single-call creates, cascade delete, errors in Octavia's shape,
unsupported options (501), tenant isolation, and the 409 on a load balancer that is PENDING_*."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fulcrum.controller.services.octavia import ids
from fulcrum.controller.services.octavia.status import StatusBook
from support.certs import self_signed

PASSWORD = "octavia-tests-pw-1"


def subnet_id(client: TestClient) -> str:
    found = client.get("/v2.0/subnets", params={"name": "Default-Cloud-vip-subnet"}).json()["subnets"]
    return str(found[0]["id"])


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def full_lb(client: TestClient, port: int = 80) -> dict[str, Any]:
    body = {
        "loadbalancer": {
            "name": "shop",
            "vip_subnet_id": subnet_id(client),
            "pools": [{"name": "static", "protocol": "HTTP", "lb_algorithm": "SOURCE_IP",
                       "members": [{"address": "192.0.2.20", "protocol_port": 8080}]}],
            "listeners": [{
                "name": "web", "protocol": "HTTP", "protocol_port": port,
                "insert_headers": {"X-Forwarded-For": "true"},
                "default_pool": {
                    "name": "app", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                    "session_persistence": {"type": "HTTP_COOKIE"},
                    "members": [{"address": "192.0.2.10", "protocol_port": 8080, "weight": 3},
                                {"address": "192.0.2.11", "protocol_port": 8080, "backup": True}],
                    "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2,
                                      "url_path": "/healthz", "expected_codes": "200-204"},
                },
                "l7policies": [{"name": "static-files", "action": "REDIRECT_TO_POOL",
                                "redirect_pool": {"name": "static"},
                                "rules": [{"type": "PATH", "compare_type": "STARTS_WITH",
                                           "value": "/static"}]}],
            }],
        }
    }  # fmt: skip
    return ok(client.post("/v2/lbaas/loadbalancers", json=body), 201)["loadbalancer"]  # type: ignore[no-any-return]


def test_single_call_create_is_one_model_with_two_faces(client: TestClient) -> None:
    lb = full_lb(client)
    assert lb["provisioning_status"] == "ACTIVE" and lb["provider"] == "fulcrum"
    assert lb["vip_address"].startswith("127.100.")
    [listener] = ok(client.get("/v2/lbaas/listeners", params={"loadbalancer_id": lb["id"]}))["listeners"]
    assert listener["insert_headers"] == {"X-Forwarded-For": "true"}
    pools = {p["name"]: p for p in ok(client.get("/v2/lbaas/pools"))["pools"]}
    assert set(pools) == {"app", "static"}
    assert pools["app"]["session_persistence"]["type"] == "HTTP_COOKIE"
    assert pools["static"]["lb_algorithm"] == "SOURCE_IP"
    assert listener["default_pool_id"] == pools["app"]["id"]
    [policy] = ok(client.get("/v2/lbaas/l7policies"))["l7policies"]
    assert policy["redirect_pool_id"] == pools["static"]["id"] and policy["position"] == 1
    [rule] = ok(client.get(f"/v2/lbaas/l7policies/{policy['id']}/rules"))["rules"]
    assert (rule["type"], rule["compare_type"], rule["value"]) == ("PATH", "STARTS_WITH", "/static")

    # The native API sees the same objects under the same ids.
    vs = ok(client.get(f"/api/virtualservice/virtualservice-{listener['id']}"))
    assert vs["vsvip_ref"] == f"/api/vsvip/vsvip-{lb['id']}"
    assert vs["pool_ref"] == f"/api/pool/pool-{pools['app']['id']}"
    assert vs["http_policies"] == [f"/api/httppolicyset/httppolicyset-{policy['id']}"]
    native_pool = ok(client.get(f"/api/pool/pool-{pools['app']['id']}"))
    assert [(s["ip"], s["ratio"], s["backup"]) for s in native_pool["servers"]] == [
        ("192.0.2.10", 3, False), ("192.0.2.11", 1, True)
    ]  # fmt: skip
    hm = ok(client.get(f"/v2/lbaas/healthmonitors/{pools['app']['healthmonitor_id']}"))["healthmonitor"]
    assert (hm["delay"], hm["timeout"], hm["url_path"], hm["expected_codes"]) == (5, 3, "/healthz", "200-204")

    # A native change shows through Octavia.
    ok(
        client.patch(
            f"/api/pool/pool-{pools['app']['id']}", json={"lb_algorithm": "LB_ALGORITHM_LEAST_CONNECTIONS"}
        )
    )
    assert (
        ok(client.get(f"/v2/lbaas/pools/{pools['app']['id']}"))["pool"]["lb_algorithm"] == "LEAST_CONNECTIONS"
    )

    # The status tree.
    tree = ok(client.get(f"/v2/lbaas/loadbalancers/{lb['id']}/status"))["statuses"]["loadbalancer"]
    listed = {p["name"] for p in tree["listeners"][0]["pools"]}
    assert listed == {"app", "static"}


def test_cascade_delete_removes_everything_and_plain_delete_refuses(client: TestClient) -> None:
    lb = full_lb(client)
    refused = client.delete(f"/v2/lbaas/loadbalancers/{lb['id']}")
    assert refused.status_code == 409
    assert refused.json()["faultstring"] == f"Cannot delete Load Balancer {lb['id']} - it has children"
    ok(client.delete(f"/v2/lbaas/loadbalancers/{lb['id']}", params={"cascade": "true"}), 204)
    for type_name in ("vsvip", "virtualservice", "pool", "httppolicyset"):
        assert ok(client.get(f"/api/{type_name}"))["count"] == 0, type_name
    assert [h["name"] for h in ok(client.get("/api/healthmonitor"))["results"]] == [
        "System-HTTP", "System-HTTPS", "System-TCP"
    ]  # fmt: skip
    assert client.get(f"/v2/lbaas/loadbalancers/{lb['id']}").status_code == 404


# Every resource and verb, under both prefixes: (method, path, body, expected status, root of the answer)
def _walk(client: TestClient, prefix: str) -> list[tuple[str, str, int]]:  # noqa: PLR0915 (one walk)
    seen: list[tuple[str, str, int]] = []

    def call(method: str, path: str, body: Any = None, status: int = 200, root: str | None = None) -> Any:
        answer = client.request(method, f"{prefix}{path}", json=body)
        seen.append((method, path, answer.status_code))
        assert answer.status_code == status, f"{method} {path}: {answer.text}"
        data = answer.json() if answer.content else None
        if root is not None:
            assert root in data, f"{method} {path}: no {root!r} in {data}"
            return data[root]
        return data

    lb = call("POST", "/loadbalancers", {"loadbalancer": {"name": "t", "vip_subnet_id": subnet_id(client)}},
              201, "loadbalancer")  # fmt: skip
    call("GET", "/loadbalancers", root="loadbalancers")
    call("GET", f"/loadbalancers/{lb['id']}", root="loadbalancer")
    assert call("PUT", f"/loadbalancers/{lb['id']}", {"loadbalancer": {"description": "d"}},
                root="loadbalancer")["description"] == "d"  # fmt: skip
    call("GET", f"/loadbalancers/{lb['id']}/status", root="statuses")
    call("GET", f"/loadbalancers/{lb['id']}/stats", root="stats")
    listener = call("POST", "/listeners", {"listener": {"loadbalancer_id": lb["id"], "protocol": "TCP",
                                                        "protocol_port": 5432}}, 201, "listener")  # fmt: skip
    call("GET", "/listeners", root="listeners")
    call("GET", f"/listeners/{listener['id']}", root="listener")
    assert call("PUT", f"/listeners/{listener['id']}", {"listener": {"connection_limit": 100,
                "allowed_cidrs": ["192.0.2.0/24"], "timeout_client_data": 1000}},
                root="listener")["allowed_cidrs"] == ["192.0.2.0/24"]  # fmt: skip
    call("GET", f"/listeners/{listener['id']}/stats", root="stats")
    pool = call("POST", "/pools", {"pool": {"listener_id": listener["id"], "protocol": "TCP",
                                            "lb_algorithm": "LEAST_CONNECTIONS"}}, 201, "pool")  # fmt: skip
    call("GET", "/pools", root="pools")
    call("GET", f"/pools/{pool['id']}", root="pool")
    call("PUT", f"/pools/{pool['id']}", {"pool": {"session_persistence": {"type": "SOURCE_IP"}}}, root="pool")
    member = call("POST", f"/pools/{pool['id']}/members", {"member": {"address": "192.0.2.5",
                  "protocol_port": 5432}}, 201, "member")  # fmt: skip
    call("GET", f"/pools/{pool['id']}/members", root="members")
    call("GET", f"/pools/{pool['id']}/members/{member['id']}", root="member")
    assert call("PUT", f"/pools/{pool['id']}/members/{member['id']}", {"member": {"weight": 0}},
                root="member")["weight"] == 0  # fmt: skip
    call("PUT", f"/pools/{pool['id']}/members", {"members": [{"address": "192.0.2.5", "protocol_port": 5432},
         {"address": "192.0.2.6", "protocol_port": 5432}]}, 202)  # fmt: skip
    members = call("GET", f"/pools/{pool['id']}/members", root="members")
    assert sorted(m["address"] for m in members) == ["192.0.2.5", "192.0.2.6"]
    assert member["id"] in {m["id"] for m in members}  # a kept member keeps its id
    hm = call("POST", "/healthmonitors", {"healthmonitor": {"pool_id": pool["id"], "type": "TCP", "delay": 3,
              "timeout": 2, "max_retries": 2}}, 201, "healthmonitor")  # fmt: skip
    call("GET", "/healthmonitors", root="healthmonitors")
    call("GET", f"/healthmonitors/{hm['id']}", root="healthmonitor")
    call("PUT", f"/healthmonitors/{hm['id']}", {"healthmonitor": {"delay": 10}}, root="healthmonitor")
    http = call("POST", "/listeners", {"listener": {"loadbalancer_id": lb["id"], "protocol": "HTTP",
                                                    "protocol_port": 80}}, 201, "listener")  # fmt: skip
    policy = call("POST", "/l7policies", {"l7policy": {"listener_id": http["id"], "action": "REJECT"}},
                  201, "l7policy")  # fmt: skip
    call("GET", "/l7policies", root="l7policies")
    call("GET", f"/l7policies/{policy['id']}", root="l7policy")
    assert call("PUT", f"/l7policies/{policy['id']}", {"l7policy": {"action": "REDIRECT_TO_URL",
                "redirect_url": "https://example.com/", "redirect_http_code": 301}},
                root="l7policy")["redirect_http_code"] == 301  # fmt: skip
    rule = call("POST", f"/l7policies/{policy['id']}/rules", {"rule": {"type": "HOST_NAME",
                "compare_type": "EQUAL_TO", "value": "old.example.com"}}, 201, "rule")  # fmt: skip
    call("GET", f"/l7policies/{policy['id']}/rules", root="rules")
    call("GET", f"/l7policies/{policy['id']}/rules/{rule['id']}", root="rule")
    assert call("PUT", f"/l7policies/{policy['id']}/rules/{rule['id']}", {"rule": {"invert": True}},
                root="rule")["invert"] is True  # fmt: skip
    call("DELETE", f"/l7policies/{policy['id']}/rules/{rule['id']}", status=204)
    call("DELETE", f"/l7policies/{policy['id']}", status=204)
    call("DELETE", f"/healthmonitors/{hm['id']}", status=204)
    call("DELETE", f"/pools/{pool['id']}/members/{member['id']}", status=204)
    call("DELETE", f"/pools/{pool['id']}", status=204)
    call("DELETE", f"/listeners/{listener['id']}", status=204)
    call("DELETE", f"/listeners/{http['id']}", status=204)
    call("DELETE", f"/loadbalancers/{lb['id']}", status=204)
    return seen


@pytest.mark.parametrize("prefix", ["/v2/lbaas", "/v2.0/lbaas"])
def test_every_resource_and_verb(client: TestClient, prefix: str) -> None:
    seen = _walk(client, prefix)
    verbs = {(method, path.split("/")[1]) for method, path, _ in seen}
    for resource in ("loadbalancers", "listeners", "pools", "healthmonitors", "l7policies"):
        for method in ("POST", "GET", "PUT", "DELETE"):
            assert (method, resource) in verbs, (method, resource)
    for type_name in ("vsvip", "virtualservice", "pool", "httppolicyset"):
        assert ok(client.get(f"/api/{type_name}"))["count"] == 0, type_name


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"loadbalancer": {"name": "x"}}, 400, "vip_network_id"),
        ({"loadbalancer": {"vip_subnet_id": str(uuid.uuid4())}}, 400, "could not be found"),
        ({"loadbalancer": {"vip_subnet_id": "SUBNET", "bogus": 1}}, 400, "bogus"),
        ({"loadbalancer": {"vip_subnet_id": "SUBNET", "provider": "amphora"}}, 400, "Provider 'amphora'"),
        ({"loadbalancer": {"vip_subnet_id": "SUBNET", "availability_zone": "az1"}}, 501, "availability_zone"),
        ({"loadbalancer": {"vip_subnet_id": "SUBNET", "vip_address": "10.9.9.9"}}, 400, "loopback"),
        ({"loadbalancer": {"vip_subnet_id": "SUBNET", "listeners": [
            {"protocol": "UDP", "protocol_port": 53}]}}, 501, "UDP"),
        ({"loadbalancer": {"vip_subnet_id": "SUBNET", "listeners": [
            {"protocol": "HTTP", "protocol_port": 80, "default_pool": {
                "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN"}}]}}, 400, "pool protocol"),
        ({"loadbalancer": {"vip_subnet_id": "SUBNET", "listeners": [
            {"protocol": "TERMINATED_HTTPS", "protocol_port": 443}]}}, 400, "default_tls_container_ref"),
        ({"loadbalancer": {"vip_subnet_id": "SUBNET", "listeners": [
            {"protocol": "HTTP", "protocol_port": 80, "l7policies": [
                {"action": "REJECT", "rules": [{"type": "PATH", "compare_type": "REGEX",
                                                "value": "(unclosed"}]}]}]}}, 400, ""),
        ({"loadbalancer": {"vip_subnet_id": "SUBNET", "listeners": [
            {"protocol": "HTTP", "protocol_port": 80, "name": "bad\nname"}]}}, 400, "name"),
    ],
)  # fmt: skip
def test_bad_input_gets_octavia_errors_and_changes_nothing(
    client: TestClient, body: dict[str, Any], status: int, says: str
) -> None:
    lb = body["loadbalancer"]
    if lb.get("vip_subnet_id") == "SUBNET":
        lb["vip_subnet_id"] = subnet_id(client)
    answer = client.post("/v2/lbaas/loadbalancers", json=body)
    assert answer.status_code == status, answer.text
    fault = answer.json()
    assert set(fault) == {"faultcode", "faultstring", "debuginfo"}
    assert fault["faultcode"] == ("Client" if status < 500 else "Server")
    assert says in fault["faultstring"]
    for type_name in ("vsvip", "virtualservice", "pool", "httppolicyset"):
        assert ok(client.get(f"/api/{type_name}"))["count"] == 0, type_name


def test_tenants_do_not_see_each_other(client: TestClient) -> None:
    for tenant, user in (("alpha", "alice"), ("beta", "bob")):
        ok(client.post("/api/tenant", json={"name": tenant}), 201)
        access = [{"tenant_ref": tenant, "role": "application-admin"}]
        ok(client.post("/api/user", json={"name": user, "password": PASSWORD, "access": access}), 201)
    alice = {"auth": ("alice", PASSWORD), "headers": {"X-Fulcrum-Tenant": "alpha"}}
    bob = {"auth": ("bob", PASSWORD), "headers": {"X-Fulcrum-Tenant": "beta"}}
    made = client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {"vip_subnet_id": subnet_id(client)}},
                       **alice)  # fmt: skip
    lb = ok(made, 201)["loadbalancer"]
    alpha = ok(client.get("/api/tenant", params={"name": "alpha"}))["results"][0]["uuid"]
    assert lb["project_id"] == ids.project_of(alpha)
    assert ok(client.get("/v2/lbaas/loadbalancers", **bob))["loadbalancers"] == []
    assert client.get(f"/v2/lbaas/loadbalancers/{lb['id']}", **bob).status_code == 404
    assert client.put(f"/v2/lbaas/loadbalancers/{lb['id']}", json={"loadbalancer": {"name": "x"}},
                      **bob).status_code == 404  # fmt: skip
    assert client.delete(f"/v2/lbaas/loadbalancers/{lb['id']}", **bob).status_code == 404
    # Bob may not create in alice's project either.
    foreign = {"loadbalancer": {"vip_subnet_id": subnet_id(client), "project_id": lb["project_id"]}}
    assert client.post("/v2/lbaas/loadbalancers", json=foreign, **bob).status_code == 403
    # The admin sees every project's load balancers, as Octavia's admin does.
    assert [x["id"] for x in ok(client.get("/v2/lbaas/loadbalancers"))["loadbalancers"]] == [lb["id"]]
    # No credentials: 401 in Octavia's shape; the version document needs none.
    anonymous = client.get("/v2/lbaas/loadbalancers", auth=None)
    assert anonymous.status_code == 401 and "faultstring" in anonymous.json()
    assert client.get("/", auth=None).json()["versions"][-1]["status"] == "CURRENT"


def test_list_filters_sorting_paging_and_fields(client: TestClient) -> None:
    subnet = subnet_id(client)
    made = [
        ok(
            client.post(
                "/v2/lbaas/loadbalancers", json={"loadbalancer": {"name": n, "vip_subnet_id": subnet}}
            ),
            201,
        )["loadbalancer"]
        for n in ("b", "a", "c")
    ]
    names = [
        x["name"]
        for x in ok(client.get("/v2/lbaas/loadbalancers", params={"sort": "name:asc"}))["loadbalancers"]
    ]
    assert names == ["a", "b", "c"]
    page = ok(client.get("/v2/lbaas/loadbalancers", params={"sort": "name:desc", "limit": 2}))
    assert [x["name"] for x in page["loadbalancers"]] == ["c", "b"]
    assert page["loadbalancers_links"][0]["rel"] == "next"
    rest = ok(client.get("/v2/lbaas/loadbalancers", params={"sort": "name:desc", "marker": made[0]["id"]}))
    assert [x["name"] for x in rest["loadbalancers"]] == ["a"]
    only = ok(client.get("/v2/lbaas/loadbalancers", params={"name": "a", "fields": ["id", "name"]}))
    assert only["loadbalancers"] == [{"id": made[1]["id"], "name": "a"}]


class _PendingDataPlane:
    """A data plane that never completes a pass: every change stays PENDING."""

    passes_started = 5
    passes_completed = 5

    def poke(self) -> None:
        pass

    def vs_runtime(self, _vs_uuid: str) -> dict[str, Any]:
        return {"oper_status": "OPER_INITIALIZING"}

    def vs_provisioning(self, _vs_uuid: str) -> tuple[str, str]:
        return "PENDING", "not applied yet"

    def pool_runtime(self, pool: Any) -> dict[str, Any]:
        return {"servers": []}


def test_a_pending_load_balancer_refuses_changes_with_409(client: TestClient) -> None:
    lb = full_lb(client)
    service = client.app.state.octavia  # type: ignore[attr-defined]
    service.status = StatusBook(_PendingDataPlane(), dataplane_running=True)  # type: ignore[arg-type]
    service.status.mark(f"vsvip-{lb['id']}", "UPDATE")
    shown = ok(client.get(f"/v2/lbaas/loadbalancers/{lb['id']}"))["loadbalancer"]
    assert shown["provisioning_status"] == "PENDING_UPDATE"
    pool = ok(client.get("/v2/lbaas/pools"))["pools"][0]
    refused = client.post(f"/v2/lbaas/pools/{pool['id']}/members",
                          json={"member": {"address": "192.0.2.99", "protocol_port": 80}})  # fmt: skip
    assert refused.status_code == 409
    assert refused.json()["faultstring"] == f"Load Balancer {lb['id']} is immutable and cannot be updated."
    assert (
        client.put(f"/v2/lbaas/loadbalancers/{lb['id']}", json={"loadbalancer": {"name": "n"}}).status_code
        == 409
    )


def test_app_cookie_tls_hello_and_exact_codes_map_to_native_features(client: TestClient) -> None:
    body = {
        "loadbalancer": {
            "vip_subnet_id": subnet_id(client),
            "listeners": [
                {"protocol": "HTTP", "protocol_port": 80, "default_pool": {
                    "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                    "session_persistence": {"type": "APP_COOKIE", "cookie_name": "JSESSIONID"},
                    "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2,
                                      "expected_codes": "200,202"}}},
                {"protocol": "HTTPS", "protocol_port": 443, "default_pool": {
                    "protocol": "HTTPS", "lb_algorithm": "LEAST_CONNECTIONS",
                    "healthmonitor": {"type": "TLS-HELLO", "delay": 5, "timeout": 3, "max_retries": 2}}},
            ],
        }
    }  # fmt: skip
    lb = ok(client.post("/v2/lbaas/loadbalancers", json=body), 201)["loadbalancer"]
    pools = {p["protocol"]: p for p in ok(client.get("/v2/lbaas/pools"))["pools"]}
    assert pools["HTTP"]["session_persistence"]["type"] == "APP_COOKIE"
    assert pools["HTTP"]["session_persistence"]["cookie_name"] == "JSESSIONID"
    native = ok(client.get(f"/api/pool/pool-{pools['HTTP']['id']}"))
    profile = ok(client.get(native["application_persistence_profile_ref"]))
    assert profile["app_cookie_persistence_profile"]["cookie_name"] == "JSESSIONID"
    http_hm = ok(client.get(f"/api/healthmonitor/healthmonitor-{pools['HTTP']['healthmonitor_id']}"))
    assert http_hm["http_monitor"]["http_response_codes"] == "200,202"
    tls_hm = ok(client.get(f"/v2/lbaas/healthmonitors/{pools['HTTPS']['healthmonitor_id']}"))["healthmonitor"]
    assert tls_hm["type"] == "TLS-HELLO"
    listeners = {x["protocol"]: x for x in ok(client.get("/v2/lbaas/listeners"))["listeners"]}
    vs = ok(client.get(f"/api/virtualservice/virtualservice-{listeners['HTTP']['id']}"))
    assert vs["application_profile_ref"].endswith(
        ok(client.get("/api/applicationprofile", params={"name": "System-HTTP-Plain"}))["results"][0]["uuid"]
    )
    ok(client.delete(f"/v2/lbaas/loadbalancers/{lb['id']}", params={"cascade": "true"}), 204)
    # The pool's own app-cookie profile went with it.
    names = [p["name"] for p in ok(client.get("/api/applicationpersistenceprofile"))["results"]]
    assert all(n.startswith("System-") for n in names), names


def test_terminated_https_listener_uses_fulcrum_certificates(client: TestClient) -> None:
    cert, key = self_signed()
    site = {"name": "site", "certificate": {"certificate": cert}, "key": key}
    made = ok(client.post("/api/sslkeyandcertificate", json=site), 201)
    cert_id = made["uuid"].removeprefix("sslkeyandcertificate-")
    body = {"loadbalancer": {"vip_subnet_id": subnet_id(client), "listeners": [{
        "protocol": "TERMINATED_HTTPS", "protocol_port": 443,
        # A Barbican-style container URL whose last segment is the certificate's id works too.
        "default_tls_container_ref": f"https://key-manager.example/v1/containers/{cert_id}",
    }]}}  # fmt: skip
    lb = ok(client.post("/v2/lbaas/loadbalancers", json=body), 201)["loadbalancer"]
    [listener] = ok(client.get("/v2/lbaas/listeners", params={"loadbalancer_id": lb["id"]}))["listeners"]
    assert listener["protocol"] == "TERMINATED_HTTPS"
    vs = ok(client.get(f"/api/virtualservice/virtualservice-{listener['id']}"))
    assert vs["services"] == [{"port": 443, "port_range_end": None, "enable_ssl": True}]
    assert vs["ssl_key_and_certificate_refs"] == [made["url"]]
    listener_body = {"protocol": "TERMINATED_HTTPS", "protocol_port": 8443,
                     "default_tls_container_ref": str(uuid.uuid4())}  # fmt: skip
    unknown = {"loadbalancer": {**body["loadbalancer"], "listeners": [listener_body]}}
    refused = client.post("/v2/lbaas/loadbalancers", json=unknown)
    assert refused.status_code == 400 and "sslkeyandcertificate" in refused.json()["faultstring"]


def test_quotas_are_enforced_with_403(client: TestClient) -> None:
    admin_tenant = ok(client.get("/api/tenant", params={"name": "admin"}))["results"][0]["uuid"]
    project = ids.project_of(admin_tenant)
    quota = {"quota": {"loadbalancer": 1, "member": 2}}
    assert client.put(f"/v2/lbaas/quotas/{project}", json=quota).status_code == 202
    lb = ok(
        client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {"vip_subnet_id": subnet_id(client)}}),
        201,
    )
    second = client.post(
        "/v2/lbaas/loadbalancers", json={"loadbalancer": {"vip_subnet_id": subnet_id(client)}}
    )
    assert second.status_code == 403
    assert second.json()["faultstring"] == "Quota has been met for resources: Loadbalancer"
    pool = ok(client.post("/v2/lbaas/pools", json={"pool": {"loadbalancer_id": lb["loadbalancer"]["id"],
              "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}), 201)["pool"]  # fmt: skip
    for port in (1, 2):
        member = {"member": {"address": "192.0.2.1", "protocol_port": port}}
        ok(client.post(f"/v2/lbaas/pools/{pool['id']}/members", json=member), 201)
    third = client.post(f"/v2/lbaas/pools/{pool['id']}/members",
                        json={"member": {"address": "192.0.2.1", "protocol_port": 3}})  # fmt: skip
    assert third.status_code == 403
    assert len(ok(client.get(f"/v2/lbaas/pools/{pool['id']}/members"))["members"]) == 2
    # Back to unlimited.
    assert client.delete(f"/v2/lbaas/quotas/{project}").status_code == 204
    ok(
        client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {"vip_subnet_id": subnet_id(client)}}),
        201,
    )
