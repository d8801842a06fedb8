"""A throw-away copy of a store, for work that must record nothing (the preview)."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from digest.store.db import StoreError, is_url


@contextlib.contextmanager
def scratch_copy(source: str | Path) -> Iterator[Path]:
    """Yield the path of a private SQLite copy of the store at source (an empty path when
    there is none yet), deleted afterwards. The original is only read."""
    with tempfile.TemporaryDirectory(prefix="digest-scratch-") as folder:
        target = Path(folder) / "scratch.db"
        if is_url(source):
            # A database server's store is copied row by row through the same tables.
            from digest.store import store_exists
            from digest.store.copy import copy_store

            if store_exists(source):
                copy_store(source, target)
        elif Path(source).exists():
            source = Path(source)
            try:
                # The backup API copies a consistent snapshot while others may write.
                with (
                    contextlib.closing(
                        sqlite3.connect(
                            f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30
                        )
                    ) as original,
                    contextlib.closing(sqlite3.connect(target)) as copy,
                ):
                    original.backup(copy)
            except sqlite3.Error as err:
                raise StoreError(f"{source}: cannot read the store: {err}") from err
        yield target
