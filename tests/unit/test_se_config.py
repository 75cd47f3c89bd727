"""Stored objects -> SE wire config: algorithms, monitors, persistence, certificates, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from fulcrum.controller.services import se_config
from fulcrum.controller.services.bootstrap import DEFAULT_OBJECTS
from fulcrum.controller.store.repo import StoredObject
from fulcrum.model import objects as schemas
from fulcrum.protocol import se as wire


def obj(
    type_name: str, uuid: str, schema: type[Any], body: dict[str, Any], secrets: dict[str, Any] | None = None
) -> StoredObject:
    data = schema.model_validate(body).model_dump(mode="json")
    for secret in ("key", "key_passphrase"):
        data.pop(secret, None)
    stored = StoredObject(uuid=uuid, type=type_name, tenant_uuid="tenant-t", name=body["name"], data=data)
    stored.secrets = secrets  # type: ignore[assignment]
    return stored


def world(*items: StoredObject) -> dict[str, StoredObject]:
    return {o.uuid: o for o in items}


PROFILE_HTTP = obj("applicationprofile", "ap-http", schemas.ApplicationProfile, {"name": "http"})
PROFILE_L4 = obj(
    "applicationprofile",
    "ap-l4",
    schemas.ApplicationProfile,
    {"name": "l4", "type": "APPLICATION_PROFILE_TYPE_L4"},
)
PROFILE_DNS = obj(
    "applicationprofile",
    "ap-dns",
    schemas.ApplicationProfile,
    {"name": "dns", "type": "APPLICATION_PROFILE_TYPE_DNS"},
)
VSVIP = obj("vsvip", "vsvip-1", schemas.VsVip, {"name": "v", "vip": [{"ip_address": "127.100.0.9"}]})


def pool(**fields: Any) -> StoredObject:
    body = {
        "name": "p",
        "servers": [{"ip": "10.0.0.1", "port": 8080}, {"ip": "fd00::5", "ratio": 3}],
        **fields,
    }
    return obj("pool", "pool-1", schemas.Pool, body)


def vs(**fields: Any) -> StoredObject:
    body = {
        "name": "web",
        "services": [{"port": 80}],
        "vsvip_ref": "/api/vsvip/vsvip-1",
        "pool_ref": "/api/pool/pool-1",
        "application_profile_ref": "/api/applicationprofile/ap-http",
        **fields,
    }
    return obj("virtualservice", "virtualservice-1", schemas.VirtualService, body)


def build(
    items: dict[str, StoredObject], target: StoredObject | None = None, keys: dict[str, str] | None = None
) -> wire.VsSpec:
    return se_config.vs_spec(target or vs(), items.get, lambda o: {"key": (keys or {}).get(o.uuid)})


@pytest.mark.parametrize(
    ("algorithm", "hash_kind", "expected"),
    [
        ("LB_ALGORITHM_ROUND_ROBIN", None, wire.Algorithm.ROUND_ROBIN),
        ("LB_ALGORITHM_LEAST_CONNECTIONS", None, wire.Algorithm.LEAST_CONNECTIONS),
        ("LB_ALGORITHM_RANDOM", None, wire.Algorithm.RANDOM),
        (
            "LB_ALGORITHM_CONSISTENT_HASH",
            "LB_ALGORITHM_CONSISTENT_HASH_SOURCE_IP_ADDRESS",
            wire.Algorithm.HASH_SOURCE_IP,
        ),
        ("LB_ALGORITHM_CONSISTENT_HASH", "LB_ALGORITHM_CONSISTENT_HASH_URI", wire.Algorithm.HASH_URI),
    ],
)
def test_algorithms(algorithm: str, hash_kind: str | None, expected: wire.Algorithm) -> None:
    fields: dict[str, Any] = {"lb_algorithm": algorithm}
    if hash_kind:
        fields["lb_algorithm_hash"] = hash_kind
    spec = build(world(PROFILE_HTTP, VSVIP, pool(**fields)))
    assert spec.pool is not None and spec.pool.algorithm == expected


def test_servers_weights_default_port_and_ipv6_ids() -> None:
    spec = build(world(PROFILE_HTTP, VSVIP, pool(default_server_port=9000)))
    assert spec.pool is not None
    assert [(s.id, s.port, s.weight) for s in spec.pool.servers] == [
        ("10.0.0.1:8080", 8080, 1),
        ("[fd00::5]:9000", 9000, 3),
    ]
    assert spec.vips == ("127.100.0.9",)
    assert spec.app_type == wire.AppType.HTTP and spec.http is not None and spec.http.xff_enabled


def test_monitors_and_persistence() -> None:
    hm = obj(
        "healthmonitor", "hm-1", schemas.HealthMonitor,
        {"name": "h", "type": "HEALTH_MONITOR_HTTP", "send_interval": 5, "receive_timeout": 2,
         "http_monitor": {"http_request": "GET /healthz HTTP/1.1", "http_response_code": ["HTTP_2XX"],
                          "http_request_host": "web.example"}},
    )  # fmt: skip
    cookie = obj(
        "applicationpersistenceprofile", "pp-1", schemas.ApplicationPersistenceProfile,
        {"name": "c", "persistence_type": "PERSISTENCE_TYPE_HTTP_COOKIE",
         "http_cookie_persistence_profile": {"cookie_name": "SRV", "timeout": 10}},
    )  # fmt: skip
    p = pool(
        health_monitor_refs=["/api/healthmonitor/hm-1"], application_persistence_profile_ref="/api/x/pp-1"
    )
    spec = build(world(PROFILE_HTTP, VSVIP, p, hm, cookie))
    assert spec.pool is not None
    (monitor,) = spec.pool.monitors
    assert (monitor.type, monitor.interval_s, monitor.timeout_s, monitor.http_request, monitor.http_host) == (
        wire.MonitorType.HTTP, 5, 2, "GET /healthz HTTP/1.1", "web.example"
    )  # fmt: skip
    assert monitor.http_status_classes == (2,)
    assert spec.pool.persistence == wire.PersistenceSpec(
        kind=wire.PersistenceKind.HTTP_COOKIE, cookie_name="SRV", cookie_max_age_s=600
    )


def _monitor_spec(body: dict[str, Any]) -> wire.MonitorSpec:
    hm = obj("healthmonitor", "hm-1", schemas.HealthMonitor, {"name": "h", **body})
    spec = build(world(PROFILE_HTTP, VSVIP, pool(health_monitor_refs=["/api/healthmonitor/hm-1"]), hm))
    assert spec.pool is not None
    (monitor,) = spec.pool.monitors
    return monitor


def test_tls_hello_monitors_reach_the_spec_with_their_port() -> None:
    monitor = _monitor_spec({"type": "HEALTH_MONITOR_TLS_HELLO", "monitor_port": 8443})
    assert (monitor.type, monitor.port) == (wire.MonitorType.TLS_HELLO, 8443)


def test_connect_only_monitors_chain_after_the_http_ones() -> None:
    tls = obj(
        "healthmonitor", "hm-tls", schemas.HealthMonitor, {"name": "tls", "type": "HEALTH_MONITOR_TLS_HELLO"}
    )
    http = obj(
        "healthmonitor", "hm-http", schemas.HealthMonitor, {"name": "web", "type": "HEALTH_MONITOR_HTTP"}
    )
    items = world(PROFILE_HTTP, VSVIP, tls, http)
    last = pool(health_monitor_refs=["/api/healthmonitor/hm-http", "/api/healthmonitor/hm-tls"])
    spec = build({**items, "pool-1": last})
    assert spec.pool is not None
    assert [m.type for m in spec.pool.monitors] == [wire.MonitorType.HTTP, wire.MonitorType.TLS_HELLO]
    first = pool(health_monitor_refs=["/api/healthmonitor/hm-tls", "/api/healthmonitor/hm-http"])
    with pytest.raises(se_config.Unsupported, match=r"'tls' .* must come after the pool's HTTP"):
        build({**items, "pool-1": first})


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        (None, ()),  # the classes decide
        ("200", (200,)),
        ("200-204", (200, 201, 202, 203, 204)),
        ("301,200,202", (200, 202, 301)),
    ],
)
def test_exact_status_codes_are_expanded_for_the_se(codes: str | None, expected: tuple[int, ...]) -> None:
    http = {"http_response_code": ["HTTP_2XX"], **({"http_response_codes": codes} if codes else {})}
    for kind, sub in (("HEALTH_MONITOR_HTTP", "http_monitor"), ("HEALTH_MONITOR_HTTPS", "https_monitor")):
        monitor = _monitor_spec({"type": kind, sub: http})
        assert (monitor.http_status_codes, monitor.http_status_classes) == (expected, (2,))


def test_app_cookie_persistence_reaches_the_spec_in_seconds() -> None:
    app = obj(
        "applicationpersistenceprofile", "pp-1", schemas.ApplicationPersistenceProfile,
        {"name": "a", "persistence_type": "PERSISTENCE_TYPE_APP_COOKIE",
         "app_cookie_persistence_profile": {"cookie_name": "JSESSIONID", "timeout": 15}},
    )  # fmt: skip
    spec = build(world(PROFILE_HTTP, VSVIP, pool(application_persistence_profile_ref="/api/x/pp-1"), app))
    assert spec.pool is not None
    assert spec.pool.persistence == wire.PersistenceSpec(
        kind=wire.PersistenceKind.APP_COOKIE, cookie_name="JSESSIONID", app_cookie_timeout_s=900
    )


def test_the_builtin_plain_http_profile_inserts_no_headers() -> None:
    (body,) = [
        b for t, b, _ in DEFAULT_OBJECTS if t == "applicationprofile" and b["name"] == "System-HTTP-Plain"
    ]
    plain = obj("applicationprofile", "ap-plain", schemas.ApplicationProfile, body)
    spec = build(world(plain, VSVIP, pool()), vs(application_profile_ref="/api/x/ap-plain"))
    assert spec.app_type == wire.AppType.HTTP
    assert spec.http == wire.HttpSettings(xff_enabled=False)
    # A VS can still ask for X-Forwarded-For itself.
    target = vs(application_profile_ref="/api/x/ap-plain", insert_headers=["X-Forwarded-For"])
    assert build(world(plain, VSVIP, pool()), target).http == wire.HttpSettings()


def test_certificates_carry_their_key() -> None:
    cert = StoredObject(
        uuid="cert-1", type="sslkeyandcertificate", tenant_uuid="tenant-t", name="c",
        data={"certificate": {"certificate": "PEM"}, "type": "SSL_CERTIFICATE_TYPE_VIRTUALSERVICE"},
    )  # fmt: skip
    target = vs(services=[{"port": 443, "enable_ssl": True}], ssl_key_and_certificate_refs=["/api/x/cert-1"])
    spec = build(world(PROFILE_HTTP, VSVIP, pool(), cert), target, keys={"cert-1": "KEY"})
    assert spec.listeners[0].tls
    assert [(c.certificate_pem, c.key_pem) for c in spec.certificates] == [("PEM", "KEY")]
    with pytest.raises(se_config.Unsupported, match="no private key"):
        build(world(PROFILE_HTTP, VSVIP, pool(), cert), target, keys={})


@pytest.mark.parametrize(
    ("items", "target", "reason"),
    [
        (world(PROFILE_DNS, VSVIP, pool()), vs(application_profile_ref="/api/x/ap-dns"), "not supported"),
        (world(PROFILE_HTTP, pool()), vs(), "no enabled VIP"),
        (
            world(PROFILE_HTTP, VSVIP, pool(lb_algorithm="LB_ALGORITHM_FASTEST_RESPONSE")),
            vs(),
            "not supported",
        ),
    ],
    ids=["dns-profile", "no-vip", "unsupported-algorithm"],
)
def test_unsupported_configurations_are_refused_with_a_reason(
    items: dict[str, StoredObject], target: StoredObject, reason: str
) -> None:
    with pytest.raises(se_config.Unsupported, match=reason):
        build(items, target)


def test_l4_and_disabled() -> None:
    spec = build(
        world(PROFILE_L4, VSVIP, pool()), vs(application_profile_ref="/api/x/ap-l4", traffic_enabled=False)
    )
    assert spec.app_type == wire.AppType.L4 and spec.http is None and not spec.enabled


# --- members, access, limits and HTTP policies ----------------------------------------------------

MATCH = {"match_id": "0b5d6c1e-3f7a-4e2b-9c8d-1a2b3c4d5e6f", "type": "PATH", "compare_type": "STARTS_WITH"}


def policy(uuid: str, action: str, *values: str, enabled: bool = True, **fields: Any) -> StoredObject:
    matches = [
        {**MATCH, "match_id": f"{MATCH['match_id'][:-1]}{i}", "value": v} for i, v in enumerate(values)
    ]
    body = {"name": uuid, "action": action, "enabled": enabled, "matches": matches, **fields}
    return obj("httppolicyset", uuid, schemas.HttpPolicySet, body)


def other_pool(uuid: str) -> StoredObject:
    return obj("pool", uuid, schemas.Pool, {"name": uuid, "servers": [{"ip": "10.0.1.1", "port": 80}]})


def test_members_carry_weight_zero_and_backup() -> None:
    servers = [{"ip": "10.0.0.1", "ratio": 0, "name": "m1"}, {"ip": "10.0.0.2", "backup": True}]
    spec = build(world(PROFILE_HTTP, VSVIP, pool(servers=servers)))
    assert spec.pool is not None
    assert [(s.weight, s.backup) for s in spec.pool.servers] == [(0, False), (1, True)]


def test_access_limits_and_timeouts_reach_the_spec() -> None:
    target = vs(
        allowed_cidrs=["10.0.0.0/8", "fd00::1/8"],
        connection_limit=500,
        timeout_client_ms=1000,
        timeout_server_connect_ms=2000,
        timeout_server_ms=3000,
        timeout_tcp_inspect_ms=0,
    )
    spec = build(world(PROFILE_HTTP, VSVIP, pool()), target)
    assert spec.allowed_cidrs == ("10.0.0.0/8", "fd00::/8")
    assert (spec.connection_limit, spec.timeout_client_ms, spec.timeout_connect_ms) == (500, 1000, 2000)
    assert (spec.timeout_server_ms, spec.tcp_inspect_delay_ms) == (3000, 0)
    default = build(world(PROFILE_HTTP, VSVIP, pool()))
    assert (
        default.allowed_cidrs == () and default.connection_limit is None and default.timeout_client_ms is None
    )


@pytest.mark.parametrize(
    ("profile", "inserted", "expected"),
    [
        ({}, [], (True, False, False)),  # the default profile inserts X-Forwarded-For
        ({"xff_enabled": False}, [], (False, False, False)),
        ({"xff_enabled": False}, ["X-Forwarded-For"], (True, False, False)),
        ({"xff_enabled": False}, ["X-Forwarded-Port", "X-Forwarded-Proto"], (False, True, True)),
        ({"x_forwarded_proto_enabled": True}, [], (True, False, True)),
    ],
)
def test_insert_headers_and_the_profile_each_turn_headers_on(
    profile: dict[str, Any], inserted: list[str], expected: tuple[bool, bool, bool]
) -> None:
    http = obj(
        "applicationprofile", "ap-custom", schemas.ApplicationProfile, {"name": "h", "http_profile": profile}
    )
    target = vs(application_profile_ref="/api/x/ap-custom", insert_headers=inserted)
    spec = build(world(http, VSVIP, pool()), target)
    assert spec.http is not None
    assert (spec.http.xff_enabled, spec.http.x_forwarded_port, spec.http.x_forwarded_proto) == expected


def test_policies_keep_their_order_and_bring_the_pools_they_route_to() -> None:
    items = world(
        PROFILE_HTTP, VSVIP, pool(), other_pool("pool-2"),
        policy("httppolicyset-a", "REDIRECT_TO_POOL", "/api", redirect_pool_ref="/api/pool/pool-2"),
        policy(
            "httppolicyset-b", "REDIRECT_TO_URL", "/old",
            redirect_url="https://a.example/", redirect_http_code=301,
        ),
        policy("httppolicyset-c", "REDIRECT_TO_POOL", "/main", redirect_pool_ref="/api/pool/pool-1"),
        policy("httppolicyset-d", "REDIRECT_TO_POOL", "/again", redirect_pool_ref="/api/pool/pool-2"),
        policy("httppolicyset-e", "REDIRECT_PREFIX", "/p", redirect_prefix="https://b.example"),
        policy("httppolicyset-f", "REJECT", "/admin"),
    )  # fmt: skip
    refs = [f"/api/httppolicyset/httppolicyset-{x}" for x in "fabcde"]
    spec = build(items, vs(http_policies=refs))
    assert [(p.uuid[-1], p.action, p.pool_uuid, p.location, p.redirect_code) for p in spec.http_policies] == [
        ("f", wire.PolicyAction.REJECT, None, None, 302),
        ("a", wire.PolicyAction.POOL, "pool-2", None, 302),
        ("b", wire.PolicyAction.REDIRECT_URL, None, "https://a.example/", 301),
        ("c", wire.PolicyAction.POOL, "pool-1", None, 302),
        ("d", wire.PolicyAction.POOL, "pool-2", None, 302),
        ("e", wire.PolicyAction.REDIRECT_PREFIX, None, "https://b.example", 302),
    ]
    assert [p.uuid for p in spec.extra_pools] == ["pool-2"]  # once, and never the default pool
    assert spec.http_policies[1].matches == (
        wire.HttpMatchSpec(type=wire.MatchType.PATH, compare=wire.MatchCompare.STARTS_WITH, value="/api"),
    )


def test_policies_that_can_never_match_are_left_out() -> None:
    disabled_match = obj(
        "httppolicyset", "httppolicyset-m", schemas.HttpPolicySet,
        {"name": "m", "action": "REJECT", "matches": [{**MATCH, "value": "/x", "enabled": False}]},
    )  # fmt: skip
    items = world(
        PROFILE_HTTP, VSVIP, pool(), other_pool("pool-2"), disabled_match,
        policy(
            "httppolicyset-off", "REDIRECT_TO_POOL", "/x", enabled=False, redirect_pool_ref="/api/pool/pool-2"
        ),
        policy("httppolicyset-empty", "REJECT"),
    )  # fmt: skip
    refs = ["/api/x/httppolicyset-m", "/api/x/httppolicyset-off", "/api/x/httppolicyset-empty"]
    spec = build(items, vs(http_policies=refs))
    assert spec.http_policies == () and spec.extra_pools == ()  # nor the pool only a disabled policy uses


def test_a_vs_whose_only_pool_is_a_policys() -> None:
    items = world(
        PROFILE_HTTP, VSVIP, other_pool("pool-2"),
        policy("httppolicyset-a", "REDIRECT_TO_POOL", "/", redirect_pool_ref="/api/pool/pool-2"),
    )  # fmt: skip
    spec = build(items, vs(pool_ref=None, http_policies=["/api/x/httppolicyset-a"]))
    assert spec.pool is None and [p.uuid for p in spec.extra_pools] == ["pool-2"]


@pytest.mark.parametrize(
    "fields",
    [{"http_policies": ["/api/x/httppolicyset-r"]}, {"insert_headers": ["X-Forwarded-Port"]}],
    ids=["policies", "insert-headers"],
)
def test_http_features_on_an_l4_vs_are_refused(fields: dict[str, Any]) -> None:
    items = world(PROFILE_L4, VSVIP, pool(), policy("httppolicyset-r", "REJECT", "/"))
    with pytest.raises(se_config.Unsupported, match="need an HTTP application profile"):
        build(items, vs(application_profile_ref="/api/x/ap-l4", **fields))
