"""Schema migrations: Alembic, configured here, on the store's own connection.

Every command that writes calls `upgrade`, so a store is brought up to date the first
time a new release writes to it; one that only reads calls `require_current`, which
never writes. The revisions live in digest/store/migrations, inside the package, so that
an installed wheel carries them. A store the last release made (SQLite, versioned by
PRAGMA user_version, no alembic_version table) is converted by digest.store.legacy.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine.interfaces import DBAPIConnection

from digest.store import legacy
from digest.store.db import Database, StoreError

if TYPE_CHECKING:
    # Imported where used: alembic takes longer to import than `digest --help` to run.
    from alembic.config import Config
    from alembic.script import ScriptDirectory

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().with_name("migrations")

# The revision a converted legacy store is built at before it goes on to head.
FIRST_REVISION = "0001"

# PostgreSQL: the advisory lock two processes upgrading at once queue on.
_PG_LOCK_KEY = 0x6469676573740001

# Alembic's default, where it records the revision.
_VERSION_TABLE = "alembic_version"

_UPGRADE_HINT = "run `digest db upgrade`"
_NEWER_HINT = "upgrade digest"

Kind = Literal["empty", "legacy", "behind", "current", "newer"]


@dataclass(frozen=True)
class Status:
    """Where a store's schema stands against this program's revisions."""

    kind: Kind
    # The Alembic revision recorded in the store, if any.
    revision: str | None = None
    # A legacy store's PRAGMA user_version.
    legacy_version: int = 0


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _script() -> ScriptDirectory:
    # The revisions ship with the program and never change while it runs; reading them
    # costs milliseconds, which every open of the store (a web request) would pay.
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """Return the newest revision this program knows."""
    head = _script().get_current_head()
    if head is None:
        raise RuntimeError(f"{MIGRATIONS}: no revisions")
    return head


def current_revision(db: Database) -> str | None:
    """Return the revision the store is at; None for a legacy, empty or missing one."""
    if _missing(db):
        return None
    with db.read() as conn:
        return _recorded_revision(conn)


def status(db: Database) -> Status:
    """Return where the store's schema stands, without changing it."""
    if _missing(db):
        return Status("empty")
    with db.read() as conn:
        return _status(conn, db)


def upgrade(db: Database) -> None:
    """Bring the store's schema to head, converting a legacy store first.

    A store already at head is only read: the write lock is taken, and the status
    read again under it, only when there is something to do, so that of two processes
    opening a new store at once one migrates and the other finds it done.
    """
    if status(db).kind == "current":
        return
    replayed: list[Path] = []
    with _migrating(db) as conn:
        found = _status(conn, db)
        if found.kind == "current":
            return
        if found.kind == "newer":
            raise _newer(db, found)
        if found.kind == "legacy":
            assert db.path is not None
            replayed = legacy.upgrade(
                conn, db.path, found.legacy_version, lambda c: _run(c, FIRST_REVISION)
            )
        elif found.kind == "empty":
            logger.info("%s: creating the schema", db.name)
        else:
            logger.info("%s: migrating the schema from revision %s", db.name, found.revision)
        _run(conn, "head")
        if db.dialect == "sqlite":
            # Older releases refuse a user_version above theirs rather than misread it.
            conn.exec_driver_sql(f"PRAGMA user_version = {legacy.FENCE}")
            _check_foreign_keys(conn, db)
    # Only once the store holds what they said.
    legacy.remove_journals(replayed)


def require_current(db: Database) -> None:
    """Refuse a store whose schema is not head; never write or take the write lock."""
    found = status(db)
    if found.kind == "current":
        return
    if found.kind == "empty":
        raise StoreError(f"{db.name}: no store here yet", hint="`digest run` makes one")
    if found.kind == "newer":
        raise _newer(db, found)
    if found.kind == "legacy":
        what = f"schema version {found.legacy_version} of an earlier release"
    else:
        what = f"revision {found.revision}, not {head_revision()}"
    raise StoreError(f"{db.name}: the store's schema is out of date ({what})", hint=_UPGRADE_HINT)


def _missing(db: Database) -> bool:
    # Connecting would create the file; an empty one is no store either.
    return db.path is not None and (not db.path.exists() or db.path.stat().st_size == 0)


def _recorded_revision(conn: Connection) -> str | None:
    # Read directly: a MigrationContext costs more and logs at INFO on every open.
    if not inspect(conn).has_table(_VERSION_TABLE):
        return None
    revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if revision is None else str(revision)


def _status(conn: Connection, db: Database) -> Status:
    revision = _recorded_revision(conn)
    if revision is not None:
        if revision == head_revision():
            return Status("current", revision)
        from alembic.util.exc import CommandError

        script = _script()
        try:
            known = script.get_revision(revision) is not None
        except CommandError:
            known = False
        return Status("behind" if known else "newer", revision)
    if conn.dialect.name == "sqlite":
        version = int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())
        if 1 <= version <= legacy.LAST_VERSION:
            return Status("legacy", legacy_version=version)
        if version > legacy.LAST_VERSION:
            return Status("newer", legacy_version=version)
    if inspect(conn).get_table_names():
        raise StoreError(
            f"{db.name}: has tables but no digest schema version",
            hint="check DIGEST_DB points to a digest database",
        )
    return Status("empty")


def _newer(db: Database, found: Status) -> StoreError:
    what = found.revision or f"schema version {found.legacy_version}"
    return StoreError(
        f"{db.name}: the store's schema ({what}) is newer than this digest knows "
        f"({head_revision()})",
        hint=_NEWER_HINT,
    )


@contextmanager
def _migrating(db: Database) -> Iterator[Connection]:
    """Yield a connection in one write transaction that serialises migrations."""
    with db.engine.connect() as conn:
        if db.dialect != "sqlite":
            with conn.begin():
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                yield conn
            return
        # Foreign keys off: batch mode and the legacy conversion drop and rename tables,
        # and with them on a DROP deletes (and cascades) like a DELETE. The pragma is a
        # no-op inside a transaction, so it goes to the driver before BEGIN;
        # _check_foreign_keys looks at the result before the commit instead.
        raw = conn.connection.dbapi_connection
        assert raw is not None
        _pragma(raw, "PRAGMA foreign_keys=OFF")
        try:
            conn.execution_options(digest_write=True)
            with conn.begin():
                yield conn
        finally:
            _pragma(raw, "PRAGMA foreign_keys=ON")


def _pragma(raw: DBAPIConnection, statement: str) -> None:
    cursor = raw.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


def _run(conn: Connection, revision: str) -> None:
    """Run the migrations up to revision on conn, inside its transaction."""
    from alembic import command

    command.upgrade(_config(conn), revision)


def _check_foreign_keys(conn: Connection, db: Database) -> None:
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        table, rowid, parent, _ = broken[0]
        raise StoreError(
            f"{db.name}: migration left {len(broken)} rows pointing nowhere "
            f"(first: {table} row {rowid} → {parent}); nothing was changed",
            hint="report this; the store is as it was before",
        )
