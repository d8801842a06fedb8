"""SMTP_RATE and SMTP_DOMAIN_RATE hold over several senders together, through the
store's token buckets, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from digest.limits import DomainRates, SharedRate
from digest.store import Store


def _spend(seconds: float, take: object) -> int:
    """Count how many tokens one sender (its own store connection) gets in seconds."""
    taken = 0
    stop = threading.Event()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        take(stop)  # type: ignore[operator]
        taken += 1
    return taken


def test_the_overall_rate_holds_over_two_senders(db_target: str | Path) -> None:
    """Two senders with their own connections share 1,200 a minute: together they get at
    most the bucket's second's worth plus the refill, however fast they ask."""
    per_minute, seconds = 1200, 1.5
    Store(db_target).close()
    counts: list[int] = []

    def sender() -> None:
        with Store(db_target) as store:
            limiter = SharedRate(store, per_minute)
            counts.append(_spend(seconds, limiter.wait))

    threads = [threading.Thread(target=sender) for _ in range(2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    # The full bucket at the start, the refill while they ran, one chunk each in hand.
    assert sum(counts) <= 20 + per_minute / 60 * elapsed + 2 * 20
    assert min(counts) > 0


class _CountingStop(threading.Event):
    """A stop event that counts how often a limiter waited on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


def test_each_domain_has_its_own_rate(db_target: str | Path) -> None:
    """Pace gmail.com without holding up example.org: each domain has its own bucket."""
    with Store(db_target) as store:
        rates = DomainRates(store, 60)
        never = _CountingStop()
        rates.wait("a@gmail.com", never)
        rates.wait("b@example.org", never)
        assert never.waits == 0  # both buckets start full: neither had to wait
        stop = threading.Event()
        timer = threading.Timer(0.3, stop.set)
        timer.start()
        rates.wait("c@GMAIL.com", stop)  # the next gmail.com token is a second away
        assert stop.is_set()
        timer.cancel()
