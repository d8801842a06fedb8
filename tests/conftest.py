"""Shared fixtures: a Settings pointing every path into tmp_path."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pgserver
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


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str | None]:
    """Yield the URL of a PostgreSQL server for the tests, or None; see tests/pgserver.py."""
    with pgserver.server() as url:
        yield url


@pytest.fixture(scope="session")
def pg_database(pg_server: str | None) -> Iterator[str | None]:
    """Yield the URL of the one database the tests share, its schema at head."""
    if pg_server is None:
        yield None
        return
    url = pgserver.migrated_database(pg_server)
    yield url
    pgserver.drop_database(pg_server, url)


@pytest.fixture
def pg_url(pg_database: str | None) -> str:
    """Return the URL of a PostgreSQL database holding an empty store (the schema at
    head, no rows): the shared one, wiped for this test."""
    if pg_database is None:
        pytest.skip("PostgreSQL is not installed and DIGEST_TEST_PG is not set")
    pgserver.wipe(pg_database)
    return pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Return where a fresh store for this test is: a SQLite file, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "digest.db"
    url: str = request.getfixturevalue("pg_url")
    return url
