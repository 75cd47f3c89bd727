"""Failover of one virtual service when the SE that is primary for it dies, per HA mode.

Steady load on one VS (keep-alive clients and connection-per-request clients, in threads), then
SIGKILL of every process of the SE that owns the VS's VIP (agent, HAProxy master and workers, by PID);
with `--kill secondary` (shared_pair) of a secondary instead.
Keys: `mode`, `detect_s` (kill -> the controller reports that SE down or removed), `restore_s`
(kill -> first success through the VIP on a connection opened after the kill, i.e. from the new
primary), `failed_requests`, `requests_total`, and the same per load kind.
Last line of output: one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field

import httpx
import psutil

from common import Lab, free_port, wait_for

MODES = {
    "shared": ("HA_MODE_SHARED", {"buffer_se": 1}, {"primary"}),
    "shared_pair": ("HA_MODE_SHARED_PAIR", {"buffer_se": 0}, {"primary", "secondary"}),
    "legacy": ("HA_MODE_LEGACY_ACTIVE_STANDBY", {}, {"primary", "standby"}),
}


@dataclass
class Client:
    keepalive: bool
    results: list[tuple[float, float, bool]] = field(default_factory=list)  # (start, end, ok)


def one_shot(host: str, port: int) -> bool:
    """One request on a new connection (http.client: no per-request client set-up cost)."""
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        return conn.getresponse().status == 200
    finally:
        conn.close()


def run_client(url: str, client: Client, stop: threading.Event) -> None:
    session = httpx.Client(timeout=2) if client.keepalive else None
    target = httpx.URL(url)
    while not stop.is_set():
        start = time.monotonic()
        try:
            if session is not None:
                ok = session.get(url).status_code == 200
            else:
                ok = one_shot(target.host, target.port or 80)
        except (httpx.HTTPError, OSError, http.client.HTTPException):
            ok = False
            if session is not None:  # a broken keep-alive connection: reconnect
                session.close()
                session = httpx.Client(timeout=2)
            time.sleep(0.005)
        client.results.append((start, time.monotonic(), ok))
    if session is not None:
        session.close()


def healthy(api: httpx.Client, vs_url: str, wanted: set[str]) -> dict[str, str] | None:
    state = api.get(f"{vs_url}/runtime").json()
    roles = {se["se_uuid"]: se["role"] for se in state["service_engines"]}
    ok = state["oper_status"] == "OPER_UP" and state["ha_ok"] and set(roles.values()) == wanted
    return roles if ok and all(se["oper_status"] == "OPER_UP" for se in state["service_engines"]) else None


def se_processes(api: httpx.Client, se_uuid: str) -> list[int]:
    facts = api.get(f"/api/serviceengine/{se_uuid}/runtime").json()["cloud"]
    pids = [p for p in (facts.get("agent_pid"), facts.get("haproxy_master_pid")) if p]
    for pid in list(pids):
        with contextlib.suppress(psutil.Error):
            pids += [c.pid for c in psutil.Process(pid).children(recursive=True)]
    return sorted(set(pids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=sorted(MODES), default="shared")
    parser.add_argument("--clients", type=int, default=4, help="threads of each load kind")
    parser.add_argument(
        "--kill",
        choices=("primary", "secondary"),
        default="primary",
        help="which SE of the VS to kill (secondary: shared_pair only)",
    )
    parser.add_argument("--before", type=float, default=2.0, help="seconds of load before the kill")
    parser.add_argument("--after", type=float, default=6.0, help="seconds of load after the kill")
    args = parser.parse_args()
    ha_mode, settings, wanted = MODES[args.mode]
    lab = Lab()
    try:
        backends = [lab.backend("a"), lab.backend("b")]
        api = lab.start_controller()
        group = api.post(
            "/api/serviceenginegroup",
            json={"name": "ha", "ha_mode": ha_mode, "se_deprovision_delay": 0, **settings},
        )
        group.raise_for_status()
        api.post(
            "/api/pool", json={"name": "p", "servers": [{"ip": "127.0.0.1", "port": p} for p in backends]}
        ).raise_for_status()
        port = free_port()
        vs = api.post(
            "/api/virtualservice",
            json={"name": "vs", "services": [{"port": port}], "pool_ref": "p",
                  "vip": [{"ip_address": "127.100.70.1"}], "se_group_ref": group.json()["url"]},
        )  # fmt: skip
        vs.raise_for_status()
        vs_url = vs.json()["url"]
        roles = wait_for("the VS with its HA in place", lambda: healthy(api, vs_url, wanted), timeout=90)
        if args.kill == "secondary" and args.mode != "shared_pair":
            raise SystemExit("--kill secondary needs --mode shared_pair")
        primary = next(se for se, role in roles.items() if role == args.kill)
        url = f"http://127.100.70.1:{port}/"

        stop = threading.Event()
        clients = [Client(keepalive=k) for k in (True, False) for _ in range(args.clients)]
        threads = [threading.Thread(target=run_client, args=(url, c, stop), daemon=True) for c in clients]
        for thread in threads:
            thread.start()
        time.sleep(args.before)
        pids = se_processes(api, primary)
        killed = time.monotonic()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

        def down() -> bool:
            response = api.get(f"/api/serviceengine/{primary}/runtime")
            return response.status_code == 404 or response.json()["oper_status"] == "OPER_DOWN"

        wait_for("the SE marked down", down, timeout=30, every=0.01)
        detected = time.monotonic() - killed
        time.sleep(args.after)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        healed = wait_for("HA restored", lambda: healthy(api, vs_url, wanted), timeout=60)
    finally:
        lab.close()
    results = [r for c in clients for r in c.results]
    after = sorted(end for start, end, ok in results if ok and start > killed)
    per_kind = {
        kind: {
            "failed_requests": sum(1 for c in clients if c.keepalive == ka for r in c.results if not r[2]),
            "requests_total": sum(len(c.results) for c in clients if c.keepalive == ka),
        }
        for kind, ka in (("keepalive", True), ("close", False))
    }
    print(
        json.dumps(
            {
                "mode": args.mode,
                "killed": args.kill,
                "detect_s": round(detected, 3),
                "restore_s": round(after[0] - killed, 3) if after else None,
                "failed_requests": sum(1 for r in results if not r[2]),
                "requests_total": len(results),
                "killed_pids": len(pids),
                "replaced": primary not in healed,
                **{f"{kind}_{k}": v for kind, d in per_kind.items() for k, v in d.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
