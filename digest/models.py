"""Frozen dataclasses passed from one stage to the next."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal


@dataclass(frozen=True)
class Highlight:
    """One key point of an article: a sentence, optionally with a bold label."""

    text: str
    label: str | None = None


@dataclass(frozen=True)
class Article:
    """An article as a source read it, before any selection."""

    id: str
    source: str
    title: str
    paragraphs: tuple[str, ...] = ()
    highlights: tuple[Highlight, ...] = ()
    url: str | None = None
    source_name: str = ""
    author: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    tags: tuple[str, ...] = ()
    summary: str = ""
    image: str | None = None
    # Where in its source the article stood: keeps a file's articles in reading order.
    position: int = 0

    @property
    def body(self) -> str:
        """Return the body text, paragraphs separated by blank lines."""
        return "\n\n".join(self.paragraphs)

    @property
    def content_hash(self) -> str:
        """Return a hash of everything a reader sees, to notice edits."""
        h = hashlib.sha256()
        for part in (self.title, self.url or "", self.summary, self.body, self.image or ""):
            h.update(part.encode("utf-8"))
            h.update(b"\0")
        for hl in self.highlights:
            h.update(f"{hl.label or ''}\x1f{hl.text}\0".encode())
        h.update("\x1f".join(self.tags).encode("utf-8"))
        return h.hexdigest()


def article_id(source: str, title: str) -> str:
    """Return a stable id for an article known by its source and title."""
    return hashlib.sha256(f"{source}\0{title}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Skipped:
    """Something a stage left out on purpose or could not read, and why."""

    where: str
    reason: str


@dataclass(frozen=True)
class Item:
    """An article as it appears in an edition, with the highlights chosen for it."""

    article: Article
    highlights: tuple[Highlight, ...]
    # Other versions of the same story, merged into this item.
    also_in: tuple[Article, ...] = ()


@dataclass(frozen=True)
class Section:
    """A titled group of items; an edition without sections has one untitled section."""

    title: str
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Edition:
    """The items chosen for one issue of the digest."""

    id: str
    title: str
    date: date
    created: datetime
    sections: tuple[Section, ...]

    @property
    def items(self) -> tuple[Item, ...]:
        """Return every item in reading order."""
        return tuple(item for section in self.sections for item in section.items)


@dataclass(frozen=True)
class RenderedEdition:
    """An edition rendered once: subject, preheader, inlined HTML and plain text."""

    edition: Edition
    subject: str
    preheader: str
    html: str
    text: str


@dataclass(frozen=True)
class IngestReport:
    """What one pass over the sources found."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)

    @property
    def total(self) -> int:
        """Return how many articles were read."""
        return self.new + self.updated + self.unchanged


SubscriberStatus = Literal["active", "unsubscribed", "bounced"]
SUBSCRIBER_STATUSES: tuple[SubscriberStatus, ...] = ("active", "unsubscribed", "bounced")

# A ledger row's life: pending → sending → sent, failed or bounced; skipped when the
# subscriber left before their message went.
DeliveryStatus = Literal["pending", "sending", "sent", "failed", "bounced", "skipped"]


@dataclass(frozen=True)
class Subscriber:
    """One address on the list, as the store keeps it."""

    id: int
    email: str
    name: str
    topics: tuple[str, ...]
    timezone: str
    status: SubscriberStatus
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class Delivery:
    """One ledger row: what happened to one edition for one subscriber."""

    edition_id: str
    subscriber_id: int
    email: str
    status: DeliveryStatus
    attempts: int
    last_error: str
    message_id: str
    updated: datetime | None
