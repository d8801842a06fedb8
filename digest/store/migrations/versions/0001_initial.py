"""The first schema: articles, sources, editions, subscribers and the delivery ledger.

Revision ID: 0001
Revises:
Create Date: 2024-06-01

Written out rather than made from schema.metadata, so that it stays what it was when
schema.py changes: a later change is a later revision. The types are frozen here too:
a time is microseconds since the epoch in SQLite and timestamptz elsewhere, as
schema.UtcDateTime stores it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True).with_variant(sa.BigInteger(), "sqlite")
# A 64-bit key that is still SQLite's rowid alias (only INTEGER PRIMARY KEY is).
KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ZERO = sa.text("0")
OPEN = sa.text("status IN ('pending', 'sending')")


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "articles",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("canonical_url", sa.Text(), nullable=True),
        sa.Column("published", TIME, nullable=True),
        sa.Column("first_seen", TIME, nullable=False),
        sa.Column("changed_at", TIME, nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("articles_order", "articles", ["published", "first_seen"])
    op.create_index("articles_canonical_url", "articles", ["canonical_url"])

    op.create_table(
        "sources",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("last_attempt", TIME, nullable=True),
        sa.Column("last_success", TIME, nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("item_count", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_warning", sa.Text(), nullable=True),
        sa.Column("failing_since", TIME, nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )

    op.create_table(
        "source_files",
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("checked_ns", sa.BigInteger(), nullable=False),
        sa.Column("articles", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("path"),
    )

    op.create_table(
        "editions",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("edition_date", sa.Date(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("editions_due_date", "editions", ["due_date"], unique=True)
    op.create_index("editions_created", "editions", ["created"])

    op.create_table(
        "edition_items",
        sa.Column("edition_id", sa.String(), nullable=False),
        sa.Column("article_id", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=True),
        sa.Column("merged_into", sa.String(), nullable=True),
        sa.ForeignKeyConstraint(["edition_id"], ["editions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"]),
        sa.PrimaryKeyConstraint("edition_id", "article_id"),
    )
    op.create_index("edition_items_article", "edition_items", ["article_id"])

    op.create_table(
        "edition_highlights",
        sa.Column("id", KEY, autoincrement=True, nullable=False),
        sa.Column("edition_id", sa.String(), nullable=False),
        sa.Column("article_id", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["edition_id"], ["editions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("edition_highlights_edition", "edition_highlights", ["edition_id"])

    op.create_table(
        "edition_content",
        sa.Column("edition_id", sa.String(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("preheader", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.Column("edition", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["edition_id"], ["editions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("edition_id"),
    )

    op.create_table(
        "edition_variants",
        sa.Column("edition_id", sa.String(), nullable=False),
        sa.Column("sections", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("preheader", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.ForeignKeyConstraint(["edition_id"], ["editions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("edition_id", "sections"),
    )

    op.create_table(
        "subscribers",
        sa.Column("id", KEY, autoincrement=True, nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("email_key", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("topics", sa.Text(), server_default="", nullable=False),
        sa.Column("timezone", sa.String(), server_default="", nullable=False),
        sa.Column("status", sa.String(), server_default="active", nullable=False),
        sa.Column("hard_failures", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.Column("updated", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email_key"),
    )
    op.create_index("subscribers_status", "subscribers", ["status", "id"])

    op.create_table(
        "deliveries",
        sa.Column("edition_id", sa.String(), nullable=False),
        sa.Column("subscriber_id", KEY, nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.String(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("message_id", sa.Text(), server_default="", nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.Column("updated", TIME, nullable=True),
        sa.Column("next_attempt_at", TIME, nullable=True),
        sa.Column("deferrals", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("first_deferred_at", TIME, nullable=True),
        sa.Column("maybe_sent", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("claim_token", sa.String(), nullable=True),
        sa.Column("lease_until", TIME, nullable=True),
        sa.ForeignKeyConstraint(["edition_id"], ["editions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("edition_id", "subscriber_id"),
    )
    op.create_index(
        "deliveries_open",
        "deliveries",
        ["edition_id", "status", "subscriber_id"],
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )


def downgrade() -> None:
    """Drop everything: there is no schema before this one."""
    for table in (
        "deliveries",
        "subscribers",
        "edition_variants",
        "edition_content",
        "edition_highlights",
        "edition_items",
        "editions",
        "source_files",
        "sources",
        "articles",
    ):
        op.drop_table(table)
