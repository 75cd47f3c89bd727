"""Turns an SE's desired configuration into plain view dicts, the only input of the HAProxy template.

Everything that reaches the template is decided here: HAProxy identifiers are derived from uuids and
server ids and contain only [A-Za-z0-9_.-]; addresses are parsed as IP addresses; HTTP tokens (header
names, cookie names, methods) are checked; every free string is quoted for HAProxy's line parser.
Certificates become content-addressed files (`files`), so a rejected config never overwrites a file
that the running config still references.

Decisions worth knowing:
* A disabled virtual service (enabled=False) renders nothing: its VIP ports are closed, so clients are
  refused at once (TCP RST) and its servers are not health-checked. A VS of app type DNS is served by
  the GSLB DNS server, not HAProxy, and renders nothing either.
* An enabled VS without a pool keeps its ports bound and refuses cleanly: HTTP answers 503, L4/SSL
  close the connection at accept.
* A disabled pool keeps its backend with every server in maintenance (HTTP answers 503), so enabling it
  again is a runtime change, not a reload.
* A disabled server is `disabled` (maintenance) in the file; at runtime it goes to `drain` when its pool
  has a graceful disable timeout, otherwise to `maint` (see `server_state`).
* Several health monitors on one pool are chained (each opens its own connection); the check timing
  (interval, rise, fall) is the first monitor's, the check timeout is the largest. With HTTP monitors
  in the chain, a connect-only monitor (TCP, TLS_HELLO) must be the last one: HAProxy's http-check
  needs an expect between two connects.
* A TLS_HELLO monitor is a connect with TLS (`check-ssl`, or `ssl` on a chained connect) and nothing
  else: HAProxy counts the connection only once the handshake completed, so a server that does not
  speak TLS is down. (`option ssl-hello-chk` sends an SSLv3 hello that current servers refuse.)
* Exact expected status codes win over status classes: one code renders `expect status <code>`,
  several an anchored regex of exactly those codes, one term per ten at most (`_codes_regex`).
* APP_COOKIE persistence learns the application's own cookie: a string stick table (keyed on the
  value's first `APP_COOKIE_KEY_LENGTH` bytes) stores the server from the response that set it and
  matches it on requests carrying it. Like HTTP_COOKIE, it applies to HTTP virtual services only.
* Roles (elastic HA): a STANDBY SE renders only the VS's backend (servers health-checked, warm) and
  binds nothing, whatever `scaleout` says. A PRIMARY without `scaleout` binds the VIPs directly
  (frontend kind "direct"); a SECONDARY without `scaleout` is an error.
* Scale-out: every SE of the VS (primary or secondary) runs a "worker" frontend, named like a direct
  one, that binds `worker_address` at each listener port plus `worker_port_offset` with `accept-proxy`
  and does the HTTP/TLS work; the VIPs are not bound by it. The primary also binds the VIPs with a
  "distributor": a TCP frontend and a roundrobin backend with one server per peer at
  `<peer address>:<+-offset>` (destination port + offset, so port ranges need one server line), sending
  PROXY v2 so workers see the client address. Peers are health-checked with the PROXY header on the
  first listener's worker port; a DRAIN peer is a `drain` server. Peers come and go through the
  runtime API (HAProxy 2.6 accepts port offsets, `send-proxy-v2` and `check-send-proxy` on `add
  server`). A connection refused by a dead peer is retried on another one (`retries` and `option
  redispatch` of the fulcrum_tcp defaults). Frontends and backends carry a `kind` so telemetry reports
  pool servers and VS counters (from the direct or worker frontend) only.
* HTTP policies: each pool a VS's policies route to (`extra_pools`) is a backend of its own
  (`bp_<vs>.<pool>`, kind "pool"), so it is health-checked, persisted and reported like the default
  pool. Policies are applied first-match-wins through the variable `txn.fulcrum_policy` (see
  `_policies_view`); every match value is one quoted ACL pattern after `--`, redirect targets are
  log-format text with `%` doubled, and regular expressions are only those `fulcrum.model.regex`
  accepts. A VS without a default pool answers 503 to requests no policy routes.
* `allowed_cidrs` are checked where the client address is known: `tcp-request connection` on a direct
  frontend and on a distributor; `tcp-request session` on a scale-out worker (its connections come
  from the distributor; the PROXY header, parsed before session rules, carries the client address).
  `connection_limit` is the `maxconn` of those frontends. Timeouts of 0 ("no limit") render as
  `MAX_TIMEOUT_MS`, since HAProxy warns about a zero timeout.
* Analytics: when `config.analytics.enabled`, direct and worker frontends send one log line per request
  (per connection in L4) to the agent's datagram socket `RuntimePaths.log_socket`, in the formats that
  `se.analytics.logs` parses; distributors do not log (the worker serving the connection does).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fulcrum.model.regex import RegexError, check_regex
from fulcrum.protocol.se import (
    Algorithm,
    AnalyticsSettings,
    AppType,
    CertificateSpec,
    HttpMatchSpec,
    HttpPolicySpec,
    HttpSettings,
    ListenerSpec,
    MatchCompare,
    MatchType,
    MonitorSpec,
    MonitorType,
    PeerState,
    PersistenceKind,
    PersistenceSpec,
    PolicyAction,
    PoolSpec,
    ScaleOutSpec,
    SeConfig,
    ServerSpec,
    VsRole,
    VsSpec,
)
from fulcrum.se.analytics.logs import HTTP_LOG_FORMAT, LOG_LINE_MAX, TCP_LOG_FORMAT
from fulcrum.se.render.quoting import display_text, is_printable, is_token, quote, quote_logformat

View = dict[str, Any]

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_SAFE_PATH = re.compile(r"/[A-Za-z0-9_./+@,=-]*")
_HTTP_VERSIONS = ("HTTP/1.0", "HTTP/1.1")
_MAX_NAME = 64
HSTS_MAX_AGE_S = 31536000
APP_COOKIE_KEY_LENGTH = 64  # bytes of an application cookie's value that app-cookie persistence keys on
# Health checks of scale-out peers: a dead peer leaves the rotation within about two seconds.
PEER_CHECK_INTERVAL_S = 1
PEER_CHECK_FALL = 2
PEER_CHECK_RISE = 1  # a peer that answers once takes connections at once


class RenderError(ValueError):
    """A value of the desired configuration cannot be rendered safely; the message names it."""


@dataclass(frozen=True)
class RuntimePaths:
    """Where one SE's HAProxy keeps its files; the run directory holds secrets and sockets (mode 0700)."""

    run_dir: Path

    def __post_init__(self) -> None:
        # Paths are written unquoted into the config and crt-lists, so they must need no quoting at all;
        # UNIX socket paths are also limited to 107 bytes.
        text = str(self.run_dir)
        if not _SAFE_PATH.fullmatch(text):
            raise ValueError(f"run directory must be absolute and use only [A-Za-z0-9_./+@,=-]: {text!r}")
        if len(text) > 90:
            raise ValueError(f"run directory path is too long for UNIX sockets (max 90): {text!r}")

    @property
    def config(self) -> Path:
        return self.run_dir / "haproxy.cfg"

    @property
    def candidate(self) -> Path:
        return self.run_dir / "haproxy.cfg.new"

    @property
    def failed(self) -> Path:
        return self.run_dir / "haproxy.cfg.failed"

    @property
    def admin_socket(self) -> Path:
        return self.run_dir / "admin.sock"

    @property
    def master_socket(self) -> Path:
        return self.run_dir / "master.sock"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "server-state"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "haproxy.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "haproxy.log"

    @property
    def cert_dir(self) -> Path:
        return self.run_dir / "certs"

    @property
    def log_socket(self) -> Path:
        """The agent's datagram socket that HAProxy sends request logs to (see `se.analytics.logs`)."""
        return self.run_dir / "log.sock"


@dataclass(frozen=True)
class Tuning:
    """Process-wide HAProxy settings that are not part of a virtual service."""

    connect_timeout_ms: int = 5000
    client_timeout_ms: int = 60000
    server_timeout_ms: int = 60000
    # Old workers keep serving their connections after a reload; this bounds how long (e.g. L4 tunnels).
    hard_stop_after_s: int = 300
    stick_table_size: str = "1m"
    app_cookie_table_size: str = "100k"  # entries of app-cookie persistence tables (64-byte keys)


# --- names ----------------------------------------------------------------------------------------


def safe_name(raw: str, prefix: str = "", *, always_hash: bool = False) -> str:
    """A stable HAProxy identifier for `raw`; a hash suffix keeps altered or shortened names unique."""
    name = prefix + raw
    if _SAFE_NAME.fullmatch(name) and len(name) <= _MAX_NAME and not always_hash:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{_UNSAFE_NAME_CHARS.sub('_', name)[: _MAX_NAME - 9]}-{digest}"


def frontend_name(vs_uuid: str) -> str:
    return safe_name(vs_uuid, "fe_")


def backend_name(vs_uuid: str) -> str:
    """One backend per virtual service, so two VSs sharing a pool keep independent health and stats."""
    return safe_name(vs_uuid, "be_")


def pool_backend_name(vs_uuid: str, pool_uuid: str) -> str:
    """A backend for each further pool that the VS's HTTP policies route to."""
    return safe_name(f"{vs_uuid}.{pool_uuid}", "bp_", always_hash=True)


def distributor_frontend_name(vs_uuid: str) -> str:
    return safe_name(vs_uuid, "fd_")


def distributor_backend_name(vs_uuid: str) -> str:
    return safe_name(vs_uuid, "bd_")


def peer_server_name(se_uuid: str) -> str:
    """The distributor's server for the scale-out peer `se_uuid`."""
    return safe_name(se_uuid, "se_")


def server_name(server_id: str) -> str:
    """`10.0.0.1:80` -> `10.0.0.1_80`, `[fd00::1]:80` -> `fd00__1_80`; anything else gets a hash suffix."""
    if re.fullmatch(r"[0-9.]+:[0-9]+|\[[0-9A-Fa-f:.]+\]:[0-9]+", server_id):
        return safe_name(server_id.replace("[", "").replace("]", "").replace(":", "_"))
    return safe_name(server_id, always_hash=True)  # the '-' of the suffix never occurs in the mapping


def cookie_value(pool_uuid: str, server_id: str) -> str:
    """Opaque, stable across SEs and reloads, and leaks no back-end address to clients."""
    return hashlib.sha256(f"{pool_uuid}\0{server_id}".encode()).hexdigest()[:16]


def server_numeric_ids(server_ids: list[str]) -> dict[str, int]:
    """Stable numeric HAProxy server ids: consistent hashing keys on them, so they must not follow the
    order of the list (which would remap clients whenever a server is added) and must be the same on
    every SE of the virtual service."""
    taken: set[int] = set()
    result: dict[str, int] = {}
    for server_id in sorted(server_ids):
        candidate = zlib.crc32(server_id.encode()) % 1_000_000_000 + 1
        while candidate in taken:
            candidate = candidate % 1_000_000_000 + 1
        taken.add(candidate)
        result[server_id] = candidate
    return result


# --- addresses ------------------------------------------------------------------------------------


def _ip(value: str, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise RenderError(f"{what}: {value!r} is not an IP address") from None


def _port(value: int, what: str) -> int:
    if not 1 <= value <= 65535:
        raise RenderError(f"{what}: port {value} is out of range")
    return value


def _address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, ports: str) -> str:
    return f"[{ip.compressed}]:{ports}" if ip.version == 6 else f"{ip.compressed}:{ports}"


def _listener_ports(listener: ListenerSpec, what: str, offset: int = 0) -> str:
    """`port` or `first-last` of a listener, shifted by `offset` (a scale-out worker's ports)."""
    first = _port(listener.port, what)
    last = first
    if listener.port_range_end is not None and listener.port_range_end != listener.port:
        if listener.port_range_end < listener.port:
            raise RenderError(f"{what}: port range {listener.port}-{listener.port_range_end}")
        last = _port(listener.port_range_end, what)
    if offset and not (first + offset >= 1 and last + offset <= 65535):
        raise RenderError(f"{what}: ports {first}-{last} + worker_port_offset {offset} leave 1..65535")
    return str(first + offset) if first == last else f"{first + offset}-{last + offset}"


# --- HTTP strings ---------------------------------------------------------------------------------


def _token(value: str, what: str) -> str:
    if not is_token(value):
        raise RenderError(f"{what}: {value!r} is not a valid HTTP token")
    return value


def _monitor_request(monitor: MonitorSpec, what: str) -> tuple[str, str, str]:
    parts = monitor.http_request.split(" ")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise RenderError(f"{what}: http_request {monitor.http_request!r} is not 'METHOD [URI [VERSION]]'")
    method = _token(parts[0], f"{what}: http_request method")
    uri = parts[1] if len(parts) > 1 else "/"
    version = parts[2] if len(parts) > 2 else "HTTP/1.0"
    if not is_printable(uri, allow_space=False):
        raise RenderError(f"{what}: http_request URI {uri!r} contains control characters")
    if version not in _HTTP_VERSIONS:
        raise RenderError(f"{what}: http_request version {version!r} is not one of {_HTTP_VERSIONS}")
    return method, uri, version


def _status_regex(classes: tuple[int, ...], what: str) -> str:
    if not classes:
        return "^[1-5]"
    if any(not 1 <= c <= 5 for c in classes):
        raise RenderError(f"{what}: status classes {classes} must be between 1 and 5")
    digits = "".join(str(c) for c in sorted(set(classes)))
    return f"^{digits}" if len(digits) == 1 else f"^[{digits}]"


def _digit_class(digits: list[int]) -> str:
    """`4`, `[0-4]` or `[12]`: a regex of exactly these digits (sorted, distinct)."""
    if len(digits) == 1:
        return str(digits[0])
    if len(digits) > 2 and digits == list(range(digits[0], digits[-1] + 1)):
        return f"[{digits[0]}-{digits[-1]}]"
    return "[" + "".join(str(d) for d in digits) + "]"


def _codes_regex(codes: list[int]) -> str:
    """An anchored regex matching exactly `codes` (sorted, distinct, 100..599), at most 50 terms long:
    within a hundred, tens that allow the same units share a term (200-204,301 -> ^(20[0-4]|301)$)."""
    terms = []
    for hundred in sorted({c // 100 for c in codes}):
        tens_by_units: dict[tuple[int, ...], list[int]] = {}
        for ten in range(10):
            units = tuple(c % 10 for c in codes if c // 10 == hundred * 10 + ten)
            if units:
                tens_by_units.setdefault(units, []).append(ten)
        terms += [
            f"{hundred}{_digit_class(tens)}{_digit_class(list(units))}"
            for units, tens in tens_by_units.items()
        ]
    return "^(" + "|".join(terms) + ")$"


def _status_expect(monitor: MonitorSpec, what: str) -> str:
    """The `http-check expect` of a monitor: its exact codes when it has them, else its classes."""
    if not monitor.http_status_codes:
        return f"rstatus {_status_regex(monitor.http_status_classes, what)}"
    codes = sorted(set(monitor.http_status_codes))
    if not 100 <= codes[0] <= codes[-1] <= 599:
        raise RenderError(f"{what}: status codes must be between 100 and 599")
    # The regex is built from digits only: nothing in it needs quoting.
    return f"status {codes[0]}" if len(codes) == 1 else f"rstatus {_codes_regex(codes)}"


# --- health checks --------------------------------------------------------------------------------

_HTTP_MONITORS = (MonitorType.HTTP, MonitorType.HTTPS)
# Monitors that connect with TLS (see the module docstring on TLS_HELLO).
_TLS_MONITORS = (MonitorType.HTTPS, MonitorType.TLS_HELLO)


def _check_step(monitor: MonitorSpec, first: bool, what: str) -> View:
    is_http = monitor.type in _HTTP_MONITORS
    step: View = {
        # The first step uses the server's own check settings (port/addr/check-ssl on the server line).
        "connect": {"default": first, "port": None if first else monitor.port, "ssl": False},
        "send": None,
        "expect": None,
    }
    if not first:
        if monitor.port is not None:
            _port(monitor.port, what)
        step["connect"]["ssl"] = monitor.type in _TLS_MONITORS
    if is_http:
        method, uri, version = _monitor_request(monitor, what)
        host = None
        if monitor.http_host is not None:
            if not monitor.http_host or not is_printable(monitor.http_host, allow_space=True):
                raise RenderError(f"{what}: http_host {monitor.http_host!r} is empty or has control chars")
            host = quote_logformat(monitor.http_host)
        step["send"] = {"method": quote(method), "uri": quote(uri), "version": version, "host": host}
        step["expect"] = _status_expect(monitor, what)
    return step


def _check_view(monitors: tuple[MonitorSpec, ...], what: str) -> View | None:
    if not monitors:
        return None
    first = monitors[0]
    for monitor in monitors:
        if monitor.interval_s < 1 or monitor.timeout_s < 1 or monitor.rise < 1 or monitor.fall < 1:
            raise RenderError(f"{what}: monitor {monitor.name!r} timing values must be >= 1")
    any_http = any(m.type in _HTTP_MONITORS for m in monitors)
    chained = len(monitors) > 1
    if any_http:
        # An http-check ruleset needs an expect between two connects: a monitor that only connects
        # (TCP, TLS_HELLO) can be chained with HTTP monitors only as the last one.
        for monitor in monitors[:-1]:
            if monitor.type not in _HTTP_MONITORS:
                raise RenderError(
                    f"{what}: monitor {monitor.name!r} ({monitor.type.value}) must come after the HTTP "
                    "monitors of the pool"
                )
    steps = [_check_step(m, i == 0, f"{what}: monitor {m.name!r}") for i, m in enumerate(monitors)]
    if not chained:
        steps[0]["connect"] = None
    return {
        "protocol": "http" if any_http else "tcp",
        "chained": chained,
        "steps": steps if any_http or chained else [],
        "inter_s": first.interval_s,
        "fall": first.fall,
        "rise": first.rise,
        "timeout_s": max(m.timeout_s for m in monitors),
        "port": first.port,
        "check_ssl": first.type in _TLS_MONITORS,
        # Any TLS check needs an explicit `verify none`: health checks do not authenticate servers.
        "verify_none": any(m.type in _TLS_MONITORS for m in monitors),
    }


# --- backends -------------------------------------------------------------------------------------

_BALANCE = {
    Algorithm.ROUND_ROBIN: "roundrobin",
    Algorithm.LEAST_CONNECTIONS: "leastconn",
    Algorithm.RANDOM: "random",
    Algorithm.HASH_SOURCE_IP: "source",
    Algorithm.HASH_URI: "uri",
}


def _balance(pool: PoolSpec, mode: str, what: str) -> tuple[str, str | None]:
    if pool.algorithm is Algorithm.HASH_HEADER:
        if mode != "http":
            raise RenderError(f"{what}: HASH_HEADER needs an HTTP virtual service")
        if pool.hash_header is None:
            raise RenderError(f"{what}: HASH_HEADER needs hash_header")
        return quote(f"hdr({_token(pool.hash_header, f'{what}: hash_header')})"), "consistent"
    if pool.algorithm is Algorithm.HASH_URI and mode != "http":
        raise RenderError(f"{what}: HASH_URI needs an HTTP virtual service")
    balance = _BALANCE[pool.algorithm]
    # Consistent hashing moves few clients when a server comes or goes, and allows dynamic servers.
    return balance, "consistent" if balance in ("source", "uri") else None


def server_state(server: ServerSpec, pool: PoolSpec) -> str:
    """Desired runtime admin state: ready, or drain (graceful disable) / maint for a disabled server."""
    if pool.enabled and server.enabled:
        return "ready"
    if pool.enabled and pool.graceful_disable_timeout_s > 0:
        return "drain"
    return "maint"


def _server_view(
    server: ServerSpec, pool: PoolSpec, numeric_id: int, check: View | None, cookie: bool, what: str
) -> View:
    ip = _ip(server.ip, f"{what}: server {server.id!r}")
    check_addr = None
    if server.monitor_address is not None:
        check_addr = _ip(server.monitor_address, f"{what}: server {server.id!r} monitor_address").compressed
    check_port = server.monitor_port if server.monitor_port is not None else (check or {}).get("port")
    if check_port is not None:
        _port(check_port, f"{what}: server {server.id!r} monitor port")
    if not 0 <= server.weight <= 256:
        raise RenderError(f"{what}: server {server.id!r} weight {server.weight} is out of 0..256")
    return {
        "name": server_name(server.id),
        "server_id": server.id,
        "address": _address(ip, str(_port(server.port, f"{what}: server {server.id!r}"))),
        "id": numeric_id,
        "weight": server.weight,
        "state": server_state(server, pool),
        "backup": server.backup,
        "cookie": cookie_value(pool.uuid, server.id) if cookie else None,
        "check": check is not None,
        "check_port": check_port if check is not None else None,
        "check_addr": check_addr if check is not None else None,
        "send_proxy": False,
    }


def _app_cookie_stick(persistence: PersistenceSpec, tuning: Tuning, what: str) -> View:
    """Learn the application's cookie: the server whose response set a value is where requests
    carrying that value go (while it is up). Values are keyed on their first 64 bytes."""
    name = _token(persistence.cookie_name, f"{what}: cookie_name")
    if "'" in name:  # inside a fetch's parentheses a quote would open a quoted argument
        raise RenderError(f"{what}: cookie_name {name!r} contains a quote")
    return {
        "type": "string",
        "length": APP_COOKIE_KEY_LENGTH,
        "size": tuning.app_cookie_table_size,
        "expire_s": max(persistence.app_cookie_timeout_s, 1),
        "rules": [f"store-response {quote(f'res.cook({name})')}", f"match {quote(f'req.cook({name})')}"],
    }


def _backend_view(
    vs: VsSpec, pool: PoolSpec, mode: str, any_ipv6: bool, tuning: Tuning, name: str | None = None
) -> View:
    """The backend of `pool` for `vs`: its default pool (`be_<vs>`) or one its policies route to."""
    what = f"virtual service {vs.name!r} pool {pool.name!r}"
    balance, hash_type = _balance(pool, mode, what)
    check = _check_view(pool.monitors, what)
    persistence = pool.persistence
    cookie = None
    stick = None
    if persistence is not None and persistence.kind is PersistenceKind.HTTP_COOKIE and mode == "http":
        cookie = {
            "name": quote(_token(persistence.cookie_name, f"{what}: cookie_name")),
            "max_age_s": max(persistence.cookie_max_age_s, 0),
        }
    elif persistence is not None and persistence.kind is PersistenceKind.APP_COOKIE and mode == "http":
        stick = _app_cookie_stick(persistence, tuning, what)
    elif persistence is not None and persistence.kind is PersistenceKind.CLIENT_IP:
        stick = {
            # An ipv6 table also holds IPv4 clients (as mapped addresses).
            "type": "ipv6" if any_ipv6 else "ip",
            "length": None,
            "size": tuning.stick_table_size,
            "expire_s": max(persistence.ip_timeout_s, 1),
            "rules": ["on src"],
        }
    ids = server_numeric_ids([s.id for s in pool.servers])
    servers = [_server_view(s, pool, ids[s.id], check, cookie is not None, what) for s in pool.servers]
    names = [s["name"] for s in servers]
    if len(set(names)) != len(names):
        raise RenderError(f"{what}: server ids are not unique")
    return {
        "kind": "pool",
        "name": name or backend_name(vs.uuid),
        "vs_uuid": vs.uuid,
        "pool_uuid": pool.uuid,
        "description": display_text(f"pool {pool.name} ({pool.uuid})"),
        "mode": mode,
        "timeout_connect_ms": _timeout(vs.timeout_connect_ms, f"{what}: timeout_connect_ms"),
        "timeout_server_ms": _timeout(vs.timeout_server_ms, f"{what}: timeout_server_ms"),
        "balance": balance,
        "hash_type": hash_type,
        "http_reuse": None if mode != "http" else ("safe" if _http(vs).connection_reuse else "never"),
        "cookie": cookie,
        "stick": stick,
        "check": check,
        # HAProxy 2.6 refuses `cookie` on servers added at runtime: such pools add servers by reload.
        "dynamic_servers": cookie is None,
        "servers": servers,
    }


# --- limits and HTTP policies --------------------------------------------------------------------

MAX_TIMEOUT_MS = 86_400_000  # also what "no limit" (0) renders as: HAProxy warns about a 0 timeout
_CIDRS_PER_LINE = 16  # HAProxy reads at most 64 words on a line
_POLICY_VAR = "txn.fulcrum_policy"
_REDIRECT_CODES = (301, 302, 303, 307, 308)
_DN_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}")
_EXTENSION = re.compile(r"[A-Za-z0-9_~+-]{1,64}")
_ABSOLUTE_URL = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[^/?#]")
_COMPARE = {
    MatchCompare.EQUAL_TO: "-m str",
    MatchCompare.STARTS_WITH: "-m beg",
    MatchCompare.ENDS_WITH: "-m end",
    MatchCompare.CONTAINS: "-m sub",
    MatchCompare.REGEX: "-m reg",
}
# What each match type compares. The Host header loses its port; FILE_TYPE is the extension of the
# path's last segment: the segment, emptied when it has no dot, then what follows its last dot.
_CRITERION = {
    MatchType.HOST_NAME: "req.hdr(host),regsub(:[0-9]+$,)",
    MatchType.PATH: "path",
    MatchType.FILE_TYPE: "path,field(-1,/),regsub(^[^.]*$,),field(-1,.)",
    MatchType.SSL_CONN_HAS_CERT: "ssl_c_used",
    MatchType.SSL_VERIFY_RESULT: "ssl_c_verify",
}


def _timeout(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if not 0 <= value <= MAX_TIMEOUT_MS:
        raise RenderError(f"{what}: {value} ms is out of 0..{MAX_TIMEOUT_MS}")
    return value or MAX_TIMEOUT_MS


def _limits_view(vs: VsSpec, stage: str, what: str) -> View:
    """Connection limit, client timeout, source filter and inspect delay of a VS's frontend."""
    if vs.connection_limit is not None and not 1 <= vs.connection_limit <= 1_000_000:
        raise RenderError(f"{what}: connection_limit {vs.connection_limit} is out of 1..1000000")
    networks = []
    for cidr in vs.allowed_cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False).compressed)
        except ValueError:
            raise RenderError(f"{what}: allowed_cidrs: {cidr!r} is not a network") from None
    networks = list(dict.fromkeys(networks))
    inspect_delay = vs.tcp_inspect_delay_ms  # 0: inspect what has arrived, wait for nothing
    if inspect_delay is not None and not 0 <= inspect_delay <= MAX_TIMEOUT_MS:
        raise RenderError(f"{what}: tcp_inspect_delay_ms {inspect_delay} is out of 0..{MAX_TIMEOUT_MS}")
    allowed = None
    if networks:
        chunks = [networks[i : i + _CIDRS_PER_LINE] for i in range(0, len(networks), _CIDRS_PER_LINE)]
        allowed = {"stage": stage, "lines": [" ".join(chunk) for chunk in chunks]}
    return {
        "maxconn": vs.connection_limit,
        "timeout_client_ms": _timeout(vs.timeout_client_ms, f"{what}: timeout_client_ms"),
        "allowed": allowed,
        "inspect_delay_ms": inspect_delay,
    }


def _match_value(match: HttpMatchSpec, what: str) -> str:
    value = match.value
    if not value or not is_printable(value, allow_space=True):
        raise RenderError(f"{what}: value {value!r} is empty or has control characters")
    if match.compare is MatchCompare.REGEX:
        try:
            check_regex(value)
        except RegexError as error:
            raise RenderError(f"{what}: value {value!r}: {error}") from None
    elif match.type is MatchType.FILE_TYPE and not _EXTENSION.fullmatch(value):
        raise RenderError(f"{what}: value {value!r} is not a file extension")
    elif match.type is MatchType.SSL_VERIFY_RESULT and not (value.isascii() and value.isdigit()):
        raise RenderError(f"{what}: value {value!r} is not a verify result number")
    return quote(value)


def _acl_view(name: str, match: HttpMatchSpec, what: str) -> tuple[View, bool]:
    """One named ACL for `match`, and whether the policy's condition negates it."""
    kind, negate = match.type, match.invert
    only_equal = kind in (MatchType.SSL_CONN_HAS_CERT, MatchType.SSL_VERIFY_RESULT)
    if only_equal and match.compare is not MatchCompare.EQUAL_TO:
        raise RenderError(f"{what}: {kind.value} matches only compare with EQUAL_TO")
    if kind is MatchType.FILE_TYPE and match.compare not in (MatchCompare.EQUAL_TO, MatchCompare.REGEX):
        raise RenderError(f"{what}: FILE_TYPE matches only compare with EQUAL_TO or REGEX")
    if kind is MatchType.SSL_CONN_HAS_CERT:
        if match.value not in ("True", "False"):
            raise RenderError(f"{what}: SSL_CONN_HAS_CERT takes True or False, not {match.value!r}")
        # A boolean fetch: the ACL holds when the client sent a certificate.
        return {"name": name, "criterion": _CRITERION[kind], "flags": None, "value": None}, (
            negate != (match.value == "False")
        )
    if kind in (MatchType.HEADER, MatchType.COOKIE, MatchType.SSL_DN_FIELD):
        key = match.key or ""
        if kind is MatchType.SSL_DN_FIELD and not _DN_FIELD.fullmatch(key):
            raise RenderError(f"{what}: key {key!r} is not a distinguished name field")
        # A quote would open a quoted argument inside the fetch's parentheses.
        if not is_token(key) or "'" in key:
            raise RenderError(f"{what}: key {key!r} is not a valid HTTP token")
        fetch = {MatchType.HEADER: "req.hdr", MatchType.COOKIE: "req.cook"}.get(kind, "ssl_c_s_dn")
        criterion = quote(f"{fetch}({key})")
    else:
        criterion = _CRITERION[kind]
    flags = "-m int" if kind is MatchType.SSL_VERIFY_RESULT else _COMPARE[match.compare]
    if kind is MatchType.HOST_NAME:
        flags += " -i"  # host names are case-insensitive
    # `--` ends the flags, so a value like `-i` stays a value.
    return {"name": name, "criterion": criterion, "flags": flags, "value": _match_value(match, what)}, negate


def _redirect_location(policy: HttpPolicySpec, what: str) -> str:
    location = policy.location or ""
    if not _ABSOLUTE_URL.match(location) or not is_printable(location, allow_space=False):
        raise RenderError(f"{what}: location {location!r} is not an http(s) URL with a host")
    if policy.action is PolicyAction.REDIRECT_PREFIX:
        location = location.rstrip("/")  # HAProxy appends the request's path, which starts with a slash
    return quote_logformat(location)  # redirect targets are log-format strings in http-request rules


def _policies_view(vs: VsSpec, mode: str, routes: dict[str, str], what: str) -> View | None:
    """ACLs and rules that apply the VS's HTTP policies in order, first match winning.

    HAProxy runs every `http-request` rule before any `use_backend`, so rule order alone cannot give
    "first match wins" across redirects, rejects and pool routes. Instead, each policy in turn sets
    `txn.fulcrum_policy` to its position when its matches hold and no earlier policy matched; then
    one rule per policy acts on exactly that position.
    """
    if not vs.http_policies:
        return None
    if mode != "http":
        raise RenderError(f"{what}: HTTP policies need an HTTP virtual service")
    acls: list[View] = []
    selects: list[View] = []
    actions: list[View] = []
    route_rules: list[View] = []
    for index, policy in enumerate(vs.http_policies, start=1):
        where = f"{what}: HTTP policy {policy.name!r}"
        if not policy.matches:
            raise RenderError(f"{where}: has no match")
        terms = []
        for number, match in enumerate(policy.matches, start=1):
            acl, negate = _acl_view(f"fulcrum_p{index}_m{number}", match, f"{where}: match {number}")
            acls.append(acl)
            terms.append(f"!{acl['name']}" if negate else acl["name"])
        selects.append({"index": index, "condition": " ".join(terms)})
        if policy.action is PolicyAction.POOL:
            backend = routes.get(policy.pool_uuid or "")
            if backend is None:
                raise RenderError(f"{where}: pool {policy.pool_uuid!r} is not one of the VS's pools")
            route_rules.append({"index": index, "backend": backend})
            continue
        if policy.action is PolicyAction.REJECT:
            rule = "deny deny_status 403"
        else:
            if policy.redirect_code not in _REDIRECT_CODES:
                raise RenderError(
                    f"{where}: redirect code {policy.redirect_code} is not one of {_REDIRECT_CODES}"
                )
            kind = "location" if policy.action is PolicyAction.REDIRECT_URL else "prefix"
            rule = f"redirect {kind} {_redirect_location(policy, where)} code {policy.redirect_code}"
        actions.append({"index": index, "rule": rule})
    return {"var": _POLICY_VAR, "acls": acls, "selects": selects, "actions": actions, "routes": route_rules}


# --- frontends ------------------------------------------------------------------------------------


def _http(vs: VsSpec) -> HttpSettings:
    return vs.http if vs.http is not None else HttpSettings()


def _certificate_files(vs: VsSpec, fe_name: str, paths: RuntimePaths) -> tuple[str, list[View]]:
    """PEM files (certificate then key) and a crt-list naming them; the first is the default for SNI."""
    files: list[View] = []
    lines = []
    for cert in vs.certificates:
        content = _pem_bundle(cert)
        digest = hashlib.sha256(content.encode()).hexdigest()[:12]
        path = paths.cert_dir / f"{safe_name(cert.uuid)}-{digest}.pem"
        files.append({"path": str(path), "content": content, "mode": 0o600})
        lines.append(f"{path}\n")
    crt_list = "".join(lines)
    digest = hashlib.sha256(crt_list.encode()).hexdigest()[:12]
    crt_list_path = paths.cert_dir / f"{fe_name}-{digest}.crtlist"
    files.append({"path": str(crt_list_path), "content": crt_list, "mode": 0o600})
    return str(crt_list_path), files


def _pem_bundle(cert: CertificateSpec) -> str:
    return cert.certificate_pem.strip() + "\n" + cert.key_pem.strip() + "\n"


def _http_view(vs: VsSpec, what: str) -> View:
    settings = _http(vs)
    return {
        "xff_header": (
            quote(_token(settings.xff_header, f"{what}: xff_header")) if settings.xff_enabled else None
        ),
        "x_forwarded_proto": settings.x_forwarded_proto,
        "x_forwarded_port": settings.x_forwarded_port,
        "redirect_to_https": settings.redirect_to_https,
        "hsts_max_age_s": HSTS_MAX_AGE_S if settings.hsts else None,
        "request_timeout_ms": max(settings.request_timeout_ms, 1),
        "keepalive_timeout_ms": max(settings.keepalive_timeout_ms, 1),
    }


def _bind(
    address: str, crt_list: str | None = None, alpn: str | None = None, accept_proxy: bool = False
) -> View:
    return {"address": address, "crt_list": crt_list, "alpn": alpn, "accept_proxy": accept_proxy}


def _vip_addresses(vs: VsSpec, what: str) -> list[tuple[str, ListenerSpec]]:
    """Every VIP x listener as (bind address, listener)."""
    return [
        (_address(_ip(vip, f"{what}: VIP"), _listener_ports(listener, what)), listener)
        for vip in vs.vips
        for listener in vs.listeners
    ]


def _log_view(
    vs: VsSpec, kind: str, mode: str, paths: RuntimePaths, analytics: AnalyticsSettings
) -> View | None:
    """Request logs to the agent's socket, in the format its parser reads (`se.analytics.logs`).

    Connections that send nothing are not logged on HTTP frontends (no request) and on scale-out
    workers (the distributors' health checks); an L4 frontend logs every connection.

    HTTP frontends sample in HAProxy itself: a response below 400 that arrived faster than the slow
    threshold is logged with probability `log_sample_percent` only (`presample`), so the agent never
    has to read one datagram per request at full load. The agent keeps every log it receives and
    weights the sampled ones by 100 / percent in its latency averages.
    """
    if not analytics.enabled or not vs.request_logs:
        return None
    presample = None
    if mode == "http" and analytics.log_sample_percent < 100:
        presample = {
            "keep_below": round(analytics.log_sample_percent * 10_000),  # of rand(1000000)
            "slow_ms": analytics.slow_request_ms,
        }
    return {
        "target": f"unix@{paths.log_socket}",
        "length": LOG_LINE_MAX,
        "format": quote(HTTP_LOG_FORMAT if mode == "http" else TCP_LOG_FORMAT),
        "dontlognull": mode == "http" or kind == "worker",
        "presample": presample,
    }


def _frontend_view(
    vs: VsSpec,
    mode: str,
    backend: str | None,
    routes: dict[str, str],
    paths: RuntimePaths,
    analytics: AnalyticsSettings,
) -> tuple[View, list[View]]:
    """The frontend doing the VS's work: on the VIPs ("direct"), or behind a distributor ("worker")."""
    what = f"virtual service {vs.name!r}"
    name = frontend_name(vs.uuid)
    crt_list = None
    files: list[View] = []
    if any(listener.tls for listener in vs.listeners):
        if not vs.certificates:
            raise RenderError(f"{what}: a TLS listener needs at least one certificate")
        crt_list, files = _certificate_files(vs, name, paths)
    scaleout = vs.scaleout
    if scaleout is None:
        addresses = _vip_addresses(vs, what)
    else:
        worker = _ip(scaleout.worker_address, f"{what}: worker_address")
        offset = scaleout.worker_port_offset
        addresses = [(_address(worker, _listener_ports(lst, what, offset)), lst) for lst in vs.listeners]
    binds = [
        _bind(
            address,
            crt_list=crt_list if listener.tls else None,
            alpn="http/1.1" if listener.tls and mode == "http" else None,
            # Only the distributors of the VS connect here, and they always send the PROXY header.
            accept_proxy=scaleout is not None,
        )
        for address, listener in addresses
    ]
    kind = "direct" if scaleout is None else "worker"
    frontend = {
        "kind": kind,
        "name": name,
        "vs_uuid": vs.uuid,
        "description": display_text(f"virtual service {vs.name} ({vs.uuid})"),
        "mode": mode,
        "binds": binds,
        "log": _log_view(vs, kind, mode, paths, analytics),
        "metrics": vs.metrics,
        # Behind a distributor, `tcp-request connection` rules see the distributor's address; session
        # rules see the client address the PROXY header carries.
        **_limits_view(vs, "connection" if scaleout is None else "session", what),
        "http": _http_view(vs, what) if mode == "http" else None,
        "policies": _policies_view(vs, mode, routes, what),
        "backend": backend,
    }
    return frontend, files


def _distributor_views(vs: VsSpec, scaleout: ScaleOutSpec) -> tuple[View, View]:
    """The primary's L4 frontend on the VIPs and its backend of peer workers (PROXY protocol v2)."""
    what = f"virtual service {vs.name!r}"
    offset = scaleout.worker_port_offset
    for listener in vs.listeners:
        _listener_ports(listener, what, offset)  # every worker port must exist
    check_port = vs.listeners[0].port + offset
    ids = server_numeric_ids([peer.se_uuid for peer in scaleout.peers])
    servers = []
    for peer in scaleout.peers:
        address = _ip(peer.address, f"{what}: scale-out peer {peer.se_uuid!r} address")
        servers.append(
            {
                "name": peer_server_name(peer.se_uuid),
                "server_id": peer.se_uuid,
                # `+offset`: the destination port the client used plus the offset, so one server line
                # serves every listener and port range.
                "address": _address(address, f"{offset:+d}"),
                "id": ids[peer.se_uuid],
                "weight": 1,
                "state": "drain" if peer.state is PeerState.DRAIN else "ready",
                "backup": False,
                "cookie": None,
                "check": True,
                "check_port": check_port,  # a port offset has no port of its own to check
                "check_addr": None,
                "send_proxy": True,
            }
        )
    names = [s["name"] for s in servers]
    if len(set(names)) != len(names):
        raise RenderError(f"{what}: scale-out peers are not unique")
    peers_backend = distributor_backend_name(vs.uuid)
    # A distributor relays bytes: a connection is idle there while the client thinks and while the
    # server does, so both of its timeouts are the longer of the VS's client and server timeouts.
    idle = [t for t in (vs.timeout_client_ms, vs.timeout_server_ms) if t is not None]
    tunnel_ms = _timeout(None if not idle else (0 if 0 in idle else max(idle)), f"{what}: timeouts")
    frontend = {
        "kind": "distributor",
        "name": distributor_frontend_name(vs.uuid),
        "vs_uuid": vs.uuid,
        "description": display_text(f"distributor of virtual service {vs.name} ({vs.uuid})"),
        "mode": "tcp",
        "binds": [_bind(address) for address, _ in _vip_addresses(vs, what)],
        "log": None,  # the worker that serves the connection logs it
        # The distributor sees the client's own address: it refuses other sources at accept.
        **_limits_view(vs, "connection", what),
        "timeout_client_ms": tunnel_ms,
        "inspect_delay_ms": None,
        "http": None,
        "policies": None,
        "backend": peers_backend,
    }
    backend = {
        "kind": "distributor",
        "name": peers_backend,
        "vs_uuid": vs.uuid,
        "pool_uuid": None,
        "description": display_text(f"scale-out peers of virtual service {vs.name} ({vs.uuid})"),
        "mode": "tcp",
        "timeout_connect_ms": None,
        "timeout_server_ms": tunnel_ms,
        "balance": "roundrobin",
        "hash_type": None,
        "http_reuse": None,
        "cookie": None,
        "stick": None,
        "check": {
            "protocol": "tcp",
            "chained": False,
            "steps": [],
            "inter_s": PEER_CHECK_INTERVAL_S,
            "fall": PEER_CHECK_FALL,
            "rise": PEER_CHECK_RISE,
            "timeout_s": PEER_CHECK_INTERVAL_S,
            "port": check_port,
            "check_ssl": False,
            "verify_none": False,
        },
        "dynamic_servers": True,
        "servers": servers,
    }
    return frontend, backend


def build_view(config: SeConfig, paths: RuntimePaths, tuning: Tuning | None = None) -> View:
    """The complete view of `config`: global settings, frontends, backends and files to write.

    The view holds private keys (in `files`); do not log it.
    """
    tuning = tuning or Tuning()
    frontends: list[View] = []
    backends: list[View] = []
    files: list[View] = []
    for vs in config.virtualservices:
        if not vs.enabled or vs.app_type is AppType.DNS or not vs.vips or not vs.listeners:
            continue
        mode = "http" if vs.app_type is AppType.HTTP else "tcp"
        any_ipv6 = any(_ip(v, f"virtual service {vs.name!r}: VIP").version == 6 for v in vs.vips)
        backend = None
        if vs.pool is not None:
            backend = _backend_view(vs, vs.pool, mode, any_ipv6, tuning)
            backends.append(backend)
        routes = {vs.pool.uuid: backend["name"]} if vs.pool is not None and backend else {}
        for extra in vs.extra_pools:
            if extra.uuid in routes:
                raise RenderError(f"virtual service {vs.name!r}: pool {extra.name!r} is listed twice")
            extra_backend = _backend_view(
                vs, extra, mode, any_ipv6, tuning, pool_backend_name(vs.uuid, extra.uuid)
            )
            backends.append(extra_backend)
            routes[extra.uuid] = extra_backend["name"]
        if vs.role is VsRole.STANDBY:
            continue  # warm and health-checked, ready to take the VIP over
        if vs.role is VsRole.SECONDARY and vs.scaleout is None:
            raise RenderError(f"virtual service {vs.name!r}: a SECONDARY needs a scaleout spec")
        pool_backend = backend["name"] if backend else None
        frontend, vs_files = _frontend_view(vs, mode, pool_backend, routes, paths, config.analytics)
        frontends.append(frontend)
        files.extend(vs_files)
        if vs.role is VsRole.PRIMARY and vs.scaleout is not None:
            distributor_frontend, distributor_backend = _distributor_views(vs, vs.scaleout)
            frontends.append(distributor_frontend)
            backends.append(distributor_backend)
    names = [p["name"] for p in frontends] + [p["name"] for p in backends]
    if len(set(names)) != len(names):
        raise RenderError("virtual service uuids are not unique")
    return {
        "se_uuid": display_text(config.se_uuid),
        "version": config.version,
        "process": {
            "admin_socket": str(paths.admin_socket),
            "state_file": str(paths.state_file),
            "hard_stop_after_s": tuning.hard_stop_after_s,
        },
        "defaults": {
            "connect_timeout_ms": tuning.connect_timeout_ms,
            "client_timeout_ms": tuning.client_timeout_ms,
            "server_timeout_ms": tuning.server_timeout_ms,
        },
        "frontends": frontends,
        "backends": backends,
        "files": files,
    }
