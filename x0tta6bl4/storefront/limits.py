"""Per-user rate limits and per-order cooldowns, with an injectable clock."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["Cooldown", "RateLimiter"]

Clock = Callable[[], float]


class RateLimiter:
    """A token bucket per key: ``burst`` at once, then ``per_min`` per minute.

    Only the ``max_keys`` most recently seen keys are remembered, so a flood
    of new users cannot grow memory without bound.
    """

    def __init__(
        self,
        per_min: float,
        burst: int,
        *,
        clock: Clock = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.rate_per_s = per_min / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def allow(self, key: Hashable) -> bool:
        """Spend one token of ``key``'s bucket; False when it is empty."""
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate_per_s)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed


class Cooldown:
    """At most one action per key every ``interval_s`` seconds."""

    def __init__(self, interval_s: float, *, clock: Clock = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[Hashable, float] = {}

    def wait_s(self, key: Hashable) -> float:
        """Seconds until ``key`` may act again; 0 when it may act now."""
        last = self._last.get(key)
        return 0.0 if last is None else max(0.0, last + self.interval_s - self.clock())

    def take(self, key: Hashable) -> float:
        """Start ``key``'s cooldown if it is free and return 0, else the seconds left."""
        wait = self.wait_s(key)
        if wait == 0.0:
            self._last[key] = self.clock()
            if len(self._last) > 100_000:
                cutoff = self.clock() - self.interval_s
                self._last = {k: v for k, v in self._last.items() if v > cutoff}
        return wait
