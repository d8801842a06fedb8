"""Record who ended a subscription: the subscriber, a bounce or an operator.

Revision ID: 0004
Revises: 0001
Create Date: 2026-12-02

`digest subscribers import --resubscribe` may undo an operator's removal and a bounce,
never a subscriber's own unsubscribe: that needs their own new opt-in. Stores made
before this revision do not say who unsubscribed an address; their bounces are marked
as bounces, and their unsubscribes stay unknown, which counts as the subscriber's own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("ended_by", sa.String(), nullable=True))
    op.execute("UPDATE subscribers SET ended_by = 'bounce' WHERE status = 'bounced'")


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("ended_by")
