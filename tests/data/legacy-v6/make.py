"""Make the legacy-v6 fixture: a store and send journals written by the last release.

The fixture must be written by the old code itself, not imitated, so this script runs
against a checkout of the release before the store became a package (the commit that
still has digest/store.py and digest/journal.py), e.g. from the repository root:

    git worktree add /tmp/oldmain <commit>       # or: git archive <commit> | tar -x -C …
    PYTHONPATH=/tmp/oldmain python tests/data/legacy-v6/make.py tests/data/legacy-v6

It writes OUT/digest.db (schema version 6) and OUT/sending/*.log (journals of a dead
send, to be put beside a copy of the store as `digest.db-sending/`). Every row comes
through the old Store's own methods, except one: no old method leaves a row in
`sending` (the journal replaced that mark), so that row is set with one UPDATE.
"""

from __future__ import annotations

import importlib
import sqlite3
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# The old API, looked up by name: this checkout's digest.store is a different package.
old: Any = importlib.import_module("digest.store")
models: Any = importlib.import_module("digest.models")
journal: Any = importlib.import_module("digest.journal")

T0 = datetime(2024, 5, 1, 6, 0, 0, 123456, tzinfo=UTC)


def at(hours: float) -> datetime:
    """Return the instant hours after T0."""
    return T0 + timedelta(hours=hours)


def make(out: Path) -> None:
    """Write the fixture store and journals into out."""
    if not hasattr(old, "MIGRATIONS"):
        sys.exit("run this against a checkout of the old single-file store (see docstring)")
    out.mkdir(parents=True, exist_ok=True)
    db = out / "digest.db"
    for stale in (db, db.with_name("digest.db-wal"), db.with_name("digest.db-shm")):
        stale.unlink(missing_ok=True)
    m = models
    hl = m.Highlight
    a1 = m.Article(
        id="feed-a-1",
        source="https://a.example/feed.xml",
        title="Rivers rise in spring",
        paragraphs=("Snow melts early.", "Rivers rise by a metre."),
        highlights=(hl("Rivers rise by a metre.", "Key"),),
        url="https://a.example/rivers?utm_source=feed",
        source_name="A News",
        author="Ann",
        published=datetime(2024, 4, 30, 9, 0, tzinfo=timezone(timedelta(hours=2))),
        tags=("science", "weather"),
        summary="Rivers rise.",
        position=0,
    )
    # A feed that gives no offset: the old store kept the naive time as it came.
    a2 = m.Article(
        id="feed-a-2",
        source="https://a.example/feed.xml",
        title="Café opens — naïve time",
        paragraphs=("A café opens downtown.",),
        url="https://a.example/cafe",
        published=datetime(2024, 4, 29, 18, 30),
        tags=("food",),
        position=1,
        html="<p>A café opens downtown.</p>",
    )
    b1 = m.Article(
        id="notes-b-1",
        source="notes",
        title="Rivers rise (notes)",
        paragraphs=("Our notes on the rivers.",),
        url="https://b.example/rivers-notes",
        position=0,
    )
    b2 = m.Article(
        id="notes-b-2",
        source="notes",
        title="Gardening in May",
        paragraphs=("Plant beans.", "Water them."),
        highlights=(hl("Plant beans."),),
        position=1,
    )
    b3 = m.Article(id="notes-b-3", source="notes", title="Left for later", position=2)
    files = [
        m.FileRecord(
            path="/srv/notes/may.md",
            size=1234,
            mtime_ns=1_714_543_200_000_000_000,
            sha256="ab" * 32,
            checked_ns=1_714_543_201_000_000_000,
            articles=3,
            skipped=(m.Skipped("may.md:40", "no title"), m.Skipped("may.md:52", "empty")),
        ),
        m.FileRecord(
            path="/srv/notes/empty.md",
            size=0,
            mtime_ns=1_714_543_100_000_000_000,
            sha256="cd" * 32,
            checked_ns=1_714_543_101_000_000_000,
        ),
    ]
    with old.Store(db) as store:
        store.save_articles([a1, a2], [], at(0))
        store.save_articles([b1, b2, b3], files, at(0.5))
        # An edit: changed_at moves on, first_seen stays.
        store.upsert_article(replace(a2, summary="Now open."), at(1))
        store.record_health(
            [
                m.SourceHealth(
                    key="https://a.example/feed.xml",
                    kind="feed",
                    last_attempt=at(1),
                    last_success=at(1),
                    http_status=200,
                    item_count=2,
                    etag='"v1"',
                    last_modified="Wed, 01 May 2024 06:00:00 GMT",
                ),
                m.SourceHealth(
                    key="https://b.example/broken.xml",
                    kind="feed",
                    last_attempt=at(1),
                    last_success=at(-48),
                    http_status=503,
                    last_error="HTTP 503",
                    last_warning="slow",
                    failing_since=at(-24),
                ),
            ]
        )
        eds = []
        for n, (items, due) in enumerate(
            [
                (
                    (
                        m.Section(
                            "Science",
                            (
                                m.Item(
                                    store.article(a1.id), (hl("Rivers rise by a metre."),), (b1,)
                                ),
                            ),
                        ),
                        m.Section("Food", (m.Item(store.article(a2.id), ()),)),
                    ),
                    date(2024, 5, 1),
                ),
                ((m.Section("", (m.Item(b2, (hl("Plant beans."), hl("Water them."))),)),), None),
            ]
        ):
            created = at(2 + 24 * n)
            edition = m.Edition(
                id=store.next_edition_id(created.date()),
                title=f"Digest {n + 1}",
                date=created.date(),
                created=created,
                sections=items,
            )
            content = m.RenderedEdition(
                edition, f"Subject {n + 1}", f"Pre {n + 1}", f"<p>html {n + 1}</p>", f"text {n + 1}"
            )
            store.record_edition(edition, f"Subject {n + 1}", due_date=due, content=content)
            eds.append(edition)
        store.save_variant(
            eds[0].id,
            ("Science",),
            m.RenderedEdition(eds[0], "Science only", "Pre", "<p>science</p>", "science"),
            at(3),
        )
        people = [
            ("alice@example.com", "Alice", ("science", "food"), "Europe/Berlin"),
            ("Bob@Example.com", "", (), ""),
            ("carol@example.com", "Carol", ("art",), "America/New_York"),
            ("dave@example.com", "Dave", (), "UTC"),
            ("erin@example.com", "Erin Ö", ("food",), "Asia/Tokyo"),
            ("frank@example.com", "Frank", (), ""),
            ("grace@example.com", "Grace", ("science",), ""),
            ("heidi@example.com", "Heidi", (), ""),
        ]
        for k, (email, name, topics, zone) in enumerate(people):
            store.upsert_subscriber(email, name, topics, zone, at(1 + k / 10))
        store.set_subscriber_status(3, "unsubscribed", at(1.5))
        store.set_subscriber_status(4, "bounced", at(1.5))
        outcome = old.Outcome

        # Edition 1: every final status, and one row a dead old version left in sending.
        store.add_deliveries(eds[0].id, at(2.1))
        store.record_outcomes(
            [
                outcome(eds[0].id, 1, "sent", at(2.2), "<m1@a.example>", tries=1),
                outcome(eds[0].id, 2, "failed", at(2.2), "<m2@a.example>", "550 no", 1, hard=True),
                outcome(
                    eds[0].id, 5, "failed", at(2.2), "<m5@a.example>", "550 gone", 1, True, True
                ),
                outcome(eds[0].id, 6, "skipped", at(2.2), error="none of their topics is in it"),
            ]
        )
        store.db.execute(
            "UPDATE deliveries SET status = 'sending', message_id = '<m7@a.example>'"
            " WHERE edition_id = ? AND subscriber_id = 7",
            (eds[0].id,),
        )
        # Edition 2: pending rows, one put back after a temporary failure.
        store.add_deliveries(eds[1].id, at(26.1))
        store.record_outcomes(
            [outcome(eds[1].id, 1, "pending", at(26.2), "<n1@a.example>", "421 try later", 1)]
        )
    # A dead send's journals: finished outcomes not carried into the store, and one
    # message started and never finished.
    for stale in (out / "sending").glob("*.log"):
        stale.unlink()
    j = journal.Journal(out / "sending", f"{eds[1].id}-4242-0")
    j.sending(eds[1].id, 2)
    j.finished(outcome(eds[1].id, 2, "sent", at(26.3), "<n2@a.example>", tries=1))
    j.sending(eds[1].id, 6)
    j.finished(outcome(eds[1].id, 6, "failed", at(26.3), "<n6@a.example>", "550 no such", 1, True))
    j.sending(eds[1].id, 8)
    j.close(remove=False)
    # Already final in the store: a replay must leave it alone.
    k = journal.Journal(out / "sending", f"{eds[0].id}-4242-1")
    k.sending(eds[0].id, 1)
    k.finished(outcome(eds[0].id, 1, "sent", at(2.15), "<other@a.example>", tries=1))
    k.close(remove=False)
    with sqlite3.connect(db) as conn:
        conn.execute("VACUUM")
    conn.close()


if __name__ == "__main__":
    make(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
