"""Markdown with YAML front matter: fields, broken input, identity and unchanged files."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _sources import DATA, NOW, ingest, source_settings

from digest import sources
from digest.errors import SourceError
from digest.models import Highlight
from digest.sources import SourceResult, read_path, read_sources
from digest.sources.base import Document
from digest.store import Store


def test_front_matter_fields() -> None:
    """Read every front matter key, the plain paragraphs and the `•` highlights."""
    result = read_path(DATA / "good.md")
    (article,) = result.articles
    assert article.title == "Harbour festival announced"
    assert article.published == datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
    assert article.published.tzinfo is UTC
    assert article.url == "https://news.example.org/festival"
    assert article.author == "Ann Reporter"
    assert article.tags == ("town", "festival")
    assert article.image == "https://news.example.org/img/festival.jpg"
    assert article.summary == "A festival comes to the harbour in June."
    assert article.paragraphs == (
        "The harbour festival returns in June, with boats and music.",
        "A list item becomes a paragraph.",
    )
    assert article.highlights == (
        Highlight(text="The festival runs for three days.", label="Dates"),
        Highlight(text="Music on the quay every evening."),
    )


def test_title_from_heading_without_front_matter() -> None:
    """Take the first heading as the title when there is no front matter."""
    (article,) = read_path(DATA / "heading-only.md").articles
    assert article.title == "A title from the heading"
    assert article.paragraphs == ("Text under the heading.",)
    assert article.published is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("broken.md", "line 4: broken front matter"),
        ("unclosed.md", "line 1: front matter opened with '---' is never closed"),
        ("bad-date.md", "front matter 'date' is not a date: 'next tuesday maybe'"),
    ],
)
def test_broken_front_matter_names_file_and_reason(name: str, reason: str) -> None:
    """Raise SourceError naming the file, the line where known, and what is wrong."""
    with pytest.raises(SourceError) as caught:
        read_path(DATA / name)
    message = str(caught.value)
    assert name in message
    assert reason in message


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("---\n- a\n- b\n---\nBody.\n", "front matter must be 'key: value' lines"),
        ("---\ntitle: T\ntags: {a: 1}\n---\nBody.\n", "'tags' must be a list"),
        ("---\ntitle: [1, 2]\n---\nBody.\n", "'title' must be text"),
        ("---\ntitle: T\nurl: ftp://x.org/a\n---\nBody.\n", "'url' must be an http(s) URL"),
        ("Just text, no title.\n", "no title"),
        ("---\ntitle: Empty\n---\n\n", "has no text"),
        ("   \n", "empty file"),
    ],
)
def test_wrong_front_matter(text: str, reason: str) -> None:
    """Report wrong types and missing parts by key."""
    doc = Document(where="/notes/a.md", data=text.encode())
    with pytest.raises(SourceError, match=re.escape(reason)):
        sources.markdown.read(doc)


def test_broken_file_is_reported_and_others_read(tmp_path: Path) -> None:
    """Skip a broken file with its reason and read the good one beside it."""
    shutil.copy(DATA / "good.md", tmp_path / "good.md")
    shutil.copy(DATA / "broken.md", tmp_path / "broken.md")
    results = list(read_sources((str(tmp_path),)))
    failed = [r for r in results if not r.ok]
    assert [r.where for r in failed] == [str(tmp_path / "broken.md")]
    assert "broken front matter" in (failed[0].error or "")
    assert sum(len(r.articles) for r in results) == 1


def test_edit_keeps_identity_and_counts_as_updated(tmp_path: Path) -> None:
    """Update an edited article in place: same id, 'updated', never new again."""
    folder = tmp_path / "notes"
    folder.mkdir()
    note = folder / "note.md"
    note.write_text("---\ntitle: Bridge works\n---\nThe bridge closes on Monday.\n")
    settings = source_settings(tmp_path, folder)
    assert ingest(settings).new == 1
    note.write_text("---\ntitle: Bridge works delayed\n---\nThe bridge closes on Friday.\n")
    report = ingest(settings, NOW + timedelta(hours=1))
    assert (report.new, report.updated) == (0, 1)
    with Store(settings.db) as store:
        assert store.articles.count() == 1
        (article,) = store.articles.eligible()
    assert article.title == "Bridge works delayed"


def test_unchanged_file_is_not_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Skip parsing when size, mtime and hash match; parse again when the content changes."""
    folder = tmp_path / "notes"
    folder.mkdir()
    shutil.copy(DATA / "good.md", folder / "a.md")
    shutil.copy(DATA / "heading-only.md", folder / "b.md")
    # Old enough that an unchanged mtime can be trusted (see _RACY_NS).
    old = 1_700_000_000
    for path in folder.iterdir():
        os.utime(path, (old, old))
    parsed: list[str] = []

    def counting(doc: Document) -> SourceResult:
        parsed.append(Path(doc.where).name)
        return sources.markdown.read(doc)

    monkeypatch.setitem(sources.READERS, ".md", counting)
    settings = source_settings(tmp_path, folder)
    first = ingest(settings)
    assert (first.new, sorted(parsed)) == (2, ["a.md", "b.md"])

    parsed.clear()
    second = ingest(settings, NOW + timedelta(hours=1))
    assert parsed == []
    assert (second.new, second.updated, second.unchanged) == (0, 0, 2)

    # A new mtime with the same bytes is hashed, found equal, and still not parsed.
    os.utime(folder / "a.md", (old + 60, old + 60))
    third = ingest(settings, NOW + timedelta(hours=2))
    assert parsed == [] and third.unchanged == 2

    (folder / "b.md").write_text("# A title from the heading\n\nNew text.\n")
    os.utime(folder / "b.md", (old + 120, old + 120))
    fourth = ingest(settings, NOW + timedelta(hours=3))
    assert parsed == ["b.md"]
    assert (fourth.updated, fourth.unchanged) == (1, 1)


def test_skipped_entries_of_an_unchanged_file_are_still_reported(
    tmp_path: Path, seeds_dir: Path
) -> None:
    """Report a cached file's skipped entries on every run, not just the first."""
    settings = source_settings(tmp_path, seeds_dir)
    first = ingest(settings)
    second = ingest(settings, NOW + timedelta(hours=1))
    assert first.skipped and second.skipped == first.skipped
    assert second.unchanged == first.new


def test_the_source_key_names_the_publication(tmp_path: Path) -> None:
    """Name the article's source from `source:`, else from the folder it lies in."""
    folder = tmp_path / "posts"
    folder.mkdir()
    (folder / "a.md").write_text(
        "---\ntitle: Harbour reopens\nsource: Harbourtown Daily\n---\nBoats are back.\n"
    )
    (folder / "b.md").write_text("---\ntitle: Quay repaved\n---\nStones are new.\n")
    named, unnamed = (read_path(folder / n).articles[0] for n in ("a.md", "b.md"))
    assert named.source_name == "Harbourtown Daily"
    assert unnamed.source_name == "posts"
