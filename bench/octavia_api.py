"""How long an Octavia client waits for a working load balancer.

Each round POSTs one fully-populated load balancer (`/v2/lbaas/loadbalancers` with an HTTP listener, a
ROUND_ROBIN pool and two members) to a real controller with its local-cloud data plane, then polls until
the load balancer is ACTIVE / ONLINE *and* both members answer through the VIP; that wall time is one
sample. The load balancer is then cascade-deleted. The SE group keeps its default spare SE (buffer_se 1),
as a production group would, so a round measures configuration, not SE boot.

    .venv/bin/python bench/octavia_api.py --rounds 10

Last line: JSON with `lb_ready_median_s` (goal <= 2 s), `lb_ready_p90_s`, `api_create_median_s` (the
POST alone), `cold_start_s` (the first load balancer, which also boots the group's first SE; not in the
median) and the samples.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx

from common import Lab, wait_for


def _serves_both(vip: str, port: int) -> bool:
    seen = set()
    try:
        for _ in range(6):
            answer = httpx.get(f"http://{vip}:{port}/", timeout=1)
            if answer.status_code != 200:
                return False
            seen.add(answer.text.strip())
    except httpx.HTTPError:
        return False
    return len(seen) == 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=0, help="accepted for uniformity; rounds decide")
    args = parser.parse_args()
    lab = Lab()
    ready: list[float] = []
    posted: list[float] = []
    try:
        ports = [lab.backend("a"), lab.backend("b")]
        api = lab.start_controller()
        group = api.get("/api/serviceenginegroup", params={"name": "Default-Group"}).json()["results"][0]
        api.patch(group["url"], json={"buffer_se": 1, "se_deprovision_delay": 120}).raise_for_status()
        subnets = api.get("/v2.0/subnets", params={"name": "Default-Cloud-vip-subnet"}).json()["subnets"]
        subnet = subnets[0]["id"]
        # Round 0 is the cold start: the group has no SE yet, so one boots (reported apart, not in the
        # median); later rounds find it running, as they would in a cloud that already serves.
        for round_ in range(args.rounds + 1):
            listen = 19000 + round_
            body = {"loadbalancer": {
                "name": f"bench-{round_}", "vip_subnet_id": subnet,
                "listeners": [{"name": "http", "protocol": "HTTP", "protocol_port": listen, "default_pool": {
                    "name": "pool", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                    "members": [{"address": "127.0.0.1", "protocol_port": p} for p in ports],
                }}],
            }}  # fmt: skip
            start = time.monotonic()
            created = api.post("/v2/lbaas/loadbalancers", json=body)
            posted.append(time.monotonic() - start)
            created.raise_for_status()
            lb = created.json()["loadbalancer"]

            def done(lb_id: str = lb["id"], vip: str = lb["vip_address"], port: int = listen) -> bool:
                shown = api.get(f"/v2/lbaas/loadbalancers/{lb_id}").json()["loadbalancer"]
                return (
                    shown["provisioning_status"] == "ACTIVE"
                    and shown["operating_status"] == "ONLINE"
                    and _serves_both(vip, port)
                )

            wait_for(f"load balancer {lb['id']} ready", done, timeout=60, every=0.02)
            ready.append(time.monotonic() - start)
            label = "cold start" if round_ == 0 else f"round {round_}"
            print(f"{label}: ready in {ready[-1]:.3f} s (POST {posted[-1]:.3f} s)", flush=True)
            api.delete(f"/v2/lbaas/loadbalancers/{lb['id']}", params={"cascade": "true"}).raise_for_status()
            wait_for(
                "the load balancer gone",
                lambda lb_id=lb["id"]: api.get(f"/v2/lbaas/loadbalancers/{lb_id}").status_code == 404,
            )
    finally:
        lab.close()
    cold, ready, posted = ready[0], ready[1:], posted[1:]
    ordered = sorted(ready)
    print(json.dumps({
        "cold_start_s": round(cold, 3),
        "lb_ready_median_s": round(statistics.median(ready), 3),
        "lb_ready_p90_s": round(ordered[max(0, int(len(ordered) * 0.9) - 1)], 3),
        "api_create_median_s": round(statistics.median(posted), 3),
        "rounds": len(ready),
        "samples_s": [round(s, 3) for s in ready],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
