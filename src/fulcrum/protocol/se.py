"""Wire schemas of the controller <-> Service Engine protocol, version 1.

The SE registers once with a one-time bootstrap token and receives a per-SE credential. Every later
request is signed with HMAC-SHA256 over method, path, timestamp and body (see `signing`). The
controller holds the SE's complete desired configuration (`SeConfig`) under a monotonically increasing
version; the SE long-polls for a version newer than the one it has, applies it, and acknowledges the
version it applied (or the error). Heartbeats carry server health, counters and resource usage.

Endpoints (all under /api/se-protocol/v1, JSON bodies):
  POST /register   RegisterRequest  -> RegisterResponse        (authenticated by the bootstrap token)
  GET  /config?version=N&wait=S      -> ConfigEnvelope          (answers when version > N, or 304 after S)
  POST /ack        Ack              -> {}                       (signed)
  POST /heartbeat  Heartbeat        -> HeartbeatResponse        (signed)
  POST /analytics  AnalyticsReport  -> {}                       (signed; every `analytics.interval_s`)

Every value here was validated by the controller's model before it was put in a config, and the SE
renders it with escaping anyway: the SE never trusts a string to be harmless.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

PROTOCOL_VERSION = 1
PREFIX = f"/api/se-protocol/v{PROTOCOL_VERSION}"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- desired configuration ------------------------------------------------------------------------


class AppType(StrEnum):
    HTTP = "HTTP"
    L4 = "L4"
    SSL = "SSL"  # TLS termination then raw TCP
    DNS = "DNS"


class Algorithm(StrEnum):
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_CONNECTIONS = "LEAST_CONNECTIONS"
    RANDOM = "RANDOM"
    HASH_SOURCE_IP = "HASH_SOURCE_IP"
    HASH_URI = "HASH_URI"
    HASH_HEADER = "HASH_HEADER"


class MonitorType(StrEnum):
    TCP = "TCP"
    HTTP = "HTTP"
    HTTPS = "HTTPS"
    TLS_HELLO = "TLS_HELLO"  # up when the server completes a TLS handshake; nothing is sent after it


class PersistenceKind(StrEnum):
    CLIENT_IP = "CLIENT_IP"
    HTTP_COOKIE = "HTTP_COOKIE"  # a cookie the SE inserts, naming the server
    APP_COOKIE = "APP_COOKIE"  # the application's own cookie (`cookie_name`), learnt from its responses


class ServerSpec(_Wire):
    id: str = Field(description="stable id within the pool: `<ip>:<port>` ([v6]:port for IPv6)")
    ip: str
    port: int
    weight: int = Field(ge=0, le=256)  # 0: takes no new connections
    enabled: bool = True
    backup: bool = False  # serves only while no non-backup server of the pool is up
    monitor_address: str | None = None
    monitor_port: int | None = None


class MonitorSpec(_Wire):
    name: str
    type: MonitorType
    interval_s: int
    timeout_s: int
    rise: int
    fall: int
    port: int | None = None
    http_request: str = "HEAD / HTTP/1.0"
    http_host: str | None = None
    http_status_classes: tuple[int, ...] = (2, 3)  # 2 = 2xx, 3 = 3xx, ...; empty = any
    http_status_codes: tuple[int, ...] = ()  # exact codes (100..599); when given, instead of the classes


class PersistenceSpec(_Wire):
    kind: PersistenceKind
    cookie_name: str = "FULCRUM_PERSIST"  # HTTP_COOKIE: the cookie inserted; APP_COOKIE: the one learnt
    cookie_max_age_s: int = 0  # 0 = session cookie
    ip_timeout_s: int = 300
    app_cookie_timeout_s: int = 1800  # APP_COOKIE: a value unseen for this long is forgotten


class PoolSpec(_Wire):
    uuid: str
    name: str
    algorithm: Algorithm
    hash_header: str | None = None
    servers: tuple[ServerSpec, ...] = ()
    monitors: tuple[MonitorSpec, ...] = ()
    persistence: PersistenceSpec | None = None
    graceful_disable_timeout_s: int = 60
    enabled: bool = True


class CertificateSpec(_Wire):
    uuid: str
    name: str
    certificate_pem: str
    key_pem: str


class HttpSettings(_Wire):
    xff_enabled: bool = True
    xff_header: str = "X-Forwarded-For"
    x_forwarded_proto: bool = False
    x_forwarded_port: bool = False
    connection_reuse: bool = True
    keepalive_timeout_ms: int = 30000
    request_timeout_ms: int = 10000
    redirect_to_https: bool = False
    hsts: bool = False


class MatchType(StrEnum):
    HOST_NAME = "HOST_NAME"  # the Host header without its port, compared case-insensitively
    PATH = "PATH"  # the path of the request (no query string)
    FILE_TYPE = "FILE_TYPE"  # the extension of the path's last segment ("" when it has none)
    HEADER = "HEADER"  # the request header named `key`
    COOKIE = "COOKIE"  # the request cookie named `key`
    SSL_CONN_HAS_CERT = "SSL_CONN_HAS_CERT"  # value "True"/"False": the client sent a certificate
    SSL_VERIFY_RESULT = "SSL_VERIFY_RESULT"  # the client certificate's verify result (0 = ok)
    SSL_DN_FIELD = "SSL_DN_FIELD"  # the field `key` of the client certificate's subject DN


class MatchCompare(StrEnum):
    EQUAL_TO = "EQUAL_TO"
    STARTS_WITH = "STARTS_WITH"
    ENDS_WITH = "ENDS_WITH"
    CONTAINS = "CONTAINS"
    REGEX = "REGEX"  # a regular expression in the subset `fulcrum.model.regex` accepts


class HttpMatchSpec(_Wire):
    type: MatchType
    compare: MatchCompare
    key: str | None = None
    value: str
    invert: bool = False


class PolicyAction(StrEnum):
    POOL = "POOL"  # send the request to `pool_uuid`
    REDIRECT_URL = "REDIRECT_URL"  # redirect to `location`
    REDIRECT_PREFIX = "REDIRECT_PREFIX"  # redirect to `location` followed by the request's path and query
    REJECT = "REJECT"  # answer 403


class HttpPolicySpec(_Wire):
    """An enabled HTTP policy of a VS: when every match holds, `action`. Policies are evaluated in the
    VS's order and the first that matches decides; the controller leaves out disabled policies and
    policies without an enabled match (those never match)."""

    uuid: str
    name: str
    action: PolicyAction
    pool_uuid: str | None = None  # POOL: the VS's `pool` or one of its `extra_pools`
    location: str | None = None  # REDIRECT_URL: the URL; REDIRECT_PREFIX: the prefix
    redirect_code: int = 302
    matches: tuple[HttpMatchSpec, ...] = Field(min_length=1)


class ListenerSpec(_Wire):
    port: int
    port_range_end: int | None = None
    tls: bool = False


class VsRole(StrEnum):
    """What this SE does for a virtual service (elastic HA and scale-out)."""

    PRIMARY = "PRIMARY"  # owns the VIP: binds it (and distributes when the VS is scaled out)
    SECONDARY = "SECONDARY"  # serves connections the primary hands over with the PROXY protocol
    STANDBY = "STANDBY"  # legacy active/standby: backends warm and health-checked, no VIP bound


class PeerState(StrEnum):
    READY = "READY"
    DRAIN = "DRAIN"  # takes no new connections; established ones finish


class ScaleOutPeer(_Wire):
    se_uuid: str
    address: str = Field(description="the peer SE's internal address, where its worker frontend listens")
    state: PeerState = PeerState.READY


class ScaleOutSpec(_Wire):
    """A VS served by several SEs. Every SE of the VS runs a worker frontend (the HTTP/TLS work) on
    `worker_address`, at each listener port plus `worker_port_offset`, accepting only PROXY-protocol
    connections. The primary also binds the VIP with an L4 distributor that spreads new connections
    over `peers` (itself included) and sends the client address with PROXY protocol v2."""

    worker_address: str
    worker_port_offset: int = Field(ge=-64511, le=64511, description="added to each listener port; not 0")
    peers: tuple[ScaleOutPeer, ...] = ()  # the primary's list; empty on secondaries


class VsSpec(_Wire):
    uuid: str
    name: str
    tenant_uuid: str
    enabled: bool = True
    vips: tuple[str, ...]
    listeners: tuple[ListenerSpec, ...]
    app_type: AppType
    http: HttpSettings | None = None
    pool: PoolSpec | None = None
    certificates: tuple[CertificateSpec, ...] = ()
    role: VsRole = VsRole.PRIMARY
    scaleout: ScaleOutSpec | None = None  # set when the VS runs on more than one SE
    metrics: bool = True  # report this VS's metrics
    request_logs: bool = True  # log this VS's requests (significant ones and a sample)
    extra_pools: tuple[PoolSpec, ...] = ()  # pools that HTTP policies send requests to, besides `pool`
    http_policies: tuple[HttpPolicySpec, ...] = ()
    allowed_cidrs: tuple[str, ...] = ()  # clients allowed to connect; empty: everyone
    connection_limit: int | None = None  # concurrent connections of the VS
    # Inactivity timeouts (ms); None: the SE's defaults; 0: no limit.
    timeout_client_ms: int | None = None
    timeout_connect_ms: int | None = None
    timeout_server_ms: int | None = None
    tcp_inspect_delay_ms: int | None = None


class AnalyticsSettings(_Wire):
    """What the SE measures and ships (see `fulcrum.protocol.metrics` for the metric catalog)."""

    enabled: bool = True
    interval_s: float = Field(5.0, ge=1.0, le=300.0)
    # Request logs: every significant request (error status, slower than `slow_request_ms`, or a
    # connection error) and this share of the others.
    log_sample_percent: float = Field(1.0, ge=0.0, le=100.0)
    slow_request_ms: int = Field(1000, ge=1)
    max_logs_per_report: int = Field(5000, ge=0)


class SeConfig(_Wire):
    se_uuid: str
    version: int
    heartbeat_interval_s: float = 1.0
    virtualservices: tuple[VsSpec, ...] = ()
    analytics: AnalyticsSettings = AnalyticsSettings()


# --- messages -------------------------------------------------------------------------------------


class RegisterRequest(_Wire):
    se_uuid: str
    bootstrap_token: str = Field(min_length=16, max_length=256)
    agent_version: str
    protocol_version: int = PROTOCOL_VERSION
    hostname: str = ""
    pid: int | None = None
    haproxy_pid: int | None = None


class RegisterResponse(_Wire):
    se_uuid: str
    credential: str
    heartbeat_interval_s: float


class ConfigEnvelope(_Wire):
    version: int
    config: SeConfig


class AckStatus(StrEnum):
    APPLIED = "APPLIED"
    FAILED = "FAILED"


class Ack(_Wire):
    version: int
    status: AckStatus
    error: str | None = None
    reloaded: bool = False
    runtime_changes: int = 0


class ServerHealth(StrEnum):
    UP = "UP"
    DOWN = "DOWN"
    DISABLED = "DISABLED"
    DRAINING = "DRAINING"
    UNKNOWN = "UNKNOWN"


class ServerState(_Wire):
    pool_uuid: str
    server_id: str
    health: ServerHealth
    reason: str = ""
    current_sessions: int = 0


class VsCounters(_Wire):
    vs_uuid: str
    current_sessions: int = 0
    total_sessions: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    http_responses_2xx: int = 0
    http_responses_4xx: int = 0
    http_responses_5xx: int = 0


class PeerHealth(_Wire):
    """How a scaled-out VS's primary sees one peer's worker (its distributor's health check)."""

    vs_uuid: str
    se_uuid: str
    health: ServerHealth


class Heartbeat(_Wire):
    sequence: int
    applied_version: int
    cpu_percent: float = 0.0
    memory_rss_bytes: int = 0
    agent_pid: int | None = None
    haproxy_pid: int | None = None
    servers: tuple[ServerState, ...] = ()
    counters: tuple[VsCounters, ...] = ()
    peers: tuple[PeerHealth, ...] = ()


class HeartbeatResponse(_Wire):
    desired_version: int


# --- analytics ------------------------------------------------------------------------------------


class EntityType(StrEnum):
    VIRTUALSERVICE = "virtualservice"
    POOL = "pool"
    SERVICEENGINE = "serviceengine"


class MetricPoint(_Wire):
    """One metric of one entity over one report interval (a rate, an average or a maximum as the
    catalog says). Per-server metrics are pool metrics with `server` set to the pool's server id."""

    entity_type: EntityType
    entity_uuid: str
    metric_id: str
    value: float
    server: str | None = None


class RequestLog(_Wire):
    ts: float  # when the request was accepted (UNIX time, seconds)
    vs_uuid: str
    pool_uuid: str | None = None
    server: str | None = None  # the pool's server id that answered, if any
    client_ip: str
    client_port: int
    method: str = ""
    uri: str = ""
    status: int = 0  # 0: no HTTP status (L4, or the connection failed before a response)
    client_latency_ms: float = 0.0  # receiving the request from the client (HAProxy Th + TR; no idle time)
    server_latency_ms: float = 0.0  # connecting to and waiting for the server (Tc + Tr)
    total_ms: float = 0.0  # accept to last byte (Ta)
    bytes_in: int = 0
    bytes_out: int = 0
    tls_version: str | None = None
    termination: str = ""  # HAProxy's termination state, e.g. "----" or "SC--"
    significant: str = ""  # why it was kept: "error", "slow", "termination", or "" when sampled


class AnalyticsReport(_Wire):
    start: float  # the interval the report covers (UNIX time, seconds)
    end: float
    metrics: tuple[MetricPoint, ...] = ()
    logs: tuple[RequestLog, ...] = ()
    logs_dropped: int = 0  # significant or sampled logs that did not fit `max_logs_per_report`
