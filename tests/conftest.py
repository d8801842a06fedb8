"""Shared fixtures: a Settings pointing every path into tmp_path."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from feedserver import FeedServer, serving

from digest.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
# In CI a skip is a failure (strict_ci.py); pytester runs pytest inside a test.
pytest_plugins = ["strict_ci", "pytester"]


SEEDS = ROOT / "seeds"
SEED_FILE = SEEDS / "000_ec33f330e18fa9fe.txt"


@pytest.fixture
def seeds_dir(tmp_path: Path) -> Path:
    """Return a private copy of the bundled seeds, dated now.

    The copy keeps the checkout's file times otherwise, and an old checkout would be
    older than DIGEST_MAX_AGE: tests that need other dates pin them explicitly.
    """
    target = tmp_path / "seeds"
    shutil.copytree(SEEDS, target)
    fresh = time.time()
    for path in target.iterdir():
        os.utime(path, (fresh, fresh))
    return target


@pytest.fixture
def settings(tmp_path: Path, seeds_dir: Path) -> Settings:
    """Return settings reading the seed copy and writing into tmp_path."""
    return load_settings(
        None,
        {
            "DIGEST_SOURCES": str(seeds_dir),
            "DIGEST_DB": str(tmp_path / "digest.db"),
            "DIGEST_OUTBOX": str(tmp_path / "outbox"),
        },
    )


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """Serve feeds from a real HTTP server on 127.0.0.1; see tests/feedserver.py."""
    with serving() as server:
        yield server
