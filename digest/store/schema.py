"""The tables, declared once: what the migrations build and every query names.

Times are `UtcDateTime`: aware datetimes in and out, stored as timestamptz where the
database has one and as whole microseconds since the epoch in SQLite, so that the
database compares instants, never text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime; naive values are refused rather than guessed at."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Store SQLite's as an integer: its own datetime type is text."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """Check the value is aware; turn it into microseconds for SQLite."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given for a UtcDateTime column")
        if dialect.name == "sqlite":
            return to_micros(value)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return an aware datetime in UTC."""
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return from_micros(int(value))


def to_micros(value: datetime) -> int:
    """Return value as whole microseconds since the Unix epoch."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """Return the aware UTC datetime that to_micros made value from."""
    return _EPOCH + timedelta(microseconds=value)


# A 64-bit key that is still SQLite's rowid alias (only INTEGER PRIMARY KEY is).
Key = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

articles = Table(
    "articles",
    metadata,
    Column("id", String, primary_key=True),
    Column("source", String, nullable=False),
    Column("position", Integer, nullable=False, server_default=text("0")),
    Column("title", Text, nullable=False),
    Column("url", Text),
    Column("canonical_url", Text),
    Column("published", UtcDateTime),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
    Column("content_hash", String, nullable=False),
    Column("data", JSON, nullable=False),
    # What selection reads of every candidate, kept beside the document so that it is
    # read without decoding it: the source's name (its weight), and when the article
    # appeared (updated, else published, else first seen) for DIGEST_MAX_AGE.
    Column("source_name", Text, nullable=False, server_default=""),
    Column("appeared", UtcDateTime, nullable=False),
    # Whether an edition carried this version; an edit makes it eligible again.
    Column("carried", Boolean, nullable=False, server_default=text("false")),
    # Judged once, when the version was stored; NULL: not judged yet (an older store).
    Column("junk", Boolean),
    Column("junk_reason", Text),
    # dedup's MinHash signature of the story text, NUM_PERM little-endian uint32s.
    Column("signature", LargeBinary),
    Index("articles_order", "published", "first_seen"),
    Index("articles_canonical_url", "canonical_url"),
    # The candidates for an edition: not carried, not junk, within the window.
    Index("articles_candidates", "carried", "junk", "appeared"),
)

sources = Table(
    "sources",
    metadata,
    Column("key", Text, primary_key=True),
    Column("kind", String, nullable=False),
    Column("last_attempt", UtcDateTime),
    Column("last_success", UtcDateTime),
    Column("http_status", Integer),
    Column("item_count", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("last_warning", Text),
    Column("failing_since", UtcDateTime),
    Column("etag", Text),
    Column("last_modified", Text),
)

source_files = Table(
    "source_files",
    metadata,
    Column("path", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("sha256", String, nullable=False),
    Column("checked_ns", BigInteger, nullable=False),
    Column("articles", Integer, nullable=False, server_default=text("0")),
    # [[where, reason], ...]: what the file's reader skipped.
    Column("skipped", JSON, nullable=False),
    # Since when no run has found the file; DIGEST_RETENTION later it is forgotten.
    Column("gone_since", UtcDateTime),
    Index("source_files_gone", "gone_since"),
)

# What the store did last on its own, such as pruning, by name.
store_state = Table(
    "store_state",
    metadata,
    Column("name", String, primary_key=True),
    Column("at", UtcDateTime, nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
)

editions = Table(
    "editions",
    metadata,
    Column("id", String, primary_key=True),
    Column("edition_date", Date, nullable=False),
    Column("title", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("created", UtcDateTime, nullable=False),
    Column("item_count", Integer, nullable=False),
    # The scheduler's key: one edition per due date, however many fires or processes.
    Column("due_date", Date),
    # The editor's note the edition carried (Markdown as written; empty: none): every
    # render of it, and every sender, reads it from here (digest.note).
    Column("note", Text, nullable=False, server_default=""),
    Index("editions_due_date", "due_date", unique=True),
    Index("editions_created", "created"),
)

edition_items = Table(
    "edition_items",
    metadata,
    Column("edition_id", String, ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True),
    Column("article_id", String, ForeignKey("articles.id"), primary_key=True),
    Column("position", Integer, nullable=False),
    # The version carried: an article edited since is eligible again.
    Column("content_hash", String),
    # The item a merged duplicate went into.
    Column("merged_into", String),
    # The title it went out with: an update of the article says when it has changed
    # (NULL: recorded before titles were kept).
    Column("title", Text),
    # The fingerprints of the sentences the version carried had, a JSON list (NULL: not
    # kept), so that an update shows only sentences it did not have.
    Column("sentences", JSON),
    Index("edition_items_article", "article_id"),
)

edition_highlights = Table(
    "edition_highlights",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("edition_id", String, ForeignKey("editions.id", ondelete="CASCADE"), nullable=False),
    Column("article_id", String, nullable=False),
    Column("text", Text, nullable=False),
    Index("edition_highlights_edition", "edition_id"),
    # What an updated article showed before, so that it shows only what is new.
    Index("edition_highlights_article", "article_id"),
)

# What an edition was rendered to, so that a resumed send sends exactly the same, and
# the edition itself, so that a section set can be rendered when first needed.
edition_content = Table(
    "edition_content",
    metadata,
    Column("edition_id", String, ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True),
    Column("subject", Text, nullable=False),
    Column("preheader", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("created", UtcDateTime, nullable=False),
    Column("edition", JSON),
)

edition_variants = Table(
    "edition_variants",
    metadata,
    Column("edition_id", String, ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True),
    # The section titles, as a JSON list: the variant's key.
    Column("sections", Text, primary_key=True),
    Column("subject", Text, nullable=False),
    Column("preheader", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("created", UtcDateTime, nullable=False),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("email", Text, nullable=False),
    Column("email_key", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False, server_default=""),
    # Comma-separated topic names.
    Column("topics", Text, nullable=False, server_default=""),
    Column("timezone", String, nullable=False, server_default=""),
    Column("status", String, nullable=False, server_default="active"),
    Column("hard_failures", Integer, nullable=False, server_default=text("0")),
    Column("created", UtcDateTime, nullable=False),
    Column("updated", UtcDateTime, nullable=False),
    # Who ended the subscription, while it is not active: subscriber, bounce or operator
    # (NULL: active, or unsubscribed before this was recorded).
    Column("ended_by", String, nullable=True),
    # Consent on record: form, import or operator (NULL: added before it was recorded),
    # a note (the file, the operator), and the sign-up's and confirmation's details.
    Column("consent_source", String, nullable=True),
    Column("consent_note", Text, nullable=False, server_default=""),
    Column("signup_at", UtcDateTime),
    Column("signup_ip", Text, nullable=False, server_default=""),
    Column("signup_agent", Text, nullable=False, server_default=""),
    Column("confirmed_at", UtcDateTime),
    Column("confirm_ip", Text, nullable=False, server_default=""),
    Column("confirm_agent", Text, nullable=False, server_default=""),
    # The instant the open confirmation link was issued for (NULL: none open), and when
    # the last confirmation went out (at most one an hour per address).
    Column("confirm_requested", UtcDateTime),
    Column("confirm_sent_at", UtcDateTime),
    # Transactional mail still to send: confirm, known (already subscribed) or welcome.
    Column("notice_due", String),
    # No edition rows before this instant (a reader's pause).
    Column("paused_until", UtcDateTime),
    Index("subscribers_status", "status", "id"),
    Index("subscribers_notice_due", "notice_due"),
)

OPEN = text("status IN ('pending', 'sending')")

# The ledger: one row per (edition, subscriber), the only record of sending.
# pending → sending (claimed under a lease) → sent, failed, bounced or skipped.
deliveries = Table(
    "deliveries",
    metadata,
    Column("edition_id", String, ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "subscriber_id",
        Key,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("email", Text, nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("status", String, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("message_id", Text, nullable=False, server_default=""),
    Column("created", UtcDateTime, nullable=False),
    Column("updated", UtcDateTime),
    # Not tried before this instant (temporary failures back off); NULL: due now.
    Column("next_attempt_at", UtcDateTime),
    # Temporary failures in a row, and when the first of them came: the back-off doubles
    # with each, and the row fails once SMTP_RETRY_FOR has passed since the first.
    Column("deferrals", Integer, nullable=False, server_default=text("0")),
    Column("first_deferred_at", UtcDateTime),
    # The server may have taken the message (no final reply after DATA): tried once more.
    Column("maybe_sent", Boolean, nullable=False, server_default=text("false")),
    # A claim: who holds the row ("host:pid"), the claim's token and until when.
    Column("claimed_by", Text),
    Column("claim_token", String),
    Column("lease_until", UtcDateTime),
    # Only the open rows, which claims and the search for due editions walk: a sent row
    # leaves it, so neither grows with the history, and a success updates one entry.
    Index(
        "deliveries_open",
        "edition_id",
        "status",
        "subscriber_id",
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    ),
)

# Token buckets shared by every sender: "all" for SMTP_RATE, "domain:<name>" for
# SMTP_DOMAIN_RATE. Senders take tokens in chunks, so a bucket is written once per chunk.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("key", Text, primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated", UtcDateTime, nullable=False),
)

# Delivery reports read after the send (a mailbox's DSNs and complaints, a provider's
# webhooks): one row per (source, reference), so a report read twice is recorded once.
delivery_reports = Table(
    "delivery_reports",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("source", String, nullable=False),
    Column("reference", Text, nullable=False),
    Column("received", UtcDateTime, nullable=False),
    # hard, soft, policy or complaint.
    Column("kind", String, nullable=False),
    Column("address", Text),
    Column("status", String, nullable=False, server_default=""),
    Column("diagnostic", Text, nullable=False, server_default=""),
    # The ledger row the report was mapped to (NULL: none found).
    Column("edition_id", String, ForeignKey("editions.id", ondelete="CASCADE")),
    Column("subscriber_id", Key, ForeignKey("subscribers.id", ondelete="CASCADE")),
    # What recording it did: bounced, scored, unsubscribed, sender problem, unmatched...
    Column("action", Text, nullable=False, server_default=""),
    Index("delivery_reports_reference", "source", "reference", unique=True),
    # Scoring counts a subscriber's soft reports within the window.
    Index("delivery_reports_subscriber", "subscriber_id", "kind", "received"),
    Index("delivery_reports_edition", "edition_id", "kind"),
    Index("delivery_reports_received", "received"),
)
