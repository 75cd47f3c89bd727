"""Brute-force protection: failed logins are counted per user and per source address."""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from dataclasses import dataclass

from fulcrum.controller.services.clock import Clock
from fulcrum.controller.services.errors import RateLimited


@dataclass(frozen=True)
class ThrottleSettings:
    window_s: float = 60.0
    max_failures_per_user: int = 5
    max_failures_per_source: int = 20


class LoginThrottle:
    MAX_KEYS = 50_000

    def __init__(self, clock: Clock, settings: ThrottleSettings | None = None) -> None:
        self._clock = clock
        self._settings = settings or ThrottleSettings()
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        stamps = self._failures[key]
        while stamps and stamps[0] <= now - self._settings.window_s:
            stamps.popleft()
        return stamps

    def check(self, user: str, source: str) -> None:
        """Raise RateLimited while either the user or the source is over its failure budget."""
        now = self._clock.now()
        limits = (
            (f"user:{user}", self._settings.max_failures_per_user),
            (f"source:{source}", self._settings.max_failures_per_source),
        )
        with self._lock:
            for key, limit in limits:
                stamps = self._recent(key, now)
                if len(stamps) >= limit:
                    retry = math.ceil(stamps[0] + self._settings.window_s - now)
                    raise RateLimited("too many failed logins; try again later", max(retry, 1))

    def failure(self, user: str, source: str) -> None:
        now = self._clock.now()
        with self._lock:
            for key in (f"user:{user}", f"source:{source}"):
                self._recent(key, now).append(now)
            if len(self._failures) > self.MAX_KEYS:
                # Guessed user names must not grow memory without bound: forget the quiet ones.
                for key in [k for k in self._failures if not self._recent(k, now)]:
                    del self._failures[key]

    def success(self, user: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{user}", None)
