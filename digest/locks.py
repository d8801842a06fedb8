"""Singletons: one scheduler, one run at a time, per store.

On SQLite, flock files beside the database; on PostgreSQL, advisory locks in the
database itself (digest.store.advisory), so that they hold across machines. Both die
with their holder, so a crashed scheduler never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol

from digest.errors import DigestError


class LockHeld(DigestError):
    """Another process holds the lock."""


class LockError(DigestError):
    """The lock file cannot be made, written or read (a read-only or full disk)."""


def _failed(path: Path, doing: str, err: OSError) -> LockError:
    return LockError(
        f"{path}: cannot {doing} the lock file: {err.strerror or err}",
        hint="the run and scheduler locks live beside DIGEST_DB: its folder must be"
        " writable by this user, on a disk with free space",
    )


class Lock(Protocol):
    """What a singleton's lock offers, whichever database holds it."""

    def acquire(self, timeout: float = 0.0) -> bool:
        """Take the lock, waiting up to timeout seconds; return whether it was taken."""

    def release(self) -> None:
        """Give the lock up."""

    def holder(self) -> dict[str, object] | None:
        """Return who holds the lock (pid, host, since), or None when nobody does."""


class FileLock:
    """An exclusive flock on a file that records who holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, timeout: float = 0.0) -> bool:
        """Take the lock, waiting up to timeout seconds; return whether it was taken."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise _failed(self.path, "open", err) from err
        try:
            taken = self._take(fd, timeout)
        except OSError as err:
            os.close(fd)
            raise _failed(self.path, "write", err) from err
        if not taken:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _take(self, fd: int, timeout: float) -> bool:
        """Flock fd within timeout and record this process in it; False if not taken."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
        except OSError:
            fcntl.flock(fd, fcntl.LOCK_UN)
            raise
        return True

    def release(self) -> None:
        """Give the lock up."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def holder(self) -> dict[str, object] | None:
        """Return who holds the lock (pid, host, since), or None when nobody does."""
        if self._fd is not None:
            return json.loads(self.path.read_text() or "{}")  # type: ignore[no-any-return]
        if not self.path.exists():
            return None
        try:
            return self._read_holder()
        except OSError as err:
            raise _failed(self.path, "read", err) from err

    def _read_holder(self) -> dict[str, object] | None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = self.path.read_text()
                try:
                    data = json.loads(text) if text else {}
                except json.JSONDecodeError:
                    data = {}
                return data if isinstance(data, dict) else {}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _lock(db: Path | str, name: str) -> Lock:
    if isinstance(db, str):
        from digest.store.advisory import AdvisoryLock

        return AdvisoryLock(db, name)
    return FileLock(db.with_name(f"{db.name}.{name}.lock"))


def scheduler_lock(db: Path | str) -> Lock:
    """Return the lock that lets one scheduler at a time use the store at db."""
    return _lock(db, "scheduler")


def run_lock(db: Path | str) -> Lock:
    """Return the lock that serialises runs of the pipeline on the store at db."""
    return _lock(db, "run")
