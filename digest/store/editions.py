"""Editions: what each carried, the highlights it showed and what it was rendered to."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, Select, select

from digest.models import (
    Article,
    Carried,
    Edition,
    EditionContent,
    EditionRecord,
    RenderedEdition,
)
from digest.store.articles import LOOKUP_CHUNK, carried_now
from digest.store.codecs import article_from_dict, edition_from_dict, edition_to_dict
from digest.store.db import Database
from digest.store.ledger import Audience, insert_rows
from digest.store.schema import (
    articles,
    edition_content,
    edition_highlights,
    edition_items,
    edition_variants,
    editions,
)

logger = logging.getLogger(__name__)

# The sentence fingerprints of an article as carried (digest.highlights.sentence_keys).
Fingerprint = Callable[[Article], Sequence[str]]


class Editions:
    """The editions made, their items, highlights, content and section-set variants."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def next_id(self, day: date) -> str:
        """Return a fresh edition id for day: the date, with a counter after the first."""
        base = day.isoformat()
        with self.db.read() as conn:
            taken = set(conn.scalars(select(editions.c.id).where(editions.c.edition_date == day)))
        if base not in taken:
            return base
        n = 2
        while f"{base}-{n}" in taken:
            n += 1
        return f"{base}-{n}"

    def record(
        self,
        edition: Edition,
        subject: str,
        due_date: date | None = None,
        content: RenderedEdition | None = None,
        audience: Audience | None = None,
        fingerprint: Fingerprint | None = None,
    ) -> None:
        """Remember edition, the articles it carried and its rendered content, at once.

        With audience, the edition's ledger rows are added in the same transaction: an
        edition to be sent is never on record without the rows that send it. With
        fingerprint, each item keeps its article's sentence fingerprints, so that an
        update of the article later shows only what it did not have.
        """
        items: list[dict[str, Any]] = []
        shown: list[dict[str, Any]] = []
        for n, item in enumerate(edition.items):
            sentences = list(fingerprint(item.article)) if fingerprint is not None else None
            items.append(_item_row(edition.id, item.article, n, None, sentences))
            # Merged versions are used up with the item that carried them.
            items.extend(
                _item_row(edition.id, other, n, item.article.id)
                for other in item.also_in
                if other.id != item.article.id
            )
            shown.extend(
                {"edition_id": edition.id, "article_id": item.article.id, "text": hl.text}
                for hl in item.highlights
            )
        with self.db.write() as conn:
            conn.execute(
                editions.insert().values(
                    id=edition.id,
                    edition_date=edition.date,
                    title=edition.title,
                    subject=subject,
                    created=edition.created,
                    item_count=len(edition.items),
                    due_date=due_date,
                    note=edition.note,
                )
            )
            if items:
                # The same article twice in one edition (a merge gone round) is kept once.
                conn.execute(self.db.insert(edition_items).on_conflict_do_nothing(), items)
                # Selection reads the flag, not the items: see digest.store.articles.
                carried_now(conn, {row["article_id"] for row in items})
            if shown:
                conn.execute(edition_highlights.insert(), shown)
            if content is not None:
                conn.execute(
                    edition_content.insert().values(
                        edition_id=edition.id,
                        subject=content.subject,
                        preheader=content.preheader,
                        html=content.html,
                        text=content.text,
                        created=edition.created,
                        edition=edition_to_dict(edition),
                    )
                )
            if audience is not None:
                insert_rows(self.db, conn, edition.id, audience)

    def recent(self, limit: int = 50) -> list[EditionRecord]:
        """Return the most recent editions, newest first."""
        query = _newest(select(editions)).limit(limit)
        with self.db.read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def for_due_date(self, due_date: date) -> EditionRecord | None:
        """Return the edition made for a scheduled due date, if there is one."""
        with self.db.read() as conn:
            row = conn.execute(select(editions).where(editions.c.due_date == due_date)).first()
        return _record(row) if row else None

    def get(self, edition_id: str) -> EditionRecord | None:
        """Return one edition by id."""
        with self.db.read() as conn:
            row = conn.execute(select(editions).where(editions.c.id == edition_id)).first()
        return _record(row) if row else None

    def article_ids(self, edition_id: str) -> list[str]:
        """Return the ids of the articles an edition carried, in order."""
        query = (
            select(edition_items.c.article_id)
            .where(edition_items.c.edition_id == edition_id, edition_items.c.merged_into.is_(None))
            .order_by(edition_items.c.position)
        )
        with self.db.read() as conn:
            return list(conn.scalars(query))

    def carried_since(self, since: datetime) -> list[Article]:
        """Return the articles editions made since `since` carried, merged ones included."""
        carried = (
            select(edition_items.c.article_id)
            .join(editions, editions.c.id == edition_items.c.edition_id)
            .where(editions.c.created >= since)
        )
        query = select(articles.c.data).where(articles.c.id.in_(carried)).order_by(articles.c.id)
        with self.db.read() as conn:
            return [article_from_dict(data) for data in conn.scalars(query)]

    def last_highlights(self) -> list[str]:
        """Return the highlight texts the most recent edition showed."""
        newest = _newest(select(editions.c.id)).limit(1).scalar_subquery()
        query = (
            select(edition_highlights.c.text)
            .where(edition_highlights.c.edition_id == newest)
            .order_by(edition_highlights.c.id)
        )
        with self.db.read() as conn:
            return list(conn.scalars(query))

    def content(self, edition_id: str) -> EditionContent | None:
        """Return the subject, preheader, HTML and text an edition was rendered to."""
        query = select(edition_content).where(edition_content.c.edition_id == edition_id)
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return _content(row) if row else None

    def model(self, edition_id: str) -> Edition | None:
        """Return the edition as it was made (items, highlights, sections, note), if kept."""
        query = (
            select(edition_content.c.edition, editions.c.note)
            .join(editions, editions.c.id == edition_content.c.edition_id)
            .where(edition_content.c.edition_id == edition_id)
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        # An edition recorded before its document was kept has none (NULL or JSON null).
        if row is None or not row.edition:
            return None
        return replace(edition_from_dict(row.edition), note=row.note or "")

    def note(self, edition_id: str) -> str:
        """Return the editor's note an edition carried (empty: none)."""
        with self.db.read() as conn:
            found = conn.scalar(select(editions.c.note).where(editions.c.id == edition_id))
        return str(found or "")

    def carrying_note(self, text: str) -> str | None:
        """Return the id of the newest edition that carried exactly this note, if any."""
        if not text:
            return None
        query = _newest(select(editions.c.id).where(editions.c.note == text)).limit(1)
        with self.db.read() as conn:
            found = conn.scalar(query)
        return str(found) if found is not None else None

    def carried(self, article_ids: Sequence[str]) -> dict[str, Carried]:
        """Return, for each of these articles an edition carried, what readers last saw of it."""
        ids = sorted(set(article_ids))
        latest: dict[str, Any] = {}
        shown: dict[str, list[str]] = {}
        with self.db.read() as conn:
            for start in range(0, len(ids), LOOKUP_CHUNK):
                chunk = ids[start : start + LOOKUP_CHUNK]
                query = _newest(
                    select(
                        edition_items.c.article_id,
                        edition_items.c.title,
                        edition_items.c.sentences,
                        editions.c.id,
                        editions.c.edition_date,
                    )
                    .join(editions, editions.c.id == edition_items.c.edition_id)
                    .where(edition_items.c.article_id.in_(chunk))
                )
                for row in conn.execute(query):
                    latest.setdefault(row.article_id, row)
                texts = (
                    select(edition_highlights.c.article_id, edition_highlights.c.text)
                    .where(edition_highlights.c.article_id.in_(chunk))
                    .order_by(edition_highlights.c.id)
                )
                for key, text in conn.execute(texts):
                    shown.setdefault(key, []).append(text)
        return {
            key: Carried(
                key,
                row.id,
                row.edition_date,
                row.title,
                tuple(shown.get(key, ())),
                frozenset(row.sentences) if row.sentences is not None else None,
            )
            for key, row in latest.items()
        }

    def variant(self, edition_id: str, sections: tuple[str, ...]) -> EditionContent | None:
        """Return what the edition was rendered to with only the given sections, if done."""
        query = select(edition_variants).where(
            edition_variants.c.edition_id == edition_id,
            edition_variants.c.sections == _sections_key(sections),
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return _content(row) if row else None

    def save_variant(
        self, edition_id: str, sections: tuple[str, ...], content: RenderedEdition, now: datetime
    ) -> None:
        """Keep what the edition was rendered to with only the given sections."""
        # Two senders may render the same set: the first one kept is the one sent.
        stmt = (
            self.db.insert(edition_variants)
            .values(
                edition_id=edition_id,
                sections=_sections_key(sections),
                subject=content.subject,
                preheader=content.preheader,
                html=content.html,
                text=content.text,
                created=now,
            )
            .on_conflict_do_nothing()
        )
        with self.db.write() as conn:
            conn.execute(stmt)

    def with_content(self) -> set[str]:
        """Return the ids of the editions whose rendered content was stored."""
        with self.db.read() as conn:
            return {str(i) for i in conn.scalars(select(edition_content.c.edition_id))}

    def top_titles(self) -> dict[str, str]:
        """Return the title of each edition's first item, by edition id (for the archive)."""
        query = (
            select(edition_items.c.edition_id, articles.c.title)
            .join(articles, articles.c.id == edition_items.c.article_id)
            .where(edition_items.c.position == 0, edition_items.c.merged_into.is_(None))
        )
        with self.db.read() as conn:
            return {str(row.edition_id): str(row.title) for row in conn.execute(query)}

    def latest_sendable(self) -> str | None:
        """Return the id of the newest edition whose content was stored."""
        query = _newest(
            select(editions.c.id).join(
                edition_content, edition_content.c.edition_id == editions.c.id
            )
        ).limit(1)
        with self.db.read() as conn:
            found = conn.scalar(query)
        return str(found) if found is not None else None


def _newest(query: Select[Any]) -> Select[Any]:
    """Order query newest edition first; the id breaks a tie in creation time."""
    return query.order_by(editions.c.created.desc(), editions.c.id.desc())


def _sections_key(sections: tuple[str, ...]) -> str:
    # The key's text must match what earlier stores wrote: json.dumps' default spacing.
    return json.dumps(list(sections))


def _item_row(
    edition_id: str,
    article: Article,
    position: int,
    into: str | None,
    sentences: list[str] | None = None,
) -> dict[str, Any]:
    # The version carried: an article edited since is eligible again.
    return {
        "edition_id": edition_id,
        "article_id": article.id,
        "position": position,
        "content_hash": article.content_hash,
        "merged_into": into,
        "title": article.title,
        "sentences": sentences,
    }


def _record(row: Row[Any]) -> EditionRecord:
    return EditionRecord(
        id=row.id,
        edition_date=row.edition_date,
        title=row.title,
        subject=row.subject,
        created=row.created,
        item_count=int(row.item_count),
        due_date=row.due_date,
    )


def _content(row: Row[Any]) -> EditionContent:
    return EditionContent(row.edition_id, row.subject, row.preheader, row.html, row.text)
