"""Sign-in rate limit: repeated failed sign-ins for one user name or from one client address are refused for a while.

Each failure is remembered for ``window_s``; once a user name has ``per_user`` failures (or an address
``per_address``) in the window, further attempts for it are refused without checking the secret until the
oldest failure leaves the window; ``retry_after`` says how many seconds that is (the 429's Retry-After).
A success does not erase earlier failures, so guessing between one's own good sign-ins gains nothing.
Counts live in memory: a restart forgets them, and several studio replicas count separately.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

WINDOW_SECONDS = 15 * 60
FAILURES_PER_USER = 5
FAILURES_PER_ADDRESS = 20
MAX_TRACKED = 100_000  # keys remembered at once; the oldest are forgotten first


class SignInLimiter:
    """Sliding-window failure counts per key ("user:<name>", "address:<ip>")."""

    def __init__(
        self,
        *,
        window_s: float = WINDOW_SECONDS,
        per_user: int = FAILURES_PER_USER,
        per_address: int = FAILURES_PER_ADDRESS,
        clock=time.monotonic,
    ):
        self.window_s, self.per_user, self.per_address = window_s, per_user, per_address
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _limit(self, key: str) -> int:
        return self.per_user if key.startswith("user:") else self.per_address

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def retry_after(self, *keys: str) -> int:
        """Seconds until every key may try again (0 = allowed now)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                failures = self._recent(key, now)
                limit = self._limit(key)
                if len(failures) >= limit:
                    wait = max(wait, failures[len(failures) - limit] + self.window_s - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                self._recent(key, now)
                if key not in self._failures and len(self._failures) >= MAX_TRACKED:
                    del self._failures[next(iter(self._failures))]
                self._failures.setdefault(key, deque()).append(now)
