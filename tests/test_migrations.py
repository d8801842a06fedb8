"""Schema migrations: a new store is built at head, an old release's store is converted.

The legacy fixture in tests/data/legacy-v6 was written by the last release's own code
(see its make.py); every test works on a copy of it. Rows are read back with plain Core
selects over the schema tables, not through the aggregates.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import JSON, Column, Date, Integer, MetaData, String, Table, select, text

from digest.select import assess
from digest.store import Store, StoreError, db, legacy, migrate, schema
from digest.store.db import Database
from digest.store.ledger import INTERRUPTED as NOTE

FIXTURE = Path(__file__).resolve().parent / "data" / "legacy-v6"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    """Return a copy of the legacy fixture store (without its journals)."""
    target = tmp_path / "digest.db"
    shutil.copyfile(FIXTURE / "digest.db", target)
    return target


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """Return a Database on a path where no store is yet."""
    found = Database(tmp_path / "new.db")
    yield found
    found.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _unwrap(default: str) -> str:
    # PostgreSQL reflects a text default with its cast: 'pending'::character varying.
    default = re.sub(r"::[a-z ]+$", "", default.strip())
    while default.startswith("(") and default.endswith(")"):
        default = default[1:-1].strip()
    if len(default) >= 2 and default[0] == default[-1] == "'":
        default = default[1:-1]
    return default.lower()


def _defaults_differ(
    context: Any,
    inspected_column: Any,
    metadata_column: Any,
    inspected: str | None,
    metadata_default: Any,
    rendered: str | None,
) -> bool:
    """Compare server defaults as SQL text, parentheses and quotes aside.

    Alembic's own SQLite comparison reports every '' default as changed: the reflected
    "('')" loses its parentheses but keeps its quotes.
    """
    if inspected is None or rendered is None:
        return (inspected is None) != (rendered is None)
    return _unwrap(inspected) != _unwrap(rendered)


def _diff(database: Database, target: MetaData) -> list[Any]:
    with database.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": _defaults_differ}
        )
        return list(compare_metadata(context, target))


def test_fresh_store_is_built_to_match_the_schema(database: Database) -> None:
    """Upgrade an empty path: head, fenced against the old release, no difference."""
    assert migrate.current_revision(database) is None
    migrate.upgrade(database)
    assert migrate.current_revision(database) == migrate.head_revision()
    assert _diff(database, schema.metadata) == []
    with database.read() as conn:
        assert conn.exec_driver_sql("PRAGMA user_version").scalar() == legacy.FENCE


def test_comparison_sees_a_difference(database: Database) -> None:
    """Show the comparison above has teeth: an extra column, a changed default."""
    migrate.upgrade(database)
    changed = MetaData()
    for table in schema.metadata.tables.values():
        table.to_metadata(changed)
    Table("sources", changed, Column("extra", Integer), extend_existing=True)
    status = Column("status", String, nullable=False, server_default="gone")
    Table("subscribers", changed, status, extend_existing=True)
    found = _diff(database, changed)
    # A column's changes come as a list of them.
    kinds = [d[0] if isinstance(d, tuple) else [m[0] for m in d] for d in found]
    assert kinds == ["add_column", ["modify_default"]], found


def test_open_at_head_takes_no_write_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Open an up-to-date store, writer and reader, while another process holds the lock.

    With no busy timeout at all, anything that needed the write lock would fail at once
    with "locked": opening succeeds only because it never asks for it.
    """
    path = tmp_path / "digest.db"
    Store(path).close()
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 0)
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    try:
        Store(path).close()
        Store(path, readonly=True).close()
        # The lock is real: a write gives up on it.
        locked = Database(path)
        with pytest.raises(Exception, match="locked"), locked.write():
            pass
        locked.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_readonly_open_of_a_missing_store(tmp_path: Path) -> None:
    """Refuse a path with no store, and make none."""
    path = tmp_path / "nowhere" / "digest.db"
    with pytest.raises(StoreError, match="no store here yet") as caught:
        Store(path, readonly=True)
    assert caught.value.hint == "`digest run` makes one"
    assert str(path) in str(caught.value)
    assert not path.exists()
    assert not path.parent.exists()


def test_readonly_open_of_a_legacy_store(old_store: Path) -> None:
    """Refuse an old release's store with the upgrade hint, and leave it as it was."""
    before = _digest(old_store)
    assert before == _digest(FIXTURE / "digest.db")
    with pytest.raises(StoreError) as caught:
        Store(old_store, readonly=True)
    assert str(old_store) in str(caught.value)
    assert caught.value.hint == "run `digest db upgrade`"
    assert _digest(old_store) == before


def test_a_newer_store_is_refused(database: Database) -> None:
    """Refuse a store at a revision this program does not know, reading or writing."""
    migrate.upgrade(database)
    with database.write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    assert database.path is not None
    for readonly in (True, False):
        with pytest.raises(StoreError, match="newer") as caught:
            Store(database.path, readonly=readonly)
        assert caught.value.hint == "upgrade digest"


def test_old_migrations_copy_the_old_schema(old_store: Path, tmp_path: Path) -> None:
    """Check legacy.OLD_MIGRATIONS builds exactly the schema the old code built."""
    rebuilt = sqlite3.connect(tmp_path / "rebuilt.db", isolation_level=None)
    for step in legacy.OLD_MIGRATIONS:
        for statement in step:
            rebuilt.execute(statement)
    old = sqlite3.connect(old_store, isolation_level=None)

    def shape(conn: sqlite3.Connection) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, kind in conn.execute("SELECT name, type FROM sqlite_master ORDER BY name"):
            if kind == "table":
                found[name] = (
                    conn.execute(f"PRAGMA table_xinfo({name})").fetchall(),
                    conn.execute(f"PRAGMA foreign_key_list({name})").fetchall(),
                )
            else:
                found[name] = conn.execute(f"PRAGMA index_xinfo({name})").fetchall()
        return found

    assert shape(rebuilt) == shape(old)
    rebuilt.close()
    old.close()


def _old_rows(path: Path, table: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    rows = [dict(row) for row in conn.execute(f"SELECT rowid AS legacy_rowid, * FROM {table}")]
    conn.close()
    return rows


def _new_rows(database: Database, table: Table) -> list[dict[str, Any]]:
    with database.read() as conn:
        query = select(table).order_by(*table.primary_key.columns)
        return [dict(row) for row in conn.execute(query).mappings()]


def _aware(value: str) -> datetime:
    when = datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _expected(table: Table, old: dict[str, Any]) -> dict[str, Any]:
    """Return what the new row should hold of the old row, by the new column types."""
    wanted: dict[str, Any] = {}
    for column in table.columns:
        name = "edition_json" if column.name == "edition" else column.name
        if name not in old:
            continue
        value = old[name]
        if value is not None and isinstance(column.type, schema.UtcDateTime):
            value = _aware(value)
        elif value is not None and isinstance(column.type, Date):
            value = date.fromisoformat(value)
        elif value is not None and isinstance(column.type, JSON):
            value = json.loads(value)
        wanted[column.name] = value
    return wanted


def _key(table: Table, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in table.primary_key.columns)


# Tables that revisions after 0001 added: no legacy store has them.
LATER_TABLES = {"rate_buckets", "store_state", "delivery_reports"}


def test_legacy_upgrade_keeps_every_row(old_store: Path) -> None:
    """Convert a copy of the fixture: every row of every table, values converted."""
    # Tables later revisions added are not in the earlier release's store.
    tables = [t for t in schema.metadata.tables.values() if t.name not in LATER_TABLES]
    old = {t.name: _old_rows(old_store, t.name) for t in tables}
    Store(old_store).close()
    database = Database(old_store)
    assert migrate.current_revision(database) == migrate.head_revision()
    assert _new_rows(database, schema.store_state) == []
    for table in tables:
        new = {_key(table, row): row for row in _new_rows(database, table)}
        assert len(new) == len(old[table.name]), table.name
        for before in old[table.name]:
            if table is schema.edition_highlights:
                # Its rows had only a rowid: it is their id now.
                before = {**before, "id": before["legacy_rowid"]}
            wanted = _expected(table, before)
            if table is schema.deliveries and before["status"] == "sending":
                wanted.update(status="pending", last_error=NOTE)
            row = new[_key(table, wanted)]
            assert {k: row[k] for k in wanted} == wanted, (table.name, _key(table, wanted))
            for value in row.values():
                assert not isinstance(value, datetime) or value.tzinfo is not None
    assert _diff(database, schema.metadata) == []

    articles = {row["id"]: row for row in _new_rows(database, schema.articles)}
    assert articles["feed-a-1"]["published"] == datetime(2024, 4, 30, 7, tzinfo=UTC)
    # The feed gave no offset: taken as UTC.
    assert articles["feed-a-2"]["published"] == datetime(2024, 4, 29, 18, 30, tzinfo=UTC)
    assert articles["notes-b-1"]["published"] is None
    assert articles["feed-a-2"]["changed_at"] > articles["feed-a-2"]["first_seen"]
    assert articles["feed-a-1"]["data"]["tags"] == ["science", "weather"]
    # Filled by the migration for selection: when it appeared, its source's name, and
    # whether an edition carried it; its verdict waits for the next run.
    assert articles["feed-a-1"]["appeared"] == articles["feed-a-1"]["published"]
    assert articles["notes-b-1"]["appeared"] == articles["notes-b-1"]["first_seen"]
    assert articles["feed-a-1"]["source_name"] == articles["feed-a-1"]["data"]["source_name"]
    carried = {row["article_id"] for row in _new_rows(database, schema.edition_items)}
    assert carried and set() < {k for k, row in articles.items() if row["carried"]} <= carried
    assert all(row["junk"] is None and row["signature"] is None for row in articles.values())
    editions = _new_rows(database, schema.editions)
    assert [(e["edition_date"], e["due_date"]) for e in editions] == [
        (date(2024, 5, 1), date(2024, 5, 1)),
        (date(2024, 5, 2), None),
    ]
    content = _new_rows(database, schema.edition_content)
    assert content[0]["edition"]["sections"][0]["title"] == "Science"
    files = {row["path"]: row for row in _new_rows(database, schema.source_files)}
    assert files["/srv/notes/may.md"]["skipped"] == [
        ["may.md:40", "no title"],
        ["may.md:52", "empty"],
    ]
    subscribers = _new_rows(database, schema.subscribers)
    assert {s["status"] for s in subscribers} == {"active", "unsubscribed", "bounced"}
    rows = {
        (d["edition_id"], d["subscriber_id"]): d for d in _new_rows(database, schema.deliveries)
    }
    assert {d["status"] for d in rows.values()} == {
        "sent",
        "failed",
        "bounced",
        "skipped",
        "pending",
    }
    interrupted = rows["2024-05-01", 7]
    assert (interrupted["status"], interrupted["last_error"]) == ("pending", NOTE)
    assert interrupted["message_id"] == "<m7@a.example>"
    assert rows["2024-05-02", 1]["last_error"] == "421 try later"
    for row in rows.values():
        assert row["created"] == row["updated"]
        assert (row["deferrals"], row["maybe_sent"], row["claim_token"]) == (0, False, None)
    database.close()


def test_a_converted_store_is_judged_once_by_the_next_run(old_store: Path) -> None:
    """Judge the articles a converted store still holds for editions, once, and keep it."""
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    with Store(old_store) as store:
        # The one article no edition carried: an empty note.
        assert [a.id for a in store.articles.eligible()] == ["notes-b-3"]
        assert store.articles.judge_waiting(assess) == 1
        assert store.articles.judge_waiting(assess) == 0
        assert store.articles.candidates(long_ago) == []
        with store.db.read() as conn:
            verdict = conn.execute(
                select(schema.articles.c.junk, schema.articles.c.junk_reason).where(
                    schema.articles.c.id == "notes-b-3"
                )
            ).one()
        assert tuple(verdict) == (True, "too short to say anything")


def test_legacy_delivery_without_a_time_gets_its_editions(old_store: Path) -> None:
    """Date a ledger row the old store left undated by its edition's creation."""
    with sqlite3.connect(old_store) as conn:
        conn.execute("UPDATE deliveries SET updated = NULL WHERE subscriber_id = 8")
    conn.close()
    database = Database(old_store)
    migrate.upgrade(database)
    rows = {
        (d["edition_id"], d["subscriber_id"]): d for d in _new_rows(database, schema.deliveries)
    }
    editions = {e["id"]: e["created"] for e in _new_rows(database, schema.editions)}
    for edition_id in editions:
        assert rows[edition_id, 8]["created"] == editions[edition_id]
        assert rows[edition_id, 8]["updated"] is None
    database.close()


def test_legacy_journals_are_replayed(old_store: Path) -> None:
    """Carry a dead send's journals into the converted ledger, then remove them."""
    journals = old_store.with_name("digest.db-sending")
    shutil.copytree(FIXTURE / "sending", journals)
    database = Database(old_store)
    migrate.upgrade(database)
    rows = {
        (d["edition_id"], d["subscriber_id"]): d for d in _new_rows(database, schema.deliveries)
    }
    sent = rows["2024-05-02", 2]
    assert (sent["status"], sent["message_id"], sent["attempts"]) == ("sent", "<n2@a.example>", 1)
    failed = rows["2024-05-02", 6]
    assert (failed["status"], failed["last_error"]) == ("failed", "550 no such")
    in_flight = rows["2024-05-02", 8]
    assert (in_flight["status"], in_flight["last_error"], in_flight["attempts"]) == (
        "pending",
        NOTE,
        1,
    )
    # Already final: the journal's late copy changes nothing.
    assert rows["2024-05-01", 1]["message_id"] == "<m1@a.example>"
    assert rows["2024-05-02", 7]["status"] == "pending"
    frank = next(s for s in _new_rows(database, schema.subscribers) if s["id"] == 6)
    assert frank["hard_failures"] == 1
    assert not journals.exists()
    database.close()


def test_failed_conversion_changes_nothing(old_store: Path) -> None:
    """Roll the whole conversion back when one row cannot be converted."""
    journals = old_store.with_name("digest.db-sending")
    shutil.copytree(FIXTURE / "sending", journals)
    with sqlite3.connect(old_store) as conn:
        conn.execute("UPDATE subscribers SET created = 'last Tuesday' WHERE id = 3")
    conn.close()
    before = _old_rows(old_store, "deliveries")
    with pytest.raises(StoreError, match="subscribers row 3"):
        Store(old_store)
    conn = sqlite3.connect(old_store)
    assert conn.execute("PRAGMA user_version").fetchone() == (legacy.LAST_VERSION,)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "alembic_version" not in names
    assert not any(name.startswith("legacy_") for name in names)
    assert _old_rows(old_store, "deliveries") == before
    assert sorted(p.name for p in journals.iterdir()) == sorted(
        p.name for p in (FIXTURE / "sending").iterdir()
    )


def test_older_legacy_versions_are_finished_first(tmp_path: Path) -> None:
    """Convert a version-1 store: the old steps run first, then the conversion."""
    path = tmp_path / "digest.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in legacy.OLD_MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO articles VALUES ('a', 'src', 0, 'T', NULL, NULL,"
        " '2024-01-02T03:04:05+00:00', '2024-01-02T03:04:05+00:00', 'h', '{\"id\": \"a\"}')"
    )
    conn.execute(
        "INSERT INTO editions VALUES ('e', '2024-01-02', 'E', 'S', '2024-01-02T04:00:00+00:00', 1)"
    )
    conn.execute("INSERT INTO edition_items VALUES ('e', 'a', 0)")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    database = Database(path)
    migrate.upgrade(database)
    assert migrate.current_revision(database) == migrate.head_revision()
    (item,) = _new_rows(database, schema.edition_items)
    assert (item["article_id"], item["content_hash"], item["merged_into"]) == ("a", None, None)
    (article,) = _new_rows(database, schema.articles)
    assert article["first_seen"] == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert article["canonical_url"] is None
    assert _diff(database, schema.metadata) == []
    database.close()


_RACER = """
import logging, sys, time
from pathlib import Path
from digest.store import Store
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
path, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.001)
Store(path).close()
"""


RACERS = 2


@pytest.mark.parametrize("start", ["fresh", "legacy"])
def test_two_processes_upgrade_at_once(tmp_path: Path, start: str) -> None:
    """Let two processes open the same unmigrated store at the same instant: both succeed."""
    path = tmp_path / "digest.db"
    old_rows = 0
    if start == "legacy":
        shutil.copyfile(FIXTURE / "digest.db", path)
        old_rows = len(_old_rows(path, "deliveries"))
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(path), str(tmp_path / f"ready{n}"), str(go)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(RACERS)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{n}").exists() for n in range(RACERS)):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    go.touch()
    migrated = 0
    for racer in racers:
        _, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err
        migrated += "creating the schema" in err or "converting the store" in err
    # The second waited for the first's write lock and found the work done.
    assert migrated == 1
    database = Database(path)
    assert migrate.current_revision(database) == migrate.head_revision()
    if start == "legacy":
        assert len(_new_rows(database, schema.deliveries)) == old_rows
    database.close()


def test_the_migrations_build_the_schema_on_postgresql(pg_server: str | None) -> None:
    """Upgrade an empty PostgreSQL database: head, and the tables schema.py declares."""
    import pgserver

    if pg_server is None:
        pytest.skip("PostgreSQL is not installed and DIGEST_TEST_PG is not set")
    url = pgserver.fresh_database(pg_server)
    database = Database(url)
    try:
        assert migrate.current_revision(database) is None
        migrate.upgrade(database)
        assert migrate.current_revision(database) == migrate.head_revision()
        assert _diff(database, schema.metadata) == []
    finally:
        database.close()
        pgserver.drop_database(pg_server, url)
