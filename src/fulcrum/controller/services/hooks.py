"""Behaviour particular to one object type, run inside the generic write of `objects.ObjectService`.

Hooks run in this order for a write: authorize -> validate (schema) -> before_refs (defaults given by
name) -> references resolved -> after_refs (rules that need the targets) -> store -> after_write.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from fulcrum.cloud.local.connector import SE_DATA_NETWORK
from fulcrum.controller.services import certificates, refs
from fulcrum.controller.services.errors import Conflict, Forbidden, InvalidInput
from fulcrum.controller.services.rbac import Caller, can_manage_user
from fulcrum.controller.services.se_config import MONITORS, SUPPORTED_ALGORITHMS
from fulcrum.controller.store import repo
from fulcrum.controller.store.repo import StoredObject
from fulcrum.model.enums import CloudType, Role

if TYPE_CHECKING:
    from fulcrum.controller.services.objects import ObjectService, WriteContext

DEFAULT_CLOUD = "Default-Cloud"
DEFAULT_SE_GROUP = "Default-Group"
DEFAULT_APPLICATION_PROFILE = "System-HTTP"
SUPPORTED_MONITORS = tuple(MONITORS)
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class TypeHooks:
    authorize: Callable[[ObjectService, Caller, StoredObject | None], None] | None = None
    before_refs: Callable[[WriteContext], None] | None = None
    after_refs: Callable[[WriteContext], None] | None = None
    after_write: Callable[[WriteContext], None] | None = None
    before_delete: Callable[[ObjectService, Connection, Caller, StoredObject], None] | None = None


def _default(field: str, name: str) -> Callable[[WriteContext], None]:
    def fill(ctx: WriteContext) -> None:
        if ctx.data.get(field) is None:
            ctx.data[field] = name

    return fill


def _target(ctx: WriteContext, ref_value: str) -> StoredObject:
    obj = repo.get(ctx.conn, refs.uuid_of(ref_value))
    if obj is None:  # resolve() checked it moments ago in the same transaction
        raise InvalidInput(f"reference {ref_value} vanished")
    return obj


# --- users ----------------------------------------------------------------------------------------

_SELF_SERVICE_FIELDS = {"password", "full_name", "email"}


def _active_system_admins(conn: Connection, service: ObjectService, excluding: str) -> int:
    return sum(
        1
        for user in repo.all_of_type(conn, "user")
        if user.uuid != excluding
        and user.data.get("is_active", True)
        and Role.SYSTEM_ADMIN in service.user_access(user).values()
    )


def _authorize_user(service: ObjectService, caller: Caller, existing: StoredObject | None) -> None:
    if existing is not None and existing.uuid == caller.user_uuid:
        return  # self-service; after_refs limits what may change
    if existing is not None and not can_manage_user(caller, service.user_access(existing)):
        raise Forbidden(f"role {caller.role.value} may not change user {existing.name!r}")
    if not (caller.is_system_admin or caller.role == Role.TENANT_ADMIN):
        raise Forbidden(f"role {caller.role.value} may not change user objects")


def _user_after_refs(ctx: WriteContext) -> None:
    data, caller, existing = ctx.data, ctx.caller, ctx.existing
    access = {refs.uuid_of(a["tenant_ref"]): Role(a["role"]) for a in data["access"]}
    if not access:
        raise InvalidInput("access: give at least one tenant and role")
    if existing is not None and existing.uuid == caller.user_uuid and not caller.is_system_admin:
        before = {k: v for k, v in existing.data.items() if k not in _SELF_SERVICE_FIELDS}
        after = {k: v for k, v in data.items() if k not in _SELF_SERVICE_FIELDS}
        if before != after:
            raise Forbidden("you may change only your own password, full_name and email")
    elif not can_manage_user(caller, access):
        raise Forbidden("you may grant roles only in tenants you administer, and never system-admin")
    if data.get("default_tenant_ref") is None:
        data["default_tenant_ref"] = refs.canonical("tenant", next(iter(access)))
    elif refs.uuid_of(data["default_tenant_ref"]) not in access and Role.SYSTEM_ADMIN not in access.values():
        raise InvalidInput("default_tenant_ref: must be one of the tenants in access")
    password = ctx.secrets.pop("password", None)
    if existing is None and password is None:
        raise InvalidInput("password: is required for a new user")
    if password is not None:
        ctx.secrets["password_hash"] = ctx.service.passwords.hash(password)
    was_admin = existing is not None and Role.SYSTEM_ADMIN in ctx.service.user_access(existing).values()
    still_admin = Role.SYSTEM_ADMIN in access.values() and data.get("is_active", True)
    if was_admin and not still_admin and _active_system_admins(ctx.conn, ctx.service, ctx.uuid) == 0:
        raise Conflict("this is the last active system-admin; grant system-admin to someone else first")


def _user_after_write(ctx: WriteContext) -> None:
    if ctx.existing is not None and "password_hash" in ctx.secrets:
        repo.delete_user_tokens(ctx.conn, ctx.uuid)  # a new password ends every session of the old one


def _user_before_delete(service: ObjectService, conn: Connection, caller: Caller, user: StoredObject) -> None:
    if user.uuid == caller.user_uuid:
        raise Conflict("you cannot delete your own user")
    if (
        Role.SYSTEM_ADMIN in service.user_access(user).values()
        and _active_system_admins(conn, service, user.uuid) == 0
    ):
        raise Conflict("this is the last active system-admin and cannot be deleted")


# --- tenants --------------------------------------------------------------------------------------


def _tenant_before_delete(
    service: ObjectService, conn: Connection, caller: Caller, tenant: StoredObject
) -> None:
    counts = repo.count_in_tenant(conn, tenant.uuid)
    if counts:
        what = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
        raise Conflict(f"tenant {tenant.name!r} still holds {what}; delete them first")


# --- VIPs -----------------------------------------------------------------------------------------


def _vsvip_after_refs(ctx: WriteContext) -> None:
    cloud = _target(ctx, ctx.data["cloud_ref"])
    vtype = CloudType(cloud.data["vtype"])
    previous = {v["vip_id"]: v for v in (ctx.existing.data["vip"] if ctx.existing else [])}
    in_use = _addresses_in_use(ctx.conn, cloud.uuid, ctx.uuid)
    for index, vip in enumerate(ctx.data["vip"]):
        where = f"vip[{index}]"
        if vip["ip_address"] is None:
            kept = previous.get(vip["vip_id"], {}).get("ip_address")
            vip["ip_address"] = kept if kept and kept not in in_use else _allocate(cloud, vip, in_use, where)
        address = ipaddress.ip_address(vip["ip_address"])
        if vtype == CloudType.CLOUD_LOCAL and not any(
            address in net for net in LOOPBACK if net.version == address.version
        ):
            raise InvalidInput(f"{where}.ip_address: the local cloud serves VIPs on loopback addresses only")
        if vtype == CloudType.CLOUD_LOCAL and address in SE_DATA_NETWORK:
            raise InvalidInput(
                f"{where}.ip_address: {SE_DATA_NETWORK} is reserved for the SEs' own data addresses"
            )
        if vip["ip_address"] in in_use:
            raise Conflict(
                f"{where}.ip_address: {vip['ip_address']} is already in use in cloud {cloud.name!r}"
            )
        in_use.add(vip["ip_address"])


def _addresses_in_use(conn: Connection, cloud_uuid: str, except_uuid: str) -> set[str]:
    used = set()
    for vsvip in repo.all_of_type(conn, "vsvip"):
        if vsvip.uuid != except_uuid and refs.uuid_of(vsvip.data["cloud_ref"]) == cloud_uuid:
            used.update(v["ip_address"] for v in vsvip.data["vip"] if v.get("ip_address"))
    return used


def _allocate(cloud: StoredObject, vip: dict[str, Any], in_use: set[str], where: str) -> str:
    vtype = CloudType(cloud.data["vtype"])
    if vip.get("subnet"):
        network = ipaddress.ip_network(vip["subnet"])
    elif vtype == CloudType.CLOUD_LOCAL:
        network = ipaddress.ip_network(cloud.data["local_configuration"]["vip_network"])
    elif vtype == CloudType.CLOUD_NETNS:
        network = ipaddress.ip_network(cloud.data["netns_configuration"]["vip_network"])
    else:
        raise InvalidInput(f"{where}.subnet: auto_allocate_ip in an OpenStack cloud needs a subnet")
    for candidate in network.hosts():
        if str(candidate) not in in_use:
            return str(candidate)
    raise Conflict(f"{where}: no free address left in {network}")


# --- virtual services -----------------------------------------------------------------------------


def _vs_before_refs(ctx: WriteContext) -> None:
    _default("se_group_ref", DEFAULT_SE_GROUP)(ctx)
    _default("application_profile_ref", DEFAULT_APPLICATION_PROFILE)(ctx)
    if ctx.data.get("vip") is None and ctx.data.get("vsvip_ref") is None:
        raise InvalidInput("vsvip_ref: give vsvip_ref or an inline vip")


def _vs_after_refs(ctx: WriteContext) -> None:
    data = ctx.data
    se_group = _target(ctx, data["se_group_ref"])
    if data.get("cloud_ref") is None:
        data["cloud_ref"] = se_group.data["cloud_ref"]
    elif data["cloud_ref"] != se_group.data["cloud_ref"]:
        raise InvalidInput(f"se_group_ref: SE group {se_group.name!r} belongs to another cloud")
    profile = _target(ctx, data["application_profile_ref"])
    ssl_services = [s for s in data["services"] if s["enable_ssl"]]
    if ssl_services and profile.data["type"] == "APPLICATION_PROFILE_TYPE_DNS":
        raise InvalidInput("services: a DNS virtual service cannot enable SSL")
    if profile.data["type"] != "APPLICATION_PROFILE_TYPE_HTTP":
        for field in ("http_policies", "insert_headers"):
            if data.get(field):
                raise InvalidInput(f"{field}: needs an HTTP application profile ({profile.name!r} is not)")
    for index, cert_ref in enumerate(data["ssl_key_and_certificate_refs"]):
        cert = _target(ctx, cert_ref)
        if cert.data["type"] != "SSL_CERTIFICATE_TYPE_VIRTUALSERVICE":
            raise InvalidInput(
                f"ssl_key_and_certificate_refs[{index}]: {cert.name!r} is not a virtual-service certificate"
            )
    inline = data.pop("vip", None)
    if inline is not None:
        owned = next((o for o in repo.owned_by(ctx.conn, ctx.uuid) if o.type == "vsvip"), None)
        if (
            owned is None
            and repo.find_by_name(ctx.conn, "vsvip", data["name"], [ctx.tenant_uuid]) is not None
        ):
            raise Conflict(f"vip: a vsvip named {data['name']!r} already exists; refer to it with vsvip_ref")
        body = {"name": owned.name if owned else data["name"], "cloud_ref": data["cloud_ref"], "vip": inline}
        vsvip = ctx.service.write_owned(ctx, "vsvip", body, owned)
        data["vsvip_ref"] = vsvip["url"]
    vsvip = _target(ctx, data["vsvip_ref"])
    if vsvip.data["cloud_ref"] != data["cloud_ref"]:
        raise InvalidInput(f"vsvip_ref: vsvip {vsvip.name!r} belongs to another cloud")
    _check_vip_ports(ctx, vsvip)


def _ports(services: list[dict[str, Any]]) -> set[int]:
    return {p for s in services for p in range(s["port"], (s.get("port_range_end") or s["port"]) + 1)}


def _check_vip_ports(ctx: WriteContext, vsvip: StoredObject) -> None:
    """Two virtual services may share a VIP, but never a port on it."""
    mine = _ports(ctx.data["services"])
    for referrer in repo.referrers(ctx.conn, vsvip.uuid):
        if referrer.type != "virtualservice" or referrer.uuid == ctx.uuid:
            continue
        other = repo.get(ctx.conn, referrer.uuid)
        clash = sorted(mine & _ports(other.data["services"])) if other else []
        if clash:
            raise Conflict(
                f"services: port {clash[0]} on vsvip {vsvip.name!r} is already used by "
                f"virtual service {referrer.name!r}"
            )


# --- pools ----------------------------------------------------------------------------------------


def _pool_after_refs(ctx: WriteContext) -> None:
    algorithm = ctx.data["lb_algorithm"]
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise InvalidInput(
            f"lb_algorithm: {algorithm} is not supported yet; use one of {', '.join(SUPPORTED_ALGORITHMS)}"
        )
    for index, ref in enumerate(ctx.data["health_monitor_refs"]):
        monitor = _target(ctx, ref)
        if monitor.data["type"] not in SUPPORTED_MONITORS:
            raise InvalidInput(
                f"health_monitor_refs[{index}]: {monitor.data['type']} monitors are not supported by "
                f"the data plane yet; use one of {', '.join(SUPPORTED_MONITORS)}"
            )


# --- certificates ---------------------------------------------------------------------------------


def _certificate_after_refs(ctx: WriteContext) -> None:
    pem = ctx.data["certificate"]["certificate"]
    ctx.data["certificate"]["info"] = certificates.describe(pem)
    key = ctx.secrets.get("key")
    passphrase = ctx.secrets.get("key_passphrase")
    if key is not None:
        ctx.secrets["key"] = certificates.normalise_key(key, passphrase, pem)
    elif ctx.existing_secrets.get("key"):
        certificates.normalise_key(ctx.existing_secrets["key"], None, pem)
    elif ctx.data["type"] == "SSL_CERTIFICATE_TYPE_VIRTUALSERVICE":
        raise InvalidInput("key: a private key is required for a virtual-service certificate")
    # The key is stored decrypted (then sealed at rest); the passphrase is of no further use.
    ctx.secrets["key_passphrase"] = None
    ctx.existing_secrets.pop("key_passphrase", None)


def _snmp_credentials(ctx: WriteContext) -> None:
    """Every trap server has its credentials, given now or kept from before (they are write-only)."""
    secrets = ctx.raw_secrets()
    for index, server in enumerate(ctx.data["trap_servers"]):
        where = f"trap_servers[{index}]"
        if server["version"] == "SNMP_VER2" and not secrets.get(f"{where}.community"):
            raise InvalidInput(f"{where}.community: required with SNMP_VER2")
        if server["version"] == "SNMP_VER3":
            for key in ("auth_passphrase", "priv_passphrase"):
                if not secrets.get(f"{where}.user.{key}"):
                    raise InvalidInput(f"{where}.user.{key}: required with SNMP_VER3")


HOOKS: dict[str, TypeHooks] = {
    "user": TypeHooks(
        authorize=_authorize_user,
        after_refs=_user_after_refs,
        after_write=_user_after_write,
        before_delete=_user_before_delete,
    ),
    "tenant": TypeHooks(before_delete=_tenant_before_delete),
    "pool": TypeHooks(after_refs=_pool_after_refs),
    "serviceenginegroup": TypeHooks(before_refs=_default("cloud_ref", DEFAULT_CLOUD)),
    "vsvip": TypeHooks(before_refs=_default("cloud_ref", DEFAULT_CLOUD), after_refs=_vsvip_after_refs),
    "virtualservice": TypeHooks(before_refs=_vs_before_refs, after_refs=_vs_after_refs),
    "sslkeyandcertificate": TypeHooks(after_refs=_certificate_after_refs),
    "snmptrapprofile": TypeHooks(after_refs=_snmp_credentials),
}
