"""A real PostgreSQL for the tests, and a fresh database in it for each test.

DIGEST_TEST_PG names a server the tests may create databases on (`.ci/run` starts a
throw-away cluster with scripts/pg-cluster.sh and sets it, and DIGEST_TEST_PG_DIR to the
cluster's folder, which lets a test restart the server). Without it, a session whose
machine has PostgreSQL installed starts such a cluster itself, the same way, and stops
it at the end. Without either, the PostgreSQL half of a test is skipped, which under
CI=true is a failure (strict_ci.py).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "pg-cluster.sh"
_counter = itertools.count()
# Taken out of the environment at once: every digest process a test starts would warn
# about DIGEST_ keys it does not know.
_GIVEN = os.environ.pop("DIGEST_TEST_PG", "").strip()
_folder: list[str] = [os.environ.pop("DIGEST_TEST_PG_DIR", "").strip()]


def installed() -> bool:
    """Tell whether this machine can start a cluster (initdb is there)."""
    if shutil.which("initdb"):
        return True
    return any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


@contextmanager
def server() -> Iterator[str | None]:
    """Yield the URL of a server to make test databases on, or None when there is none."""
    if _GIVEN:
        yield _GIVEN
        return
    if not installed():
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="digest-pg-")) / "cluster"
    _folder[0] = str(folder)
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if started.returncode != 0:
        raise RuntimeError(f"could not start PostgreSQL: {started.stderr.strip()}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], timeout=60, check=False)
        shutil.rmtree(folder.parent, ignore_errors=True)


def restart() -> bool:
    """Restart the test server, cutting every connection; False when it is not ours."""
    folder = _folder[0]
    if not folder:
        return False
    subprocess.run(["bash", str(SCRIPT), "restart", folder], timeout=120, check=True)
    return True


def admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """Connect to the server's maintenance database, outside any transaction."""
    plain = make_url(url).set(drivername="postgresql")
    return psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True)


def fresh_database(url: str, template: str = "template0") -> str:
    """Create a database on the server at url as a copy of template; return its URL."""
    name = f"digest_test_{os.getpid()}_{next(_counter)}"
    with admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        # A file copy of a small template is twice as fast as the default strategy.
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def migrated_database(url: str) -> str:
    """Create a database with the store's schema at head; return its URL."""
    from digest.store import Store

    made = fresh_database(url)
    Store(made).close()
    return made


def wipe(database_url: str) -> None:
    """Empty every table of a store and restart its keys, as a new store would be.

    Far cheaper than a new database (which checkpoints the cluster twice): the tests
    share one database and start each from no rows. Sessions a test left behind are
    ended first, so that none holds a lock or a row.
    """
    from digest.store.schema import metadata

    plain = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        with conn.transaction():
            for table in reversed(metadata.sorted_tables):
                conn.execute(f'DELETE FROM "{table.name}"')
            sequences = conn.execute(
                "SELECT sequence_name FROM information_schema.sequences"
                " WHERE sequence_schema = 'public'"
            ).fetchall()
            for (name,) in sequences:
                conn.execute(f'ALTER SEQUENCE "{name}" RESTART')


def drop_database(url: str, database: str) -> None:
    """Drop a test database (a name or a URL), ending whatever sessions still use it."""
    name = make_url(database).database if "://" in database else database
    with admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
