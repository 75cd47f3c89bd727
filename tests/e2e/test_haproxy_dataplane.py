"""The SE's HAProxy side against a real HAProxy and real back-end processes on loopback.

Each test starts its own HAProxy (through `ConfigApplier`, as the agent does) in a private run
directory, with VIPs in 127.100.0.0/16 and back ends on 127.0.0.1, and stops exactly the processes it
started. What is checked is traffic: which back end answered, which certificate was served, whether a
request failed, and whether the worker process changed.
"""

from __future__ import annotations

import http.client
import random
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from fulcrum.protocol.se import (
    Algorithm,
    AppType,
    CertificateSpec,
    HttpSettings,
    ListenerSpec,
    MonitorSpec,
    MonitorType,
    PersistenceKind,
    PersistenceSpec,
    PoolSpec,
    SeConfig,
    ServerHealth,
    ServerSpec,
    VsSpec,
)
from fulcrum.se.apply import ApplyResult, ConfigApplier
from fulcrum.se.haproxy import HAProxyProcess
from fulcrum.se.render import RuntimePaths
from fulcrum.se.render.view import backend_name, server_name
from fulcrum.se.telemetry import server_states, vs_counters
from support.backends import BackendProcess
from support.certs import self_signed

HAPROXY_MISSING = "haproxy not installed: run make test which apt-get installs it"
HTTP_CHECK = MonitorSpec(
    name="http", type=MonitorType.HTTP, interval_s=1, timeout_s=1, rise=1, fall=2, http_request="GET /health"
)
TCP_CHECK = MonitorSpec(name="tcp", type=MonitorType.TCP, interval_s=1, timeout_s=1, rise=1, fall=2)


# --- lab ------------------------------------------------------------------------------------------


def random_vip() -> str:
    return f"127.100.{random.randint(0, 255)}.{random.randint(1, 254)}"


def free_port(ip: str) -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


@dataclass
class Lab:
    """One SE's HAProxy plus the back ends of a test; records everything it starts."""

    run_dir: Path
    applier: ConfigApplier
    backends: list[BackendProcess] = field(default_factory=list)
    version: int = 0

    def backend(self, name: str, kind: str = "http") -> BackendProcess:
        started = BackendProcess.start(kind, name)
        self.backends.append(started)
        return started

    def apply(self, *virtualservices: VsSpec) -> ApplyResult:
        self.version += 1
        config = SeConfig(se_uuid="se-e2e", version=self.version, virtualservices=virtualservices)
        return self.applier.apply(config)

    def apply_ok(self, *virtualservices: VsSpec) -> ApplyResult:
        result = self.apply(*virtualservices)
        assert result.ok, result.error
        return result

    @property
    def process(self) -> HAProxyProcess:
        return self.applier.process

    def server_status(self, vs_uuid: str, server_id: str) -> str:
        rows = self.process.runtime().show_stat()
        be, srv = backend_name(vs_uuid), server_name(server_id)
        return next(row["status"] for row in rows if row["pxname"] == be and row["svname"] == srv)

    def wait_status(self, vs_uuid: str, server_id: str, prefix: str, timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            status = self.server_status(vs_uuid, server_id)
            if status.startswith(prefix):
                return
            time.sleep(0.1)
        raise AssertionError(f"{server_id} is {status!r}, expected {prefix!r}")


@pytest.fixture
def lab() -> Iterator[Lab]:
    if shutil.which("haproxy") is None:
        pytest.fail(HAPROXY_MISSING)
    # A short private directory: UNIX socket paths are limited to 107 bytes.
    run_dir = Path(tempfile.mkdtemp(prefix="fulcrum-se-", dir="/tmp"))
    paths = RuntimePaths(run_dir)
    the_lab = Lab(run_dir, ConfigApplier(paths, HAProxyProcess(run_dir)))
    try:
        yield the_lab
    finally:
        try:
            the_lab.process.stop(graceful=False)
        finally:
            for backend in the_lab.backends:
                backend.kill()
            shutil.rmtree(run_dir, ignore_errors=True)


# --- config builders ------------------------------------------------------------------------------


def server(backend: BackendProcess, weight: int = 1, enabled: bool = True) -> ServerSpec:
    return ServerSpec(
        id=backend.server_id, ip=backend.host, port=backend.port, weight=weight, enabled=enabled
    )


def pool(*servers: ServerSpec, uuid: str = "pool-web", **settings: object) -> PoolSpec:
    values: dict[str, object] = {"algorithm": Algorithm.ROUND_ROBIN, "graceful_disable_timeout_s": 0}
    values.update(settings)
    return PoolSpec(uuid=uuid, name=uuid, servers=servers, **values)  # type: ignore[arg-type]


def http_vs(uuid: str, vip: str, port: int, the_pool: PoolSpec | None, **settings: object) -> VsSpec:
    values: dict[str, object] = {
        "name": uuid,
        "listeners": (ListenerSpec(port=port),),
        "app_type": AppType.HTTP,
    }
    values.update(settings)
    return VsSpec(uuid=uuid, tenant_uuid="tenant-e2e", vips=(vip,), pool=the_pool, **values)  # type: ignore[arg-type]


def get(vip: str, port: int, path: str = "/", **kwargs: object) -> httpx.Response:
    return httpx.get(f"http://{vip}:{port}{path}", timeout=5, **kwargs)  # type: ignore[arg-type]


def answers(vip: str, port: int, count: int) -> Counter[str]:
    with httpx.Client(base_url=f"http://{vip}:{port}", timeout=5) as client:
        return Counter(client.get("/").text for _ in range(count))


# --- tests ----------------------------------------------------------------------------------------


def test_round_robin_spreads_requests_by_weight(lab: Lab) -> None:
    light, heavy = lab.backend("light"), lab.backend("heavy")
    vip = random_vip()
    port = free_port(vip)
    result = lab.apply_ok(http_vs("vs-rr", vip, port, pool(server(light, 1), server(heavy, 2))))
    assert result.started

    counts = answers(vip, port, 300)

    assert counts["light"] + counts["heavy"] == 300
    assert abs(counts["heavy"] - 200) <= 10, counts
    view = lab.applier.applied_view
    assert view is not None
    (counters,) = vs_counters(view, lab.applier.read_stats())
    assert (counters.vs_uuid, counters.http_responses_2xx) == ("vs-rr", 300)


def test_killed_backend_is_marked_down_and_gets_no_requests(lab: Lab) -> None:
    backends = [lab.backend(name) for name in ("a", "b", "c")]
    vip = random_vip()
    port = free_port(vip)
    the_pool = pool(*(server(b) for b in backends), monitors=(HTTP_CHECK,))
    lab.apply_ok(http_vs("vs-down", vip, port, the_pool))
    for backend in backends:
        lab.wait_status("vs-down", backend.server_id, "UP")

    victim = backends[1]
    victim.kill()
    lab.wait_status("vs-down", victim.server_id, "DOWN", timeout=6)  # fall=2 checks, 1 s apart

    counts = answers(vip, port, 40)
    assert set(counts) == {"a", "c"}, counts
    view = lab.applier.applied_view
    assert view is not None
    health = {state.server_id: state.health for state in server_states(view, lab.applier.read_stats())}
    assert health == {
        backends[0].server_id: ServerHealth.UP,
        victim.server_id: ServerHealth.DOWN,
        backends[2].server_id: ServerHealth.UP,
    }
    # The health check sent what the monitor asked for.
    assert any(r["path"] == "/health" and r["method"] == "GET" for r in backends[0].seen())


def tls_get(
    vip: str, port: int, sni: str | None, version: ssl.TLSVersion, trust: str
) -> tuple[str, str, str | None]:
    """(certificate CN, HTTP response, ALPN) of one request; verifies the chain and name when SNI is set."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = context.maximum_version = version
    context.set_alpn_protocols(["http/1.1"])
    if sni is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cadata=trust)
    with (
        socket.create_connection((vip, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        assert (
            tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        )
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        cert = x509.load_der_x509_certificate(der)
        common_name = str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {sni or vip}\r\nConnection: close\r\n\r\n".encode())
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
        return common_name, response.decode(errors="replace"), tls.selected_alpn_protocol()


def test_tls_termination_serves_the_certificate_chosen_by_sni(lab: Lab) -> None:
    web = lab.backend("web")
    (cert_a, key_a), (cert_b, key_b) = self_signed("a.fulcrum.test"), self_signed("b.fulcrum.test")
    certificates = (
        CertificateSpec(uuid="cert-a", name="a", certificate_pem=cert_a, key_pem=key_a),
        CertificateSpec(uuid="cert-b", name="b", certificate_pem=cert_b, key_pem=key_b),
    )
    vip = random_vip()
    plain, secure = free_port(vip), free_port(vip)
    listeners = (ListenerSpec(port=plain), ListenerSpec(port=secure, tls=True))
    settings = HttpSettings(redirect_to_https=True, hsts=True, x_forwarded_proto=True)
    vs = http_vs("vs-tls", vip, plain, pool(server(web)), listeners=listeners, http=settings)
    lab.apply_ok(vs.model_copy(update={"certificates": certificates}))

    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        for host in ("a.fulcrum.test", "b.fulcrum.test"):
            common_name, response, alpn = tls_get(vip, secure, host, version, cert_a + cert_b)
            assert common_name == host
            assert alpn == "http/1.1"
            assert response.startswith("HTTP/1.1 200") and response.endswith("web")
            assert "strict-transport-security: max-age=31536000" in response.lower()
        assert tls_get(vip, secure, None, version, "")[0] == "a.fulcrum.test"  # no SNI: the first one

    redirect = get(vip, plain, "/x?y=1")
    assert redirect.status_code == 301
    assert redirect.headers["location"] == f"https://{vip}:{plain}/x?y=1"
    assert (lab.run_dir / "certs").stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in (lab.run_dir / "certs").iterdir())
    assert any(r["headers"].get("x-forwarded-proto") == "https" for r in web.seen())


def test_l4_virtual_service_proxies_raw_tcp(lab: Lab) -> None:
    one, two = lab.backend("echo-1", "tcp"), lab.backend("echo-2", "tcp")
    vip = random_vip()
    port = free_port(vip)
    the_pool = pool(server(one), server(two), monitors=(TCP_CHECK,))
    lab.apply_ok(http_vs("vs-l4", vip, port, the_pool, app_type=AppType.L4))

    greetings = set()
    for _ in range(4):
        with socket.create_connection((vip, port), timeout=5) as sock:
            stream = sock.makefile("rb")
            greetings.add(stream.readline().strip().decode())
            payload = bytes(range(256)) * 64
            sock.sendall(payload)
            assert stream.read(len(payload)) == payload
    assert greetings == {"echo-1", "echo-2"}


def request_from(source: str, vip: str, port: int, headers: dict[str, str] | None = None) -> str:
    connection = http.client.HTTPConnection(vip, port, timeout=5, source_address=(source, 0))
    try:
        connection.request("GET", "/", headers=headers or {})
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def test_client_ip_persistence_keeps_each_client_on_one_server(lab: Lab) -> None:
    one, two = lab.backend("one"), lab.backend("two")
    vip = random_vip()
    port = free_port(vip)
    sticky = PersistenceSpec(kind=PersistenceKind.CLIENT_IP, ip_timeout_s=60)
    lab.apply_ok(http_vs("vs-ip", vip, port, pool(server(one), server(two), persistence=sticky)))

    chosen = {}
    for source in (f"127.0.0.{n}" for n in range(10, 16)):
        seen = {request_from(source, vip, port) for _ in range(6)}
        assert len(seen) == 1, (source, seen)
        chosen[source] = seen.pop()
    assert set(chosen.values()) == {"one", "two"}  # new clients are still balanced


def test_cookie_persistence_and_graceful_disable(lab: Lab) -> None:
    one, two = lab.backend("one"), lab.backend("two")
    vip = random_vip()
    port = free_port(vip)
    sticky = PersistenceSpec(kind=PersistenceKind.HTTP_COOKIE, cookie_name="LB", cookie_max_age_s=600)

    def vs(second_enabled: bool = True, graceful_s: int = 0) -> VsSpec:
        servers = (server(one), server(two, enabled=second_enabled))
        return http_vs(
            "vs-ck", vip, port, pool(*servers, persistence=sticky, graceful_disable_timeout_s=graceful_s)
        )

    lab.apply_ok(vs())
    cookies = {}
    for _ in range(4):
        response = get(vip, port)
        assert "Max-Age=600" in response.headers["set-cookie"]
        cookies[response.text] = response.headers["set-cookie"].split(";")[0]
    assert set(cookies) == {"one", "two"}
    for name, cookie in cookies.items():
        assert {get(vip, port, headers={"Cookie": cookie}).text for _ in range(8)} == {name}

    # Graceful disable: the sticky client stays, new clients go elsewhere (no reload for either step).
    drained = lab.apply_ok(vs(second_enabled=False, graceful_s=30))
    assert not drained.reloaded and drained.runtime_changes == 1
    assert get(vip, port, headers={"Cookie": cookies["two"]}).text == "two"
    assert answers(vip, port, 6) == Counter({"one": 6})
    # Hard disable (maintenance): even the sticky client is redispatched.
    lab.apply_ok(vs(second_enabled=False, graceful_s=0))
    assert get(vip, port, headers={"Cookie": cookies["two"]}).text == "one"


def test_server_level_changes_apply_without_reload(lab: Lab) -> None:
    one, two, three = lab.backend("one"), lab.backend("two"), lab.backend("three")
    vip = random_vip()
    port = free_port(vip)

    def vs(*servers: ServerSpec) -> VsSpec:
        return http_vs("vs-rt", vip, port, pool(*servers, monitors=(HTTP_CHECK,)))

    lab.apply_ok(vs(server(one), server(two)))
    worker, reloads = lab.process.current_worker(), lab.process.processes().reloads

    disabled = lab.apply_ok(vs(server(one), server(two, enabled=False)))
    assert (disabled.reloaded, disabled.runtime_changes) == (False, 1)
    assert answers(vip, port, 10) == Counter({"one": 10})

    reweighted = lab.apply_ok(vs(server(one, weight=1), server(two, weight=3)))
    assert (reweighted.reloaded, reweighted.runtime_changes) == (False, 2)
    counts = answers(vip, port, 80)
    assert abs(counts["two"] - 60) <= 6, counts

    added = lab.apply_ok(vs(server(one), server(two), server(three)))
    assert not added.reloaded and added.runtime_changes >= 3  # add, enable health, ready (+ weight)
    lab.wait_status("vs-rt", three.server_id, "UP")
    assert set(answers(vip, port, 30)) == {"one", "two", "three"}

    removed = lab.apply_ok(vs(server(one), server(three)))
    assert not removed.reloaded
    assert set(answers(vip, port, 20)) == {"one", "three"}

    assert lab.process.current_worker() == worker
    assert lab.process.processes().reloads == reloads
    # The file says the same as the runtime, so a later reload keeps these servers.
    config = (lab.run_dir / "haproxy.cfg").read_text()
    assert server_name(three.server_id) in config and server_name(two.server_id) not in config


def test_reloads_under_keepalive_load_lose_no_request(lab: Lab) -> None:
    web = lab.backend("web")
    vip = random_vip()
    port = free_port(vip)
    main_vs = http_vs("vs-main", vip, port, pool(server(web)))
    lab.apply_ok(main_vs)
    stop = threading.Event()
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def load() -> None:
        connection = http.client.HTTPConnection(vip, port, timeout=5)
        while not stop.is_set():
            try:
                connection.request("GET", "/")
                response = connection.getresponse()
                outcome = "ok" if response.status == 200 and response.read() == b"web" else "bad"
            except (OSError, http.client.HTTPException) as exc:
                outcome = f"error {type(exc).__name__}"
                connection.close()
            with lock:
                outcomes[outcome] += 1
        connection.close()

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        reloads = 0
        for i in range(20):
            extra_port = free_port(vip)
            extra = http_vs(f"vs-extra-{i}", vip, extra_port, pool(server(web), uuid=f"pool-{i}"))
            result = lab.apply_ok(main_vs, extra)
            reloads += result.reloaded
            assert get(vip, extra_port).text == "web"  # the new VS serves once apply returns
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)

    assert reloads == 20
    assert outcomes["ok"] > 200
    assert set(outcomes) == {"ok"}, outcomes


def test_bad_certificate_is_refused_and_the_running_config_keeps_serving(lab: Lab) -> None:
    web = lab.backend("web")
    vip = random_vip()
    port, secure = free_port(vip), free_port(vip)
    good = http_vs("vs-good", vip, port, pool(server(web)))
    lab.apply_ok(good)
    worker = lab.process.current_worker()
    running_config = (lab.run_dir / "haproxy.cfg").read_text()
    garbage = CertificateSpec(
        uuid="cert-bad",
        name="bad",
        certificate_pem="-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----",
        key_pem="not a key",
    )
    bad = http_vs(
        "vs-bad",
        vip,
        secure,
        pool(server(web)),
        listeners=(ListenerSpec(port=secure, tls=True),),
        certificates=(garbage,),
    )

    result = lab.apply(good, bad)

    assert not result.ok
    assert result.error is not None and "haproxy -c" in result.error
    assert (lab.run_dir / "haproxy.cfg").read_text() == running_config
    assert "vs-bad" in (lab.run_dir / "haproxy.cfg.failed").read_text()
    assert list((lab.run_dir / "certs").iterdir()) == []  # the refused attempt's files are gone
    assert lab.process.current_worker() == worker
    assert get(vip, port).text == "web"
    with pytest.raises(httpx.ConnectError):
        get(vip, secure)
    assert lab.applier.applied_version == 1


def test_http_settings_and_hostile_strings_reach_back_ends_as_data(lab: Lab) -> None:
    web = lab.backend("web")
    vip = random_vip()
    port = free_port(vip)
    hostile_host = "we\"ird $HOME #not-a-comment 100% \\back 'q'"
    monitor = HTTP_CHECK.model_copy(
        update={"http_request": "HEAD /st%20atus?a=1 HTTP/1.1", "http_host": hostile_host}
    )
    settings = HttpSettings(xff_header="X-Client-IP", x_forwarded_proto=True)
    name = 'evil"\n    bind 0.0.0.0:1 # and $HOME'
    vs = http_vs("vs-data", vip, port, pool(server(web), monitors=(monitor,)), http=settings, name=name)
    lab.apply_ok(vs)
    lab.wait_status("vs-data", web.server_id, "UP")

    assert get(vip, port).text == "web"
    seen = web.seen()
    checks = [r for r in seen if r["method"] == "HEAD"]
    assert checks and checks[0]["path"] == "/st%20atus?a=1"
    assert checks[0]["headers"]["host"] == hostile_host
    proxied = next(r for r in seen if r["method"] == "GET")
    assert proxied["headers"]["x-client-ip"] == "127.0.0.1"
    assert proxied["headers"]["x-forwarded-proto"] == "http"


def test_disabled_vs_closes_its_ports_and_poolless_vs_answers_503(lab: Lab) -> None:
    web = lab.backend("web")
    vip = random_vip()
    port, other = free_port(vip), free_port(vip)
    live = http_vs("vs-live", vip, port, pool(server(web)))
    lab.apply_ok(live, http_vs("vs-nopool", vip, other, None))
    assert get(vip, other).status_code == 503

    lab.apply_ok(live.model_copy(update={"enabled": False}), http_vs("vs-nopool", vip, other, None))
    with pytest.raises(httpx.ConnectError):
        get(vip, port)
    l4 = http_vs("vs-nopool", vip, other, None, app_type=AppType.L4)
    lab.apply_ok(live, l4)
    assert get(vip, port).text == "web"
    # Refused at accept: reset, or closed without a byte.
    with pytest.raises(ConnectionError), socket.create_connection((vip, other), timeout=5) as sock:
        if sock.recv(10) == b"":
            raise ConnectionAbortedError


def test_address_in_use_fails_the_reload_and_the_running_worker_keeps_serving(lab: Lab) -> None:
    web = lab.backend("web")
    vip = random_vip()
    port = free_port(vip)
    good = http_vs("vs-good", vip, port, pool(server(web)))
    lab.apply_ok(good)
    running_config = (lab.run_dir / "haproxy.cfg").read_text()
    worker = lab.process.current_worker()
    with socket.socket() as squatter:  # `haproxy -c` cannot know that this port is taken
        squatter.bind((vip, 0))
        squatter.listen()
        taken = http_vs("vs-taken", vip, squatter.getsockname()[1], pool(server(web)))

        result = lab.apply(good, taken)

    assert not result.ok
    assert result.error is not None and "Address already in use" in result.error
    assert (lab.run_dir / "haproxy.cfg").read_text() == running_config
    assert lab.process.current_worker() == worker
    assert get(vip, port).text == "web"
    retry = lab.apply_ok(good, taken)  # the port is free again
    assert retry.reloaded


def test_a_restarted_agent_adopts_the_running_haproxy(lab: Lab) -> None:
    web = lab.backend("web")
    vip = random_vip()
    port = free_port(vip)
    lab.apply_ok(http_vs("vs-a", vip, port, pool(server(web))))
    master, worker = lab.process.master_pid, lab.process.current_worker()

    successor = HAProxyProcess(lab.run_dir)
    assert successor.adopt()
    assert successor.master_pid == master
    applier = ConfigApplier(RuntimePaths(lab.run_dir), successor)
    result = applier.apply(
        SeConfig(
            se_uuid="se-e2e", version=2, virtualservices=(http_vs("vs-a", vip, port, pool(server(web))),)
        )
    )

    assert result.ok and result.reloaded and not result.started  # never a second HAProxy
    assert successor.master_pid == master and successor.current_worker() != worker
    assert get(vip, port).text == "web"
