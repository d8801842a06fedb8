"""Articles, and what the sources they come from were like when last read."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    Row,
    Select,
    bindparam,
    exists,
    false,
    func,
    or_,
    select,
)

from digest.models import (
    Article,
    Assessment,
    Candidate,
    FileRecord,
    Skipped,
    SourceHealth,
    canonical_url,
)
from digest.store.codecs import article_from_dict, article_to_dict
from digest.store.db import Database
from digest.store.schema import articles, edition_items, editions, source_files, sources

logger = logging.getLogger(__name__)

Change = Literal["new", "updated", "unchanged"]
# What ingest works out once per stored version of an article (digest.select.assess).
Assess = Callable[[Article], Assessment]

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
        return [change for change, _ in self.save_judged(items, files, now)]

    def save_judged(
        self,
        items: Iterable[Article],
        files: Iterable[FileRecord],
        now: datetime,
        assess: Assess | None = None,
    ) -> list[tuple[Change, str | None]]:
        """Store articles and their files' fingerprints; return each change and junk verdict.

        assess is called once for each new or edited version, and what it says is
        stored with it; an unchanged article's verdict is the stored one. Without it the
        verdict stays unknown until judge_waiting.
        """
        # An article is known by its id or, failing that, its canonical link: the same
        # story reached through a second source is stored once, under the source that
        # brought it first, so that two feeds differing in detail do not flip it back and
        # forth. The fingerprints go in the same transaction: a crash in between cannot
        # mark a file as read whose articles were never stored.
        batch = list(items)
        records = [_file_row(f) for f in files]
        with self.db.write() as conn:
            matcher = _Matcher(conn, batch, assess)
            changes = [
                matcher.save(article, link, now)
                for article, link in zip(batch, matcher.links, strict=True)
            ]
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

    def note_files(self, seen: Collection[str], known: Collection[str], now: datetime) -> None:
        """Mark the known files a run did not find as gone since now, the rest as present."""
        missing = sorted(set(known) - set(seen))
        with self.db.write() as conn:
            gone = set(
                conn.scalars(
                    select(source_files.c.path).where(source_files.c.gone_since.is_not(None))
                )
            )
            back = sorted(gone & set(seen))
            missing = [p for p in missing if p not in gone]
            for chunk, when in [
                *((c, now) for c in _chunks(missing)),
                *((c, None) for c in _chunks(back)),
            ]:
                conn.execute(
                    source_files.update()
                    .where(source_files.c.path.in_(chunk))
                    .values(gone_since=when)
                )

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
        query = _store_order(
            select(articles.c.data, articles.c.first_seen).where(articles.c.carried == false())
        )
        with self.db.read() as conn:
            return [(article_from_dict(data), seen) for data, seen in conn.execute(query)]

    def candidates_query(self, since: datetime) -> Select[Any]:
        """Return the query candidates runs, for a look at its plan."""
        return _store_order(
            select(*_CANDIDATE_COLUMNS).where(
                articles.c.carried == false(),
                articles.c.junk == false(),
                articles.c.appeared >= since,
            )
        )

    def candidates(self, since: datetime) -> list[Candidate]:
        """Return the articles an edition may carry, newest first: judged not junk, not
        carried yet in this version, appeared since `since`."""
        with self.db.read() as conn:
            return [Candidate(*row) for row in conn.execute(self.candidates_query(since))]

    def sent_since(self, since: datetime) -> list[Candidate]:
        """Return the articles editions made since `since` carried, merged ones included."""
        carried = (
            select(edition_items.c.article_id)
            .join(editions, editions.c.id == edition_items.c.edition_id)
            .where(editions.c.created >= since)
        )
        query = (
            select(*_CANDIDATE_COLUMNS).where(articles.c.id.in_(carried)).order_by(articles.c.id)
        )
        with self.db.read() as conn:
            return [Candidate(*row) for row in conn.execute(query)]

    def load(self, ids: Sequence[str]) -> dict[str, Article]:
        """Return the stored articles with the given ids, by id."""
        found: dict[str, Article] = {}
        with self.db.read() as conn:
            for chunk in _chunks(sorted(set(ids))):
                query = select(articles.c.id, articles.c.data).where(articles.c.id.in_(chunk))
                found.update((key, article_from_dict(data)) for key, data in conn.execute(query))
        return found

    def judge_waiting(self, assess: Assess, batch: int = LOOKUP_CHUNK) -> int:
        """Judge once the articles not carried whose verdict is unknown; return how many.

        Only a store made before verdicts were stored (or articles saved without
        assess) has any.
        """
        waiting = select(articles.c.id, articles.c.data).where(
            articles.c.carried == false(), articles.c.junk.is_(None)
        )
        done = 0
        while True:
            with self.db.write() as conn:
                rows = conn.execute(waiting.limit(batch)).all()
                if not rows:
                    return done
                values = []
                for key, data in rows:
                    found = assess(article_from_dict(data))
                    values.append({"key": key, **_assessed(found)})
                stmt = articles.update().where(articles.c.id == bindparam("key"))
                conn.execute(stmt, values)
            done += len(rows)

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
    junk_reason: str | None = None


_CANDIDATE_COLUMNS = (
    articles.c.id,
    articles.c.source,
    articles.c.source_name,
    articles.c.title,
    articles.c.appeared,
    articles.c.signature,
)


def _store_order(query: Select[Any]) -> Select[Any]:
    """Order query newest first, then by when first stored, then by place in the source."""
    return query.order_by(
        func.coalesce(articles.c.published, articles.c.first_seen).desc(),
        articles.c.first_seen.desc(),
        articles.c.source,
        articles.c.position,
    )


def _assessed(found: Assessment | None) -> dict[str, Any]:
    if found is None:
        return {"junk": None, "junk_reason": None, "signature": None}
    return {
        "junk": found.junk_reason is not None,
        "junk_reason": found.junk_reason,
        "signature": found.signature,
    }


def carried_now(conn: Connection, ids: Collection[str]) -> None:
    """Mark the articles with these ids carried if an edition holds their current version."""
    # Items written before editions remembered the version count as carrying the current.
    holds = exists().where(
        edition_items.c.article_id == articles.c.id,
        or_(
            edition_items.c.content_hash.is_(None),
            edition_items.c.content_hash == articles.c.content_hash,
        ),
    )
    for chunk in _chunks(sorted(ids)):
        conn.execute(articles.update().where(articles.c.id.in_(chunk)).values(carried=holds))


class _Matcher:
    """Match one save's articles to the stored ones, and write the changes at the end."""

    # The stored rows the batch can match are read up front, a few queries in all: two or
    # three statements per article made bench/ingest.py's Markdown pass 1.7 times as
    # slow. The batch's own articles are added to them as it goes, so that each is
    # matched exactly as if the ones before it had been written already.

    def __init__(self, conn: Connection, batch: list[Article], assess: Assess | None) -> None:
        self.assess = assess
        ids = sorted({a.id for a in batch})
        # Each article's canonical link, worked out once: it showed in a large ingest.
        self.links = [_canonical(a) for a in batch]
        links = sorted({c for c in self.links if c is not None})
        columns = (
            articles.c.id,
            articles.c.source,
            articles.c.content_hash,
            articles.c.canonical_url,
            articles.c.first_seen,
            articles.c.junk_reason,
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

    def save(
        self, article: Article, canonical: str | None, now: datetime
    ) -> tuple[Change, str | None]:
        """Match article (whose canonical link is given) and note what storing it changes.

        Return the change and the article's junk verdict.
        """
        row = self.by_id.get(article.id)
        if row is None and canonical:
            # Only across sources: inside one feed, two entries with their own guids may
            # share a link (a live page updated in several entries) and stay two articles.
            # The first seen wins; the id breaks a tie, as it would in any database.
            others = (k for k in self.by_link[canonical] if k.source != article.source)
            row = min(others, key=lambda k: (k.first_seen, k.id), default=None)
        digest = article.content_hash
        if row is None:
            found = self.assess(article) if self.assess else None
            reason = found.junk_reason if found else None
            known = _Known(article.id, article.source, digest, canonical, now, reason)
            self.by_id[article.id] = known
            if canonical:
                self.by_link[canonical].append(known)
            self.inserts[article.id] = {
                "id": article.id,
                "source": article.source,
                "first_seen": now,
                **_article_values(article, canonical, digest, now, now),
                **_assessed(found),
            }
            return "new", reason
        if row.source != article.source:
            logger.debug("%s: '%s' is stored from %s", article.source, article.title, row.source)
            return "unchanged", row.junk_reason
        if row.content_hash == digest:
            return "unchanged", row.junk_reason
        found = self.assess(article) if self.assess else None
        row.junk_reason = found.junk_reason if found else None
        values = {
            **_article_values(replace(article, id=row.id), canonical, digest, now, row.first_seen),
            **_assessed(found),
        }
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
        return "updated", row.junk_reason

    def flush(self, conn: Connection) -> None:
        """Write the inserts and updates noted, one statement for each kind."""
        if self.inserts:
            conn.execute(articles.insert(), list(self.inserts.values()))
        if self.updates:
            # The SET clause comes from the parameters' keys; "key" is the row's id.
            stmt = articles.update().where(articles.c.id == bindparam("key"))
            conn.execute(stmt, list(self.updates.values()))
            # An edit makes an article eligible again, unless an edition holds this version.
            carried_now(conn, self.updates.keys())


def _canonical(article: Article) -> str | None:
    return canonical_url(article.url) if article.url else None


def _chunks(keys: list[str]) -> Iterator[list[str]]:
    """Yield keys in slices small enough for any database's limit on bound parameters."""
    for start in range(0, len(keys), LOOKUP_CHUNK):
        yield keys[start : start + LOOKUP_CHUNK]


def _article_values(
    article: Article, canonical: str | None, digest: str, now: datetime, first_seen: datetime
) -> dict[str, Any]:
    """Return the columns a save (insert or update) sets from article."""
    return {
        "source_name": article.source_name,
        "appeared": article.updated or article.published or first_seen,
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
