"""The store: every table and every query. Only this package talks to the database.

`Store(path)` opens a store for writing and brings its schema up to date;
`Store(path, readonly=True)` opens it for reading and never migrates or takes the
write lock. Each aggregate has its own module and is an attribute of the store.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from digest.store import migrate
from digest.store.articles import Articles, Change
from digest.store.db import Database, StoreError, translated
from digest.store.editions import Editions
from digest.store.ledger import Ledger
from digest.store.retention import Retention
from digest.store.subscribers import SubscriberChange, Subscribers

__all__ = ["Change", "Store", "StoreError", "SubscriberChange", "upgrade_store"]


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
        self.retention = Retention(self.db)

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
