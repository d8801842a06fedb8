"""Items of every shape through the whole job on a real store (SQLite and PostgreSQL):
a link-only item as a compact row, an updated article across two editions."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _editions import edition
from lxml import html as lxml_html
from test_email_quality import GMAIL_CLIP_BYTES, caniemail, client_report

from digest import pipeline
from digest.config import Settings, load_settings
from digest.models import Edition, Item, Update
from digest.render import render_edition
from digest.store import Store

__all__ = ["caniemail"]  # the fixture, from the email checks

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
FIRST = (
    "The harbour authority confirmed on Friday that the north quay will reopen to "
    "fishing boats next week. Repairs to the sea wall took eleven months and cost more "
    "than planned. Local crews had moored in the next town since the storm last winter. "
    "The council thanked residents for their patience during the long works. A plaque "
    "for the builders will be unveiled in the spring by the mayor."
)
ADDED = (
    "The first boats are due back on Monday morning at high tide. The fish market "
    "will open an hour earlier that day to meet them."
)


def _article(folder: Path, name: str, title: str, body: str, url: str) -> Path:
    path = folder / f"{name}.md"
    path.write_text(
        f"---\ntitle: {json.dumps(title)}\nurl: {url}\ndate: 2026-11-28T06:00:00Z\n"
        f"source: Harbourtown Daily\n---\n{body}\n",
        encoding="utf-8",
    )
    return path


def _link_only(folder: Path, name: str, title: str, url: str, summary: str) -> Path:
    path = folder / f"{name}.md"
    path.write_text(
        f"---\ntitle: {json.dumps(title)}\nurl: {url}\ndate: 2026-11-28T06:00:00Z\n"
        f"source: Link Roundup\nsummary: {summary}\n---\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def shaped(tmp_path: Path, db_target: str | Path) -> tuple[Settings, Path]:
    """Return settings reading a folder of Markdown articles into a fresh store."""
    folder = tmp_path / "articles"
    folder.mkdir()
    settings = load_settings(
        None,
        {
            "DIGEST_SOURCES": str(folder),
            "DIGEST_DB": str(db_target),
            "DIGEST_OUTBOX": str(tmp_path / "outbox"),
        },
    )
    return settings, folder


def _item(edition: Edition | None, title: str) -> Item:
    assert edition is not None
    (found,) = [item for item in edition.items if item.article.title == title]
    return found


def test_a_link_only_item_is_a_compact_row_in_both_parts(shaped: tuple[Settings, Path]) -> None:
    """Show a title-and-link item as a compact row: linked title and source, no highlights
    and no image; in the text part its title with its footnote and its source."""
    settings, folder = shaped
    _article(folder, "quay", "North quay to reopen", FIRST, "https://harbour.example/quay")
    _link_only(
        folder, "hn", "Show HN: A tide table in 40 lines", "https://hn.example/1", "Comments"
    )
    result = pipeline.run_edition(settings, NOW)
    item = _item(result.edition, "Show HN: A tide table in 40 lines")
    assert item.link_only and item.highlights == ()
    assert not _item(result.edition, "North quay to reopen").link_only
    assert result.rendered is not None

    page = lxml_html.fromstring(result.rendered.html)
    (row,) = page.xpath("//td[contains(@class, 'item-compact')]")
    (link,) = row.xpath(".//h2/a")
    assert link.get("href") == "https://hn.example/1"
    assert link.text_content() == "Show HN: A tide table in 40 lines"
    assert "Link Roundup" in row.text_content()
    assert row.xpath(".//img") == [] and row.xpath(".//li") == []
    assert "Comments" not in row.text_content()
    # The usual item is still the usual one, highlights and all.
    assert len(page.xpath("//td[contains(@class, 'item-compact')]")) == 1
    assert page.xpath("//li[contains(@class, 'highlight')]")

    text = result.rendered.text
    number = _footnote(text, "https://hn.example/1")
    lines = text.splitlines()
    at = lines.index(f"Show HN: A tide table in 40 lines [{number}]")
    assert lines[at + 1] == "Link Roundup"
    assert all(len(line) <= 72 for line in lines)

    # The stored edition keeps the shape: a re-render (a section variant) shows it too.
    with Store(settings.db) as store:
        assert result.edition is not None
        kept = store.editions.model(result.edition.id)
    assert kept is not None
    assert _item(kept, "Show HN: A tide table in 40 lines").link_only


def test_an_updated_article_shows_what_changed_in_the_next_edition(
    shaped: tuple[Settings, Path],
) -> None:
    """Carry an edited article again, marked Updated, with only the sentences the version
    readers saw did not have (not the ones it had but did not highlight) and the title it
    went out with; in both parts."""
    settings, folder = shaped
    path = _article(folder, "quay", "North quay to reopen", FIRST, "https://harbour.example/quay")
    first = pipeline.run_edition(settings, NOW)
    assert first.edition is not None
    before = _item(first.edition, "North quay to reopen")
    assert before.update is None and len(before.highlights) == 3

    later = NOW + timedelta(days=1)
    _article(
        folder,
        "quay",
        "North quay reopens on Monday",
        f"{FIRST}\n\n{ADDED}",
        "https://harbour.example/quay",
    )
    second = pipeline.run_edition(settings, later)
    item = _item(second.edition, "North quay reopens on Monday")
    assert item.update is not None
    assert item.update.edition_id == first.edition.id
    assert item.update.edition_date == first.edition.date
    assert item.update.previous_title == "North quay to reopen"
    # Only what is new since the version readers saw.
    assert [hl.text for hl in item.highlights] == [
        "The first boats are due back on Monday morning at high tide.",
        "The fish market will open an hour earlier that day to meet them.",
    ]
    assert second.rendered is not None
    page = lxml_html.fromstring(second.rendered.html)
    (note,) = page.xpath("//p[contains(@class, 'item-update')]")
    said = " ".join(note.text_content().split())
    assert said.startswith("Updated It went out as “North quay to reopen” in the edition of")
    assert "28 Nov 2026" in said and said.endswith("New since then:")
    text = second.rendered.text
    assert "[Updated] It went out as “North quay to reopen” in the edition of 28" in text
    assert "  - The first boats are due back on Monday morning at high tide." in text
    for old in ("sea wall", "patience", "plaque", "storm"):
        assert old not in text
    assert all(len(line) <= 72 for line in text.splitlines())

    # Kept with the edition: a section variant renders the same marks.
    with Store(settings.db) as store:
        assert second.edition is not None
        kept = store.editions.model(second.edition.id)
    assert kept is not None
    assert _item(kept, "North quay reopens on Monday").update == item.update

    # Carried now in this version: nothing new for a third run.
    third = pipeline.run_edition(settings, later + timedelta(hours=1))
    assert third.edition is None
    assert path.is_file()


def test_an_edit_that_adds_nothing_new_is_left_out(shaped: tuple[Settings, Path]) -> None:
    """Leave out an edited link-only item whose title stayed the same: nothing to show."""
    settings, folder = shaped
    _link_only(folder, "hn", "A tide table in 40 lines", "https://hn.example/1", "Comments")
    first = pipeline.run_edition(settings, NOW)
    assert first.edition is not None
    _link_only(folder, "hn", "A tide table in 40 lines", "https://hn.example/1", "Discussion")
    second = pipeline.run_edition(settings, NOW + timedelta(days=1))
    assert second.ingest.updated == 1
    assert second.edition is None
    assert second.reason == "nothing new since the last edition"

    # A new title is news: the item comes back, marked, with the title it went out with.
    _link_only(folder, "hn", "A tide table in 30 lines", "https://hn.example/1", "Discussion")
    third = pipeline.run_edition(settings, NOW + timedelta(days=2))
    item = _item(third.edition, "A tide table in 30 lines")
    assert item.link_only and item.update is not None
    assert item.update.previous_title == "A tide table in 40 lines"
    assert third.rendered is not None
    page = lxml_html.fromstring(third.rendered.html)
    (row,) = page.xpath("//td[contains(@class, 'item-compact')]")
    assert "Updated" in row.text_content()
    assert "Updated · Link Roundup" in third.rendered.text


def _footnote(text: str, url: str) -> int:
    """Return the number the text part's link list gives url."""
    for line in text.splitlines():
        if line.endswith(f"] {url}") and line.startswith("["):
            return int(line[1 : line.index("]")])
    raise AssertionError(f"{url} is not in the links")


def shaped_edition() -> Edition:
    """Return a 20-item edition with a note, link-only rows and updated articles."""
    base = edition(20)
    items = list(base.items)
    for n in (3, 7, 15):
        items[n] = replace(
            items[n],
            highlights=(),
            link_only=True,
            update=Update("2026-11-27", date(2026, 11, 27), OLD_TITLE) if n == 7 else None,
        )
    for n in (4, 12):
        items[n] = replace(items[n], update=Update("2026-11-26", date(2026, 11, 26), None))
    half = (len(items) + 1) // 2
    sections = (
        replace(base.sections[0], items=tuple(items[:half])),
        replace(base.sections[1], items=tuple(items[half:])),
    )
    return replace(base, sections=sections, note=EDITOR_NOTE)


OLD_TITLE = "Old <b>title</b> & more"
EDITOR_NOTE = """\
**Good morning.** This week we *finally* went to the harbour: our
[photo essay](https://harbour.example/photos) is up. Write to
[the desk](mailto:desk@harbour.example).

- The market opens early.
- The ferry keeps its winter timetable.

> A quote from a reader.

    a code block

---
"""


def test_the_shapes_use_only_what_every_client_supports(
    caniemail: dict[str, dict[str, Any]], settings: Settings
) -> None:
    """Check the note, compact rows and update marks against the caniemail data."""
    html = render_edition(settings, shaped_edition()).html
    problems, _ = client_report(html, caniemail)
    # <em> (a note's *italics*) has no caniemail entry: every client shows it.
    problems = [p for p in problems if "element <em>" not in p]
    assert not problems, "\n".join(problems)
    assert len(html.encode()) < GMAIL_CLIP_BYTES


def test_the_text_part_carries_every_shape(settings: Settings) -> None:
    """Give the text part every title, source, highlight and mark the HTML part shows."""
    rendered = render_edition(settings, shaped_edition())
    page = " ".join(lxml_html.fromstring(rendered.html).text_content().split())
    text = " ".join(rendered.text.split())
    for item in rendered.edition.items:
        pieces = [item.article.title, item.article.source_name, *(h.text for h in item.highlights)]
        for piece in pieces:
            assert piece in page and piece in text, piece
    assert page.count("Updated") == text.count("[Updated]") + text.count("Updated ·") == 3
    assert "photo essay [1]" in text and "Good morning." in page
    # The title an update went out with is the feed's text: escaped in HTML, as is in text.
    assert f"It went out as “{OLD_TITLE}” in the edition of 27 Nov 2026." in text
    assert f"It went out as “{OLD_TITLE}”" in page
    assert "Old &lt;b&gt;title&lt;/b&gt; &amp; more" in rendered.html
    assert all(len(line) <= 72 for line in rendered.text.splitlines())
