"""Turns HAProxy's `show stat` rows into the heartbeat's server health and virtual-service counters.

The applied view maps HAProxy names back to the controller's ids: a backend to its virtual service and
pool, a server name to the pool's server id, a frontend to its virtual service. Only pool backends
report servers, and only the frontend doing a VS's work (direct or scale-out worker) reports its
counters: a scale-out distributor's peers are not pool servers, and its connections are counted again
by the worker that serves them (so a drained secondary's `current_sessions` says when it is empty).
"""

from __future__ import annotations

from fulcrum.protocol.se import PeerHealth, ServerHealth, ServerState, VsCounters
from fulcrum.se.render.view import View

StatRow = dict[str, str]

_COUNTED_FRONTENDS = ("direct", "worker")  # not "distributor"


def health_of(status: str) -> ServerHealth:
    """HAProxy's server status column: `UP`, `UP 1/3` (going down), `DOWN 1/2` (going up), `MAINT`,
    `MAINT (via be/srv)`, `MAINT (resolution)`, `DRAIN`, `NOLB`, `no check`."""
    word = status.split(" ", 1)[0]
    if word == "MAINT":
        return ServerHealth.DISABLED
    if word in ("DRAIN", "NOLB"):
        return ServerHealth.DRAINING
    if word == "UP" or status == "no check":  # an unmonitored server is taken as up, as the LB does
        return ServerHealth.UP
    if word == "DOWN":
        return ServerHealth.DOWN
    return ServerHealth.UNKNOWN


def _int(row: StatRow, column: str) -> int:
    value = row.get(column, "")
    return int(value) if value.isdigit() else 0


def _reason(row: StatRow) -> str:
    if row.get("status") == "no check":
        return "not monitored"
    parts = [row.get("check_status", ""), row.get("check_code", ""), row.get("last_chk", "")]
    return " ".join(part for part in parts if part).strip()


def server_states(view: View, rows: list[StatRow]) -> list[ServerState]:
    """One state per pool server; a pool used by two virtual services reports its first backend's view."""
    by_name = {(row["pxname"], row["svname"]): row for row in rows}
    states: dict[tuple[str, str], ServerState] = {}
    for backend in view["backends"]:
        if backend["kind"] != "pool":
            continue
        for server in backend["servers"]:
            key = (backend["pool_uuid"], server["server_id"])
            row = by_name.get((backend["name"], server["name"]))
            if key in states:
                continue
            if row is None:
                states[key] = ServerState(pool_uuid=key[0], server_id=key[1], health=ServerHealth.UNKNOWN)
                continue
            states[key] = ServerState(
                pool_uuid=key[0],
                server_id=key[1],
                health=health_of(row.get("status", "")),
                reason=_reason(row),
                current_sessions=_int(row, "scur"),
            )
    return list(states.values())


def peer_states(view: View, rows: list[StatRow]) -> list[PeerHealth]:
    """The health of each scale-out peer as this SE's distributors see it (primaries only)."""
    by_name = {(row["pxname"], row["svname"]): row for row in rows}
    states = []
    for backend in view["backends"]:
        if backend["kind"] != "distributor":
            continue
        for server in backend["servers"]:
            row = by_name.get((backend["name"], server["name"]))
            health = health_of(row.get("status", "")) if row else ServerHealth.UNKNOWN
            states.append(PeerHealth(vs_uuid=backend["vs_uuid"], se_uuid=server["server_id"], health=health))
    return states


def vs_counters(view: View, rows: list[StatRow]) -> list[VsCounters]:
    """Counters of each rendered virtual service, from its frontend's row (since HAProxy started)."""
    frontends = {row["pxname"]: row for row in rows if row.get("svname") == "FRONTEND"}
    counters = []
    for frontend in view["frontends"]:
        if frontend["kind"] not in _COUNTED_FRONTENDS:
            continue
        row = frontends.get(frontend["name"])
        if row is None:
            continue
        counters.append(
            VsCounters(
                vs_uuid=frontend["vs_uuid"],
                current_sessions=_int(row, "scur"),
                total_sessions=_int(row, "stot"),
                bytes_in=_int(row, "bin"),
                bytes_out=_int(row, "bout"),
                http_responses_2xx=_int(row, "hrsp_2xx"),
                http_responses_4xx=_int(row, "hrsp_4xx"),
                http_responses_5xx=_int(row, "hrsp_5xx"),
            )
        )
    return counters
