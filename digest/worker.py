"""`digest send --worker`: a long-lived sender, one of any number on any machines.

It sends whatever the ledger has due (every edition, oldest first, through the same
claims as `digest send`), then waits: for a notice that rows became due (PostgreSQL's
LISTEN/NOTIFY), for the next deferred row's time, or for DIGEST_WORKER_POLL, whichever
comes first. A database or SMTP server that is away is waited out, not fatal: the
worker logs it, waits, reconnects and goes on. SIGTERM finishes the messages in flight.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from digest.clock import Clock, utc_now
from digest.config import Settings
from digest.errors import DeliveryError
from digest.models import SendReport
from digest.send import drain, require_secret
from digest.sender import TransportFactory
from digest.store import Store, StoreError
from digest.store.notify import Waiter

logger = logging.getLogger(__name__)

# How long to wait after the database or the SMTP server failed before trying again.
RETRY_AFTER = 2.0


@dataclass
class WorkerTotals:
    """What one worker did over its life."""

    sent: int = 0
    failed: int = 0
    passes: int = 0
    outages: int = 0


def work(
    settings: Settings,
    *,
    stop: threading.Event,
    clock: Clock = utc_now,
    transport: TransportFactory | None = None,
    retry_delay: float = 1.0,
    on_report: Callable[[SendReport], None] | None = None,
) -> WorkerTotals:
    """Send due rows until stop is set; return what was done."""
    require_secret(settings)
    totals = WorkerTotals()
    store: Store | None = None
    waiter: Waiter | None = None
    try:
        while not stop.is_set():
            wait = settings.worker_poll.total_seconds()
            try:
                if store is None:
                    store = Store(settings.db)
                    waiter = Waiter(store.db)
                reports = drain(
                    settings,
                    store,
                    stop=stop,
                    clock=clock,
                    transport=transport,
                    retry_delay=retry_delay,
                )
                totals.passes += 1
                for report in reports:
                    totals.sent += report.sent_now
                    totals.failed += report.failed_now
                    if on_report is not None:
                        on_report(report)
                wait = min(wait, _until_next_due(store, clock))
            except (StoreError, DeliveryError) as err:
                totals.outages += 1
                logger.warning("%s; trying again in %.0f s", str(err).splitlines()[0], RETRY_AFTER)
                wait = RETRY_AFTER
                if isinstance(err, StoreError) and store is not None:
                    # Connections to a server that went away are dropped, made afresh.
                    store.db.engine.dispose()
            if stop.is_set():
                break
            if waiter is not None:
                waiter.wait(wait, stop)
            else:
                stop.wait(wait)
    finally:
        if waiter is not None:
            waiter.close()
        if store is not None:
            store.close()
    return totals


def _until_next_due(store: Store, clock: Clock) -> float:
    """Return the seconds until the next open row falls due (infinity: none is open)."""
    now = clock()
    waits = [
        max((due.next_attempt_at - now).total_seconds(), 0.0)
        for due in store.ledger.due_editions(now)
        if due.next_attempt_at is not None
    ]
    # Not sooner than a second: rows due now that a pass left (a paused send) wait a bit.
    return max(min(waits, default=float("inf")), 1.0)
