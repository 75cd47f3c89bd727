"""Keystone roles -> Fulcrum role, project id -> tenant uuid, and the identity headers read back."""

from __future__ import annotations

import uuid

import pytest

from fulcrum.controller.services.errors import Forbidden, Unauthenticated
from fulcrum.controller.services.keystone import (
    TokenCache,
    fulcrum_role,
    identity_from_environ,
    tenant_uuid_for_project,
)
from fulcrum.model.enums import Role

ROLE_CASES = [
    (("admin",), Role.SYSTEM_ADMIN),
    (("load-balancer_admin",), Role.SYSTEM_ADMIN),
    (("member",), Role.APPLICATION_ADMIN),
    (("load-balancer_member",), Role.APPLICATION_ADMIN),
    (("reader",), Role.APPLICATION_OPERATOR),
    (("load-balancer_observer",), Role.APPLICATION_OPERATOR),
    (("load-balancer_global_observer",), Role.APPLICATION_OPERATOR),
    # Keystone's implied roles arrive together: the highest wins, in any order.
    (("reader", "member", "admin", "manager"), Role.SYSTEM_ADMIN),
    (("reader", "member"), Role.APPLICATION_ADMIN),
    (("load-balancer_observer", "load-balancer_member"), Role.APPLICATION_ADMIN),
    (("member", "load-balancer_admin"), Role.SYSTEM_ADMIN),
    (("heat_stack_owner", "reader"), Role.APPLICATION_OPERATOR),
    # Role names compare without case, as oslo.policy compares them.
    (("Member",), Role.APPLICATION_ADMIN),
    (("ADMIN",), Role.SYSTEM_ADMIN),
]


@pytest.mark.parametrize(("keystone_roles", "expected"), ROLE_CASES)
def test_role_mapping(keystone_roles: tuple[str, ...], expected: Role) -> None:
    assert fulcrum_role(keystone_roles) == expected


@pytest.mark.parametrize(
    "keystone_roles", [(), ("heat_stack_owner",), ("manager",), ("service",), ("load-balancer",)]
)
def test_no_load_balancer_role_is_forbidden(keystone_roles: tuple[str, ...]) -> None:
    with pytest.raises(Forbidden, match="load-balancer role"):
        fulcrum_role(keystone_roles)


HEX_ID = "0b3c9a526a7e4c8e9d3f2f1b5e6a7c80"
TENANT_CASES = [
    (HEX_ID, "tenant-0b3c9a52-6a7e-4c8e-9d3f-2f1b5e6a7c80"),
    (HEX_ID.upper(), "tenant-0b3c9a52-6a7e-4c8e-9d3f-2f1b5e6a7c80"),
    # The dashed spelling of the same uuid (as the Octavia API may be given it) is the same project.
    ("0b3c9a52-6a7e-4c8e-9d3f-2f1b5e6a7c80", "tenant-0b3c9a52-6a7e-4c8e-9d3f-2f1b5e6a7c80"),
]


@pytest.mark.parametrize(("project_id", "expected"), TENANT_CASES)
def test_uuid_project_id_is_the_tenant_uuid(project_id: str, expected: str) -> None:
    assert tenant_uuid_for_project(project_id) == expected


OTHER_IDS = ["default", "0b3c9a52", "x" * 64, HEX_ID + "0", "projet-été"]


@pytest.mark.parametrize("project_id", OTHER_IDS)
def test_other_project_ids_get_a_stable_derived_uuid(project_id: str) -> None:
    derived = tenant_uuid_for_project(project_id)
    assert derived == tenant_uuid_for_project(project_id)
    assert derived.startswith("tenant-")
    assert uuid.UUID(derived.removeprefix("tenant-")).version == 5
    assert derived != tenant_uuid_for_project(project_id + "0")


@pytest.mark.parametrize("project_id", [case[0] for case in TENANT_CASES] + OTHER_IDS)
def test_keystone_and_octavia_api_agree_on_the_tenant_of_a_project(project_id: str) -> None:
    # A project's load balancers created through the Octavia API and its Keystone callers share a tenant.
    from fulcrum.controller.services.octavia import ids

    assert tenant_uuid_for_project(project_id) == ids.tenant_of(project_id)


CONFIRMED = {
    "HTTP_X_IDENTITY_STATUS": "Confirmed",
    "HTTP_X_USER_ID": "u1",
    "HTTP_X_USER_NAME": "alice",
    "HTTP_X_PROJECT_ID": "0b3c9a526a7e4c8e9d3f2f1b5e6a7c80",
    "HTTP_X_PROJECT_NAME": "blue",
    "HTTP_X_ROLES": "reader,member",
}


def test_identity_read_from_confirmed_headers() -> None:
    identity = identity_from_environ(CONFIRMED)
    assert (identity.user_id, identity.user_name, identity.project_name) == ("u1", "alice", "blue")
    assert identity.roles == ("reader", "member")


def test_invalid_identity_is_unauthenticated() -> None:
    with pytest.raises(Unauthenticated):
        identity_from_environ({**CONFIRMED, "HTTP_X_IDENTITY_STATUS": "Invalid"})
    with pytest.raises(Unauthenticated):
        identity_from_environ({})


def test_token_without_project_is_forbidden() -> None:
    unscoped = {k: v for k, v in CONFIRMED.items() if k != "HTTP_X_PROJECT_ID"}
    with pytest.raises(Forbidden, match="project"):
        identity_from_environ(unscoped)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_token_cache_expires_entries() -> None:
    clock = FakeClock()
    cache = TokenCache(ttl_s=300, clock=clock)
    cache.set("a", {"token": 1}, time=60)
    cache.set("b", {"token": 2})  # no time given: the configured TTL
    clock.t += 59
    assert cache.get("a") == {"token": 1}
    clock.t += 1
    assert cache.get("a") is None
    assert cache.get("b") == {"token": 2}
    clock.t += 240
    assert cache.get("b") is None


def test_token_cache_is_bounded_dropping_the_oldest() -> None:
    cache = TokenCache(ttl_s=300, max_entries=2, clock=FakeClock())
    for key in ("a", "b", "c"):
        cache.set(key, key)
    assert [cache.get(k) for k in ("a", "b", "c")] == [None, "b", "c"]
