"""The alert engine: alert configs turn events and metric thresholds into alerts, and alerts into actions.

* **EVENT_LOGS configs** match recorded events by id (and optionally object type / uuid); with a
  `rolling_window` they raise only when `threshold` matching events fall inside the window.
* **METRICS configs** are evaluated every `eval_every_s` against the analytics store: a rule holds
  when every point of the last `duration` seconds satisfies `comparator threshold` (the newest point
  when `duration` is 0); rules combine with OR or AND. When the condition stops holding the alert is
  cleared (`autoclear`).
* An alert has a life cycle: RAISED -> ACKNOWLEDGED (by a user) -> CLEARED (by its rule, by expiry,
  or by a user). While an alert for the same config and object is open, a new match only counts
  (`count`, `last_seen`); actions run again at most once per `throttle` seconds.
* Actions come from the config's action group: syslog, e-mail, SNMP trap and webhook objects, with
  their secrets decrypted only in memory, run on a small worker pool so a slow receiver delays nothing
  else. Each delivery's outcome is stored on the alert (the error text never includes secrets).

Tenants: a config sees the events and objects of its own tenant; configs of the admin tenant see all.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid as uuidlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fulcrum.controller.services import refs
from fulcrum.controller.services.clock import Clock, usec
from fulcrum.controller.services.errors import Conflict, NotFound
from fulcrum.controller.services.objects import ObjectService
from fulcrum.controller.services.rbac import Caller
from fulcrum.controller.store import repo
from fulcrum.controller.store.repo import AlertRow, StoredObject
from fulcrum.controller.store.tsdb import MetricStore

log = logging.getLogger("fulcrum.alerts")

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    "CO_GT": lambda v, t: v > t,
    "CO_GE": lambda v, t: v >= t,
    "CO_LT": lambda v, t: v < t,
    "CO_LE": lambda v, t: v <= t,
    "CO_EQ": lambda v, t: v == t,
}
ACTION_REFS = (
    ("syslog", "syslog_config_ref"),
    ("email", "email_config_ref"),
    ("snmp_trap", "snmp_trap_profile_ref"),
    ("webhook", "webhook_ref"),
)
Deliver = Callable[[str, StoredObject, dict[str, Any], dict[str, Any]], None]


@dataclass
class AlertEngine:
    objects: ObjectService
    store: MetricStore
    clock: Clock
    deliver: Deliver  # (action type, action object, its decrypted secrets, alert view) -> raises on failure
    eval_every_s: float = 5.0
    _queue: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    _windows: dict[tuple[str, str], deque[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="alert-action")
        self._write_lock = threading.Lock()

    # --- life cycle -------------------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        """EventLog listener: called for every recorded event; only queues it."""
        self._queue.put(event)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alert-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put({})
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=False)

    def _run(self) -> None:
        next_eval = self.clock.now()
        while not self._stop.is_set():
            try:
                event = self._queue.get(timeout=max(0.05, next_eval - self.clock.now()))
                if event:
                    self.process_event(event)
            except queue.Empty:
                pass
            except Exception:
                log.exception("alert engine: an event could not be processed")
            if self.clock.now() >= next_eval:
                next_eval = self.clock.now() + self.eval_every_s
                try:
                    self.evaluate()
                except Exception:
                    log.exception("alert engine: evaluation failed; retrying")

    # --- configs ----------------------------------------------------------------------------------

    def _configs(self, source: str) -> list[StoredObject]:
        with self.objects.db.read() as conn:
            return [
                c
                for c in repo.all_of_type(conn, "alertconfig")
                if c.data["enabled"] and c.data["source"] == source
            ]

    def _sees(self, config: StoredObject, tenant_uuid: str | None) -> bool:
        return config.tenant_uuid in (tenant_uuid, self.objects.admin_tenant_uuid)

    # --- events -----------------------------------------------------------------------------------

    def process_event(self, event: dict[str, Any]) -> None:
        for config in self._configs("EVENT_LOGS"):
            data = config.data
            ids = {rule["event_id"] for rule in data["alert_rule"]["sys_event_rule"]}
            if event.get("event_id") not in ids or not self._sees(config, event.get("tenant_uuid")):
                continue
            if data.get("object_type") and event.get("obj_type") != data["object_type"]:
                continue
            if data.get("obj_uuid") and event.get("obj_uuid") != data["obj_uuid"]:
                continue
            obj_key = event.get("obj_uuid") or "-"
            now = self.clock.now()
            window = self._windows.setdefault((config.uuid, obj_key), deque())
            window.append(now)
            while window and data["rolling_window"] and now - window[0] > data["rolling_window"]:
                window.popleft()
            if len(window) < data["threshold"]:
                continue
            window.clear()
            details = event.get("details") or {}
            target = f"{event.get('obj_type') or 'system'} {event.get('obj_name') or ''}".strip()
            summary = data["summary"] or f"{event['event_id']} on {target}"
            reason = details.get("reason") if isinstance(details, dict) else None
            self.raise_alert(
                config,
                obj_key,
                {
                    "obj_type": event.get("obj_type"),
                    "obj_uuid": event.get("obj_uuid"),
                    "obj_name": event.get("obj_name"),
                    "tenant_uuid": event.get("tenant_uuid") or config.tenant_uuid,
                },
                summary + (f": {reason}" if reason else ""),
                {"event_id": event["event_id"], "event_details": details},
            )

    # --- metrics ----------------------------------------------------------------------------------

    def _entities(self, config: StoredObject) -> list[StoredObject]:
        data = config.data
        with self.objects.db.read() as conn:
            if data.get("obj_uuid"):
                found = repo.get(conn, data["obj_uuid"])
                candidates = [found] if found else []
            elif data.get("object_type"):
                candidates = list(repo.all_of_type(conn, data["object_type"]))
            else:
                candidates = [
                    o for t in ("virtualservice", "pool", "serviceengine") for o in repo.all_of_type(conn, t)
                ]
        return [o for o in candidates if self._sees(config, o.tenant_uuid)]

    def _rule_holds(self, entity: str, rule: dict[str, Any]) -> tuple[bool, float | None]:
        step = self.store.finest.step_s
        points = max(1, -(-rule["duration"] // step))
        series = self.store.series(entity, [rule["metric_id"]], step, points)[rule["metric_id"]]
        now = self.clock.now()
        # Only fresh points count: an entity that stopped reporting does not keep an alert alive.
        fresh = [v for ts, v in series if now - ts <= rule["duration"] + 3 * step]
        if len(fresh) < points:
            return False, fresh[-1] if fresh else None
        compare = COMPARATORS[rule["comparator"]]
        return all(compare(v, rule["threshold"]) for v in fresh), fresh[-1]

    def evaluate(self) -> None:
        for config in self._configs("METRICS"):
            rules = config.data["alert_rule"]["metrics_rule"]
            combine = all if config.data["alert_rule"]["operator"] == "OPERATOR_AND" else any
            for entity in self._entities(config):
                results = [(rule, *self._rule_holds(entity.uuid, rule)) for rule in rules]
                if combine(held for _rule, held, _value in results):
                    summary = config.data["summary"] or "; ".join(
                        _describe(rule, value) for rule, held, value in results if held and value is not None
                    )
                    self.raise_alert(
                        config,
                        entity.uuid,
                        {"obj_type": entity.type, "obj_uuid": entity.uuid, "obj_name": entity.name,
                         "tenant_uuid": entity.tenant_uuid},
                        f"{entity.type} {entity.name}: {summary}",
                        {"metrics": {rule["metric_id"]: value for rule, _h, value in results}},
                    )  # fmt: skip
                elif config.data["autoclear"]:
                    self._clear_open(config.uuid, entity.uuid, "the metric condition no longer holds")
        self._expire()

    def _expire(self) -> None:
        now = usec(self.clock)
        with self.objects.db.read() as conn:
            open_rows = repo.open_alerts(conn)
            configs = {c.uuid: c for c in repo.all_of_type(conn, "alertconfig")}
        for alert in open_rows:
            config = configs.get(alert.config_uuid)
            if config is None:
                self._set_state(alert, "CLEARED", "its alert config was deleted")
            elif (
                config.data["source"] == "EVENT_LOGS"
                and now - alert.last_seen > config.data["expiry_time"] * 1e6
            ):
                self._set_state(alert, "CLEARED", f"expired after {config.data['expiry_time']} s")

    # --- alerts -----------------------------------------------------------------------------------

    def _level(self, config: StoredObject) -> tuple[str, StoredObject | None]:
        ref = config.data.get("action_group_ref")
        if not ref:
            return "ALERT_LOW", None
        with self.objects.db.read() as conn:
            group = repo.get(conn, refs.uuid_of(ref))
        return (group.data["level"], group) if group else ("ALERT_LOW", None)

    def raise_alert(
        self, config: StoredObject, obj_key: str, obj: dict[str, Any], summary: str, details: dict[str, Any]
    ) -> AlertRow:
        now = usec(self.clock)
        level, group = self._level(config)
        with self._write_lock:
            with self.objects.db.read() as conn:
                current = repo.open_alert(conn, config.uuid, obj_key)
            throttle_us = config.data["throttle"] * 1_000_000
            if current is not None:
                current.last_seen = now
                current.data["count"] = current.data.get("count", 1) + 1
                current.data["summary"] = summary
                act = now - current.data.get("actions_at", 0) >= throttle_us
                if act:
                    current.data["actions_at"] = now
                with self.objects.db.write() as conn:
                    repo.put_alert(conn, current)
                alert = current
            else:
                act = True
                alert = AlertRow(
                    uuid=f"alert-{uuidlib.uuid4()}",
                    tenant_uuid=obj.get("tenant_uuid") or config.tenant_uuid,
                    config_uuid=config.uuid,
                    obj_key=obj_key,
                    state="RAISED",
                    level=level,
                    raised_at=now,
                    last_seen=now,
                    data={
                        "config_name": config.name,
                        "summary": summary,
                        "count": 1,
                        "actions_at": now,
                        "details": details,
                        "actions": [],
                        **{k: obj.get(k) for k in ("obj_type", "obj_uuid", "obj_name")},
                    },
                )
                with self.objects.db.write() as conn:
                    repo.put_alert(conn, alert)
        if act and group is not None:
            self._pool.submit(self._run_actions, alert.uuid, group)
        return alert

    def _run_actions(self, alert_uuid: str, group: StoredObject) -> None:
        with self.objects.db.read() as conn:
            alert = repo.get_alert(conn, alert_uuid)
            targets = [
                (kind, repo.get(conn, refs.uuid_of(group.data[key])))
                for kind, key in ACTION_REFS
                if group.data.get(key)
            ]
        if alert is None:
            return
        view = self.view(alert)
        outcomes = []
        for kind, target in targets:
            if target is None:
                continue
            outcome: dict[str, Any] = {"type": kind, "target": target.name, "at": _iso(self.clock.now())}
            try:
                self.deliver(kind, target, self.objects.box_secrets(target), view)
                outcome["ok"] = True
            except Exception as exc:  # the sender's message names the problem without secrets
                outcome.update(ok=False, error=str(exc)[:500])
                log.warning("alert %s: %s action %r failed: %s", alert_uuid, kind, target.name, exc)
            outcomes.append(outcome)
        with self._write_lock:
            with self.objects.db.read() as conn:
                fresh = repo.get_alert(conn, alert_uuid)
            if fresh is None:
                return
            fresh.data["actions"] = (fresh.data.get("actions", []) + outcomes)[-50:]
            with self.objects.db.write() as conn:
                repo.put_alert(conn, fresh)

    def _clear_open(self, config_uuid: str, obj_key: str, reason: str) -> None:
        with self.objects.db.read() as conn:
            current = repo.open_alert(conn, config_uuid, obj_key)
        if current is not None:
            self._set_state(current, "CLEARED", reason)

    def _set_state(self, alert: AlertRow, state: str, reason: str, by: str | None = None) -> AlertRow:
        with self._write_lock:
            with self.objects.db.read() as conn:
                fresh = repo.get_alert(conn, alert.uuid) or alert
            fresh.state = state
            stamp = {"ACKNOWLEDGED": "acknowledged", "CLEARED": "cleared"}[state]
            fresh.data[f"{stamp}_at"] = usec(self.clock)
            fresh.data[f"{stamp}_reason"] = reason
            if by:
                fresh.data[f"{stamp}_by"] = by
            with self.objects.db.write() as conn:
                repo.put_alert(conn, fresh)
        return fresh

    # --- API --------------------------------------------------------------------------------------

    def _tenants(self, caller: Caller) -> list[str] | None:
        everything = caller.is_system_admin and caller.tenant_uuid == self.objects.admin_tenant_uuid
        return None if everything else [caller.tenant_uuid]

    def list(self, caller: Caller, state: str | None, page: int, page_size: int) -> dict[str, Any]:
        with self.objects.db.read() as conn:
            total, rows = repo.list_alerts(
                conn, self._tenants(caller), state, (page - 1) * page_size, page_size
            )
        return {"count": total, "results": [self.view(r) for r in rows]}

    def get(self, caller: Caller, uuid: str) -> AlertRow:
        with self.objects.db.read() as conn:
            alert = repo.get_alert(conn, uuid)
        tenants = self._tenants(caller)
        if alert is None or (tenants is not None and alert.tenant_uuid not in tenants):
            raise NotFound(f"alert {uuid} not found")
        return alert

    def acknowledge(self, caller: Caller, uuid: str) -> dict[str, Any]:
        alert = self.get(caller, uuid)
        if alert.state != "RAISED":
            raise Conflict(f"the alert is {alert.state}; only a RAISED alert can be acknowledged")
        return self.view(self._set_state(alert, "ACKNOWLEDGED", "acknowledged", caller.user_name))

    def clear(self, caller: Caller, uuid: str) -> dict[str, Any]:
        alert = self.get(caller, uuid)
        if alert.state == "CLEARED":
            raise Conflict("the alert is already cleared")
        return self.view(self._set_state(alert, "CLEARED", "cleared by hand", caller.user_name))

    def view(self, alert: AlertRow) -> dict[str, Any]:
        data = alert.data
        out: dict[str, Any] = {
            "uuid": alert.uuid,
            "url": f"/api/alert/{alert.uuid}",
            "tenant_ref": refs.canonical("tenant", alert.tenant_uuid),
            "alert_config_ref": refs.canonical("alertconfig", alert.config_uuid),
            "name": data.get("config_name"),
            "level": alert.level,
            "state": alert.state,
            "summary": data.get("summary"),
            "obj_type": data.get("obj_type"),
            "obj_name": data.get("obj_name"),
            "obj_ref": refs.canonical(data["obj_type"], data["obj_uuid"])
            if data.get("obj_uuid") and data.get("obj_type")
            else None,
            "raised_at": _iso(alert.raised_at / 1e6),
            "raised_ts": alert.raised_at / 1e6,
            "last_seen": _iso(alert.last_seen / 1e6),
            "count": data.get("count", 1),
            "details": data.get("details", {}),
            "actions": data.get("actions", []),
        }
        for stamp in ("acknowledged", "cleared"):
            if f"{stamp}_at" in data:
                out[f"{stamp}_at"] = _iso(data[f"{stamp}_at"] / 1e6)
                out[f"{stamp}_reason"] = data.get(f"{stamp}_reason")
                if f"{stamp}_by" in data:
                    out[f"{stamp}_by"] = data[f"{stamp}_by"]
        return out


def _describe(rule: dict[str, Any], value: float) -> str:
    held = f" for {rule['duration']} s" if rule["duration"] else ""
    return f"{rule['metric_id']} is {value:g} ({rule['comparator'][3:].lower()} {rule['threshold']:g}{held})"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
