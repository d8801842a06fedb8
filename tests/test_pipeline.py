"""The whole job on a real store and real files: selection over several runs."""

from __future__ import annotations

import email
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from digest import pipeline
from digest import select as select_module
from digest.config import Settings
from digest.render import GREETING_PLACEHOLDER
from digest.store import Store
from digest.store.editions import Editions

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def titles(result: pipeline.RunResult) -> list[str]:
    """Return the titles an edition carried."""
    assert result.edition is not None
    return [item.article.title for item in result.edition.items]


def test_new_then_nothing_new_then_one_new_file(settings: Settings, seeds_dir: Path) -> None:
    """Carry every article once: a full edition, then nothing, then just the new file."""
    first = pipeline.run_edition(settings, NOW)
    assert first.edition is not None and first.folder is not None
    assert len(first.edition.items) == 10
    assert first.ingest.new == 10
    assert any("placeholder" in s.reason for s in first.ingest.skipped)
    assert "Iran and Armenia Strengthen Ties" in " ".join(titles(first))
    assert first.folder == settings.outbox / "2026-11-28"

    second = pipeline.run_edition(settings, NOW + timedelta(hours=1))
    assert second.edition is None
    assert second.reason == "nothing new since the last edition"
    assert second.ingest.unchanged == 10
    assert sorted(p.name for p in settings.outbox.iterdir()) == ["2026-11-28"]

    (seeds_dir / "zz_new.txt").write_text("Fresh story\n\nSomething happened today. More later.\n")
    third = pipeline.run_edition(settings, NOW + timedelta(hours=2))
    assert titles(third) == ["Fresh story"]
    assert third.edition is not None and third.edition.id == "2026-11-28-2"


def test_cap_leaves_the_rest_for_the_next_edition(settings: Settings) -> None:
    """Keep articles over DIGEST_MAX_ITEMS eligible for the next edition, newest first."""
    capped = replace(settings, max_items=4)
    first = pipeline.run_edition(capped, NOW)
    second = pipeline.run_edition(capped, NOW + timedelta(days=1))
    third = pipeline.run_edition(capped, NOW + timedelta(days=2))
    assert (len(titles(first)), len(titles(second)), len(titles(third))) == (4, 4, 2)
    everything = titles(first) + titles(second) + titles(third)
    assert len(set(everything)) == 10
    assert pipeline.run_edition(capped, NOW + timedelta(days=3)).edition is None


def test_newest_first(settings: Settings, seeds_dir: Path) -> None:
    """Order an edition's items newest first; a seed file is dated when first seen."""
    waiting = seeds_dir.parent / "waiting"
    waiting.mkdir()
    for path in seeds_dir.iterdir():
        path.rename(waiting / path.name)

    def arrive(name: str) -> None:
        (waiting / name).rename(seeds_dir / name)

    # Older than the rest, yet within DIGEST_MAX_AGE (an older one is no longer eligible).
    arrive("bbc_business_001.txt")
    pipeline.ingest_only(settings, NOW - timedelta(days=3))
    fresh = "bbc_entertainment_002.txt"
    for path in waiting.iterdir():
        if path.name != fresh:
            arrive(path.name)
    pipeline.ingest_only(settings, NOW - timedelta(days=1))
    arrive(fresh)
    result = pipeline.run_edition(settings, NOW)
    order = titles(result)
    assert order[0] == "Jarre joins fairytale celebration"
    assert order[-1] == "Ad sales boost Time Warner profit"


def test_file_times_do_not_order_an_edition(settings: Settings, seeds_dir: Path) -> None:
    """Order articles of the same date by title, whatever their files' times say."""
    import os

    for n, path in enumerate(sorted(seeds_dir.iterdir(), reverse=True)):
        when = (NOW - timedelta(hours=n)).timestamp()
        os.utime(path, (when, when))
    order = titles(pipeline.run_edition(settings, NOW))
    assert len(order) == 10
    assert order == sorted(order, key=str.casefold)


def test_edited_file_updates_its_article(settings: Settings, seeds_dir: Path) -> None:
    """Update an edited article in place instead of adding a second copy."""
    pipeline.ingest_only(settings, NOW)
    path = seeds_dir / "bbc_business_004.txt"
    path.write_text(path.read_text().replace("40% drop", "41% drop"))
    report = pipeline.ingest_only(settings, NOW)
    assert (report.new, report.updated, report.unchanged) == (0, 1, 9)
    with Store(settings.db) as store:
        assert store.articles.count() == 10


def test_preview_records_nothing(settings: Settings, tmp_path: Path) -> None:
    """Render the next edition without using it up."""
    result = pipeline.preview(settings, tmp_path / "pv", NOW)
    assert result.folder == tmp_path / "pv"
    assert (tmp_path / "pv" / "digest.html").is_file()
    assert pipeline.run_edition(settings, NOW).edition is not None


def test_eml_is_complete(settings: Settings) -> None:
    """Write a complete multipart/alternative sample message."""
    result = pipeline.run_edition(settings, NOW)
    assert result.folder is not None
    parsed = email.message_from_bytes(
        (result.folder / "digest.eml").read_bytes(), policy=policy.default
    )
    assert parsed.defects == []
    for header in ("From", "To", "Subject", "Date", "Message-ID"):
        assert parsed[header], header
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]


def test_outbox_greets_nobody_and_the_store_keeps_the_placeholder(
    settings: Settings, tmp_path: Path
) -> None:
    """Write the general greeting to the outbox and preview; keep the slot for sending."""
    preview = pipeline.preview(settings, tmp_path / "pv", NOW)
    result = pipeline.run_edition(settings, NOW)
    for folder in (preview.folder, result.folder):
        assert folder is not None
        for name in ("digest.html", "digest.txt", "digest.eml"):
            written = (folder / name).read_text()
            assert GREETING_PLACEHOLDER not in written, folder / name
            # The outbox page keeps the placeholder for the archive to fill in when served.
            if folder == preview.folder or name == "digest.eml":
                assert "unsubscribe.invalid" not in written, folder / name
        assert "\nHello,\n" in (folder / "digest.txt").read_text()
        sample = email.message_from_bytes(
            (folder / "digest.eml").read_bytes(), policy=policy.default
        )
        for part in sample.iter_parts():
            assert isinstance(part, EmailMessage)
            assert "Hello," in part.get_content()
            assert f"{settings.base_url}/unsubscribe/" in part.get_content()
            assert "unsubscribe.invalid" not in part.get_content()
    assert result.edition is not None
    with Store(settings.db) as store:
        content = store.editions.content(result.edition.id)
    assert content is not None
    assert content.html.count(GREETING_PLACEHOLDER) == 1
    assert content.text.count(GREETING_PLACEHOLDER) == 1


def test_crash_before_recording_rewrites_the_same_edition(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lose nothing when the run dies after writing and before recording the edition."""

    def crash(self: Editions, *args: object) -> None:
        raise RuntimeError("power cut")

    with monkeypatch.context() as m:
        m.setattr(Editions, "record", crash)
        with pytest.raises(RuntimeError):
            pipeline.run_edition(settings, NOW)
    result = pipeline.run_edition(settings, NOW)
    assert result.edition is not None and result.edition.id == "2026-11-28"
    assert len(result.edition.items) == 10


def test_preview_gives_the_reason_a_run_would(settings: Settings) -> None:
    """Say that DIGEST_MIN_ITEMS, not a lack of news, is why a preview is empty."""
    result = pipeline.preview(replace(settings, min_items=50), now=NOW)
    assert result.edition is None
    assert "fewer than DIGEST_MIN_ITEMS=50" in result.reason


def test_a_changed_junk_rule_judges_only_what_comes_after_it(
    settings: Settings, seeds_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep each article's stored verdict: a stricter rule applies to later articles only."""
    first = pipeline.ingest_only(settings, NOW)
    assert first.new == 10
    monkeypatch.setattr(select_module, "article_junk_reason", lambda article: "a stricter rule")
    (seeds_dir / "zz_new.txt").write_text("Fresh story\n\nSomething happened today. More later.\n")
    result = pipeline.run_edition(settings, NOW + timedelta(hours=1))
    assert result.ingest.new == 1
    assert len(titles(result)) == 10 and "Fresh story" not in titles(result)
    assert [j.reason for j in result.ingest.junk if "stricter" in j.reason] == [
        "'Fresh story': a stricter rule"
    ]


def test_a_run_prunes_the_store_once_a_day(settings: Settings) -> None:
    """Record when the store was pruned; a second run the same day does not prune again."""
    pipeline.run_edition(settings, NOW)
    with Store(settings.db) as store:
        first = store.retention.last_pruned()
        assert first is not None and first.at == NOW
    pipeline.run_edition(settings, NOW + timedelta(hours=2))
    pipeline.ingest_only(replace(settings, retention=timedelta(days=1)), NOW + timedelta(days=2))
    with Store(settings.db) as store:
        last = store.retention.last_pruned()
        assert last is not None and last.at == NOW + timedelta(days=2)
        # Every seed was in the edition or is junk that appeared just now: nothing to forget.
        assert last.articles == 0
