"""The store: every table and every query. Only this package talks to the database.

`Store(path)` opens a store for writing and brings its schema up to date;
`Store(path, readonly=True)` opens it for reading and never migrates or takes the
write lock. Each aggregate has its own module and is an attribute of the store.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

from digest.store import migrate
from digest.store.articles import Articles, Change
from digest.store.bounces import Bounces
from digest.store.db import Database, StoreError, is_url, translated
from digest.store.editions import Editions
from digest.store.ledger import Ledger
from digest.store.limits import RateBuckets
from digest.store.retention import Retention
from digest.store.signups import Signups
from digest.store.subscribers import SubscriberChange, Subscribers

__all__ = ["Change", "Store", "StoreError", "SubscriberChange", "store_exists", "upgrade_store"]


class Store:
    """One database: its articles, editions, subscribers and delivery ledger."""

    def __init__(self, target: str | Path, *, readonly: bool = False) -> None:
        self.db = Database(target, readonly=readonly)
        try:
            with translated(self.db):
                if readonly:
                    migrate.require_current(self.db)
                else:
                    _make_folder(self.db)
                    migrate.upgrade(self.db)
        except BaseException:
            self.db.close()
            raise
        self.articles = Articles(self.db)
        self.editions = Editions(self.db)
        self.subscribers = Subscribers(self.db)
        self.ledger = Ledger(self.db)
        self.rates = RateBuckets(self.db)
        self.retention = Retention(self.db)
        self.signups = Signups(self.db)
        self.bounces = Bounces(self.db)

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the store's connections."""
        self.db.close()


def store_exists(target: str | Path) -> bool:
    """Tell whether there is a store to read at target, without creating one.

    A SQLite store is its file; a database server's is its schema, which the first
    command that writes makes. A server that cannot be reached is a StoreError.
    """
    if not is_url(target):
        return Path(target).exists()
    db = Database(target, readonly=True)
    try:
        with translated(db):
            return migrate.status(db).kind != "empty"
    finally:
        db.close()


def upgrade_store(target: str | Path) -> tuple[str, str]:
    """Bring the store at target up to date; return where its schema was and now is."""
    db = Database(target)
    try:
        with translated(db):
            found = migrate.status(db)
            before = {
                "empty": "none (a new store)",
                "legacy": f"the earlier release's version {found.legacy_version}",
            }.get(found.kind, found.revision or "?")
            _make_folder(db)
            migrate.upgrade(db)
            return before, migrate.head_revision()
    finally:
        db.close()


def _make_folder(db: Database) -> None:
    """Create the folder of a SQLite store, or raise a StoreError naming it."""
    if db.path is None:
        return
    try:
        db.path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(
            f"{db.path.parent}: cannot create the store's folder: {err.strerror or err}",
            hint="set DIGEST_DB to a file in a folder this user may write",
        ) from err
    # The store holds subscriber addresses: readable by its owner only. SQLite gives its
    # -wal and -shm files the database file's mode, so creating it 0600 covers them too.
    with contextlib.suppress(FileExistsError, OSError):
        os.close(os.open(db.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
