"""Convert, in place, a store the last release made into revision 0001.

That release kept one SQLite file versioned by PRAGMA user_version (1 to 6) with times
as ISO-8601 text and JSON as text; its sends left journals in `<db>-sending/`. The
conversion runs inside digest.store.migrate's write transaction, with foreign keys off:
it finishes the old schema, carries the journals into it, renames the old tables to
legacy_*, builds revision 0001 and copies every row across through SQLAlchemy Core, so
that the new column types convert the values, a batch at a time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, RowMapping, Table

from digest.store import schema
from digest.store.db import StoreError
from digest.store.ledger import INTERRUPTED

logger = logging.getLogger(__name__)

# The last release's schema versions: OLD_MIGRATIONS[i] moves version i to i + 1. Copied
# from that release's store.py, one statement per string (never edited: they shipped).
OLD_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE articles (id TEXT PRIMARY KEY, source TEXT NOT NULL,"
        " position INTEGER NOT NULL DEFAULT 0, title TEXT NOT NULL, url TEXT, published TEXT,"
        " first_seen TEXT NOT NULL, changed_at TEXT NOT NULL, content_hash TEXT NOT NULL,"
        " data TEXT NOT NULL)",
        "CREATE INDEX articles_order ON articles (published, first_seen)",
        "CREATE TABLE editions (id TEXT PRIMARY KEY, edition_date TEXT NOT NULL,"
        " title TEXT NOT NULL, subject TEXT NOT NULL, created TEXT NOT NULL,"
        " item_count INTEGER NOT NULL)",
        "CREATE TABLE edition_items ("
        " edition_id TEXT NOT NULL REFERENCES editions (id) ON DELETE CASCADE,"
        " article_id TEXT NOT NULL REFERENCES articles (id), position INTEGER NOT NULL,"
        " PRIMARY KEY (edition_id, article_id))",
        "CREATE INDEX edition_items_article ON edition_items (article_id)",
    ),
    (
        "ALTER TABLE editions ADD COLUMN due_date TEXT",
        "CREATE UNIQUE INDEX editions_due_date ON editions (due_date) WHERE due_date IS NOT NULL",
    ),
    (
        "ALTER TABLE articles ADD COLUMN canonical_url TEXT",
        "CREATE INDEX articles_canonical_url ON articles (canonical_url)"
        " WHERE canonical_url IS NOT NULL",
        "CREATE TABLE sources (key TEXT PRIMARY KEY, kind TEXT NOT NULL, last_attempt TEXT,"
        " last_success TEXT, http_status INTEGER, item_count INTEGER NOT NULL DEFAULT 0,"
        " last_error TEXT, last_warning TEXT, failing_since TEXT, etag TEXT,"
        " last_modified TEXT)",
        "CREATE TABLE source_files (path TEXT PRIMARY KEY, size INTEGER NOT NULL,"
        " mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, checked_ns INTEGER NOT NULL,"
        " articles INTEGER NOT NULL DEFAULT 0, skipped TEXT NOT NULL DEFAULT '[]')",
    ),
    (
        "ALTER TABLE edition_items ADD COLUMN content_hash TEXT",
        "ALTER TABLE edition_items ADD COLUMN merged_into TEXT",
        "CREATE TABLE edition_highlights ("
        " edition_id TEXT NOT NULL REFERENCES editions (id) ON DELETE CASCADE,"
        " article_id TEXT NOT NULL, text TEXT NOT NULL)",
        "CREATE INDEX edition_highlights_edition ON edition_highlights (edition_id)",
    ),
    (
        "CREATE TABLE subscribers (id INTEGER PRIMARY KEY, email TEXT NOT NULL,"
        " email_key TEXT NOT NULL UNIQUE, name TEXT NOT NULL DEFAULT '',"
        " topics TEXT NOT NULL DEFAULT '', timezone TEXT NOT NULL DEFAULT '',"
        " status TEXT NOT NULL DEFAULT 'active', hard_failures INTEGER NOT NULL DEFAULT 0,"
        " created TEXT NOT NULL, updated TEXT NOT NULL)",
        "CREATE INDEX subscribers_status ON subscribers (status, id)",
        "CREATE TABLE edition_content ("
        " edition_id TEXT PRIMARY KEY REFERENCES editions (id) ON DELETE CASCADE,"
        " subject TEXT NOT NULL, preheader TEXT NOT NULL, html TEXT NOT NULL,"
        " text TEXT NOT NULL, created TEXT NOT NULL)",
        "CREATE TABLE deliveries ("
        " edition_id TEXT NOT NULL REFERENCES editions (id) ON DELETE CASCADE,"
        " subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,"
        " email TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',"
        " status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,"
        " last_error TEXT NOT NULL DEFAULT '', message_id TEXT NOT NULL DEFAULT '',"
        " updated TEXT, PRIMARY KEY (edition_id, subscriber_id))",
        "CREATE INDEX deliveries_open ON deliveries (edition_id)"
        " WHERE status IN ('pending', 'sending')",
    ),
    (
        "ALTER TABLE edition_content ADD COLUMN edition_json TEXT",
        "CREATE TABLE edition_variants ("
        " edition_id TEXT NOT NULL REFERENCES editions (id) ON DELETE CASCADE,"
        " sections TEXT NOT NULL, subject TEXT NOT NULL, preheader TEXT NOT NULL,"
        " html TEXT NOT NULL, text TEXT NOT NULL, created TEXT NOT NULL,"
        " PRIMARY KEY (edition_id, sections))",
    ),
)

LAST_VERSION = len(OLD_MIGRATIONS)
# Written to user_version once converted: the last release refuses a version above its
# own ("newer than this digest understands") instead of writing text into the new columns.
FENCE = LAST_VERSION + 1

BATCH = 1000


# The last release's: hard failures in a row after which a subscriber is bounced.
_BOUNCE_AFTER = 3

# The last release's record_outcomes: an open row takes an outcome newer than its last
# change, so that an outcome both in the store and in a journal counts once.
_RECORD_OUTCOME = (
    "UPDATE deliveries SET status = ?, attempts = attempts + ?, last_error = ?,"
    " message_id = CASE WHEN ? != '' THEN ? ELSE message_id END, updated = ?"
    " WHERE edition_id = ? AND subscriber_id = ? AND status IN ('pending', 'sending')"
    " AND (updated IS NULL OR updated < ?)"
)


def upgrade(
    conn: Connection, path: Path, version: int, build: Callable[[Connection], None]
) -> list[Path]:
    """Convert the legacy store on conn; build makes revision 0001's tables.

    Return the journals carried in, to be removed once the transaction has committed.
    """
    logger.info("%s: converting the store of schema version %d to the new schema", path, version)
    for number in range(version, LAST_VERSION):
        logger.info("%s: migrating the old schema to version %d first", path, number + 1)
        for statement in OLD_MIGRATIONS[number]:
            conn.exec_driver_sql(statement)
    journals = _replay_journals(conn, path)
    # Their names are the new schema's; a renamed table keeps its indexes.
    indexes = conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ).scalars()
    for name in list(indexes):
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    for table in _TABLES:
        conn.exec_driver_sql(f"ALTER TABLE {table.name} RENAME TO legacy_{table.name}")
    build(conn)
    for table in _TABLES:
        count = _copy(conn, path, table)
        logger.info("%s: %d rows of %s copied", path, count, table.name)
    for table in _TABLES:
        conn.exec_driver_sql(f"DROP TABLE legacy_{table.name}")
    return journals


def remove_journals(files: Iterable[Path]) -> None:
    """Remove journals carried into the store, and their folder once it is empty."""
    folders = set()
    for file in files:
        file.unlink(missing_ok=True)
        folders.add(file.parent)
    for folder in folders:
        logger.info("%s: journals carried into the store, removed", folder)
        try:
            folder.rmdir()
        except OSError:
            logger.warning("%s: not empty, left in place", folder)


def _copy(conn: Connection, path: Path, table: Table) -> int:
    """Copy legacy_<table> into table a batch at a time; return how many rows."""
    query, convert = _COPIES[table.name]
    last, count = None, 0
    while True:
        rows = (
            conn.exec_driver_sql(
                f"{query} WHERE o.rowid > ? ORDER BY o.rowid LIMIT ?",
                (-(2**63) if last is None else last, BATCH),
            )
            .mappings()
            .all()
        )
        if not rows:
            return count
        batch: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            try:
                values = convert(row)
            except (ValueError, TypeError) as err:
                raise StoreError(
                    f"{path}: {table.name} row {row['legacy_rowid']} cannot be converted: {err}",
                    hint="fix or delete that row with sqlite3, then run `digest db upgrade`",
                ) from err
            batch.setdefault(tuple(values), []).append(values)
        # Rows leaving out a NULL JSON column go apart: given None, JSON writes 'null'.
        for same in batch.values():
            conn.execute(table.insert(), same)
        count += len(rows)
        last = rows[-1]["legacy_rowid"]


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    when = datetime.fromisoformat(str(value))
    # A feed that gave no offset: the old store kept the time as it came.
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _must_time(value: Any) -> datetime:
    when = _time(value)
    if when is None:
        raise ValueError("a required time is empty")
    return when


def _date(value: Any) -> date | None:
    return date.fromisoformat(str(value)) if value else None


def _article(row: RowMapping) -> dict[str, Any]:
    return {
        **_plain(row, "id", "source", "position", "title", "url", "canonical_url"),
        **_plain(row, "content_hash"),
        "published": _time(row["published"]),
        "first_seen": _must_time(row["first_seen"]),
        "changed_at": _must_time(row["changed_at"]),
        "data": json.loads(row["data"]),
    }


def _source(row: RowMapping) -> dict[str, Any]:
    times = ("last_attempt", "last_success", "failing_since")
    return {
        **_plain(row, "key", "kind", "http_status", "item_count", "last_error"),
        **_plain(row, "last_warning", "etag", "last_modified"),
        **{name: _time(row[name]) for name in times},
    }


def _source_file(row: RowMapping) -> dict[str, Any]:
    return {
        **_plain(row, "path", "size", "mtime_ns", "sha256", "checked_ns", "articles"),
        "skipped": json.loads(row["skipped"]),
    }


def _edition(row: RowMapping) -> dict[str, Any]:
    return {
        **_plain(row, "id", "title", "subject", "item_count"),
        "edition_date": _date(row["edition_date"]),
        "created": _must_time(row["created"]),
        "due_date": _date(row["due_date"]),
    }


def _item(row: RowMapping) -> dict[str, Any]:
    return _plain(row, "edition_id", "article_id", "position", "content_hash", "merged_into")


def _highlight(row: RowMapping) -> dict[str, Any]:
    # The old table had only its rowid: kept as the id, so the order stays.
    return {"id": row["legacy_rowid"], **_plain(row, "edition_id", "article_id", "text")}


def _content(row: RowMapping) -> dict[str, Any]:
    values = {
        **_plain(row, "edition_id", "subject", "preheader", "html", "text"),
        "created": _must_time(row["created"]),
    }
    if row["edition_json"] is not None:
        values["edition"] = json.loads(row["edition_json"])
    return values


def _variant(row: RowMapping) -> dict[str, Any]:
    return {
        **_plain(row, "edition_id", "sections", "subject", "preheader", "html", "text"),
        "created": _must_time(row["created"]),
    }


def _subscriber(row: RowMapping) -> dict[str, Any]:
    return {
        **_plain(row, "id", "email", "email_key", "name", "topics", "timezone", "status"),
        "hard_failures": row["hard_failures"],
        "created": _must_time(row["created"]),
        "updated": _must_time(row["updated"]),
    }


def _delivery(row: RowMapping) -> dict[str, Any]:
    updated = _time(row["updated"])
    values = {
        **_plain(row, "edition_id", "subscriber_id", "email", "name", "status", "attempts"),
        **_plain(row, "last_error", "message_id"),
        # The old ledger had no creation time: its last change, else its edition's.
        "created": updated or _time(row["edition_created"]) or datetime.now(UTC),
        "updated": updated,
    }
    if values["status"] == "sending":
        # No leases before: a row left in sending belongs to a dead process.
        values.update(status="pending", last_error=INTERRUPTED)
    return values


def _plain(row: RowMapping, *names: str) -> dict[str, Any]:
    return {name: row[name] for name in names}


_TABLES: tuple[Table, ...] = (
    schema.articles,
    schema.sources,
    schema.source_files,
    schema.editions,
    schema.edition_items,
    schema.edition_highlights,
    schema.edition_content,
    schema.edition_variants,
    schema.subscribers,
    schema.deliveries,
)

_SELECT = "SELECT o.rowid AS legacy_rowid, o.* FROM legacy_{} o"

_COPIES: dict[str, tuple[str, Callable[[RowMapping], dict[str, Any]]]] = {
    "articles": (_SELECT.format("articles"), _article),
    "sources": (_SELECT.format("sources"), _source),
    "source_files": (_SELECT.format("source_files"), _source_file),
    "editions": (_SELECT.format("editions"), _edition),
    "edition_items": (_SELECT.format("edition_items"), _item),
    "edition_highlights": (_SELECT.format("edition_highlights"), _highlight),
    "edition_content": (_SELECT.format("edition_content"), _content),
    "edition_variants": (_SELECT.format("edition_variants"), _variant),
    "subscribers": (_SELECT.format("subscribers"), _subscriber),
    "deliveries": (
        "SELECT o.rowid AS legacy_rowid, o.*, e.created AS edition_created"
        " FROM legacy_deliveries o LEFT JOIN legacy_editions e ON e.id = o.edition_id",
        _delivery,
    ),
}


# The send journals: the last release's journal.py, read just far enough to replay.


@dataclass(frozen=True)
class _Outcome:
    edition_id: str
    subscriber_id: int
    status: str
    when: str
    message_id: str
    error: str
    tries: int
    hard: bool
    bounce_now: bool


def _replay_journals(conn: Connection, path: Path) -> list[Path]:
    """Carry the journals beside the store into the old ledger; return the files read."""
    folder = path.with_name(path.name + "-sending")
    files = sorted(folder.glob("*.log")) if folder.is_dir() else []
    if not files:
        return []
    # Started and not (yet) finished, in the order started.
    in_flight: dict[tuple[str, int], None] = {}
    finished: list[_Outcome] = []
    for file in files:
        for key, done in _records(file):
            if done is None:
                in_flight[key] = None
            else:
                in_flight.pop(key, None)
                finished.append(done)
    logger.info(
        "%s: carrying %d outcomes and %d unfinished messages from %d journals into the store",
        folder,
        len(finished),
        len(in_flight),
        len(files),
    )
    for done in finished:
        _record(conn, done)
    now = datetime.now(UTC).isoformat()
    for edition_id, subscriber_id in in_flight:
        conn.exec_driver_sql(
            "UPDATE deliveries SET updated = ?, last_error = ?, attempts = attempts + 1"
            " WHERE edition_id = ? AND subscriber_id = ? AND status = 'pending'",
            (now, INTERRUPTED, edition_id, subscriber_id),
        )
    return files


def _record(conn: Connection, done: _Outcome) -> None:
    """Record one outcome as the last release's record_outcomes did."""
    row = (done.status, done.tries, done.error, done.message_id, done.message_id, done.when)
    key = (done.edition_id, done.subscriber_id)
    if not conn.exec_driver_sql(_RECORD_OUTCOME, (*row, *key, done.when)).rowcount:
        return
    if not done.hard:
        return
    failures = conn.exec_driver_sql(
        "UPDATE subscribers SET hard_failures = hard_failures + 1 WHERE id = ?"
        " RETURNING hard_failures",
        (done.subscriber_id,),
    ).scalar()
    if done.bounce_now or (failures is not None and failures >= _BOUNCE_AFTER):
        conn.exec_driver_sql(
            "UPDATE subscribers SET status = 'bounced', updated = ? WHERE id = ?"
            " AND status = 'active'",
            (done.when, done.subscriber_id),
        )
        conn.exec_driver_sql(
            "UPDATE deliveries SET status = 'bounced' WHERE edition_id = ? AND subscriber_id = ?",
            key,
        )


def _records(path: Path) -> Iterator[tuple[tuple[str, int], _Outcome | None]]:
    """Yield ((edition, subscriber), outcome or None for a start) from one journal."""
    # A K record has no time: it is dated when its journal was last written.
    written = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            try:
                kind, edition_id, subscriber, *rest = line.rstrip("\n").split("\t")
                key = (edition_id, int(subscriber))
                if kind == "S" and not rest:
                    yield key, None
                elif kind == "K" and len(rest) == 2:
                    msg_id, tries = rest
                    yield key, _Outcome(*key, "sent", written, msg_id, "", int(tries), False, False)
                elif kind == "D" and len(rest) == 7:
                    status, when, msg_id, tries, hard, bounce, error = rest
                    if status not in ("pending", "sent", "failed", "bounced"):
                        raise ValueError(f"unknown status {status!r}")
                    # Normalised as the old code did (parsed, then written with isoformat).
                    stamp = datetime.fromisoformat(when).isoformat()
                    text = str(json.loads(error))
                    yield (
                        key,
                        _Outcome(
                            *key,
                            status,
                            stamp,
                            msg_id,
                            text,
                            int(tries),
                            hard == "1",
                            bounce == "1",
                        ),
                    )
                else:
                    raise ValueError(f"unknown record {kind!r} of {len(rest) + 3} fields")
            except ValueError as err:
                # Only a cut-off last line is expected (a full disk, a power cut).
                logger.warning("%s, line %d: unreadable record skipped: %s", path, number, err)
