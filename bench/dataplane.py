"""Requests/s through a Fulcrum HTTP VS vs a hand-written haproxy.cfg vs the back end directly.

All three are measured in the same run with the same load generator (wrk), interleaved over several
rounds in a rotating order; the medians are reported. Keep-alive and connection-per-request are both measured.
`--analytics both` (the default) adds a second Fulcrum VS on the same SE with analytics off
(`analytics_policy` metrics and request logs disabled), measured in the same rotation, for the key
`ratio_analytics_on_vs_off`; `on` / `off` measure only the VS with analytics on / off. With `both`, a
third VS identical to the analytics-off one is measured too: `ratio_control` (it over the analytics-off
VS) is what this machine's noise alone makes of two equal things, the yardstick for the other ratio.
`*_paired` keys are the median of the per-round ratios (the two VSs measured in the same round), which
drift on a shared machine affects less. `--analytics-only` leaves out the hand-written HAProxy and the
direct target, so more rounds fit in the same time.
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
    parser.add_argument("--analytics", choices=("on", "off", "both"), default="both")
    parser.add_argument("--analytics-only", action="store_true", help="only the Fulcrum VSs")
    args = parser.parse_args()

    lab = Lab()
    try:
        backends = [lab.backend("one"), lab.backend("two")]
        api = lab.start_controller()
        pool = api.post(
            "/api/pool",
            json={"name": "bench", "lb_algorithm": "LB_ALGORITHM_ROUND_ROBIN",
                  "servers": [{"ip": "127.0.0.1", "port": p} for p in backends]},
        )  # fmt: skip
        pool.raise_for_status()
        targets: dict[str, str] = {}
        variants = {"on": [("fulcrum", True)], "off": [("fulcrum", False)]}.get(
            args.analytics,
            [("fulcrum", True), ("fulcrum_analytics_off", False), ("fulcrum_control", False)],
        )
        for index, (name, analytics) in enumerate(variants):
            vip, port = f"127.100.50.{index + 1}", free_port()
            policy = {"metrics_enabled": analytics, "client_logs_enabled": analytics}
            vs = api.post(
                "/api/virtualservice",
                json={"name": name, "services": [{"port": port}], "pool_ref": "bench",
                      "vip": [{"ip_address": vip}], "analytics_policy": policy},
            )  # fmt: skip
            vs.raise_for_status()
            lab.wait_vs_up(api, vs.json()["url"])
            targets[name] = f"http://{vip}:{port}/"
        if not args.analytics_only:
            plain_port = free_port()
            lab.plain_haproxy("127.0.0.1", plain_port, backends)
            targets["plain_haproxy"] = f"http://127.0.0.1:{plain_port}/"
            targets["direct"] = f"http://127.0.0.1:{backends[0]}/"
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
    medians: dict[str, object] = {k: round(statistics.median(v)) for k, v in results.items()}

    def ratio(key: str, top: str, bottom: str) -> None:
        for suffix in ("", "_close"):
            a, b = results.get(f"{top}{suffix}_rps"), results.get(f"{bottom}{suffix}_rps")
            if a and b:
                medians[f"{key}{suffix}"] = round(statistics.median(a) / statistics.median(b), 3)
                paired = [x / y for x, y in zip(a, b, strict=True)]
                medians[f"{key}{suffix}_paired"] = round(statistics.median(paired), 3)

    ratio("ratio_vs_haproxy", "fulcrum", "plain_haproxy")
    ratio("ratio_analytics_on_vs_off", "fulcrum", "fulcrum_analytics_off")
    ratio("ratio_control", "fulcrum_control", "fulcrum_analytics_off")
    medians["analytics"] = args.analytics
    medians["errors"] = errors
    medians["seconds"] = args.seconds
    medians["rounds"] = args.rounds
    print(json.dumps(medians))


if __name__ == "__main__":
    main()
