"""The controller's side of the SE protocol: registration, credentials, desired configs, heartbeats.

Desired configurations are kept in memory (the reconciler recomputes them from the store after a
restart). Versions are derived from the clock so that they keep growing across controller restarts:
an SE that applied version N before a restart receives the recomputed config with a larger version,
sees that nothing changed, and acknowledges it without touching HAProxy.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fulcrum.controller.services.clock import Clock
from fulcrum.controller.services.errors import InvalidInput, NotFound, Unauthenticated
from fulcrum.controller.services.objects import ObjectService
from fulcrum.controller.store import repo
from fulcrum.protocol import se as wire
from fulcrum.protocol import signing

BOOTSTRAP_TTL_S = 3600.0


@dataclass
class SeRuntime:
    se_uuid: str
    registered: bool = False
    first_seen: float | None = None
    last_heartbeat: float | None = None
    applied_version: int = 0
    last_error: str | None = None
    failed_version: int = 0
    desired: wire.SeConfig | None = None
    heartbeat: wire.Heartbeat | None = None
    events: list[str] = field(default_factory=list)


class SeRegistry:
    def __init__(self, objects: ObjectService, clock: Clock) -> None:
        self._objects = objects
        self._clock = clock
        self._lock = threading.Lock()
        self._runtime: dict[str, SeRuntime] = {}
        self._credentials: dict[str, str] = {}
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._last_version = 0
        self._closing = False
        self.on_ack: list[Callable[[], None]] = []  # called after every acknowledgement

    # --- state ------------------------------------------------------------------------------------

    def runtime(self, se_uuid: str) -> SeRuntime:
        with self._lock:
            return self._runtime.setdefault(se_uuid, SeRuntime(se_uuid))

    def forget(self, se_uuid: str) -> None:
        with self._lock:
            self._runtime.pop(se_uuid, None)
            self._credentials.pop(se_uuid, None)

    def _secrets(self, se_uuid: str) -> dict[str, Any]:
        with self._objects.db.read() as conn:
            obj = repo.get(conn, se_uuid)
        if obj is None or obj.type != "serviceengine":
            raise NotFound(f"no service engine {se_uuid}")
        return self._objects.box.open(obj.secrets)

    def _store_secrets(self, se_uuid: str, values: dict[str, Any]) -> None:
        with self._objects.db.write() as conn:
            repo.set_secrets(conn, se_uuid, self._objects.box.seal(values))

    # --- registration -----------------------------------------------------------------------------

    def issue_bootstrap(self, se_uuid: str) -> str:
        token = secrets.token_urlsafe(32)
        self._store_secrets(
            se_uuid,
            {
                "bootstrap_token_sha256": hashlib.sha256(token.encode()).hexdigest(),
                "bootstrap_expires": self._clock.now() + BOOTSTRAP_TTL_S,
            },
        )
        return token

    def register(self, request: wire.RegisterRequest) -> wire.RegisterResponse:
        if request.protocol_version != wire.PROTOCOL_VERSION:
            raise InvalidInput(f"protocol version {request.protocol_version} is not supported")
        try:
            stored = self._secrets(request.se_uuid)
        except NotFound:
            raise Unauthenticated("unknown SE or bootstrap token") from None
        expected = stored.get("bootstrap_token_sha256")
        given = hashlib.sha256(request.bootstrap_token.encode()).hexdigest()
        if not expected or not hmac.compare_digest(expected, given):
            raise Unauthenticated("unknown SE or bootstrap token")
        if stored.get("bootstrap_expires", 0) < self._clock.now():
            raise Unauthenticated("the bootstrap token has expired")
        credential = secrets.token_urlsafe(32)
        # The token is spent: only the credential works from now on.
        self._store_secrets(request.se_uuid, {"credential": credential})
        with self._lock:
            self._credentials[request.se_uuid] = credential
            state = self._runtime.setdefault(request.se_uuid, SeRuntime(request.se_uuid))
            state.registered = True
            state.first_seen = state.first_seen or self._clock.now()
            interval = state.desired.heartbeat_interval_s if state.desired else 1.0
        return wire.RegisterResponse(
            se_uuid=request.se_uuid, credential=credential, heartbeat_interval_s=interval
        )

    def authenticate(self, headers: dict[str, str], method: str, path: str, body: bytes) -> str:
        se_uuid = headers.get(signing.SE_HEADER.lower(), "")
        timestamp = headers.get(signing.TIMESTAMP_HEADER.lower(), "")
        given = headers.get(signing.SIGNATURE_HEADER.lower(), "")
        if not se_uuid or not given:
            raise Unauthenticated("unsigned SE request")
        with self._lock:
            credential = self._credentials.get(se_uuid)
        if credential is None:
            try:
                credential = self._secrets(se_uuid).get("credential")
            except NotFound:
                credential = None
            if credential is None:
                raise Unauthenticated("unknown SE")
            with self._lock:
                self._credentials[se_uuid] = credential
        problem = signing.verify(credential, method, path, timestamp, body, given, self._clock.now())
        if problem is not None:
            raise Unauthenticated(f"SE request rejected: {problem}")
        return se_uuid

    # --- desired configuration --------------------------------------------------------------------

    def _next_version(self) -> int:
        self._last_version = max(self._last_version + 1, int(self._clock.now() * 1000))
        return self._last_version

    def publish(self, se_uuid: str, config: wire.SeConfig) -> bool:
        """Make `config` the SE's desired config; returns True when it differs from the last one."""
        with self._lock:
            state = self._runtime.setdefault(se_uuid, SeRuntime(se_uuid))
            if state.desired is not None and state.desired.model_copy(
                update={"version": 0}
            ) == config.model_copy(update={"version": 0}):
                return False
            state.desired = config.model_copy(update={"version": self._next_version()})
            waiters = self._waiters.pop(se_uuid, [])
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)
        return True

    async def wait_config(self, se_uuid: str, known_version: int, timeout: float) -> wire.SeConfig | None:
        """The desired config once it is newer than `known_version`, or None after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._lock:
            state = self._runtime.setdefault(se_uuid, SeRuntime(se_uuid))
            if state.desired is not None and state.desired.version > known_version:
                return state.desired
            if self._closing:
                return None
            self._waiters.setdefault(se_uuid, []).append((loop, event))
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            with self._lock:
                waiting = self._waiters.get(se_uuid, [])
                if (loop, event) in waiting:
                    waiting.remove((loop, event))
            return None
        with self._lock:
            newer = state.desired is not None and state.desired.version > known_version
            return state.desired if newer else None

    def release_waiters(self) -> None:
        """Answer every long-poll now (nothing new): the controller is shutting down."""
        with self._lock:
            self._closing = True
            waiters = [w for group in self._waiters.values() for w in group]
            self._waiters.clear()
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def ack(self, se_uuid: str, ack: wire.Ack) -> None:
        with self._lock:
            state = self._runtime.setdefault(se_uuid, SeRuntime(se_uuid))
            if ack.status == wire.AckStatus.APPLIED:
                state.applied_version = max(state.applied_version, ack.version)
                state.last_error = None
            else:
                # The SE keeps serving its previous config; the reconciler turns this into an event.
                state.last_error = ack.error or "unknown error"
                state.failed_version = max(state.failed_version, ack.version)
        for listener in self.on_ack:
            listener()

    def heartbeat(self, se_uuid: str, beat: wire.Heartbeat) -> wire.HeartbeatResponse:
        with self._lock:
            state = self._runtime.setdefault(se_uuid, SeRuntime(se_uuid))
            state.registered = True
            state.last_heartbeat = self._clock.now()
            state.first_seen = state.first_seen or state.last_heartbeat
            state.heartbeat = beat
            if state.applied_version == 0 or beat.applied_version > state.applied_version:
                state.applied_version = beat.applied_version
            desired = state.desired.version if state.desired else 0
        return wire.HeartbeatResponse(desired_version=desired)

    def snapshot(self) -> dict[str, SeRuntime]:
        with self._lock:
            return {k: SeRuntime(**vars(v)) for k, v in self._runtime.items()}
