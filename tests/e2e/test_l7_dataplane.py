"""HTTP policies, source filters, limits, inserted headers, weight 0 and backup members against a real
HAProxy and real back ends on loopback.

Virtual services are built as the controller builds them: validated config objects, turned into the
SE's wire spec by `se_config.vs_spec`, applied by a `ConfigApplier` in a private run directory (as the
agent does). What is checked is traffic: which back end answered, the status and Location a client
got, which source addresses could connect, and the headers a back end received. Each test stops
exactly the processes it started.
"""

from __future__ import annotations

import shutil
import socket
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from fulcrum.controller.services import se_config
from fulcrum.controller.store.repo import StoredObject
from fulcrum.model.registry import TYPES
from fulcrum.protocol.se import ScaleOutPeer, ScaleOutSpec, VsRole, VsSpec
from fulcrum.se.render.view import backend_name, distributor_backend_name, peer_server_name, server_name
from support.backends import BackendProcess
from support.selab import SeLab, free_ports, random_address

HAPROXY_MISSING = "haproxy not installed: run make test which apt-get installs it"
ALLOWED_CLIENT, OTHER_CLIENT = "127.0.0.2", "127.0.0.3"
VS_UUID = "virtualservice-l7"
_IDS = iter(range(1, 1_000_000))


# --- lab ------------------------------------------------------------------------------------------


@dataclass
class Lab:
    """One SE's HAProxy, the back ends and the config objects of a test."""

    se: SeLab
    vip: str
    backends: list[BackendProcess] = field(default_factory=list)
    objects: dict[str, StoredObject] = field(default_factory=dict)

    def backend(self, name: str) -> BackendProcess:
        started = BackendProcess.start("http", name)
        self.backends.append(started)
        return started

    def add(self, type_name: str, uuid: str, body: dict[str, Any]) -> StoredObject:
        """A config object as the controller stores it: validated by its schema, defaults filled in."""
        data = TYPES[type_name].schema.model_validate(body).model_dump(mode="json")
        stored = StoredObject(
            uuid=uuid, type=type_name, tenant_uuid="tenant-e2e", name=body["name"], data=data
        )
        self.objects[uuid] = stored
        return stored

    def pool(self, uuid: str, *members: dict[str, Any], **fields: Any) -> str:
        body = {"name": uuid, "lb_algorithm": "LB_ALGORITHM_ROUND_ROBIN", "servers": list(members), **fields}
        self.add("pool", uuid, body)
        return f"/api/pool/{uuid}"

    def policy(self, action: str, *matches: dict[str, Any], **fields: Any) -> str:
        uuid = f"httppolicyset-{next(_IDS)}"
        self.add("httppolicyset", uuid, {"name": uuid, "action": action, "matches": list(matches), **fields})
        return f"/api/httppolicyset/{uuid}"

    def spec(self, port: int, profile: dict[str, Any] | None = None, **fields: Any) -> VsSpec:
        """The wire spec of the VS `fields` describe (on the lab's VIP at `port`)."""
        self.add("vsvip", "vsvip-l7", {"name": "vip", "vip": [{"ip_address": self.vip}]})
        self.add("applicationprofile", "applicationprofile-l7", {"name": "app", **(profile or {})})
        body = {
            "name": "l7",
            "services": [{"port": port}],
            "vsvip_ref": "/api/vsvip/vsvip-l7",
            "application_profile_ref": "/api/applicationprofile/applicationprofile-l7",
            **fields,
        }
        vs = self.add("virtualservice", VS_UUID, body)
        return se_config.vs_spec(vs, self.objects.get, lambda _: {})

    def apply(self, port: int, **fields: Any) -> VsSpec:
        spec = self.spec(port, **fields)
        self.se.apply_ok(spec)
        return spec

    def port(self) -> int:
        port, _ = free_ports(self.vip, [])
        return port


@pytest.fixture
def lab() -> Iterator[Lab]:
    if shutil.which("haproxy") is None:
        pytest.fail(HAPROXY_MISSING)
    the_lab = Lab(SeLab.create("se-l7"), random_address("127.100"))
    try:
        yield the_lab
    finally:
        try:
            the_lab.se.close()
        finally:
            for backend in the_lab.backends:
                backend.kill()


def member(backend: BackendProcess, **fields: Any) -> dict[str, Any]:
    return {"ip": backend.host, "port": backend.port, **fields}


def match(kind: str, compare: str, value: str, **fields: Any) -> dict[str, Any]:
    match_id = f"00000000-0000-4000-8000-{next(_IDS):012d}"
    return {"match_id": match_id, "type": kind, "compare_type": compare, "value": value, **fields}


def client(source: str = ALLOWED_CLIENT) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=5)


def get(vip: str, port: int, path: str = "/", source: str = ALLOWED_CLIENT, **kwargs: Any) -> httpx.Response:
    with client(source) as http:
        return http.get(f"http://{vip}:{port}{path}", **kwargs)


# --- tests ----------------------------------------------------------------------------------------


def test_policies_route_redirect_and_reject_in_order(lab: Lab) -> None:
    main, api, blue, odd = lab.backend("main"), lab.backend("api"), lab.backend("blue"), lab.backend("odd")
    hostile = 'a b"\\ %[src] $HOME #x'
    policies = [
        # First match wins: /api/admin is refused although the next policy sends /api/ to the api pool.
        lab.policy("REJECT", match("PATH", "STARTS_WITH", "/api/admin")),
        lab.policy(
            "REDIRECT_TO_POOL",
            match("PATH", "STARTS_WITH", "/api/"),
            redirect_pool_ref=lab.pool("pool-api", member(api)),
        ),
        lab.policy(
            "REDIRECT_TO_POOL",
            match("HEADER", "EQUAL_TO", "blue", key="X-Tenant"),
            redirect_pool_ref=lab.pool("pool-blue", member(blue)),
        ),
        lab.policy(
            "REDIRECT_TO_URL",
            match("PATH", "EQUAL_TO", "/old"),
            redirect_url="https://new.example.com/landing?from=%2Fold",
            redirect_http_code=301,
        ),
        lab.policy(
            "REDIRECT_PREFIX",
            match("HOST_NAME", "EQUAL_TO", "legacy.example.com"),
            redirect_prefix="https://secure.example.com/",
            redirect_http_code=308,
        ),
        lab.policy(
            "REDIRECT_TO_POOL",
            match("FILE_TYPE", "EQUAL_TO", "json"),
            redirect_pool_ref="/api/pool/pool-api",
        ),
        # Inverted: /inv/ requests without `X-Env: prod` go to blue.
        lab.policy(
            "REDIRECT_TO_POOL",
            match("PATH", "STARTS_WITH", "/inv/"),
            match("HEADER", "EQUAL_TO", "prod", key="X-Env", invert=True),
            redirect_pool_ref="/api/pool/pool-blue",
        ),
        lab.policy("REJECT", match("PATH", "REGEX", r"^/secret/\d+$")),
        lab.policy(
            "REDIRECT_TO_POOL",
            match("COOKIE", "CONTAINS", "beta", key="features"),
            redirect_pool_ref=lab.pool("pool-odd", member(odd)),
        ),
        lab.policy(
            "REDIRECT_TO_POOL",
            match("HEADER", "EQUAL_TO", hostile, key="X-Odd"),
            redirect_pool_ref="/api/pool/pool-odd",
        ),
        # Never matches: disabled, or without an enabled match.
        lab.policy("REJECT", match("PATH", "STARTS_WITH", "/"), enabled=False),
        lab.policy("REJECT", match("PATH", "STARTS_WITH", "/", enabled=False)),
    ]
    port = lab.port()
    spec = lab.apply(port, pool_ref=lab.pool("pool-main", member(main)), http_policies=policies)
    assert [p.uuid for p in spec.extra_pools] == ["pool-api", "pool-blue", "pool-odd"]
    vip = lab.vip

    def body(path: str, **kwargs: Any) -> str:
        response = get(vip, port, path, **kwargs)
        assert response.status_code == 200, (path, response.status_code)
        return response.text

    assert get(vip, port, "/api/admin/users").status_code == 403
    assert body("/api/users") == "api"
    assert body("/", headers={"X-Tenant": "blue"}) == "blue"
    assert body("/", headers={"X-Tenant": "blue-ish"}) == "main"
    assert body("/") == "main"
    old = get(vip, port, "/old")
    assert (old.status_code, old.headers["location"]) == (301, "https://new.example.com/landing?from=%2Fold")
    assert body("/old/") == "main"
    moved = get(vip, port, "/a/b?q=1", headers={"Host": "LEGACY.Example.com:8080"})
    assert (moved.status_code, moved.headers["location"]) == (308, "https://secure.example.com/a/b?q=1")
    assert body("/a", headers={"Host": "legacy.example.com.evil"}) == "main"
    assert body("/data/report.json") == "api"
    assert body("/data/json") == "main"  # no extension
    assert body("/data.json/x") == "main"  # the extension of the last segment only
    assert body("/data/report.json5") == "main"
    assert body("/inv/a") == "blue"
    assert body("/inv/a", headers={"X-Env": "prod"}) == "main"
    assert get(vip, port, "/secret/42").status_code == 403
    assert body("/secret/42x") == "main"
    assert body("/", headers={"Cookie": "a=1; features=alpha.beta.gamma"}) == "odd"
    assert body("/", headers={"X-Odd": hostile}) == "odd"  # a hostile value is data, matched exactly
    assert body("/", headers={"X-Odd": "a b"}) == "main"


def test_policy_pools_are_health_checked_pools_of_their_own(lab: Lab) -> None:
    main, api_one, api_two = lab.backend("main"), lab.backend("api-1"), lab.backend("api-2")
    monitor = {
        "name": "hm",
        "type": "HEALTH_MONITOR_HTTP",
        "send_interval": 1,
        "receive_timeout": 1,
        "successful_checks": 1,
        "failed_checks": 1,
    }
    lab.add("healthmonitor", "healthmonitor-l7", monitor)
    api_pool = lab.pool(
        "pool-api",
        member(api_one),
        member(api_two),
        health_monitor_refs=["/api/healthmonitor/healthmonitor-l7"],
    )
    to_api = lab.policy("REDIRECT_TO_POOL", match("PATH", "STARTS_WITH", "/api/"), redirect_pool_ref=api_pool)
    port = lab.port()
    lab.apply(port, pool_ref=lab.pool("pool-main", member(main)), http_policies=[to_api])
    view = lab.se.applier.applied_view
    assert view is not None
    (api_backend,) = [b["name"] for b in view["backends"] if b["pool_uuid"] == "pool-api"]
    for backend in (api_one, api_two):
        lab.se.wait_status(api_backend, server_name(backend.server_id), "UP")

    with client() as http:
        assert Counter(http.get(f"http://{lab.vip}:{port}/api/x").text for _ in range(20)) == Counter(
            {"api-1": 10, "api-2": 10}
        )
        api_two.kill()
        lab.se.wait_status(api_backend, server_name(api_two.server_id), "DOWN")
        assert {http.get(f"http://{lab.vip}:{port}/api/x").text for _ in range(10)} == {"api-1"}


def test_allowed_cidrs_refuse_other_sources(lab: Lab) -> None:
    web = lab.backend("web")
    port = lab.port()
    lab.apply(port, pool_ref=lab.pool("pool-main", member(web)), allowed_cidrs=[f"{ALLOWED_CLIENT}/32"])

    assert get(lab.vip, port, source=ALLOWED_CLIENT).text == "web"
    with pytest.raises(httpx.TransportError):
        get(lab.vip, port, source=OTHER_CLIENT)


def test_allowed_cidrs_on_an_l4_virtual_service(lab: Lab) -> None:
    web = lab.backend("web")
    port = lab.port()
    lab.apply(
        port,
        profile={"type": "APPLICATION_PROFILE_TYPE_L4"},
        pool_ref=lab.pool("pool-main", member(web)),
        allowed_cidrs=["10.0.0.0/8", f"{ALLOWED_CLIENT}/32"],
    )

    assert get(lab.vip, port, source=ALLOWED_CLIENT).text == "web"
    with pytest.raises(httpx.TransportError):
        get(lab.vip, port, source=OTHER_CLIENT)


def _proxy_v2(source: str, destination: str, source_port: int, destination_port: int) -> bytes:
    """A PROXY protocol v2 header (TCP over IPv4), as a scale-out distributor sends it."""
    addresses = socket.inet_aton(source) + socket.inet_aton(destination)
    payload = addresses + struct.pack("!HH", source_port, destination_port)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(payload)) + payload


def _worker_request(worker: str, port: int, claimed_source: str, vip: str, vip_port: int) -> bytes:
    with socket.create_connection((worker, port), timeout=5) as raw:
        raw.sendall(_proxy_v2(claimed_source, vip, 40000, vip_port))
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = b""
        try:
            while chunk := raw.recv(65536):
                response += chunk
        except ConnectionResetError:
            pass
        return response


def test_allowed_cidrs_see_the_real_client_behind_a_scale_out_distributor(lab: Lab) -> None:
    web = lab.backend("web")
    worker = random_address("127.101")
    port, offset = free_ports(lab.vip, [worker])
    spec = lab.spec(port, pool_ref=lab.pool("pool-main", member(web)), allowed_cidrs=[f"{ALLOWED_CLIENT}/32"])
    scaled = spec.model_copy(
        update={
            "role": VsRole.PRIMARY,
            "scaleout": ScaleOutSpec(
                worker_address=worker,
                worker_port_offset=offset,
                peers=(ScaleOutPeer(se_uuid="se-l7", address=worker),),
            ),
        }
    )
    lab.se.apply_ok(scaled)
    lab.se.wait_status(distributor_backend_name(VS_UUID), peer_server_name("se-l7"), "UP")

    # The distributor connects to the worker from its own address; the worker filters on the client
    # address the PROXY header carries, so the allowed client is served...
    assert get(lab.vip, port, source=ALLOWED_CLIENT).text == "web"
    assert {r["headers"]["x-forwarded-for"] for r in web.seen()} == {ALLOWED_CLIENT}
    # ...and the distributor refuses other clients at accept.
    with pytest.raises(httpx.TransportError):
        get(lab.vip, port, source=OTHER_CLIENT)
    # The worker refuses a PROXY header naming another client too (defence in depth).
    assert _worker_request(worker, port + offset, ALLOWED_CLIENT, lab.vip, port).startswith(b"HTTP/1.1 200")
    assert _worker_request(worker, port + offset, OTHER_CLIENT, lab.vip, port) == b""


def test_connection_limit_and_inserted_headers(lab: Lab) -> None:
    web = lab.backend("web")
    port = lab.port()
    lab.apply(
        port,
        pool_ref=lab.pool("pool-main", member(web)),
        connection_limit=1,
        insert_headers=["X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"],
        profile={"http_profile": {"xff_enabled": False}},  # insert_headers alone turn XFF on
    )
    request = b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((lab.vip, port), timeout=5, source_address=(ALLOWED_CLIENT, 0)) as first:
        first.sendall(request)
        assert first.recv(65536).startswith(b"HTTP/1.1 200")  # kept alive: it holds the only slot
        second = socket.create_connection((lab.vip, port), timeout=5, source_address=(ALLOWED_CLIENT, 0))
        with second:
            second.sendall(b"GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            second.settimeout(1.0)
            with pytest.raises(TimeoutError):
                second.recv(65536)  # queued by the kernel, not accepted while the first one is open
            first.close()
            second.settimeout(5)
            assert second.recv(65536).startswith(b"HTTP/1.1 200")

    seen = [r for r in web.seen() if r["path"] in ("/first", "/second")]
    assert [r["path"] for r in seen] == ["/first", "/second"]
    for r in seen:
        assert r["headers"]["x-forwarded-for"] == ALLOWED_CLIENT
        assert r["headers"]["x-forwarded-port"] == str(port)
        assert r["headers"]["x-forwarded-proto"] == "http"


def test_weight_zero_gets_no_new_requests_and_backup_serves_only_when_the_primary_is_down(lab: Lab) -> None:
    primary, idle, spare = lab.backend("primary"), lab.backend("idle"), lab.backend("spare")
    monitor = {
        "name": "hm",
        "type": "HEALTH_MONITOR_TCP",
        "send_interval": 1,
        "receive_timeout": 1,
        "successful_checks": 1,
        "failed_checks": 1,
    }
    lab.add("healthmonitor", "healthmonitor-tcp", monitor)
    members = [member(primary), member(idle, ratio=1), member(spare, backup=True)]
    pool = lab.pool("pool-main", *members, health_monitor_refs=["/api/healthmonitor/healthmonitor-tcp"])
    port = lab.port()
    lab.apply(port, pool_ref=pool)
    backend = backend_name(VS_UUID)
    for started in (primary, idle, spare):
        lab.se.wait_status(backend, server_name(started.server_id), "UP")

    def answers(count: int) -> Counter[str]:
        with client() as http:
            return Counter(
                http.get(f"http://{lab.vip}:{port}/", headers={"Connection": "close"}).text
                for _ in range(count)
            )

    assert answers(20) == Counter({"primary": 10, "idle": 10})  # the backup is not used
    # Weight 0 (a runtime change, no reload): the member takes no new requests but stays checked.
    members[1]["ratio"] = 0
    lab.pool("pool-main", *members, health_monitor_refs=["/api/healthmonitor/healthmonitor-tcp"])
    result = lab.se.apply(lab.spec(port, pool_ref=pool))
    assert result.ok and not result.reloaded, result
    assert answers(20) == Counter({"primary": 20})
    assert lab.se.stat(backend, server_name(idle.server_id))["status"] == "UP"
    # With the only weighted member down, the backup serves; the weight-0 member still gets nothing.
    primary.kill()
    lab.se.wait_status(backend, server_name(primary.server_id), "DOWN")
    assert answers(20) == Counter({"spare": 20})
