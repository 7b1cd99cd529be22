"""Token buckets per client: `rate` requests per minute with a burst of the same size."""
from __future__ import annotations

import math
import threading
import time


class RateLimiter:
    def __init__(self, per_minute: int, clock=time.monotonic, max_keys: int = 10_000):
        self.rate = per_minute / 60.0            # tokens per second
        self.burst = float(per_minute)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}   # key -> (tokens, last time)
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> int:
        """0 if allowed, else the seconds to wait before the next try."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return 0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self.max_keys:
                self._forget_full(now)
            return max(1, math.ceil((cost - tokens) / self.rate))

    def peek(self, key: str) -> int:
        """Like take(key, 0) but says whether one more would be refused."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            return 0 if tokens >= 1 else max(1, math.ceil((1 - tokens) / self.rate))

    def _forget_full(self, now: float) -> None:
        # a bucket that refilled completely says nothing: drop it so the table stays bounded
        full = [k for k, (t, last) in self._buckets.items() if t + (now - last) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
