"""Singletons on PostgreSQL: session advisory locks, which die with their connection.

One scheduler per database and one maker of editions at a time, whichever machine they
run on. The holder names itself in its connection's application_name, which any other
session can read beside the lock in pg_locks, so that `digest status` says who holds it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from datetime import UTC, datetime
from types import TracebackType

from sqlalchemy import Connection, text

from digest.store.db import Database, failures_of_the_disk

# The first half of every digest lock's key ("dige"); the second names the lock.
_NAMESPACE = 0x64696765
KEYS = {"scheduler": 1, "run": 2}

_TRY = text("SELECT pg_try_advisory_lock(:space, :key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:space, :key)")
_NAME = text("SELECT set_config('application_name', :name, false)")
# A two-key advisory lock shows as classid, objid with objsubid 2.
_HOLDER = text(
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :space"
    " AND l.objid = :key AND l.objsubid = 2"
)


class AdvisoryLock:
    """An exclusive lock of one name on the database at url, held by a connection."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self._params = {"space": _NAMESPACE, "key": KEYS[name]}
        self._db: Database | None = None
        self._conn: Connection | None = None

    def acquire(self, timeout: float = 0.0) -> bool:
        """Take the lock, waiting up to timeout seconds; return whether it was taken."""
        db = Database(self.url)
        deadline = time.monotonic() + timeout
        try:
            with failures_of_the_disk(db):
                conn = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                try:
                    while not conn.execute(_TRY, self._params).scalar():
                        if time.monotonic() >= deadline:
                            conn.close()
                            db.close()
                            return False
                        time.sleep(0.05)
                    # application_name keeps 63 bytes: pid, start and host, in short.
                    name = f"digest {os.getpid()} {int(time.time())} {socket.gethostname()}"
                    conn.execute(_NAME, {"name": name[:63]})
                except BaseException:
                    conn.close()
                    raise
        except BaseException:
            db.close()
            raise
        self._db, self._conn = db, conn
        return True

    def release(self) -> None:
        """Give the lock up (closing the connection would too)."""
        if self._conn is not None:
            # Closing the connection releases it too, should the server be gone.
            with contextlib.suppress(Exception):
                self._conn.execute(_UNLOCK, self._params)
            self._conn.close()
            self._conn = None
        if self._db is not None:
            self._db.close()
            self._db = None

    def holder(self) -> dict[str, object] | None:
        """Return who holds the lock (pid, host, since), or None when nobody does."""
        db = Database(self.url, readonly=True)
        try:
            with db.read() as conn:
                name = conn.execute(_HOLDER, self._params).scalar()
        finally:
            db.close()
        if name is None:
            return None
        parts = str(name).split(" ", 3)
        if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit():
            return {}
        since = datetime.fromtimestamp(int(parts[2]), UTC).isoformat(timespec="seconds")
        return {"pid": int(parts[1]), "host": parts[3], "since": since}

    def __enter__(self) -> AdvisoryLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
