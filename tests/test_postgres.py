"""PostgreSQL as the store: the URL, its errors, singletons by advisory lock, and a web
server that has no outbox, each against a real server (tests/pgserver.py)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest import archive, pipeline
from digest.cli import main
from digest.config import Settings, load_settings
from digest.locks import run_lock, scheduler_lock
from digest.schedule import scheduler_status
from digest.store import Store, store_exists

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "SMTP_"))}


@pytest.fixture
def pg_settings(settings: Settings, pg_url: str) -> Settings:
    """The seed settings, with the store on PostgreSQL."""
    return dataclasses.replace(settings, db=pg_url)


def test_digest_db_url_is_read_as_a_url_not_a_path(tmp_path: Path) -> None:
    """Keep a postgresql:// DIGEST_DB as it is; a path is still resolved as a path."""
    url = "postgresql://digest:s3cret@db.example.org:5432/news"
    assert load_settings(None, {"DIGEST_DB": url}).db == url
    assert load_settings(None, {"DIGEST_DB": "x.db"}).db == Path.cwd() / "x.db"


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://digest:s3cret@127.0.0.1:1/news", "Connection refused"),
        ("mysql://digest:s3cret@127.0.0.1/news", "unsupported database 'mysql'"),
        ("postgresql://digest:s3cret@127.0.0.1:5432", "names no database"),
    ],
)
def test_a_bad_url_or_unreachable_server_is_one_line_naming_digest_db(
    tmp_path: Path, url: str, said: str
) -> None:
    """Say what is wrong with DIGEST_DB in one line, the password masked, no traceback."""
    result = CliRunner().invoke(main, ["ingest"], env={"DIGEST_DB": url, "DIGEST_SOURCES": "x"})
    assert result.exit_code != 0
    assert "s3cret" not in result.output
    assert "Traceback" not in result.output
    first = result.output.splitlines()[0]
    assert first.startswith("error: DIGEST_DB=")
    assert "digest:***@127.0.0.1" in first
    assert said in first


def test_a_refused_login_names_digest_db_without_the_password(pg_url: str) -> None:
    """A role the server does not know is one line naming DIGEST_DB, the password masked."""
    from sqlalchemy.engine import make_url

    wrong = make_url(pg_url).set(username="nobody_here", password="s3cret")
    result = CliRunner().invoke(
        main, ["status"], env={"DIGEST_DB": wrong.render_as_string(hide_password=False)}
    )
    assert result.exit_code != 0
    assert "s3cret" not in result.output and "Traceback" not in result.output
    assert result.output.startswith("error: DIGEST_DB=postgresql://nobody_here:***@")
    assert "nobody_here" in result.output.splitlines()[0]


def test_readers_of_an_empty_database_see_no_store(pg_server: str | None) -> None:
    """An empty database is no store yet: readers say so and create nothing."""
    import pgserver

    if pg_server is None:
        pytest.skip("PostgreSQL is not installed and DIGEST_TEST_PG is not set")
    url = pgserver.fresh_database(pg_server)
    try:
        assert not store_exists(url)
        result = CliRunner().invoke(main, ["status"], env={"DIGEST_DB": url})
        assert result.exit_code == 0, result.output
        assert not store_exists(url)
        with Store(url):
            pass
        assert store_exists(url)
    finally:
        pgserver.drop_database(pg_server, url)


def test_the_archive_reads_editions_from_the_database(pg_settings: Settings) -> None:
    """Serve an edition made on another machine: its page comes from the database, not
    from an outbox folder this machine does not have."""
    made = pipeline.run_edition(pg_settings, NOW)
    assert made.edition is not None
    shutil.rmtree(pg_settings.outbox)
    elsewhere = dataclasses.replace(pg_settings, outbox=pg_settings.outbox.parent / "none")
    assert [r.id for r in archive.editions(elsewhere)] == [made.edition.id]
    page = archive.edition_html(elsewhere, made.edition.id)
    assert page is not None and "{{" not in page
    assert f"{elsewhere.base_url}/unsubscribe/" in page
    assert made.edition.id in archive.feed_xml(elsewhere)


def test_one_scheduler_and_one_run_per_database(pg_url: str) -> None:
    """Hold each singleton by advisory lock: a second holder is refused, named, and the
    lock is free again once the first lets go."""
    for make in (scheduler_lock, run_lock):
        first, second = make(pg_url), make(pg_url)
        assert first.acquire()
        try:
            assert not second.acquire(0.2)
            holder = second.holder()
            assert holder is not None and holder["pid"] == os.getpid()
        finally:
            first.release()
        assert second.holder() is None
        assert second.acquire()
        second.release()


def test_two_schedulers_make_one_edition(pg_settings: Settings, tmp_path: Path) -> None:
    """Start two `digest schedule` processes on one database, as on two machines: one
    runs and makes the day's edition, the other refuses to start, naming the first; a
    killed scheduler's lock dies with its connection."""
    env = _clean_env()
    env.update(
        {
            "DIGEST_SOURCES": ",".join(pg_settings.sources),
            "DIGEST_DB": str(pg_settings.db),
            "DIGEST_OUTBOX": str(pg_settings.outbox),
            # Due every minute, so that the catch-up at start makes today's edition.
            "DIGEST_SCHEDULE": "* * * * *",
        }
    )
    command = [sys.executable, "-m", "digest", "schedule"]
    first = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while scheduler_status(pg_settings) is None:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        second = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 1
        assert f"a scheduler is already running on this store (process {first.pid}" in (
            second.stderr
        )
        assert "postgresql://digest@" in second.stderr or "***" in second.stderr
        while True:
            with Store(pg_settings.db, readonly=True) as store:
                if store.editions.recent():
                    break
            assert time.monotonic() < deadline, "no edition was made"
            time.sleep(0.2)
    finally:
        first.kill()
        first.communicate(timeout=30)
    with Store(pg_settings.db, readonly=True) as store:
        assert len(store.editions.recent()) == 1
    deadline = time.monotonic() + 30
    while scheduler_status(pg_settings) is not None:
        assert time.monotonic() < deadline, "a killed scheduler's lock stayed"
        time.sleep(0.1)
