"""Commands that read and write objects through the REST API: per-type CRUD, `events` and `whoami`."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fulcrum.cli.client import (
    ApiError,
    ClientConfig,
    CliError,
    FulcrumClient,
    looks_like_uuid,
    type_of_ref,
    uuid_of,
)
from fulcrum.model.registry import TYPES, ObjectType, WriteAccess, map_path

P = ParamSpec("P")
R = TypeVar("R")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the raw JSON answer instead of a table.")]
FileOption = Annotated[
    str | None, typer.Option("--file", "-f", help="Object fields from a .json or .yaml file, or - for stdin.")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="FIELD=VALUE, repeatable. VALUE is parsed as JSON when it parses, else taken as a string; "
        "dotted fields build nested objects (http_monitor.http_request='GET /').",
    ),
]


# --- output and errors ----------------------------------------------------------------------------


def print_table(table: Table) -> None:
    """Tables fit the terminal; piped, they are neither wrapped at 80 columns nor padded with blanks."""
    if sys.stdout.isatty():
        Console(highlight=False).print(table)
        return
    console = Console(width=240, highlight=False, no_color=True)
    with console.capture() as captured:
        console.print(table)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def fail(message: str) -> typer.Exit:
    """Print `error: <message>` on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def cli_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the client's errors into one `error:` line and exit status 1, never a traceback."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as exc:
            raise fail(exc.message) from None

    return run


def open_client(ctx: typer.Context) -> FulcrumClient:
    """A client configured by the root callback's options (or the environment alone)."""
    root = ctx.find_root().obj
    config = root if isinstance(root, ClientConfig) else ClientConfig.from_env()
    return FulcrumClient(config)


# --- reference names ------------------------------------------------------------------------------


class RefNames:
    """Shows `/api/<type>/<uuid>` references as names, with one cached GET per unknown reference."""

    def __init__(self, client: FulcrumClient) -> None:
        self._client = client
        self._names: dict[str, str] = {}
        self._listed: set[str] = set()

    def remember(self, obj: dict[str, Any]) -> None:
        if isinstance(obj.get("url"), str) and isinstance(obj.get("name"), str):
            self._names[obj["url"]] = obj["name"]

    def prefetch(self, type_name: str) -> None:
        """One listing of names for a type: cheaper than a GET per reference in a long table."""
        if type_name in self._listed:
            return
        self._listed.add(type_name)
        for obj in self._client.list_objects(type_name, fields="name"):
            self.remember(obj)

    def name(self, ref: Any) -> str:
        if not isinstance(ref, str):
            return "" if ref is None else str(ref)
        key = ref.split("#", 1)[0]
        if key not in self._names:
            self._names[key] = self._fetch(key)
        return self._names[key]

    def _fetch(self, ref: str) -> str:
        type_name = type_of_ref(ref)
        if type_name is None:
            return ref
        try:
            found = self._client.get(ref, fields="name")
        except ApiError:  # not visible to the caller, or gone: show the reference itself
            return ref
        return str(found.get("name", ref))

    def named(self, otype: ObjectType, obj: dict[str, Any], only: set[str] | None = None) -> dict[str, Any]:
        """A copy of `obj` whose reference fields (within top-level fields `only`) hold names, not URLs."""
        for ref_path in otype.ref_paths:
            if only is None or ref_path.path[0] in only:
                obj = map_path(obj, ref_path.path, lambda value, _where: self.name(value))
        return obj


# --- request bodies -------------------------------------------------------------------------------


def load_document(source: str) -> Any:
    """Parse a .json or .yaml file, or stdin for `-` (YAML, so JSON works too)."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        if source.endswith(".json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise CliError(
            f"{source} is not valid {'JSON' if source.endswith('.json') else 'YAML'}: {exc}"
        ) from None


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_sets(assignments: list[str]) -> dict[str, Any]:
    """`a.b=1` and `c=x` -> {"a": {"b": 1}, "c": "x"}."""
    result: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise CliError(f"--set {assignment!r}: give FIELD=VALUE (dotted FIELD for nested objects)")
        *parents, leaf = key.split(".")
        node = result
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise CliError(f"--set {assignment!r}: {part} was already given a value")
            node = child
        node[leaf] = parse_value(value)
    return result


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def pop_object_type(body: dict[str, Any]) -> tuple[str | None, str]:
    """Take the object type out of an apply-style mapping: (type name or None, the key that named it).

    `kind:` always names the object type. `type:` does only when its value is an object type name:
    healthmonitor, applicationprofile and sslkeyandcertificate have a `type` field of their own
    (HEALTH_MONITOR_HTTP, ...), so such objects name their object type with `kind:`.
    """
    if "kind" in body:
        return str(body.pop("kind")), "kind"
    if isinstance(body.get("type"), str) and body["type"] in TYPES:
        return str(body.pop("type")), "type"
    return None, ""


def build_body(type_name: str, source: str | None, sets: list[str] | None) -> dict[str, Any]:
    """Fields from -f (an apply-style `kind:`/`type:` key is accepted if it matches) merged with --set."""
    body: dict[str, Any] = {}
    if source is not None:
        loaded = load_document(source)
        if not isinstance(loaded, dict):
            raise CliError(f"{source}: expected one object (a mapping of fields)")
        body = dict(loaded)
        declared, _key = pop_object_type(body)
        if declared not in (None, type_name):
            raise CliError(f"{source}: holds a {declared}, not a {type_name}")
    return deep_merge(body, parse_sets(sets or []))


# --- tables ---------------------------------------------------------------------------------------


Getter = Callable[[dict[str, Any], RefNames], str]


@dataclass(frozen=True)
class Column:
    header: str
    get: Getter
    ref_types: tuple[str, ...] = ()


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def field(name: str, header: str | None = None) -> Column:
    return Column(header or name, lambda obj, _names: text(obj.get(name)))


def ref(name: str, target: str, header: str) -> Column:
    def get(obj: dict[str, Any], names: RefNames) -> str:
        value = obj.get(name)
        if isinstance(value, list):
            return ", ".join(names.name(v) for v in value)
        return names.name(value) if value else ""

    return Column(header, get, (target,))


def _count(name: str, header: str) -> Column:
    return Column(header, lambda obj, _names: str(len(obj.get(name) or [])))


def _roles(obj: dict[str, Any], names: RefNames) -> str:
    return ", ".join(f"{names.name(a.get('tenant_ref'))}:{a.get('role')}" for a in obj.get("access") or [])


def _ports(obj: dict[str, Any], _names: RefNames) -> str:
    ports = []
    for service in obj.get("services") or []:
        port = str(service.get("port"))
        if service.get("port_range_end"):
            port += f"-{service['port_range_end']}"
        ports.append(port + ("/ssl" if service.get("enable_ssl") else ""))
    return ", ".join(ports)


def _addresses(obj: dict[str, Any], _names: RefNames) -> str:
    return ", ".join(str(v.get("ip_address") or "auto") for v in obj.get("vip") or [])


def _not_after(obj: dict[str, Any], _names: RefNames) -> str:
    return text(((obj.get("certificate") or {}).get("info") or {}).get("not_after"))


COLUMNS: dict[str, list[Column]] = {
    "tenant": [field("description")],
    "user": [Column("roles", _roles, ("tenant",)), field("is_active", "active")],
    "cloud": [field("vtype")],
    "serviceenginegroup": [ref("cloud_ref", "cloud", "cloud"), field("ha_mode"), field("max_se")],
    "serviceengine": [
        ref("se_group_ref", "serviceenginegroup", "se group"),
        field("mgmt_ip"),
        field("enable_state"),
    ],
    "healthmonitor": [field("type"), field("send_interval", "interval"), field("monitor_port", "port")],
    "applicationpersistenceprofile": [field("persistence_type")],
    "applicationprofile": [field("type")],
    "sslkeyandcertificate": [field("type"), Column("not after", _not_after)],
    "pool": [
        _count("servers", "servers"),
        field("lb_algorithm"),
        ref("health_monitor_refs", "healthmonitor", "monitors"),
        field("enabled"),
    ],
    "vsvip": [Column("addresses", _addresses)],
    "virtualservice": [
        Column("ports", _ports),
        ref("vsvip_ref", "vsvip", "vsvip"),
        ref("pool_ref", "pool", "pool"),
        field("enabled"),
    ],
}


def object_table(type_name: str, objects: list[dict[str, Any]], names: RefNames) -> Table:
    columns = COLUMNS.get(type_name, [])
    if objects:
        for target in {t for column in columns for t in column.ref_types}:
            names.prefetch(target)
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("name", overflow="fold")
    table.add_column("uuid", no_wrap=True)
    for column in columns:
        table.add_column(column.header, overflow="fold")
    for obj in objects:
        cells = [obj.get("name", ""), obj.get("uuid", "")] + [c.get(obj, names) for c in columns]
        table.add_row(*(escape(str(cell)) for cell in cells))
    return table


def detail_table(otype: ObjectType, obj: dict[str, Any], names: RefNames) -> Table:
    """One row per field; nested values as YAML, references as `name (url)`."""
    shown = _with_ref_names(otype, obj, names)
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in shown.items():
        if isinstance(value, dict | list) and value:
            cell = yaml.safe_dump(_without_nulls(value), default_flow_style=False, sort_keys=False).rstrip()
        else:
            cell = text(value)
        table.add_row(escape(key), escape(cell))
    return table


def _without_nulls(value: Any) -> Any:
    """Nested values without their unset (null) fields, which only clutter a table; --json has them all."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _with_ref_names(otype: ObjectType, obj: dict[str, Any], names: RefNames) -> dict[str, Any]:
    def label(value: Any, _where: str) -> Any:
        name = names.name(value)
        return value if name == value else f"{name} ({value})"

    for ref_path in otype.ref_paths:
        obj = map_path(obj, ref_path.path, label)
    return obj


# --- per-type commands ----------------------------------------------------------------------------


def _path(otype: ObjectType, obj: dict[str, Any] | None = None) -> str:
    return f"/api/{otype.name}" + (f"/{obj['uuid']}" if obj else "")


def _label(otype: ObjectType, obj: dict[str, Any]) -> str:
    return f"{otype.name} {obj.get('name')!r} ({obj.get('uuid')})"


def add_read_commands(group: typer.Typer, otype: ObjectType) -> None:
    @group.command("list")
    @cli_errors
    def list_command(
        ctx: typer.Context,
        name: Annotated[str | None, typer.Option("--name", help="Only the object with this name.")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """List the objects of this type the caller can see."""
        with open_client(ctx) as client:
            objects = client.list_objects(otype.name, name=name)
            if as_json:
                print_json({"count": len(objects), "results": objects})
                return
            print_table(object_table(otype.name, objects, RefNames(client)))

    @group.command("show")
    @cli_errors
    def show_command(
        ctx: typer.Context,
        name_or_uuid: Annotated[str, typer.Argument(metavar="NAME_OR_UUID")],
        as_json: JsonOption = False,
    ) -> None:
        """Show one object, found by name or by its `<type>-<uuid>`."""
        with open_client(ctx) as client:
            obj = client.lookup(otype.name, name_or_uuid)
            if as_json:
                print_json(obj)
                return
            print_table(detail_table(otype, obj, RefNames(client)))


def add_write_commands(group: typer.Typer, otype: ObjectType) -> None:
    @group.command("create")
    @cli_errors
    def create_command(
        ctx: typer.Context,
        *,
        name: Annotated[
            str | None, typer.Argument(help="The name (else taken from the file or --set).")
        ] = None,
        source: FileOption = None,
        sets: SetOption = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only; store nothing.")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Create an object from a file and/or --set fields; references may be given by name."""
        body = build_body(otype.name, source, sets)
        if name is not None:
            body["name"] = name
        if not body.get("name"):
            raise CliError("give a NAME argument, a name in the file, or --set name=...")
        with open_client(ctx) as client:
            created = client.post(_path(otype), body, dry_run="true" if dry_run else None)
        if as_json:
            print_json(created)
        elif dry_run:
            typer.echo(f"valid: {otype.name} {created['name']!r} would be created (dry run, nothing stored)")
        else:
            typer.echo(f"created {_label(otype, created)}")

    @group.command("update")
    @cli_errors
    def update_command(
        ctx: typer.Context,
        *,
        name_or_uuid: Annotated[str, typer.Argument(metavar="NAME_OR_UUID")],
        source: FileOption = None,
        sets: SetOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Change some fields (JSON merge patch: nested objects merge, lists are replaced, null removes)."""
        patch = build_body(otype.name, source, sets)
        if not patch:
            raise CliError("nothing to change: give -f FILE and/or --set FIELD=VALUE")
        with open_client(ctx) as client:
            current = client.lookup(otype.name, name_or_uuid)
            updated = client.patch(_path(otype, current), patch)
        if as_json:
            print_json(updated)
        else:
            typer.echo(f"updated {_label(otype, updated)}")

    @group.command("delete")
    @cli_errors
    def delete_command(
        ctx: typer.Context,
        name_or_uuid: Annotated[str, typer.Argument(metavar="NAME_OR_UUID")],
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    ) -> None:
        """Delete an object; the controller refuses while other objects still refer to it."""
        with open_client(ctx) as client:
            current = client.lookup(otype.name, name_or_uuid)
            if not yes:
                typer.confirm(f"delete {_label(otype, current)}?", abort=True)
            client.delete(_path(otype, current))
        typer.echo(f"deleted {_label(otype, current)}")


SeOption = Annotated[str | None, typer.Option(help="A service engine, by name or uuid.")]


def add_vs_commands(group: typer.Typer, otype: ObjectType) -> None:
    """Runtime and elastic-HA actions of a virtual service."""

    def act(ctx: typer.Context, name_or_uuid: str, action: str, body: dict[str, Any]) -> None:
        with open_client(ctx) as client:
            vs = client.lookup(otype.name, name_or_uuid)
            for key, value in list(body.items()):
                if key.endswith("_se_ref") and value is not None:
                    body[key] = client.lookup("serviceengine", value)["url"]
            answer = client.post(
                f"{_path(otype, vs)}/{action}", {k: v for k, v in body.items() if v is not None}
            )
        details = ", ".join(f"{k}={text(v)}" for k, v in answer.items() if k not in ("uuid", "name"))
        typer.echo(f"{action} of {_label(otype, vs)} accepted: {details}")

    @group.command("runtime")
    @cli_errors
    def runtime_command(
        ctx: typer.Context,
        name_or_uuid: Annotated[str, typer.Argument(metavar="NAME_OR_UUID")],
        as_json: JsonOption = False,
    ) -> None:
        """Oper status, and the SEs the VS runs on with their roles."""
        with open_client(ctx) as client:
            vs = client.lookup(otype.name, name_or_uuid)
            state = client.get(f"{_path(otype, vs)}/runtime")
            names = RefNames(client)
            if as_json:
                print_json(state)
                return
            typer.echo(f"{vs['name']}: {state['oper_status']} {state.get('reason') or ''}".rstrip())
            table = Table(box=None, header_style="bold", pad_edge=False)
            for header in ("service engine", "role", "oper_status", "distributor sees"):
                table.add_column(header)
            for se in state["service_engines"]:
                cells = (
                    names.name(se["se_ref"]),
                    se["role"],
                    se["oper_status"],
                    se.get("distributor_health"),
                )
                table.add_row(*(escape(text(c)) for c in cells))
            print_table(table)

    @group.command("scaleout")
    @cli_errors
    def scaleout_command(
        ctx: typer.Context,
        name_or_uuid: Annotated[str, typer.Argument(metavar="NAME_OR_UUID")],
        to_se: SeOption = None,
        new_se: Annotated[bool, typer.Option("--new-se", help="Scale out to a newly created SE.")] = False,
    ) -> None:
        """Run the VS on one more SE (its primary distributes connections to it)."""
        act(ctx, name_or_uuid, "scaleout", {"to_se_ref": to_se, "to_new_se": new_se})

    @group.command("scalein")
    @cli_errors
    def scalein_command(
        ctx: typer.Context,
        name_or_uuid: Annotated[str, typer.Argument(metavar="NAME_OR_UUID")],
        from_se: SeOption = None,
    ) -> None:
        """Drain one SE of the VS (default: the last secondary), then remove it."""
        act(ctx, name_or_uuid, "scalein", {"from_se_ref": from_se})

    @group.command("migrate")
    @cli_errors
    def migrate_command(
        ctx: typer.Context,
        name_or_uuid: Annotated[str, typer.Argument(metavar="NAME_OR_UUID")],
        from_se: SeOption = None,
        to_se: SeOption = None,
        new_se: Annotated[bool, typer.Option("--new-se", help="Migrate to a newly created SE.")] = False,
    ) -> None:
        """Move the VS from one SE to another; the old one drains first."""
        act(ctx, name_or_uuid, "migrate", {"vs_se_ref": from_se, "to_se_ref": to_se, "to_new_se": new_se})

    @group.command("switchover")
    @cli_errors
    def switchover_command(
        ctx: typer.Context, name_or_uuid: Annotated[str, typer.Argument(metavar="NAME_OR_UUID")]
    ) -> None:
        """Swap active and standby (legacy HA: the whole pair), or the primary and a secondary."""
        act(ctx, name_or_uuid, "switchover", {})


def type_app(otype: ObjectType) -> typer.Typer:
    writable = otype.write != WriteAccess.NONE
    verbs = "list, show, create, update, delete" if writable else "list, show (read-only)"
    if otype.name == "virtualservice":
        verbs += ", runtime, scaleout, scalein, migrate, switchover"
    group = typer.Typer(help=f"{otype.name} objects: {verbs}.", no_args_is_help=True)
    add_read_commands(group, otype)
    if writable:
        add_write_commands(group, otype)
    if otype.name == "virtualservice":
        add_vs_commands(group, otype)
    return group


def register_types(app: typer.Typer) -> None:
    for otype in TYPES.values():
        app.add_typer(type_app(otype), name=otype.name)


# --- events and whoami ----------------------------------------------------------------------------


def _event_summary(event: dict[str, Any]) -> str:
    details = event.get("details") or {}
    if "diff" in details and isinstance(details["diff"], dict):
        return ("changed: " + ", ".join(sorted(details["diff"]))) if details["diff"] else "no change"
    if event.get("event_id") == "CONFIG_CREATE":
        return "created"
    if event.get("event_id") == "CONFIG_DELETE":
        return "deleted"
    summary = ", ".join(f"{k}={text(v)}" for k, v in details.items())
    return summary if len(summary) <= 80 else summary[:77] + "..."


def _event_table(events: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in ("time", "event_id", "obj_type", "obj_name", "user", "details"):
        table.add_column(header, overflow="fold", no_wrap=header == "time")
    for event in events:
        when = str(event.get("report_timestamp", ""))[:19].replace("T", " ")
        cells = [when, event.get("event_id"), event.get("obj_type"), event.get("obj_name"), event.get("user")]
        table.add_row(*(escape(text(c)) for c in [*cells, _event_summary(event)]))
    return table


@dataclass(frozen=True)
class EventQuery:
    """Server-side filters plus what only the client can filter on (object name and type)."""

    params: dict[str, Any]
    obj_name: str | None
    obj_type: str | None

    def matches(self, event: dict[str, Any]) -> bool:
        if self.obj_type is not None and event.get("obj_type") != self.obj_type:
            return False
        return self.obj_name is None or event.get("obj_name") == self.obj_name


def event_query(
    client: FulcrumClient, obj: str | None, type_name: str | None, event_id: str | None, since: str | None
) -> EventQuery:
    """A reference or uuid filters on the server; a name is resolved with --type, else matched by name."""
    if type_name is not None and type_name not in TYPES:
        raise CliError(f"--type: unknown type {type_name!r} (one of {', '.join(TYPES)})")
    params: dict[str, Any] = {"event_id": event_id, "since": since}
    obj_name = None
    if obj is not None:
        bare = uuid_of(obj) if obj.startswith("/api/") else obj
        if obj.startswith("/api/") or any(looks_like_uuid(t, bare) for t in TYPES):
            params["obj_ref"] = bare
        elif type_name is not None and (found := client.find_by_name(type_name, obj)) is not None:
            params["obj_ref"] = found["uuid"]
        else:
            obj_name = obj  # also finds events of deleted objects
    return EventQuery(params, obj_name, type_name)


def fetch_events(client: FulcrumClient, query: EventQuery, limit: int) -> list[dict[str, Any]]:
    page_size = 1000 if (query.obj_name or query.obj_type) else min(limit, 1000)
    found: list[dict[str, Any]] = []
    for event in client.iter_pages("/api/event", **query.params, page_size=page_size):
        if query.matches(event):
            found.append(event)
            if len(found) >= limit:
                break
    return found


@cli_errors
def events_command(
    ctx: typer.Context,
    *,
    obj: Annotated[
        str | None, typer.Option("--obj", help="Object name, /api/<type>/<uuid> or <type>-<uuid>.")
    ] = None,
    type_name: Annotated[
        str | None, typer.Option("--type", help="Only events about this object type.")
    ] = None,
    event_id: Annotated[
        str | None, typer.Option("--event-id", help="e.g. CONFIG_CREATE, USER_LOGIN.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="ISO 8601 time or seconds since the epoch.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many events.")] = 25,
    as_json: JsonOption = False,
) -> None:
    """Show events, newest first: configuration changes, logins and system events."""
    with open_client(ctx) as client:
        events = fetch_events(client, event_query(client, obj, type_name, event_id, since), limit)
    if as_json:
        print_json({"count": len(events), "results": events})
    else:
        print_table(_event_table(events))


@cli_errors
def whoami_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the user, tenant and role the credentials act as."""
    with open_client(ctx) as client:
        me = client.get("/api/whoami")
    if as_json:
        print_json(me)
    else:
        typer.echo(f"user {me['user']} in tenant {me['tenant']} as {me['role']} ({client.config.url})")
