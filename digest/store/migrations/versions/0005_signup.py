"""Readers sign themselves up: pending addresses, consent on record, pauses, notices.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

A sign-up makes a `pending` subscriber; confirming makes it active. Each subscriber
keeps where their consent came from (form, import, operator) and, for the form, when,
from which IP and user agent they signed up and confirmed. `confirm_requested` is the
instant the open confirmation link was issued for (the link names it, so a link is used
once and an older one stops working); `confirm_sent_at` bounds confirmations to one an
hour per address; `notice_due` is the transactional mail still to send (the web process
sends it off the request, so that every address gets the same answer in the same time);
`paused_until` holds editions back for a while.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True).with_variant(sa.BigInteger(), "sqlite")


def upgrade() -> None:
    """Add the consent, confirmation and pause columns to subscribers."""
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("consent_source", sa.String(), nullable=True))
        batch.add_column(sa.Column("consent_note", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("signup_at", TIME, nullable=True))
        batch.add_column(sa.Column("signup_ip", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("signup_agent", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("confirmed_at", TIME, nullable=True))
        batch.add_column(sa.Column("confirm_ip", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("confirm_agent", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("confirm_requested", TIME, nullable=True))
        batch.add_column(sa.Column("confirm_sent_at", TIME, nullable=True))
        batch.add_column(sa.Column("notice_due", sa.String(), nullable=True))
        batch.add_column(sa.Column("paused_until", TIME, nullable=True))
    op.create_index("subscribers_notice_due", "subscribers", ["notice_due"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("subscribers_notice_due", "subscribers")
    with op.batch_alter_table("subscribers") as batch:
        for name in (
            "paused_until",
            "notice_due",
            "confirm_sent_at",
            "confirm_requested",
            "confirm_agent",
            "confirm_ip",
            "confirmed_at",
            "signup_agent",
            "signup_ip",
            "signup_at",
            "consent_note",
            "consent_source",
        ):
            batch.drop_column(name)
