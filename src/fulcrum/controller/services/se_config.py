"""Turns stored config objects into the desired configuration of one SE (protocol `SeConfig`).

Pure apart from the two lookups it is given, so it is tested with plain dicts. Unsupported features
raise `Unsupported` with a reason the VS runtime shows, instead of reaching the data plane half-done.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from fulcrum.controller.services import refs
from fulcrum.controller.store.repo import StoredObject
from fulcrum.model.objects import expected_status_codes
from fulcrum.protocol import se as wire

ALGORITHMS = {
    "LB_ALGORITHM_ROUND_ROBIN": wire.Algorithm.ROUND_ROBIN,
    "LB_ALGORITHM_LEAST_CONNECTIONS": wire.Algorithm.LEAST_CONNECTIONS,
    "LB_ALGORITHM_RANDOM": wire.Algorithm.RANDOM,
}
HASHES = {
    "LB_ALGORITHM_CONSISTENT_HASH_SOURCE_IP_ADDRESS": wire.Algorithm.HASH_SOURCE_IP,
    "LB_ALGORITHM_CONSISTENT_HASH_URI": wire.Algorithm.HASH_URI,
    "LB_ALGORITHM_CONSISTENT_HASH_CUSTOM_HEADER": wire.Algorithm.HASH_HEADER,
}
SUPPORTED_ALGORITHMS = (*ALGORITHMS, "LB_ALGORITHM_CONSISTENT_HASH")
MONITORS = {
    "HEALTH_MONITOR_TCP": wire.MonitorType.TCP,
    "HEALTH_MONITOR_HTTP": wire.MonitorType.HTTP,
    "HEALTH_MONITOR_HTTPS": wire.MonitorType.HTTPS,
    "HEALTH_MONITOR_TLS_HELLO": wire.MonitorType.TLS_HELLO,
}
APP_TYPES = {
    "APPLICATION_PROFILE_TYPE_HTTP": wire.AppType.HTTP,
    "APPLICATION_PROFILE_TYPE_L4": wire.AppType.L4,
    "APPLICATION_PROFILE_TYPE_SSL": wire.AppType.SSL,
}

POLICY_ACTIONS = {
    "REDIRECT_TO_POOL": wire.PolicyAction.POOL,
    "REDIRECT_TO_URL": wire.PolicyAction.REDIRECT_URL,
    "REDIRECT_PREFIX": wire.PolicyAction.REDIRECT_PREFIX,
    "REJECT": wire.PolicyAction.REJECT,
}

Lookup = Callable[[str], StoredObject | None]
Secrets = Callable[[StoredObject], dict[str, Any]]


class Unsupported(Exception):
    pass


def server_id(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ipaddress.ip_address(ip).version == 6 else f"{ip}:{port}"


def _get(lookup: Lookup, ref: str | None) -> StoredObject | None:
    return lookup(refs.uuid_of(ref)) if ref else None


def monitor_spec(hm: StoredObject) -> wire.MonitorSpec:
    data = hm.data
    kind = MONITORS.get(data["type"])
    if kind is None:
        raise Unsupported(
            f"health monitor {hm.name!r}: type {data['type']} is not supported by the data plane yet"
        )
    http = data.get("http_monitor") or data.get("https_monitor") or {}
    codes = http.get("http_response_codes")
    classes = tuple(
        int(code[5])
        for code in http.get("http_response_code", ["HTTP_2XX", "HTTP_3XX"])
        if code != "HTTP_ANY"
    )
    return wire.MonitorSpec(
        name=hm.name,
        type=kind,
        interval_s=data["send_interval"],
        timeout_s=data["receive_timeout"],
        rise=data["successful_checks"],
        fall=data["failed_checks"],
        port=data.get("monitor_port"),
        http_request=http.get("http_request", "HEAD / HTTP/1.0"),
        http_host=http.get("http_request_host"),
        http_status_classes=() if "HTTP_ANY" in http.get("http_response_code", []) else classes,
        http_status_codes=expected_status_codes(codes) if codes else (),
    )


def pool_spec(pool: StoredObject, lookup: Lookup) -> wire.PoolSpec:
    data = pool.data
    algorithm = data["lb_algorithm"]
    if algorithm == "LB_ALGORITHM_CONSISTENT_HASH":
        chosen = HASHES[data["lb_algorithm_hash"]]
    elif algorithm in ALGORITHMS:
        chosen = ALGORITHMS[algorithm]
    else:
        raise Unsupported(f"pool {pool.name!r}: {algorithm} is not supported by the data plane yet")
    servers = []
    for server in data["servers"]:
        port = server["port"] or data["default_server_port"]
        servers.append(
            wire.ServerSpec(
                id=server_id(server["ip"], port),
                ip=server["ip"],
                port=port,
                weight=server["ratio"],
                enabled=server["enabled"],
                backup=server.get("backup", False),
                monitor_address=server.get("monitor_address"),
                monitor_port=server.get("monitor_port"),
            )
        )
    monitors = []
    for ref in data["health_monitor_refs"]:
        hm = _get(lookup, ref)
        if hm is not None:
            monitors.append(monitor_spec(hm))
    http = (wire.MonitorType.HTTP, wire.MonitorType.HTTPS)
    if any(m.type in http for m in monitors):
        # HAProxy chains HTTP checks with connect-only ones (TCP, TLS hello) only when those come last.
        for monitor in monitors[:-1]:
            if monitor.type not in http:
                raise Unsupported(
                    f"pool {pool.name!r}: health monitor {monitor.name!r} ({monitor.type.value}) must come "
                    "after the pool's HTTP(S) health monitors"
                )
    persistence = None
    profile = _get(lookup, data.get("application_persistence_profile_ref"))
    if profile is not None:
        pdata = profile.data
        if pdata["persistence_type"] == "PERSISTENCE_TYPE_HTTP_COOKIE":
            cookie = pdata["http_cookie_persistence_profile"]
            persistence = wire.PersistenceSpec(
                kind=wire.PersistenceKind.HTTP_COOKIE,
                cookie_name=cookie["cookie_name"],
                cookie_max_age_s=cookie["timeout"] * 60,
            )
        elif pdata["persistence_type"] == "PERSISTENCE_TYPE_APP_COOKIE":
            app = pdata["app_cookie_persistence_profile"]
            persistence = wire.PersistenceSpec(
                kind=wire.PersistenceKind.APP_COOKIE,
                cookie_name=app["cookie_name"],
                app_cookie_timeout_s=app["timeout"] * 60,
            )
        else:
            ip = pdata["ip_persistence_profile"]
            persistence = wire.PersistenceSpec(
                kind=wire.PersistenceKind.CLIENT_IP, ip_timeout_s=ip["ip_persistent_timeout"] * 60
            )
    timeout = data["graceful_disable_timeout"]
    return wire.PoolSpec(
        uuid=pool.uuid,
        name=pool.name,
        algorithm=chosen,
        hash_header=data.get("lb_algorithm_consistent_hash_hdr")
        if chosen == wire.Algorithm.HASH_HEADER
        else None,
        servers=tuple(servers),
        monitors=tuple(monitors),
        persistence=persistence,
        graceful_disable_timeout_s=86400 if timeout == -1 else timeout * 60,
        enabled=data["enabled"],
    )


def policy_specs(
    vs: StoredObject, default_pool: StoredObject | None, lookup: Lookup
) -> tuple[tuple[wire.HttpPolicySpec, ...], tuple[wire.PoolSpec, ...]]:
    """The VS's HTTP policies that can match, in order, and the pools they route to besides the
    default pool. Disabled policies and policies without an enabled match never match: left out."""
    policies: list[wire.HttpPolicySpec] = []
    extra: dict[str, wire.PoolSpec] = {}
    seen: set[str] = set()
    for ref in vs.data.get("http_policies", []):
        policy = _get(lookup, ref)
        if policy is None:
            raise Unsupported(f"its HTTP policy set {ref} is gone")
        if policy.uuid in seen:
            continue
        seen.add(policy.uuid)
        data = policy.data
        matches = tuple(
            wire.HttpMatchSpec(
                type=wire.MatchType(m["type"]),
                compare=wire.MatchCompare(m["compare_type"]),
                key=m.get("key"),
                value=m["value"],
                invert=m["invert"],
            )
            for m in data["matches"]
            if m["enabled"]
        )
        if not data["enabled"] or not matches:
            continue
        action = POLICY_ACTIONS[data["action"]]
        pool_uuid = None
        if action is wire.PolicyAction.POOL:
            target = _get(lookup, data["redirect_pool_ref"])
            if target is None:
                raise Unsupported(f"HTTP policy set {policy.name!r}: its pool is gone")
            pool_uuid = target.uuid
            if (default_pool is None or target.uuid != default_pool.uuid) and target.uuid not in extra:
                extra[target.uuid] = pool_spec(target, lookup)
        policies.append(
            wire.HttpPolicySpec(
                uuid=policy.uuid,
                name=policy.name,
                action=action,
                pool_uuid=pool_uuid,
                location=data.get("redirect_url") or data.get("redirect_prefix"),
                redirect_code=data["redirect_http_code"],
                matches=matches,
            )
        )
    return tuple(policies), tuple(extra.values())


def vs_spec(vs: StoredObject, lookup: Lookup, secrets: Secrets) -> wire.VsSpec:
    data = vs.data
    profile = _get(lookup, data["application_profile_ref"])
    if profile is None:
        raise Unsupported("its application profile is gone")
    app_type = APP_TYPES.get(profile.data["type"])
    if app_type is None:
        raise Unsupported(
            f"application profile type {profile.data['type']} is not supported by the data plane yet"
        )
    http = None
    inserted = set(data.get("insert_headers", []))
    if app_type != wire.AppType.HTTP and (inserted or data.get("http_policies")):
        raise Unsupported("insert_headers and http_policies need an HTTP application profile")
    if app_type == wire.AppType.HTTP:
        hp = profile.data["http_profile"]
        # The profile and the VS's insert_headers each can turn X-Forwarded-For/-Proto on.
        http = wire.HttpSettings(
            xff_enabled=hp["xff_enabled"] or "X-Forwarded-For" in inserted,
            xff_header=hp["xff_alternate_name"],
            x_forwarded_proto=hp["x_forwarded_proto_enabled"] or "X-Forwarded-Proto" in inserted,
            x_forwarded_port="X-Forwarded-Port" in inserted,
            connection_reuse=hp["connection_multiplexing_enabled"],
            keepalive_timeout_ms=hp["keepalive_timeout"],
            request_timeout_ms=hp["client_header_timeout"],
            redirect_to_https=hp["http_to_https"],
            hsts=hp["hsts_enabled"],
        )
    vsvip = _get(lookup, data.get("vsvip_ref"))
    vips = tuple(
        v["ip_address"] for v in (vsvip.data["vip"] if vsvip else []) if v["enabled"] and v["ip_address"]
    )
    if not vips:
        raise Unsupported("it has no enabled VIP address")
    certificates = []
    for ref in data["ssl_key_and_certificate_refs"]:
        cert = _get(lookup, ref)
        if cert is None:
            continue
        key = secrets(cert).get("key")
        if not key:
            raise Unsupported(f"certificate {cert.name!r} has no private key")
        certificates.append(
            wire.CertificateSpec(
                uuid=cert.uuid,
                name=cert.name,
                certificate_pem=cert.data["certificate"]["certificate"],
                key_pem=key,
            )
        )
    pool = _get(lookup, data.get("pool_ref"))
    policies, extra_pools = policy_specs(vs, pool, lookup)
    return wire.VsSpec(
        uuid=vs.uuid,
        name=vs.name,
        tenant_uuid=vs.tenant_uuid,
        enabled=data["enabled"] and data["traffic_enabled"],
        vips=vips,
        listeners=tuple(
            wire.ListenerSpec(port=s["port"], port_range_end=s.get("port_range_end"), tls=s["enable_ssl"])
            for s in data["services"]
        ),
        app_type=app_type,
        http=http,
        pool=pool_spec(pool, lookup) if pool is not None else None,
        certificates=tuple(certificates),
        metrics=data.get("analytics_policy", {}).get("metrics_enabled", True),
        request_logs=data.get("analytics_policy", {}).get("client_logs_enabled", True),
        extra_pools=extra_pools,
        http_policies=policies,
        allowed_cidrs=tuple(data.get("allowed_cidrs", [])),
        connection_limit=data.get("connection_limit"),
        timeout_client_ms=data.get("timeout_client_ms"),
        timeout_connect_ms=data.get("timeout_server_connect_ms"),
        timeout_server_ms=data.get("timeout_server_ms"),
        tcp_inspect_delay_ms=data.get("timeout_tcp_inspect_ms"),
    )
