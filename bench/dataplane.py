"""Requests/s through a Fulcrum HTTP VS vs a hand-written haproxy.cfg vs the back end directly.

All three are measured in the same run with the same load generator (wrk), interleaved over several
rounds in a rotating order; the medians are reported. Keep-alive and connection-per-request are both measured.
Last line of output: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics

from common import Lab, free_port, wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each wrk run")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()

    lab = Lab()
    try:
        backends = [lab.backend("one"), lab.backend("two")]
        api = lab.start_controller()
        vip, port = "127.100.50.1", free_port()
        pool = api.post(
            "/api/pool",
            json={"name": "bench", "lb_algorithm": "LB_ALGORITHM_ROUND_ROBIN",
                  "servers": [{"ip": "127.0.0.1", "port": p} for p in backends]},
        )  # fmt: skip
        pool.raise_for_status()
        vs = api.post(
            "/api/virtualservice",
            json={
                "name": "bench",
                "services": [{"port": port}],
                "pool_ref": "bench",
                "vip": [{"ip_address": vip}],
            },
        )
        vs.raise_for_status()
        lab.wait_vs_up(api, vs.json()["url"])
        plain_port = free_port()
        lab.plain_haproxy("127.0.0.1", plain_port, backends)
        targets = {
            "fulcrum": f"http://{vip}:{port}/",
            "plain_haproxy": f"http://127.0.0.1:{plain_port}/",
            "direct": f"http://127.0.0.1:{backends[0]}/",
        }
        results: dict[str, list[float]] = {}
        errors = 0
        names = list(targets)
        for _round in range(args.rounds):
            # Rotate the order every round: whoever runs first after a pause is measured a little low.
            order = names[_round % len(names) :] + names[: _round % len(names)]
            for close in (False, True):
                for name in order:
                    url = targets[name]
                    measured = wrk(url, args.seconds, close=close)
                    key = f"{name}_rps" if not close else f"{name}_close_rps"
                    results.setdefault(key, []).append(measured["rps"])
                    errors += int(measured["errors"])
                    print(f"round {_round + 1} {key}: {measured['rps']:.0f}", flush=True)
    finally:
        lab.close()
    medians = {k: round(statistics.median(v)) for k, v in results.items()}
    medians["ratio_vs_haproxy"] = round(medians["fulcrum_rps"] / medians["plain_haproxy_rps"], 3)
    medians["ratio_vs_haproxy_close"] = round(
        medians["fulcrum_close_rps"] / medians["plain_haproxy_close_rps"], 3
    )
    medians["errors"] = errors
    medians["seconds"] = args.seconds
    medians["rounds"] = args.rounds
    print(json.dumps(medians))


if __name__ == "__main__":
    main()
