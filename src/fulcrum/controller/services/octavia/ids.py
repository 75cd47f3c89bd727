"""Octavia ids are the uuid part of native uuids, so both APIs name one object with one id.

A load balancer is a vsvip (`vsvip-<id>`), a listener a virtual service, a pool a pool, a health
monitor a health monitor. Members are servers inside a pool: their id is the server's `external_uuid`,
or, for servers created through the native API without one, a name-based uuid of pool, address and
port. A Keystone project id is the tenant uuid without dashes, in both directions.
"""

from __future__ import annotations

import re
import uuid as uuidlib

from fulcrum.controller.services.errors import NotFound

# Fixed namespace for the ids Fulcrum derives (members without external_uuid, networks, subnets).
NAMESPACE = uuidlib.UUID("4f0d7c55-2b8e-4f5e-9a57-0f6a1c2d9e31")

NATIVE_TYPE = {
    "loadbalancer": "vsvip",
    "listener": "virtualservice",
    "pool": "pool",
    "healthmonitor": "healthmonitor",
    "l7policy": "httppolicyset",
}

LABEL = {"loadbalancer": "Load Balancer", "listener": "Listener", "pool": "Pool",
         "healthmonitor": "Health Monitor", "l7policy": "L7 Policy"}  # fmt: skip

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def is_uuid(value: str) -> bool:
    return bool(_UUID.match(value))


def native(kind: str, octavia_id: str) -> str:
    """The native uuid of an Octavia resource; an id that is not a uuid cannot exist (404)."""
    if not is_uuid(octavia_id):
        raise NotFound(f"{LABEL[kind]} {octavia_id} could not be found.")
    return f"{NATIVE_TYPE[kind]}-{uuidlib.UUID(octavia_id)}"


def of(native_uuid: str) -> str:
    return native_uuid.split("-", 1)[1]


def project_of(tenant_uuid: str) -> str:
    return uuidlib.UUID(of(tenant_uuid)).hex


def tenant_of(project_id: str) -> str:
    try:
        return f"tenant-{uuidlib.UUID(hex=project_id)}"
    except ValueError:
        return f"tenant-{uuidlib.uuid5(NAMESPACE, project_id)}"


def member_id(pool_uuid: str, server: dict[str, object], default_port: int) -> str:
    given = server.get("external_uuid")
    if isinstance(given, str) and given:
        return given
    port = server.get("port") or default_port
    return str(uuidlib.uuid5(NAMESPACE, f"{pool_uuid}/{server['ip']}/{port}"))


def network_id(cloud_uuid: str) -> str:
    return str(uuidlib.uuid5(NAMESPACE, f"{cloud_uuid}/vip-network"))


def subnet_id(cloud_uuid: str) -> str:
    return str(uuidlib.uuid5(NAMESPACE, f"{cloud_uuid}/vip-subnet"))


def new_id() -> str:
    return str(uuidlib.uuid4())
