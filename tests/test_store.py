"""The SQLite store: schema, migrations, upserts and editions, on a real database file."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from digest.models import Article, Edition, Highlight, Item, Section, article_id
from digest.store import MIGRATIONS, Store, StoreError, article_from_json, article_to_json

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def make_article(title: str, body: str = "Body text.", **extra: Any) -> Article:
    """Build an article with a stable id."""
    return Article(
        id=article_id("/src.txt", title),
        source="/src.txt",
        title=title,
        paragraphs=(body,),
        **extra,
    )


def test_new_database_is_wal_and_current(tmp_path: Path) -> None:
    """Create the schema at the latest version, in WAL mode."""
    with Store(tmp_path / "d.db") as store:
        assert store.schema_version == len(MIGRATIONS)
        mode = store.db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    """Keep data when an existing database is opened again."""
    path = tmp_path / "d.db"
    with Store(path) as store:
        store.upsert_article(make_article("One"), NOW)
    with Store(path) as store:
        assert store.article_count() == 1


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """Refuse a database written by a newer digest instead of damaging it."""
    path = tmp_path / "d.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this digest"):
        Store(path)


def test_not_a_database(tmp_path: Path) -> None:
    """Name the file when it is not a database."""
    path = tmp_path / "d.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=str(path)):
        Store(path)


def test_upsert_new_unchanged_updated(tmp_path: Path) -> None:
    """Add an article once, ignore an unchanged copy, update an edited one."""
    with Store(tmp_path / "d.db") as store:
        assert store.upsert_article(make_article("T", "v1"), NOW) == "new"
        assert store.upsert_article(make_article("T", "v1"), NOW) == "unchanged"
        assert store.upsert_article(make_article("T", "v2"), NOW) == "updated"
        assert store.article_count() == 1
        (stored,) = store.eligible_articles()
        assert stored.paragraphs == ("v2",)


def test_json_round_trip() -> None:
    """Store every field of an article and read it back unchanged."""
    article = make_article(
        "Round trip",
        highlights=(Highlight("Text.", "Label"),),
        tags=("a", "b"),
        published=NOW,
        updated=NOW + timedelta(hours=1),
        url="https://example.org/a",
        image="https://example.org/a.png",
    )
    assert article_from_json(article_to_json(article)) == article


def test_eligible_excludes_articles_in_editions(tmp_path: Path) -> None:
    """Offer only articles that no edition carried, newest first."""
    old = make_article("Old", published=NOW - timedelta(days=1))
    new = make_article("New", published=NOW)
    with Store(tmp_path / "d.db") as store:
        store.upsert_article(old, NOW)
        store.upsert_article(new, NOW)
        assert [a.title for a in store.eligible_articles()] == ["New", "Old"]
        edition = Edition(
            id=store.next_edition_id(NOW.date()),
            title="T",
            date=NOW.date(),
            created=NOW,
            sections=(Section("", (Item(new, ()),)),),
        )
        store.record_edition(edition, "Subject")
        assert [a.title for a in store.eligible_articles()] == ["Old"]
        assert store.edition_article_ids(edition.id) == [new.id]
        (record,) = store.editions()
        assert (record.id, record.item_count, record.subject) == ("2026-11-28", 1, "Subject")


def test_edition_ids_count_up_within_a_day(tmp_path: Path) -> None:
    """Give a second edition on the same day its own id."""
    day = date(2026, 11, 28)
    with Store(tmp_path / "d.db") as store:
        for expected in ("2026-11-28", "2026-11-28-2", "2026-11-28-3"):
            edition_id = store.next_edition_id(day)
            assert edition_id == expected
            store.record_edition(Edition(edition_id, "T", day, NOW, ()), "S")


def test_failed_transaction_rolls_back(tmp_path: Path) -> None:
    """Leave nothing behind when a transaction fails half-way."""
    with Store(tmp_path / "d.db") as store:
        edition = Edition(
            "e1", "T", NOW.date(), NOW, (Section("", (Item(make_article("X"), ()),)),)
        )
        # The article is not stored, so the foreign key fails after the edition row went in.
        with pytest.raises(sqlite3.IntegrityError):
            store.record_edition(edition, "S")
        assert store.editions() == []


@pytest.mark.parametrize("wal", [True, False], ids=["wal-index", "data_version"])
def test_commit_watch_sees_every_other_commit(tmp_path: Path, wal: bool) -> None:
    """Report a commit from another connection once, and nothing while none happens."""
    path = tmp_path / "d.db"
    with Store(path) as watcher:
        if not wal:
            # With no -shm file to read, the watch asks SQLite instead.
            watcher.db.execute("PRAGMA journal_mode=DELETE")
        other = sqlite3.connect(path, isolation_level=None)
        try:
            watch = watcher.commit_watch()
            assert watch.mapped is wal
            assert not watch.changed()
            watcher.subscriber_counts()
            assert not watch.changed(), "a read is not a change"
            for n in range(3):
                other.execute(
                    "INSERT INTO subscribers (email, email_key, created, updated)"
                    " VALUES (?, ?, 't', 't')",
                    (f"r{n}@example.org", f"r{n}@example.org"),
                )
                assert watch.changed(), f"commit {n} unseen"
                assert not watch.changed()
        finally:
            other.close()


def test_commit_watch_is_closed_with_the_store(tmp_path: Path) -> None:
    """Let go of the mapping when the store closes, before its connection does."""
    store = Store(tmp_path / "d.db")
    watch = store.commit_watch()
    assert watch.mapped
    store.close()
    assert not watch.mapped


def test_commit_watch_through_a_symbolic_link(tmp_path: Path) -> None:
    """Read the header beside the real file when the store is opened through a link."""
    (tmp_path / "real").mkdir()
    link = tmp_path / "d.db"
    link.symlink_to(tmp_path / "real" / "d.db")
    with Store(link) as watcher, Store(tmp_path / "real" / "d.db") as other:
        watch = watcher.commit_watch()
        assert watch.mapped
        other.add_subscribers(["r@example.org"], NOW)
        assert watch.changed()
