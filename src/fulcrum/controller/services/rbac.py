"""Who may do what: the caller's identity in one tenant, and the pure permission rules.

Visibility and permission are separate questions. An object the caller may not see is answered with
404 (the caller never learns it exists); an object it may see but not change is 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fulcrum.model.enums import Role
from fulcrum.model.registry import ObjectType, Scope, WriteAccess

RANK = {
    Role.APPLICATION_OPERATOR: 0,
    Role.APPLICATION_ADMIN: 1,
    Role.TENANT_ADMIN: 2,
    Role.SYSTEM_ADMIN: 3,
}

_NEEDED = {
    WriteAccess.APPLICATION: Role.APPLICATION_ADMIN,
    WriteAccess.TENANT_ADMIN: Role.TENANT_ADMIN,
    WriteAccess.SYSTEM: Role.SYSTEM_ADMIN,
}


@dataclass(frozen=True)
class Caller:
    """An authenticated user acting in one tenant."""

    user_uuid: str
    user_name: str
    tenant_uuid: str
    tenant_name: str
    role: Role
    # tenant uuid -> role, for every tenant the user has access to
    access: dict[str, Role] = field(default_factory=dict)
    source_ip: str = ""

    @property
    def is_system_admin(self) -> bool:
        return self.role == Role.SYSTEM_ADMIN

    def at_least(self, role: Role) -> bool:
        return RANK[self.role] >= RANK[role]


def role_allows_write(caller: Caller, object_type: ObjectType) -> bool:
    """Whether the caller's role may change objects of this type at all (before object checks)."""
    if object_type.write == WriteAccess.NONE:
        return False
    return caller.at_least(_NEEDED[object_type.write])


def effective_role(access: dict[str, Role], tenant_uuid: str) -> Role | None:
    """A system-admin anywhere is a system-admin everywhere; otherwise the role granted in that tenant."""
    if Role.SYSTEM_ADMIN in access.values():
        return Role.SYSTEM_ADMIN
    return access.get(tenant_uuid)


def can_see_tenant(caller: Caller, tenant_uuid: str) -> bool:
    return caller.is_system_admin or tenant_uuid in caller.access


def can_see_user(caller: Caller, user_uuid: str, user_access: dict[str, Role]) -> bool:
    if caller.is_system_admin or user_uuid == caller.user_uuid:
        return True
    return caller.role == Role.TENANT_ADMIN and caller.tenant_uuid in user_access


def can_manage_user(caller: Caller, user_access: dict[str, Role]) -> bool:
    """A tenant-admin manages users whose every grant is below system-admin in a tenant it administers."""
    if caller.is_system_admin:
        return True
    if caller.role != Role.TENANT_ADMIN:
        return False
    return all(
        role != Role.SYSTEM_ADMIN and caller.access.get(tenant) == Role.TENANT_ADMIN
        for tenant, role in user_access.items()
    )


def scoped_in_tenant(object_type: ObjectType) -> bool:
    return object_type.scope in (Scope.TENANT, Scope.SHARED)


def system_caller(admin_tenant_uuid: str) -> Caller:
    """The controller itself, for objects it creates on its own (bootstrap, service engines)."""
    return Caller(
        user_uuid="system",
        user_name="system",
        tenant_uuid=admin_tenant_uuid,
        tenant_name="admin",
        role=Role.SYSTEM_ADMIN,
        access={admin_tenant_uuid: Role.SYSTEM_ADMIN},
    )
