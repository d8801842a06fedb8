"""Articles and editions as the JSON documents the store keeps in its JSON columns.

A document is not a column: the times inside it stay ISO 8601 strings, as they were
written, and only the columns around it are typed.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from datetime import date, datetime
from typing import Any

from digest.models import Article, Edition, Highlight, Item, Section, Update

logger = logging.getLogger(__name__)

# The Article fields that are datetimes, written as ISO strings.
_TIMES = ("published", "updated")
_ARTICLE_FIELDS = tuple(f.name for f in fields(Article))
_HIGHLIGHT_FIELDS = tuple(f.name for f in fields(Highlight))


def article_to_dict(article: Article) -> dict[str, Any]:
    """Return article as a JSON-ready document for the articles.data column."""
    # Field by field rather than asdict, which copies deeply and shows in a large
    # ingest; the keys are the same.
    data = {name: getattr(article, name) for name in _ARTICLE_FIELDS}
    for key in _TIMES:
        value = data[key]
        data[key] = value.isoformat() if value else None
    # A document holds lists, which is what reading it gives back.
    data["paragraphs"] = list(article.paragraphs)
    data["tags"] = list(article.tags)
    data["highlights"] = [_highlight(h) for h in article.highlights]
    return data


def _highlight(highlight: Highlight) -> dict[str, Any]:
    return {name: getattr(highlight, name) for name in _HIGHLIGHT_FIELDS}


def article_from_dict(data: dict[str, Any]) -> Article:
    """Rebuild an article from its document."""
    fields = dict(data)
    for key in _TIMES:
        fields[key] = datetime.fromisoformat(fields[key]) if fields.get(key) else None
    fields["paragraphs"] = tuple(fields.get("paragraphs", ()))
    fields["tags"] = tuple(fields.get("tags", ()))
    fields["highlights"] = tuple(Highlight(**h) for h in fields.get("highlights", ()))
    return Article(**fields)


def edition_to_dict(edition: Edition) -> dict[str, Any]:
    """Return edition, its sections, items and the articles they carry, as a document."""

    def item(it: Item) -> dict[str, Any]:
        return {
            "article": article_to_dict(it.article),
            "highlights": [_highlight(h) for h in it.highlights],
            "also_in": [article_to_dict(a) for a in it.also_in],
            "link_only": it.link_only,
            "update": _update_to_dict(it.update),
        }

    return {
        "id": edition.id,
        "title": edition.title,
        "date": edition.date.isoformat(),
        "created": edition.created.isoformat(),
        "sections": [
            {"title": s.title, "items": [item(it) for it in s.items]} for s in edition.sections
        ],
    }


def edition_from_dict(data: dict[str, Any]) -> Edition:
    """Rebuild an edition from edition_to_dict's document."""
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
                        article_from_dict(it["article"]),
                        tuple(Highlight(**h) for h in it["highlights"]),
                        tuple(article_from_dict(a) for a in it["also_in"]),
                        # Documents written before item shapes have neither key.
                        link_only=bool(it.get("link_only", False)),
                        update=_update_from_dict(it.get("update")),
                    )
                    for it in s["items"]
                ),
            )
            for s in data["sections"]
        ),
    )


def _update_to_dict(update: Update | None) -> dict[str, Any] | None:
    if update is None:
        return None
    return {
        "edition_id": update.edition_id,
        "edition_date": update.edition_date.isoformat(),
        "previous_title": update.previous_title,
    }


def _update_from_dict(data: dict[str, Any] | None) -> Update | None:
    if not data:
        return None
    return Update(
        edition_id=data["edition_id"],
        edition_date=date.fromisoformat(data["edition_date"]),
        previous_title=data.get("previous_title"),
    )
