"""The catalogue of object types: schema, scope, who may write them, and where their references are.

Reference and secret fields are discovered from the `Ref` and `Secret` markers on the schemas, so a
new field needs no second declaration here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from fulcrum.model import objects
from fulcrum.model.types import Ref, Secret


class Scope(StrEnum):
    TENANT = "tenant"  # lives in one tenant, visible only there
    SHARED = "shared"  # lives in the admin tenant, readable from every tenant (clouds, SE groups)
    GLOBAL = "global"  # tenants and users: visibility decided per object, not by tenant


class WriteAccess(StrEnum):
    APPLICATION = "application"  # application-admin and above, in their tenant
    TENANT_ADMIN = "tenant-admin"  # tenant-admin and above
    SYSTEM = "system"  # system-admin only
    NONE = "none"  # nobody through the config API (created by the controller)


@dataclass(frozen=True)
class RefPath:
    """Where a reference sits in an object: `path` is a list of keys; `[]` steps into a list."""

    path: tuple[str, ...]
    target: str

    @property
    def label(self) -> str:
        return ".".join(self.path).replace(".[]", "[]")


@dataclass(frozen=True)
class ObjectType:
    name: str
    schema: type[BaseModel]
    scope: Scope
    write: WriteAccess
    ref_paths: tuple[RefPath, ...] = field(default=())
    secret_paths: tuple[tuple[str, ...], ...] = field(default=())

    @property
    def uuid_prefix(self) -> str:
        return f"{self.name}-"


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """Strip Annotated/Optional layers, collecting metadata; return (core type, metadata)."""
    metadata: list[Any] = []
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            metadata.extend(annotation.__metadata__)
            annotation = annotation.__origin__
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation, metadata
            annotation = args[0]
        else:
            return annotation, metadata


def _walk_schema(schema: type[BaseModel], prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, info in schema.model_fields.items():
        core, metadata = _unwrap(info.annotation)
        metadata = [*metadata, *info.metadata]
        path = (*prefix, name)
        yield from _inspect(core, metadata, path)


def _inspect(core: Any, metadata: list[Any], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    for marker in metadata:
        yield path, marker
    if typing.get_origin(core) is list:
        (item,) = typing.get_args(core)
        item_core, item_meta = _unwrap(item)
        yield from _inspect(item_core, item_meta, (*path, "[]"))
    elif isinstance(core, type) and issubclass(core, BaseModel):
        yield from _walk_schema(core, path)


def _object_type(name: str, schema: type[BaseModel], scope: Scope, write: WriteAccess) -> ObjectType:
    markers = list(_walk_schema(schema, ()))
    refs = tuple(RefPath(path, m.target) for path, m in markers if isinstance(m, Ref))
    secrets = tuple(path for path, m in markers if isinstance(m, Secret))
    return ObjectType(name, schema, scope, write, refs, secrets)


TYPES: dict[str, ObjectType] = {
    t.name: t
    for t in (
        _object_type("tenant", objects.Tenant, Scope.GLOBAL, WriteAccess.SYSTEM),
        _object_type("user", objects.User, Scope.GLOBAL, WriteAccess.TENANT_ADMIN),
        _object_type("cloud", objects.Cloud, Scope.SHARED, WriteAccess.SYSTEM),
        _object_type("serviceenginegroup", objects.ServiceEngineGroup, Scope.SHARED, WriteAccess.SYSTEM),
        _object_type("serviceengine", objects.ServiceEngine, Scope.SHARED, WriteAccess.NONE),
        _object_type("healthmonitor", objects.HealthMonitor, Scope.TENANT, WriteAccess.APPLICATION),
        _object_type(
            "applicationpersistenceprofile",
            objects.ApplicationPersistenceProfile,
            Scope.TENANT,
            WriteAccess.APPLICATION,
        ),
        _object_type("applicationprofile", objects.ApplicationProfile, Scope.TENANT, WriteAccess.APPLICATION),
        _object_type(
            "sslkeyandcertificate", objects.SslKeyAndCertificate, Scope.TENANT, WriteAccess.APPLICATION
        ),
        _object_type("pool", objects.Pool, Scope.TENANT, WriteAccess.APPLICATION),
        _object_type("httppolicyset", objects.HttpPolicySet, Scope.TENANT, WriteAccess.APPLICATION),
        _object_type("vsvip", objects.VsVip, Scope.TENANT, WriteAccess.APPLICATION),
        _object_type("virtualservice", objects.VirtualService, Scope.TENANT, WriteAccess.APPLICATION),
        _object_type("alertsyslogconfig", objects.AlertSyslogConfig, Scope.TENANT, WriteAccess.TENANT_ADMIN),
        _object_type("alertemailconfig", objects.AlertEmailConfig, Scope.TENANT, WriteAccess.TENANT_ADMIN),
        _object_type("snmptrapprofile", objects.SnmpTrapProfile, Scope.TENANT, WriteAccess.TENANT_ADMIN),
        _object_type("webhook", objects.Webhook, Scope.TENANT, WriteAccess.TENANT_ADMIN),
        _object_type("actiongroupconfig", objects.ActionGroupConfig, Scope.TENANT, WriteAccess.TENANT_ADMIN),
        _object_type("alertconfig", objects.AlertConfig, Scope.TENANT, WriteAccess.TENANT_ADMIN),
    )
}
"""Every native type, in dependency order: an object only refers to types listed before it."""


def get_path(data: Any, path: tuple[str, ...]) -> Iterator[Any]:
    """Yield every value found at `path` in a plain dict (lists fan out at `[]`)."""
    if not path:
        yield data
        return
    head, rest = path[0], path[1:]
    if head == "[]":
        for item in data if isinstance(data, list) else ():
            yield from get_path(item, rest)
    elif isinstance(data, dict) and data.get(head) is not None:
        yield from get_path(data[head], rest)


def map_path(data: Any, path: tuple[str, ...], fn: Callable[[Any, str], Any], where: str = "") -> Any:
    """Return `data` with every value at `path` replaced by fn(value, location-label)."""
    if not path:
        return fn(data, where)
    head, rest = path[0], path[1:]
    if head == "[]":
        if not isinstance(data, list):
            return data
        return [map_path(item, rest, fn, f"{where}[{i}]") for i, item in enumerate(data)]
    if isinstance(data, dict) and data.get(head) is not None:
        label = f"{where}.{head}" if where else head
        return {**data, head: map_path(data[head], rest, fn, label)}
    return data


def pop_path(data: dict[str, Any], path: tuple[str, ...]) -> None:
    """Remove the field at `path` in place (used to take secrets out of a stored document)."""
    if len(path) == 1:
        data.pop(path[0], None)
        return
    head, rest = path[0], path[1:]
    child = data.get(head)
    if isinstance(child, dict):
        pop_path(child, rest)
    elif isinstance(child, list) and rest and rest[0] == "[]":
        for item in child:
            if isinstance(item, dict) and rest[1:]:
                pop_path(item, rest[1:])
