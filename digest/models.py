"""Frozen dataclasses passed from one stage to the next."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal
from urllib.parse import urlsplit, urlunsplit


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
    # The article's HTML as its source gave it, sanitised (feeds only).
    html: str = ""
    # The main text of the article's page, for a feed item that carried only a summary
    # (DIGEST_FULL_TEXT): read for highlights, never shown whole. full_text_note says why
    # a page tried once gave none, so that it is not fetched again.
    full_text: str = ""
    full_text_note: str = ""

    @property
    def body(self) -> str:
        """Return the body text, paragraphs separated by blank lines."""
        return "\n\n".join(self.paragraphs)

    @property
    def content_hash(self) -> str:
        """Return a hash of everything a reader sees, to notice edits."""
        h = hashlib.sha256()
        parts = (self.title, self.url or "", self.summary, self.body, self.image or "")
        # The page text counts only once there is some: hashes stored before it existed
        # stay the same.
        extra = (
            (self.full_text, self.full_text_note) if self.full_text or self.full_text_note else ()
        )
        for part in (*parts, *extra):
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
class Update:
    """What changed in an article since an earlier edition carried it (digest.select)."""

    # The edition that carried the version readers saw last.
    edition_id: str
    edition_date: date
    # The title it went out with, when it has changed since; else None.
    previous_title: str | None = None


@dataclass(frozen=True)
class Carried:
    """What readers last saw of an article: the edition that carried it, what it showed."""

    article_id: str
    edition_id: str
    edition_date: date
    # The title it went out with; None when the item was recorded before titles were kept.
    title: str | None
    # Every highlight text an edition showed of it.
    shown: tuple[str, ...]
    # The fingerprints of the sentences that version had (digest.highlights.sentence_keys);
    # None when unknown (recorded before they were kept, or only merged into another item).
    sentences: frozenset[str] | None = None


@dataclass(frozen=True)
class Item:
    """An article as it appears in an edition, with the highlights chosen for it."""

    article: Article
    highlights: tuple[Highlight, ...]
    # Other versions of the same story, merged into this item.
    also_in: tuple[Article, ...] = ()
    # Too little text to quote, but a link: shown as a compact row (title, source).
    link_only: bool = False
    # An article an earlier edition carried and that was edited since: its highlights
    # are then only what the earlier edition did not show.
    update: Update | None = None

    @property
    def updated(self) -> bool:
        """Return whether the item is an edited article that went out before."""
        return self.update is not None


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
    # The editor's note (Markdown, as written; digest.note renders it), or empty.
    note: str = ""

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
    # DIGEST_LANGUAGE it was rendered in: the copies without a reader's name greet in it.
    language: str = "en"


@dataclass(frozen=True)
class IngestReport:
    """What one pass over the sources found."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)
    # Sources that have failed for DIGEST_SOURCE_FAILING_DAYS or longer.
    failing: tuple[SourceHealth, ...] = field(default_factory=tuple)
    # Articles read and stored but left out of editions as placeholders or boilerplate.
    junk: tuple[Skipped, ...] = field(default_factory=tuple)
    # Every source was read and every one failed: nothing could be read at all.
    all_failed: bool = False

    @property
    def total(self) -> int:
        """Return how many articles were read."""
        return self.new + self.updated + self.unchanged


def canonical_url(url: str) -> str:
    """Return url in the form two sources linking the same page would agree on.

    Scheme and host are lower-cased, default ports, fragments and utm_* tracking
    parameters dropped: feeds decorate the same link differently.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port if parts.port not in (None, _DEFAULT_PORTS.get(scheme)) else None
    netloc = f"{host}:{port}" if port else host
    query = "&".join(p for p in parts.query.split("&") if p and not p.lower().startswith("utm_"))
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


_DEFAULT_PORTS = {"http": 80, "https": 443}


def site_name(url: str | None) -> str:
    """Return the host a link goes to, without "www.": the name a reader knows a site by
    when its source gives none. "" for no URL or one that does not parse."""
    if not url:
        return ""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")


@dataclass(frozen=True)
class FileRecord:
    """A local source file as last read: skipped while size, mtime and hash stay the same."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    # When the record was taken: a file modified in the same instant may not show it in
    # its mtime, so such a file is hashed again rather than trusted.
    checked_ns: int
    articles: int = 0
    skipped: tuple[Skipped, ...] = ()


@dataclass(frozen=True)
class SourceHealth:
    """How one DIGEST_SOURCES entry fared: the last attempt, the last success, the error."""

    key: str
    kind: str
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    http_status: int | None = None
    item_count: int = 0
    last_error: str | None = None
    last_warning: str | None = None
    # The first failure since the last success; None while the source is healthy.
    failing_since: datetime | None = None
    # Validators sent back on the next request (conditional GET).
    etag: str | None = None
    last_modified: str | None = None

    @property
    def ok(self) -> bool:
        """Return whether the last attempt succeeded."""
        return self.failing_since is None


# pending: signed up, not confirmed yet (gets no edition; deleted after DIGEST_CONFIRM_TTL).
SubscriberStatus = Literal["active", "unsubscribed", "bounced", "pending"]
# Who ended a subscription: only an operator's removal (and a bounce) may be undone by an
# operator; a subscriber's own unsubscribe needs their own new opt-in.
EndedBy = Literal["subscriber", "bounce", "operator"]
SUBSCRIBER_STATUSES: tuple[SubscriberStatus, ...] = (
    "active",
    "unsubscribed",
    "bounced",
    "pending",
)
# Where a subscriber's consent came from: their own confirmed sign-up, an import, or an
# operator who vouches for it.
ConsentSource = Literal["form", "import", "operator"]

# A ledger row's life: pending → sending → sent, failed or bounced; skipped when the
# subscriber left before their message went.
DeliveryStatus = Literal["pending", "sending", "sent", "failed", "bounced", "skipped"]


@dataclass(frozen=True)
class Consent:
    """The record of a subscriber's consent: its source and, for a sign-up, its details."""

    source: ConsentSource | None = None
    note: str = ""
    signup_at: datetime | None = None
    signup_ip: str = ""
    signup_agent: str = ""
    confirmed_at: datetime | None = None
    confirm_ip: str = ""
    confirm_agent: str = ""


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
    ended_by: EndedBy | None = None
    consent: Consent | None = None
    paused_until: datetime | None = None

    @property
    def operator_may_resubscribe(self) -> bool:
        """Return whether --resubscribe may re-activate this address: an operator's removal
        or a bounce, never the subscriber's own unsubscribe (or one of unknown origin)."""
        if self.status == "bounced":
            return True
        return self.status == "unsubscribed" and self.ended_by == "operator"


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
    # When a deferred row is tried next; None when it is due now or final.
    next_attempt_at: datetime | None = None
    # No final reply came after DATA: the server may have taken the message.
    maybe_sent: bool = False
    # The sender holding the row ("host:pid") while it is `sending`.
    claimed_by: str | None = None


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


@dataclass(frozen=True)
class EditionContent:
    """What an edition was rendered to, kept so that a resumed send sends the same."""

    edition_id: str
    subject: str
    preheader: str
    html: str
    text: str


# How one message ended: sent; failed for good (a 5xx, or an address no message can be
# built for); deferred (a 4xx or a dropped connection: tried again later); skipped (none
# of the subscriber's topics is in the edition); unsure (no final reply after DATA: the
# server may have taken it, so it is tried once more, later).
OutcomeKind = Literal["sent", "failed", "deferred", "skipped", "unsure"]


@dataclass(frozen=True)
class Outcome:
    """How one message ended, to be recorded in its ledger row."""

    edition_id: str
    subscriber_id: int
    kind: OutcomeKind
    when: datetime
    message_id: str = ""
    error: str = ""
    # Tries made for this message in this claim (a message that never went counts none).
    tries: int = 0
    # A 5xx: counts towards bouncing the subscriber.
    hard: bool = False
    # The server said the mailbox does not exist: bounce at once.
    bounce_now: bool = False


@dataclass(frozen=True)
class DueEdition:
    """An edition whose ledger still has rows to send, and when the next one is due."""

    edition_id: str
    created: datetime
    open_rows: int
    due_rows: int
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class Progress:
    """Where a send stands, for a progress bar."""

    edition_id: str
    total: int
    sent: int
    failed: int
    remaining: int
    elapsed: float

    @property
    def rate(self) -> float:
        """Return messages handled per second so far in this run."""
        done = self.sent + self.failed
        return done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class SendReport:
    """What a send did and where the ledger of the edition stands after it."""

    edition_id: str
    counts: dict[str, int]
    sent_now: int
    failed_now: int
    # Rows a killed sender left claimed: sent again, possibly a second time.
    resumed_in_flight: int
    stopped: bool
    elapsed: float
    deferred_now: int = 0
    # Why the send paused before the end, when the server refused everything alike.
    paused: str = ""
    # When the earliest deferred row is tried next.
    next_attempt_at: datetime | None = None
    # Domains held back after a policy refusal (5.7.x), one line each.
    held: tuple[str, ...] = ()

    @property
    def remaining(self) -> int:
        """Return the rows still open (deferred ones wait for their next attempt)."""
        return self.counts.get("pending", 0) + self.counts.get("sending", 0)

    @property
    def complete(self) -> bool:
        """Return whether every row has reached a final state."""
        return self.remaining == 0


@dataclass(frozen=True)
class Assessment:
    """What ingest works out once per stored version of an article, for every later run."""

    # Why the article is left out of editions (a placeholder, boilerplate), or None.
    junk_reason: str | None
    # Its near-duplicate signature (digest.dedup); empty when it has no words.
    signature: bytes


@dataclass(frozen=True)
class Candidate:
    """An article as selection first reads it from the store: the columns, not the document."""

    id: str
    source: str
    source_name: str
    title: str
    # Updated, else published, else first seen: what DIGEST_MAX_AGE and recency count.
    appeared: datetime | None
    # None when the store has none yet (a store older than signatures).
    signature: bytes | None
