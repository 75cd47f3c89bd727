"""Native objects shown as Octavia resources (pure: a snapshot and statuses in, dicts out)."""

from __future__ import annotations

import datetime
from typing import Any

from fulcrum.controller.services import refs
from fulcrum.controller.services.octavia import ids
from fulcrum.controller.services.octavia.view import Snapshot
from fulcrum.controller.store.repo import StoredObject

PROVIDER = "fulcrum"

ALGORITHM_OUT = {
    "LB_ALGORITHM_ROUND_ROBIN": "ROUND_ROBIN",
    "LB_ALGORITHM_LEAST_CONNECTIONS": "LEAST_CONNECTIONS",
    "LB_ALGORITHM_CONSISTENT_HASH": "SOURCE_IP",
}
HM_TYPE_OUT = {
    "HEALTH_MONITOR_HTTP": "HTTP",
    "HEALTH_MONITOR_HTTPS": "HTTPS",
    "HEALTH_MONITOR_TCP": "TCP",
    "HEALTH_MONITOR_PING": "PING",
    "HEALTH_MONITOR_TLS_HELLO": "TLS-HELLO",
    "HEALTH_MONITOR_UDP": "UDP-CONNECT",
}
# Octavia's listener defaults, shown where the native VS keeps the platform default.
LISTENER_TIMEOUTS = {
    "timeout_client_data": ("timeout_client_ms", 50000),
    "timeout_member_connect": ("timeout_server_connect_ms", 5000),
    "timeout_member_data": ("timeout_server_ms", 50000),
    "timeout_tcp_inspect": ("timeout_tcp_inspect_ms", 0),
}


def stamp(usec: int) -> str:
    moment = datetime.datetime.fromtimestamp(usec / 1e6, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _common(obj: StoredObject, snap: Snapshot) -> dict[str, Any]:
    meta = snap.data(obj.uuid)
    project = ids.project_of(obj.tenant_uuid)
    return {
        "id": ids.of(obj.uuid),
        "name": meta.get("name", obj.name),
        "project_id": project,
        "tenant_id": project,
        "created_at": stamp(obj.created),
        "updated_at": stamp(obj.last_modified),
        "tags": meta.get("tags", []),
    }


def _listener_protocol(vs: StoredObject, snap: Snapshot) -> str:
    recorded = snap.data(vs.uuid).get("protocol")
    if recorded:
        return str(recorded)
    profile = snap.ref(vs.data.get("application_profile_ref"))
    http = profile is None or profile.data.get("type") == "APPLICATION_PROFILE_TYPE_HTTP"
    ssl = any(s.get("enable_ssl") for s in vs.data["services"])
    if http:
        return "TERMINATED_HTTPS" if ssl else "HTTP"
    return "TCP"


def loadbalancer(lb: StoredObject, snap: Snapshot, provisioning: str, operating: str) -> dict[str, Any]:
    vip = lb.data["vip"][0]
    meta = snap.data(lb.uuid)
    cloud_uuid = refs.uuid_of(lb.data["cloud_ref"]) if lb.data.get("cloud_ref") else ""
    return {
        **_common(lb, snap),
        "description": meta.get("description", ""),
        "admin_state_up": bool(vip.get("enabled", True)),
        "provisioning_status": provisioning,
        "operating_status": operating,
        "vip_address": vip.get("ip_address"),
        "vip_network_id": ids.network_id(cloud_uuid),
        "vip_subnet_id": ids.subnet_id(cloud_uuid),
        "vip_port_id": meta.get("vip_port_id") or ids.of(lb.uuid),
        "vip_qos_policy_id": None,
        "vip_vnic_type": "normal",
        "vip_sg_ids": [],
        "additional_vips": [],
        "provider": PROVIDER,
        "flavor_id": meta.get("flavor_id"),
        "availability_zone": None,
        "listeners": [{"id": ids.of(vs.uuid)} for vs in snap.listeners_of(lb.uuid)],
        "pools": [{"id": ids.of(p.uuid)} for p in snap.pools_of(lb.uuid)],
    }


def listener(vs: StoredObject, snap: Snapshot, provisioning: str, operating: str) -> dict[str, Any]:
    meta = snap.data(vs.uuid)
    data = vs.data
    certs = [ids.of(refs.uuid_of(r)) for r in data.get("ssl_key_and_certificate_refs", [])]
    lb = snap.lb_of_listener(vs)
    pool = snap.ref(data.get("pool_ref"))
    limit = data.get("connection_limit")
    view = {
        **_common(vs, snap),
        "description": data.get("description", ""),
        "admin_state_up": bool(data.get("enabled", True)),
        "provisioning_status": provisioning,
        "operating_status": operating,
        "protocol": _listener_protocol(vs, snap),
        "protocol_port": data["services"][0]["port"],
        "connection_limit": limit if limit else -1,
        "default_pool_id": ids.of(pool.uuid) if pool else None,
        "default_tls_container_ref": meta.get("default_tls_container_ref", certs[0] if certs else None),
        "sni_container_refs": meta.get("sni_container_refs", certs[1:]),
        "loadbalancers": [{"id": ids.of(lb)}] if lb else [],
        "l7policies": [{"id": ids.of(p.uuid)} for p in snap.policies_of(vs)],
        "insert_headers": {h: "true" for h in data.get("insert_headers", [])},
        "allowed_cidrs": list(data.get("allowed_cidrs") or []) or None,
        "client_ca_tls_container_ref": None,
        "client_authentication": "NONE",
        "client_crl_container_ref": None,
        "tls_ciphers": None,
        "tls_versions": None,
        "alpn_protocols": None,
        "hsts_max_age": None,
        "hsts_include_subdomains": False,
        "hsts_preload": False,
    }
    for name, (native_field, default) in LISTENER_TIMEOUTS.items():
        value = data.get(native_field)
        view[name] = value if value is not None else default
    return view


def member(
    pool: StoredObject, server: dict[str, Any], snap: Snapshot, provisioning: str, operating: str
) -> dict[str, Any]:
    mid = ids.member_id(pool.uuid, server, pool.data["default_server_port"])
    meta = snap.data(f"member:{mid}")
    project = ids.project_of(pool.tenant_uuid)
    return {
        "id": mid,
        "name": server.get("name") or "",
        "project_id": project,
        "tenant_id": project,
        "address": server["ip"],
        "protocol_port": server.get("port") or pool.data["default_server_port"],
        "weight": server.get("ratio", 1),
        "backup": bool(server.get("backup", False)),
        "admin_state_up": bool(server.get("enabled", True)),
        "subnet_id": meta.get("subnet_id"),
        "monitor_address": server.get("monitor_address"),
        "monitor_port": server.get("monitor_port"),
        "provisioning_status": provisioning,
        "operating_status": operating,
        "created_at": meta.get("created_at", stamp(pool.created)),
        "updated_at": meta.get("updated_at", stamp(pool.last_modified)),
        "tags": meta.get("tags", []),
        "vnic_type": "normal",
    }


def session_persistence(pool: StoredObject, snap: Snapshot) -> dict[str, Any] | None:
    profile = snap.ref(pool.data.get("application_persistence_profile_ref"))
    if profile is None:
        return None
    kind = profile.data["persistence_type"]
    if kind == "PERSISTENCE_TYPE_CLIENT_IP_ADDRESS":
        return {"type": "SOURCE_IP", "cookie_name": None, "persistence_timeout": None,
                "persistence_granularity": None}  # fmt: skip
    if kind == "PERSISTENCE_TYPE_HTTP_COOKIE":
        return {"type": "HTTP_COOKIE", "cookie_name": None, "persistence_timeout": None,
                "persistence_granularity": None}  # fmt: skip
    app = profile.data.get("app_cookie_persistence_profile") or {}
    return {"type": "APP_COOKIE", "cookie_name": app.get("cookie_name"), "persistence_timeout": None,
            "persistence_granularity": None}  # fmt: skip


def pool(
    p: StoredObject,
    snap: Snapshot,
    provisioning: str,
    operating: str,
) -> dict[str, Any]:
    meta = snap.data(p.uuid)
    lb = snap.lb_of_pool(p)
    hm = snap.hm_of_pool(p)
    listeners = snap.pool_users(p.uuid)
    return {
        **_common(p, snap),
        "description": p.data.get("description", ""),
        "admin_state_up": bool(p.data.get("enabled", True)),
        "provisioning_status": provisioning,
        "operating_status": operating,
        "protocol": meta.get("protocol") or _pool_protocol(listeners, snap),
        "lb_algorithm": ALGORITHM_OUT.get(p.data["lb_algorithm"], "LEAST_CONNECTIONS"),
        "session_persistence": session_persistence(p, snap),
        "healthmonitor_id": ids.of(hm.uuid) if hm else None,
        "loadbalancers": [{"id": ids.of(lb)}] if lb else [],
        "listeners": [{"id": ids.of(vs.uuid)} for vs in listeners],
        "members": [
            {"id": ids.member_id(p.uuid, s, p.data["default_server_port"])} for s in p.data["servers"]
        ],
        "tls_enabled": False,
        "tls_container_ref": None,
        "ca_tls_container_ref": None,
        "crl_container_ref": None,
        "tls_ciphers": None,
        "tls_versions": None,
        "alpn_protocols": None,
    }


def _pool_protocol(listeners: list[StoredObject], snap: Snapshot) -> str:
    for vs in listeners:
        protocol = _listener_protocol(vs, snap)
        return {"TERMINATED_HTTPS": "HTTP", "HTTPS": "HTTPS"}.get(protocol, protocol)
    return "HTTP"


def healthmonitor(hm: StoredObject, snap: Snapshot, provisioning: str, operating: str) -> dict[str, Any]:
    meta = snap.data(hm.uuid)
    data = hm.data
    http = data.get("http_monitor") or data.get("https_monitor")
    view = {
        **_common(hm, snap),
        "type": HM_TYPE_OUT.get(data["type"], "TCP"),
        "delay": meta.get("delay", data["send_interval"]),
        "timeout": meta.get("timeout", data["receive_timeout"]),
        "max_retries": data["successful_checks"],
        "max_retries_down": data["failed_checks"],
        "admin_state_up": bool(meta.get("admin_state_up", True)),
        "provisioning_status": provisioning,
        "operating_status": operating,
        "pools": [{"id": ids.of(p.uuid)} for p in snap.pools_of_hm(hm.uuid)],
        "http_method": None,
        "url_path": None,
        "expected_codes": None,
        "http_version": None,
        "domain_name": None,
    }
    if http is not None:
        method, _, rest = http["http_request"].partition(" ")
        path, _, version = rest.partition(" ")
        view.update(
            http_method=method,
            url_path=path,
            expected_codes=http.get("http_response_codes") or _codes_out(http["http_response_code"]),
            http_version=float(version.removeprefix("HTTP/")) if version else 1.0,
            domain_name=http.get("http_request_host"),
        )
    return view


def _codes_out(classes: list[str]) -> str:
    if "HTTP_ANY" in classes:
        return "100-599"
    digits = sorted(int(c[5]) for c in classes if len(c) == 9)
    if not digits:
        return "200"
    return f"{digits[0]}00-{digits[-1]}99"


def l7rule(
    policy: StoredObject, match: dict[str, Any], snap: Snapshot, provisioning: str, operating: str
) -> dict[str, Any]:
    meta = snap.data(f"l7rule:{match['match_id']}")
    project = ids.project_of(policy.tenant_uuid)
    return {
        "id": match["match_id"],
        "type": match["type"],
        "compare_type": match["compare_type"],
        "key": match.get("key"),
        "value": match["value"],
        "invert": bool(match.get("invert", False)),
        "admin_state_up": bool(match.get("enabled", True)),
        "project_id": project,
        "tenant_id": project,
        "provisioning_status": provisioning,
        "operating_status": operating,
        "created_at": meta.get("created_at", stamp(policy.created)),
        "updated_at": meta.get("updated_at", stamp(policy.last_modified)),
        "tags": meta.get("tags", []),
    }


def l7policy(
    policy: StoredObject, snap: Snapshot, provisioning: str, operating: str, position: int
) -> dict[str, Any]:
    data = policy.data
    _, vs = snap.lb_of_policy(policy)
    redirect_pool = snap.ref(data.get("redirect_pool_ref"))
    return {
        **_common(policy, snap),
        "description": data.get("description", ""),
        "admin_state_up": bool(data.get("enabled", True)),
        "provisioning_status": provisioning,
        "operating_status": operating,
        "listener_id": ids.of(vs.uuid) if vs else None,
        "action": data["action"],
        "position": position,
        "redirect_pool_id": ids.of(redirect_pool.uuid) if redirect_pool else None,
        "redirect_url": data.get("redirect_url"),
        "redirect_prefix": data.get("redirect_prefix"),
        "redirect_http_code": data.get("redirect_http_code")
        if data["action"] in ("REDIRECT_TO_URL", "REDIRECT_PREFIX")
        else None,
        "rules": [{"id": m["match_id"]} for m in data.get("matches", [])],
    }
