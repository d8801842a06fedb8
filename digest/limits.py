"""SMTP_RATE and SMTP_DOMAIN_RATE over every sender together, from the database's buckets.

Each sending process takes tokens in chunks of about a second's worth and spends them
on its own, so the database is asked once per chunk, not once per message; what a
process holds when it stops is at most one chunk per bucket, a second of sending.
RateLimiter, the pacing within one process, is what they build on.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from digest.store import Store

ALL = "all"


class RateLimiter:
    """At most `per_minute` acquisitions a minute, spread evenly, shared by all threads.

    clock and sleep are the monotonic clock and its sleep; a test passes its own pair.
    """

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def wait(self, stop: threading.Event | None = None) -> None:
        """Block until the next message may go."""
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        delay = slot - self._clock()
        if delay > 0:
            if stop is not None:
                stop.wait(delay)
            else:
                self._sleep(delay)


def _chunk(per_minute: int) -> int:
    # About a second's worth: the bucket holds as much, so a burst lasts a second.
    return max(1, math.ceil(per_minute / 60))


class _Bucket:
    """This process's share of one database bucket."""

    def __init__(self, store: Store, key: str, per_minute: int) -> None:
        self.store = store
        self.key = key
        self.per_minute = per_minute
        self.chunk = _chunk(per_minute)
        self.have = 0
        self.lock = threading.Lock()

    def wait(self, stop: threading.Event | None) -> None:
        with self.lock:
            while self.have < 1:
                taken = self.store.rates.take(self.key, self.per_minute, self.chunk, self.chunk)
                if taken.tokens:
                    self.have += taken.tokens
                    break
                if stop is not None:
                    if stop.wait(taken.wait):
                        return
                else:
                    time.sleep(taken.wait)
            self.have -= 1


class SharedRate(RateLimiter):
    """At most per_minute messages a minute over every sender on the store."""

    def __init__(self, store: Store, per_minute: int) -> None:
        super().__init__(0)
        self._bucket = _Bucket(store, ALL, per_minute)

    def wait(self, stop: threading.Event | None = None) -> None:
        """Block until the next message may go."""
        self._bucket.wait(stop)


class DomainRates:
    """At most per_minute messages a minute to each receiving domain, over every sender."""

    def __init__(self, store: Store, per_minute: int) -> None:
        self.store = store
        self.per_minute = per_minute
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def wait(self, address: str, stop: threading.Event | None = None) -> None:
        """Block until the next message to address's domain may go."""
        if self.per_minute <= 0:
            return
        domain = address.rpartition("@")[2].lower()
        with self._lock:
            bucket = self._buckets.get(domain)
            if bucket is None:
                bucket = _Bucket(self.store, f"domain:{domain}", self.per_minute)
                self._buckets[domain] = bucket
        bucket.wait(stop)


def overall(store: Store, per_minute: int) -> RateLimiter:
    """Return SMTP_RATE's limiter: shared through the store, or none at 0."""
    return SharedRate(store, per_minute) if per_minute > 0 else RateLimiter(0)
