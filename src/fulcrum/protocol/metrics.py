"""The metric catalog: every metric an SE reports, what it measures, its unit and how it rolls up.

Shared by both ends of the analytics protocol: the SE computes exactly these metrics (and no others),
the controller validates metric ids against it, labels series with the unit and merges 5 s points into
5 min and 1 h points with the metric's `rollup`. Names follow the commercial reference (Avi Vantage)
where it has one: `l4_client` is the client side of a virtual service, `l4_server` / `l7_server` the
server side of a pool (and of each pool server, reported as a pool metric with a `server`), `se_stats`
and `se_if` the Service Engine.

Where each value comes from (`source`):
* `counters`: the difference of a HAProxy `show stat` counter between the samples that bound the report
  interval, divided by the interval (a counter that went down was reset by a reload and is counted
  from 0); `sum` metrics are the difference itself.
* `samples`: a `show stat` level (open connections, server status) sampled at every heartbeat.
* `logs`: the average over the interval's request logs (HAProxy timers, in ms).
* `process`: the SE's processes (the agent, HAProxy's master and workers) as the OS reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fulcrum.protocol.se import EntityType


class Rollup(StrEnum):
    AVG = "avg"  # the average of the merged points (weighted by how many points each stands for)
    MAX = "max"
    SUM = "sum"


class Source(StrEnum):
    COUNTERS = "counters"
    SAMPLES = "samples"
    LOGS = "logs"
    PROCESS = "process"


@dataclass(frozen=True)
class MetricDef:
    metric_id: str
    entity_types: tuple[EntityType, ...]
    unit: str
    rollup: Rollup
    source: Source
    description: str
    per_server: bool = False  # also reported for each pool server (a pool metric with `server` set)


_VS = (EntityType.VIRTUALSERVICE,)
_POOL = (EntityType.POOL,)
_SE = (EntityType.SERVICEENGINE,)
AVG, MAX, SUM = Rollup.AVG, Rollup.MAX, Rollup.SUM
COUNTERS, SAMPLES, LOGS, PROCESS = Source.COUNTERS, Source.SAMPLES, Source.LOGS, Source.PROCESS


def _vs(metric_id: str, unit: str, rollup: Rollup, source: Source, description: str) -> MetricDef:
    return MetricDef(metric_id, _VS, unit, rollup, source, description)


def _pool(metric_id: str, unit: str, rollup: Rollup, source: Source, description: str) -> MetricDef:
    return MetricDef(metric_id, _POOL, unit, rollup, source, description, per_server=True)


def _se(metric_id: str, unit: str, rollup: Rollup, source: Source, description: str) -> MetricDef:
    return MetricDef(metric_id, _SE, unit, rollup, source, description)


_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

METRICS: tuple[MetricDef, ...] = (
    # --- virtual service, client side (its frontend: direct, or scale-out worker) -----------------
    _vs("l4_client.avg_bandwidth", "bits/s", AVG, COUNTERS, "Bits received from and sent to clients."),
    _vs("l4_client.avg_rx_bytes", "bytes/s", AVG, COUNTERS, "Bytes received from clients."),
    _vs("l4_client.avg_tx_bytes", "bytes/s", AVG, COUNTERS, "Bytes sent to clients."),
    _vs(
        "l4_client.avg_new_established_conns",
        "conns/s",
        AVG,
        COUNTERS,
        "New client connections accepted (a scale-out worker also counts its distributors' checks).",
    ),
    _vs(
        "l4_client.avg_connections_dropped",
        "conns/s",
        AVG,
        COUNTERS,
        "Client connections refused by the virtual service's rules (e.g. it has no pool).",
    ),
    _vs("l4_client.avg_open_conns", "count", AVG, SAMPLES, "Open client connections, averaged over samples."),
    _vs("l4_client.max_open_conns", "count", MAX, SAMPLES, "Most open client connections in one sample."),
    _vs("l7_client.avg_total_requests", "requests/s", AVG, COUNTERS, "HTTP requests received from clients."),
    _vs(
        "l7_client.avg_complete_responses",
        "responses/s",
        AVG,
        COUNTERS,
        "HTTP responses sent to clients, whatever their status (HAProxy's own included).",
    ),
    *(
        _vs(
            f"l7_client.avg_resp_{status}",
            "responses/s",
            AVG,
            COUNTERS,
            f"HTTP {status} responses sent to clients.",
        )
        for status in _STATUS_CLASSES
    ),
    _vs(
        "l7_client.avg_error_responses",
        "responses/s",
        AVG,
        COUNTERS,
        "HTTP error responses (4xx and 5xx) sent to clients.",
    ),
    _vs(
        "l7_client.pct_response_errors",
        "percent",
        AVG,
        COUNTERS,
        "Share of HTTP responses to clients that were errors (4xx and 5xx).",
    ),
    _vs(
        "l7_client.avg_client_latency",
        "ms",
        AVG,
        LOGS,
        "Time to receive a request from the client: TLS handshake plus request headers (Th + TR).",
    ),
    _vs(
        "l7_client.avg_total_time",
        "ms",
        AVG,
        LOGS,
        "Time from accepting a request to sending the last byte of its response (Ta).",
    ),
    # --- pool, server side (its backend rows; per server from the server rows) ---------------------
    _pool("l4_server.avg_bandwidth", "bits/s", AVG, COUNTERS, "Bits sent to and received from servers."),
    _pool("l4_server.avg_rx_bytes", "bytes/s", AVG, COUNTERS, "Bytes received from servers."),
    _pool("l4_server.avg_tx_bytes", "bytes/s", AVG, COUNTERS, "Bytes sent to servers."),
    _pool(
        "l4_server.avg_new_established_conns",
        "conns/s",
        AVG,
        COUNTERS,
        "New connections opened to servers (attempts; reused keep-alive connections are not new).",
    ),
    _pool(
        "l4_server.avg_errored_connections",
        "conns/s",
        AVG,
        COUNTERS,
        "Connections to servers that failed to be established.",
    ),
    _pool(
        "l4_server.avg_open_conns",
        "count",
        AVG,
        SAMPLES,
        "Sessions open towards servers, averaged over samples.",
    ),
    _pool(
        "l4_server.max_open_conns", "count", MAX, SAMPLES, "Most sessions open towards servers in a sample."
    ),
    _pool(
        "l4_server.avg_total_rtt",
        "ms",
        AVG,
        LOGS,
        "Time to connect to a server, HAProxy's measure of the server round trip (Tc; 0 on a reused "
        "connection).",
    ),
    _pool(
        "l4_server.avg_uptime",
        "percent",
        AVG,
        SAMPLES,
        "Share of samples in which servers were up (servers in maintenance are not counted).",
    ),
    _pool(
        "l4_server.sum_health_check_failures",
        "count",
        SUM,
        COUNTERS,
        "Failed health checks of servers that were up, during the interval.",
    ),
    _pool(
        "l7_server.avg_complete_responses",
        "responses/s",
        AVG,
        COUNTERS,
        "HTTP responses of the pool, whatever their status (HAProxy's 503 without a server included).",
    ),
    *(
        _pool(
            f"l7_server.avg_resp_{status}",
            "responses/s",
            AVG,
            COUNTERS,
            f"HTTP {status} responses of the pool.",
        )
        for status in _STATUS_CLASSES
    ),
    _pool(
        "l7_server.avg_error_responses",
        "responses/s",
        AVG,
        COUNTERS,
        "HTTP error responses (4xx and 5xx) of the pool.",
    ),
    _pool(
        "l7_server.pct_response_errors",
        "percent",
        AVG,
        COUNTERS,
        "Share of the pool's HTTP responses that were errors (4xx and 5xx).",
    ),
    _pool(
        "l7_server.avg_resp_latency",
        "ms",
        AVG,
        LOGS,
        "Time a server took to send its response headers once connected (Tr).",
    ),
    # --- Service Engine --------------------------------------------------------------------------
    _se(
        "se_stats.avg_cpu_usage",
        "percent",
        AVG,
        PROCESS,
        "CPU used by the SE's processes (agent and HAProxy), share of the host's total CPU capacity.",
    ),
    _se(
        "se_stats.avg_mem_usage",
        "percent",
        AVG,
        PROCESS,
        "Resident memory of the SE's processes, share of the host's memory.",
    ),
    _se("se_stats.avg_mem_rss", "bytes", AVG, PROCESS, "Resident memory of the SE's processes."),
    _se(
        "se_stats.avg_connections",
        "count",
        AVG,
        SAMPLES,
        "Client connections open on all of the SE's frontends (distributors included), averaged.",
    ),
    _se(
        "se_if.avg_bandwidth",
        "bits/s",
        AVG,
        COUNTERS,
        "Bits received and sent by all of the SE's frontends (distributors included).",
    ),
    _se("se_if.avg_rx_bytes", "bytes/s", AVG, COUNTERS, "Bytes received by all of the SE's frontends."),
    _se("se_if.avg_tx_bytes", "bytes/s", AVG, COUNTERS, "Bytes sent by all of the SE's frontends."),
)

BY_ID: dict[str, MetricDef] = {metric.metric_id: metric for metric in METRICS}


def is_known(metric_id: str) -> bool:
    return metric_id in BY_ID


def get(metric_id: str) -> MetricDef:
    """The definition of `metric_id`; KeyError for an unknown id (check with `is_known`)."""
    return BY_ID[metric_id]


def unit(metric_id: str) -> str:
    return BY_ID[metric_id].unit


def rollup(metric_id: str) -> str:
    return BY_ID[metric_id].rollup.value


def entity_types(metric_id: str) -> tuple[str, ...]:
    return tuple(entity.value for entity in BY_ID[metric_id].entity_types)


def describe() -> list[dict[str, Any]]:
    """The catalog as JSON-ready dicts, in catalog order."""
    return [
        {
            "metric_id": m.metric_id,
            "entity_types": [entity.value for entity in m.entity_types],
            "unit": m.unit,
            "rollup": m.rollup.value,
            "source": m.source.value,
            "per_server": m.per_server,
            "description": m.description,
        }
        for m in METRICS
    ]
