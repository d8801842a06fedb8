"""The seed format reader and the source registry, with bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import SEED_FILE

from digest.errors import SourceError
from digest.models import Highlight
from digest.sources import read_sources
from digest.sources.text import read_file


def test_seed_parses_to_exact_expectations() -> None:
    """Yield the main article once, its four labelled highlights, and five related articles."""
    articles, skipped = read_file(SEED_FILE)
    main, *related = articles
    assert main.title == (
        "Iran and Armenia Strengthen Ties: Key Phone Discussion on Caucasus Region Dynamics"
    )
    assert main.title not in main.paragraphs  # the repeated title line is not a paragraph
    assert len(main.paragraphs) == 9
    assert main.paragraphs[0].startswith("In a recent telephone conversation")
    assert main.paragraphs[-1].startswith("Looking ahead")
    assert main.highlights == (
        Highlight(
            label="Iran’s Support for Regional Stability",
            text="President Pezeshkian reiterated Iran’s supportive stance on establishing peace"
            " in the Caucasus, which is crucial for regional harmony.",
        ),
        Highlight(
            label="Emphasis on Bilateral Relations",
            text="The Iranian President highlighted the strengthening ties between Iran and"
            " Armenia, calling for focused efforts to implement agreements.",
        ),
        Highlight(
            label="Commitment to Peace Negotiations",
            text="Prime Minister Pashinyan expressed Armenia’s commitment to continuing"
            " negotiations aimed at finalizing the peace agreement with Azerbaijan.",
        ),
        Highlight(
            label="Gratitude for Iranian Cooperation",
            text="Pashinyan thanked President Pezeshkian for promoting development and dynamism"
            " in their bilateral relationship.",
        ),
    )
    # The seed's "Similar Posts" has six entries: five real articles and one placeholder.
    assert [a.title for a in related] == [
        "Iran Secures All Demands in Groundbreaking IAEA Deal, Says Araghchi",
        "Iran Seeks to Boost Tourism Collaboration with Kyrgyzstan:"
        " A New Era of Travel Partnership",
        "Tragic Toll: Nearly 900 Lives Lost as Israel Intensifies Gaza Attacks",
        "Harvard Professors Take Legal Action Against Trump Over $9 Billion Funding Review",
        "Iran’s UN Envoy Slams French Hypocrisy in Nuclear Program Debate",
    ]
    for article in related:
        assert len(article.paragraphs) == 1
        assert article.summary == article.paragraphs[0]
        assert article.highlights == ()
    assert related[0].paragraphs[0].startswith("In a pivotal update on Iran’s nuclear negotiations")
    assert all("expanded soon" not in a.body for a in articles)
    assert len({a.id for a in articles}) == 6
    assert len(skipped) == 1
    assert "placeholder" in skipped[0].reason
    assert skipped[0].where.endswith(":30")  # the line the placeholder stands on


def test_ids_are_stable_across_reads() -> None:
    """Give the same article the same id on every read."""
    first, _ = read_file(SEED_FILE)
    second, _ = read_file(SEED_FILE)
    assert [a.id for a in first] == [a.id for a in second]


def test_plain_article_without_bullets(tmp_path: Path) -> None:
    """Read a plain article: title on the first line, paragraphs after."""
    path = tmp_path / "plain.txt"
    path.write_text("A plain title\n\nFirst paragraph, line one\ncontinues here.\n\nSecond one.\n")
    (article,), skipped = read_file(path)
    assert article.title == "A plain title"
    assert article.paragraphs == ("First paragraph, line one continues here.", "Second one.")
    assert article.highlights == ()
    assert skipped == []


def test_windows_line_endings_and_bom(tmp_path: Path) -> None:
    """Accept CRLF line endings and a UTF-8 byte order mark."""
    path = tmp_path / "crlf.txt"
    path.write_bytes("\ufeffTitle\r\n\r\nBody text here.\r\n".encode())
    (article,), _ = read_file(path)
    assert (article.title, article.paragraphs) == ("Title", ("Body text here.",))


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("blank.txt", b"\n\n   \n", "empty file"),
        ("binary.txt", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "binary file"),
        ("latin1.txt", "Caf\xe9 title\n\nBody.\n".encode("latin-1"), "line 1: not valid UTF-8"),
        ("bullets.txt", "• Label: text\n\nMore.\n".encode(), "no title"),
        ("huge-title.txt", ("word " * 100 + "\n\nBody.\n").encode(), "no title"),
        ("title-only.txt", b"Just a title\n", "no text after its title"),
    ],
)
def test_bad_files_raise_naming_the_path(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    """Raise SourceError naming the path and the reason for each kind of bad file."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SourceError) as info:
        read_file(path)
    assert str(path) in str(info.value)
    assert reason in str(info.value)


def test_read_sources_goes_on_after_bad_input(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Report every broken source with its path and reason, and read the rest."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.txt").write_text("Good title\n\nGood body.\n")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(b"\0\1\2\3")
    (folder / "notes.xyz").write_text("ignored: no reader for this suffix")
    missing = tmp_path / "missing"
    with caplog.at_level(logging.WARNING):
        results = list(read_sources((str(folder), str(missing), str(tmp_path / "*.none"))))
    titles = [a.title for r in results for a in r.articles]
    problems = {s.where: s.reason for r in results for s in r.skipped}
    assert titles == ["Good title"]
    assert problems[str(folder / "empty.txt")] == "empty file"
    assert problems[str(folder / "binary.txt")] == "binary file, not text"
    assert problems[str(missing)] == "no such file or folder"
    assert "matches no readable file" in problems[str(tmp_path / "*.none")]
    assert str(missing) in caplog.text


def test_glob_and_single_file(tmp_path: Path) -> None:
    """Expand globs and accept a single file; refuse a file with an unknown suffix."""
    (tmp_path / "a.txt").write_text("A\n\nBody a.\n")
    (tmp_path / "b.txt").write_text("B\n\nBody b.\n")
    (tmp_path / "c.bin").write_text("C\n\nBody c.\n")
    results = list(read_sources((str(tmp_path / "*.txt"), str(tmp_path / "c.bin"))))
    assert [a.title for r in results for a in r.articles] == ["A", "B"]
    assert any("no reader" in s.reason for r in results for s in r.skipped)
