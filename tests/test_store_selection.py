"""Selection in the store: verdicts kept once, candidates read by index, retention.

Run on SQLite and PostgreSQL (conftest's db_target), with the same rules: rows made through
the store's methods or SQLAlchemy Core, plans read through one helper per dialect.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Select, select
from test_store import NOW, make_article, make_edition, rendered

from digest.dedup import article_signature
from digest.models import Article, Assessment, FileRecord, Item
from digest.select import assess
from digest.store import Store
from digest.store.ledger import Audience
from digest.store.retention import PRUNE_EVERY
from digest.store.schema import articles, source_files

GOOD = (
    "The city council approved a new budget for road repairs on Monday evening. "
    "Work on the worst streets starts in the spring, the mayor said."
)
SINCE = NOW - timedelta(days=7)


@pytest.fixture
def store(db_target: str | Path) -> Iterator[Store]:
    """Yield a fresh, writable store on each database under test."""
    with Store(db_target) as opened:
        yield opened


class Counting:
    """The pipeline's assess, counting the articles it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, article: Article) -> Assessment:
        self.asked.append(article.title)
        return assess(article)


def story(title: str, body: str = GOOD, hours: float = 1, **extra: Any) -> Article:
    """Return a dated article."""
    return make_article(title, body, published=NOW - timedelta(hours=hours), **extra)


def plan(store: Store, query: Select[Any]) -> list[str]:
    """Return the database's plan for query, one line a step."""
    db = store.db
    sql = str(query.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}))
    with db.read() as conn:
        if db.dialect == "sqlite":
            return [str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
        # A tiny table is cheaper to scan whole: ask what the planner does when it may not.
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        return [str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + sql)]


def scans_articles(lines: list[str]) -> bool:
    """Tell whether a plan reads the whole articles table."""
    return any(line.startswith("SCAN articles") or "Seq Scan on articles" in line for line in lines)


def test_verdict_and_signature_are_worked_out_once(store: Store) -> None:
    """Judge a version once: a second save reads the stored verdict; an edit is judged anew."""
    judge = Counting()
    good, later = story("Council approves road budget"), story("Later", "Coming soon.")
    saved = store.articles.save_judged([good, later], [], NOW, judge)
    assert [change for change, _ in saved] == ["new", "new"]
    reason = saved[1][1]
    assert saved[0][1] is None and reason is not None and reason.startswith("placeholder")
    again = store.articles.save_judged([good, later], [], NOW + timedelta(hours=1), judge)
    assert again == [("unchanged", None), ("unchanged", reason)]
    assert judge.asked == ["Council approves road budget", "Later"]
    filled = replace(later, paragraphs=(GOOD + " Later news.",))
    assert store.articles.save_judged([filled], [], NOW, judge) == [("updated", None)]
    assert judge.asked[-1] == "Later"
    with store.db.read() as conn:
        stored = dict(conn.execute(select(articles.c.id, articles.c.signature)).all())
    assert stored == {good.id: article_signature(good), later.id: article_signature(filled)}
    assert len(stored[good.id]) == 256


def test_candidates_are_the_waiting_articles_of_the_window(store: Store) -> None:
    """Read not-junk, not-carried articles that appeared within the window, newest first."""
    fresh, older = story("Fresh", hours=1), story("Older", GOOD + " Older.", hours=30)
    expired = story("Expired", GOOD + " Gone.", hours=24 * 8)
    junk = story("Later", "Coming soon.")
    sent = story("Sent", GOOD + " Sent.", hours=2)
    undated = make_article("Undated", GOOD + " No date.")
    store.articles.save_judged([fresh, older, expired, junk, sent, undated], [], NOW, assess)
    store.editions.record(
        make_edition("e1", Item(sent, ())), "S", content=rendered(make_edition("e1"))
    )
    found = store.articles.candidates(SINCE)
    assert [c.title for c in found] == ["Undated", "Fresh", "Older"]
    assert found[1].appeared == fresh.published and found[0].appeared == NOW
    assert found[1].signature == article_signature(fresh)
    # Edited after an edition carried it: a candidate again, until an edition carries it.
    edited = replace(sent, paragraphs=(GOOD + " Sent, and corrected.",))
    store.articles.save_judged([edited], [], NOW, assess)
    assert [c.title for c in store.articles.candidates(SINCE)] == [
        "Undated",
        "Fresh",
        "Sent",
        "Older",
    ]
    assert [c.title for c in store.articles.sent_since(SINCE)] == ["Sent"]


def test_the_candidates_query_uses_its_index(store: Store) -> None:
    """Read candidates through articles_candidates: no full scan of the articles table."""
    many = [story(f"Story {n}", f"{GOOD} Number {n}.", hours=n) for n in range(300)]
    store.articles.save_judged(many, [], NOW, assess)
    lines = plan(store, store.articles.candidates_query(SINCE))
    assert not scans_articles(lines), lines
    assert any("articles_candidates" in line for line in lines), lines


def test_articles_saved_unjudged_are_judged_once(store: Store) -> None:
    """Judge what an older store holds once: then it is a candidate, and judged no more."""
    store.articles.save([story("One"), story("Two", GOOD + " Two.")], [], NOW)
    assert store.articles.candidates(SINCE) == []
    judge = Counting()
    assert store.articles.judge_waiting(judge, batch=1) == 2
    assert sorted(judge.asked) == ["One", "Two"]
    assert [c.title for c in store.articles.candidates(SINCE)] == ["One", "Two"]
    assert store.articles.judge_waiting(judge) == 0 and len(judge.asked) == 2


def _file(path: str) -> FileRecord:
    return FileRecord(path, 10, 1, "0" * 64, 2)


def _gone(store: Store) -> dict[str, Any]:
    with store.db.read() as conn:
        query = select(source_files.c.path, source_files.c.gone_since)
        return dict(conn.execute(query).all())


def test_files_not_found_are_noted_gone_until_back(store: Store) -> None:
    """Mark the known files a run did not find, and clear the mark when one comes back."""
    store.articles.save([], [_file("/a.txt"), _file("/b.txt")], NOW)
    store.articles.note_files({"/a.txt"}, {"/a.txt", "/b.txt"}, NOW)
    assert _gone(store) == {"/a.txt": None, "/b.txt": NOW}
    # Still gone a day later: it stays gone since the first run that missed it.
    store.articles.note_files({"/a.txt"}, {"/a.txt", "/b.txt"}, NOW + timedelta(days=1))
    assert _gone(store)["/b.txt"] == NOW
    store.articles.note_files({"/a.txt", "/b.txt"}, {"/a.txt", "/b.txt"}, NOW)
    assert _gone(store) == {"/a.txt": None, "/b.txt": None}


def test_retention_prunes_only_what_no_edition_or_ledger_holds(store: Store) -> None:
    """Forget old articles never carried and files long gone; keep whatever an edition holds."""
    old = NOW - timedelta(days=100)
    kept_titles = ["Carried", "Edited", "Due", "Recent", "Seen late"]
    made = {
        title: story(title, f"{GOOD} {title}.", hours=24 * 100)
        for title in [*kept_titles, "Waited", "Junk"]
    }
    made["Recent"] = story("Recent", GOOD + " Recent.", hours=24 * 10)
    made["Junk"] = replace(made["Junk"], paragraphs=("Coming soon.",))
    seen_late = made.pop("Seen late")
    store.articles.save_judged(list(made.values()), [], old, assess)
    store.articles.save_judged([seen_late], [], NOW - timedelta(days=1), assess)
    first = make_edition("e1", Item(made["Carried"], ()), Item(made["Edited"], ()), created=old)
    store.editions.record(first, "S", content=rendered(first))
    store.articles.save_judged(
        [replace(made["Edited"], paragraphs=(GOOD + " Edited since.",))], [], old, assess
    )
    # An edition still being sent: its ledger row waits for the article it carries.
    store.subscribers.add_many(["reader@example.org"], old)
    due = make_edition("e2", Item(made["Due"], ()), created=old)
    store.editions.record(due, "S", content=rendered(due), audience=Audience(old))
    assert store.ledger.counts("e2") == {"pending": 1}
    store.articles.save([], [_file("/gone-long.txt"), _file("/gone-lately.txt")], old)
    store.articles.note_files(set(), {"/gone-long.txt"}, old)
    store.articles.note_files(set(), {"/gone-lately.txt"}, NOW - timedelta(days=10))

    pruned = store.retention.prune(NOW, timedelta(days=90), timedelta(days=7))
    assert (pruned.articles, pruned.files) == (2, 1)
    with store.db.read() as conn:
        left = sorted(conn.scalars(select(articles.c.title)))
    assert left == sorted(kept_titles)
    assert list(_gone(store)) == ["/gone-lately.txt"]
    assert store.retention.last_pruned() == pruned
    size = store.retention.size()
    assert (size.articles, size.files, size.editions) == (5, 1, 2)
    assert size.waiting == 3  # edited since carried, recent, seen late


def test_pruning_is_at_most_daily_and_never_before_the_window(store: Store) -> None:
    """Prune once a day; a retention shorter than DIGEST_MAX_AGE keeps the window."""
    store.articles.save_judged(
        [story("Five days old", hours=24 * 5)], [], NOW - timedelta(days=6), assess
    )
    period, window = timedelta(days=1), timedelta(days=7)
    assert store.retention.last_pruned() is None
    first = store.retention.prune_if_due(NOW, period, window)
    assert first is not None and first.articles == 0
    assert store.retention.prune_if_due(NOW + PRUNE_EVERY / 2, period, window) is None
    later = store.retention.prune_if_due(NOW + PRUNE_EVERY * 3, period, window)
    assert later is not None and later.articles == 1
