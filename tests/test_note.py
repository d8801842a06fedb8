"""The editor's note: Markdown made safe, both parts, and its file used once."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import html as lxml_html

from digest import pipeline
from digest.cli import main
from digest.config import Settings, load_settings
from digest.errors import ConfigError
from digest.note import (
    MAX_NOTE_BYTES,
    archive_note,
    note_html,
    note_links,
    note_text,
    pending_note,
    read_note,
)
from digest.render import GREETING_PLACEHOLDER, Footnotes, render_edition
from digest.store import Store

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
NOTE = """\
Good morning! This week the **harbour** reopens, and we went to see the first boats
come in. Our [photo essay](https://harbour.example/photos) is up, and questions go to
[the desk](mailto:desk@harbour.example).

- The market opens an hour early on Monday.
- The ferry keeps its winter timetable until [the spring](https://harbour.example/ferry).
"""
HOSTILE = """\
Read [this](javascript:alert(1)) and [that](JaVaScRiPt:alert(2)) and
[data](data:text/html;base64,PHNjcmlwdD4=) and [relative](/admin).

<script>alert(3)</script><img src=x onerror=alert(4)>

![tracker](https://evil.example/pixel.gif "t")

<a href="javascript:alert(5)">raw</a> [fine](https://ok.example/)
"""


def test_the_note_becomes_clean_html() -> None:
    """Render Markdown to HTML with its emphasis, links and list."""
    html = note_html(NOTE)
    page = lxml_html.fromstring(f"<div>{html}</div>")
    assert [a.get("href") for a in page.iter("a")] == [
        "https://harbour.example/photos",
        "mailto:desk@harbour.example",
        "https://harbour.example/ferry",
    ]
    assert page.xpath("//strong")[0].text == "harbour"
    assert len(page.xpath("//li")) == 2


def test_hostile_markdown_stays_harmless(caplog: pytest.LogCaptureFixture) -> None:
    """Keep only http(s) and mailto links; leave raw HTML out, images become alt text."""
    html = note_html(HOSTILE)
    page = lxml_html.fromstring(f"<div>{html}</div>")
    assert [a.get("href") for a in page.iter("a")] == ["https://ok.example/"]
    assert page.xpath("//script | //img | //iframe | //*[@onerror] | //*[@style]") == []
    lowered = html.lower()
    assert "javascript:" not in lowered and "data:" not in lowered and 'href="/admin"' not in html
    assert "alert(3)" not in html and "raw" in page.text_content()
    assert "this" in page.text_content() and "tracker" in page.text_content()
    assert note_links(HOSTILE) == ["https://ok.example/"]
    text = note_text(HOSTILE, Footnotes(note_links(HOSTILE)).cite)
    assert "javascript" not in text.lower() and "data:" not in text
    assert "Read this and that and data and relative." in text
    assert "fine [1]" in text


def test_the_text_part_is_wrapped_with_footnotes() -> None:
    """Wrap the note at 72 columns, list items indented, each link's number after it."""
    numbers = Footnotes(note_links(NOTE))
    text = note_text(NOTE, numbers.cite)
    assert all(len(line) <= 72 for line in text.splitlines())
    words = " ".join(text.split())
    assert "photo essay [1]" in words and "the desk [2]" in words and "the spring [3]" in words
    assert "  - The market opens an hour early on Monday.\n  - The ferry" in text
    assert numbers.links[0] == (1, "https://harbour.example/photos")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xef\xbb\xbfHi\n\xff there", "line 2: not UTF-8 text"),
        (b"Hi\x00", "line 1: a NUL byte: not a text file"),
        (b"x" * (MAX_NOTE_BYTES + 1), f"more than {MAX_NOTE_BYTES:,}"),
    ],
)
def test_a_bad_note_file_is_one_line_naming_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """Refuse a note file that cannot be a note, in one line naming the file."""
    path = tmp_path / "note.md"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        read_note(path, "DIGEST_NOTE_FILE")
    assert str(err.value).startswith(f"{path} (named by DIGEST_NOTE_FILE): ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_or_folder_note_is_one_line(tmp_path: Path) -> None:
    """Name the file --note gave when it is missing or a folder."""
    with pytest.raises(ConfigError, match=r"nowhere\.md: no such note file$"):
        read_note(tmp_path / "nowhere.md")
    with pytest.raises(ConfigError, match="is a folder, not a note file"):
        read_note(tmp_path)


def test_the_configured_file_is_used_once(tmp_path: Path) -> None:
    """Use DIGEST_NOTE_FILE's note unless an edition carried it; skip a blank one."""
    path = tmp_path / "note.md"
    assert pending_note(None, path, lambda text: None) is None  # no file: no note
    path.write_text("  \n")
    assert pending_note(None, path, lambda text: None) is None and path.exists()
    path.write_text("Hello *all*.\n")
    found = pending_note(None, path, lambda text: None)
    assert found is not None and found.text == "Hello *all*." and found.archive
    # --note wins, and is never moved.
    given = tmp_path / "given.md"
    given.write_text("Just this once.")
    chosen = pending_note(given, path, lambda text: None)
    assert chosen is not None and chosen.path == given and not chosen.archive
    given.write_text("\n")
    with pytest.raises(ConfigError, match=r"given\.md: the note is empty$"):
        pending_note(given, path, lambda text: None)
    # Carried already (a crash before the file was moved): moved now, not used again;
    # a preview moves nothing.
    assert pending_note(None, path, lambda text: "2026-11-27", tidy=False) is None
    assert path.exists()
    assert pending_note(None, path, lambda text: "2026-11-27") is None
    assert not path.exists() and (tmp_path / "note.used-2026-11-27.md").is_file()


def test_archiving_never_overwrites(tmp_path: Path) -> None:
    """Give a used note a name of its own when the first choice is taken."""
    for n in range(2):
        path = tmp_path / "note.md"
        path.write_text(f"note {n}")
        archive_note(path, "2026-11-28")
    assert (tmp_path / "note.used-2026-11-28.md").read_text() == "note 0"
    assert (tmp_path / "note.used-2026-11-28-2.md").read_text() == "note 1"


@pytest.fixture
def noted(tmp_path: Path, seeds_dir: Path, db_target: str | Path) -> Settings:
    """Return settings on a fresh store with DIGEST_NOTE_FILE naming notes/note.md."""
    (tmp_path / "notes").mkdir()
    return load_settings(
        None,
        {
            "DIGEST_SOURCES": str(seeds_dir),
            "DIGEST_DB": str(db_target),
            "DIGEST_OUTBOX": str(tmp_path / "outbox"),
            "DIGEST_NOTE_FILE": str(tmp_path / "notes" / "note.md"),
        },
    )


def _shows_note(html: str, text: str) -> None:
    """Check both parts carry NOTE under the greeting, its links first among the footnotes."""
    page = lxml_html.fromstring(html)
    (cell,) = page.xpath("//td[contains(@class, 'note')]")
    assert "the first boats" in " ".join(cell.text_content().split())
    assert cell.xpath(".//a")[0].get("href") == "https://harbour.example/photos"
    greeting = page.xpath("//td[contains(@class, 'greeting')]/ancestor::tr[1]")[0]
    assert greeting.getnext() is cell.getparent()
    lines = text.splitlines()
    at = next(n for n, line in enumerate(lines) if line.startswith("Good morning!"))
    assert lines[at - 2] in ("Hello,", GREETING_PLACEHOLDER) and lines[at - 1] == ""
    assert "photo essay [1]" in " ".join(text.split())
    assert "[1] https://harbour.example/photos" in text
    assert all(len(line) <= 72 for line in lines)


def test_a_note_from_the_configured_file_goes_out_once(noted: Settings, tmp_path: Path) -> None:
    """Carry DIGEST_NOTE_FILE's note in one edition (both parts, the store, a re-render),
    move the file aside, and make the next edition without it."""
    note_file = tmp_path / "notes" / "note.md"
    note_file.write_text(NOTE)
    first = pipeline.run_edition(noted, NOW)
    assert first.edition is not None and first.rendered is not None and first.folder
    assert first.edition.note == NOTE.strip()
    _shows_note(first.rendered.html, first.rendered.text)
    _shows_note(
        (first.folder / "digest.html").read_text(), (first.folder / "digest.txt").read_text()
    )
    moved = tmp_path / "notes" / f"note.used-{first.edition.id}.md"
    assert first.note_moved_to == moved and moved.read_text() == NOTE
    assert not note_file.exists()
    with Store(noted.db) as store:
        assert store.editions.note(first.edition.id) == NOTE.strip()
        content = store.editions.content(first.edition.id)
        kept = store.editions.model(first.edition.id)
    assert content is not None and "photo essay" in content.html and "photo essay" in content.text
    # A section variant or the archive renders from the stored edition: the note is in it.
    assert kept is not None and kept.note == NOTE.strip()
    again = render_edition(noted, kept)
    _shows_note(again.html, again.text)

    (tmp_path / "seeds" / "zz_new.txt").write_text(
        "Fresh story\n\nSomething happened in the town today. More later.\n"
    )
    second = pipeline.run_edition(noted, NOW + timedelta(days=1))
    assert second.edition is not None and second.rendered is not None
    assert second.edition.note == "" and second.note is None
    assert "From the editor" not in second.rendered.html


def test_a_note_left_behind_by_a_crash_is_not_used_again(noted: Settings, tmp_path: Path) -> None:
    """Move aside, unused, a note file an edition carried but did not move (a crash)."""
    note_file = tmp_path / "notes" / "note.md"
    note_file.write_text(NOTE)
    first = pipeline.run_edition(noted, NOW)
    assert first.edition is not None
    note_file.write_text(NOTE)  # as if the rename had never happened
    (tmp_path / "seeds" / "zz_new.txt").write_text(
        "Fresh story\n\nSomething happened in the town today. More later.\n"
    )
    second = pipeline.run_edition(noted, NOW + timedelta(days=1))
    assert second.edition is not None and second.edition.note == ""
    assert not note_file.exists()
    assert (tmp_path / "notes" / f"note.used-{first.edition.id}-2.md").is_file()


def test_a_note_waits_for_an_edition_and_a_preview_moves_nothing(
    noted: Settings, tmp_path: Path
) -> None:
    """Keep the note file while no edition is made, and while only previewed."""
    note_file = tmp_path / "notes" / "note.md"
    note_file.write_text(NOTE)
    shown = pipeline.preview(noted, tmp_path / "pv", NOW)
    assert shown.rendered is not None and "photo essay" in shown.rendered.text
    assert note_file.exists()
    assert pipeline.run_edition(noted, NOW).edition is not None
    assert not note_file.exists()
    note_file.write_text("Next week's note.")
    nothing = pipeline.run_edition(noted, NOW + timedelta(hours=1))
    assert nothing.edition is None and note_file.read_text() == "Next week's note."


def test_a_note_given_on_the_command_line_stays_put(noted: Settings, tmp_path: Path) -> None:
    """Carry --note's file in this edition, leave it and DIGEST_NOTE_FILE's where they are."""
    given = tmp_path / "this-week.md"
    given.write_text(HOSTILE)
    waiting = tmp_path / "notes" / "note.md"
    waiting.write_text("For the next edition.")
    result = pipeline.run_edition(noted, NOW, note=given)
    assert result.edition is not None and result.rendered is not None
    assert result.edition.note == HOSTILE.strip()
    assert given.exists() and waiting.exists() and result.note_moved_to is None
    html = result.rendered.html
    page = lxml_html.fromstring(html)
    (cell,) = page.xpath("//td[contains(@class, 'note')]")
    assert [a.get("href") for a in cell.iter("a")] == ["https://ok.example/"]
    assert cell.xpath(".//script | .//img | .//*[@onerror]") == []
    assert "javascript:" not in html.lower()
    assert "javascript" not in result.rendered.text.lower()


@pytest.fixture
def workdir(tmp_path: Path, seeds_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a folder holding a copy of seeds/ and a .env naming it and a note file."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "SMTP_")):
            monkeypatch.delenv(key)
    (tmp_path / ".env").write_text("DIGEST_SOURCES=seeds/\nDIGEST_NOTE_FILE=note.md\n")
    return tmp_path


def test_the_cli_names_a_missing_or_bad_note(workdir: Path) -> None:
    """Say in one line which note file is missing or bad; make no edition."""
    runner = CliRunner()
    missing = runner.invoke(main, ["run", "--note", "nowhere.md"])
    assert missing.exit_code == 2
    assert missing.output == "error: nowhere.md: no such note file\n"
    (workdir / "note.md").write_bytes(b"Caf\xe9\n")
    bad = runner.invoke(main, ["run"])
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [
        f"error: {workdir / 'note.md'} (named by DIGEST_NOTE_FILE): line 1: not UTF-8 text"
    ]
    assert not (workdir / "outbox").exists()


def test_the_cli_says_where_the_note_went(workdir: Path) -> None:
    """Report the note an edition carried, where its file was moved, and a link left out."""
    (workdir / "note.md").write_text("Hello [all](https://ok.example/) and [x](ftp://no).")
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 0, result.output
    (folder,) = (workdir / "outbox").iterdir()
    assert f"editor's note from note.md, moved to note.used-{folder.name}.md" in result.output
    (workdir / "given.md").write_text("Hello again.")
    again = CliRunner().invoke(main, ["run", "--note", "given.md"])
    assert again.exit_code == 0, again.output
    assert "Nothing to send: nothing new since the last edition" in again.output
    assert "the note given.md was not used: give it again next time" in again.output
    assert (
        f"warning: {workdir / 'note.md'}: the link 'ftp://no' is shown as text only: only"
        " http(s) and mailto links are kept"
    ) in result.output


def test_digest_check_tells_of_the_waiting_note(noted: Settings, tmp_path: Path) -> None:
    """Report the note waiting in DIGEST_NOTE_FILE: none, fine, unsafe links, unreadable."""
    from digest.check import check_note

    note_file = tmp_path / "notes" / "note.md"
    (none,) = check_note(noted)
    assert none.level == "ok" and "no note waiting" in none.message
    note_file.write_text(NOTE)
    (fine,) = check_note(noted)
    assert fine.level == "ok" and fine.key == "DIGEST_NOTE_FILE" and "waits" in fine.message
    note_file.write_text(HOSTILE)
    (links,) = check_note(noted)
    assert links.level == "warning" and "'javascript:alert(1)'" in links.message
    note_file.write_bytes(b"\xff")
    (bad,) = check_note(noted)
    assert bad.level == "warning" and "line 1: not UTF-8 text" in bad.message
