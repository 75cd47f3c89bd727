"""Controller settings, loaded once from flags and environment and passed down explicitly."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_LISTEN = "127.0.0.1:9080"


@dataclass(frozen=True)
class ControllerSettings:
    data_dir: Path = Path(".fulcrum")
    db_url: str | None = None  # default: SQLite in the data dir
    listen_host: str = "127.0.0.1"
    listen_port: int = 9080
    admin_password: str | None = None
    secret_key: str | None = None
    reserved_networks: tuple[str, ...] = ()
    argon2_memory_kib: int = 65536
    token_ttl_s: int = 8 * 3600
    login_window_s: float = 60.0
    max_failures_per_user: int = 5
    max_failures_per_source: int = 20
    # The data-plane reconciler creates Service Engines; functional API tests run without it.
    dataplane: bool = True
    # Health manager: failover stops when more than this share of the SEs go silent at once.
    ha_breaker_share: float = 0.5
    # Scale-in and migration wait at most this long for connections on the drained SE.
    drain_timeout_s: float = 60.0
    # Analytics: "STEP:RETENTION" pairs in seconds, finest first; request logs kept (newest first).
    analytics_resolutions: str = "5:3600,300:86400,3600:2592000"
    analytics_max_log_rows: int = 200_000
    # What SEs measure: report interval, share of unremarkable requests logged, slow-request threshold.
    analytics_interval_s: float = 5.0
    log_sample_percent: float = 1.0
    slow_request_ms: int = 1000
    # OpenStack Keystone: X-Auth-Token is validated there when the URL is set (e.g.
    # http://127.0.0.1:5000/v3); the service user needs the `service` role (or admin) to validate tokens.
    keystone_url: str | None = None
    keystone_user: str | None = None
    keystone_password: str | None = field(default=None, repr=False)
    keystone_project: str = "service"
    keystone_domain: str = "Default"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: object) -> ControllerSettings:
        """Environment first (FULCRUM_*), then explicit overrides from command-line flags."""
        env = os.environ
        values: dict[str, object] = {
            "data_dir": Path(env.get("FULCRUM_DATA_DIR", ".fulcrum")),
            "db_url": env.get("FULCRUM_DB_URL") or None,
            "admin_password": env.get("FULCRUM_ADMIN_PASSWORD") or None,
            "secret_key": env.get("FULCRUM_SECRET_KEY") or None,
            "reserved_networks": tuple(
                n.strip() for n in env.get("FULCRUM_RESERVED_NETWORKS", "").split(",") if n.strip()
            ),
        }
        if env.get("FULCRUM_DATAPLANE"):
            values["dataplane"] = env["FULCRUM_DATAPLANE"].lower() not in ("0", "false", "no", "off")
        for key, name, kind in (
            ("ha_breaker_share", "FULCRUM_HA_BREAKER_SHARE", float),
            ("drain_timeout_s", "FULCRUM_DRAIN_TIMEOUT_S", float),
            ("analytics_resolutions", "FULCRUM_ANALYTICS_RESOLUTIONS", str),
            ("analytics_max_log_rows", "FULCRUM_ANALYTICS_MAX_LOG_ROWS", int),
            ("analytics_interval_s", "FULCRUM_ANALYTICS_INTERVAL_S", float),
            ("log_sample_percent", "FULCRUM_LOG_SAMPLE_PERCENT", float),
            ("slow_request_ms", "FULCRUM_SLOW_REQUEST_MS", int),
            ("keystone_url", "FULCRUM_KEYSTONE_URL", str),
            ("keystone_user", "FULCRUM_KEYSTONE_USER", str),
            ("keystone_password", "FULCRUM_KEYSTONE_PASSWORD", str),
            ("keystone_project", "FULCRUM_KEYSTONE_PROJECT", str),
            ("keystone_domain", "FULCRUM_KEYSTONE_DOMAIN", str),
        ):
            if env.get(name):
                values[key] = kind(env[name])
        if env.get("FULCRUM_ARGON2_MEMORY_KIB"):
            values["argon2_memory_kib"] = int(env["FULCRUM_ARGON2_MEMORY_KIB"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `[v6]:PORT` or `:PORT` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen must be HOST:PORT, got {value!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def advertised_url(settings: ControllerSettings) -> str:
    """The URL Service Engines on this host use to reach the controller."""
    host = settings.listen_host
    if host in ("0.0.0.0", "", "::"):  # noqa: S104 - mapping a wildcard listen address, not binding one
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.listen_port}"


def parse_resolutions(text: str) -> list[tuple[int, int]]:
    """`5:3600,300:86400` -> [(5, 3600), (300, 86400)]: (step, retention) in seconds, finest first."""
    pairs = []
    for item in text.split(","):
        step, sep, retention = item.strip().partition(":")
        if not sep or not step.isdigit() or not retention.isdigit() or int(step) < 1:
            raise ValueError(f"FULCRUM_ANALYTICS_RESOLUTIONS: {item!r} is not STEP:RETENTION in seconds")
        pairs.append((int(step), int(retention)))
    for (a, _), (b, _) in itertools.pairwise(pairs):
        if b % a:
            raise ValueError(
                "FULCRUM_ANALYTICS_RESOLUTIONS: each step must be a multiple of the previous one"
            )
    return pairs
