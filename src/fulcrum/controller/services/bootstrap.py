"""First start: the admin tenant and user, the default cloud and SE group, and built-in profiles.

Idempotent: each object is created only when missing, so every start runs it and an upgrade that adds
a built-in object creates just that one.
"""

from __future__ import annotations

import os
import secrets
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fulcrum.controller.services.objects import ObjectService
from fulcrum.controller.services.rbac import system_caller
from fulcrum.controller.store import repo
from fulcrum.model.enums import Role

ADMIN_TENANT = "admin"
ADMIN_USER = "admin"

# (type, body, flags): builtin objects are read-only; protected ones are editable but not deletable.
DEFAULT_OBJECTS: list[tuple[str, dict[str, Any], str]] = [
    ("cloud", {"name": "Default-Cloud", "vtype": "CLOUD_LOCAL"}, "protected"),
    ("serviceenginegroup", {"name": "Default-Group", "cloud_ref": "Default-Cloud"}, "protected"),
    ("applicationprofile", {"name": "System-HTTP", "type": "APPLICATION_PROFILE_TYPE_HTTP"}, "builtin"),
    (
        # For servers that must not be told the client's address (Octavia listeners without
        # insert_headers): a virtual service can still turn X-Forwarded-For on with insert_headers.
        "applicationprofile",
        {
            "name": "System-HTTP-Plain",
            "type": "APPLICATION_PROFILE_TYPE_HTTP",
            "http_profile": {"xff_enabled": False},
        },
        "builtin",
    ),
    (
        "applicationprofile",
        {
            "name": "System-Secure-HTTP",
            "type": "APPLICATION_PROFILE_TYPE_HTTP",
            "http_profile": {"x_forwarded_proto_enabled": True, "http_to_https": True, "hsts_enabled": True},
        },
        "builtin",
    ),
    (
        "applicationprofile",
        {"name": "System-L4-Application", "type": "APPLICATION_PROFILE_TYPE_L4"},
        "builtin",
    ),
    ("applicationprofile", {"name": "System-DNS", "type": "APPLICATION_PROFILE_TYPE_DNS"}, "builtin"),
    ("healthmonitor", {"name": "System-TCP", "type": "HEALTH_MONITOR_TCP"}, "builtin"),
    ("healthmonitor", {"name": "System-HTTP", "type": "HEALTH_MONITOR_HTTP"}, "builtin"),
    ("healthmonitor", {"name": "System-HTTPS", "type": "HEALTH_MONITOR_HTTPS"}, "builtin"),
    (
        "applicationpersistenceprofile",
        {"name": "System-Persistence-Client-IP", "persistence_type": "PERSISTENCE_TYPE_CLIENT_IP_ADDRESS"},
        "builtin",
    ),
    (
        "applicationpersistenceprofile",
        {"name": "System-Persistence-Http-Cookie", "persistence_type": "PERSISTENCE_TYPE_HTTP_COOKIE"},
        "builtin",
    ),
    # Alerting: action groups by level (editable: attach syslog, e-mail, SNMP or webhook actions to
    # them) and the built-in alert configs that use them.
    *(
        (
            "actiongroupconfig",
            {"name": f"System-Alert-Level-{level.title()}", "level": f"ALERT_{level}"},
            "protected",
        )
        for level in ("HIGH", "MEDIUM", "LOW")
    ),
    *(
        (
            "alertconfig",
            {
                "name": name,
                "source": "EVENT_LOGS",
                "alert_rule": {"sys_event_rule": [{"event_id": event_id}]},
                "object_type": object_type,
                "throttle": 0,
                "action_group_ref": f"System-Alert-Level-{level}",
            },
            "protected",
        )
        for name, event_id, object_type, level in (
            ("System-SE-Down", "SE_DOWN", "serviceengine", "High"),
            ("System-VS-Down", "VS_DOWN", "virtualservice", "High"),
            ("System-Server-Down", "SERVER_DOWN", "pool", "Medium"),
        )
    ),
    (
        "alertconfig",
        {
            "name": "System-SE-CPU-High",
            "source": "METRICS",
            "object_type": "serviceengine",
            "alert_rule": {
                "metrics_rule": [
                    {
                        "metric_id": "se_stats.avg_cpu_usage",
                        "comparator": "CO_GT",
                        "threshold": 80,
                        "duration": 30,
                    }
                ]
            },
            "action_group_ref": "System-Alert-Level-Medium",
        },
        "protected",
    ),
]


@dataclass(frozen=True)
class BootstrapResult:
    admin_tenant_uuid: str
    generated_password: str | None  # set only on the start that created the admin user


def bootstrap(objects: ObjectService, data_dir: Path, admin_password: str | None) -> BootstrapResult:
    with objects.db.read() as conn:
        existing = [t for t in repo.all_of_type(conn, "tenant") if t.name == ADMIN_TENANT]
    if existing:
        admin_tenant = existing[0].uuid
        objects.admin_tenant_uuid = admin_tenant
    else:
        admin_tenant = _create_admin_tenant(objects)
    caller = system_caller(admin_tenant)

    generated = None
    with objects.db.read() as conn:
        has_admin = repo.find_by_name(conn, "user", ADMIN_USER, [admin_tenant]) is not None
    if not has_admin:
        password = admin_password
        if not password:
            password = generated = secrets.token_urlsafe(18)
            _write_private(data_dir / "admin-password", password + "\n")
        objects.create(
            caller,
            "user",
            {
                "name": ADMIN_USER,
                "password": password,
                "full_name": "Fulcrum administrator",
                "access": [{"tenant_ref": ADMIN_TENANT, "role": Role.SYSTEM_ADMIN.value}],
                "default_tenant_ref": ADMIN_TENANT,
            },
        )

    for type_name, body, flags in DEFAULT_OBJECTS:
        with objects.db.read() as conn:
            present = repo.find_by_name(conn, type_name, body["name"], [admin_tenant]) is not None
        if not present:
            objects.create(caller, type_name, body, flags=flags)
    return BootstrapResult(admin_tenant, generated)


def _create_admin_tenant(objects: ObjectService) -> str:
    """The admin tenant is its own tenant, so it is created with a uuid chosen up front."""
    tenant_uuid = f"tenant-{uuidlib.uuid4()}"
    objects.admin_tenant_uuid = tenant_uuid
    caller = system_caller(tenant_uuid)
    objects.create(
        caller,
        "tenant",
        {"name": ADMIN_TENANT, "description": "System tenant"},
        flags="protected",
        uuid=tenant_uuid,
    )
    return tenant_uuid


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
