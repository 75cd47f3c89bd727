"""How many analytics records the controller ingests, and what it costs: simulated SEs send real,
signed analytics reports over HTTP to a real controller process.

The controller runs in a child process (data plane off). Before it serves, this harness enrols `--ses`
simulated SEs through the controller's own services (an SE object, a placement of one VS with its pool,
a bootstrap token each) — the same records the reconciler would write for real SEs. The SEs then
register with their tokens and report every `--interval` seconds (a VS, a pool, its servers, the SE: the
points a real SE sends, plus `--logs` request logs), spread evenly over the interval. Measured over
`--seconds`: `records_per_s` (metric points + logs stored per second) and `controller_cpu_pct` (the
controller process's CPU time over wall time, 100 = one core). Last line of output: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx
import psutil

from common import free_port, wait_for
from fulcrum.protocol import metrics as catalog
from fulcrum.protocol import se as wire
from fulcrum.protocol import signing

CHILD = textwrap.dedent(
    """
    import json, sys, threading, time
    from pathlib import Path
    import uvicorn
    from fulcrum.controller.app import create_app
    from fulcrum.controller.settings import ControllerSettings
    from fulcrum.controller.store import repo

    data_dir, port, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    settings = ControllerSettings(data_dir=data_dir, listen_port=port, admin_password="bench-admin-password",
                                  argon2_memory_kib=8192, dataplane=False)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))

    def enrol() -> None:
        while not server.started:
            time.sleep(0.05)
        svc = app.state.services
        with svc.db.read() as conn:
            group = next(o for o in repo.all_of_type(conn, "serviceenginegroup") if o.name == "Default-Group")
            cloud = next(o for o in repo.all_of_type(conn, "cloud") if o.name == "Default-Cloud")
        enrolled, rows = [], []
        for i in range(count):
            a, b = divmod(i, 250)
            pool = svc.objects.create_internal("pool", {"name": f"p{i}", "servers": [
                {"ip": f"10.0.{a}.{b + 1}", "port": 80}, {"ip": f"10.1.{a}.{b + 1}", "port": 80}]})
            vs = svc.objects.create_internal("virtualservice", {"name": f"vs{i}", "services": [{"port": 80}],
                "pool_ref": pool["uuid"], "vip": [{"ip_address": f"127.101.{a}.{b + 1}"}]})
            se = svc.objects.create_internal("serviceengine", {"name": f"sim-se-{i}",
                "se_group_ref": group.uuid, "cloud_ref": cloud.uuid})
            token = svc.registry.issue_bootstrap(se["uuid"])
            rows.append((vs["uuid"], se["uuid"], "primary"))
            enrolled.append({"se": se["uuid"], "vs": vs["uuid"], "pool": pool["uuid"], "token": token})
        with svc.db.write() as conn:
            repo.set_placements(conn, rows, 0)
        (data_dir / "enrolled.json").write_text(json.dumps(enrolled))

    threading.Thread(target=enrol, daemon=True).start()
    server.run()
    """
)


def report(entry: dict[str, str], start: float, interval: float, logs: int) -> bytes:
    points = []
    for metric in catalog.METRICS:
        for etype in metric.entity_types:
            entity = {"virtualservice": entry["vs"], "pool": entry["pool"], "serviceengine": entry["se"]}[
                etype.value
            ]
            servers = ("10.0.0.1:80", "10.1.0.1:80") if metric.per_server else (None,)
            for server in servers:
                points.append(
                    wire.MetricPoint(
                        entity_type=etype, entity_uuid=entity, metric_id=metric.metric_id,
                        value=random.random() * 100, server=server,
                    )
                )  # fmt: skip
    entries = tuple(
        wire.RequestLog(
            ts=start + random.random() * interval, vs_uuid=entry["vs"], pool_uuid=entry["pool"],
            server="10.0.0.1:80", client_ip="198.51.100.7", client_port=40000 + n, method="GET",
            uri=f"/shop/item/{n}?q=x", status=503,
            client_latency_ms=1.5, server_latency_ms=12.0, total_ms=14.0, bytes_in=320, bytes_out=2100,
            tls_version="TLSv1.3", termination="----", significant="error",
        )
        for n in range(logs)
    )  # fmt: skip
    body = wire.AnalyticsReport(start=start, end=start + interval, metrics=tuple(points), logs=entries)
    return body.model_dump_json().encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ses", type=int, default=200)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--logs", type=int, default=20, help="request logs per report")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    tmp = Path(tempfile.mkdtemp(prefix="fulcrum-ingest-"))
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp), str(port), str(args.ses)],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "controller.log", "wb"),  # noqa: SIM115 - lives as long as the child
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for("the controller and its simulated SEs", (tmp / "enrolled.json").exists, timeout=120)
        enrolled = json.loads((tmp / "enrolled.json").read_text())
        http = httpx.Client(base_url=base, timeout=30)
        for entry in enrolled:
            request = wire.RegisterRequest(
                se_uuid=entry["se"], bootstrap_token=entry["token"], agent_version="sim"
            )
            answer = http.post(f"{wire.PREFIX}/register", content=request.model_dump_json())
            answer.raise_for_status()
            entry["credential"] = answer.json()["credential"]
        bodies = [report(e, time.time(), args.interval, args.logs) for e in enrolled]
        per_report = len(json.loads(bodies[0])["metrics"]) + args.logs

        stop = threading.Event()
        sent = [0] * args.threads
        failed = [0] * args.threads

        def sender(worker: int) -> None:
            mine = enrolled[worker :: args.threads]
            gap = args.interval / max(1, len(mine))
            next_at = time.monotonic() + random.random() * gap
            with httpx.Client(base_url=base, timeout=30) as client:
                while not stop.is_set():
                    for entry in mine:
                        time.sleep(max(0.0, next_at - time.monotonic()))
                        next_at += gap
                        if stop.is_set():
                            return
                        body = bodies[enrolled.index(entry)]
                        path = f"{wire.PREFIX}/analytics"
                        headers = signing.headers(
                            entry["se"], entry["credential"], "POST", path, body, time.time()
                        )
                        headers["Content-Type"] = "application/json"
                        response = client.post(path, content=body, headers=headers)
                        if response.status_code == 200 and response.json().get("points"):
                            sent[worker] += 1
                        else:
                            failed[worker] += 1

        workers = [threading.Thread(target=sender, args=(i,), daemon=True) for i in range(args.threads)]
        proc = psutil.Process(child.pid)
        for worker in workers:
            worker.start()
        time.sleep(args.interval)  # warm up: every SE has reported once
        cpu_before, started, done_before = proc.cpu_times(), time.monotonic(), sum(sent)
        time.sleep(args.seconds)
        cpu_after, elapsed, done = proc.cpu_times(), time.monotonic() - started, sum(sent) - done_before
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
        for path in sorted(tmp.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        tmp.rmdir()
    used = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    print(
        json.dumps(
            {
                "ses": args.ses,
                "interval_s": args.interval,
                "reports_per_s": round(done / elapsed, 1),
                "records_per_report": per_report,
                "records_per_s": round(done * per_report / elapsed),
                "controller_cpu_pct": round(100 * used / elapsed, 1),
                "failed_reports": sum(failed),
                "seconds": round(elapsed, 1),
            }
        )
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
