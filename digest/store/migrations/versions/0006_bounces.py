"""Delivery reports read after the send: bounces and complaints from a mailbox or webhooks.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True).with_variant(sa.BigInteger(), "sqlite")
KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the delivery_reports table."""
    op.create_table(
        "delivery_reports",
        sa.Column("id", KEY, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("received", TIME, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("status", sa.String(), server_default="", nullable=False),
        sa.Column("diagnostic", sa.Text(), server_default="", nullable=False),
        sa.Column("edition_id", sa.String(), nullable=True),
        sa.Column("subscriber_id", KEY, nullable=True),
        sa.Column("action", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["edition_id"], ["editions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "delivery_reports_reference", "delivery_reports", ["source", "reference"], unique=True
    )
    op.create_index(
        "delivery_reports_subscriber", "delivery_reports", ["subscriber_id", "kind", "received"]
    )
    op.create_index("delivery_reports_edition", "delivery_reports", ["edition_id", "kind"])
    op.create_index("delivery_reports_received", "delivery_reports", ["received"])


def downgrade() -> None:
    """Drop the delivery_reports table."""
    op.drop_table("delivery_reports")
