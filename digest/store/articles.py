"""Articles, and what the sources they come from were like when last read."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Row, bindparam, exists, func, or_, select

from digest.models import Article, FileRecord, Skipped, SourceHealth, canonical_url
from digest.store.codecs import article_from_dict, article_to_dict
from digest.store.db import Database
from digest.store.schema import articles, edition_items, source_files, sources

logger = logging.getLogger(__name__)

Change = Literal["new", "updated", "unchanged"]

# Keys per IN (...) when a save looks up what it may match: well under SQLite's and
# PostgreSQL's limits on bound parameters.
LOOKUP_CHUNK = 500

# The source_files columns in FileRecord's field order.
_FILE_COLUMNS = ("path", "size", "mtime_ns", "sha256", "checked_ns", "articles", "skipped")


class Articles:
    """The articles table and the sources' memory (file fingerprints, health)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # Writing

    def save(
        self, items: Iterable[Article], files: Iterable[FileRecord], now: datetime
    ) -> list[Change]:
        """Store articles and the fingerprints of their files in one transaction."""
        # An article is known by its id or, failing that, its canonical link: the same
        # story reached through a second source is stored once, under the source that
        # brought it first, so that two feeds differing in detail do not flip it back and
        # forth. The fingerprints go in the same transaction: a crash in between cannot
        # mark a file as read whose articles were never stored.
        batch = list(items)
        records = [_file_row(f) for f in files]
        with self.db.write() as conn:
            matcher = _Matcher(conn, batch)
            changes = [matcher.save(article, now) for article in batch]
            matcher.flush(conn)
            if records:
                stmt = self.db.insert(source_files)
                # A file read again replaces its fingerprint whole.
                stmt = stmt.on_conflict_do_update(
                    index_elements=[source_files.c.path],
                    set_={
                        c.name: stmt.excluded[c.name]
                        for c in source_files.columns
                        if not c.primary_key
                    },
                )
                conn.execute(stmt, records)
        return changes

    def save_one(self, article: Article, now: datetime) -> Change:
        """Store article; report whether it was new, edited or already known."""
        return self.save([article], [], now)[0]

    def record_health(self, records: Iterable[SourceHealth]) -> None:
        """Save each source's health, replacing what was known of it."""
        rows = [_health_row(r) for r in records]
        if not rows:
            return
        stmt = self.db.insert(sources)
        stmt = stmt.on_conflict_do_update(
            index_elements=[sources.c.key],
            set_={c.name: stmt.excluded[c.name] for c in sources.columns if not c.primary_key},
        )
        with self.db.write() as conn:
            conn.execute(stmt, rows)

    # Reading

    def get(self, article_id: str) -> Article | None:
        """Return one stored article by id."""
        with self.db.read() as conn:
            data = conn.scalar(select(articles.c.data).where(articles.c.id == article_id))
        return article_from_dict(data) if data is not None else None

    def first_seen(self, article_id: str) -> datetime | None:
        """Return when an article was first stored."""
        with self.db.read() as conn:
            seen: datetime | None = conn.scalar(
                select(articles.c.first_seen).where(articles.c.id == article_id)
            )
        return seen

    def count(self) -> int:
        """Return how many articles are stored."""
        with self.db.read() as conn:
            return int(conn.scalar(select(func.count()).select_from(articles)) or 0)

    def eligible(self) -> list[Article]:
        """Return articles not carried by any edition yet, newest first."""
        return [article for article, _ in self.eligible_with_first_seen()]

    def eligible_with_first_seen(self) -> list[tuple[Article, datetime]]:
        """Return eligible articles, newest first, each with when it was first stored."""
        # An article edited since an edition carried it is eligible again; items written
        # before editions remembered the version count as carrying the current one.
        carried = exists().where(
            edition_items.c.article_id == articles.c.id,
            or_(
                edition_items.c.content_hash.is_(None),
                edition_items.c.content_hash == articles.c.content_hash,
            ),
        )
        query = (
            select(articles.c.data, articles.c.first_seen)
            .where(~carried)
            .order_by(
                func.coalesce(articles.c.published, articles.c.first_seen).desc(),
                articles.c.first_seen.desc(),
                articles.c.source,
                articles.c.position,
            )
        )
        with self.db.read() as conn:
            return [(article_from_dict(data), seen) for data, seen in conn.execute(query)]

    def file_records(self) -> dict[str, FileRecord]:
        """Return every local source file's fingerprint, by resolved path."""
        columns = [source_files.c[name] for name in _FILE_COLUMNS]
        with self.db.read() as conn:
            rows = conn.execute(select(*columns)).all()
        # Unpacked rather than read by attribute: an ingest reads every file's record,
        # and on a large folder the attribute look-ups were most of the time.
        return {
            path: FileRecord(
                path, size, mtime_ns, sha256, checked_ns, count, tuple(Skipped(*s) for s in skipped)
            )
            for path, size, mtime_ns, sha256, checked_ns, count, skipped in rows
        }

    def source_health(self) -> dict[str, SourceHealth]:
        """Return what is known of every source that has been read, by its entry."""
        with self.db.read() as conn:
            rows = conn.execute(select(sources).order_by(sources.c.key)).all()
        return {row.key: _source_health(row) for row in rows}


@dataclass(eq=False)
class _Known:
    """What a save needs of an article stored, or about to be, to match another to it."""

    id: str
    source: str
    content_hash: str
    canonical: str | None
    first_seen: datetime


class _Matcher:
    """Match one save's articles to the stored ones, and write the changes at the end."""

    # The stored rows the batch can match are read up front, a few queries in all: two or
    # three statements per article made bench/ingest.py's Markdown pass 1.7 times as
    # slow. The batch's own articles are added to them as it goes, so that each is
    # matched exactly as if the ones before it had been written already.

    def __init__(self, conn: Connection, batch: list[Article]) -> None:
        ids = sorted({a.id for a in batch})
        links = sorted({c for a in batch if (c := _canonical(a)) is not None})
        columns = (
            articles.c.id,
            articles.c.source,
            articles.c.content_hash,
            articles.c.canonical_url,
            articles.c.first_seen,
        )
        found: dict[str, _Known] = {}
        for column, keys in ((articles.c.id, ids), (articles.c.canonical_url, links)):
            for chunk in _chunks(keys):
                for row in conn.execute(select(*columns).where(column.in_(chunk))):
                    found[row.id] = _Known(*row)
        self.by_id = found
        self.by_link: dict[str, list[_Known]] = defaultdict(list)
        for known in found.values():
            if known.canonical is not None:
                self.by_link[known.canonical].append(known)
        self.inserts: dict[str, dict[str, Any]] = {}
        self.updates: dict[str, dict[str, Any]] = {}

    def save(self, article: Article, now: datetime) -> Change:
        """Match article and note what storing it changes."""
        canonical = _canonical(article)
        row = self.by_id.get(article.id)
        if row is None and canonical:
            # Only across sources: inside one feed, two entries with their own guids may
            # share a link (a live page updated in several entries) and stay two articles.
            # The first seen wins; the id breaks a tie, as it would in any database.
            others = (k for k in self.by_link[canonical] if k.source != article.source)
            row = min(others, key=lambda k: (k.first_seen, k.id), default=None)
        digest = article.content_hash
        if row is None:
            known = _Known(article.id, article.source, digest, canonical, now)
            self.by_id[article.id] = known
            if canonical:
                self.by_link[canonical].append(known)
            self.inserts[article.id] = {
                "id": article.id,
                "source": article.source,
                "first_seen": now,
                **_article_values(article, canonical, digest, now),
            }
            return "new"
        if row.source != article.source:
            logger.debug("%s: '%s' is stored from %s", article.source, article.title, row.source)
            return "unchanged"
        if row.content_hash == digest:
            return "unchanged"
        values = _article_values(replace(article, id=row.id), canonical, digest, now)
        if row.canonical != canonical:
            if row.canonical is not None:
                self.by_link[row.canonical].remove(row)
            if canonical is not None:
                self.by_link[canonical].append(row)
        row.content_hash, row.canonical = digest, canonical
        pending = self.inserts.get(row.id)
        if pending is not None:
            # New in this same batch: it is inserted as last edited.
            pending.update(values)
        else:
            self.updates[row.id] = {"key": row.id, **values}
        return "updated"

    def flush(self, conn: Connection) -> None:
        """Write the inserts and updates noted, one statement for each kind."""
        if self.inserts:
            conn.execute(articles.insert(), list(self.inserts.values()))
        if self.updates:
            # The SET clause comes from the parameters' keys; "key" is the row's id.
            stmt = articles.update().where(articles.c.id == bindparam("key"))
            conn.execute(stmt, list(self.updates.values()))


def _canonical(article: Article) -> str | None:
    return canonical_url(article.url) if article.url else None


def _chunks(keys: list[str]) -> Iterator[list[str]]:
    """Yield keys in slices small enough for any database's limit on bound parameters."""
    for start in range(0, len(keys), LOOKUP_CHUNK):
        yield keys[start : start + LOOKUP_CHUNK]


def _article_values(
    article: Article, canonical: str | None, digest: str, now: datetime
) -> dict[str, Any]:
    """Return the columns a save (insert or update) sets from article."""
    return {
        "position": article.position,
        "title": article.title,
        "url": article.url,
        "canonical_url": canonical,
        "published": article.published,
        "changed_at": now,
        "content_hash": digest,
        "data": article_to_dict(article),
    }


def _file_row(record: FileRecord) -> dict[str, Any]:
    return {
        "path": record.path,
        "size": record.size,
        "mtime_ns": record.mtime_ns,
        "sha256": record.sha256,
        "checked_ns": record.checked_ns,
        "articles": record.articles,
        "skipped": [[s.where, s.reason] for s in record.skipped],
    }


def _health_row(record: SourceHealth) -> dict[str, Any]:
    return {
        "key": record.key,
        "kind": record.kind,
        "last_attempt": record.last_attempt,
        "last_success": record.last_success,
        "http_status": record.http_status,
        "item_count": record.item_count,
        "last_error": record.last_error,
        "last_warning": record.last_warning,
        "failing_since": record.failing_since,
        "etag": record.etag,
        "last_modified": record.last_modified,
    }


def _source_health(row: Row[Any]) -> SourceHealth:
    return SourceHealth(
        key=row.key,
        kind=row.kind,
        last_attempt=row.last_attempt,
        last_success=row.last_success,
        http_status=row.http_status,
        item_count=int(row.item_count),
        last_error=row.last_error,
        last_warning=row.last_warning,
        failing_since=row.failing_since,
        etag=row.etag,
        last_modified=row.last_modified,
    )
