"""Waking senders: PostgreSQL's LISTEN/NOTIFY, with polling as the fall-back.

Whatever makes rows due (an edition's rows added, a stopped sender's rows put back)
notifies the channel in its own transaction, so the notice arrives at commit. A worker
waits on the channel with a timeout: on SQLite, or while the server is away, the timeout
alone paces it, and nothing is lost either way, since a notice only says "look now".
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from sqlalchemy import Connection, text

from digest.store.db import Database

logger = logging.getLogger(__name__)

CHANNEL = "digest_due"
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
# How often a wait looks at its stop event, and how soon it listens again after failing.
_SLICE = 0.5
_RELISTEN_AFTER = 5.0


def notify(conn: Connection, payload: str) -> None:
    """Tell the waiting workers, at conn's commit, that rows of payload are due."""
    if conn.dialect.name == "postgresql":
        conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})


class Waiter:
    """Waits for a notice on the channel, or for the timeout, whichever comes first."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._raw: Any = None
        self._broken_until = 0.0

    def _listen(self) -> Any:
        if self._raw is None:
            raw = self.db.engine.raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            driver.autocommit = True
            driver.execute(f"LISTEN {CHANNEL}")
            self._raw = raw
        return self._raw.driver_connection

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Return True when woken by a notice, False when the timeout passed or stop was
        set; stop is looked at every half second."""
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._notified(min(left, _SLICE)):
                return True
        return False

    def _notified(self, timeout: float) -> bool:
        if self.db.dialect != "postgresql" or self._broken_until > time.monotonic():
            time.sleep(timeout)
            return False
        try:
            driver = self._listen()
            return any(True for _ in driver.notifies(timeout=timeout, stop_after=1))
        except Exception as err:  # the server away: poll until it is back
            logger.info("cannot listen for due rows (%s); polling", " ".join(str(err).split()))
            self.close()
            # Not a reconnect every half second while the server is down.
            self._broken_until = time.monotonic() + _RELISTEN_AFTER
            time.sleep(timeout)
            return False

    def close(self) -> None:
        """Stop listening."""
        if self._raw is not None:
            # A dead connection is closed anyway.
            with contextlib.suppress(Exception):
                self._raw.invalidate()
            self._raw = None
