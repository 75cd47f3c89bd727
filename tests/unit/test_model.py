"""Validation rules of the object schemas, and discovery of reference and secret fields."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from fulcrum.model import objects
from fulcrum.model.registry import TYPES

# --- helpers --------------------------------------------------------------------------------------


def _valid(schema: type[BaseModel], body: dict[str, Any], **context: Any) -> BaseModel:
    return schema.model_validate(body, context=context or None)


def _invalid(schema: type[BaseModel], body: dict[str, Any], **context: Any) -> str:
    """Assert the body is refused; return the error text so a test can check what was named."""
    with pytest.raises(ValidationError) as caught:
        schema.model_validate(body, context=context or None)
    return str(caught.value)


def _pool(*servers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "web", "servers": list(servers), **extra}


# --- names ----------------------------------------------------------------------------------------

GOOD_NAMES = [
    pytest.param("a", id="one-char"),
    pytest.param("x" * 255, id="255-chars"),
    pytest.param("web pool", id="inner-space"),
    pytest.param("Ünïcødé-名前-Ωμέγα", id="unicode-letters"),
    pytest.param("pool.web_1-a", id="punctuation"),
]

BAD_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("x" * 256, id="256-chars"),
    pytest.param(" web", id="leading-space"),
    pytest.param("web ", id="trailing-space"),
    pytest.param("   ", id="blank"),
    pytest.param("web\npool", id="LF"),
    pytest.param("web\r\npool", id="CRLF"),
    pytest.param("web\rpool", id="CR"),
    pytest.param("web\tpool", id="tab"),
    pytest.param("web\x00pool", id="NUL"),
    pytest.param("web\x1bpool", id="ESC"),
    pytest.param("web\x7fpool", id="DEL"),
    pytest.param("web\x85pool", id="NEL-C1"),
    pytest.param("web\u2028pool", id="U+2028"),
    pytest.param("web\u2029pool", id="U+2029"),
]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_name_accepted(name: str) -> None:
    assert _valid(objects.Tenant, {"name": name}).name == name  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_name_refused(name: str) -> None:
    assert "name" in _invalid(objects.Tenant, {"name": name})


@pytest.mark.parametrize("name", [pytest.param(123, id="int"), pytest.param(None, id="null")])
def test_name_must_be_a_string(name: object) -> None:
    _invalid(objects.Pool, {"name": name})


@pytest.mark.parametrize(
    ("description", "ok"),
    [
        pytest.param("line one\nline two", True, id="newline-allowed"),
        pytest.param("tab\tseparated", True, id="tab-allowed"),
        pytest.param("x" * 1024, True, id="1024-chars"),
        pytest.param("x" * 1025, False, id="1025-chars"),
        pytest.param("bell\x07", False, id="control-char"),
        pytest.param("sep\u2028arator", False, id="U+2028"),
    ],
)
def test_description(description: str, ok: bool) -> None:
    body = {"name": "t", "description": description}
    if ok:
        _valid(objects.Tenant, body)
    else:
        assert "description" in _invalid(objects.Tenant, body)


# --- addresses and ports --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        pytest.param("10.0.0.1", "10.0.0.1", id="ipv4"),
        pytest.param("2001:DB8:0:0:0:0:0:1", "2001:db8::1", id="ipv6-compressed-lowercase"),
        pytest.param("2001:db8::0001", "2001:db8::1", id="ipv6-leading-zeros"),
        pytest.param("FE80::1", "fe80::1", id="ipv6-upper"),
        pytest.param("::1", "::1", id="ipv6-loopback"),
    ],
)
def test_ip_normalised(given: str, stored: str) -> None:
    pool = _valid(objects.Pool, _pool({"ip": given}))
    assert pool.servers[0].ip == stored  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("10.0.0.256", id="octet-too-big"),
        pytest.param("010.0.0.1", id="leading-zero-octal-ambiguity"),
        pytest.param("10.0.0", id="three-octets"),
        pytest.param("10.0.0.1/32", id="cidr-not-address"),
        pytest.param("web.example.com", id="hostname"),
        pytest.param("2001:db8:::1", id="bad-ipv6"),
        pytest.param(" 10.0.0.1", id="leading-space"),
        pytest.param("", id="empty"),
    ],
)
def test_ip_refused(address: str) -> None:
    assert "servers.0.ip" in _invalid(objects.Pool, _pool({"ip": address}))


@pytest.mark.parametrize(
    ("port", "ok"),
    [
        pytest.param(0, False, id="0"),
        pytest.param(1, True, id="1"),
        pytest.param(65535, True, id="65535"),
        pytest.param(65536, False, id="65536"),
        pytest.param(-1, False, id="negative"),
        pytest.param(80.5, False, id="fraction"),
        pytest.param("eighty", False, id="word"),
    ],
)
def test_port_range(port: object, ok: bool) -> None:
    body = _pool({"ip": "10.0.0.1", "port": port}, default_server_port=port)
    if ok:
        _valid(objects.Pool, body)
    else:
        text = _invalid(objects.Pool, body)
        assert "servers.0.port" in text
        assert "default_server_port" in text
        _invalid(objects.VirtualService, {"name": "vs", "services": [{"port": port}], "vsvip_ref": "v"})


@pytest.mark.parametrize(
    ("network", "stored"),
    [
        pytest.param("10.1.2.3/16", "10.1.0.0/16", id="host-bits-dropped"),
        pytest.param("2001:DB8::/32", "2001:db8::/32", id="ipv6"),
    ],
)
def test_network_normalised(network: str, stored: str) -> None:
    cloud = _valid(objects.Cloud, {"name": "c", "local_configuration": {"vip_network": network}})
    assert cloud.local_configuration.vip_network == stored  # type: ignore[attr-defined]


# --- reserved addresses ---------------------------------------------------------------------------

METADATA = "169.254.169.254"
EXTRA = {"reserved_networks": ("10.99.0.0/16", "fd99::/64")}

RESERVED = [
    pytest.param({"ip": METADATA}, {}, "servers[0].ip", id="metadata-ip"),
    pytest.param({"ip": "fd00:ec2::254"}, {}, "servers[0].ip", id="metadata-ipv6"),
    pytest.param(
        {"ip": "10.0.0.1", "monitor_address": METADATA},
        {},
        "servers[0].monitor_address",
        id="metadata-monitor",
    ),
    pytest.param({"ip": "10.99.3.4"}, EXTRA, "servers[0].ip", id="extra-network-ip"),
    pytest.param({"ip": "fd99::7"}, EXTRA, "servers[0].ip", id="extra-network-ipv6"),
    pytest.param(
        {"ip": "10.0.0.1", "monitor_address": "10.99.0.1"},
        EXTRA,
        "servers[0].monitor_address",
        id="extra-monitor",
    ),
    pytest.param({"ip": "224.0.0.1"}, {}, "servers[0].ip", id="multicast"),
    pytest.param({"ip": "0.0.0.0"}, {}, "servers[0].ip", id="unspecified"),  # noqa: S104
    pytest.param({"ip": "::"}, {}, "servers[0].ip", id="unspecified-ipv6"),
    # An IPv4-mapped IPv6 address reaches the IPv4 metadata service from a dual-stack socket.
    pytest.param({"ip": "::ffff:169.254.169.254"}, {}, "servers[0].ip", id="ipv4-mapped-metadata"),
    pytest.param({"ip": "::ffff:10.99.0.1"}, EXTRA, "servers[0].ip", id="ipv4-mapped-extra"),
]


@pytest.mark.parametrize(("server", "context", "where"), RESERVED)
def test_reserved_address_refused(server: dict[str, Any], context: dict[str, Any], where: str) -> None:
    from fulcrum.controller.services.objects import _format_validation

    with pytest.raises(ValidationError) as caught:
        objects.Pool.model_validate(_pool(server), context=context)
    assert _format_validation(caught.value).startswith(f"{where}:")


@pytest.mark.parametrize(
    ("server", "context"),
    [
        pytest.param({"ip": "169.254.169.253"}, {}, id="next-to-metadata"),
        pytest.param({"ip": "10.99.3.4"}, {}, id="extra-network-without-context"),
        pytest.param({"ip": "10.98.0.1", "monitor_address": "10.0.0.2"}, EXTRA, id="outside-extra-network"),
    ],
)
def test_unreserved_address_accepted(server: dict[str, Any], context: dict[str, Any]) -> None:
    objects.Pool.model_validate(_pool(server), context=context)


# --- pools ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("servers", "default_port", "ok"),
    [
        pytest.param(
            [{"ip": "10.0.0.1", "port": 80}, {"ip": "10.0.0.1", "port": 80}], 80, False, id="same-ip-port"
        ),
        pytest.param(
            [{"ip": "10.0.0.1"}, {"ip": "10.0.0.1", "port": 8080}], 8080, False, id="default-port-equal"
        ),
        pytest.param(
            [{"ip": "2001:db8::1"}, {"ip": "2001:DB8:0::1"}], 80, False, id="same-ipv6-other-spelling"
        ),
        pytest.param(
            [{"ip": "10.0.0.1", "port": 80}, {"ip": "10.0.0.1", "port": 81}], 80, True, id="other-port"
        ),
        pytest.param([{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], 80, True, id="other-ip"),
    ],
)
def test_duplicate_servers(servers: list[dict[str, Any]], default_port: int, ok: bool) -> None:
    body = _pool(*servers, default_server_port=default_port)
    if ok:
        _valid(objects.Pool, body)
    else:
        assert "duplicate server" in _invalid(objects.Pool, body)


@pytest.mark.parametrize(
    ("extra", "ok"),
    [
        pytest.param(
            {
                "lb_algorithm": "LB_ALGORITHM_CONSISTENT_HASH",
                "lb_algorithm_hash": "LB_ALGORITHM_CONSISTENT_HASH_CUSTOM_HEADER",
            },
            False,
            id="custom-header-without-header",
        ),
        pytest.param(
            {
                "lb_algorithm": "LB_ALGORITHM_CONSISTENT_HASH",
                "lb_algorithm_hash": "LB_ALGORITHM_CONSISTENT_HASH_CUSTOM_HEADER",
                "lb_algorithm_consistent_hash_hdr": "X-User",
            },
            True,
            id="custom-header-with-header",
        ),
        pytest.param(
            {
                "lb_algorithm": "LB_ALGORITHM_CONSISTENT_HASH",
                "lb_algorithm_hash": "LB_ALGORITHM_CONSISTENT_HASH_CUSTOM_HEADER",
                "lb_algorithm_consistent_hash_hdr": "X-User\r\nX-Evil: 1",
            },
            False,
            id="custom-header-injection",
        ),
        pytest.param({"lb_algorithm": "LB_ALGORITHM_CONSISTENT_HASH"}, True, id="source-ip-hash"),
        pytest.param({"lb_algorithm": "LB_ALGORITHM_ROUND_ROBIN"}, True, id="round-robin"),
        pytest.param({"lb_algorithm": "ROUND_ROBIN"}, False, id="enum-without-prefix"),
        pytest.param({"lb_algorithm": "lb_algorithm_round_robin"}, False, id="enum-lowercase"),
        pytest.param({"lb_algorithm": 1}, False, id="enum-int"),
        pytest.param({"health_monitor_refs": ["hm", "hm"]}, False, id="monitor-twice"),
        pytest.param({"graceful_disable_timeout": -2}, False, id="graceful-below-range"),
        pytest.param({"servers": [{"ip": "10.0.0.1", "ratio": 257}]}, False, id="ratio-above-range"),
        pytest.param({"servers": [{"ip": "10.0.0.1", "ratio": -1}]}, False, id="ratio-below-range"),
        pytest.param({"servers": [{"ip": "10.0.0.1", "ratio": 0}]}, True, id="ratio-zero-takes-nothing-new"),
        pytest.param({"servers": [{"ip": "10.0.0.1", "ratio": 256}]}, True, id="ratio-256"),
        pytest.param({"servers": [{"ip": "10.0.0.1", "backup": True}]}, True, id="backup-server"),
        pytest.param({"servers": [{"ip": "10.0.0.1", "name": "member one"}]}, True, id="server-name"),
        pytest.param({"servers": [{"ip": "10.0.0.1", "name": "a\nb"}]}, False, id="server-name-newline"),
        pytest.param(
            {"servers": [{"ip": "10.0.0.1", "external_uuid": "9f1c2a1e-8d7e-4c0b-9a55-2f0f3d1c5b6a"}]},
            True,
            id="external-uuid",
        ),
        pytest.param(
            {"servers": [{"ip": "10.0.0.1", "external_uuid": "9f1c2a1e8d7e4c0b9a552f0f3d1c5b6a"}]},
            True,
            id="external-uuid-hex",
        ),
        pytest.param(
            {"servers": [{"ip": "10.0.0.1", "external_uuid": "member-1; drop"}]},
            False,
            id="external-uuid-junk",
        ),
        pytest.param({"surprise": True}, False, id="unknown-field"),
        pytest.param({"servers": [{"ip": "10.0.0.1", "weight": 2}]}, False, id="unknown-nested-field"),
    ],
)
def test_pool_rules(extra: dict[str, Any], ok: bool) -> None:
    body = {"name": "web", **extra}
    if ok:
        _valid(objects.Pool, body)
    else:
        _invalid(objects.Pool, body)


# --- enums ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "body", "ok"),
    [
        pytest.param(objects.Cloud, {"name": "c", "vtype": "CLOUD_NETNS"}, True, id="cloud-vtype"),
        pytest.param(objects.Cloud, {"name": "c", "vtype": "CLOUD_AWS"}, False, id="cloud-vtype-unknown"),
        pytest.param(objects.HealthMonitor, {"name": "h", "type": "HEALTH_MONITOR_UDP"}, True, id="hm-type"),
        pytest.param(objects.HealthMonitor, {"name": "h", "type": "HTTP"}, False, id="hm-type-short"),
        pytest.param(objects.HealthMonitor, {"name": "h"}, False, id="hm-type-missing"),
        pytest.param(
            objects.ServiceEngineGroup, {"name": "g", "ha_mode": "HA_MODE_ACTIVE"}, False, id="ha-mode"
        ),
        pytest.param(
            objects.ApplicationProfile,
            {"name": "p", "type": "APPLICATION_PROFILE_TYPE_L7"},
            False,
            id="profile-type",
        ),
        pytest.param(
            objects.User,
            {"name": "u", "access": [{"tenant_ref": "admin", "role": "root"}]},
            False,
            id="role",
        ),
        pytest.param(
            objects.User,
            {"name": "u", "access": [{"tenant_ref": "admin", "role": "tenant-admin"}]},
            True,
            id="role-ok",
        ),
    ],
)
def test_enums(schema: type[BaseModel], body: dict[str, Any], ok: bool) -> None:
    if ok:
        _valid(schema, body)
    else:
        _invalid(schema, body)


# --- health monitors ------------------------------------------------------------------------------

HM = {"name": "hm", "type": "HEALTH_MONITOR_HTTP"}


@pytest.mark.parametrize(
    ("extra", "ok"),
    [
        pytest.param({"send_interval": 10, "receive_timeout": 4}, True, id="timeout-below-interval"),
        pytest.param({"send_interval": 10, "receive_timeout": 10}, False, id="timeout-equals-interval"),
        pytest.param({"send_interval": 5, "receive_timeout": 30}, False, id="timeout-above-interval"),
        # With a 1 s interval no timeout is shorter; a timeout far beyond it must still be refused.
        pytest.param({"send_interval": 1, "receive_timeout": 30}, False, id="timeout-far-above-1s-interval"),
        pytest.param({"http_monitor": {"http_request": "GET /healthz HTTP/1.1"}}, True, id="request-ok"),
        pytest.param({"http_monitor": {"http_request": "HEAD /"}}, True, id="request-without-version"),
        pytest.param(
            {"http_monitor": {"http_request": "GET /\r\nHost: x"}}, False, id="request-crlf-injection"
        ),
        pytest.param({"http_monitor": {"http_request": "GET /\nHost: x"}}, False, id="request-lf-injection"),
        pytest.param(
            {"http_monitor": {"http_request": "GET / HTTP/1.0\n"}}, False, id="request-trailing-newline"
        ),
        pytest.param(
            {"http_monitor": {"http_request": "GET /a b HTTP/1.1"}}, False, id="request-space-in-path"
        ),
        pytest.param({"http_monitor": {"http_request": "GET / HTTP/2.0"}}, False, id="request-bad-version"),
        pytest.param({"http_monitor": {"http_request": "DELETE /"}}, False, id="request-method"),
        pytest.param({"http_monitor": {"http_request": "GET http://x/"}}, False, id="request-absolute-uri"),
        pytest.param({"http_monitor": {"http_request_host": "bad host"}}, False, id="host-header-space"),
        pytest.param({"http_monitor": {"http_request_host": "Example.COM"}}, True, id="host-header-ok"),
        pytest.param({"http_monitor": {"http_response_code": []}}, False, id="no-response-codes"),
        pytest.param({"http_monitor": {"http_response_codes": "200"}}, True, id="exact-code"),
        pytest.param({"http_monitor": {"http_response_codes": "200-204"}}, True, id="exact-range"),
        pytest.param({"http_monitor": {"http_response_codes": "200,202,301"}}, True, id="exact-list"),
        pytest.param({"http_monitor": {"http_response_codes": "200,300-302"}}, True, id="exact-mixed"),
        pytest.param({"http_monitor": {"http_response_codes": "100-599"}}, True, id="exact-everything"),
        pytest.param({"http_monitor": {"http_response_codes": ""}}, False, id="exact-empty"),
        pytest.param({"http_monitor": {"http_response_codes": "099"}}, False, id="exact-below-100"),
        pytest.param({"http_monitor": {"http_response_codes": "200-600"}}, False, id="exact-above-599"),
        pytest.param({"http_monitor": {"http_response_codes": "204-200"}}, False, id="exact-backwards"),
        pytest.param({"http_monitor": {"http_response_codes": "200, 201"}}, False, id="exact-space"),
        pytest.param({"http_monitor": {"http_response_codes": "200,"}}, False, id="exact-trailing-comma"),
        pytest.param({"http_monitor": {"http_response_codes": "2000"}}, False, id="exact-four-digits"),
        pytest.param({"http_monitor": {"http_response_codes": "200-"}}, False, id="exact-open-range"),
        pytest.param(
            {"http_monitor": {"http_response_codes": "200-201-202"}}, False, id="exact-double-range"
        ),
        pytest.param(
            {"http_monitor": {"http_response_codes": "\uff12\uff10\uff10"}},
            False,
            id="exact-fullwidth-digits",
        ),
        pytest.param({"http_monitor": {"http_response_codes": "200\n"}}, False, id="exact-newline"),
        pytest.param({"http_monitor": {"http_response_codes": 200}}, False, id="exact-number"),
        pytest.param({"https_monitor": {}}, False, id="https-monitor-on-http-type"),
        pytest.param({"monitor_port": 0}, False, id="monitor-port-0"),
    ],
)
def test_health_monitor(extra: dict[str, Any], ok: bool) -> None:
    body = {**HM, **extra}
    if ok:
        _valid(objects.HealthMonitor, body)
    else:
        _invalid(objects.HealthMonitor, body)


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("200", (200,)),
        ("200-204", (200, 201, 202, 203, 204)),
        ("301,200,202", (200, 202, 301)),
        ("200-202,201,404", (200, 201, 202, 404)),
        ("599-599", (599,)),
    ],
)
def test_expected_status_codes_expand_ranges_sorted_and_distinct(text: str, codes: tuple[int, ...]) -> None:
    assert objects.expected_status_codes(text) == codes


def test_expected_status_codes_span_at_most_every_code_from_100_to_599() -> None:
    every = ",".join(str(code) for code in range(100, 600))
    assert len(every) <= objects.STATUS_CODES_MAX_LENGTH
    assert objects.expected_status_codes(every) == tuple(range(100, 600))
    assert objects.expected_status_codes("100-599") == tuple(range(100, 600))


@pytest.mark.parametrize("monitor_type", ["HEALTH_MONITOR_TLS_HELLO", "HEALTH_MONITOR_TCP"])
def test_connection_monitors_take_no_http_settings(monitor_type: str) -> None:
    plain = objects.HealthMonitor.model_validate({"name": "t", "type": monitor_type, "monitor_port": 8443})
    assert (plain.http_monitor, plain.https_monitor) == (None, None)
    for sub in ("http_monitor", "https_monitor"):
        _invalid(objects.HealthMonitor, {"name": "t", "type": monitor_type, sub: {}})


def test_health_monitor_defaults() -> None:
    hm = objects.HealthMonitor.model_validate(HM)
    assert hm.http_monitor is not None
    assert hm.http_monitor.http_request == "HEAD / HTTP/1.0"
    assert hm.http_monitor.http_request_host is None
    with_host = objects.HealthMonitor.model_validate({**HM, "http_monitor": {"http_request_host": "Ex.COM"}})
    assert with_host.http_monitor is not None
    assert with_host.http_monitor.http_request_host == "ex.com"
    tcp = objects.HealthMonitor.model_validate({"name": "t", "type": "HEALTH_MONITOR_TCP"})
    assert tcp.http_monitor is None
    assert tcp.https_monitor is None


# --- SE groups ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "min_scaleout"),
    [
        pytest.param({}, 1, id="shared-default-1"),
        pytest.param({"ha_mode": "HA_MODE_SHARED_PAIR"}, 2, id="pair-default-2"),
        pytest.param({"ha_mode": "HA_MODE_SHARED_PAIR", "min_scaleout_per_vs": 3}, 3, id="pair-explicit-3"),
        pytest.param({"ha_mode": "HA_MODE_LEGACY_ACTIVE_STANDBY"}, 1, id="legacy-default-1"),
    ],
)
def test_se_group_scaleout_default(extra: dict[str, Any], min_scaleout: int) -> None:
    group = objects.ServiceEngineGroup.model_validate({"name": "g", **extra})
    assert group.min_scaleout_per_vs == min_scaleout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(
            {"ha_mode": "HA_MODE_SHARED_PAIR", "min_scaleout_per_vs": 1}, "at least 2", id="pair-explicit-1"
        ),
        pytest.param(
            {"ha_mode": "HA_MODE_SHARED_PAIR", "max_scaleout_per_vs": 1}, "must not exceed", id="pair-max-1"
        ),
        pytest.param(
            {"min_scaleout_per_vs": 5, "max_scaleout_per_vs": 4}, "must not exceed", id="min-above-max"
        ),
        pytest.param({"min_cpu_usage": 80, "max_cpu_usage": 80}, "min_cpu_usage", id="cpu-equal"),
        pytest.param({"min_cpu_usage": 90, "max_cpu_usage": 50}, "min_cpu_usage", id="cpu-inverted"),
        pytest.param({"min_scaleout_per_vs": 0}, "min_scaleout_per_vs", id="min-scaleout-0"),
        pytest.param({"se_name_prefix": "1abc"}, "se_name_prefix", id="prefix-starts-with-digit"),
        pytest.param({"se_name_prefix": "a b"}, "se_name_prefix", id="prefix-space"),
        pytest.param({"heartbeat_interval": 0}, "heartbeat_interval", id="heartbeat-0"),
        pytest.param({"heartbeat_interval": float("nan")}, "heartbeat_interval", id="heartbeat-nan"),
        pytest.param({"se_deprovision_delay": float("inf")}, "se_deprovision_delay", id="delay-inf"),
    ],
)
def test_se_group_refused(extra: dict[str, Any], message: str) -> None:
    assert message in _invalid(objects.ServiceEngineGroup, {"name": "g", **extra})


# --- virtual services and VIPs --------------------------------------------------------------------

VS = {"name": "vs", "vsvip_ref": "vip"}


@pytest.mark.parametrize(
    ("extra", "ok"),
    [
        pytest.param({"services": [{"port": 80}, {"port": 443}]}, True, id="two-ports"),
        pytest.param({"services": [{"port": 80}, {"port": 80}]}, False, id="same-port"),
        pytest.param(
            {"services": [{"port": 80, "port_range_end": 90}, {"port": 85}]}, False, id="range-overlap"
        ),
        pytest.param(
            {"services": [{"port": 85}, {"port": 80, "port_range_end": 85}]}, False, id="range-overlap-at-end"
        ),
        pytest.param(
            {"services": [{"port": 80, "port_range_end": 90}, {"port": 91}]}, True, id="adjacent-range"
        ),
        pytest.param({"services": [{"port": 90, "port_range_end": 80}]}, False, id="inverted-range"),
        pytest.param({"services": []}, False, id="no-services"),
        pytest.param({"services": [{"port": 443, "enable_ssl": True}]}, False, id="ssl-without-cert"),
        pytest.param(
            {"services": [{"port": 443, "enable_ssl": True}], "ssl_key_and_certificate_refs": ["c"]},
            True,
            id="ssl-with-cert",
        ),
        pytest.param(
            {"services": [{"port": 80}], "vip": [{"ip_address": "127.0.0.2"}]}, False, id="vip-and-vsvip-ref"
        ),
        pytest.param({"services": [{"port": 80}], "vip": []}, False, id="empty-inline-vip"),
        pytest.param({"services": [{"port": 80}], "flow_dist": "RANDOM"}, False, id="bad-flow-dist"),
    ],
)
def test_virtual_service(extra: dict[str, Any], ok: bool) -> None:
    body = {**VS, **extra}
    if ok:
        _valid(objects.VirtualService, body)
    else:
        _invalid(objects.VirtualService, body)


@pytest.mark.parametrize(
    ("vips", "ok"),
    [
        pytest.param([{"ip_address": "127.0.0.2"}], True, id="address"),
        pytest.param([{"auto_allocate_ip": True}], True, id="auto-allocate"),
        pytest.param([{}], False, id="neither-address-nor-auto"),
        pytest.param([{"auto_allocate_ip": False}], False, id="auto-false"),
        pytest.param([{"ip_address": "10.0.0.5", "subnet": "10.0.0.0/24"}], True, id="inside-subnet"),
        pytest.param([{"ip_address": "10.0.1.5", "subnet": "10.0.0.0/24"}], False, id="outside-subnet"),
        pytest.param(
            [{"ip_address": "2001:db8::5", "subnet": "10.0.0.0/24"}], False, id="other-family-subnet"
        ),
        pytest.param(
            [{"ip_address": "10.0.0.5", "floating_ip": "192.0.2.1", "auto_allocate_floating_ip": True}],
            False,
            id="floating-ip-twice",
        ),
        pytest.param(
            [{"vip_id": "0", "ip_address": "127.0.0.2"}, {"vip_id": "0", "ip_address": "127.0.0.3"}],
            False,
            id="duplicate-vip-id",
        ),
        pytest.param(
            [{"vip_id": "0", "ip_address": "127.0.0.2"}, {"vip_id": "1", "ip_address": "127.0.0.2"}],
            False,
            id="duplicate-address",
        ),
        pytest.param([{"vip_id": "a b", "ip_address": "127.0.0.2"}], False, id="bad-vip-id"),
    ],
)
def test_vsvip(vips: list[dict[str, Any]], ok: bool) -> None:
    body = {"name": "v", "vip": vips}
    if ok:
        _valid(objects.VsVip, body)
    else:
        _invalid(objects.VsVip, body)
    # An inline VIP on a virtual service follows the same rules.
    vs = {"name": "vs", "services": [{"port": 80}], "vip": vips}
    if ok:
        _valid(objects.VirtualService, vs)
    else:
        _invalid(objects.VirtualService, vs)


# --- HTTP tokens (cookie and header names) --------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "ok"),
    [
        pytest.param("X-Forwarded-For", True, id="header"),
        pytest.param("SESSION_ID", True, id="underscore"),
        pytest.param("a!#$%&'*+-.^_`|~9", True, id="all-token-punctuation"),
        pytest.param("", False, id="empty"),
        pytest.param("X Forwarded", False, id="space"),
        pytest.param("X-Forwarded-For:", False, id="colon"),
        pytest.param("name;Path=/", False, id="semicolon"),
        pytest.param("a=b", False, id="equals"),
        pytest.param('"quoted"', False, id="quote"),
        pytest.param("X-A\r\nSet-Cookie: x", False, id="crlf"),
        pytest.param("Größe", False, id="non-ascii"),
        pytest.param("x" * 129, False, id="too-long"),
    ],
)
def test_http_tokens(token: str, ok: bool) -> None:
    cases = [
        (
            objects.ApplicationPersistenceProfile,
            {
                "name": "p",
                "persistence_type": "PERSISTENCE_TYPE_HTTP_COOKIE",
                "http_cookie_persistence_profile": {"cookie_name": token},
            },
        ),
        (objects.ApplicationProfile, {"name": "p", "http_profile": {"xff_alternate_name": token}}),
        (
            objects.Pool,
            {
                "name": "p",
                "lb_algorithm": "LB_ALGORITHM_CONSISTENT_HASH",
                "lb_algorithm_hash": "LB_ALGORITHM_CONSISTENT_HASH_CUSTOM_HEADER",
                "lb_algorithm_consistent_hash_hdr": token,
            },
        ),
    ]
    for schema, body in cases:
        if ok:
            _valid(schema, body)
        else:
            _invalid(schema, body)


# --- profiles -------------------------------------------------------------------------------------

APP = {"cookie_name": "SESSIONID"}


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        pytest.param({"persistence_type": "PERSISTENCE_TYPE_HTTP_COOKIE"}, True, id="cookie-default"),
        pytest.param(
            {"persistence_type": "PERSISTENCE_TYPE_HTTP_COOKIE", "ip_persistence_profile": {}},
            False,
            id="cookie-with-ip-profile",
        ),
        pytest.param({"http_cookie_persistence_profile": {}}, False, id="ip-with-cookie-profile"),
        pytest.param({"ip_persistence_profile": {"ip_mask": 129}}, False, id="mask-too-long"),
        pytest.param(
            {"persistence_type": "PERSISTENCE_TYPE_APP_COOKIE", "app_cookie_persistence_profile": APP},
            True,
            id="app-cookie",
        ),
        pytest.param(
            {
                "persistence_type": "PERSISTENCE_TYPE_APP_COOKIE",
                "app_cookie_persistence_profile": {"cookie_name": "JSESSIONID", "timeout": 1440},
            },
            True,
            id="app-cookie-a-day",
        ),
        pytest.param(
            {"persistence_type": "PERSISTENCE_TYPE_APP_COOKIE"}, False, id="app-cookie-without-name"
        ),
        pytest.param(
            {"persistence_type": "PERSISTENCE_TYPE_APP_COOKIE", "app_cookie_persistence_profile": {}},
            False,
            id="app-cookie-empty-profile",
        ),
        *(
            pytest.param(
                {
                    "persistence_type": "PERSISTENCE_TYPE_APP_COOKIE",
                    "app_cookie_persistence_profile": {**APP, **change},
                },
                False,
                id=f"app-cookie-{label}",
            )
            for label, change in (
                ("timeout-0", {"timeout": 0}),
                ("timeout-above-a-day", {"timeout": 1441}),
                ("name-space", {"cookie_name": "SESSION ID"}),
                ("name-quote", {"cookie_name": "it's"}),
                ("name-paren", {"cookie_name": "a)b"}),
                ("unknown-field", {"path": "/"}),
            )
        ),
        pytest.param(
            {
                "persistence_type": "PERSISTENCE_TYPE_APP_COOKIE",
                "app_cookie_persistence_profile": APP,
                "http_cookie_persistence_profile": {},
            },
            False,
            id="app-cookie-with-http-cookie-profile",
        ),
        pytest.param(
            {
                "persistence_type": "PERSISTENCE_TYPE_APP_COOKIE",
                "app_cookie_persistence_profile": APP,
                "ip_persistence_profile": {},
            },
            False,
            id="app-cookie-with-ip-profile",
        ),
        pytest.param({"app_cookie_persistence_profile": APP}, False, id="ip-with-app-cookie-profile"),
        pytest.param(
            {"persistence_type": "PERSISTENCE_TYPE_HTTP_COOKIE", "app_cookie_persistence_profile": APP},
            False,
            id="http-cookie-with-app-cookie-profile",
        ),
    ],
)
def test_persistence_profile(body: dict[str, Any], ok: bool) -> None:
    if ok:
        _valid(objects.ApplicationPersistenceProfile, {"name": "p", **body})
    else:
        _invalid(objects.ApplicationPersistenceProfile, {"name": "p", **body})


def test_app_cookie_persistence_names_the_applications_cookie_and_forgets_after_30_minutes() -> None:
    profile = objects.ApplicationPersistenceProfile.model_validate(
        {
            "name": "p",
            "persistence_type": "PERSISTENCE_TYPE_APP_COOKIE",
            "app_cookie_persistence_profile": APP,
        }
    )
    assert profile.app_cookie_persistence_profile == objects.AppCookiePersistence(cookie_name="SESSIONID")
    assert profile.app_cookie_persistence_profile.timeout == 30
    # Only the chosen kind has a sub-profile: none is filled in for the others.
    assert (profile.http_cookie_persistence_profile, profile.ip_persistence_profile) == (None, None)
    missing = _invalid(
        objects.ApplicationPersistenceProfile,
        {"name": "p", "persistence_type": "PERSISTENCE_TYPE_APP_COOKIE"},
    )
    assert "app_cookie_persistence_profile" in missing


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        pytest.param({"type": "APPLICATION_PROFILE_TYPE_L4", "http_profile": {}}, False, id="l4-with-http"),
        pytest.param({"dns_service_profile": {}}, False, id="http-with-dns"),
        pytest.param(
            {"type": "APPLICATION_PROFILE_TYPE_DNS", "dns_service_profile": {"domain_names": ["a..b"]}},
            False,
            id="dns-bad-domain",
        ),
        pytest.param(
            {
                "type": "APPLICATION_PROFILE_TYPE_DNS",
                "dns_service_profile": {"domain_names": ["Example.com."]},
            },
            True,
            id="dns-ok",
        ),
    ],
)
def test_application_profile(body: dict[str, Any], ok: bool) -> None:
    if ok:
        _valid(objects.ApplicationProfile, {"name": "p", **body})
    else:
        _invalid(objects.ApplicationProfile, {"name": "p", **body})


# --- clouds ---------------------------------------------------------------------------------------

OPENSTACK = {
    "auth_url": "https://keystone.example.com:5000/v3",
    "username": "fulcrum",
    "admin_tenant": "admin",
    "mgmt_network_name": "mgmt",
}


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        pytest.param({}, True, id="local-default"),
        pytest.param({"vtype": "CLOUD_NETNS"}, True, id="netns-default"),
        pytest.param(
            {"vtype": "CLOUD_OPENSTACK", "openstack_configuration": OPENSTACK}, True, id="openstack"
        ),
        pytest.param({"vtype": "CLOUD_OPENSTACK"}, False, id="openstack-without-config"),
        pytest.param({"netns_configuration": {}}, False, id="local-with-netns-config"),
        pytest.param({"openstack_configuration": OPENSTACK}, False, id="local-with-openstack-config"),
        pytest.param(
            {"vtype": "CLOUD_NETNS", "local_configuration": {}}, False, id="netns-with-local-config"
        ),
        pytest.param(
            {"vtype": "CLOUD_OPENSTACK", "openstack_configuration": {**OPENSTACK, "auth_url": "ftp://x"}},
            False,
            id="openstack-bad-auth-url",
        ),
        pytest.param(
            {"vtype": "CLOUD_OPENSTACK", "openstack_configuration": {**OPENSTACK, "privilege": "ALL"}},
            False,
            id="openstack-bad-privilege",
        ),
        pytest.param({"local_configuration": {"vip_network": "127.100.0.0/33"}}, False, id="bad-vip-network"),
    ],
)
def test_cloud(body: dict[str, Any], ok: bool) -> None:
    if ok:
        _valid(objects.Cloud, {"name": "c", **body})
    else:
        _invalid(objects.Cloud, {"name": "c", **body})


def test_cloud_fills_the_configuration_of_its_vtype() -> None:
    local = objects.Cloud.model_validate({"name": "c"})
    assert local.local_configuration is not None
    assert local.local_configuration.vip_network == "127.100.0.0/16"
    assert local.netns_configuration is None
    netns = objects.Cloud.model_validate({"name": "c", "vtype": "CLOUD_NETNS"})
    assert netns.netns_configuration is not None
    assert netns.local_configuration is None


# --- users ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        pytest.param({"password": "long-enough"}, True, id="password"),
        pytest.param({"password": "short"}, False, id="password-too-short"),
        pytest.param({"email": "a@b"}, True, id="email"),
        pytest.param({"email": "not an email"}, False, id="email-bad"),
        pytest.param(
            {
                "access": [
                    {"tenant_ref": "t", "role": "tenant-admin"},
                    {"tenant_ref": "t", "role": "application-admin"},
                ]
            },
            False,
            id="tenant-twice",
        ),
    ],
)
def test_user(body: dict[str, Any], ok: bool) -> None:
    if ok:
        _valid(objects.User, {"name": "u", **body})
    else:
        _invalid(objects.User, {"name": "u", **body})


# --- registry: references and secrets are discovered from the schemas ------------------------------

_TARGET_ALIASES = {
    "segroup": "serviceenginegroup",
    "redirectpool": "pool",
    "cacertificate": "sslkeyandcertificate",
    "defaulttenant": "tenant",
    "syslogconfig": "alertsyslogconfig",
    "emailconfig": "alertemailconfig",
    "actiongroup": "actiongroupconfig",
}


# Reference lists whose names the Octavia-facing contract fixed without the _refs suffix.
_REF_FIELDS_NOT_NAMED_REF = {"http_policies": "httppolicyset"}
# Fields named like secrets that are not: an HTTP match's key is a header, cookie or DN field name.
_NOT_SECRETS = {("matches", "[]", "key")}


def _models_in(annotation: Any) -> list[tuple[bool, type[BaseModel]]]:
    """(inside a list?, model) for every schema nested in a field annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(False, annotation)]
    found: list[tuple[bool, type[BaseModel]]] = []
    in_list = typing.get_origin(annotation) is list
    for arg in typing.get_args(annotation):
        found += [(in_list or nested, model) for nested, model in _models_in(arg)]
    return found


def _fields_by_name(schema: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Path of every field of `schema` and its nested schemas, with `[]` where a list is entered."""
    paths = []
    for name, info in schema.model_fields.items():
        path = (*prefix, name)
        paths.append(path)
        for in_list, model in _models_in(info.annotation):
            paths += _fields_by_name(model, (*path, "[]") if in_list else path)
    return paths


def _ref_paths_by_name(schema: type[BaseModel]) -> dict[tuple[str, ...], str]:
    expected = {}
    for path in _fields_by_name(schema):
        field = path[-1]
        if field.endswith("_refs"):
            stem, full = field.removesuffix("_refs"), (*path, "[]")
        elif field.endswith("_ref"):
            stem, full = field.removesuffix("_ref"), path
        elif field in _REF_FIELDS_NOT_NAMED_REF:
            stem, full = _REF_FIELDS_NOT_NAMED_REF[field], (*path, "[]")
        else:
            continue
        stem = stem.replace("_", "")
        expected[full] = _TARGET_ALIASES.get(stem, stem)
    return expected


@pytest.mark.parametrize("type_name", list(TYPES))
def test_every_ref_field_is_discovered(type_name: str) -> None:
    otype = TYPES[type_name]
    discovered = {ref.path: ref.target for ref in otype.ref_paths}
    assert discovered == _ref_paths_by_name(otype.schema)
    assert all(target in TYPES for target in discovered.values())


def test_ref_discovery_finds_nested_and_list_refs() -> None:
    user = {ref.path: ref.target for ref in TYPES["user"].ref_paths}
    assert user[("access", "[]", "tenant_ref")] == "tenant"
    vs = {ref.path: ref.target for ref in TYPES["virtualservice"].ref_paths}
    assert vs[("ssl_key_and_certificate_refs", "[]")] == "sslkeyandcertificate"
    labels = {ref.label for ref in TYPES["user"].ref_paths}
    assert labels == {"access[].tenant_ref", "default_tenant_ref"}


EXPECTED_SECRETS = {
    "user": {("password",)},
    "cloud": {("openstack_configuration", "password")},
    "sslkeyandcertificate": {("key",), ("key_passphrase",)},
    "alertemailconfig": {("password",)},
    "snmptrapprofile": {
        ("trap_servers", "[]", "community"),
        ("trap_servers", "[]", "user", "auth_passphrase"),
        ("trap_servers", "[]", "user", "priv_passphrase"),
    },
    "webhook": {("verification_token",)},
}


@pytest.mark.parametrize("type_name", list(TYPES))
def test_secrets_discovered(type_name: str) -> None:
    otype = TYPES[type_name]
    assert set(otype.secret_paths) == EXPECTED_SECRETS.get(type_name, set())
    # Anything named like a secret is marked as one.
    secret_like = {
        p
        for p in _fields_by_name(otype.schema)
        if p[-1] in {"password", "key", "key_passphrase", "secret", "token"} and p not in _NOT_SECRETS
    }
    assert secret_like <= set(otype.secret_paths)


def test_types_listed_in_dependency_order() -> None:
    position = {name: index for index, name in enumerate(TYPES)}
    for otype in TYPES.values():
        for ref in otype.ref_paths:
            if ref.target != otype.name:
                assert position[ref.target] < position[otype.name], (otype.name, ref.label)


def test_strip_read_only_keeps_config() -> None:
    got = objects.strip_read_only(
        {"name": "x", "uuid": "u", "url": "/", "tenant_ref": "t", "_last_modified": "1"}
    )
    assert got == {"name": "x"}


# --- HTTP policy sets and matches -----------------------------------------------------------------

MATCH_ID = "0b5d6c1e-3f7a-4e2b-9c8d-1a2b3c4d5e6f"


def _match(**fields: Any) -> dict[str, Any]:
    return {"match_id": MATCH_ID, "type": "PATH", "compare_type": "STARTS_WITH", "value": "/api", **fields}


def _policy(*matches: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "p", "action": "REJECT", "matches": list(matches), **fields}


@pytest.mark.parametrize(
    ("match", "complaint"),
    [
        (_match(type="HOST_NAME", compare_type="EQUAL_TO", value="www.example.com"), None),
        (_match(compare_type="ENDS_WITH", value="/x y"), None),  # a value may hold spaces: it is quoted
        (_match(value='a b"\\ %[src] $HOME #'), None),
        (_match(type="HEADER", key="X-Tenant", compare_type="CONTAINS", value="blue"), None),
        (_match(type="COOKIE", key="session_id", compare_type="EQUAL_TO", value="abc"), None),
        (_match(type="FILE_TYPE", compare_type="EQUAL_TO", value="jpg"), None),
        (_match(type="FILE_TYPE", compare_type="REGEX", value="^(jpe?g|png)$"), None),
        (_match(type="SSL_CONN_HAS_CERT", compare_type="EQUAL_TO", value="True"), None),
        (_match(type="SSL_CONN_HAS_CERT", compare_type="EQUAL_TO", value="false"), None),
        (_match(type="SSL_VERIFY_RESULT", compare_type="EQUAL_TO", value="0"), None),
        (_match(type="SSL_DN_FIELD", key="CN", compare_type="STARTS_WITH", value="client-"), None),
        (
            _match(type="SSL_DN_FIELD", key="emailAddress", compare_type="REGEX", value="@example\\.com$"),
            None,
        ),
        (_match(invert=True, enabled=False), None),
        # required, shaped and bounded fields
        ({k: v for k, v in _match().items() if k != "match_id"}, "match_id"),
        (_match(match_id="rule-1"), "match_id"),
        (_match(value=""), "value"),
        (_match(value="x" * 256), "value"),
        (_match(value="a\nb"), "value: must not contain control"),
        (_match(value="a\r\nX-Injected: 1"), "value: must not contain control"),
        (_match(value="a\x00b"), "value: must not contain control"),
        (_match(value="a\u2028b"), "value: must not contain control"),
        (_match(type="URL"), "type"),
        (_match(compare_type="LIKE"), "compare_type"),
        # keys
        (_match(type="HEADER", compare_type="EQUAL_TO", value="x"), "key: is required for HEADER"),
        (_match(type="COOKIE", compare_type="EQUAL_TO", value="x"), "key: is required for COOKIE"),
        (
            _match(type="SSL_DN_FIELD", compare_type="EQUAL_TO", value="x"),
            "key: is required for SSL_DN_FIELD",
        ),
        (_match(type="HEADER", key="X Forwarded", value="x"), "key: 'X Forwarded' is not an HTTP token"),
        (_match(type="HEADER", key="X-A\r\nX-B", value="x"), "is not an HTTP token"),
        (_match(type="HEADER", key="a)b", value="x"), "is not an HTTP token"),
        (_match(type="COOKIE", key="it's", value="x"), "is not an HTTP token"),
        (_match(type="COOKIE", key="a,b", value="x"), "is not an HTTP token"),
        (_match(type="SSL_DN_FIELD", key="C N", value="x"), "not a distinguished name field"),
        (_match(type="SSL_DN_FIELD", key="CN)", value="x"), "not a distinguished name field"),
        (
            _match(type="SSL_CONN_HAS_CERT", key="x", compare_type="EQUAL_TO", value="True"),
            "do not use a key",
        ),
        (_match(type="SSL_VERIFY_RESULT", key="x", compare_type="EQUAL_TO", value="0"), "do not use a key"),
        # compare types by match type (as Octavia)
        (_match(type="FILE_TYPE", compare_type="STARTS_WITH", value="jp"), "only support EQUAL_TO and REGEX"),
        (_match(type="SSL_CONN_HAS_CERT", compare_type="REGEX", value="True"), "only support EQUAL_TO"),
        (_match(type="SSL_VERIFY_RESULT", compare_type="CONTAINS", value="1"), "only support EQUAL_TO"),
        # values by match type
        (_match(type="SSL_CONN_HAS_CERT", compare_type="EQUAL_TO", value="yes"), "'True' or 'False'"),
        (_match(type="SSL_VERIFY_RESULT", compare_type="EQUAL_TO", value="-1"), "non-negative integer"),
        (_match(type="SSL_VERIFY_RESULT", compare_type="EQUAL_TO", value="1e3"), "non-negative integer"),
        (_match(type="SSL_VERIFY_RESULT", compare_type="EQUAL_TO", value="\u0661"), "non-negative integer"),
        (_match(type="FILE_TYPE", compare_type="EQUAL_TO", value=".jpg"), "extension without its dot"),
        (_match(type="FILE_TYPE", compare_type="EQUAL_TO", value="a/b"), "extension without its dot"),
        # regular expressions: Python must compile them and HAProxy's PCRE must read them the same way
        (_match(compare_type="REGEX", value="^/api/v[0-9]+/(users|groups)(/.*)?$"), None),
        (_match(compare_type="REGEX", value="(?i)^/ADMIN"), None),
        (_match(compare_type="REGEX", value="^/a\\d{2,}\\.html?$"), None),
        (_match(compare_type="REGEX", value="[^\\]a-z\\[-]+"), None),
        (_match(compare_type="REGEX", value="(?P<x>a)(?P=x)\\1"), None),
        (_match(compare_type="REGEX", value="(unclosed"), "not a valid regular expression"),
        (_match(compare_type="REGEX", value="a**"), "not a valid regular expression"),
        (_match(compare_type="REGEX", value="[[a]"), "not a valid regular expression"),
        (_match(compare_type="REGEX", value="a\\Z"), "escape \\Z is not supported"),
        (_match(compare_type="REGEX", value="\\v"), "escape \\v is not supported"),
        (_match(compare_type="REGEX", value="\\u00e9"), "escape \\u is not supported"),
        (_match(compare_type="REGEX", value="\\0"), "escape \\0 is not supported"),
        (_match(compare_type="REGEX", value="(a)\\12"), "not a valid regular expression"),
        (_match(compare_type="REGEX", value="(a)" * 12 + "\\12"), "escape \\1 is not supported"),
        (_match(compare_type="REGEX", value="[\\b]"), "escape \\b is not supported"),
        (_match(compare_type="REGEX", value="a{,3}"), "quantifier is {n}"),
        (_match(compare_type="REGEX", value="a{x}"), "quantifier is {n}"),
        (_match(compare_type="REGEX", value="a}"), "literal '}'"),
        (_match(compare_type="REGEX", value="[]a]"), "']' inside a character class"),
        (_match(compare_type="REGEX", value="[[:alpha:]]"), "not a valid regular expression"),
        (_match(compare_type="REGEX", value="[a[]"), "'[' inside a character class"),
        (_match(compare_type="REGEX", value="a(?x)b"), "not a valid regular expression"),
        (_match(compare_type="REGEX", value="(?x)a b"), "group"),
        (_match(compare_type="REGEX", value="(?>a)"), "group"),
        (_match(compare_type="REGEX", value="(?#comment)"), "group"),
        (_match(compare_type="REGEX", value="(?(1)a|b)"), "not a valid regular expression"),
        (_match(compare_type="REGEX", value="é"), "printable ASCII"),
        (_match(compare_type="REGEX", value="a\\"), "not a valid regular expression"),
    ],
)
def test_http_match_rules(match: dict[str, Any], complaint: str | None) -> None:
    body = _policy(match)
    if complaint is None:
        _valid(objects.HttpPolicySet, body)
    else:
        assert complaint in _invalid(objects.HttpPolicySet, body)


def test_http_match_errors_name_the_match_and_the_field() -> None:
    error = _invalid(
        objects.HttpPolicySet, _policy(_match(), _match(type="HEADER", match_id=MATCH_ID[:-1] + "0"))
    )
    assert "matches.1" in error
    assert "key: is required for HEADER" in error


def test_ssl_conn_has_cert_values_are_normalised() -> None:
    policy = _valid(
        objects.HttpPolicySet,
        _policy(_match(type="SSL_CONN_HAS_CERT", compare_type="EQUAL_TO", value="TRUE")),
    )
    assert policy.matches[0].value == "True"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"action": "REJECT"}, None),
        ({"action": "REDIRECT_TO_POOL", "redirect_pool_ref": "/api/pool?name=api"}, None),
        ({"action": "REDIRECT_TO_URL", "redirect_url": "https://www.example.com/new?x=1&y=%20#top"}, None),
        (
            {
                "action": "REDIRECT_TO_URL",
                "redirect_url": "http://[fd00::1]:8080/",
                "redirect_http_code": 308,
            },
            None,
        ),
        ({"action": "REDIRECT_PREFIX", "redirect_prefix": "https://secure.example.com"}, None),
        ({"action": "REDIRECT_PREFIX", "redirect_prefix": "https://secure.example.com:8443/base/"}, None),
        ({"action": "REDIRECT_TO_URL", "redirect_url": "HTTPS://Example.com"}, None),
        ({}, "action"),
        ({"action": "DROP"}, "action"),
        ({"action": "REDIRECT_TO_POOL"}, "redirect_pool_ref: is required with action REDIRECT_TO_POOL"),
        ({"action": "REDIRECT_TO_URL"}, "redirect_url: is required with action REDIRECT_TO_URL"),
        ({"action": "REDIRECT_PREFIX"}, "redirect_prefix: is required with action REDIRECT_PREFIX"),
        (
            {"action": "REJECT", "redirect_url": "https://a.example"},
            "redirect_url: is only valid with action REDIRECT_TO_URL",
        ),
        (
            {"action": "REDIRECT_TO_URL", "redirect_url": "https://a.example", "redirect_pool_ref": "p"},
            "redirect_pool_ref: is only valid with action REDIRECT_TO_POOL",
        ),
        (
            {"action": "REDIRECT_TO_URL", "redirect_url": "https://a.example", "redirect_http_code": 304},
            "301",
        ),
        (
            {"action": "REDIRECT_TO_URL", "redirect_url": "https://a.example", "redirect_http_code": "302x"},
            "302",
        ),
        ({"action": "REDIRECT_TO_URL", "redirect_url": "/relative"}, "absolute http:// or https:// URL"),
        ({"action": "REDIRECT_TO_URL", "redirect_url": "ftp://a.example/"}, "absolute http"),
        ({"action": "REDIRECT_TO_URL", "redirect_url": "javascript:alert(1)"}, "absolute http"),
        ({"action": "REDIRECT_TO_URL", "redirect_url": "https://"}, "absolute http"),
        ({"action": "REDIRECT_TO_URL", "redirect_url": "https://a.example/a b"}, "absolute http"),
        ({"action": "REDIRECT_TO_URL", "redirect_url": 'https://a.example/"x'}, "absolute http"),
        (
            {"action": "REDIRECT_TO_URL", "redirect_url": "https://a.example/\r\nSet-Cookie: x"},
            "absolute http",
        ),
        ({"action": "REDIRECT_TO_URL", "redirect_url": "https://a.example/%zz"}, "absolute http"),
        ({"action": "REDIRECT_TO_URL", "redirect_url": "https://a.example:99999/"}, "port 99999"),
        ({"action": "REDIRECT_TO_URL", "redirect_url": "https://[1:2:3]/"}, "not an IPv6 address"),
        ({"action": "REDIRECT_TO_URL", "redirect_url": "https://user@a.example/"}, "absolute http"),
        ({"action": "REDIRECT_PREFIX", "redirect_prefix": "https://a.example/x?y=1"}, "no query or fragment"),
        ({"action": "REDIRECT_PREFIX", "redirect_prefix": "https://a.example#f"}, "no query or fragment"),
        ({"action": "REJECT", "matches": [_match()] * 2}, "each match_id may appear only once"),
        ({"action": "REJECT", "matches": [_match()] * 51}, "matches"),
        ({"action": "REJECT", "enabled": False, "matches": []}, None),
        ({"action": "REJECT", "surprise": 1}, "surprise"),
    ],
)
def test_http_policy_set_rules(fields: dict[str, Any], complaint: str | None) -> None:
    body = {"name": "p", "matches": [_match()], **fields}
    if complaint is None:
        _valid(objects.HttpPolicySet, body)
    else:
        assert complaint in _invalid(objects.HttpPolicySet, body)


# --- virtual service: access, limits, timeouts, headers, policies ---------------------------------


def _vs(**fields: Any) -> dict[str, Any]:
    return {"name": "web", "services": [{"port": 80}], "vsvip_ref": "v", **fields}


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({}, None),
        ({"allowed_cidrs": ["10.0.0.0/8", "192.0.2.7", "fd00::/8", "10.1.2.3/8"]}, None),
        ({"allowed_cidrs": ["10.0.0.0/33"]}, "allowed_cidrs.0"),
        ({"allowed_cidrs": ["10.0.0.0/8 ssl"]}, "allowed_cidrs.0"),
        ({"allowed_cidrs": ["any"]}, "allowed_cidrs.0"),
        ({"allowed_cidrs": [f"10.0.{i}.0/24" for i in range(101)]}, "allowed_cidrs"),
        ({"connection_limit": 1}, None),
        ({"connection_limit": 1_000_000}, None),
        ({"connection_limit": 0}, "connection_limit"),
        ({"connection_limit": 1_000_001}, "connection_limit"),
        ({"connection_limit": -1}, "connection_limit"),
        ({"timeout_client_ms": 0, "timeout_server_ms": 86_400_000}, None),
        ({"timeout_server_connect_ms": 5000, "timeout_tcp_inspect_ms": 0}, None),
        ({"timeout_client_ms": 86_400_001}, "timeout_client_ms"),
        ({"timeout_server_connect_ms": -1}, "timeout_server_connect_ms"),
        ({"timeout_tcp_inspect_ms": "5s"}, "timeout_tcp_inspect_ms"),
        ({"insert_headers": ["X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"]}, None),
        ({"insert_headers": ["X-Forwarded-Host"]}, "insert_headers.0"),
        ({"insert_headers": ["x-forwarded-for"]}, "insert_headers.0"),
        ({"insert_headers": ["X-Forwarded-For", "X-Forwarded-For"]}, "each header may appear only once"),
        ({"http_policies": ["/api/httppolicyset?name=a", "b"]}, None),
        ({"http_policies": ["a", "a"]}, "each policy set may appear only once"),
        ({"http_policies": [f"p{i}" for i in range(65)]}, "http_policies"),
        ({"http_policies": [""]}, "http_policies.0"),
    ],
)
def test_virtual_service_access_and_http_fields(fields: dict[str, Any], complaint: str | None) -> None:
    if complaint is None:
        _valid(objects.VirtualService, _vs(**fields))
    else:
        assert complaint in _invalid(objects.VirtualService, _vs(**fields))


def test_allowed_cidrs_are_normalised_and_deduplicated() -> None:
    vs = _valid(
        objects.VirtualService, _vs(allowed_cidrs=["10.1.2.3/8", "10.0.0.0/8", "192.0.2.7", "FD00::1/8"])
    )
    assert vs.allowed_cidrs == ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]  # type: ignore[attr-defined]


def test_new_virtual_service_fields_default_to_todays_behaviour() -> None:
    vs = objects.VirtualService.model_validate(_vs())
    assert vs.allowed_cidrs == [] and vs.insert_headers == [] and vs.http_policies == []
    assert vs.connection_limit is None and vs.timeout_client_ms is None and vs.timeout_tcp_inspect_ms is None
