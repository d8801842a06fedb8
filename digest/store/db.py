"""The connection to the store: engines, transactions and what differs by dialect.

SQLite is the embedded default (a file path); a `postgresql://` URL selects PostgreSQL
through psycopg 3, imported only then. What differs by dialect lives here: how a write
transaction begins, the upsert construct, and what an error of the server means.
A read never takes the write lock; a write is one transaction that, on SQLite, takes the
lock up front (BEGIN IMMEDIATE) so that two writers queue instead of failing on upgrade.
A read-only Database opens the file with mode=ro, so that a reader works on a store it
may not write (a read-only file, folder or disk). What the disk or the server does to a
block (a damaged file, no space, no permission, a lost connection) leaves it as a
StoreError naming the store; a broken constraint stays the driver's error, a bug's.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import URL, Connection, Engine, Table, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DBAPIError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.pool import ConnectionPoolEntry

from digest.errors import DigestError

logger = logging.getLogger(__name__)

# How long a writer waits for another one to commit before giving up.
BUSY_TIMEOUT_MS = 30_000
# How long connecting to a database server may take.
CONNECT_TIMEOUT_S = 10


class StoreError(DigestError):
    """The database cannot be opened, or its schema is not the one this program knows."""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def is_url(target: str | Path) -> bool:
    """Tell whether target names a database server rather than a SQLite file."""
    return not isinstance(target, Path) and "://" in str(target)


def describe(target: str | Path) -> str:
    """Return how to name the store in a message (a URL's password masked)."""
    text = str(target)
    if is_url(target):
        try:
            return make_url(text).render_as_string(hide_password=True)
        except ArgumentError:
            # Not even a URL: show the scheme and host part only, never what may be a
            # password after the first colon.
            scheme, _, rest = text.partition("://")
            return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else text
    return text


# The schemes DIGEST_DB takes for PostgreSQL, and the driver they all mean.
_PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def server_url(target: str) -> URL:
    """Return the SQLAlchemy URL of a PostgreSQL DIGEST_DB, or raise a StoreError.

    Only psycopg 3 is supported, so `postgresql://` and `postgres://` mean it; the
    driver is imported here, the first time such a URL is used.
    """
    shown = describe(target)
    try:
        url = make_url(target)
    except ArgumentError as err:
        raise StoreError(
            f"DIGEST_DB={shown}: not a database URL",
            hint="write it as postgresql://user:password@host:5432/name, or a file path",
        ) from err
    if url.drivername not in _PG_SCHEMES:
        raise StoreError(
            f"DIGEST_DB={shown}: unsupported database {url.drivername!r}",
            hint="DIGEST_DB is a SQLite file path or a postgresql://user:password@host/name URL",
        )
    if not url.database:
        raise StoreError(
            f"DIGEST_DB={shown}: names no database",
            hint="end the URL with the database's name: postgresql://user@host:5432/name",
        )
    try:
        import psycopg  # noqa: F401
    except ImportError as err:
        raise StoreError(
            f"DIGEST_DB={shown}: PostgreSQL needs the psycopg driver, which is not installed",
            hint="pip install 'digest[postgres]'",
        ) from err
    return url.set(drivername="postgresql+psycopg")


def sqlite_url(path: Path) -> str:
    """Return the SQLAlchemy URL of the SQLite file at path."""
    return f"sqlite+pysqlite:///{path}"


def sqlite_readonly_url(path: Path) -> URL:
    """Return the URL that opens the SQLite file at path for reading only.

    A WAL store's reader needs the -shm file beside it, and makes it when it is missing.
    Where it is missing and cannot be made (the folder is not writable), immutable=1
    reads the file as it stands, without that file or any lock: no writer has the store
    open then (it would have made the -shm file), and the commands that read are short.
    """
    query = {"mode": "ro", "uri": "true"}
    shm = path.with_name(path.name + "-shm")
    if not shm.exists() and not os.access(path.absolute().parent, os.W_OK):
        query["immutable"] = "1"
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size:
            logger.warning(
                "%s: holds changes this reader cannot see, because %s is not writable",
                wal,
                path.absolute().parent,
            )
    # A URI path is percent-encoded: a ? or # in a folder name must not start the query.
    database = "file:" + quote(str(path.absolute()), safe="/")
    return URL.create("sqlite+pysqlite", database=database, query=query)


class Database:
    """One store's engine; connections come from its pool, one per block."""

    def __init__(self, target: str | Path, *, readonly: bool = False) -> None:
        self.name = describe(target)
        self.path: Path | None = None
        self.readonly = readonly
        if not is_url(target):
            self.path = Path(target)
            url = sqlite_readonly_url(self.path) if readonly else sqlite_url(self.path)
            self.engine: Engine = create_engine(url, json_serializer=_json)
        else:
            self.engine = create_engine(
                server_url(str(target)),
                json_serializer=_json,
                # A server restarted under a long-lived sender: the next block reconnects.
                pool_pre_ping=True,
                connect_args={
                    "connect_timeout": CONNECT_TIMEOUT_S,
                    "application_name": "digest",
                },
            )
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            connect = _sqlite_connect_readonly if readonly else _sqlite_connect
            event.listen(self.engine, "connect", connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        elif readonly:
            event.listen(self.engine, "connect", _pg_connect_readonly)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Yield a connection for reading; whatever it began is rolled back at the end."""
        with failures_of_the_disk(self), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Run the block in one write transaction, committed at its end."""
        with failures_of_the_disk(self), self.engine.connect() as conn:
            conn.execution_options(digest_write=True)
            with conn.begin():
                yield conn

    def connect(self) -> Connection:
        """Return a connection the caller keeps (a sender's, for its whole run)."""
        with failures_of_the_disk(self):
            return self.engine.connect()

    def insert(self, table: Table) -> Any:
        """Return the dialect's INSERT for table, which has on_conflict_do_* upserts."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def reset_keys(self, conn: Connection, table: Table) -> None:
        """After rows were inserted with their keys given, let new rows' keys follow.

        SQLite takes the next rowid from the largest one; PostgreSQL's sequence must be
        moved past what was copied.
        """
        if self.dialect != "postgresql":
            return
        for column in table.primary_key.columns:
            if column.autoincrement is True:
                largest = select(func.max(column)).scalar_subquery()
                sequence = func.pg_get_serial_sequence(table.name, column.name)
                conn.execute(select(func.setval(sequence, func.coalesce(largest, 0) + 1, False)))

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


# What to do about an SQLite error, by the start of its code's name.
_HINTS = (
    (
        ("SQLITE_CORRUPT", "SQLITE_NOTADB"),
        "the file is damaged or not a digest store: restore DIGEST_DB from a backup"
        " (`sqlite3 FILE .recover` may save what is left)",
    ),
    (
        ("SQLITE_READONLY",),
        "this command writes: DIGEST_DB, and the folder it is in, must be writable by"
        " this user (status, deliveries, sources, archive, subscribers list and export"
        " only read)",
    ),
    (
        ("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH"),
        "check that DIGEST_DB's folder exists and that this user may read it, and to write,"
        " create files in it",
    ),
    (("SQLITE_FULL",), "free some space on the disk that holds DIGEST_DB"),
    (
        ("SQLITE_IOERR",),
        "a read or write of DIGEST_DB failed: check the disk's space, permissions and health",
    ),
    (
        ("SQLITE_BUSY", "SQLITE_LOCKED"),
        "another process held the store for too long: try again once it is done",
    ),
)
_DEFAULT_HINT = "check DIGEST_DB points to a digest database"
_SERVER_HINT = (
    "check DIGEST_DB: the server's host and port, that it is running and reachable,"
    " the user, password and database name"
)


def _hint(orig: BaseException) -> str:
    """Return what to do about a driver error, by its SQLite code where it has one."""
    if type(orig).__module__.startswith("psycopg"):
        return _SERVER_HINT
    name = getattr(orig, "sqlite_errorname", "") or ""
    return next((hint for codes, hint in _HINTS if name.startswith(codes)), _DEFAULT_HINT)


def _message(db: Database, orig: BaseException) -> str:
    """Return the one line that names the store and what went wrong with it."""
    # A server's message runs over several lines (a DETAIL, a HINT): one line here.
    said = " ".join(str(orig).split())
    if db.path is None:
        return f"DIGEST_DB={db.name}: {said}"
    return f"{db.name}: {said}"


@contextmanager
def translated(db: Database) -> Iterator[None]:
    """Turn a driver error into a StoreError that names the store."""
    try:
        yield
    except SQLAlchemyError as err:
        orig = getattr(err, "orig", None) or err
        raise StoreError(_message(db, orig), hint=_hint(orig)) from err
    except sqlite3.Error as err:
        # A statement run on the driver connection raises the driver's own errors.
        raise StoreError(_message(db, err), hint=_hint(err)) from err


def _of_the_disk(err: BaseException) -> bool:
    """Tell whether err is the store's surroundings failing rather than a bug."""
    # A damaged file is a bare DatabaseError; IntegrityError and its siblings are not.
    if isinstance(err, OperationalError | InterfaceError | sqlite3.OperationalError):
        return True
    return type(err) in (DatabaseError, sqlite3.DatabaseError)


def is_unreachable(err: BaseException) -> bool:
    """Tell whether err (or the error it was raised from) is a database server that could
    not be reached or dropped the connection: worth trying again in a moment, unlike a
    full disk or a bug."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, OperationalError | InterfaceError):
            return type(getattr(seen, "orig", None)).__module__.startswith("psycopg")
        seen = seen.__cause__
    return False


@contextmanager
def failures_of_the_disk(db: Database) -> Iterator[None]:
    """Turn a damaged, full, read-only or unreachable store into a StoreError naming it."""
    try:
        yield
    except (SQLAlchemyError, sqlite3.Error) as err:
        if not _of_the_disk(err):
            raise
        orig = getattr(err, "orig", None) or err
        raise StoreError(_message(db, orig), hint=_hint(orig)) from err


def _pg_connect_readonly(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # A reader never writes, as on SQLite: the server refuses it if it tries.
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cursor.close()
    dbapi_connection.commit()


def _sqlite_connect_readonly(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # As _sqlite_connect, without setting the journal mode: that writes the file, and a
    # writer has set it already.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    # Transactions are begun by the "begin" listener, not by the driver's guesswork.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # First, so that everything after it waits for another connection instead of failing.
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # WAL: readers never wait for a writer. NORMAL: a commit is safe from a killed
    # process; a power cut may lose the last commits, never the file.
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Put the file in WAL mode unless it is already (it stays so once set)."""
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    # Switching takes an exclusive lock, and SQLite answers "locked" at once rather than
    # waiting through the busy timeout when another connection is opening the same new
    # file: try again for a while.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _sqlite_begin(conn: Connection) -> None:
    # Straight to the driver: this runs once per transaction, and a sender commits once
    # per message.
    mode = "BEGIN IMMEDIATE" if conn.get_execution_options().get("digest_write") else "BEGIN"
    conn.connection.driver_connection.execute(mode)  # type: ignore[union-attr]
