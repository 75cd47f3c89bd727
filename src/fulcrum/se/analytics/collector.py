"""Builds one analytics report from an interval's counter window, request logs and resource usage.

Pure: the agent's analytics loop gathers the inputs (the driver's `CounterWindow`, the `LogBook`'s
drain, the `ResourceMeter`'s usage) and ships what `build_report` returns. The applied view maps HAProxy
names to the controller's ids, as telemetry does: a direct or worker frontend is its virtual service
(a distributor is only counted in the SE's totals), a pool backend is its pool, a server row is that
pool's server. A pool used by two virtual services has two backends; their rows are added up.

Every metric of `fulcrum.protocol.metrics` is computed here: rates are counter deltas divided by the
window's seconds, levels are averaged or maximised over the window's samples, timers are averaged over
the interval's logs. A metric without data (timers without requests, a percentage of no responses, the
first report's CPU) is left out rather than reported as 0; a rate of nothing is 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fulcrum.protocol import metrics as catalog
from fulcrum.protocol.se import AnalyticsReport, EntityType, MetricPoint, RequestLog, ServerHealth
from fulcrum.se.analytics.counters import CounterWindow, RowKey
from fulcrum.se.analytics.logs import Average, LogDrain, ParsedLog
from fulcrum.se.analytics.resources import ResourceUsage
from fulcrum.se.render.view import View
from fulcrum.se.telemetry import health_of

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_SERVING_FRONTENDS = ("direct", "worker")
_UP = (ServerHealth.UP, ServerHealth.DRAINING)
_COUNTED_HEALTH = (*_UP, ServerHealth.DOWN)  # maintenance and unknown states are not downtime

Add = Callable[[str, float | None], None]


# --- the view as name -> id tables ----------------------------------------------------------------


@dataclass(frozen=True)
class FrontendRef:
    name: str
    vs_uuid: str
    http: bool


@dataclass
class PoolRef:
    pool_uuid: str
    http: bool
    backends: list[str] = field(default_factory=list)
    servers: dict[str, list[RowKey]] = field(default_factory=dict)  # server id -> its rows


@dataclass(frozen=True)
class ViewIndex:
    frontends: tuple[FrontendRef, ...]  # direct and worker frontends: one per served virtual service
    all_frontends: tuple[str, ...]  # distributors too
    pools: tuple[PoolRef, ...]
    pool_of_backend: dict[str, str]
    server_of_row: dict[RowKey, str]

    @classmethod
    def of(cls, view: View | None) -> ViewIndex:
        if view is None:
            return cls((), (), (), {}, {})
        frontends = tuple(
            FrontendRef(fe["name"], fe["vs_uuid"], fe["mode"] == "http")
            for fe in view["frontends"]
            if fe["kind"] in _SERVING_FRONTENDS and fe.get("metrics", True)
        )
        pools: dict[str, PoolRef] = {}
        server_of_row: dict[RowKey, str] = {}
        for backend in view["backends"]:
            if backend["kind"] != "pool":
                continue
            pool = pools.setdefault(backend["pool_uuid"], PoolRef(backend["pool_uuid"], http=False))
            pool.http = pool.http or backend["mode"] == "http"  # an L4 backend's rows count no responses
            pool.backends.append(backend["name"])
            for server in backend["servers"]:
                row = (backend["name"], server["name"])
                pool.servers.setdefault(server["server_id"], []).append(row)
                server_of_row[row] = server["server_id"]
        return cls(
            frontends=frontends,
            all_frontends=tuple(fe["name"] for fe in view["frontends"]),
            pools=tuple(pools.values()),
            pool_of_backend={name: pool.pool_uuid for pool in pools.values() for name in pool.backends},
            server_of_row=server_of_row,
        )


# --- helpers --------------------------------------------------------------------------------------


def _adder(points: list[MetricPoint], entity_type: EntityType, uuid: str, server: str | None = None) -> Add:
    def add(metric_id: str, value: float | None) -> None:
        definition = catalog.get(metric_id)  # an id missing from the catalog is a bug: KeyError
        if entity_type not in definition.entity_types or (server is not None and not definition.per_server):
            raise ValueError(f"{metric_id} is not a {entity_type} metric{' per server' if server else ''}")
        if value is not None:
            points.append(
                MetricPoint(
                    entity_type=entity_type, entity_uuid=uuid, metric_id=metric_id, value=value, server=server
                )
            )

    return add


def _total(window: CounterWindow, keys: Iterable[RowKey], *columns: str) -> int:
    return sum(window.delta(key, column) for key in keys for column in columns)


def _levels(window: CounterWindow, keys: list[RowKey]) -> list[int]:
    """Per sample, the sum of the rows' `scur` (samples without any of the rows are skipped)."""
    levels = []
    for sample in window.samples:
        present = [sample[key].values["scur"] for key in keys if key in sample]
        if present:
            levels.append(sum(present))
    return levels


def _average(values: list[int]) -> float | None:
    return sum(values) / len(values) if values else None


def _merged(averages: Iterable[Average]) -> float | None:
    merged = Average()
    for average in averages:
        merged.total += average.total
        merged.count += average.count
    return merged.value


def _uptime(window: CounterWindow, server_rows: list[RowKey]) -> float | None:
    up = counted = 0
    for sample in window.samples:
        for key in server_rows:
            level = sample.get(key)
            if level is None:
                continue
            health = health_of(level.status)
            if health in _COUNTED_HEALTH:
                counted += 1
                up += health in _UP
    return 100.0 * up / counted if counted else None


def _http_responses(add: Add, prefix: str, window: CounterWindow, keys: list[RowKey]) -> None:
    seconds = window.seconds
    by_class = {status: _total(window, keys, f"hrsp_{status}") for status in STATUS_CLASSES}
    responses = sum(by_class.values()) + _total(window, keys, "hrsp_other")
    errors = by_class["4xx"] + by_class["5xx"]
    add(f"{prefix}.avg_complete_responses", responses / seconds)
    for status, count in by_class.items():
        add(f"{prefix}.avg_resp_{status}", count / seconds)
    add(f"{prefix}.avg_error_responses", errors / seconds)
    add(f"{prefix}.pct_response_errors", 100.0 * errors / responses if responses else None)


# --- entities -------------------------------------------------------------------------------------


def _virtualservice(add: Add, frontend: FrontendRef, window: CounterWindow, logs: LogDrain) -> None:
    keys = [(frontend.name, "FRONTEND")]
    seconds = window.seconds
    if seconds > 0:
        received, sent = _total(window, keys, "bin"), _total(window, keys, "bout")
        add("l4_client.avg_bandwidth", 8.0 * (received + sent) / seconds)
        add("l4_client.avg_rx_bytes", received / seconds)
        add("l4_client.avg_tx_bytes", sent / seconds)
        add("l4_client.avg_new_established_conns", _total(window, keys, "stot") / seconds)
        add("l4_client.avg_connections_dropped", _total(window, keys, "dcon", "dses") / seconds)
        if frontend.http:
            add("l7_client.avg_total_requests", _total(window, keys, "req_tot") / seconds)
            _http_responses(add, "l7_client", window, keys)
    levels = _levels(window, keys)
    add("l4_client.avg_open_conns", _average(levels))
    add("l4_client.max_open_conns", max(levels) if levels else None)
    timers = logs.frontends.get(frontend.name)
    if frontend.http and timers is not None:
        add("l7_client.avg_client_latency", timers.client_latency.value)
        add("l7_client.avg_total_time", timers.total.value)


def _server_side(
    add: Add,
    window: CounterWindow,
    logs: LogDrain,
    *,
    http: bool,
    count_rows: list[RowKey],
    server_rows: list[RowKey],
    timer_keys: list[tuple[str, str | None]],
) -> None:
    """Metrics of a pool (`count_rows`: its BACKEND rows) or of one server (its server rows)."""
    seconds = window.seconds
    if seconds > 0:
        to_servers, from_servers = _total(window, count_rows, "bin"), _total(window, count_rows, "bout")
        add("l4_server.avg_bandwidth", 8.0 * (to_servers + from_servers) / seconds)
        add("l4_server.avg_rx_bytes", from_servers / seconds)
        add("l4_server.avg_tx_bytes", to_servers / seconds)
        add("l4_server.avg_new_established_conns", _total(window, count_rows, "connect") / seconds)
        add("l4_server.avg_errored_connections", _total(window, count_rows, "econ") / seconds)
        add("l4_server.sum_health_check_failures", _total(window, server_rows, "chkfail"))
        if http:
            _http_responses(add, "l7_server", window, count_rows)
    levels = _levels(window, count_rows)
    add("l4_server.avg_open_conns", _average(levels))
    add("l4_server.max_open_conns", max(levels) if levels else None)
    add("l4_server.avg_uptime", _uptime(window, server_rows))
    timers = [logs.backends[key] for key in timer_keys if key in logs.backends]
    add("l4_server.avg_total_rtt", _merged(t.connect for t in timers))
    if http:
        add("l7_server.avg_resp_latency", _merged(t.response for t in timers))


def _pool(points: list[MetricPoint], pool: PoolRef, window: CounterWindow, logs: LogDrain) -> None:
    all_servers = [row for rows in pool.servers.values() for row in rows]
    _server_side(
        _adder(points, EntityType.POOL, pool.pool_uuid),
        window,
        logs,
        http=pool.http,
        count_rows=[(backend, "BACKEND") for backend in pool.backends],
        server_rows=all_servers,
        timer_keys=[(backend, None) for backend in pool.backends],
    )
    for server_id, rows in pool.servers.items():
        _server_side(
            _adder(points, EntityType.POOL, pool.pool_uuid, server_id),
            window,
            logs,
            http=pool.http,
            count_rows=rows,
            server_rows=rows,
            timer_keys=list(rows),
        )


def _service_engine(add: Add, index: ViewIndex, window: CounterWindow, usage: ResourceUsage | None) -> None:
    keys = [(name, "FRONTEND") for name in index.all_frontends]
    seconds = window.seconds
    if seconds > 0:
        received, sent = _total(window, keys, "bin"), _total(window, keys, "bout")
        add("se_if.avg_bandwidth", 8.0 * (received + sent) / seconds)
        add("se_if.avg_rx_bytes", received / seconds)
        add("se_if.avg_tx_bytes", sent / seconds)
    add("se_stats.avg_connections", _average(_levels(window, keys)))
    if usage is not None:
        add("se_stats.avg_cpu_usage", usage.cpu_percent)
        add("se_stats.avg_mem_usage", usage.memory_percent)
        add("se_stats.avg_mem_rss", usage.rss_bytes)


# --- logs -----------------------------------------------------------------------------------------


def request_log(entry: ParsedLog, significant: str, index: ViewIndex, vs_uuid: str) -> RequestLog:
    pool_uuid = index.pool_of_backend.get(entry.backend)
    server = index.server_of_row.get((entry.backend, entry.server)) if entry.server else None
    return RequestLog(
        ts=entry.ts,
        vs_uuid=vs_uuid,
        pool_uuid=pool_uuid,
        server=server,
        client_ip=entry.client_ip,
        client_port=entry.client_port,
        method=entry.method,
        uri=entry.uri,
        status=entry.status,
        client_latency_ms=entry.client_latency_ms,
        server_latency_ms=entry.server_latency_ms,
        total_ms=max(entry.total_ms, 0),
        bytes_in=entry.bytes_in,
        bytes_out=entry.bytes_out,
        tls_version=entry.tls_version,
        termination=entry.termination,
        significant=significant,
    )


def build_report(
    se_uuid: str,
    view: View | None,
    window: CounterWindow | None,
    logs: LogDrain,
    usage: ResourceUsage | None,
    *,
    now: float,
) -> AnalyticsReport:
    """The report of one interval: `window` bounds it (`now` when there is no window yet)."""
    index = ViewIndex.of(view)
    window = window or CounterWindow(start=now, end=now)
    points: list[MetricPoint] = []
    for frontend in index.frontends:
        _virtualservice(_adder(points, EntityType.VIRTUALSERVICE, frontend.vs_uuid), frontend, window, logs)
    for pool in index.pools:
        _pool(points, pool, window, logs)
    _service_engine(_adder(points, EntityType.SERVICEENGINE, se_uuid), index, window, usage)
    vs_of_frontend = {frontend.name: frontend.vs_uuid for frontend in index.frontends}
    entries = [
        request_log(entry, significant, index, vs_of_frontend[entry.frontend])
        for entry, significant in logs.kept
        if entry.frontend in vs_of_frontend  # a virtual service removed meanwhile is not reported
    ]
    return AnalyticsReport(
        start=window.start,
        end=window.end,
        metrics=tuple(points),
        logs=tuple(entries),
        logs_dropped=logs.dropped,
    )
