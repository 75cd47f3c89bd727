"""Wires the services together from settings: one place that knows every constructor."""

from __future__ import annotations

from dataclasses import dataclass

from fulcrum.cloud.base import CloudConnector
from fulcrum.cloud.local.connector import LocalCloud
from fulcrum.controller.services.alert_actions import deliver
from fulcrum.controller.services.alerts import AlertEngine
from fulcrum.controller.services.analytics import Analytics
from fulcrum.controller.services.auth import AuthService, AuthSettings
from fulcrum.controller.services.bootstrap import BootstrapResult, bootstrap
from fulcrum.controller.services.clock import Clock, SystemClock
from fulcrum.controller.services.crypto import Passwords, SecretBox
from fulcrum.controller.services.dataplane import DataPlane, DataPlaneSettings
from fulcrum.controller.services.events import EventLog
from fulcrum.controller.services.healthscore import HealthScorer
from fulcrum.controller.services.keystone import KeystoneAuth, KeystoneSettings, KeystoneValidator
from fulcrum.controller.services.objects import ObjectService, ServiceSettings
from fulcrum.controller.services.se_registry import SeRegistry
from fulcrum.controller.services.throttle import LoginThrottle, ThrottleSettings
from fulcrum.controller.settings import ControllerSettings, advertised_url, parse_resolutions
from fulcrum.controller.store.db import Database, create_store_engine, sqlite_url
from fulcrum.controller.store.repo import StoredObject
from fulcrum.controller.store.tsdb import MetricStore, Resolution
from fulcrum.model.enums import CloudType
from fulcrum.protocol import metrics as catalog
from fulcrum.protocol.se import AnalyticsSettings


@dataclass
class Services:
    settings: ControllerSettings
    db: Database
    objects: ObjectService
    auth: AuthService
    events: EventLog
    clock: Clock
    started: BootstrapResult
    registry: SeRegistry
    dataplane: DataPlane
    analytics: Analytics
    health: HealthScorer
    alerts: AlertEngine
    # Set when Keystone tokens are accepted (FULCRUM_KEYSTONE_URL).
    keystone: KeystoneAuth | None = None

    def start(self) -> None:
        if self.settings.dataplane:
            self.dataplane.start()
        self.analytics.start()
        self.alerts.start()

    def close(self) -> None:
        self.dataplane.stop()
        self.alerts.stop()
        self.analytics.stop()
        self.db.dispose()


def build_services(settings: ControllerSettings, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(create_store_engine(settings.db_url or sqlite_url(settings.data_dir)))
    db.migrate()
    events = EventLog(clock)
    objects = ObjectService(
        db,
        SecretBox.from_data_dir(settings.data_dir, settings.secret_key),
        Passwords(memory_kib=settings.argon2_memory_kib),
        events,
        clock,
        ServiceSettings(reserved_networks=settings.reserved_networks),
    )
    keystone = keystone_auth(settings, objects)  # before anything starts: a misconfiguration stops here
    throttle = LoginThrottle(
        clock,
        ThrottleSettings(
            window_s=settings.login_window_s,
            max_failures_per_user=settings.max_failures_per_user,
            max_failures_per_source=settings.max_failures_per_source,
        ),
    )
    auth = AuthService(objects, events, throttle, clock, AuthSettings(token_ttl_s=settings.token_ttl_s))
    started = bootstrap(objects, settings.data_dir, settings.admin_password)
    registry = SeRegistry(objects, clock)
    local = LocalCloud(settings.data_dir)

    def connector_for(cloud: StoredObject) -> CloudConnector | None:
        # netns and OpenStack connectors arrive with their issues; until then only the local cloud runs SEs.
        return local if cloud.data.get("vtype") == CloudType.CLOUD_LOCAL else None

    dataplane = DataPlane(
        objects,
        registry,
        events,
        connector_for,
        clock,
        DataPlaneSettings(
            controller_url=advertised_url(settings),
            drain_timeout_s=settings.drain_timeout_s,
            breaker_share=settings.ha_breaker_share,
            analytics=AnalyticsSettings(
                interval_s=settings.analytics_interval_s,
                log_sample_percent=settings.log_sample_percent,
                slow_request_ms=settings.slow_request_ms,
            ),
        ),
    )
    store = MetricStore(
        settings.data_dir / "analytics.db",
        catalog.rollup,
        [Resolution(step, keep) for step, keep in parse_resolutions(settings.analytics_resolutions)],
        max_log_rows=settings.analytics_max_log_rows,
    )
    analytics = Analytics(objects, store, clock)
    dataplane.on_placements.append(analytics.invalidate_scopes)
    health = HealthScorer(objects, store, dataplane, analytics, clock, apdex_t_ms=settings.slow_request_ms)
    alerts = AlertEngine(objects, store, clock, deliver)
    events.listeners.append(alerts.on_event)
    return Services(
        settings, db, objects, auth, events, clock, started, registry, dataplane, analytics, health, alerts,
        keystone,
    )  # fmt: skip


def keystone_auth(settings: ControllerSettings, objects: ObjectService) -> KeystoneAuth | None:
    if not settings.keystone_url:
        return None
    if not settings.keystone_user or not settings.keystone_password:
        raise ValueError(
            "FULCRUM_KEYSTONE_USER and FULCRUM_KEYSTONE_PASSWORD are needed when FULCRUM_KEYSTONE_URL is set"
        )
    validator = KeystoneValidator(
        KeystoneSettings(
            auth_url=settings.keystone_url,
            username=settings.keystone_user,
            password=settings.keystone_password,
            project_name=settings.keystone_project,
            domain_name=settings.keystone_domain,
        )
    )
    return KeystoneAuth(objects, validator)
