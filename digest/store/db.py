"""The connection to the store: engines, transactions and what differs by dialect.

SQLite is the embedded default; the URL form is kept for the databases that come later.
A read never takes the write lock; a write is one transaction that, on SQLite, takes the
lock up front (BEGIN IMMEDIATE) so that two writers queue instead of failing on upgrade.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from digest.errors import DigestError

logger = logging.getLogger(__name__)

# How long a writer waits for another one to commit before giving up.
BUSY_TIMEOUT_MS = 30_000


class StoreError(DigestError):
    """The database cannot be opened, or its schema is not the one this program knows."""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def describe(target: str | Path) -> str:
    """Return how to name the store in a message (a URL's password masked)."""
    text = str(target)
    if "://" in text:
        from sqlalchemy.engine import make_url

        return make_url(text).render_as_string(hide_password=True)
    return text


def sqlite_url(path: Path) -> str:
    """Return the SQLAlchemy URL of the SQLite file at path."""
    return f"sqlite+pysqlite:///{path}"


class Database:
    """One store's engine; connections come from its pool, one per block."""

    def __init__(self, target: str | Path) -> None:
        self.name = describe(target)
        self.path: Path | None = None
        if isinstance(target, Path) or "://" not in str(target):
            self.path = Path(target)
            url = sqlite_url(self.path)
        else:
            url = str(target)
        self.engine: Engine = create_engine(url, json_serializer=_json)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Yield a connection for reading; whatever it began is rolled back at the end."""
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Run the block in one write transaction, committed at its end."""
        with self.engine.connect() as conn:
            conn.execution_options(digest_write=True)
            with conn.begin():
                yield conn

    def connect(self) -> Connection:
        """Return a connection the caller keeps (a sender's, for its whole run)."""
        return self.engine.connect()

    def insert(self, table: Table) -> Any:
        """Return the dialect's INSERT for table, which has on_conflict_do_* upserts."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


@contextmanager
def translated(db: Database) -> Iterator[None]:
    """Turn a driver error into a StoreError that names the store."""
    try:
        yield
    except SQLAlchemyError as err:
        orig = getattr(err, "orig", None) or err
        raise StoreError(
            f"{db.name}: {orig}", hint="check DIGEST_DB points to a digest database"
        ) from err


def _sqlite_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # Transactions are begun by the "begin" listener, not by the driver's guesswork.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL: readers never wait for a writer. NORMAL: a commit is safe from a killed
    # process; a power cut may lose the last commits, never the file.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Straight to the driver: this runs once per transaction, and a sender commits once
    # per message.
    mode = "BEGIN IMMEDIATE" if conn.get_execution_options().get("digest_write") else "BEGIN"
    conn.connection.driver_connection.execute(mode)  # type: ignore[union-attr]
