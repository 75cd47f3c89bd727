"""One VIP served by two real HAProxy SEs (scale-out): the primary's distributor spreads connections
over both SEs' workers with the PROXY protocol, peers drain and die without failing clients, and a VS
switches between direct and scaled-out service under load.

Each SE is a `ConfigApplier` in its own run directory (as the agent runs it); VIPs are in
127.100.0.0/16, worker addresses in 127.101.0.0/16 (one per SE), back ends on 127.0.0.1. Every
process a test starts is stopped by the fixture, and only those.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field

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
    PeerState,
    PoolSpec,
    ScaleOutPeer,
    ScaleOutSpec,
    ServerSpec,
    VsCounters,
    VsRole,
    VsSpec,
)
from fulcrum.se.render.view import distributor_backend_name, peer_server_name
from fulcrum.se.telemetry import vs_counters
from support.backends import BackendProcess
from support.certs import self_signed
from support.selab import SeLab, free_ports, random_address

HAPROXY_MISSING = "haproxy not installed: run make test which apt-get installs it"
CLIENT = "127.0.0.77"  # a loopback source address distinct from HAProxy's own
PRIMARY, SECONDARY = "se-primary", "se-secondary"
VS_UUID = "vs-scaled"
TCP_CHECK = MonitorSpec(name="tcp", type=MonitorType.TCP, interval_s=1, timeout_s=1, rise=1, fall=2)


@dataclass
class Cluster:
    """Two SEs that may serve one VIP, and the back ends of a test."""

    ses: dict[str, SeLab]
    workers: dict[str, str]  # SE uuid -> its worker address
    vip: str
    backends: list[BackendProcess] = field(default_factory=list)

    @property
    def primary(self) -> SeLab:
        return self.ses[PRIMARY]

    @property
    def secondary(self) -> SeLab:
        return self.ses[SECONDARY]

    def backend(self, name: str, kind: str = "http") -> BackendProcess:
        started = BackendProcess.start(kind, name)
        self.backends.append(started)
        return started

    def ports(self, count: int = 1) -> tuple[int, int]:
        return free_ports(self.vip, list(self.workers.values()), count)

    def as_primary(
        self, vs: VsSpec, offset: int, drained: tuple[str, ...] = (), members: tuple[str, ...] | None = None
    ) -> VsSpec:
        """`vs` as the primary runs it: peers are `members` (default: both SEs)."""
        peers = tuple(
            ScaleOutPeer(
                se_uuid=uuid, address=address, state=PeerState.DRAIN if uuid in drained else PeerState.READY
            )
            for uuid, address in self.workers.items()
            if members is None or uuid in members
        )
        scaleout = ScaleOutSpec(worker_address=self.workers[PRIMARY], worker_port_offset=offset, peers=peers)
        return vs.model_copy(update={"role": VsRole.PRIMARY, "scaleout": scaleout})

    def as_secondary(self, vs: VsSpec, offset: int) -> VsSpec:
        scaleout = ScaleOutSpec(worker_address=self.workers[SECONDARY], worker_port_offset=offset)
        return vs.model_copy(update={"role": VsRole.SECONDARY, "scaleout": scaleout})

    def scale_out(self, vs: VsSpec, offset: int) -> None:
        """Secondary first (its worker must listen before the primary sends it connections)."""
        self.secondary.apply_ok(self.as_secondary(vs, offset))
        self.primary.apply_ok(self.as_primary(vs, offset))
        self.wait_peer(PRIMARY, "UP")
        self.wait_peer(SECONDARY, "UP")

    def peer_stat(self, se_uuid: str) -> dict[str, str]:
        return self.primary.stat(distributor_backend_name(VS_UUID), peer_server_name(se_uuid))

    def wait_peer(self, se_uuid: str, status: str, timeout: float = 8.0) -> None:
        self.primary.wait_status(
            distributor_backend_name(VS_UUID), peer_server_name(se_uuid), status, timeout
        )

    def counters(self) -> dict[str, VsCounters]:
        """Each SE's heartbeat counters of the VS (from its worker frontend)."""
        result = {}
        for uuid, se in self.ses.items():
            view = se.applier.applied_view
            assert view is not None
            (counters,) = [c for c in vs_counters(view, se.applier.read_stats()) if c.vs_uuid == VS_UUID]
            result[uuid] = counters
        return result


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if shutil.which("haproxy") is None:
        pytest.fail(HAPROXY_MISSING)
    taken: set[str] = set()
    workers = {uuid: random_address("127.101", taken) for uuid in (PRIMARY, SECONDARY)}
    ses = {uuid: SeLab.create(uuid) for uuid in (PRIMARY, SECONDARY)}
    the_cluster = Cluster(ses, workers, random_address("127.100"))
    try:
        yield the_cluster
    finally:
        try:
            for se in ses.values():
                se.close()
        finally:
            for backend in the_cluster.backends:
                backend.kill()


# --- builders and clients -------------------------------------------------------------------------


def server(backend: BackendProcess) -> ServerSpec:
    return ServerSpec(id=backend.server_id, ip=backend.host, port=backend.port, weight=1)


def make_vs(vip: str, port: int, *servers: ServerSpec, **settings: object) -> VsSpec:
    values: dict[str, object] = {
        "name": "scaled",
        "listeners": (ListenerSpec(port=port),),
        "app_type": AppType.HTTP,
        "pool": PoolSpec(
            uuid="pool-scaled",
            name="scaled",
            algorithm=Algorithm.ROUND_ROBIN,
            servers=servers,
            monitors=(TCP_CHECK,),
        ),
    }
    values.update(settings)
    return VsSpec(uuid=VS_UUID, tenant_uuid="tenant-e2e", vips=(vip,), **values)  # type: ignore[arg-type]


def request(vip: str, port: int, source: str = CLIENT) -> str:
    """One GET on a new connection from `source`; the back end's name."""
    connection = http.client.HTTPConnection(vip, port, timeout=5, source_address=(source, 0))
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.status == 200, response.status
        return response.read().decode()
    finally:
        connection.close()


def delta(before: dict[str, VsCounters], after: dict[str, VsCounters], column: str) -> dict[str, int]:
    return {uuid: getattr(after[uuid], column) - getattr(before[uuid], column) for uuid in after}


# --- tests ----------------------------------------------------------------------------------------


def test_http_connections_are_spread_over_both_ses_and_keep_the_client_address(cluster: Cluster) -> None:
    one, two = cluster.backend("one"), cluster.backend("two")
    port, offset = cluster.ports()
    cluster.scale_out(make_vs(cluster.vip, port, server(one), server(two)), offset)
    before = cluster.counters()

    answers = Counter(request(cluster.vip, port) for _ in range(40))

    after = cluster.counters()
    assert answers == Counter({"one": 20, "two": 20})
    assert delta(before, after, "http_responses_2xx") == {PRIMARY: 20, SECONDARY: 20}
    # Each worker also accepted the primary's health checks (about one a second).
    sessions = delta(before, after, "total_sessions")
    assert all(20 <= count <= 25 for count in sessions.values()), sessions
    # The PROXY protocol carried the client's address to the worker, which put it in X-Forwarded-For.
    proxied = [r for backend in (one, two) for r in backend.seen() if r["method"] == "GET"]
    assert len(proxied) == 40
    assert {r["headers"].get("x-forwarded-for") for r in proxied} == {CLIENT}
    # The primary's distributor saw all 40 connections, but the heartbeat counts only what its worker served.
    primary_view = cluster.primary.applier.applied_view
    assert primary_view is not None
    assert vs_counters(primary_view, cluster.primary.applier.read_stats()) == [after[PRIMARY]]


def tls_common_name(vip: str, port: int, trust: str) -> tuple[str, str]:
    """(certificate CN, response body) of one HTTPS request on a new connection."""
    context = ssl.create_default_context(cadata=trust)
    with (
        socket.create_connection((vip, port), timeout=5, source_address=(CLIENT, 0)) as raw,
        context.wrap_socket(raw, server_hostname="so.fulcrum.test") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        name = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        tls.sendall(b"GET / HTTP/1.1\r\nHost: so.fulcrum.test\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
    head, _, body = response.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200"), head
    return str(name[0].value), body


def test_tls_is_terminated_by_both_ses_behind_the_distributor(cluster: Cluster) -> None:
    web = cluster.backend("web")
    certificate_pem, key_pem = self_signed("so.fulcrum.test")
    cert = CertificateSpec(uuid="cert-so", name="so", certificate_pem=certificate_pem, key_pem=key_pem)
    port, offset = cluster.ports()
    vs = make_vs(
        cluster.vip,
        port,
        server(web),
        listeners=(ListenerSpec(port=port, tls=True),),
        certificates=(cert,),
        http=HttpSettings(x_forwarded_proto=True),
    )
    cluster.scale_out(vs, offset)
    before = cluster.counters()

    results = {tls_common_name(cluster.vip, port, certificate_pem) for _ in range(10)}

    assert results == {("so.fulcrum.test", "web")}
    assert delta(before, cluster.counters(), "http_responses_2xx") == {PRIMARY: 5, SECONDARY: 5}
    proxied = [r for r in web.seen() if r["method"] == "GET"]
    assert {(r["headers"]["x-forwarded-proto"], r["headers"]["x-forwarded-for"]) for r in proxied} == {
        ("https", CLIENT)
    }


def test_l4_port_range_is_served_by_both_ses(cluster: Cluster) -> None:
    echo = cluster.backend("echo", "tcp")
    port, offset = cluster.ports(count=3)
    listeners = (ListenerSpec(port=port, port_range_end=port + 2),)
    cluster.scale_out(
        make_vs(cluster.vip, port, server(echo), listeners=listeners, app_type=AppType.L4), offset
    )
    before = {uuid: int(cluster.peer_stat(uuid)["stot"]) for uuid in cluster.workers}

    payload = bytes(range(256)) * 64
    for target in (port, port + 1, port + 2, port, port + 1, port + 2):
        with socket.create_connection((cluster.vip, target), timeout=5) as sock:
            stream = sock.makefile("rb")
            assert stream.readline() == b"echo\n"
            sock.sendall(payload)
            assert stream.read(len(payload)) == payload

    handed_over = {uuid: int(cluster.peer_stat(uuid)["stot"]) - before[uuid] for uuid in cluster.workers}
    assert handed_over == {PRIMARY: 3, SECONDARY: 3}


def test_draining_a_peer_is_a_runtime_change_that_keeps_its_connections(cluster: Cluster) -> None:
    web = cluster.backend("web")
    port, offset = cluster.ports()
    vs = make_vs(cluster.vip, port, server(web))
    cluster.scale_out(vs, offset)
    with ExitStack() as connections:
        # A keep-alive connection that the secondary serves (round robin: one of two new connections).
        for _ in range(4):
            kept = connections.enter_context(
                closing(http.client.HTTPConnection(cluster.vip, port, timeout=5))
            )
            kept.request("GET", "/")
            assert kept.getresponse().read() == b"web"
            if cluster.counters()[SECONDARY].current_sessions:
                break
        assert cluster.counters()[SECONDARY].current_sessions == 1
        worker, reloads = (
            cluster.primary.process.current_worker(),
            cluster.primary.process.processes().reloads,
        )
        before = cluster.counters()

        drained = cluster.primary.apply_ok(cluster.as_primary(vs, offset, drained=(SECONDARY,)))

        assert (drained.reloaded, drained.runtime_changes) == (False, 1)
        assert cluster.primary.process.current_worker() == worker
        assert cluster.primary.process.processes().reloads == reloads
        assert cluster.peer_stat(SECONDARY)["status"] == "DRAIN"
        assert {request(cluster.vip, port) for _ in range(10)} == {"web"}
        for _ in range(3):  # the established connection through the drained SE keeps working
            kept.request("GET", "/")
            assert kept.getresponse().read() == b"web"
        assert delta(before, cluster.counters(), "http_responses_2xx") == {PRIMARY: 10, SECONDARY: 3}
        assert cluster.counters()[SECONDARY].current_sessions == 1
    deadline = time.monotonic() + 5
    while cluster.counters()[SECONDARY].current_sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cluster.counters()[SECONDARY].current_sessions == 0  # what tells the controller it is empty

    ready = cluster.primary.apply_ok(cluster.as_primary(vs, offset))
    assert (ready.reloaded, ready.runtime_changes) == (False, 1)
    before = cluster.counters()
    assert {request(cluster.vip, port) for _ in range(10)} == {"web"}
    assert delta(before, cluster.counters(), "http_responses_2xx") == {PRIMARY: 5, SECONDARY: 5}


def test_peers_join_and_leave_through_the_runtime_api(cluster: Cluster) -> None:
    web = cluster.backend("web")
    port, offset = cluster.ports()
    vs = make_vs(cluster.vip, port, server(web))
    cluster.secondary.apply_ok(cluster.as_secondary(vs, offset))
    cluster.primary.apply_ok(cluster.as_primary(vs, offset, members=(PRIMARY,)))
    cluster.wait_peer(PRIMARY, "UP")
    worker = cluster.primary.process.current_worker()

    def served_by(count: int) -> dict[str, int]:
        before = cluster.counters()
        assert {request(cluster.vip, port) for _ in range(count)} == {"web"}
        return delta(before, cluster.counters(), "http_responses_2xx")

    assert served_by(6) == {PRIMARY: 6, SECONDARY: 0}

    # `add server bd_.../se_... <address>:+<offset> send-proxy-v2 check check-send-proxy ...`
    joined = cluster.primary.apply_ok(cluster.as_primary(vs, offset))
    assert (joined.reloaded, joined.runtime_changes) == (False, 3)  # add, enable health, ready
    assert cluster.primary.process.current_worker() == worker
    cluster.wait_peer(SECONDARY, "UP")
    assert served_by(10) == {PRIMARY: 5, SECONDARY: 5}

    # A reload restores the runtime-added peer from the file and the state file, port offset included.
    other_port = cluster.ports()[0]
    other = make_vs(cluster.vip, other_port, server(web)).model_copy(update={"uuid": "vs-other"})
    assert cluster.primary.apply_ok(cluster.as_primary(vs, offset), other).reloaded
    cluster.wait_peer(SECONDARY, "UP")
    assert served_by(10) == {PRIMARY: 5, SECONDARY: 5}
    worker = cluster.primary.process.current_worker()

    left = cluster.primary.apply_ok(cluster.as_primary(vs, offset, members=(PRIMARY,)), other)
    assert (left.reloaded, left.runtime_changes) == (False, 1)
    assert cluster.primary.process.current_worker() == worker
    assert served_by(6) == {PRIMARY: 6, SECONDARY: 0}


def test_a_dead_secondary_fails_no_request(cluster: Cluster) -> None:
    web = cluster.backend("web")
    port, offset = cluster.ports()
    cluster.scale_out(make_vs(cluster.vip, port, server(web)), offset)

    cluster.secondary.process.stop(graceful=False)
    outcomes: Counter[str] = Counter()
    started = time.monotonic()
    while time.monotonic() - started < 3:  # before, while and after the health check notices
        try:
            outcomes[request(cluster.vip, port)] += 1
        except (OSError, http.client.HTTPException, AssertionError) as exc:
            outcomes[f"error {type(exc).__name__}"] += 1
        time.sleep(0.01)

    # Refused connections to the dead peer were redispatched to the primary's worker at once.
    assert set(outcomes) == {"web"}, outcomes
    assert outcomes["web"] > 50
    assert cluster.peer_stat(SECONDARY)["status"].startswith("DOWN")
    assert int(cluster.peer_stat(SECONDARY)["wredis"]) > 0  # the redispatches did happen


def test_switching_between_direct_and_scaled_out_fails_no_request(cluster: Cluster) -> None:
    web = cluster.backend("web")
    port, offset = cluster.ports()
    direct = make_vs(cluster.vip, port, server(web))
    cluster.primary.apply_ok(direct)
    stop = threading.Event()
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def load(keep_alive: bool) -> None:
        connection = http.client.HTTPConnection(cluster.vip, port, timeout=5)
        while not stop.is_set():
            try:
                if not keep_alive:
                    connection = http.client.HTTPConnection(cluster.vip, port, timeout=5)
                connection.request("GET", "/")
                response = connection.getresponse()
                outcome = "ok" if response.status == 200 and response.read() == b"web" else "bad"
            except (OSError, http.client.HTTPException) as exc:
                outcome = f"error {type(exc).__name__}"
                connection.close()
            if not keep_alive:
                connection.close()
            with lock:
                outcomes[outcome] += 1
            time.sleep(0.005)
        connection.close()

    threads = [threading.Thread(target=load, args=(keep_alive,)) for keep_alive in (True, False)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        cluster.secondary.apply_ok(cluster.as_secondary(direct, offset))
        scaled = cluster.primary.apply_ok(cluster.as_primary(direct, offset))
        assert scaled.reloaded
        cluster.wait_peer(SECONDARY, "UP")
        time.sleep(0.5)
        served_by_secondary = cluster.counters()[SECONDARY].http_responses_2xx
        back = cluster.primary.apply_ok(direct)
        assert back.reloaded
        time.sleep(0.5)
        cluster.secondary.apply_ok()
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)

    assert served_by_secondary > 0  # the scaled-out phase really used both SEs
    assert outcomes["ok"] > 100
    assert set(outcomes) == {"ok"}, outcomes
