"""`fulcrum apply`: make the controller hold the objects of a YAML file, making only the real changes."""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import typer
import yaml

from fulcrum.cli.client import ApiError, CliError, FulcrumClient, looks_like_uuid
from fulcrum.cli.resources import RefNames, deep_merge, fail, open_client, pop_object_type
from fulcrum.model.registry import TYPES, ObjectType, RefPath, WriteAccess, get_path, map_path, pop_path

ORDER = {name: index for index, name in enumerate(TYPES)}
IGNORED = ("_last_modified",)
MISSING = object()
MAX_SHOWN = 120

HELP = "\n\n".join(
    (
        "Create or update the objects of a YAML file so that the controller holds what it describes.",
        "The file (-f) holds a list of objects, a mapping `objects: (list)`, or several `---` documents. "
        "Every object has a `type:` key (pool, virtualservice, ...) plus its fields; references are given "
        "by name. Objects are applied in dependency order (tenants, users, clouds, ... virtual services), "
        "then in file order.",
        "healthmonitor, applicationprofile and sslkeyandcertificate have a `type` field of their own, so "
        "they name their object type with `kind:` instead (`kind: healthmonitor` plus "
        "`type: HEALTH_MONITOR_HTTP`); `kind:` works for every object.",
        "Each object is looked up by name. Absent: it is created (+). Present: the controller computes, "
        "storing nothing, what a full replace with the file's fields would store; the object is updated "
        "(~, with a per-field diff) only if that differs from what it holds, else left alone (=). Fields "
        "left out of the file take their defaults on update, as with PUT. A second apply of the same file "
        "changes nothing.",
        "Write-only fields (user password, certificate key and key_passphrase, OpenStack password) are "
        "never returned by the controller, so they cannot be compared: they are sent on create, and on "
        "update only when some other field of the object changed. To change only a password, use "
        "`fulcrum <type> update`.",
        "--dry-run changes nothing: updates are validated by the controller, and creates too unless they "
        "refer to an object that the file creates first. Apply stops at the first failure (exit status 1).",
    )
)


@dataclass(frozen=True)
class Desired:
    """One object of the file: its type, its fields (without `kind:`/`type:`), and where it came from."""

    otype: ObjectType
    body: dict[str, Any]
    position: int

    @property
    def name(self) -> str:
        return str(self.body["name"])

    @property
    def label(self) -> str:
        return f"{self.otype.name} {self.name}"


@dataclass
class Tally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def summary(self, dry_run: bool) -> str:
        line = f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"
        return line + (" (dry run: nothing was changed)" if dry_run else "")


# --- reading the file -----------------------------------------------------------------------------


def read_documents(source: str) -> list[Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise CliError(f"{source} is not valid YAML: {exc}") from None


def raw_objects(documents: list[Any]) -> list[Any]:
    """Flatten the three accepted layouts into one list, in file order."""
    items: list[Any] = []
    for document in documents:
        if document is None:
            continue
        if isinstance(document, list):
            items.extend(document)
        elif (
            isinstance(document, dict)
            and "type" not in document
            and "kind" not in document
            and isinstance(document.get("objects"), list)
        ):
            items.extend(document["objects"])
        else:
            items.append(document)
    return items


def desired_object(item: Any, position: int) -> Desired:
    where = f"object #{position + 1}"
    if not isinstance(item, dict):
        raise CliError(f"{where}: expected a mapping with a type: (or kind:) key and the object's fields")
    body = dict(item)
    type_name, key = pop_object_type(body)
    if type_name not in TYPES:
        given = repr(type_name) if type_name is not None else f"{item.get('type')!r}"
        hint = "" if key else "; an object with a `type` field of its own names its object type with kind:"
        raise CliError(f"{where}: {key or 'type'}: must be one of {', '.join(TYPES)} (got {given}){hint}")
    otype = TYPES[type_name]
    if otype.write == WriteAccess.NONE:
        raise CliError(f"{where}: {type_name} objects are created by the controller and cannot be applied")
    own_type = otype.schema.model_fields.get("type")
    if key == "type" and own_type is not None and own_type.is_required():
        raise CliError(
            f"{where}: {type_name} has a `type` field of its own; write `kind: {type_name}` and keep "
            "`type:` for that field"
        )
    if not isinstance(body.get("name"), str) or not body["name"]:
        raise CliError(f"{where}: every object needs a name")
    return Desired(otype, body, position)


def parse_objects(documents: list[Any]) -> list[Desired]:
    """Validated objects in the order they are applied: by type dependency, then file order."""
    objects = [desired_object(item, i) for i, item in enumerate(raw_objects(documents))]
    seen: set[tuple[str, str]] = set()
    for obj in objects:
        key = (obj.otype.name, obj.name)
        if key in seen:
            raise CliError(f"object #{obj.position + 1}: {obj.label} appears more than once")
        seen.add(key)
    return sorted(objects, key=lambda o: (ORDER[o.otype.name], o.position))


# --- comparing ------------------------------------------------------------------------------------


def without_secrets(otype: ObjectType, body: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(body)
    for path in otype.secret_paths:
        pop_path(stripped, path)
    return stripped


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in IGNORED}


def field_diff(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(path, old, new) for every leaf that differs; objects and same-length lists are walked."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[tuple[str, Any, Any]] = []
        for key in [*old, *(k for k in new if k not in old)]:
            path = f"{prefix}.{key}" if prefix else str(key)
            changes += field_diff(old.get(key, MISSING), new.get(key, MISSING), path)
        return changes
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            change
            for i, pair in enumerate(zip(old, new, strict=True))
            for change in field_diff(*pair, f"{prefix}[{i}]")
        ]
    return [] if old == new else [(prefix, old, new)]


def shown(value: Any) -> str:
    if value is MISSING:
        return "(unset)"
    rendered = value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))
    rendered = rendered.replace("\n", "\\n")
    return rendered if len(rendered) <= MAX_SHOWN else rendered[: MAX_SHOWN - 3] + "..."


def ref_name(value: Any, target: str) -> str | None:
    """The name in a by-name reference (`web`, `/api/pool?name=web`); None for uuids and URLs."""
    if not isinstance(value, str):
        return None
    if value.startswith("/api/") or "://" in value:
        names = parse_qs(urlsplit(value).query).get("name", [])
        return names[0] if len(names) == 1 else None
    return None if looks_like_uuid(target, value) else value


def drop_refs(body: dict[str, Any], ref_path: RefPath, doomed: Callable[[Any], bool]) -> dict[str, Any]:
    """`body` without the references at `ref_path` for which `doomed(value)` holds."""
    parent, last = ref_path.path[:-1], ref_path.path[-1]

    def strip(container: Any, _where: str) -> Any:
        if last == "[]" and isinstance(container, list):
            return [value for value in container if not doomed(value)]
        if isinstance(container, dict) and doomed(container.get(last)):
            return {k: v for k, v in container.items() if k != last}
        return container

    return dict(map_path(body, parent, strip))


# --- applying -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingRef:
    """A reference, by name, to an object that a --dry-run has shown as created but not created."""

    target: str
    name: str
    field: str  # the top-level field holding it


@dataclass
class Applier:
    client: FulcrumClient
    dry_run: bool
    names: RefNames
    tally: Tally = field(default_factory=Tally)
    pending: set[tuple[str, str]] = field(default_factory=set)

    def apply(self, obj: Desired) -> None:
        current = self.client.find_by_name(obj.otype.name, obj.name)
        if current is None:
            self.create(obj)
            return
        self.names.remember(current)
        self.update(obj, current)

    def create(self, obj: Desired) -> None:
        path = f"/api/{obj.otype.name}"
        note = None
        if self.dry_run:
            _result, note = self.preview("POST", path, obj.body, obj)
            self.pending.add((obj.otype.name, obj.name))
        else:
            self.names.remember(self.client.post(path, obj.body))
        typer.secho(f"+ create {obj.label}" + (f" {note}" if note else ""), fg="green")
        self.tally.created += 1

    def update(self, obj: Desired, current: dict[str, Any]) -> None:
        path = f"/api/{obj.otype.name}/{current['uuid']}"
        desired = without_secrets(obj.otype, obj.body)
        result, note = self.preview("PUT", path, desired, obj)
        old = comparable(current)
        new = comparable(result) if result is not None else deep_merge(old, desired)
        changes = self.changes(obj.otype, old, new)
        if not changes:
            typer.echo(f"= unchanged {obj.label}")
            self.tally.unchanged += 1
            return
        typer.secho(f"~ update {obj.label}" + (f" {note}" if note else ""), fg="yellow")
        for where, before, after in changes:
            typer.echo(f"    {where}: {shown(before)} -> {shown(after)}")
        if not self.dry_run:
            self.names.remember(
                self.client.put(path, {**obj.body, "_last_modified": current["_last_modified"]})
            )
        self.tally.updated += 1

    def changes(
        self, otype: ObjectType, old: dict[str, Any], new: dict[str, Any]
    ) -> list[tuple[str, Any, Any]]:
        """Per-field differences, with the references of the changed fields shown by name."""
        if old == new:
            return []
        touched = {k for k in {*old, *new} if old.get(k, MISSING) != new.get(k, MISSING)}
        return field_diff(self.names.named(otype, old, touched), self.names.named(otype, new, touched))

    def preview(
        self, method: str, path: str, body: dict[str, Any], obj: Desired
    ) -> tuple[dict[str, Any] | None, str | None]:
        """What the controller would store (a dry-run write), and a note when that is not the whole truth.

        Under --dry-run, objects shown as created do not exist, so a write that refers to them fails.
        It is then previewed without those references, which are put back, by name, into the result.
        """
        try:
            return self.client.request(method, path, params={"dry_run": "true"}, body=body), None
        except ApiError as exc:
            pending = self.pending_refs(obj)
            if not (self.dry_run and self.blocked_by(exc, pending)):
                raise
        listed = ", ".join(sorted({f"{ref.target} {ref.name}" for ref in pending}))
        try:
            result = self.client.request(
                method, path, params={"dry_run": "true"}, body=self.without_pending(obj.otype, body)
            )
        except ApiError:
            return None, f"(not validated: refers to {listed}, which this file creates)"
        restored = {ref.field: body[ref.field] for ref in pending if ref.field in body}
        return {**result, **restored}, f"(refers to {listed}, which this file creates)"

    def is_pending(self, value: Any, target: str) -> bool:
        name = ref_name(value, target)
        return name is not None and (target, name) in self.pending

    def pending_refs(self, obj: Desired) -> list[PendingRef]:
        return [
            PendingRef(ref_path.target, str(ref_name(value, ref_path.target)), ref_path.path[0])
            for ref_path in obj.otype.ref_paths
            for value in get_path(obj.body, ref_path.path)
            if self.is_pending(value, ref_path.target)
        ]

    def without_pending(self, otype: ObjectType, body: dict[str, Any]) -> dict[str, Any]:
        for ref_path in otype.ref_paths:
            body = drop_refs(
                body, ref_path, lambda value, target=ref_path.target: self.is_pending(value, target)
            )
        return body

    @staticmethod
    def blocked_by(exc: ApiError, pending: list[PendingRef]) -> bool:
        return exc.status == 400 and any(
            f"no {ref.target} named {ref.name!r}" in exc.message for ref in pending
        )


def apply_command(
    ctx: typer.Context,
    source: Annotated[str, typer.Option("--file", "-f", help="YAML file of objects, or - for stdin.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
) -> None:
    """Apply a YAML file of objects; `fulcrum apply --help` shows the rules (HELP)."""
    try:
        objects = parse_objects(read_documents(source))
    except CliError as exc:
        raise fail(exc.message) from None
    with open_client(ctx) as client:
        applier = Applier(client, dry_run, RefNames(client))
        for obj in objects:
            try:
                applier.apply(obj)
            except CliError as exc:
                typer.echo(applier.tally.summary(dry_run))
                raise fail(f"{obj.label}: {exc.message}") from None
    typer.echo(applier.tally.summary(dry_run))
