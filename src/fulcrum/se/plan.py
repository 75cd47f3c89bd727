"""Pure decisions of an apply: does a new view need a reload, and which runtime commands converge HAProxy.

A reload is needed unless the only differences between the previously applied view and the new one
are servers added, removed, enabled, disabled, drained or re-weighted. Those are applied through the
runtime API; afterwards (and after every reload or start) the observed server state is converged on
the desired one, which also repairs whatever the state file restored or an operator changed by hand.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from fulcrum.se.render import server_arguments
from fulcrum.se.render.view import View

# srv_admin_state bits of `show servers state` (HAProxy's enum srv_admin). CMAINT (0x04) only records
# that the config said `disabled`; the server is in maintenance only while one of MAINT is set.
ADMIN_MAINT_FLAGS = 0x01 | 0x02 | 0x20 | 0x40  # forced, inherited, resolution, hostname maintenance
ADMIN_DRAIN_FLAGS = 0x08 | 0x10  # forced, inherited drain
_SERVER_RUNTIME_FIELDS = frozenset({"weight", "state"})


class AdminState(StrEnum):
    READY = "ready"
    DRAIN = "drain"
    MAINT = "maint"


def admin_state_from_flags(flags: int) -> AdminState:
    if flags & ADMIN_MAINT_FLAGS:
        return AdminState.MAINT
    if flags & ADMIN_DRAIN_FLAGS:
        return AdminState.DRAIN
    return AdminState.READY


@dataclass(frozen=True)
class ObservedServer:
    """One row of `show servers state`, reduced to what convergence compares."""

    backend: str
    name: str
    admin_flags: int
    user_weight: int

    @property
    def admin_state(self) -> AdminState:
        return admin_state_from_flags(self.admin_flags)


@dataclass(frozen=True)
class AddServer:
    backend: str
    server: str
    address: str
    arguments: str


@dataclass(frozen=True)
class DeleteServer:
    backend: str
    server: str


@dataclass(frozen=True)
class SetState:
    backend: str
    server: str
    state: AdminState


@dataclass(frozen=True)
class SetWeight:
    backend: str
    server: str
    weight: int


@dataclass(frozen=True)
class EnableHealth:
    backend: str
    server: str


RuntimeOp = AddServer | DeleteServer | SetState | SetWeight | EnableHealth


@dataclass(frozen=True)
class Convergence:
    ops: tuple[RuntimeOp, ...]
    missing_backends: tuple[str, ...] = ()  # desired backends the running HAProxy does not have


def _static(server: View) -> View:
    return {key: value for key, value in server.items() if key not in _SERVER_RUNTIME_FIELDS}


def _settings(backend: View) -> View:
    return {key: value for key, value in backend.items() if key != "servers"}


def reload_reason(old: View | None, new: View) -> str | None:
    """Why `new` cannot be applied to a HAProxy running `old` through the runtime API; None if it can."""
    if old is None:
        return "no previously applied configuration"
    for section in ("process", "defaults", "frontends"):
        if old[section] != new[section]:
            return f"{section} changed"
    old_backends = {b["name"]: b for b in old["backends"]}
    new_backends = {b["name"]: b for b in new["backends"]}
    if old_backends.keys() != new_backends.keys():
        return "backends added or removed"
    for name, backend in new_backends.items():
        previous = old_backends[name]
        if _settings(previous) != _settings(backend):
            return f"backend {name} settings changed"
        old_servers = {s["name"]: s for s in previous["servers"]}
        for server in backend["servers"]:
            before = old_servers.get(server["name"])
            if before is None and not backend["dynamic_servers"]:
                return f"server {name}/{server['name']} added to a backend that cannot add servers at runtime"
            if before is not None and _static(before) != _static(server):
                return f"server {name}/{server['name']} changed beyond weight and state"
    return None


def plan_convergence(
    view: View, observed_backends: Collection[str], observed_servers: Iterable[ObservedServer]
) -> Convergence:
    """The runtime commands that make the running HAProxy's servers match `view`, in order."""
    by_backend: dict[str, dict[str, ObservedServer]] = {}
    for observed in observed_servers:
        by_backend.setdefault(observed.backend, {})[observed.name] = observed
    ops: list[RuntimeOp] = []
    missing: list[str] = []
    for backend in view["backends"]:
        name = backend["name"]
        if name not in observed_backends:
            missing.append(name)
            continue
        current = by_backend.get(name, {})
        desired_names = {s["name"] for s in backend["servers"]}
        # Deletions first: a new server may reuse the numeric id of one that goes away.
        ops.extend(DeleteServer(name, server) for server in sorted(current.keys() - desired_names))
        for server in backend["servers"]:
            desired_state = AdminState(server["state"])
            seen = current.get(server["name"])
            if seen is None:
                arguments = server_arguments(backend, server)
                ops.append(AddServer(name, server["name"], server["address"], arguments))
                if server["check"]:
                    ops.append(EnableHealth(name, server["name"]))
                # A server added at runtime starts in maintenance.
                if desired_state is not AdminState.MAINT:
                    ops.append(SetState(name, server["name"], desired_state))
                continue
            if seen.admin_state is not desired_state:
                ops.append(SetState(name, server["name"], desired_state))
            if seen.user_weight != server["weight"]:
                ops.append(SetWeight(name, server["name"], server["weight"]))
    return Convergence(tuple(ops), tuple(missing))
