"""Time from the POST that creates a VS to the first 200 answer through its VIP.

Over `--count` VSs on an SE that is already up (keys `median_s`, `p95_s`), and over a few VSs that
each need a new SE to start (SE group with max_vs_per_se=1: key `new_se_median_s`).
Last line of output: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx

from common import Lab, free_port, wait_for


def first_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def create_and_time(api: httpx.Client, name: str, vip: str, group: str | None) -> float:
    port = free_port()
    body = {"name": name, "services": [{"port": port}], "pool_ref": "bench", "vip": [{"ip_address": vip}]}
    if group:
        body["se_group_ref"] = group
    start = time.perf_counter()
    api.post("/api/virtualservice", json=body).raise_for_status()
    wait_for(f"{name} to answer", lambda: first_ok(f"http://{vip}:{port}/"), timeout=60, every=0.005)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--new-se-count", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0, help="accepted for uniformity; unused")
    args = parser.parse_args()
    lab = Lab()
    try:
        backend = lab.backend("one")
        api = lab.start_controller()
        api.post(
            "/api/pool", json={"name": "bench", "servers": [{"ip": "127.0.0.1", "port": backend}]}
        ).raise_for_status()
        create_and_time(api, "warm-up", "127.100.60.1", None)  # brings the first SE up
        existing = [create_and_time(api, f"vs-{i}", f"127.100.60.{i + 2}", None) for i in range(args.count)]
        api.post(
            "/api/serviceenginegroup",
            json={"name": "one-each", "max_vs_per_se": 1, "se_deprovision_delay": 0, "buffer_se": 0},
        ).raise_for_status()
        fresh = [
            create_and_time(api, f"new-se-{i}", f"127.100.61.{i + 1}", "one-each")
            for i in range(args.new_se_count)
        ]
    finally:
        lab.close()
    ordered = sorted(existing)
    result = {
        "median_s": round(statistics.median(existing), 4),
        "p95_s": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 4),
        "new_se_median_s": round(statistics.median(fresh), 4),
        "count": args.count,
        "new_se_count": args.new_se_count,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
