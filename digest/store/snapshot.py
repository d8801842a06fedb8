"""A throw-away copy of a store, for work that must record nothing (the preview)."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

from digest.store.db import StoreError


@contextlib.contextmanager
def scratch_copy(source: Path) -> Iterator[Path]:
    """Yield the path of a private copy of the SQLite store at source (an empty path when
    there is none yet), deleted afterwards. The original is only read."""
    with tempfile.TemporaryDirectory(prefix="digest-scratch-") as folder:
        target = Path(folder) / "scratch.db"
        if source.exists():
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
