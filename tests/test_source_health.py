"""Per-source health in the store, `digest sources`, and failing sources in `digest run`."""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from _sources import DATA, NOW, ingest, source_settings
from click.testing import CliRunner
from feedserver import FeedServer

from digest.cli import main
from digest.config import load_settings
from digest.store import Store

RSS = (DATA / "rss2.xml").read_bytes()


def test_health_recorded_per_source(tmp_path: Path, feed_server: FeedServer) -> None:
    """Store last attempt, last success, status, item count and error for each entry."""
    good = feed_server.add("/good.xml", RSS, etag='"e1"')
    bad = feed_server.add("/bad.xml", b"no", status=404, content_type="text/plain")
    folder = tmp_path / "notes"
    folder.mkdir()
    shutil.copy(DATA / "good.md", folder)
    shutil.copy(DATA / "broken.md", folder)
    missing = tmp_path / "missing"
    settings = source_settings(tmp_path, good, bad, folder, missing)
    ingest(settings)
    with Store(settings.db) as store:
        health = store.articles.source_health()
    assert health[good].kind == "url"
    assert (health[good].http_status, health[good].item_count) == (200, 4)
    assert health[good].last_attempt == health[good].last_success == NOW
    assert health[good].etag == '"e1"' and health[good].ok
    assert health[bad].http_status == 404
    assert health[bad].last_success is None and health[bad].failing_since == NOW
    assert health[bad].last_error == "HTTP 404 Not Found"
    # A folder with one broken file is working, and says which file is broken.
    assert health[str(folder)].ok and health[str(folder)].item_count == 1
    assert "broken.md: line 4: broken front matter" in (health[str(folder)].last_error or "")
    assert health[str(missing)].last_error == "no such file or folder"
    assert not health[str(missing)].ok


def test_failing_for_days_is_called_out_then_cleared(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """Call out a source failing for DIGEST_SOURCE_FAILING_DAYS in a row; clear it on success."""
    url = feed_server.add("/feed.xml", RSS, etag='"v1"')
    settings = source_settings(tmp_path, url, DIGEST_SOURCE_FAILING_DAYS="2")
    ingest(settings)
    feed_server.add("/feed.xml", b"down", status=503, content_type="text/plain")
    day1 = ingest(settings, NOW + timedelta(days=1))
    day2 = ingest(settings, NOW + timedelta(days=2))
    day3 = ingest(settings, NOW + timedelta(days=3))
    assert day1.failing == () and day2.failing == ()
    (failing,) = day3.failing
    assert failing.key == url and failing.failing_since == NOW + timedelta(days=1)
    assert failing.last_success == NOW and failing.last_error == "HTTP 503 Service Unavailable"
    # The validators from the last good fetch survive the failures.
    assert failing.etag == '"v1"' and failing.item_count == 4

    feed_server.add("/feed.xml", RSS, etag='"v2"')
    day4 = ingest(settings, NOW + timedelta(days=4))
    assert day4.failing == ()
    with Store(settings.db) as store:
        health = store.articles.source_health()[url]
    assert health.ok and health.last_error is None and health.etag == '"v2"'


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the command in tmp_path with no DIGEST_ settings from the environment."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "SMTP_")):
            monkeypatch.delenv(key)
    return tmp_path


def test_sources_command_table_and_json(workdir: Path, feed_server: FeedServer) -> None:
    """Print each configured source's health as a table and as JSON."""
    good = feed_server.add("/good.xml", RSS)
    bad = feed_server.add("/bad.xml", b"x", status=500, content_type="text/plain")
    notes = workdir / "notes"
    notes.mkdir()
    shutil.copy(DATA / "good.md", notes)
    (workdir / ".env").write_text(f"DIGEST_SOURCES=notes/,{good},{bad}\nDIGEST_FETCH_INTERVAL=0\n")
    runner = CliRunner()
    before = runner.invoke(main, ["sources"])
    assert before.exit_code == 0, before.output
    assert before.output.count("never read") == 3
    assert not (workdir / "digest.db").exists(), "a report made a store"

    run = runner.invoke(main, ["ingest"])
    assert run.exit_code == 0, run.output
    table = runner.invoke(main, ["sources"])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == [
        "SOURCE",
        "STATE",
        "LAST",
        "ATTEMPT",
        "LAST",
        "SUCCESS",
        "HTTP",
        "ITEMS",
    ]
    row = next(line for line in lines if line.startswith("notes"))
    assert row.split()[1] == "ok" and row.split()[-1] == "1"
    good_row = next(line for line in lines if line.startswith(good))
    assert good_row.split()[-2:] == ["200", "4"]
    bad_row = next(line for line in lines if line.startswith(bad))
    assert "failing" in bad_row and bad_row.split()[-2:] == ["500", "0"]
    assert "  error: HTTP 500 Internal Server Error" in lines

    as_json = runner.invoke(main, ["sources", "--json"])
    rows = {row["source"]: row for row in json.loads(as_json.output)}
    assert rows[good]["http_status"] == 200 and rows[good]["items"] == 4
    assert rows[good]["state"] == "ok" and rows[good]["last_error"] is None
    assert rows[bad]["state"].startswith("failing")
    assert rows[bad]["last_success"] is None
    assert rows[bad]["last_error"] == "HTTP 500 Internal Server Error"


def test_run_summary_names_a_source_failing_for_days(workdir: Path) -> None:
    """Name in the `digest run` output a source that has failed several days in a row."""
    missing = workdir / "gone"
    (workdir / ".env").write_text(f"DIGEST_SOURCES={missing}\nDIGEST_SOURCE_FAILING_DAYS=1\n")
    settings = load_settings(workdir / ".env", {})
    ingest(settings, NOW - timedelta(days=3))
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 0, result.output
    assert f"FAILING since {NOW - timedelta(days=3):%Y-%m-%d}: gone: no such file or folder" in (
        result.output
    )
