"""Injectable clock so that expiry and throttling logic is tested without sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


def usec(clock: Clock) -> int:
    return int(clock.now() * 1_000_000)
