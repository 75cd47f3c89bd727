"""An HTTP back end whose answers a test chooses per request, to give analytics known errors and delays.

`GET /status/<code>[?...]` answers `<code>`, `GET /sleep/<ms>[?...]` answers 200 after `<ms>`
milliseconds, anything else answers 200. Bodies are short and sized (`Content-Length`), and every
response closes the connection when the request asked for it.

Run directly: `python analytics_backends.py [--host IP]`; it prints `READY <port>` once bound. The test
side (`ScriptedBackend`) starts one process and stops exactly that process.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_STATUS = re.compile(r"/status/(\d{3})(?:[/?]|$)")
_SLEEP = re.compile(r"/sleep/(\d{1,5})(?:[/?]|$)")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        status = 200
        if match := _STATUS.match(self.path):
            status = int(match.group(1))
        elif match := _SLEEP.match(self.path):
            time.sleep(int(match.group(1)) / 1000)
        body = f"status {status}\n".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, 0), _Handler)
    server.daemon_threads = True
    server.handle_error = lambda *_: None  # type: ignore[method-assign]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


@dataclass
class ScriptedBackend:
    host: str
    port: int
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, host: str = "127.0.0.1", timeout: float = 10.0) -> ScriptedBackend:
        argv = [sys.executable, str(Path(__file__).resolve()), "--host", host]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline().decode() if ready else ""
        if not line.startswith("READY "):
            process.kill()
            process.wait()
            raise RuntimeError(f"scripted back end did not start: {line!r}")
        return cls(host, int(line.split()[1]), process)

    @property
    def server_id(self) -> str:
        return f"{self.host}:{self.port}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()


if __name__ == "__main__":
    main()
