"""`digest db copy --to postgresql://…`: a SQLite store moved whole, counts checked."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest import pipeline
from digest.cli import main
from digest.config import Settings
from digest.store import Store, StoreError
from digest.store.copy import copy_store

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def _filled(settings: Settings) -> None:
    """Make a store with articles, an edition, subscribers and a delivery history."""
    with Store(settings.db) as store:
        for n in range(5):
            store.subscribers.upsert(f"r{n}@example.org", f"Reader {n}", ("news",), "", NOW)
    made = pipeline.run_edition(settings, NOW)
    assert made.edition is not None
    with Store(settings.db) as store:
        store.ledger.add(made.edition.id, NOW)
        claim = store.ledger.claim(made.edition.id, NOW, timedelta(minutes=2), 2)
        assert claim is not None


def test_copy_moves_every_row_and_the_copy_works(settings: Settings, pg_url: str) -> None:
    """Copy a SQLite store into an empty PostgreSQL one: every table's rows, the same
    editions, content and ledger; new subscribers get new ids after the copied ones."""
    _filled(settings)
    result = CliRunner().invoke(
        main,
        ["db", "copy", "--to", pg_url],
        env={"DIGEST_DB": str(settings.db), "DIGEST_SOURCES": ",".join(settings.sources)},
    )
    assert result.exit_code == 0, result.output
    assert "every table's count checked" in result.output
    assert "  deliveries: 5 rows" in result.output
    with Store(settings.db, readonly=True) as old, Store(pg_url) as new:
        assert [e.id for e in new.editions.recent()] == [e.id for e in old.editions.recent()]
        edition_id = old.editions.recent()[0].id
        assert new.editions.content(edition_id) == old.editions.content(edition_id)
        assert new.editions.model(edition_id) == old.editions.model(edition_id)
        assert list(new.ledger.rows(edition_id)) == list(old.ledger.rows(edition_id))
        assert new.articles.count() == old.articles.count()
        assert [s.email for s in new.subscribers.iter()] == [
            s.email for s in old.subscribers.iter()
        ]
        new.subscribers.upsert("new@example.org", "", (), "", NOW)
        added = new.subscribers.by_email("new@example.org")
        assert added is not None and added.id == 6


def test_copy_refuses_a_target_that_holds_anything(settings: Settings, pg_url: str) -> None:
    """Never mix two stores: a target with rows is refused and left as it was."""
    _filled(settings)
    with Store(pg_url) as target:
        target.subscribers.upsert("there@example.org", "", (), "", NOW)
    with pytest.raises(StoreError, match="is not empty"):
        copy_store(settings.db, pg_url)
    with Store(pg_url) as target:
        assert [s.email for s in target.subscribers.iter()] == ["there@example.org"]


def test_copy_into_sqlite_too(settings: Settings, tmp_path: Path) -> None:
    """The same copy works between any two stores, a SQLite file as the target."""
    _filled(settings)
    other = dataclasses.replace(settings, db=tmp_path / "other.db")
    counts = copy_store(settings.db, other.db)
    assert counts["deliveries"] == 5 and counts["editions"] == 1
