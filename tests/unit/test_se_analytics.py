"""SE analytics without HAProxy: log lines parse exactly (hostile URIs included), counter resets never
make negative or doubled rates, the log book keeps what matters within its bound, every catalog metric
is computed from a representative input, and an undelivered report keeps only its metrics."""

from __future__ import annotations

import json
import random
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fulcrum.protocol import metrics as catalog
from fulcrum.protocol.se import (
    Algorithm,
    AnalyticsReport,
    AnalyticsSettings,
    AppType,
    EntityType,
    ListenerSpec,
    MetricPoint,
    PoolSpec,
    RequestLog,
    ScaleOutPeer,
    ScaleOutSpec,
    SeConfig,
    ServerSpec,
    VsSpec,
)
from fulcrum.se.agent import Agent, ApplyOutcome
from fulcrum.se.analytics.collector import build_report
from fulcrum.se.analytics.counters import CounterTracker, CounterWindow, StatSample, counter_delta
from fulcrum.se.analytics.logs import (
    HTTP_LOG_FORMAT,
    TCP_LOG_FORMAT,
    LogBook,
    LogDrain,
    LogReceiver,
    ParsedLog,
    parse_line,
    significance,
)
from fulcrum.se.analytics.resources import ProcessTimes, ResourceUsage, cpu_percent
from fulcrum.se.client import ControllerUnavailable
from fulcrum.se.render import RuntimePaths, build_view
from fulcrum.se.render.view import View, backend_name, frontend_name, server_name

# --- log lines ------------------------------------------------------------------------------------


def http_line(uri: bytes = b'"/index.html?q=1"', **fields: str) -> bytes:
    values = {
        "ts": "1700000000.042",
        "fe": "fe_vs-1",
        "be": "be_vs-1",
        "srv": "10.1.0.1_8080",
        "ci": "192.0.2.7",
        "cp": "51234",
        "timers": "2 0 1 0 3 12 18",  # Th Ti TR Tw Tc Tr Ta
        "st": "200",
        "bytes": "78 345",
        "tsc": "----",
        "sslv": "-",
        "method": "GET",
    }
    values.update(fields)
    text = " ".join(["h1", *values.values()])
    return text.encode() + b" " + uri + b"\n"


def test_the_formats_are_one_word_each_and_start_with_their_version_tag() -> None:
    assert HTTP_LOG_FORMAT.startswith("h1 ") and TCP_LOG_FORMAT.startswith("t1 ")
    assert HTTP_LOG_FORMAT.endswith("%{+Q}HU")  # the only field that may hold spaces comes last
    assert '"' not in HTTP_LOG_FORMAT + TCP_LOG_FORMAT


def test_an_http_line_parses_into_every_field() -> None:
    entry = parse_line(http_line())

    assert entry == ParsedLog(
        http=True,
        ts=1700000000.042,
        frontend="fe_vs-1",
        backend="be_vs-1",
        server="10.1.0.1_8080",
        client_ip="192.0.2.7",
        client_port=51234,
        handshake_ms=2,
        idle_ms=0,
        request_ms=1,
        queue_ms=0,
        connect_ms=3,
        response_ms=12,
        total_ms=18,
        status=200,
        bytes_in=78,
        bytes_out=345,
        termination="----",
        tls_version=None,
        method="GET",
        uri="/index.html?q=1",
    )
    assert (entry.client_latency_ms, entry.server_latency_ms) == (3, 15)


@pytest.mark.parametrize(
    ("logged", "uri"),
    [
        # HAProxy writes `"`, `#`, control characters and bytes >= 0x7f as #XX; nothing else.
        (b'"/a#22b#22 c"', '/a"b" c'),
        (b'"/x#0Ay#0D#0Az#09"', "/x\ny\r\nz\t"),
        (b'"/h#23frag#7F"', "/h#frag\x7f"),
        (b'"/caf#C3#A9?name=#E2#98#83"', "/café?name=☃"),
        (b"\"/back\\slash]'single'{}|^`<>$HOME%2F%\"", "/back\\slash]'single'{}|^`<>$HOME%2F%"),
        (b'"/two  spaces and \\" end"', '/two  spaces and \\" end'),
        (b'"/cut-by-the-line-limit', "/cut-by-the-line-limit"),  # no closing quote
        (b'"/bad#C3"', "/bad\ufffd"),  # not UTF-8: replaced, never an exception
    ],
)
def test_hostile_uris_round_trip(logged: bytes, uri: str) -> None:
    entry = parse_line(http_line(uri=logged))
    assert entry is not None
    assert entry.uri == uri
    assert (entry.method, entry.status, entry.bytes_out) == ("GET", 200, 345)  # fields before it intact


def test_tls_version_no_server_and_unreached_timers() -> None:
    entry = parse_line(
        http_line(
            uri=b'"<BADREQ>"',
            srv="<NOSRV>",
            timers="35 0 -1 -1 -1 -1 40",
            st="400",
            tsc="CR--",
            sslv="TLSv1.3",
            method="<BADREQ>",
        )
    )
    assert entry is not None
    assert (entry.server, entry.tls_version, entry.status, entry.termination) == (
        None,
        "TLSv1.3",
        400,
        "CR--",
    )
    assert (entry.client_latency_ms, entry.server_latency_ms) == (35, 0)  # -1: never reached, not negative


def test_an_aborted_request_has_no_status() -> None:
    entry = parse_line(http_line(st="-1", tsc="CD--"))
    assert entry is not None and entry.status == 0


def test_a_tcp_line_parses() -> None:
    entry = parse_line(
        b"t1 1700000001.5 fe_vs-2 be_vs-2 10.2.0.1_5432 [::1] 40000 4 0 1 2500 120 4096 SD-- TLSv1.2\n"
    )

    assert entry is not None
    assert not entry.http
    assert (entry.frontend, entry.backend, entry.server, entry.client_ip) == (
        "fe_vs-2",
        "be_vs-2",
        "10.2.0.1_5432",
        "[::1]",
    )
    assert (entry.connect_ms, entry.total_ms, entry.bytes_in, entry.bytes_out) == (1, 2500, 120, 4096)
    assert (entry.status, entry.method, entry.uri, entry.termination, entry.tls_version) == (
        0,
        "",
        "",
        "SD--",
        "TLSv1.2",
    )


@pytest.mark.parametrize(
    "datagram",
    [
        b"",
        b"<134>Jan  1 00:00:00 haproxy[1]: Proxy fe started.\n",  # a syslog line, not ours
        b"127.0.0.1:4000 [01/Jan/2026:00:00:00.000] fe/1: SSL handshake failure\n",
        b"h1 1700000000.042 fe_vs-1 be_vs-1\n",  # cut short
        http_line(st="OK"),
        b"t1 1700000001.5 fe be srv 10.0.0.1 1 0 0 1 2500 120 4096 SD--\n",  # a field missing
    ],
)
def test_anything_else_is_not_a_log(datagram: bytes) -> None:
    assert parse_line(datagram) is None


# --- significance and the log book ----------------------------------------------------------------


def entry(status: int = 200, total_ms: int = 10, termination: str = "----", **changes: object) -> ParsedLog:
    parsed = parse_line(http_line(st=str(status), timers=f"0 0 0 0 1 2 {total_ms}", tsc=termination))
    assert parsed is not None
    return ParsedLog(**{**parsed.__dict__, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("log", "reason"),
    [
        (entry(), None),
        (entry(status=404), "error"),
        (entry(status=503, termination="sH--"), "error"),
        (entry(status=0, termination="SC--"), "error"),  # no response: the server refused
        (entry(status=0, termination="sD--"), "error"),  # server timeout
        (entry(status=0, termination="CD--"), "termination"),  # the client went away
        (entry(status=200, termination="CD--"), "termination"),
        (entry(total_ms=1000), "slow"),
        (entry(total_ms=999), None),
        (entry(status=500, total_ms=5000), "error"),
    ],
)
def test_significance(log: ParsedLog, reason: str | None) -> None:
    assert significance(log, slow_request_ms=1000) == reason


def datagram(status: int = 200, port: int = 1, total_ms: int = 10) -> bytes:
    return http_line(st=str(status), cp=str(port), timers=f"0 0 0 0 1 2 {total_ms}")


def test_every_significant_log_is_kept_and_a_share_of_the_others() -> None:
    # Without sampling in HAProxy (100 %), the book samples; here it keeps every log.
    book = LogBook(AnalyticsSettings(log_sample_percent=100.0), rng=random.Random(1))
    for port in range(200):
        book.add(datagram(port=port))
    for port in range(2000, 2050):
        book.add(datagram(status=502, port=port))
    book.add(b"h1 garbage")
    book.add(b"Proxy fe_vs-1 stopped (cumulated conns: FE: 9, BE: 0).\n")  # HAProxy's notice at a reload

    drain = book.drain()

    kept = {log.client_port: reason for log, reason in drain.kept}
    assert all(kept[port] == "error" for port in range(2000, 2050))
    assert sum(1 for reason in kept.values() if reason == "") == 200
    assert (drain.received, drain.malformed, drain.foreign, drain.dropped) == (251, 1, 1, 0)
    assert book.drain().kept == []  # a new interval starts empty


def test_http_logs_arrive_sampled_by_haproxy_and_count_for_what_they_stand_for() -> None:
    """At 10 %, HAProxy sends every error and one in ten other requests: the book keeps them all and
    weights each sampled one by 10 in the latency averages."""
    book = LogBook(AnalyticsSettings(log_sample_percent=10.0, slow_request_ms=10_000), rng=random.Random(1))
    book.add(http_line(timers="0 0 0 0 0 10 10", srv="s1", be="be_x", fe="fe_x"))  # stands for ten
    book.add(http_line(timers="0 0 0 0 0 100 100", srv="s1", be="be_x", fe="fe_x", st="503"))  # itself

    drain = book.drain()

    assert len(drain.kept) == 2
    assert drain.frontends["fe_x"].total.value == (10 * 10 + 100) / 11
    assert drain.backends[("be_x", "s1")].response.value == (10 * 10 + 100) / 11


def test_when_full_significant_logs_push_sampled_ones_out_and_the_rest_is_counted() -> None:
    book = LogBook(AnalyticsSettings(log_sample_percent=100.0, max_logs_per_report=10), rng=random.Random(2))
    for port in range(10):
        book.add(datagram(port=port))
    for port in range(100, 115):
        book.add(datagram(status=500, port=port))

    drain = book.drain()

    assert len(drain.kept) == 10
    assert all(reason == "error" for _, reason in drain.kept)
    assert drain.dropped == 15  # 10 sampled pushed out, 5 errors that found no room


def test_timers_average_every_log_not_only_the_kept_ones() -> None:
    book = LogBook(AnalyticsSettings(log_sample_percent=100.0, slow_request_ms=10_000))
    for total in (10, 20, 30, 40):
        book.add(http_line(timers=f"4 100 2 0 1 {total - 8} {total}", srv="s1", be="be_x", fe="fe_x"))
    book.add(http_line(timers="0 0 -1 -1 -1 -1 5", srv="<NOSRV>", be="be_x", fe="fe_x", st="408"))

    drain = book.drain()

    frontend = drain.frontends["fe_x"]
    assert frontend.total.value == (10 + 20 + 30 + 40 + 5) / 5
    assert frontend.client_latency.value == 6  # Th + TR of the four; the 408 never received a request
    assert drain.backends[("be_x", "s1")].response.value == (2 + 12 + 22 + 32) / 4
    assert drain.backends[("be_x", None)].connect.value == 1
    assert len(drain.kept) == 5  # at 100 % every log is kept


def test_the_receiver_hands_over_datagrams_and_removes_only_its_socket() -> None:
    directory = Path(tempfile.mkdtemp(prefix="fulcrum-ut-", dir="/tmp"))
    try:
        path = directory / "log.sock"
        got: list[bytes] = []
        arrived = threading.Event()

        def sink(data: bytes) -> None:
            got.append(data)
            arrived.set()

        receiver = LogReceiver(path, sink, poll_s=0.05)
        receiver.start()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"h1 hello", str(path))
        assert arrived.wait(5)
        receiver.stop()
        assert got == [b"h1 hello"]
        assert not path.exists()
        path.write_text("not a socket")
        with pytest.raises(FileExistsError):
            LogReceiver(path, sink).start()
        assert path.read_text() == "not a socket"
    finally:
        shutil.rmtree(directory)


# --- counters -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "current", "delta"),
    [(10, 15, 5), (10, 10, 0), (10, 3, 3), (None, 7, 7), (0, 0, 0)],
)
def test_counter_delta(previous: int | None, current: int, delta: int) -> None:
    assert counter_delta(previous, current) == delta


def rows(stot: int, *, extra: bool = False, scur: int = 0) -> list[dict[str, str]]:
    table = [{"pxname": "fe", "svname": "FRONTEND", "stot": str(stot), "scur": str(scur), "hrsp_5xx": ""}]
    if extra:
        table.append({"pxname": "be", "svname": "s2", "stot": "4", "scur": "0"})
    return table


def test_deltas_follow_growth_and_a_reset_counts_from_zero() -> None:
    tracker = CounterTracker()
    tracker.observe(StatSample(100.0, 1, rows(1000)))  # since when it counted is unknown: a baseline
    tracker.observe(StatSample(101.0, 1, rows(1010, scur=3)))
    tracker.observe(StatSample(102.0, 1, rows(4, scur=1)))  # went down: counters were cleared
    window = tracker.drain()

    assert window is not None
    assert (window.start, window.end, window.seconds) == (100.0, 102.0, 2.0)
    assert window.delta(("fe", "FRONTEND"), "stot") == 14
    assert "hrsp_5xx" not in window.deltas[("fe", "FRONTEND")]  # an empty cell is no counter
    assert [sample[("fe", "FRONTEND")].values["scur"] for sample in window.samples] == [0, 3, 1]


def test_a_new_worker_counts_from_zero_even_when_its_counters_exceed_the_old_ones() -> None:
    tracker = CounterTracker()
    tracker.observe(StatSample(100.0, 1, rows(5)))
    tracker.drain()
    tracker.observe(StatSample(105.0, 2, rows(8)))  # reloaded: 8 since the new worker started, not 3

    window = tracker.drain()

    assert window is not None and window.delta(("fe", "FRONTEND"), "stot") == 8
    assert window.start == 100.0


def test_rows_that_appear_count_from_zero_and_rows_that_vanish_count_nothing() -> None:
    tracker = CounterTracker()
    tracker.observe(StatSample(0.0, 1, rows(5)))
    tracker.observe(StatSample(1.0, 1, rows(6, extra=True)))  # a server added at runtime
    tracker.observe(StatSample(2.0, 1, rows(7)))  # and deleted
    window = tracker.drain()

    assert window is not None
    assert window.delta(("be", "s2"), "stot") == 4
    assert window.delta(("fe", "FRONTEND"), "stot") == 2
    assert all(value >= 0 for deltas in window.deltas.values() for value in deltas.values())


def test_windows_are_contiguous() -> None:
    tracker = CounterTracker()
    assert tracker.drain() is None
    for second, stot in enumerate((0, 3, 9, 10)):
        tracker.observe(StatSample(float(second), 1, rows(stot)))
        if second == 2:
            first = tracker.drain()
    second_window = tracker.drain()

    assert first is not None and second_window is not None
    assert (first.start, first.end, second_window.start, second_window.end) == (0.0, 2.0, 2.0, 3.0)
    assert first.delta(("fe", "FRONTEND"), "stot") + second_window.delta(("fe", "FRONTEND"), "stot") == 10


# --- resources ------------------------------------------------------------------------------------


def test_cpu_is_the_share_of_all_cores_used_between_two_snapshots() -> None:
    before = ProcessTimes(at=100.0, cpu_seconds={1: (10.0, 5.0), 2: (50.0, 1.0), 3: (60.0, 9.0)}, rss_bytes=0)
    after = ProcessTimes(
        at=110.0,
        # 1 used 4 s; 2 was restarted under the same pid (its time is new: 2 s); 3 exited; 4 started.
        cpu_seconds={1: (10.0, 9.0), 2: (105.0, 2.0), 4: (104.0, 2.0)},
        rss_bytes=0,
    )
    assert cpu_percent(before, after, cpu_count=4) == pytest.approx(100 * 8 / 40)
    assert cpu_percent(after, after, cpu_count=4) == 0.0


# --- the catalog and the report -------------------------------------------------------------------


def test_the_catalog_has_at_least_30_unique_metrics_each_with_a_unit_and_a_rollup() -> None:
    ids = [m.metric_id for m in catalog.METRICS]
    assert len(ids) >= 30
    assert len(set(ids)) == len(ids)
    for metric in catalog.METRICS:
        assert metric.unit and metric.description
        assert metric.rollup in ("avg", "max", "sum")
        assert metric.entity_types and all(isinstance(e, EntityType) for e in metric.entity_types)
        assert catalog.rollup(metric.metric_id) == metric.rollup.value
        assert metric.metric_id.split(".", 1)[0] in (
            "l4_client",
            "l7_client",
            "l4_server",
            "l7_server",
            "se_stats",
            "se_if",
        )
    described = catalog.describe()
    assert [d["metric_id"] for d in described] == ids
    json.dumps(described)  # JSON-ready


SERVERS = (
    ServerSpec(id="10.1.0.1:80", ip="10.1.0.1", port=80, weight=1),
    ServerSpec(id="10.1.0.2:80", ip="10.1.0.2", port=80, weight=1),
)
SHARED_POOL = PoolSpec(uuid="pool-web", name="web", algorithm=Algorithm.ROUND_ROBIN, servers=SERVERS)


def vs(uuid: str, app_type: AppType, port: int, **changes: object) -> VsSpec:
    return VsSpec(
        uuid=uuid,
        name=uuid,
        tenant_uuid="t",
        vips=("10.0.0.1",),
        listeners=(ListenerSpec(port=port),),
        app_type=app_type,
        pool=SHARED_POOL,
        **changes,  # type: ignore[arg-type]
    )


# An HTTP VS and an L4 VS sharing one pool, and a scaled-out HTTP VS whose primary also distributes.
CONFIG = SeConfig(
    se_uuid="se-1",
    version=1,
    virtualservices=(
        vs("vs-http", AppType.HTTP, 80),
        vs("vs-l4", AppType.L4, 5000),
        vs(
            "vs-scaled",
            AppType.HTTP,
            8080,
            scaleout=ScaleOutSpec(
                worker_address="10.8.0.1",
                worker_port_offset=1000,
                peers=(ScaleOutPeer(se_uuid="se-1", address="10.8.0.1"),),
            ),
        ),
    ),
)
VIEW = build_view(CONFIG, RuntimePaths(Path("/run/fulcrum/se-1")))
HTTP_COUNTERS = {"hrsp_1xx": 1, "hrsp_2xx": 50, "hrsp_3xx": 3, "hrsp_4xx": 4, "hrsp_5xx": 2, "hrsp_other": 0}


def stat_rows(view: View, grow: int, down: frozenset[str] = frozenset()) -> list[dict[str, str]]:
    """`show stat` rows for the view whose counters have grown `grow` times their unit growth."""

    def counters(mode: str, **values: int) -> dict[str, str]:
        base = {"stot": 10, "bin": 1000, "bout": 5000, "scur": 2 * grow}
        if mode == "http":
            base |= {"req_tot": 60, **HTTP_COUNTERS}
        base |= values
        return {key: str(value * grow) if key != "scur" else str(value) for key, value in base.items()}

    table = []
    for fe in view["frontends"]:
        table.append({"pxname": fe["name"], "svname": "FRONTEND", **counters(fe["mode"], dcon=1, dses=0)})
    for be in view["backends"]:
        table.append(
            {
                "pxname": be["name"],
                "svname": "BACKEND",
                "status": "UP",
                **counters(be["mode"], connect=8, econ=1),
            }
        )
        for server in be["servers"]:
            status = "DOWN" if server["server_id"] in down else "UP"
            table.append(
                {
                    "pxname": be["name"],
                    "svname": server["name"],
                    "status": status,
                    **counters(be["mode"], connect=4, econ=1, chkfail=1),
                }
            )
    return table


def representative_report(usage: ResourceUsage | None = None) -> AnalyticsReport:
    tracker = CounterTracker()
    tracker.observe(StatSample(1000.0, 7, stat_rows(VIEW, 0)))
    tracker.observe(StatSample(1002.0, 7, stat_rows(VIEW, 1)))
    tracker.observe(StatSample(1005.0, 7, stat_rows(VIEW, 2, down=frozenset({"10.1.0.2:80"}))))
    window = tracker.drain()
    book = LogBook(AnalyticsSettings(log_sample_percent=100.0))
    for fe, be, srv, ms in (
        ("vs-http", "vs-http", "10.1.0.1:80", 30),
        ("vs-scaled", "vs-scaled", "10.1.0.2:80", 50),
    ):
        book.add(
            http_line(
                fe=frontend_name(fe),
                be=backend_name(be),
                srv=server_name(srv),
                timers=f"1 0 2 0 3 {ms} {ms + 10}",
                st="503",
            )
        )
    book.add(b"t1 1700000001.5 fe_vs-l4 be_vs-l4 10.1.0.1_80 10.9.9.9 4000 0 0 7 2500 120 4096 ---- -\n")
    book.add(http_line(fe="fd_vs-scaled", be="bd_vs-scaled", srv="se_se-1"))  # never logged; ignored if so
    return build_report("se-1", VIEW, window, book.drain(), usage, now=2000.0)


def points(report: AnalyticsReport) -> dict[tuple[str, str | None, str], float]:
    return {(p.entity_uuid, p.server, p.metric_id): p.value for p in report.metrics}


def test_every_catalog_metric_is_computed_for_every_entity_it_applies_to() -> None:
    report = representative_report(ResourceUsage(cpu_percent=12.5, memory_percent=3.0, rss_bytes=4e8))
    found = points(report)

    assert {metric_id for _, _, metric_id in found} == set(catalog.BY_ID)
    for metric in catalog.METRICS:
        for entity in metric.entity_types:
            uuid = {"virtualservice": "vs-http", "pool": "pool-web", "serviceengine": "se-1"}[entity]
            assert (uuid, None, metric.metric_id) in found, metric.metric_id
            if metric.per_server:
                for server in ("10.1.0.1:80", "10.1.0.2:80"):
                    assert (uuid, server, metric.metric_id) in found, (metric.metric_id, server)
    for point in report.metrics:
        definition = catalog.get(point.metric_id)
        assert point.entity_type in definition.entity_types
        assert point.server is None or definition.per_server


def test_report_values_come_from_the_counters_samples_logs_and_usage() -> None:
    report = representative_report(ResourceUsage(cpu_percent=12.5, memory_percent=3.0, rss_bytes=4e8))
    found = points(report)
    seconds = 5.0  # the first sample to the last

    assert (report.start, report.end) == (1000.0, 1005.0)
    # A direct HTTP VS: its frontend row grew 2 units (20 connections, 120 responses) in 5 s.
    assert found[("vs-http", None, "l4_client.avg_new_established_conns")] == 20 / seconds
    assert found[("vs-http", None, "l7_client.avg_complete_responses")] == 120 / seconds
    assert found[("vs-http", None, "l7_client.avg_resp_5xx")] == 4 / seconds
    assert found[("vs-http", None, "l7_client.pct_response_errors")] == pytest.approx(100 * 12 / 120)
    assert found[("vs-http", None, "l4_client.avg_bandwidth")] == 8 * 12000 / seconds
    assert found[("vs-http", None, "l4_client.max_open_conns")] == 4
    assert found[("vs-http", None, "l4_client.avg_open_conns")] == 2  # samples 0, 2, 4
    assert found[("vs-http", None, "l7_client.avg_client_latency")] == 3  # Th + TR
    assert found[("vs-http", None, "l7_client.avg_total_time")] == 40
    # An L4 VS has no HTTP metrics; the scaled-out VS is reported from its worker, not its distributor.
    assert ("vs-l4", None, "l7_client.avg_complete_responses") not in found
    assert found[("vs-l4", None, "l4_client.avg_rx_bytes")] == 2000 / seconds
    assert found[("vs-scaled", None, "l7_client.avg_total_time")] == 60
    # The pool adds up its three backends (one per VS); responses only come from the HTTP ones.
    assert found[("pool-web", None, "l4_server.avg_new_established_conns")] == 3 * 16 / seconds
    assert found[("pool-web", None, "l7_server.avg_complete_responses")] == 2 * 120 / seconds
    assert found[("pool-web", None, "l4_server.max_open_conns")] == 3 * 4
    assert found[("pool-web", "10.1.0.1:80", "l4_server.sum_health_check_failures")] == 3 * 2
    assert found[("pool-web", "10.1.0.1:80", "l4_server.avg_uptime")] == 100
    assert found[("pool-web", "10.1.0.2:80", "l4_server.avg_uptime")] == pytest.approx(100 * 2 / 3)
    assert found[("pool-web", None, "l4_server.avg_uptime")] == pytest.approx(100 * 5 / 6)
    assert found[("pool-web", None, "l7_server.avg_resp_latency")] == 40  # (30 + 50) / 2
    assert found[("pool-web", "10.1.0.2:80", "l7_server.avg_resp_latency")] == 50
    assert found[("pool-web", None, "l4_server.avg_total_rtt")] == pytest.approx((3 + 3 + 7) / 3)
    # The SE counts every frontend, the distributor included.
    frontends = len(VIEW["frontends"])
    assert frontends == 4
    assert found[("se-1", None, "se_if.avg_rx_bytes")] == frontends * 2000 / seconds
    assert found[("se-1", None, "se_stats.avg_cpu_usage")] == 12.5
    assert found[("se-1", None, "se_stats.avg_mem_rss")] == 4e8


def test_logs_carry_the_controllers_ids() -> None:
    report = representative_report()

    logs = {entry.vs_uuid: entry for entry in report.logs}
    assert set(logs) == {"vs-http", "vs-scaled", "vs-l4"}  # the distributor's line maps to no VS
    web = logs["vs-http"]
    assert (web.pool_uuid, web.server, web.status, web.significant) == (
        "pool-web",
        "10.1.0.1:80",
        503,
        "error",
    )
    assert (web.client_latency_ms, web.server_latency_ms, web.total_ms) == (3, 33, 40)
    l4 = logs["vs-l4"]
    assert (l4.server, l4.status, l4.client_port, l4.total_ms, l4.significant) == (
        "10.1.0.1:80",
        0,
        4000,
        2500,
        "slow",
    )


def test_without_traffic_rates_are_zero_and_averages_are_absent() -> None:
    window = CounterWindow(start=0.0, end=5.0)
    report = build_report("se-1", VIEW, window, LogDrain(), None, now=5.0)
    found = points(report)

    assert found[("vs-http", None, "l7_client.avg_complete_responses")] == 0
    assert ("vs-http", None, "l7_client.avg_total_time") not in found
    assert ("vs-http", None, "l7_client.pct_response_errors") not in found
    assert ("se-1", None, "se_stats.avg_cpu_usage") not in found  # the first report has no interval


# --- the agent's delivery -------------------------------------------------------------------------


class FakeDriver:
    """Successive 5 s windows: 0-5, 5-10, ..."""

    def __init__(self) -> None:
        self.windows = 0

    def apply(self, config: SeConfig) -> ApplyOutcome:
        return ApplyOutcome(ok=True)

    def telemetry(self, config: SeConfig) -> tuple[list, list, list]:  # type: ignore[type-arg]
        return [], [], []

    def analytics_window(self) -> tuple[View | None, CounterWindow | None]:
        self.windows += 1
        return VIEW, CounterWindow(start=5.0 * (self.windows - 1), end=5.0 * self.windows)

    def log_socket(self) -> Path | None:
        return None

    def engine_pid(self) -> int | None:
        return None

    def stop(self) -> None:
        pass


class FlakyClient:
    def __init__(self) -> None:
        self.up = False
        self.delivered: list[AnalyticsReport] = []

    def analytics(self, report: AnalyticsReport) -> dict[str, int]:
        if not self.up:
            raise ControllerUnavailable("down")
        self.delivered.append(report)
        return {}


@pytest.fixture
def agent_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="fulcrum-ut-", dir="/tmp"))
    (directory / "bootstrap.json").write_text(
        json.dumps({"se_uuid": "se-1", "token": "t" * 16, "controller_url": "http://127.0.0.1:9"})
    )
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def test_an_undelivered_report_keeps_only_its_metrics_and_only_the_newest_waits(agent_dir: Path) -> None:
    client = FlakyClient()
    agent = Agent(agent_dir, FakeDriver(), client)  # type: ignore[arg-type]
    agent.apply(CONFIG)

    def send_with_one_error_log() -> None:
        agent.logbook.add(http_line(fe="fe_vs-http", be="be_vs-http", srv="10.1.0.1_80", st="500"))
        agent.send_analytics()

    send_with_one_error_log()
    send_with_one_error_log()  # also undelivered: it replaces the first
    client.up = True
    send_with_one_error_log()

    assert len(client.delivered) == 2
    kept, fresh = client.delivered
    assert (kept.logs, kept.logs_dropped) == ((), 1)  # metrics only; its log counted as dropped
    assert (kept.start, kept.end, fresh.start, fresh.end) == (5.0, 10.0, 10.0, 15.0)  # 0-5 was lost
    assert kept.metrics
    assert len(fresh.logs) == 1 and isinstance(fresh.logs[0], RequestLog)
    assert all(isinstance(p, MetricPoint) for p in fresh.metrics)


def test_no_report_while_analytics_are_off(agent_dir: Path) -> None:
    client = FlakyClient()
    client.up = True
    agent = Agent(agent_dir, FakeDriver(), client)  # type: ignore[arg-type]
    agent.apply(CONFIG.model_copy(update={"analytics": AnalyticsSettings(enabled=False)}))
    agent.send_analytics()
    assert client.delivered == []
