"""The editor's note kept with its edition; what an updated article showed before.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

editions.note holds the note an edition carried (empty for the editions before it);
edition_items.title the title an article went out with and edition_items.sentences the
fingerprints of its sentences (NULL for the items before: an update of one of those
says no title change and counts every sentence not highlighted as new); an index on
edition_highlights.article_id finds what an updated article showed before without
reading every edition's rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the note and title columns and the index."""
    with op.batch_alter_table("editions") as batch:
        batch.add_column(sa.Column("note", sa.Text(), server_default="", nullable=False))
    with op.batch_alter_table("edition_items") as batch:
        batch.add_column(sa.Column("title", sa.Text(), nullable=True))
        batch.add_column(sa.Column("sentences", sa.JSON(), nullable=True))
    op.create_index("edition_highlights_article", "edition_highlights", ["article_id"])


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_index("edition_highlights_article", "edition_highlights")
    with op.batch_alter_table("edition_items") as batch:
        batch.drop_column("sentences")
        batch.drop_column("title")
    with op.batch_alter_table("editions") as batch:
        batch.drop_column("note")
