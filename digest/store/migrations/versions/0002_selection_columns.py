"""Selection in the database: what each article was judged once, and retention state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Articles get the columns the candidates query filters on (appeared, carried, junk) and
what ingest works out once (the junk verdict and reason, the near-duplicate signature);
source files remember since when they are gone; store_state says when the store last
pruned. Existing rows get appeared, source_name and carried here; their junk verdict and
signature stay NULL, and the next run judges them once (digest.pipeline).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from digest.store.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TIME = sa.DateTime(timezone=True).with_variant(sa.BigInteger(), "sqlite")
BATCH = 1000

_articles = sa.table(
    "articles",
    sa.column("id", sa.String()),
    sa.column("published", UtcDateTime()),
    sa.column("first_seen", UtcDateTime()),
    sa.column("content_hash", sa.String()),
    sa.column("data", sa.JSON()),
    sa.column("source_name", sa.Text()),
    sa.column("appeared", UtcDateTime()),
    sa.column("carried", sa.Boolean()),
)
_items = sa.table(
    "edition_items",
    sa.column("article_id", sa.String()),
    sa.column("content_hash", sa.String()),
)


def upgrade() -> None:
    """Add the columns and tables, and fill what existing rows can give now."""
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("source_name", sa.Text(), server_default="", nullable=False))
        batch.add_column(sa.Column("appeared", TIME, nullable=True))
        batch.add_column(
            sa.Column("carried", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
        batch.add_column(sa.Column("junk", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("junk_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("signature", sa.LargeBinary(), nullable=True))
    _fill_articles()
    with op.batch_alter_table("articles") as batch:
        batch.alter_column("appeared", existing_type=TIME, nullable=False)
    op.create_index("articles_candidates", "articles", ["carried", "junk", "appeared"])

    with op.batch_alter_table("source_files") as batch:
        batch.add_column(sa.Column("gone_since", TIME, nullable=True))
    op.create_index("source_files_gone", "source_files", ["gone_since"])

    op.create_table(
        "store_state",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def _fill_articles() -> None:
    conn = op.get_bind()
    last = ""
    while True:
        rows = conn.execute(
            sa.select(
                _articles.c.id, _articles.c.published, _articles.c.first_seen, _articles.c.data
            )
            .where(_articles.c.id > last)
            .order_by(_articles.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        values = [_values(*row) for row in rows]
        conn.execute(
            _articles.update()
            .where(_articles.c.id == sa.bindparam("key"))
            .values(source_name=sa.bindparam("name"), appeared=sa.bindparam("when")),
            values,
        )
        last = rows[-1].id
    carried = (
        sa.select(sa.literal(1))
        .where(
            _items.c.article_id == _articles.c.id,
            sa.or_(
                _items.c.content_hash.is_(None),
                _items.c.content_hash == _articles.c.content_hash,
            ),
        )
        .exists()
    )
    conn.execute(_articles.update().values(carried=carried))


def _values(
    key: str, published: datetime | None, first_seen: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    updated = data.get("updated")
    when = datetime.fromisoformat(updated) if updated else None
    if when is not None and when.tzinfo is None:
        when = None
    return {
        "key": key,
        "name": data.get("source_name") or "",
        "when": when or published or first_seen,
    }


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_table("store_state")
    op.drop_index("source_files_gone", "source_files")
    with op.batch_alter_table("source_files") as batch:
        batch.drop_column("gone_since")
    op.drop_index("articles_candidates", "articles")
    with op.batch_alter_table("articles") as batch:
        for name in ("signature", "junk_reason", "junk", "carried", "appeared", "source_name"):
            batch.drop_column(name)
