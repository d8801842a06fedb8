"""Moving in: copy every row of one store into another, empty one, and check the counts.

Used to move a SQLite store to PostgreSQL (`digest db copy --to postgresql://…`). The
rows go through the same table definitions both ways, so a time stays an instant and a
document stays a document whichever way each database keeps them. The copy is one
transaction on the target: it holds everything or, on any failure, nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Connection, func, select

from digest.store import Store
from digest.store.db import StoreError, describe, translated
from digest.store.schema import metadata

logger = logging.getLogger(__name__)

# Rows read and written at a time: neither store holds a whole table in memory.
PAGE = 2000


def copy_store(source: str | Path, target: str | Path) -> dict[str, int]:
    """Copy every row of the store at source into the empty store at target; return the
    rows of each table. Raise a StoreError if the target holds anything, or if a count
    differs after the copy (then nothing was written)."""
    if describe(source) == describe(target):
        raise StoreError(f"{describe(target)}: is the store being copied", hint="name another")
    with Store(source, readonly=True) as src, Store(target) as dst:
        with dst.db.read() as conn:
            filled = [t.name for t in metadata.sorted_tables if _count(conn, t.name)]
        if filled:
            raise StoreError(
                f"{dst.db.name}: is not empty (it has rows in {', '.join(filled)})",
                hint="copy into a new, empty database",
            )
        counts: dict[str, int] = {}
        with translated(dst.db), dst.db.write() as out, src.db.read() as into:
            for table in metadata.sorted_tables:
                key = list(table.primary_key.columns)
                rows = into.execution_options(yield_per=PAGE).execute(select(table).order_by(*key))
                copied = 0
                for page in rows.partitions(PAGE):
                    out.execute(table.insert(), [dict(row._mapping) for row in page])
                    copied += len(page)
                dst.db.reset_keys(out, table)
                counts[table.name] = copied
                logger.info("copied %d rows of %s", copied, table.name)
            for table in metadata.sorted_tables:
                expected = _count(into, table.name)
                found = _count(out, table.name)
                if found != expected or found != counts[table.name]:
                    raise StoreError(
                        f"{dst.db.name}: {table.name} has {found} rows after the copy,"
                        f" the source {expected}; nothing was copied",
                        hint="is something writing to the source? stop it and copy again",
                    )
    return counts


def _count(conn: Connection, name: str) -> int:
    table = metadata.tables[name]
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
