"""`make demo`: start a controller on 127.0.0.1:9080 with sample objects and show how to use it.

Ctrl-C stops the controller this script started (and nothing else). State stays in ./.fulcrum, so a
second `make demo` finds the same objects and the same admin password.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

DATA_DIR = Path(os.environ.get("FULCRUM_DATA_DIR", ".fulcrum")).resolve()
LISTEN = os.environ.get("FULCRUM_DEMO_LISTEN", "127.0.0.1:9080")
URL = f"http://{LISTEN}"

SAMPLE = [
    (
        "pool",
        {
            "name": "demo-pool",
            "lb_algorithm": "LB_ALGORITHM_ROUND_ROBIN",
            "servers": [{"ip": "127.0.0.1", "port": 8081}, {"ip": "127.0.0.1", "port": 8082}],
            "health_monitor_refs": ["System-HTTP"],
        },
    ),
    (
        "virtualservice",
        {
            "name": "demo-vs",
            "services": [{"port": 8080}],
            "pool_ref": "demo-pool",
            "vip": [{"ip_address": "127.100.0.10"}],
        },
    ),
]


def wait_healthy(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the controller exited with status {proc.returncode}; see the lines above")
        try:
            if httpx.get(f"{URL}/api/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"the controller did not answer on {URL} within {timeout:.0f} s")


def admin_password() -> str:
    if os.environ.get("FULCRUM_ADMIN_PASSWORD"):
        return os.environ["FULCRUM_ADMIN_PASSWORD"]
    return (DATA_DIR / "admin-password").read_text().strip()


def seed(password: str) -> None:
    with httpx.Client(base_url=URL, auth=("admin", password), timeout=10) as api:
        for type_name, body in SAMPLE:
            found = api.get(f"/api/{type_name}", params={"name": body["name"]}).json()
            if found["count"]:
                print(f"  {type_name} {body['name']!r} already there")
                continue
            answer = api.post(f"/api/{type_name}", json=body)
            if answer.status_code != 201:
                sys.exit(f"could not create {type_name} {body['name']!r}: {answer.json().get('error')}")
            print(f"  created {type_name} {body['name']!r}")


def main() -> None:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "fulcrum",
        "controller",
        "run",
        "--listen",
        LISTEN,
        "--data-dir",
        str(DATA_DIR),
    ]
    proc = subprocess.Popen(argv)
    try:
        wait_healthy(proc)
        password = admin_password()
        print("\nSample objects:")
        seed(password)
        where = (
            "$FULCRUM_ADMIN_PASSWORD"
            if os.environ.get("FULCRUM_ADMIN_PASSWORD")
            else DATA_DIR / "admin-password"
        )
        print(
            f"""
Fulcrum controller is running at {URL}  (data in {DATA_DIR})
  admin password:  {where}

Try it (in another terminal):
  export FULCRUM_URL={URL} FULCRUM_USER=admin FULCRUM_PASSWORD=$(cat {DATA_DIR / "admin-password"})
  curl -s -u admin:$FULCRUM_PASSWORD {URL}/api/virtualservice | python3 -m json.tool
  .venv/bin/fulcrum virtualservice list
  .venv/bin/fulcrum events

The README walks through tenants, users, pools and virtual services with curl.
Press Ctrl-C to stop the controller.
""",
            flush=True,
        )
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        print("controller stopped")


if __name__ == "__main__":
    main()
