"""The store's contract: what each aggregate promises, whatever database is behind it.

Every test takes the `store` fixture, on SQLite and on PostgreSQL (conftest's db_target;
tests/pgserver.py says where the server comes from). Rows a test needs that no method
writes are made with SQLAlchemy Core through `store.db`, never with one dialect's SQL, so
that the tests run unchanged on each. Only the tests taking tmp_path look at a SQLite
file itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, StatementError

from digest.models import (
    Article,
    Edition,
    EditionContent,
    FileRecord,
    Highlight,
    Item,
    RenderedEdition,
    Section,
    Skipped,
    SourceHealth,
    article_id,
)
from digest.store import Store, StoreError
from digest.store import subscribers as subscribers_module
from digest.store.claims import BOUNCE_AFTER
from digest.store.codecs import article_from_dict, article_to_dict
from digest.store.schema import edition_items, subscribers

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
DAY = NOW.date()


@pytest.fixture
def target(db_target: str | Path) -> str | Path:
    """Return where a fresh store for this test is (a path or a database URL)."""
    return db_target


@pytest.fixture
def store(target: str | Path) -> Iterator[Store]:
    """Yield a fresh, writable store, closed after the test."""
    with Store(target) as opened:
        yield opened


def make_article(
    title: str, body: str = "Body text.", source: str = "/src.txt", **extra: Any
) -> Article:
    """Build an article with a stable id."""
    return Article(
        id=article_id(source, title), source=source, title=title, paragraphs=(body,), **extra
    )


def make_edition(
    edition_id: str, *items: Item, created: datetime = NOW, day: date = DAY
) -> Edition:
    """Build an edition of items in one untitled section."""
    return Edition(edition_id, "T", day, created, (Section("", items),) if items else ())


def rendered(edition: Edition, subject: str = "Subject") -> RenderedEdition:
    """Build what an edition could have been rendered to."""
    return RenderedEdition(edition, subject, "Pre", f"<p>{edition.id}</p>", f"{edition.id}\n")


# Opening


def test_reopening_keeps_the_data(target: str | Path) -> None:
    """Keep data when an existing store is opened again."""
    with Store(target) as store:
        store.articles.save_one(make_article("One"), NOW)
    with Store(target) as store:
        assert store.articles.count() == 1


def test_readonly_refuses_a_missing_store_and_creates_none(tmp_path: Path) -> None:
    """Refuse to open a store that does not exist yet for reading, and leave no file."""
    path = tmp_path / "d.db"
    with pytest.raises(StoreError, match="no store here yet"):
        Store(path, readonly=True)
    assert not path.exists()


def test_readonly_reads_what_a_writer_wrote(target: str | Path) -> None:
    """Read an existing store without migrating it."""
    with Store(target) as store:
        store.articles.save_one(make_article("One"), NOW)
    with Store(target, readonly=True) as store:
        assert [a.title for a in store.articles.eligible()] == ["One"]


def test_new_sqlite_store_is_in_wal_mode(tmp_path: Path) -> None:
    """Let readers go on while a writer writes: the journal is a write-ahead log."""
    path = tmp_path / "d.db"
    with Store(path) as store, store.db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_not_a_database(tmp_path: Path) -> None:
    """Name the file when it is not a database."""
    path = tmp_path / "d.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=str(path)):
        Store(path)


# Articles


def test_article_document_round_trip() -> None:
    """Keep every field of an article through its JSON document."""
    article = make_article(
        "Round trip",
        highlights=(Highlight("Text.", "Label"),),
        tags=("a", "b"),
        published=NOW,
        updated=NOW + timedelta(hours=1),
        url="https://example.org/a",
        image="https://example.org/a.png",
    )
    assert article_from_dict(json.loads(json.dumps(article_to_dict(article)))) == article


def test_save_new_unchanged_updated(store: Store) -> None:
    """Add an article once, ignore an unchanged copy, update an edited one."""
    assert store.articles.save_one(make_article("T", "v1"), NOW) == "new"
    assert store.articles.save_one(make_article("T", "v1"), NOW) == "unchanged"
    later = NOW + timedelta(hours=1)
    assert store.articles.save_one(make_article("T", "v2"), later) == "updated"
    assert store.articles.count() == 1
    (stored,) = store.articles.eligible()
    assert stored.paragraphs == ("v2",)
    # An edit is not a first sighting.
    assert store.articles.first_seen(stored.id) == NOW


def test_get_and_first_seen(store: Store) -> None:
    """Return a stored article and when it was first stored; None for an unknown id."""
    article = make_article("T", published=NOW - timedelta(days=1), url="https://e.org/t")
    store.articles.save_one(article, NOW)
    assert store.articles.get(article.id) == article
    seen = store.articles.first_seen(article.id)
    assert seen == NOW and seen is not None and seen.tzinfo is not None
    assert store.articles.get("nope") is None and store.articles.first_seen("nope") is None


def test_save_reports_each_article_in_order(store: Store) -> None:
    """Report one change per article, a repeat in the same batch included."""
    a, b = make_article("A"), make_article("B")
    assert store.articles.save([a, b, a], [], NOW) == ["new", "new", "unchanged"]
    assert store.articles.save([], [], NOW) == []


def test_the_same_link_from_a_second_source_is_stored_once(store: Store) -> None:
    """Keep a story reached through two sources under the first, however the link is dressed."""
    first = make_article("Harbour", source="https://a.example/feed", url="https://News.example/x")
    second = make_article(
        "Harbour reopens",
        "A different body.",
        source="https://b.example/feed",
        url="https://news.example:443/x?utm_source=feed#top",
    )
    assert store.articles.save_one(first, NOW) == "new"
    assert store.articles.save_one(second, NOW + timedelta(hours=1)) == "unchanged"
    assert store.articles.count() == 1
    (kept,) = store.articles.eligible()
    assert kept.source == first.source
    # The second source's copy does not overwrite the first's, even when it changes.
    edited = make_article(
        "Harbour reopens", "Edited.", source=second.source, url="https://news.example/x"
    )
    assert store.articles.save_one(edited, NOW + timedelta(hours=2)) == "unchanged"
    assert store.articles.get(first.id) == first
    assert store.articles.get(second.id) is None


def test_a_batch_matches_as_if_saved_one_by_one(store: Store) -> None:
    """Match each article of one save against the ones before it in the same save."""
    v1 = make_article("T", "v1")
    v2 = make_article("T", "v2")
    first = make_article("Story", source="https://a.example/feed", url="https://n.example/s")
    again = make_article("Story!", source="https://b.example/feed", url="https://n.example/s")
    changes = store.articles.save([v1, v2, first, again, v1], [], NOW)
    assert changes == ["new", "updated", "new", "unchanged", "updated"]
    assert store.articles.count() == 2
    stored = store.articles.get(v1.id)
    assert stored is not None and stored.paragraphs == ("v1",)
    assert store.articles.get(again.id) is None


def test_an_edited_link_is_matched_by_its_new_value(store: Store) -> None:
    """Match a second source's copy to an article whose link an edit has just changed."""
    feed_a, feed_b = "https://a.example/feed", "https://b.example/feed"
    store.articles.save_one(make_article("S", source=feed_a, url="https://n.example/old"), NOW)
    moved = make_article("S", "Edited.", source=feed_a, url="https://n.example/new")
    old_link = make_article("Other", source=feed_b, url="https://n.example/old")
    new_link = make_article("Copy", source=feed_b, url="https://n.example/new")
    later = NOW + timedelta(hours=1)
    assert store.articles.save([moved, old_link, new_link], [], later) == [
        "updated",
        "new",
        "unchanged",
    ]
    assert store.articles.count() == 2


def test_the_same_link_within_one_source_stays_two_articles(store: Store) -> None:
    """Keep two entries of one feed sharing a link (a live page) as two articles."""
    feed = "https://a.example/feed"
    one = make_article("Live: morning", source=feed, url="https://a.example/live")
    two = make_article("Live: evening", source=feed, url="https://a.example/live")
    assert store.articles.save([one, two], [], NOW) == ["new", "new"]
    assert store.articles.count() == 2


def test_save_is_one_transaction(store: Store) -> None:
    """Store neither articles nor file fingerprints when one article of the batch fails."""
    record = FileRecord("/src.txt", 10, 1, "abc", 2, 1)
    # A naive time is refused by the column: the batch fails after its first article.
    bad = make_article("Bad", published=datetime(2026, 11, 28, 7, 0))
    with pytest.raises(StatementError, match="naive datetime"):
        store.articles.save([make_article("Good"), bad], [record], NOW)
    assert store.articles.count() == 0
    assert store.articles.file_records() == {}


def test_file_records_round_trip_and_are_replaced(store: Store) -> None:
    """Keep each file's fingerprint with what was skipped, the newest read replacing it."""
    first = FileRecord("/a.txt", 10, 111, "h1", 112, 2, (Skipped("/a.txt:3", "empty"),))
    other = FileRecord("/b.txt", 5, 7, "h2", 8)
    store.articles.save([make_article("A")], [first, other], NOW)
    assert store.articles.file_records() == {"/a.txt": first, "/b.txt": other}
    again = FileRecord("/a.txt", 12, 222, "h3", 223, 0, ())
    store.articles.save([], [again], NOW)
    assert store.articles.file_records() == {"/a.txt": again, "/b.txt": other}


def test_source_health_round_trip_and_is_replaced(store: Store) -> None:
    """Keep each source's health by key, ordered by key, its times the same instants."""
    paris = timezone(timedelta(hours=1))
    failing = SourceHealth(
        key="https://b.example/feed",
        kind="feed",
        last_attempt=NOW,
        last_success=None,
        http_status=500,
        item_count=0,
        last_error="HTTP 500",
        last_warning="slow",
        failing_since=datetime(2026, 11, 27, 8, 0, tzinfo=paris),
        etag='"e1"',
        last_modified="Fri, 27 Nov 2026 07:00:00 GMT",
    )
    healthy = SourceHealth(key="/notes", kind="folder", last_attempt=NOW, last_success=NOW)
    assert store.articles.source_health() == {}
    store.articles.record_health([failing, healthy])
    known = store.articles.source_health()
    assert list(known) == ["/notes", "https://b.example/feed"]
    assert known == {"/notes": healthy, "https://b.example/feed": failing}
    assert known[failing.key].failing_since == datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    recovered = SourceHealth(key=failing.key, kind="feed", last_attempt=NOW, last_success=NOW)
    store.articles.record_health([recovered])
    assert store.articles.source_health()[failing.key] == recovered
    store.articles.record_health([])


def test_eligible_order(store: Store) -> None:
    """Order newest first by publication (first sighting when undated), then source, position."""
    # 08:00 at +02:00 is 06:00 UTC: older than 07:00 UTC, whatever the text says.
    east = make_article(
        "East", published=datetime(2026, 11, 28, 8, 0, tzinfo=timezone(timedelta(hours=2)))
    )
    utc = make_article("UTC", published=NOW)
    undated = make_article("Undated")  # first seen at NOW + 1 h: the newest
    b_second = make_article("B2", source="/b.txt", position=2, published=NOW - timedelta(days=1))
    b_first = make_article("B1", source="/b.txt", position=1, published=NOW - timedelta(days=1))
    a_last = make_article("A9", source="/a.txt", position=9, published=NOW - timedelta(days=1))
    store.articles.save([east, utc, b_second, b_first, a_last], [], NOW)
    store.articles.save_one(undated, NOW + timedelta(hours=1))
    titles = [a.title for a in store.articles.eligible()]
    assert titles == ["Undated", "UTC", "East", "A9", "B1", "B2"]
    with_seen = store.articles.eligible_with_first_seen()
    assert [a.title for a, _ in with_seen] == titles
    assert with_seen[0][1] == NOW + timedelta(hours=1) and with_seen[1][1] == NOW


def test_eligible_ties_in_time_go_to_the_later_sighting(store: Store) -> None:
    """Put the article first seen later first when two were published at the same time."""
    early = make_article("Early", published=NOW - timedelta(days=1))
    late = make_article("Late", source="/a.txt", published=NOW - timedelta(days=1))
    store.articles.save_one(early, NOW)
    store.articles.save_one(late, NOW + timedelta(minutes=1))
    assert [a.title for a in store.articles.eligible()] == ["Late", "Early"]


def test_eligible_excludes_articles_in_editions(store: Store) -> None:
    """Offer only articles that no edition carried, newest first."""
    old = make_article("Old", published=NOW - timedelta(days=1))
    new = make_article("New", published=NOW)
    store.articles.save([old, new], [], NOW)
    assert [a.title for a in store.articles.eligible()] == ["New", "Old"]
    edition = make_edition(store.editions.next_id(DAY), Item(new, ()))
    store.editions.record(edition, "Subject")
    assert [a.title for a in store.articles.eligible()] == ["Old"]
    assert store.editions.article_ids(edition.id) == [new.id]
    (record,) = store.editions.recent()
    assert (record.id, record.item_count, record.subject) == ("2026-11-28", 1, "Subject")


def test_an_edited_article_is_eligible_again(store: Store) -> None:
    """Offer an article again once edited since the edition that carried it."""
    article = make_article("T", "v1")
    store.articles.save_one(article, NOW)
    store.editions.record(make_edition("e1", Item(article, ())), "S")
    assert store.articles.eligible() == []
    store.articles.save_one(make_article("T", "v2"), NOW + timedelta(hours=1))
    assert [a.paragraphs for a in store.articles.eligible()] == [("v2",)]


def test_an_item_without_its_version_counts_as_carrying_the_current_one(store: Store) -> None:
    """Treat an item recorded before editions kept the version as carrying today's."""
    article = make_article("T")
    store.articles.save_one(article, NOW)
    store.editions.record(make_edition("e1", Item(article, ())), "S")
    with store.db.write() as conn:
        conn.execute(update(edition_items).values(content_hash=None))
    store.articles.save_one(make_article("T", "edited"), NOW + timedelta(hours=1))
    assert store.articles.eligible() == []
    assert store.editions.last_highlights() == []


# Editions


def test_edition_ids_count_up_within_a_day(store: Store) -> None:
    """Give a second edition on the same day its own id."""
    for expected in ("2026-11-28", "2026-11-28-2", "2026-11-28-3"):
        edition_id = store.editions.next_id(DAY)
        assert edition_id == expected
        store.editions.record(make_edition(edition_id), "S")
    assert store.editions.next_id(date(2026, 11, 29)) == "2026-11-29"


def test_record_and_get(store: Store) -> None:
    """Read an edition back as it was recorded, its dates as dates and its time aware."""
    a, b = make_article("A"), make_article("B")
    store.articles.save([a, b], [], NOW)
    store.editions.record(make_edition("e1", Item(a, ()), Item(b, ())), "Sub", date(2026, 11, 29))
    record = store.editions.get("e1")
    assert record is not None
    assert (record.edition_date, record.due_date, record.item_count) == (DAY, date(2026, 11, 29), 2)
    assert record.created == NOW and record.title == "T" and record.subject == "Sub"
    assert store.editions.get("e2") is None
    assert store.editions.article_ids("e1") == [a.id, b.id]


def test_recent_is_newest_first_and_limited(store: Store) -> None:
    """List editions newest first by creation time, the id breaking a tie, at most limit."""
    store.editions.record(make_edition("e1", created=NOW), "S")
    store.editions.record(make_edition("e3", created=NOW - timedelta(hours=1)), "S")
    store.editions.record(make_edition("e2", created=NOW), "S")
    assert [r.id for r in store.editions.recent()] == ["e2", "e1", "e3"]
    assert [r.id for r in store.editions.recent(limit=1)] == ["e2"]


def test_failed_transaction_rolls_back(store: Store) -> None:
    """Leave nothing behind when recording an edition fails half-way."""
    # The article is not stored, so the foreign key fails after the edition row went in.
    edition = make_edition("e1", Item(make_article("X"), (Highlight("H."),)))
    with pytest.raises(IntegrityError):
        store.editions.record(edition, "S", content=rendered(edition))
    assert store.editions.recent() == []
    assert store.editions.content("e1") is None


def test_one_edition_per_due_date(store: Store) -> None:
    """Refuse a second edition for a due date; editions without one are not limited."""
    due = date(2026, 11, 28)
    assert store.editions.for_due_date(due) is None
    store.editions.record(make_edition("e1"), "S", due)
    with pytest.raises(IntegrityError):
        store.editions.record(make_edition("e2"), "S", due)
    found = store.editions.for_due_date(due)
    assert found is not None and found.id == "e1"
    store.editions.record(make_edition("e3"), "S")
    store.editions.record(make_edition("e4"), "S")
    assert store.editions.for_due_date(date(2026, 11, 29)) is None
    assert sorted(r.id for r in store.editions.recent()) == ["e1", "e3", "e4"]


def test_merged_versions_are_used_up_but_not_listed(store: Store) -> None:
    """Count an item's merged versions as carried, and list only the item itself."""
    main = make_article("Main", url="https://e.org/1")
    other = make_article("Other", source="/other.txt")
    spare = make_article("Spare")
    store.articles.save([main, other, spare], [], NOW)
    store.editions.record(make_edition("e1", Item(main, (), also_in=(other, main))), "S")
    assert store.editions.article_ids("e1") == [main.id]
    assert [a.title for a in store.articles.eligible()] == ["Spare"]


def test_carried_since(store: Store) -> None:
    """Return what editions made since a time carried, merged versions included, by id."""
    old, main, other = make_article("Old"), make_article("Main"), make_article("Other", source="/o")
    store.articles.save([old, main, other], [], NOW)
    store.editions.record(make_edition("e1", Item(old, ()), created=NOW - timedelta(days=3)), "S")
    store.editions.record(make_edition("e2", Item(main, (), also_in=(other,))), "S")
    carried = store.editions.carried_since(NOW - timedelta(days=1))
    assert [a.id for a in carried] == sorted([main.id, other.id])
    assert len(store.editions.carried_since(NOW - timedelta(days=7))) == 3
    assert store.editions.carried_since(NOW + timedelta(seconds=1)) == []


def test_last_highlights_are_the_newest_editions(store: Store) -> None:
    """Return the highlight texts the most recent edition showed, in its order."""
    a, b = make_article("A"), make_article("B")
    store.articles.save([a, b], [], NOW)
    assert store.editions.last_highlights() == []
    old = make_edition("e1", Item(a, (Highlight("Old one."),)), created=NOW - timedelta(days=1))
    store.editions.record(old, "S")
    new = make_edition(
        "e2", Item(b, (Highlight("Second.", "Label"), Highlight("First."))), Item(a, ())
    )
    store.editions.record(new, "S")
    assert store.editions.last_highlights() == ["Second.", "First."]


def test_content_and_model_round_trip(store: Store) -> None:
    """Keep what an edition was rendered to and the edition itself, sections and all."""
    a, b, c = make_article("A", published=NOW), make_article("B"), make_article("C", source="/c")
    store.articles.save([a, b, c], [], NOW)
    edition = Edition(
        "e1",
        "Daily",
        DAY,
        NOW,
        (
            Section("World", (Item(a, (Highlight("Text.", "Label"),), also_in=(c,)),)),
            Section("Business", (Item(b, ()),)),
        ),
    )
    store.editions.record(edition, "Subject", content=rendered(edition))
    assert store.editions.content("e1") == EditionContent(
        "e1", "Subject", "Pre", "<p>e1</p>", "e1\n"
    )
    assert store.editions.model("e1") == edition
    assert store.editions.content("e2") is None and store.editions.model("e2") is None


def test_an_edition_without_content_has_no_model(store: Store) -> None:
    """Return no model for an edition recorded without its content."""
    store.editions.record(make_edition("e1"), "S")
    assert store.editions.content("e1") is None and store.editions.model("e1") is None


def test_variants_are_kept_once(store: Store) -> None:
    """Keep one rendering per section set; the first one kept is the one returned."""
    edition = make_edition("e1")
    store.editions.record(edition, "S", content=rendered(edition))
    assert store.editions.variant("e1", ("World",)) is None
    store.editions.save_variant("e1", ("World",), rendered(edition, "World only"), NOW)
    store.editions.save_variant("e1", ("World",), rendered(edition, "Again"), NOW)
    store.editions.save_variant("e1", ("World", "Business"), rendered(edition, "Both"), NOW)
    world = store.editions.variant("e1", ("World",))
    assert world is not None and world.subject == "World only" and world.edition_id == "e1"
    both = store.editions.variant("e1", ("World", "Business"))
    assert both is not None and both.subject == "Both"
    assert store.editions.variant("e1", ("Business", "World")) is None


def test_latest_sendable_is_the_newest_with_content(store: Store) -> None:
    """Offer the newest edition whose content was kept, not a newer one without."""
    assert store.editions.latest_sendable() is None
    older = make_edition("e1", created=NOW - timedelta(hours=1))
    store.editions.record(older, "S", content=rendered(older))
    store.editions.record(make_edition("e2"), "S")
    assert store.editions.latest_sendable() == "e1"


# Subscribers


def test_upsert_new_unchanged_updated(store: Store) -> None:
    """Add an address, leave a repeat alone, update a change; the address's case is no key."""
    assert store.subscribers.upsert("Ada@Example.org", "Ada", ("b", "a"), "", NOW) == "new"
    assert store.subscribers.upsert("Ada@Example.org", "Ada", ("b", "a"), "", NOW) == "unchanged"
    later = NOW + timedelta(hours=1)
    assert (
        store.subscribers.upsert("ada@example.org", "Ada L", (), "Europe/Paris", later) == "updated"
    )
    sub = store.subscribers.by_email("ADA@EXAMPLE.ORG")
    assert sub is not None
    assert (sub.email, sub.name, sub.topics, sub.timezone, sub.status) == (
        "ada@example.org",
        "Ada L",
        (),
        "Europe/Paris",
        "active",
    )
    assert (sub.created, sub.updated) == (NOW, later)
    assert store.subscribers.by_id(sub.id) == sub
    assert store.subscribers.counts() == {"active": 1}


def test_topics_keep_their_order(store: Store) -> None:
    """Return topics as they were given."""
    store.subscribers.upsert("a@example.org", "", ("science", "history"), "", NOW)
    sub = store.subscribers.by_email("a@example.org")
    assert sub is not None and sub.topics == ("science", "history")


def test_an_unsubscribed_address_is_kept_unless_resubscribed(store: Store) -> None:
    """Leave an unsubscribed subscriber so on import, and re-activate only when asked."""
    store.subscribers.upsert("a@example.org", "A", (), "", NOW)
    sub = store.subscribers.by_email("a@example.org")
    assert sub is not None
    assert store.subscribers.set_status(sub.id, "unsubscribed", NOW, "operator") is True
    assert store.subscribers.upsert("a@example.org", "A", (), "", NOW) == "kept"
    assert store.subscribers.upsert("a@example.org", "New name", (), "", NOW) == "kept"
    kept = store.subscribers.by_id(sub.id)
    assert kept is not None and (kept.status, kept.name) == ("unsubscribed", "New name")
    later = NOW + timedelta(days=1)
    assert (
        store.subscribers.upsert("a@example.org", "New name", (), "", later, resubscribe=True)
        == "updated"
    )
    back = store.subscribers.by_id(sub.id)
    assert back is not None and back.status == "active" and back.updated == later
    assert (
        store.subscribers.upsert("a@example.org", "New name", (), "", NOW, resubscribe=True)
        == "unchanged"
    )


def _hard_failures(store: Store, subscriber_id: int) -> int:
    with store.db.read() as conn:
        found = conn.scalar(
            select(subscribers.c.hard_failures).where(subscribers.c.id == subscriber_id)
        )
    return int(found or 0)


def _set_hard_failures(store: Store, subscriber_id: int, count: int) -> None:
    with store.db.write() as conn:
        conn.execute(
            update(subscribers).where(subscribers.c.id == subscriber_id).values(hard_failures=count)
        )


def test_a_change_of_status_clears_the_hard_failures(store: Store) -> None:
    """Start counting hard failures afresh when the status changes, not on other edits."""
    store.subscribers.upsert("a@example.org", "", (), "", NOW)
    sub = store.subscribers.by_email("a@example.org")
    assert sub is not None
    _set_hard_failures(store, sub.id, 2)
    store.subscribers.upsert("a@example.org", "Renamed", (), "", NOW)
    assert _hard_failures(store, sub.id) == 2
    store.subscribers.set_status(sub.id, "bounced", NOW)
    assert _hard_failures(store, sub.id) == 0
    _set_hard_failures(store, sub.id, BOUNCE_AFTER)
    store.subscribers.upsert("a@example.org", "Renamed", (), "", NOW, resubscribe=True)
    assert _hard_failures(store, sub.id) == 0


def test_set_status_and_delete(store: Store) -> None:
    """Report whether a status or a deletion changed anything."""
    store.subscribers.upsert("a@example.org", "", (), "", NOW)
    sub = store.subscribers.by_email("a@example.org")
    assert sub is not None
    later = NOW + timedelta(hours=1)
    assert store.subscribers.set_status(sub.id, "bounced", later) is True
    assert store.subscribers.set_status(sub.id, "bounced", later) is False
    changed = store.subscribers.by_id(sub.id)
    assert changed is not None and changed.status == "bounced" and changed.updated == later
    assert store.subscribers.counts() == {"bounced": 1}
    assert store.subscribers.set_status(sub.id + 1, "active", NOW) is False
    assert store.subscribers.delete(sub.id) is True
    assert store.subscribers.delete(sub.id) is False
    assert store.subscribers.by_id(sub.id) is None
    assert store.subscribers.by_email("a@example.org") is None
    assert store.subscribers.counts() == {}


def test_add_many_counts_only_the_new(store: Store) -> None:
    """Add addresses in bulk, counting only those not known in any case."""
    store.subscribers.upsert("known@example.org", "Known", (), "", NOW)
    emails = ["a@example.org", "KNOWN@example.org", "b@example.org", "A@example.org"]
    assert store.subscribers.add_many(emails, NOW) == 2
    assert store.subscribers.add_many(iter(["b@example.org", "c@example.org"]), NOW) == 1
    assert store.subscribers.add_many([], NOW) == 0
    known = store.subscribers.by_email("known@example.org")
    assert known is not None and known.name == "Known"
    added = store.subscribers.by_email("a@example.org")
    assert added is not None and (added.status, added.name, added.topics) == ("active", "", ())


def test_add_many_beyond_one_batch(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Count every address of an import larger than one statement's batch."""
    monkeypatch.setattr(subscribers_module, "BATCH", 7)
    emails = [f"r{n}@example.org" for n in range(30)]
    assert store.subscribers.add_many(emails[:10], NOW) == 10
    assert store.subscribers.add_many(emails, NOW) == 20
    assert store.subscribers.counts() == {"active": 30}


def test_iter_pages_through_in_id_order(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Yield every subscriber in id order across pages, optionally of one status."""
    monkeypatch.setattr(subscribers_module, "PAGE", 3)
    store.subscribers.add_many((f"r{n:02d}@example.org" for n in range(10)), NOW)
    every = list(store.subscribers.iter())
    assert [s.email for s in every] == [f"r{n:02d}@example.org" for n in range(10)]
    assert [s.id for s in every] == sorted(s.id for s in every)
    for sub in every[1::2]:
        store.subscribers.set_status(sub.id, "unsubscribed", NOW)
    active = list(store.subscribers.iter("active"))
    assert [s.email for s in active] == [f"r{n:02d}@example.org" for n in range(0, 10, 2)]
    assert len(list(store.subscribers.iter("unsubscribed"))) == 5
    assert list(store.subscribers.iter("bounced")) == []
    # A page size's worth exactly: the last, empty page ends the stream.
    monkeypatch.setattr(subscribers_module, "PAGE", 5)
    assert len(list(store.subscribers.iter("active"))) == 5


def test_iter_holds_nothing_open_between_pages(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Let the list change while a slow reader is part-way through it."""
    monkeypatch.setattr(subscribers_module, "PAGE", 2)
    store.subscribers.add_many(["a@example.org", "b@example.org", "c@example.org"], NOW)
    seen = []
    for sub in store.subscribers.iter():
        seen.append(sub.email)
        if sub.email == "a@example.org":
            # A write between two yields does not wait for the reader.
            store.subscribers.add_many(["d@example.org"], NOW)
    assert seen == ["a@example.org", "b@example.org", "c@example.org", "d@example.org"]


def test_zones_of_the_active(store: Store) -> None:
    """Return the active subscribers' zones, the default for those without one."""
    assert store.subscribers.zones("UTC") == set()
    store.subscribers.upsert("a@example.org", "", (), "", NOW)
    store.subscribers.upsert("b@example.org", "", (), "Asia/Tokyo", NOW)
    store.subscribers.upsert("c@example.org", "", (), "America/New_York", NOW)
    gone = store.subscribers.by_email("c@example.org")
    assert gone is not None
    store.subscribers.set_status(gone.id, "unsubscribed", NOW)
    assert store.subscribers.zones("Europe/Berlin") == {"Europe/Berlin", "Asia/Tokyo"}
