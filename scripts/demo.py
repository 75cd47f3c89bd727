"""`make demo`: a controller on 127.0.0.1:9080, two demo back ends and a virtual service with traffic.

The controller places the VS on a Service Engine (agent + HAProxy) that the local cloud starts. Ctrl-C
stops what this script started: the controller, the SEs of this data dir (`fulcrum local down`) and the
back ends. State stays in ./.fulcrum, so a second `make demo` finds the same objects and password.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

DATA_DIR = Path(os.environ.get("FULCRUM_DATA_DIR", ".fulcrum")).resolve()
LISTEN = os.environ.get("FULCRUM_DEMO_LISTEN", "127.0.0.1:9080")
URL = f"http://{LISTEN}"

BACKEND_PORTS = (8081, 8082)
VIP, VIP_PORT = "127.100.0.10", 8080


class DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"hello from {self.server.name}\n".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *_args: object) -> None:
        return


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up early (a health check) is no error worth a traceback."""


def start_backends() -> list[ThreadingHTTPServer]:
    servers = []
    for index, port in enumerate(BACKEND_PORTS):
        try:
            server = QuietServer(("127.0.0.1", port), DemoHandler)
        except OSError as exc:
            sys.exit(f"demo back end port {port} is busy ({exc}); free it and run make demo again")
        server.name = f"backend-{index + 1} (127.0.0.1:{port})"  # type: ignore[attr-defined]
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    return servers


def wait_up(password: str, timeout: float = 60) -> str:
    with httpx.Client(base_url=URL, auth=("admin", password), timeout=10) as api:
        vs = api.get("/api/virtualservice", params={"name": "demo-vs"}).json()["results"][0]
        deadline = time.monotonic() + timeout
        runtime: dict[str, object] = {}
        while time.monotonic() < deadline:
            runtime = api.get(f"{vs['url']}/runtime").json()
            if runtime["oper_status"] == "OPER_UP":
                return "OPER_UP"
            time.sleep(0.3)
        return f"{runtime.get('oper_status')} ({runtime.get('reason')})"


SAMPLE = [
    (
        "pool",
        {
            "name": "demo-pool",
            "lb_algorithm": "LB_ALGORITHM_ROUND_ROBIN",
            "servers": [{"ip": "127.0.0.1", "port": port} for port in BACKEND_PORTS],
            "health_monitor_refs": ["System-HTTP"],
        },
    ),
    (
        "virtualservice",
        {
            "name": "demo-vs",
            "services": [{"port": VIP_PORT}],
            "pool_ref": "demo-pool",
            "vip": [{"ip_address": VIP}],
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
    backends = start_backends()
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
        print("\nWaiting for the Service Engine to come up ...", flush=True)
        state = wait_up(password)
        print(f"demo-vs is {state}")
        where = (
            "$FULCRUM_ADMIN_PASSWORD"
            if os.environ.get("FULCRUM_ADMIN_PASSWORD")
            else DATA_DIR / "admin-password"
        )
        print(
            f"""
Fulcrum controller is running at {URL}  (data in {DATA_DIR})
  admin password:  {where}

Traffic through the VIP (answers alternate between the two back ends):
  for i in 1 2 3 4; do curl -s http://{VIP}:{VIP_PORT}/; done

Try it (in another terminal):
  export FULCRUM_URL={URL} FULCRUM_USER=admin FULCRUM_PASSWORD=$(cat {DATA_DIR / "admin-password"})
  curl -s -u admin:$FULCRUM_PASSWORD {URL}/api/virtualservice | python3 -m json.tool
  .venv/bin/fulcrum virtualservice list
  .venv/bin/fulcrum serviceengine list
  .venv/bin/fulcrum events

The README walks through tenants, users, pools and virtual services with curl.
Press Ctrl-C to stop the controller, its Service Engines and the demo back ends.
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
        subprocess.run(
            [sys.executable, "-m", "fulcrum", "local", "down", "--data-dir", str(DATA_DIR)], check=False
        )
        for server in backends:
            server.shutdown()
        print("controller, service engines and back ends stopped")


if __name__ == "__main__":
    main()
