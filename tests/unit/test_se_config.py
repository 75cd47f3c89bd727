"""Stored objects -> SE wire config: algorithms, monitors, persistence, certificates, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from fulcrum.controller.services import se_config
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
