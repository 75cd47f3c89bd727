"""TLS-hello monitors, exact expected status codes and app-cookie persistence against a real HAProxy
and real back ends on loopback.

Pools are built as the controller builds them: validated config objects, turned into the SE's wire
spec by `se_config.vs_spec`, applied by a `ConfigApplier` in a private run directory (as the agent
does). The back ends are small servers in this process: HTTP servers that answer with a chosen status
or hand out a session cookie, and a TLS server that completes handshakes. What is checked is what
HAProxy made of them: whether a server is up, and which server a client's requests reached. Each test
stops exactly the servers and the HAProxy it started.
"""

from __future__ import annotations

import shutil
import socketserver
import ssl
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from fulcrum.controller.services import se_config
from fulcrum.controller.store.repo import StoredObject
from fulcrum.model.registry import TYPES
from fulcrum.protocol.se import VsSpec
from fulcrum.se.render.view import backend_name, server_name
from support.certs import self_signed
from support.selab import SeLab, free_ports, random_address

HAPROXY_MISSING = "haproxy not installed: run make test which apt-get installs it"
VS_UUID = "virtualservice-mp"
SESSION_COOKIE = "SESSIONID"


# --- back ends ------------------------------------------------------------------------------------


def _handler(name: str, status: int, session_cookie: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # a client that stalls does not keep a thread forever

        def _answer(self, with_body: bool) -> None:
            body = name.encode()
            self.send_response(status)
            self.send_header("X-Backend", name)
            # Like an application starting a session: a client without one gets one, named after us.
            if session_cookie and f"{session_cookie}=" not in self.headers.get("Cookie", ""):
                self.send_header("Set-Cookie", f"{session_cookie}={name}; Path=/")
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


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # health checks and proxies reset connections


class _TlsHandshake(socketserver.BaseRequestHandler):
    """Completes a TLS handshake, then waits for the client to close: all a TLS-hello check needs.

    The TLS runs over memory buffers rather than `SSLContext.wrap_socket`, which leaks its socket
    object when a client closes before the handshake (as plain health checks do)."""

    def handle(self) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.server.context.wrap_bio(incoming, outgoing, server_side=True)  # type: ignore[attr-defined]
        self.request.settimeout(10)
        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    self.request.sendall(outgoing.read())
                    data = self.request.recv(65536)
                    if not data:
                        return
                    incoming.write(data)
            self.request.sendall(outgoing.read())
            while self.request.recv(65536):
                pass
        except (ssl.SSLError, OSError):
            pass  # not a TLS client: exactly what a TLS-hello check must notice


class _TlsServer(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _TlsHandshake)
        self.context = context


@dataclass
class Backend:
    name: str
    server: socketserver.TCPServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def server_id(self) -> str:
        return f"127.0.0.1:{self.port}"

    def member(self) -> dict[str, Any]:
        return {"ip": "127.0.0.1", "port": self.port}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


# --- lab ------------------------------------------------------------------------------------------


@dataclass
class Lab:
    """One SE's HAProxy, the back ends and the config objects of a test."""

    se: SeLab
    vip: str
    tmp: Path
    backends: list[Backend] = field(default_factory=list)
    objects: dict[str, StoredObject] = field(default_factory=dict)

    def backend(
        self, name: str, *, status: int = 200, session_cookie: str | None = None, tls: bool = False
    ) -> Backend:
        """An HTTP back end answering `status` (and setting `session_cookie` to its name for clients
        without one), or with `tls` a server that completes TLS handshakes and nothing else."""
        server: socketserver.TCPServer
        if tls:
            cert, key = self_signed(f"{name}.fulcrum.test")
            (self.tmp / f"{name}.pem").write_text(cert + key)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tmp / f"{name}.pem")
            server = _TlsServer(context)
        else:
            server = _HttpServer(("127.0.0.1", 0), _handler(name, status, session_cookie))
        thread = threading.Thread(target=server.serve_forever, name=f"backend-{name}", daemon=True)
        thread.start()
        started = Backend(name, server, thread)
        self.backends.append(started)
        return started

    def add(self, type_name: str, uuid: str, body: dict[str, Any]) -> StoredObject:
        """A config object as the controller stores it: validated by its schema, defaults filled in."""
        data = TYPES[type_name].schema.model_validate(body).model_dump(mode="json")
        stored = StoredObject(
            uuid=uuid, type=type_name, tenant_uuid="tenant-e2e", name=body["name"], data=data
        )
        self.objects[uuid] = stored
        return stored

    def monitor(self, monitor_type: str, **fields: Any) -> str:
        uuid = f"healthmonitor-{monitor_type.lower()}"
        timing = {"send_interval": 1, "receive_timeout": 1, "successful_checks": 1, "failed_checks": 1}
        self.add("healthmonitor", uuid, {"name": uuid, "type": monitor_type, **timing, **fields})
        return f"/api/healthmonitor/{uuid}"

    def apply(self, port: int, *members: Backend, **pool_fields: Any) -> VsSpec:
        servers = [m.member() for m in members]
        self.add(
            "pool",
            "pool-mp",
            {"name": "pool", "lb_algorithm": "LB_ALGORITHM_ROUND_ROBIN", "servers": servers, **pool_fields},
        )
        self.add("vsvip", "vsvip-mp", {"name": "vip", "vip": [{"ip_address": self.vip}]})
        self.add("applicationprofile", "applicationprofile-mp", {"name": "app"})
        vs = self.add(
            "virtualservice",
            VS_UUID,
            {
                "name": "mp",
                "services": [{"port": port}],
                "vsvip_ref": "/api/vsvip/vsvip-mp",
                "application_profile_ref": "/api/applicationprofile/applicationprofile-mp",
                "pool_ref": "/api/pool/pool-mp",
            },
        )
        spec = se_config.vs_spec(vs, self.objects.get, lambda _: {})
        self.se.apply_ok(spec)
        return spec

    def port(self) -> int:
        port, _ = free_ports(self.vip, [])
        return port

    def wait_checked(self, backend: Backend, status: str, timeout: float = 10.0) -> dict[str, str]:
        """Wait until `backend` has `status` as the result of a completed health check (not the state a
        server starts in); returns its stats row."""
        deadline = time.monotonic() + timeout
        row: dict[str, str] = {}
        while time.monotonic() < deadline:
            row = self.se.stat(backend_name(VS_UUID), server_name(backend.server_id))
            row["check_status"] = row["check_status"].removeprefix("* ")  # "*": a check is running
            if row["status"] == status and row["check_status"] not in ("", "INI", "UNK"):
                return row
            time.sleep(0.05)
        raise AssertionError(
            f"{backend.name} is {row.get('status')!r} ({row.get('check_status')}), not {status}"
        )


@pytest.fixture
def lab() -> Iterator[Lab]:
    if shutil.which("haproxy") is None:
        pytest.fail(HAPROXY_MISSING)
    the_lab = Lab(
        SeLab.create("se-mp"), random_address("127.100"), Path(tempfile.mkdtemp(prefix="fulcrum-mp-"))
    )
    try:
        yield the_lab
    finally:
        try:
            the_lab.se.close()
        finally:
            for backend in the_lab.backends:
                backend.stop()
            shutil.rmtree(the_lab.tmp, ignore_errors=True)


def served_by(vip: str, port: int, cookie: str | None = None) -> tuple[str, str | None]:
    """(the back end that answered, the session cookie it set, if any), on a fresh connection."""
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"} if cookie else {}
    response = httpx.get(f"http://{vip}:{port}/", headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    return response.headers["x-backend"], response.cookies.get(SESSION_COOKIE)


# --- tests ----------------------------------------------------------------------------------------


def test_tls_hello_monitor_needs_a_completed_handshake(lab: Lab) -> None:
    secure, plain = lab.backend("secure", tls=True), lab.backend("plain")
    port = lab.port()
    # A TCP check only connects, so both servers pass it.
    lab.apply(port, secure, plain, health_monitor_refs=[lab.monitor("HEALTH_MONITOR_TCP")])
    assert lab.wait_checked(plain, "UP")["check_status"] == "L4OK"

    lab.apply(port, secure, plain, health_monitor_refs=[lab.monitor("HEALTH_MONITOR_TLS_HELLO")])
    lab.wait_checked(plain, "DOWN")  # it answers the client hello with an HTTP 400: no handshake
    assert lab.wait_checked(secure, "UP")["check_status"] == "L6OK"  # the handshake completed


@pytest.mark.parametrize("tls_first", [True, False], ids=["tls-hello-first", "tls-hello-second"])
def test_a_tls_hello_step_of_chained_monitors_needs_a_completed_handshake(lab: Lab, tls_first: bool) -> None:
    secure, plain = lab.backend("secure", tls=True), lab.backend("plain")
    monitors = [lab.monitor("HEALTH_MONITOR_TLS_HELLO"), lab.monitor("HEALTH_MONITOR_TCP")]
    lab.apply(lab.port(), secure, plain, health_monitor_refs=monitors if tls_first else monitors[::-1])
    lab.wait_checked(plain, "DOWN")
    lab.wait_checked(secure, "UP")


def test_expected_status_codes_are_exact_and_win_over_the_classes(lab: Lab) -> None:
    created = lab.backend("created", status=201)
    port = lab.port()

    def expect(codes: str) -> None:
        monitor = lab.monitor(
            "HEALTH_MONITOR_HTTP",
            # The classes alone would accept 201; the exact codes replace them.
            http_monitor={"http_request": "GET /health HTTP/1.1", "http_response_codes": codes},
        )
        lab.apply(port, created, health_monitor_refs=[monitor])

    expect("200")
    assert lab.wait_checked(created, "DOWN")["check_code"] == "201"
    expect("200-204")
    assert lab.wait_checked(created, "UP")["check_status"] == "L7OK"
    expect("200,202,301")
    lab.wait_checked(created, "DOWN")
    expect("101,201,599")
    lab.wait_checked(created, "UP")


def test_app_cookie_persistence_follows_the_applications_own_cookie(lab: Lab) -> None:
    one = lab.backend("one", session_cookie=SESSION_COOKIE)
    two = lab.backend("two", session_cookie=SESSION_COOKIE)
    lab.add(
        "applicationpersistenceprofile",
        "applicationpersistenceprofile-mp",
        {
            "name": "app-cookie",
            "persistence_type": "PERSISTENCE_TYPE_APP_COOKIE",
            "app_cookie_persistence_profile": {"cookie_name": SESSION_COOKIE, "timeout": 5},
        },
    )
    port = lab.port()
    lab.apply(
        port,
        one,
        two,
        application_persistence_profile_ref="/api/applicationpersistenceprofile/applicationpersistenceprofile-mp",
    )

    # Clients without a session are balanced; each server hands out its own session id.
    sessions = dict(served_by(lab.vip, port) for _ in range(4))
    assert sessions == {"one": "one", "two": "two"}
    # A client carrying a session id HAProxy saw a server set keeps reaching that server.
    for session, server in (("one", "one"), ("two", "two")):
        assert Counter(served_by(lab.vip, port, session)[0] for _ in range(8)) == {server: 8}
    # A value no server set is not persisted: round robin goes on.
    assert {served_by(lab.vip, port, "forged")[0] for _ in range(4)} == {"one", "two"}
