"""SQLite storage: schema, migrations and every query. No SQL lives anywhere else."""

from __future__ import annotations

import json
import logging
import mmap
import sqlite3
import struct
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from digest.errors import DigestError
from digest.models import (
    Article,
    Delivery,
    DeliveryStatus,
    Edition,
    FileRecord,
    Highlight,
    Item,
    RenderedEdition,
    Section,
    Skipped,
    SourceHealth,
    Subscriber,
    SubscriberStatus,
    canonical_url,
)

logger = logging.getLogger(__name__)

Change = Literal["new", "updated", "unchanged"]

# Each entry moves the schema from version i to i + 1; never edit one that has shipped.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE articles (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        position INTEGER NOT NULL DEFAULT 0,
        title TEXT NOT NULL,
        url TEXT,
        published TEXT,
        first_seen TEXT NOT NULL,
        changed_at TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX articles_order ON articles (published, first_seen);
    CREATE TABLE editions (
        id TEXT PRIMARY KEY,
        edition_date TEXT NOT NULL,
        title TEXT NOT NULL,
        subject TEXT NOT NULL,
        created TEXT NOT NULL,
        item_count INTEGER NOT NULL
    );
    CREATE TABLE edition_items (
        edition_id TEXT NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
        article_id TEXT NOT NULL REFERENCES articles (id),
        position INTEGER NOT NULL,
        PRIMARY KEY (edition_id, article_id)
    );
    CREATE INDEX edition_items_article ON edition_items (article_id);
    """,
    # The scheduler's key: one edition per due date, however many fires or processes.
    """
    ALTER TABLE editions ADD COLUMN due_date TEXT;
    CREATE UNIQUE INDEX editions_due_date ON editions (due_date) WHERE due_date IS NOT NULL;
    """,
    # Sources: the same article through two feeds is found by its canonical link; each
    # DIGEST_SOURCES entry's health and HTTP validators; each local file's fingerprint.
    """
    ALTER TABLE articles ADD COLUMN canonical_url TEXT;
    CREATE INDEX articles_canonical_url ON articles (canonical_url)
        WHERE canonical_url IS NOT NULL;
    CREATE TABLE sources (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        last_attempt TEXT,
        last_success TEXT,
        http_status INTEGER,
        item_count INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_warning TEXT,
        failing_since TEXT,
        etag TEXT,
        last_modified TEXT
    );
    CREATE TABLE source_files (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        checked_ns INTEGER NOT NULL,
        articles INTEGER NOT NULL DEFAULT 0,
        skipped TEXT NOT NULL DEFAULT '[]'
    );
    """,
    # Selection: which version of an article an edition carried (an edited one is eligible
    # again), which item a merged duplicate went into, and the highlights shown (no repeats).
    """
    ALTER TABLE edition_items ADD COLUMN content_hash TEXT;
    ALTER TABLE edition_items ADD COLUMN merged_into TEXT;
    CREATE TABLE edition_highlights (
        edition_id TEXT NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
        article_id TEXT NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX edition_highlights_edition ON edition_highlights (edition_id);
    """,
    # Sending: the list, each edition's rendered content (so that a resumed send sends
    # exactly what the first attempt sent) and the per-subscriber ledger.
    """
    CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        topics TEXT NOT NULL DEFAULT '',
        timezone TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'active',
        hard_failures INTEGER NOT NULL DEFAULT 0,
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE INDEX subscribers_status ON subscribers (status, id);
    CREATE TABLE edition_content (
        edition_id TEXT PRIMARY KEY REFERENCES editions (id) ON DELETE CASCADE,
        subject TEXT NOT NULL,
        preheader TEXT NOT NULL,
        html TEXT NOT NULL,
        text TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE TABLE deliveries (
        edition_id TEXT NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
        subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
        email TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT NOT NULL DEFAULT '',
        message_id TEXT NOT NULL DEFAULT '',
        updated TEXT,
        PRIMARY KEY (edition_id, subscriber_id)
    );
    CREATE INDEX deliveries_open ON deliveries (edition_id)
        WHERE status IN ('pending', 'sending');
    """,
    # Section sets: the edition itself, so that the sections a subscriber's topics pick can
    # be rendered when first needed, and each such rendering, so a resumed send sends it again.
    """
    ALTER TABLE edition_content ADD COLUMN edition_json TEXT;
    CREATE TABLE edition_variants (
        edition_id TEXT NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
        sections TEXT NOT NULL,
        subject TEXT NOT NULL,
        preheader TEXT NOT NULL,
        html TEXT NOT NULL,
        text TEXT NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (edition_id, sections)
    );
    """,
]

# Hard failures in a row after which an address is marked bounced and left out.
BOUNCE_AFTER = 3


class StoreError(DigestError):
    """The database cannot be opened or is newer than this program."""


@dataclass(frozen=True)
class EditionRecord:
    """An edition as the store remembers it."""

    id: str
    edition_date: date
    title: str
    subject: str
    created: datetime
    item_count: int
    due_date: date | None = None


def article_to_json(article: Article) -> str:
    """Serialise an article for the data column."""
    data = asdict(article)
    for key in ("published", "updated"):
        value = getattr(article, key)
        data[key] = value.isoformat() if value else None
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def article_from_json(text: str) -> Article:
    """Rebuild an article from its data column."""
    data: dict[str, Any] = json.loads(text)
    for key in ("published", "updated"):
        data[key] = datetime.fromisoformat(data[key]) if data.get(key) else None
    data["paragraphs"] = tuple(data.get("paragraphs", ()))
    data["tags"] = tuple(data.get("tags", ()))
    data["highlights"] = tuple(Highlight(**h) for h in data.get("highlights", ()))
    return Article(**data)


def edition_to_json(edition: Edition) -> str:
    """Serialise an edition with its sections, items and the articles they carry."""

    def item(it: Item) -> dict[str, Any]:
        return {
            "article": json.loads(article_to_json(it.article)),
            "highlights": [asdict(h) for h in it.highlights],
            "also_in": [json.loads(article_to_json(a)) for a in it.also_in],
        }

    data = {
        "id": edition.id,
        "title": edition.title,
        "date": edition.date.isoformat(),
        "created": edition.created.isoformat(),
        "sections": [
            {"title": s.title, "items": [item(it) for it in s.items]} for s in edition.sections
        ],
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def edition_from_json(text: str) -> Edition:
    """Rebuild an edition from edition_to_json's output."""
    data: dict[str, Any] = json.loads(text)

    def article(raw: dict[str, Any]) -> Article:
        return article_from_json(json.dumps(raw))

    return Edition(
        id=data["id"],
        title=data["title"],
        date=date.fromisoformat(data["date"]),
        created=datetime.fromisoformat(data["created"]),
        sections=tuple(
            Section(
                title=s["title"],
                items=tuple(
                    Item(
                        article(it["article"]),
                        tuple(Highlight(**h) for h in it["highlights"]),
                        tuple(article(a) for a in it["also_in"]),
                    )
                    for it in s["items"]
                ),
            )
            for s in data["sections"]
        ),
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _edition_record(row: sqlite3.Row) -> EditionRecord:
    return EditionRecord(
        id=row["id"],
        edition_date=date.fromisoformat(row["edition_date"]),
        title=row["title"],
        subject=row["subject"],
        created=datetime.fromisoformat(row["created"]),
        item_count=row["item_count"],
        due_date=date.fromisoformat(row["due_date"]) if row["due_date"] else None,
    )


class Store:
    """One SQLite database in WAL mode; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._watches: list[CommitWatch] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are opened explicitly in `transaction`.
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA busy_timeout=30000")
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"{path}: cannot open the database: {err}",
                hint="check DIGEST_DB points to a digest database",
            ) from err

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection, and the watches on it first."""
        for watch in self._watches:
            watch.close()
        self._watches.clear()
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in one write transaction, taken up front to avoid lock upgrades."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        """Return the schema version recorded in the database."""
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self.transaction() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this digest "
                    f"understands ({len(MIGRATIONS)})",
                    hint="upgrade digest",
                )
            for number in range(version, len(MIGRATIONS)):
                logger.info("%s: migrating schema to version %d", self.path, number + 1)
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")

    # Articles

    def upsert_article(self, article: Article, now: datetime) -> Change:
        """Store article; report whether it was new, edited or already known."""
        return self.save_articles([article], [], now)[0]

    def save_articles(
        self, articles: Iterable[Article], files: Iterable[FileRecord], now: datetime
    ) -> list[Change]:
        """Store articles and the fingerprints of the files they came from, in one transaction.

        An article is known by its id or, failing that, its canonical link: the same story
        reached through a second source is stored once, under the source that brought it
        first, so that two feeds differing in detail do not flip it back and forth.
        """
        with self.transaction() as db:
            changes = [self._save_article(db, article, now) for article in articles]
            db.executemany(
                "INSERT OR REPLACE INTO source_files (path, size, mtime_ns, sha256, checked_ns,"
                " articles, skipped) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        f.path,
                        f.size,
                        f.mtime_ns,
                        f.sha256,
                        f.checked_ns,
                        f.articles,
                        json.dumps([[s.where, s.reason] for s in f.skipped], ensure_ascii=False),
                    )
                    for f in files
                ],
            )
        return changes

    def _save_article(self, db: sqlite3.Connection, article: Article, now: datetime) -> Change:
        canonical = canonical_url(article.url) if article.url else None
        row = db.execute(
            "SELECT id, source, content_hash FROM articles WHERE id = ?", (article.id,)
        ).fetchone()
        if row is None and canonical:
            # Only across sources: inside one feed, two entries with their own guids may
            # share a link (a live page updated in several entries) and stay two articles.
            row = db.execute(
                "SELECT id, source, content_hash FROM articles WHERE canonical_url = ?"
                " AND source != ? ORDER BY first_seen LIMIT 1",
                (canonical, article.source),
            ).fetchone()
        digest = article.content_hash
        published = article.published.isoformat() if article.published else None
        if row is None:
            db.execute(
                "INSERT INTO articles (id, source, position, title, url, published, first_seen,"
                " changed_at, content_hash, data, canonical_url)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    article.id,
                    article.source,
                    article.position,
                    article.title,
                    article.url,
                    published,
                    now.isoformat(),
                    now.isoformat(),
                    digest,
                    article_to_json(article),
                    canonical,
                ),
            )
            return "new"
        if row["source"] != article.source:
            logger.debug("%s: '%s' is stored from %s", article.source, article.title, row["source"])
            return "unchanged"
        if row["content_hash"] == digest:
            return "unchanged"
        article = replace(article, id=row["id"])
        db.execute(
            "UPDATE articles SET position = ?, title = ?, url = ?, published = ?, changed_at = ?,"
            " content_hash = ?, data = ?, canonical_url = ? WHERE id = ?",
            (
                article.position,
                article.title,
                article.url,
                published,
                now.isoformat(),
                digest,
                article_to_json(article),
                canonical,
                article.id,
            ),
        )
        return "updated"

    def article(self, article_id: str) -> Article | None:
        """Return one stored article by id."""
        row = self.db.execute("SELECT data FROM articles WHERE id = ?", (article_id,)).fetchone()
        return article_from_json(row["data"]) if row else None

    def article_first_seen(self, article_id: str) -> datetime | None:
        """Return when an article was first stored."""
        row = self.db.execute(
            "SELECT first_seen FROM articles WHERE id = ?", (article_id,)
        ).fetchone()
        return datetime.fromisoformat(row[0]) if row else None

    # Sources

    def file_records(self) -> dict[str, FileRecord]:
        """Return every local source file's fingerprint, by resolved path."""
        rows = self.db.execute("SELECT * FROM source_files")
        return {
            row["path"]: FileRecord(
                path=row["path"],
                size=row["size"],
                mtime_ns=row["mtime_ns"],
                sha256=row["sha256"],
                checked_ns=row["checked_ns"],
                articles=row["articles"],
                skipped=tuple(Skipped(w, r) for w, r in json.loads(row["skipped"])),
            )
            for row in rows
        }

    def record_health(self, records: Iterable[SourceHealth]) -> None:
        """Save each source's health, replacing what was known of it."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO sources (key, kind, last_attempt, last_success,"
                " http_status, item_count, last_error, last_warning, failing_since, etag,"
                " last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.key,
                        r.kind,
                        _iso(r.last_attempt),
                        _iso(r.last_success),
                        r.http_status,
                        r.item_count,
                        r.last_error,
                        r.last_warning,
                        _iso(r.failing_since),
                        r.etag,
                        r.last_modified,
                    )
                    for r in records
                ],
            )

    def source_health(self) -> dict[str, SourceHealth]:
        """Return what is known of every source that has been read, by its entry."""
        rows = self.db.execute("SELECT * FROM sources ORDER BY key")
        return {
            row["key"]: SourceHealth(
                key=row["key"],
                kind=row["kind"],
                last_attempt=_when(row["last_attempt"]),
                last_success=_when(row["last_success"]),
                http_status=row["http_status"],
                item_count=row["item_count"],
                last_error=row["last_error"],
                last_warning=row["last_warning"],
                failing_since=_when(row["failing_since"]),
                etag=row["etag"],
                last_modified=row["last_modified"],
            )
            for row in rows
        }

    def article_count(self) -> int:
        """Return how many articles are stored."""
        return int(self.db.execute("SELECT count(*) FROM articles").fetchone()[0])

    def eligible_articles(self) -> list[Article]:
        """Return articles not carried by any edition yet, newest first.

        An article edited since an edition carried it is eligible again; rows written
        before editions remembered the version count as carrying the current one.
        """
        return [article for article, _ in self.eligible_with_first_seen()]

    def eligible_with_first_seen(self) -> list[tuple[Article, datetime]]:
        """Return eligible articles, newest first, each with when it was first stored."""
        rows = self.db.execute(
            "SELECT data, first_seen FROM articles a"
            " WHERE NOT EXISTS (SELECT 1 FROM edition_items e WHERE e.article_id = a.id"
            " AND (e.content_hash IS NULL OR e.content_hash = a.content_hash))"
            " ORDER BY coalesce(a.published, a.first_seen) DESC, a.first_seen DESC,"
            " a.source, a.position"
        )
        return [
            (article_from_json(row["data"]), datetime.fromisoformat(row["first_seen"]))
            for row in rows
        ]

    # Editions

    def next_edition_id(self, day: date) -> str:
        """Return a fresh edition id for day: the date, with a counter after the first."""
        base = day.isoformat()
        taken = {
            row[0]
            for row in self.db.execute("SELECT id FROM editions WHERE edition_date = ?", (base,))
        }
        if base not in taken:
            return base
        n = 2
        while f"{base}-{n}" in taken:
            n += 1
        return f"{base}-{n}"

    def record_edition(
        self,
        edition: Edition,
        subject: str,
        due_date: date | None = None,
        content: RenderedEdition | None = None,
    ) -> None:
        """Remember edition, the articles it carried and its rendered content, at once."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO editions (id, edition_date, title, subject, created, item_count,"
                " due_date) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    edition.id,
                    edition.date.isoformat(),
                    edition.title,
                    subject,
                    edition.created.isoformat(),
                    len(edition.items),
                    due_date.isoformat() if due_date else None,
                ),
            )
            rows: list[tuple[str, str, int, str, str | None]] = []
            shown: list[tuple[str, str, str]] = []
            for n, item in enumerate(edition.items):
                rows.append((edition.id, item.article.id, n, item.article.content_hash, None))
                # Merged versions are used up with the item that carried them.
                rows.extend(
                    (edition.id, other.id, n, other.content_hash, item.article.id)
                    for other in item.also_in
                    if other.id != item.article.id
                )
                shown.extend((edition.id, item.article.id, hl.text) for hl in item.highlights)
            db.executemany(
                "INSERT OR IGNORE INTO edition_items"
                " (edition_id, article_id, position, content_hash, merged_into)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany(
                "INSERT INTO edition_highlights (edition_id, article_id, text) VALUES (?, ?, ?)",
                shown,
            )
            if content is not None:
                db.execute(
                    "INSERT INTO edition_content (edition_id, subject, preheader, html, text,"
                    " created, edition_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        edition.id,
                        content.subject,
                        content.preheader,
                        content.html,
                        content.text,
                        edition.created.isoformat(),
                        edition_to_json(edition),
                    ),
                )

    def editions(self, limit: int = 50) -> list[EditionRecord]:
        """Return the most recent editions, newest first."""
        rows = self.db.execute(
            "SELECT * FROM editions ORDER BY created DESC, id DESC LIMIT ?", (limit,)
        )
        return [_edition_record(row) for row in rows]

    def edition_for_due_date(self, due_date: date) -> EditionRecord | None:
        """Return the edition made for a scheduled due date, if there is one."""
        row = self.db.execute(
            "SELECT * FROM editions WHERE due_date = ?", (due_date.isoformat(),)
        ).fetchone()
        return _edition_record(row) if row else None

    def edition_article_ids(self, edition_id: str) -> list[str]:
        """Return the ids of the articles an edition carried, in order."""
        rows = self.db.execute(
            "SELECT article_id FROM edition_items WHERE edition_id = ? AND merged_into IS NULL"
            " ORDER BY position",
            (edition_id,),
        )
        return [row[0] for row in rows]

    def carried_since(self, since: datetime) -> list[Article]:
        """Return the articles editions made since `since` carried, merged ones included."""
        rows = self.db.execute(
            "SELECT a.data FROM articles a WHERE a.id IN (SELECT e.article_id"
            " FROM edition_items e JOIN editions d ON d.id = e.edition_id WHERE d.created >= ?)"
            " ORDER BY a.id",
            (since.isoformat(),),
        )
        return [article_from_json(row["data"]) for row in rows]

    def last_highlights(self) -> list[str]:
        """Return the highlight texts the most recent edition showed."""
        rows = self.db.execute(
            "SELECT text FROM edition_highlights WHERE edition_id ="
            " (SELECT id FROM editions ORDER BY created DESC, id DESC LIMIT 1)"
        )
        return [row[0] for row in rows]

    def edition(self, edition_id: str) -> EditionRecord | None:
        """Return one edition by id."""
        row = self.db.execute("SELECT * FROM editions WHERE id = ?", (edition_id,)).fetchone()
        return _edition_record(row) if row else None

    def edition_content(self, edition_id: str) -> EditionContent | None:
        """Return the subject, preheader, HTML and text an edition was rendered to."""
        row = self.db.execute(
            "SELECT * FROM edition_content WHERE edition_id = ?", (edition_id,)
        ).fetchone()
        if row is None:
            return None
        return EditionContent(
            row["edition_id"], row["subject"], row["preheader"], row["html"], row["text"]
        )

    def edition_model(self, edition_id: str) -> Edition | None:
        """Return the edition as it was made (items, highlights, sections), if it was kept."""
        row = self.db.execute(
            "SELECT edition_json FROM edition_content WHERE edition_id = ?", (edition_id,)
        ).fetchone()
        return edition_from_json(row[0]) if row and row[0] else None

    def variant_content(self, edition_id: str, sections: tuple[str, ...]) -> EditionContent | None:
        """Return what the edition was rendered to with only the given sections, if done."""
        row = self.db.execute(
            "SELECT * FROM edition_variants WHERE edition_id = ? AND sections = ?",
            (edition_id, json.dumps(sections)),
        ).fetchone()
        if row is None:
            return None
        return EditionContent(
            row["edition_id"], row["subject"], row["preheader"], row["html"], row["text"]
        )

    def save_variant(
        self, edition_id: str, sections: tuple[str, ...], content: RenderedEdition, now: datetime
    ) -> None:
        """Keep what the edition was rendered to with only the given sections."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO edition_variants (edition_id, sections, subject,"
                " preheader, html, text, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    edition_id,
                    json.dumps(sections),
                    content.subject,
                    content.preheader,
                    content.html,
                    content.text,
                    now.isoformat(),
                ),
            )

    def latest_sendable_edition(self) -> str | None:
        """Return the id of the newest edition whose content was stored."""
        row = self.db.execute(
            "SELECT e.id FROM editions e JOIN edition_content c ON c.edition_id = e.id"
            " ORDER BY e.created DESC, e.id DESC LIMIT 1"
        ).fetchone()
        return str(row[0]) if row else None

    # Subscribers

    def upsert_subscriber(
        self,
        email: str,
        name: str,
        topics: tuple[str, ...],
        timezone: str,
        now: datetime,
        *,
        resubscribe: bool = False,
    ) -> SubscriberChange:
        """Add or update a subscriber by address; an unsubscribed one stays so unless asked."""
        key = email.lower()
        topic_text = ",".join(topics)
        with self.transaction() as db:
            row = db.execute("SELECT * FROM subscribers WHERE email_key = ?", (key,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO subscribers (email, email_key, name, topics, timezone, status,"
                    " created, updated) VALUES (?, ?, ?, ?, ?, 'active', ?, ?)",
                    (email, key, name, topic_text, timezone, now.isoformat(), now.isoformat()),
                )
                return "new"
            status = row["status"]
            if status != "active" and resubscribe:
                status = "active"
            same = (row["email"], row["name"], row["topics"], row["timezone"], row["status"]) == (
                email,
                name,
                topic_text,
                timezone,
                status,
            )
            if same:
                return "unchanged" if status == "active" else "kept"
            db.execute(
                "UPDATE subscribers SET email = ?, name = ?, topics = ?, timezone = ?,"
                " status = ?, hard_failures = CASE WHEN ? = status THEN hard_failures ELSE 0"
                " END, updated = ? WHERE id = ?",
                (email, name, topic_text, timezone, status, status, now.isoformat(), row["id"]),
            )
            return "updated" if status == "active" else "kept"

    def add_subscribers(self, emails: Iterable[str], now: datetime) -> int:
        """Add many already-checked addresses in one transaction; known ones are left alone."""
        stamp = now.isoformat()
        with self.transaction() as db:
            cursor = db.executemany(
                "INSERT OR IGNORE INTO subscribers (email, email_key, created, updated)"
                " VALUES (?, ?, ?, ?)",
                ((email, email.lower(), stamp, stamp) for email in emails),
            )
            return cursor.rowcount

    def subscriber_by_id(self, subscriber_id: int) -> Subscriber | None:
        """Return the subscriber with this id, or None."""
        row = self.db.execute("SELECT * FROM subscribers WHERE id = ?", (subscriber_id,)).fetchone()
        return _subscriber(row) if row else None

    def subscriber_by_email(self, email: str) -> Subscriber | None:
        """Return the subscriber with this address (any case), or None."""
        row = self.db.execute(
            "SELECT * FROM subscribers WHERE email_key = ?", (email.lower(),)
        ).fetchone()
        return _subscriber(row) if row else None

    def set_subscriber_status(
        self, subscriber_id: int, status: SubscriberStatus, now: datetime
    ) -> bool:
        """Set a subscriber's status; return True if it changed."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE subscribers SET status = ?, updated = ?, hard_failures = 0"
                " WHERE id = ? AND status != ?",
                (status, now.isoformat(), subscriber_id, status),
            )
            return cursor.rowcount > 0

    def delete_subscriber(self, subscriber_id: int) -> bool:
        """Forget a subscriber and their delivery history; return True if there was one."""
        with self.transaction() as db:
            return db.execute("DELETE FROM subscribers WHERE id = ?", (subscriber_id,)).rowcount > 0

    def iter_subscribers(self, status: SubscriberStatus | None = None) -> Iterator[Subscriber]:
        """Yield subscribers in id order, streamed rather than loaded whole."""
        if status is None:
            cursor = self.db.execute("SELECT * FROM subscribers ORDER BY id")
        else:
            cursor = self.db.execute(
                "SELECT * FROM subscribers WHERE status = ? ORDER BY id", (status,)
            )
        for row in cursor:
            yield _subscriber(row)

    def subscriber_counts(self) -> dict[str, int]:
        """Return how many subscribers have each status."""
        rows = self.db.execute("SELECT status, count(*) FROM subscribers GROUP BY status")
        return {row[0]: int(row[1]) for row in rows}

    # The delivery ledger

    def add_deliveries(
        self,
        edition_id: str,
        now: datetime,
        zones: Collection[str] | None = None,
        default_zone: str = "UTC",
    ) -> int:
        """Give active subscribers a pending row for edition_id; return how many were new.

        With zones, only subscribers whose time zone (default_zone when they have none) is
        one of them get a row: local delivery time adds each zone when its hour comes.
        """
        sql = (
            "INSERT OR IGNORE INTO deliveries (edition_id, subscriber_id, email, name,"
            " status, updated) SELECT ?, id, email, name, 'pending', ? FROM subscribers"
            " WHERE status = 'active'"
        )
        params: list[str] = [edition_id, now.isoformat()]
        if zones is not None:
            marks = ",".join("?" * len(zones))
            sql += f" AND (CASE WHEN timezone = '' THEN ? ELSE timezone END) IN ({marks})"
            params += [default_zone, *sorted(zones)]
        with self.transaction() as db:
            return db.execute(sql, params).rowcount

    def subscriber_zones(self, default_zone: str) -> set[str]:
        """Return the time zones of the active subscribers (default_zone for those with none)."""
        rows = self.db.execute(
            "SELECT DISTINCT CASE WHEN timezone = '' THEN ? ELSE timezone END"
            " FROM subscribers WHERE status = 'active'",
            (default_zone,),
        )
        return {str(row[0]) for row in rows}

    def open_deliveries(self) -> dict[str, int]:
        """Return, per edition, how many ledger rows are still pending or sending."""
        rows = self.db.execute(
            "SELECT edition_id, count(*) FROM deliveries WHERE status IN ('pending', 'sending')"
            " GROUP BY edition_id ORDER BY edition_id"
        )
        return {str(row[0]): int(row[1]) for row in rows}

    def release_interrupted(
        self, edition_id: str, now: datetime, in_flight: Collection[int] = ()
    ) -> int:
        """Put back to pending the messages a dead run had in flight; return how many.

        Those are the rows in in_flight (started in a send journal, never finished) that
        are not final, and rows an older version left in `sending`. Their message may have
        reached the server before the process died, so the resend reuses the same
        Message-ID; the note says so in the report.
        """
        note = "interrupted while sending; resent with the same Message-ID"
        with self.transaction() as db:
            count = db.execute(
                "UPDATE deliveries SET status = 'pending', updated = ?, last_error = ?"
                " WHERE edition_id = ? AND status = 'sending'",
                (now.isoformat(), note, edition_id),
            ).rowcount
            for subscriber_id in sorted(in_flight):
                count += db.execute(
                    "UPDATE deliveries SET updated = ?, last_error = ?, attempts = attempts + 1"
                    " WHERE edition_id = ? AND subscriber_id = ? AND status = 'pending'",
                    (now.isoformat(), note, edition_id, subscriber_id),
                ).rowcount
            return count

    def pending_page(
        self, edition_id: str, after: int, run_started: datetime, limit: int
    ) -> list[tuple[int, str, str, tuple[str, ...]]]:
        """Return up to limit (subscriber id, email, name, topics) of rows to send, in order.

        Rows are taken from after (the last id handed out), so the search walks the
        primary key. Only rows of active subscribers count; rows put back to pending after
        run_started (this run's temporary failures) wait for the next run.
        """
        rows = self.db.execute(
            "SELECT d.subscriber_id, d.email, d.name, s.topics FROM deliveries d"
            " JOIN subscribers s ON s.id = d.subscriber_id"
            " WHERE d.edition_id = ? AND d.subscriber_id > ? AND d.status = 'pending'"
            " AND d.updated <= ? AND s.status = 'active' ORDER BY d.subscriber_id LIMIT ?",
            (edition_id, after, run_started.isoformat(), limit),
        )
        return [
            (int(row[0]), str(row[1]), str(row[2]), tuple(t for t in row[3].split(",") if t))
            for row in rows
        ]

    def active_among(self, subscriber_ids: Collection[int]) -> set[int]:
        """Return which of subscriber_ids are still active (not unsubscribed or bounced)."""
        marks = ",".join("?" * len(subscriber_ids))
        rows = self.db.execute(
            f"SELECT id FROM subscribers WHERE status = 'active' AND id IN ({marks})",  # noqa: S608
            tuple(subscriber_ids),
        )
        return {int(row[0]) for row in rows}

    def data_version(self) -> int:
        """Return a number that changes when another connection commits to the store."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def commit_watch(self) -> CommitWatch:
        """Return a watch that tells cheaply whether the store may have changed; it is
        closed with the store."""
        watch = CommitWatch(self)
        self._watches.append(watch)
        return watch

    def record_outcomes(self, outcomes: Iterable[Outcome]) -> None:
        """Record how sent messages ended, in one transaction.

        Recording the same outcome twice changes nothing (a journal replayed after a crash
        may hold outcomes already recorded): a row is only updated from an outcome newer
        than its last change.
        """
        plain: list[tuple[object, ...]] = []
        hard: list[Outcome] = []
        for done in outcomes:
            if done.hard:
                hard.append(done)
            else:
                plain.append(_outcome_row(done))
        with self.transaction() as db:
            # Nearly every outcome: one statement for all of them.
            db.executemany(_RECORD_OUTCOME, plain)
            for done in hard:
                self._record_hard_failure(db, done)

    def _record_hard_failure(self, db: sqlite3.Connection, done: Outcome) -> None:
        """Record a hard failure inside the caller's transaction.

        It counts against the subscriber: the BOUNCE_AFTER-th in a row (or one that says
        the mailbox does not exist) marks them bounced, and the row with them. A success
        clears the subscriber's hard failures in `skip_inactive` at the end of the run,
        once for all, rather than with one more statement per message.
        """
        if not db.execute(_RECORD_OUTCOME, _outcome_row(done)).rowcount:
            return
        row = db.execute(
            "UPDATE subscribers SET hard_failures = hard_failures + 1 WHERE id = ?"
            " RETURNING hard_failures",
            (done.subscriber_id,),
        ).fetchone()
        if done.bounce_now or (row is not None and row[0] >= BOUNCE_AFTER):
            db.execute(
                "UPDATE subscribers SET status = 'bounced', updated = ? WHERE id = ?"
                " AND status = 'active'",
                (done.when.isoformat(), done.subscriber_id),
            )
            db.execute(
                "UPDATE deliveries SET status = 'bounced' WHERE edition_id = ?"
                " AND subscriber_id = ?",
                (done.edition_id, done.subscriber_id),
            )

    def skip_inactive(self, edition_id: str, now: datetime) -> int:
        """Close a run: skip the rows of subscribers who left before their turn, and clear
        the hard failures of everyone who was sent the edition."""
        with self.transaction() as db:
            db.execute(
                "UPDATE subscribers SET hard_failures = 0 WHERE hard_failures > 0 AND id IN"
                " (SELECT subscriber_id FROM deliveries WHERE edition_id = ? AND status = 'sent')",
                (edition_id,),
            )
            return db.execute(
                "UPDATE deliveries SET status = 'skipped', updated = ?,"
                " last_error = 'not active when its turn came' WHERE edition_id = ?"
                " AND status = 'pending' AND subscriber_id IN"
                " (SELECT id FROM subscribers WHERE status != 'active')",
                (now.isoformat(), edition_id),
            ).rowcount

    def delivery_counts(self, edition_id: str) -> dict[str, int]:
        """Return how many ledger rows of edition_id have each status."""
        rows = self.db.execute(
            "SELECT status, count(*) FROM deliveries WHERE edition_id = ? GROUP BY status",
            (edition_id,),
        )
        return {row[0]: int(row[1]) for row in rows}

    def deliveries(
        self, edition_id: str, statuses: tuple[DeliveryStatus, ...] | None = None
    ) -> Iterator[Delivery]:
        """Yield the ledger rows of edition_id, optionally only some statuses."""
        if statuses:
            marks = ",".join("?" * len(statuses))
            cursor = self.db.execute(
                f"SELECT * FROM deliveries WHERE edition_id = ? AND status IN ({marks})"  # noqa: S608
                " ORDER BY subscriber_id",
                (edition_id, *statuses),
            )
        else:
            cursor = self.db.execute(
                "SELECT * FROM deliveries WHERE edition_id = ? ORDER BY subscriber_id",
                (edition_id,),
            )
        for row in cursor:
            yield _delivery(row)

    def unfinished_edition(self) -> str | None:
        """Return the newest edition with ledger rows still pending or sending."""
        row = self.db.execute(
            "SELECT d.edition_id FROM deliveries d JOIN editions e ON e.id = d.edition_id"
            " WHERE d.status IN ('pending', 'sending')"
            " ORDER BY e.created DESC, e.id DESC LIMIT 1"
        ).fetchone()
        return str(row[0]) if row else None


# A ledger row takes an outcome only while open and only from one newer than its last
# change, so that the same outcome recorded twice counts once.
_RECORD_OUTCOME = (
    "UPDATE deliveries SET status = ?, attempts = attempts + ?, last_error = ?,"
    " message_id = CASE WHEN ? != '' THEN ? ELSE message_id END, updated = ?"
    " WHERE edition_id = ? AND subscriber_id = ? AND status IN ('pending', 'sending')"
    " AND (updated IS NULL OR updated < ?)"
)


# SQLite's wal-index header (its WAL file format): the first 48 bytes of the -shm file,
# in native byte order, a version number first and an "initialised" flag at byte 12. A
# commit writes a second copy, then this one, so this copy changes once a commit is done.
_WAL_INDEX_HEADER = 48
_WAL_INDEX_VERSION = 3007000


class CommitWatch:
    """Tells whether anyone may have committed to the store since the last look.

    A send asks before every message, to skip a subscriber who left meanwhile. PRAGMA
    data_version answers exactly but takes two file-lock system calls, which between one
    message's socket waits and the next cost as much as building the message. In WAL mode
    the same news is in the wal-index header that SQLite keeps in the shared -shm file:
    a read-only mapping of it is read with no system call at all. Any change of the
    header (a commit, a checkpoint, a write caught half-way) says "look again", so a
    commit is never missed; where the header cannot be mapped, data_version is asked.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._map: mmap.mmap | None = None
        # SQLite puts the -shm file beside the real file, a symbolic link resolved.
        real = store.path.resolve()
        shm = real.with_name(real.name + "-shm")
        try:
            with shm.open("rb") as file:
                mapped = mmap.mmap(file.fileno(), _WAL_INDEX_HEADER, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as err:
            logger.debug("%s: not mapped (%s); asking data_version instead", shm, err)
        else:
            version = struct.unpack_from("=I", mapped, 0)[0]
            if version == _WAL_INDEX_VERSION and mapped[12] == 1:
                self._map = mapped
            else:
                logger.debug("%s: unknown wal-index header; asking data_version instead", shm)
                mapped.close()
        self._last: bytes | int = self._look()

    def _look(self) -> bytes | int:
        if self._map is not None:
            return self._map[:_WAL_INDEX_HEADER]
        return self._store.data_version()

    @property
    def mapped(self) -> bool:
        """Return whether the watch reads the header itself rather than asking SQLite."""
        return self._map is not None

    def changed(self) -> bool:
        """Return whether the store may have changed since the last call (or the start)."""
        now = self._look()
        if now == self._last:
            return False
        self._last = now
        return True

    def close(self) -> None:
        """Let go of the mapping: it must not outlive the store's connection, which keeps
        the -shm file from being cut short."""
        if self._map is not None:
            self._map.close()
            self._map = None


def _outcome_row(done: Outcome) -> tuple[object, ...]:
    when = done.when.isoformat()
    return (
        done.status,
        done.tries,
        done.error,
        done.message_id,
        done.message_id,
        when,
        done.edition_id,
        done.subscriber_id,
        when,
    )


SubscriberChange = Literal["new", "updated", "unchanged", "kept"]


@dataclass(frozen=True)
class Outcome:
    """How one message ended, to be recorded in its ledger row."""

    edition_id: str
    subscriber_id: int
    status: DeliveryStatus
    when: datetime
    message_id: str = ""
    error: str = ""
    # Tries made in this run (a message that never went counts none).
    tries: int = 0
    # A 5xx: counts towards bouncing the subscriber.
    hard: bool = False
    # The server said the mailbox does not exist: bounce at once.
    bounce_now: bool = False


@dataclass(frozen=True)
class EditionContent:
    """What an edition was rendered to, kept so that a resumed send sends the same."""

    edition_id: str
    subject: str
    preheader: str
    html: str
    text: str


def _subscriber(row: sqlite3.Row) -> Subscriber:
    return Subscriber(
        id=int(row["id"]),
        email=row["email"],
        name=row["name"],
        topics=tuple(t for t in row["topics"].split(",") if t),
        timezone=row["timezone"],
        status=row["status"],
        created=datetime.fromisoformat(row["created"]),
        updated=datetime.fromisoformat(row["updated"]),
    )


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(
        edition_id=row["edition_id"],
        subscriber_id=int(row["subscriber_id"]),
        email=row["email"],
        status=row["status"],
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        message_id=row["message_id"],
        updated=datetime.fromisoformat(row["updated"]) if row["updated"] else None,
    )
