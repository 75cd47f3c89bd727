"""Wires the services together from settings: one place that knows every constructor."""

from __future__ import annotations

from dataclasses import dataclass

from fulcrum.cloud.base import CloudConnector
from fulcrum.cloud.local.connector import LocalCloud
from fulcrum.controller.services.auth import AuthService, AuthSettings
from fulcrum.controller.services.bootstrap import BootstrapResult, bootstrap
from fulcrum.controller.services.clock import Clock, SystemClock
from fulcrum.controller.services.crypto import Passwords, SecretBox
from fulcrum.controller.services.dataplane import DataPlane, DataPlaneSettings
from fulcrum.controller.services.events import EventLog
from fulcrum.controller.services.objects import ObjectService, ServiceSettings
from fulcrum.controller.services.se_registry import SeRegistry
from fulcrum.controller.services.throttle import LoginThrottle, ThrottleSettings
from fulcrum.controller.settings import ControllerSettings, advertised_url
from fulcrum.controller.store.db import Database, create_store_engine, sqlite_url
from fulcrum.controller.store.repo import StoredObject
from fulcrum.model.enums import CloudType


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

    def start(self) -> None:
        if self.settings.dataplane:
            self.dataplane.start()

    def close(self) -> None:
        self.dataplane.stop()
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
        ),
    )
    return Services(settings, db, objects, auth, events, clock, started, registry, dataplane)
