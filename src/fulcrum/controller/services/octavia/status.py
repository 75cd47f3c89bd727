"""Provisioning and operating status, as Octavia documents them, from the real data plane.

A write marks its load balancer PENDING_CREATE / PENDING_UPDATE. It becomes ACTIVE once the data-plane
reconciler has completed a pass that began after the write and every SE of every listener has applied
that config; ERROR when a listener cannot be placed or an SE refused the config. While a load balancer
is PENDING_*, changes to it or anything under it are refused with 409, as Octavia does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from fulcrum.controller.services.dataplane import DataPlane
from fulcrum.controller.services.octavia.view import Snapshot
from fulcrum.controller.store.repo import StoredObject


@dataclass(frozen=True)
class Pending:
    operation: str  # CREATE | UPDATE
    after_pass: int  # the pass that was running (or last started) when the change committed


class StatusBook:
    def __init__(self, dataplane: DataPlane, dataplane_running: bool) -> None:
        self._dp = dataplane
        self._running = dataplane_running
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()

    def mark(self, lb_uuid: str, operation: str) -> None:
        with self._lock:
            before = self._pending.get(lb_uuid)
            # A load balancer still being created stays PENDING_CREATE through later changes.
            op = "CREATE" if before is not None and before.operation == "CREATE" else operation
            self._pending[lb_uuid] = Pending(op, self._dp.passes_started)
        self._dp.poke()

    def forget(self, lb_uuid: str) -> None:
        with self._lock:
            self._pending.pop(lb_uuid, None)

    # --- provisioning -----------------------------------------------------------------------------

    def lb_provisioning(self, lb_uuid: str, snap: Snapshot) -> tuple[str, str]:
        """(status, reason) of a load balancer; resolves pending changes that have taken effect."""
        with self._lock:
            pending = self._pending.get(lb_uuid)
        if not self._running:
            # Without a data plane (FULCRUM_DATAPLANE=0) the API acts as Octavia's no-op driver.
            self.forget(lb_uuid)
            return "ACTIVE", ""
        if pending is not None and self._dp.passes_completed <= pending.after_pass:
            return f"PENDING_{pending.operation}", "waiting for the reconciler"
        worst, reason = "ACTIVE", ""
        for vs in snap.listeners_of(lb_uuid):
            state, why = self._dp.vs_provisioning(vs.uuid)
            if state == "ERROR":
                worst, reason = "ERROR", why
                break
            if state == "PENDING":
                worst, reason = "PENDING", why
        if worst == "PENDING":
            return f"PENDING_{pending.operation if pending else 'UPDATE'}", reason
        if pending is not None:
            self.forget(lb_uuid)
        return worst, reason

    # --- operating --------------------------------------------------------------------------------

    def member_status(self, pool: StoredObject, has_monitor: bool) -> dict[str, str]:
        """Member id -> ONLINE / ERROR / OFFLINE / NO_MONITOR / DRAINING from the SEs' health checks."""
        reported = {f"{s['ip']}:{s['port']}": s["oper_status"] for s in self._servers(pool)}
        out = {}
        for server in pool.data["servers"]:
            key = server_key(pool, server)
            if not server.get("enabled", True) or not pool.data.get("enabled", True):
                out[key] = "OFFLINE"
            elif server.get("ratio", 1) == 0:
                out[key] = "DRAINING"
            elif not has_monitor:
                out[key] = "NO_MONITOR"
            else:
                out[key] = {"UP": "ONLINE", "DOWN": "ERROR"}.get(reported.get(key, ""), "OFFLINE")
        return out

    def _servers(self, pool: StoredObject) -> list[dict[str, Any]]:
        if not self._running:
            return []
        return list(self._dp.pool_runtime(pool)["servers"])

    def pool_operating(self, pool: StoredObject, has_monitor: bool) -> str:
        if not pool.data.get("enabled", True):
            return "OFFLINE"
        states = [s for s in self.member_status(pool, has_monitor).values() if s != "OFFLINE"]
        if not states or not self._running:
            return "OFFLINE" if not self._running else "ONLINE"
        if all(s in ("ONLINE", "NO_MONITOR", "DRAINING") for s in states):
            return "ONLINE"
        if any(s in ("ONLINE", "NO_MONITOR") for s in states):
            return "DEGRADED"
        return "ERROR"

    def listener_operating(self, vs: StoredObject, snap: Snapshot) -> str:
        if not vs.data.get("enabled", True):
            return "OFFLINE"
        if not self._running:
            return "OFFLINE"
        runtime = self._dp.vs_runtime(vs.uuid)
        oper = runtime["oper_status"]
        pool = snap.ref(vs.data.get("pool_ref"))
        if pool is None:
            return "ONLINE" if self._dp.vs_provisioning(vs.uuid)[0] == "ACTIVE" else "OFFLINE"
        if oper == "OPER_UP":
            hm = snap.hm_of_pool(pool) is not None
            return "DEGRADED" if self.pool_operating(pool, hm) in ("DEGRADED", "ERROR") else "ONLINE"
        if oper == "OPER_DOWN":
            return "ERROR"
        return "OFFLINE"

    def lb_operating(self, lb: StoredObject, snap: Snapshot, provisioning: str) -> str:
        if not all(v.get("enabled", True) for v in lb.data["vip"]):
            return "OFFLINE"
        if not self._running:
            return "OFFLINE"
        listeners = [self.listener_operating(vs, snap) for vs in snap.listeners_of(lb.uuid)]
        if not listeners:
            return "ONLINE" if provisioning == "ACTIVE" else "OFFLINE"
        if all(s == "ONLINE" for s in listeners):
            return "ONLINE"
        if any(s in ("ONLINE", "DEGRADED") for s in listeners):
            return "DEGRADED"
        if all(s == "OFFLINE" for s in listeners):
            return "OFFLINE"
        return "ERROR"

    def stats(self, vs_uuids: list[str]) -> dict[str, int]:
        total = {"bytes_in": 0, "bytes_out": 0, "active_connections": 0, "total_connections": 0,
                 "request_errors": 0}  # fmt: skip
        for uuid in vs_uuids:
            counters = self._dp.vs_counters(uuid)
            total["bytes_in"] += counters["bytes_in"]
            total["bytes_out"] += counters["bytes_out"]
            total["active_connections"] += counters["current_sessions"]
            total["total_connections"] += counters["total_sessions"]
            total["request_errors"] += counters["errors"]
        return total


def server_key(pool: StoredObject, server: dict[str, Any]) -> str:
    port = server.get("port") or pool.data["default_server_port"]
    return f"{server['ip']}:{port}"
