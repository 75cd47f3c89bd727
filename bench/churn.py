"""100 config changes under keep-alive load on one VS: how many requests fail, how many reloads.

Changes: add/remove/disable servers, change the algorithm, add and delete other VSs on the same SE.
Load: keep-alive HTTP clients in threads, counting every failed request. Keys: `changes`,
`failed_requests`, `requests_total`, `reloads`, `rps_during_vs_before`. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import httpx

from common import Lab, free_port
from fulcrum.se.haproxy import HAProxyProcess

ALGORITHMS = ["LB_ALGORITHM_ROUND_ROBIN", "LB_ALGORITHM_LEAST_CONNECTIONS", "LB_ALGORITHM_RANDOM"]


class Load:
    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.ok = 0
        self.failed = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(timeout=5) as http:
            while not self._stop.is_set():
                try:
                    good = http.get(self.url).status_code == 200
                    error = None
                except httpx.HTTPError as exc:
                    good, error = False, repr(exc)
                with self._lock:
                    if good:
                        self.ok += 1
                    else:
                        self.failed += 1
                        if error and len(self.errors) < 5:
                            self.errors.append(error)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def reloads(data_dir: Path) -> int:
    """Reloads so far, summed over the HAProxy masters of every SE (`show proc` on the master socket)."""
    return sum(HAProxyProcess(run_dir).processes().reloads for run_dir in data_dir.glob("local-cloud/se/*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0, help="load measured before the churn")
    args = parser.parse_args()
    lab = Lab()
    try:
        ports = [lab.backend(f"b{i}") for i in range(4)]
        api = lab.start_controller()
        servers = [{"ip": "127.0.0.1", "port": p} for p in ports[:2]]
        pool = api.post(
            "/api/pool",
            json={"name": "churn", "lb_algorithm": "LB_ALGORITHM_ROUND_ROBIN", "servers": servers},
        )
        pool.raise_for_status()
        vip, port = "127.100.70.1", free_port()
        vs = api.post(
            "/api/virtualservice",
            json={
                "name": "main",
                "services": [{"port": port}],
                "pool_ref": "churn",
                "vip": [{"ip_address": vip}],
            },
        )
        vs.raise_for_status()
        lab.wait_vs_up(api, vs.json()["url"])
        data_dir = lab.dir / "ctrl"
        before_reloads = reloads(data_dir)

        load = Load(f"http://{vip}:{port}/")
        load.start()
        time.sleep(args.seconds)
        before = load.ok / args.seconds
        start_ok, start = load.ok, time.monotonic()
        pool_url = pool.json()["url"]
        extra: list[str] = []
        print(f"load before churn: {before:.0f} req/s; applying {args.changes} changes", flush=True)
        for n in range(args.changes):
            kind = n % 5
            current = api.get(pool_url).json()
            if kind == 0:  # add a server
                spare = [p for p in ports if all(s["port"] != p for s in current["servers"])]
                if spare:
                    current["servers"].append({"ip": "127.0.0.1", "port": spare[0]})
            elif kind == 1 and len(current["servers"]) > 2:  # remove the last added server
                current["servers"].pop()
            elif kind == 2:  # toggle a server that is not the only enabled one
                target = current["servers"][-1]
                target["enabled"] = not target["enabled"] if len(current["servers"]) > 1 else True
            elif kind == 3:
                current["lb_algorithm"] = ALGORITHMS[n % len(ALGORITHMS)]
            if kind in (0, 1, 2, 3):
                api.put(pool_url, json=current).raise_for_status()
            elif extra:
                api.delete(extra.pop()).raise_for_status()
            else:
                other = api.post(
                    "/api/virtualservice",
                    json={
                        "name": f"other-{n}",
                        "services": [{"port": free_port()}],
                        "pool_ref": "churn",
                        "vip": [{"ip_address": f"127.100.71.{n % 250 + 1}"}],
                    },
                )
                other.raise_for_status()
                extra.append(other.json()["url"])
            time.sleep(0.05)
        time.sleep(1.0)
        during = (load.ok - start_ok) / (time.monotonic() - start)
        load.stop()
        total_reloads = reloads(data_dir) - before_reloads
    finally:
        lab.close()
    for error in load.errors:
        print("error:", error)
    print(
        json.dumps(
            {
                "changes": args.changes,
                "failed_requests": load.failed,
                "requests_total": load.ok + load.failed,
                "reloads": total_reloads,
                "rps_during_vs_before": round(during / before, 3) if before else None,
            }
        )
    )


if __name__ == "__main__":
    main()
