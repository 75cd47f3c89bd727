"""Real back-end processes for data-plane tests: an HTTP server that answers with its own name, and a
raw TCP echo server that greets with its name. Each runs in its own process so a test can kill it.

Run directly: `python backends.py http|tcp --name NAME [--host IP]`; it prints `READY <port>` once bound.
The HTTP server answers every path with its name (header `X-Backend` too), except `/_seen`, which
returns the last requests it received (method, path, headers with lower-case names) as JSON, so a test
can see exactly what HAProxy sent, health checks included.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socketserver
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# --- the servers (run in the child process) -------------------------------------------------------


def _http_handler(name: str) -> type[BaseHTTPRequestHandler]:
    seen: deque[dict[str, Any]] = deque(maxlen=200)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

        def _answer(self, with_body: bool) -> None:
            if self.path == "/_seen":
                with lock:
                    body = json.dumps(list(seen)).encode()
            else:
                with lock:
                    seen.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                        }
                    )
                body = name.encode()
            self.send_response(200)
            self.send_header("X-Backend", name)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(f"{self.server.backend_name}\n".encode())  # type: ignore[attr-defined]
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["http", "tcp"])
    parser.add_argument("--name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server: socketserver.TCPServer
    if args.kind == "http":
        server = ThreadingHTTPServer((args.host, 0), _http_handler(args.name))
        server.daemon_threads = True
    else:
        server = _EchoServer((args.host, 0), _EchoHandler)
        server.backend_name = args.name  # type: ignore[attr-defined]
    # Health checks and proxies reset connections; that is not worth a traceback on the test's stderr.
    server.handle_error = lambda *_: None  # type: ignore[method-assign]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


# --- the test side --------------------------------------------------------------------------------


@dataclass
class BackendProcess:
    """One back-end process that a test started; `kill` and `stop` only ever signal that process."""

    kind: str
    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, kind: str, name: str, host: str = "127.0.0.1", timeout: float = 10.0) -> BackendProcess:
        argv = [sys.executable, str(Path(__file__).resolve()), kind, "--name", name, "--host", host]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline().decode() if ready else ""
        if not line.startswith("READY "):
            process.kill()
            process.wait()
            raise RuntimeError(f"{kind} back end {name} did not start: {line!r}")
        return cls(kind, name, host, int(line.split()[1]), process)

    @property
    def server_id(self) -> str:
        return f"{self.host}:{self.port}"

    def seen(self) -> list[dict[str, Any]]:
        """The requests this HTTP back end received, asked directly (not through HAProxy)."""
        import httpx  # only the test side needs it; keeps the back-end process quick to start

        return httpx.get(f"http://{self.host}:{self.port}/_seen", timeout=5).json()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()


if __name__ == "__main__":
    main()
