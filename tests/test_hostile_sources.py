"""Hostile input cannot hurt: each bad file or entry is skipped with its reason.

Every case also has a good source or entry beside the bad one: the rest is still read.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest
from _sources import DATA, ingest, source_settings

from digest import dedup, junk
from digest.errors import SourceError
from digest.models import Article, Highlight
from digest.sources import SourceResult, read_path, read_sources
from digest.sources.base import Document, read_capped
from digest.sources.feed import read as read_feed
from digest.sources.jsonfeed import read as read_jsonfeed
from digest.sources.markdown import ALIASES_REFUSED
from digest.sources.markdown import read as read_markdown
from digest.sources.sanitize import BIDI_CONTROLS, MAX_DEPTH, clean_html
from digest.store import Store

VERSION = "https://jsonfeed.org/version/1.1"
# Overflows when converted to UTC (the year 10000); the other end of the calendar too.
TOO_LATE = "9999-12-31T23:00-12:00"
TOO_EARLY = "0001-01-01T00:00+01:00"


def by_where(results: list[SourceResult]) -> dict[str, SourceResult]:
    return {Path(r.where).name: r for r in results}


def alias_bomb(levels: int = 9) -> str:
    """Return front matter whose aliases expand to 9**levels strings from a few hundred bytes."""
    lines = [
        "---",
        "title: Nine nines",
        'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    lines += ["---", "The body of an article nobody wrote.", ""]
    return "\n".join(lines)


def json_feed(*items: Mapping[str, object]) -> bytes:
    return json.dumps({"version": VERSION, "title": "Hostile", "items": list(items)}).encode()


GOOD_ITEM = {"id": "good", "title": "Good item", "content_text": "The bridge reopened today."}


# --- 1. YAML aliases in Markdown front matter ---------------------------------------


def test_front_matter_alias_bomb_is_refused(tmp_path: Path) -> None:
    """Skip a file whose front matter uses aliases, naming it; read the file beside it."""
    bomb = alias_bomb()
    assert len(bomb) < 2048
    (tmp_path / "bomb.md").write_text(bomb)
    shutil.copy(DATA / "good.md", tmp_path / "good.md")
    results = by_where(list(read_sources((str(tmp_path),))))
    assert results["bomb.md"].error == f"line 4: {ALIASES_REFUSED}"
    assert results["bomb.md"].skipped[0].where == str(tmp_path / "bomb.md")
    assert [a.title for a in results["good.md"].articles] == ["Harbour festival announced"]


@pytest.mark.parametrize(
    "front",
    [
        "title: &t Shared title\nsummary: *t",
        "defaults: &d {author: Ann}\n<<: *d\ntitle: Merged",
        "tags: &x [a, *x]\ntitle: Recursive",
    ],
)
def test_any_alias_is_refused(front: str) -> None:
    """Refuse one plain alias, a merge key and a recursive alias alike."""
    doc = Document(where="/notes/a.md", data=f"---\n{front}\n---\nBody.\n".encode())
    with pytest.raises(SourceError, match=r"^/notes/a\.md: line \d+: front matter uses YAML"):
        read_markdown(doc)


def test_anchor_bomb_stores_nothing(tmp_path: Path) -> None:
    """Ingest: the bombed file is reported as skipped and no row is written for it."""
    (tmp_path / "notes").mkdir()
    # Six levels in the tags: 531,441 strings once expanded, a 4 MB row before the fix
    # (the nine of the test above made a row of hundreds of megabytes).
    (tmp_path / "notes" / "bomb.md").write_text(alias_bomb(6).replace("a5: &a5", "tags: &a5"))
    settings = source_settings(tmp_path, tmp_path / "notes")
    report = ingest(settings)
    assert report.new == 0
    assert [s.reason for s in report.skipped] == [f"line 4: {ALIASES_REFUSED}"]
    with Store(settings.db) as store:
        assert store.articles.count() == 0


# --- 2. Dates out of range once in UTC ------------------------------------------------


@pytest.mark.parametrize("key", ["date_published", "date_modified"])
@pytest.mark.parametrize("value", [TOO_LATE, TOO_EARLY])
def test_json_feed_date_out_of_range_skips_that_item(key: str, value: str) -> None:
    """Skip the one item with an impossible date, with its reason; keep the others."""
    bad = {"id": "bad", "title": "Bad date", "content_text": "Text.", key: value}
    result = read_jsonfeed(Document(where="/feeds/f.json", data=json_feed(GOOD_ITEM, bad)))
    assert [a.title for a in result.articles] == ["Good item"]
    assert [(s.where, s.reason) for s in result.skipped] == [
        ("/feeds/f.json: item 2", f"'{key}' is out of range once converted to UTC: '{value}'")
    ]


@pytest.mark.parametrize(
    ("date", "shown"),
    [
        (f"'{TOO_LATE}'", TOO_LATE),
        ("9999-12-31T23:00:00-12:00", "9999-12-31 23:00:00-12:00"),  # a YAML timestamp
        (f"'{TOO_EARLY}'", TOO_EARLY),
    ],
)
def test_markdown_date_out_of_range_skips_that_file(tmp_path: Path, date: str, shown: str) -> None:
    """Skip the one file with an impossible date, naming key and value; read the others."""
    (tmp_path / "far.md").write_text(f"---\ntitle: Far away\ndate: {date}\n---\nBody.\n")
    shutil.copy(DATA / "good.md", tmp_path / "good.md")
    results = by_where(list(read_sources((str(tmp_path),))))
    assert results["far.md"].error == (
        f"front matter 'date' is out of range once converted to UTC: '{shown}'"
    )
    assert len(results["good.md"].articles) == 1


def test_feed_date_out_of_range_names_the_field() -> None:
    """Skip an RSS entry whose date leaves the calendar in UTC, naming its field."""
    rss = (
        '<rss version="2.0"><channel><title>T</title>'
        "<item><title>Far</title><pubDate>9999-12-31T23:00:00-12:00</pubDate>"
        "<description>Far text.</description></item>"
        "<item><title>Near</title><description>Near text.</description></item>"
        "</channel></rss>"
    )
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
        "<entry><title>Far</title><updated>9999-12-31T23:00:00-12:00</updated>"
        "<summary>x</summary></entry>"
        "<entry><title>Near</title><summary>Near text.</summary></entry></feed>"
    )
    for data, key in ((rss, "published"), (atom, "updated")):
        result = read_feed(Document(where="/f.xml", data=data.encode()))
        assert [a.title for a in result.articles] == ["Near"]
        assert [s.reason for s in result.skipped] == [
            f"'{key}' is out of range once converted to UTC"
        ]


# --- 3. Size: local files, and what junk detection and dedup scan ---------------------


def test_local_file_over_the_cap_is_skipped_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refuse a 50 MB article by its size, without reading it; read the file beside it."""
    huge = tmp_path / "huge.md"
    with huge.open("wb") as file:
        file.truncate(50_000_000)  # sparse: no 50 MB written to the test's disk
    shutil.copy(DATA / "good.md", tmp_path / "good.md")
    opened: list[str] = []
    real_open = Path.open

    def tracking(self: Path, *args: object, **kwargs: object) -> object:
        opened.append(self.name)
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", tracking)
    results = by_where(list(read_sources((str(tmp_path),))))
    assert results["huge.md"].error == (
        "file of 50,000,000 bytes, larger than 2,000,000 (DIGEST_MAX_ARTICLE_BYTES); not read"
    )
    assert "huge.md" not in opened
    assert len(results["good.md"].articles) == 1


def test_cap_is_the_setting(tmp_path: Path) -> None:
    """Take the cap from DIGEST_MAX_ARTICLE_BYTES, for every local reader."""
    folder = tmp_path / "notes"
    folder.mkdir()
    body = "The ferry runs again. " * 100
    (folder / "long.md").write_text(f"# Long\n\n{body}\n")
    (folder / "long.txt").write_text(f"Long\n\n{body}\n")
    (folder / "short.md").write_text("# Short\n\nThe ferry runs again.\n")
    settings = source_settings(tmp_path, folder, DIGEST_MAX_ARTICLE_BYTES="1024")
    report = ingest(settings)
    assert report.new == 1
    assert sorted((Path(s.where).name, s.reason) for s in report.skipped) == [
        (name, f"file of {size:,} bytes, larger than 1,024 (DIGEST_MAX_ARTICLE_BYTES); not read")
        for name, size in (
            ("long.md", (folder / "long.md").stat().st_size),
            ("long.txt", (folder / "long.txt").stat().st_size),
        )
    ]
    with pytest.raises(SourceError, match="larger than 1,024"):
        read_path(folder / "long.md", max_bytes=1024)


def test_file_growing_past_the_cap_is_not_read_whole(tmp_path: Path) -> None:
    """Read at most one byte over the cap when the file is bigger than its stat said."""
    path = tmp_path / "growing.md"
    path.write_bytes(b"x" * 5000)
    with pytest.raises(SourceError, match="as it was read; not read whole"):
        read_capped(path, 1024, size=100)  # the size a stat gave before it grew
    assert read_capped(path, 5000) == b"x" * 5000


# Longer than what is scanned: whatever follows it is never looked at.
START = " ".join(f"Sentence {n} about the new harbour wall and its cost." for n in range(2000))


def big_article(tail: str, start: str = START) -> Article:
    """Return a 10 MB article (a feed can carry one): start, then tail to fill it."""
    assert junk.SCAN_CHARS == dedup.SCAN_CHARS < len(START) < 2 * junk.SCAN_CHARS
    body = start + " " + tail
    return Article(id="big", source="/feeds/f.json", title="A long report", paragraphs=(body,))


def words(prefix: str) -> str:
    """Return 10 MB of words that are all different, so that every shingle is new."""
    return " ".join(f"{prefix}{n}" for n in range(1_000_000))


def test_junk_detection_reads_only_the_start() -> None:
    """Judge a 10 MB article by its first 100,000 characters: what follows is never read."""
    article = big_article("Content to follow. " * 500_000)
    assert junk.article_junk_reason(article) is None
    assert junk.junk_reason(article.title, article.body) is None
    assert not junk.is_boilerplate(article.body)
    early = big_article("More to read. " * 700_000, start="Content to follow. " + START)
    assert junk.article_junk_reason(early) == "placeholder text ('Content to follow')"


def test_dedup_shingles_only_the_start() -> None:
    """Shingle a 10 MB article's first 100,000 characters: same stories, same result."""
    article = big_article(words("alpha"))
    other = big_article(words("omega"))
    text = dedup.article_text(article)
    assert dedup.shingles(text) == dedup.shingles(text[: dedup.SCAN_CHARS])
    assert dedup.duplicate_groups([text, dedup.article_text(other)]) == [[0, 1]]


# --- 4. JSON nested too deeply ---------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"version": "%s", "items": [{"id": "1", "x": ' % VERSION.encode()
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}]}",
    ],
)
def test_deeply_nested_json_feed_is_skipped(tmp_path: Path, data: bytes) -> None:
    """Skip a JSON file nested 100,000 deep with a clear reason, not a traceback."""
    (tmp_path / "deep.json").write_bytes(data)
    shutil.copy(DATA / "feed.json", tmp_path / "feed.json")
    results = by_where(list(read_sources((str(tmp_path),))))
    assert results["deep.json"].error == "not a JSON Feed: nested too deeply"
    assert len(results["feed.json"].articles) == 3


# --- 5. Text: encodings and bidirectional controls --------------------------------------

UTF8_FEED = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>\n'
    b"<item><title>Caf\xe9 reopens</title><description>The caf\xe9 is open.</description>"
    b"</item></channel></rss>"
)


def test_invalid_utf8_in_a_utf8_feed_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Warn, naming the source and the byte, when a UTF-8 feed is not UTF-8; keep its items."""
    path = tmp_path / "cafe.xml"
    path.write_bytes(UTF8_FEED)
    settings = source_settings(tmp_path, path)
    with caplog.at_level("WARNING", logger="digest.sources.feed"):
        report = ingest(settings)
    assert report.new == 1
    warning = (
        "declared as utf-8 but not valid utf-8 (line 2, byte 99); read as Windows-1252,"
        " so some letters may be wrong"
    )
    assert [r.getMessage() for r in caplog.records] == [f"{path}: {warning}"]
    with Store(settings.db) as store:
        health = store.articles.source_health()[str(path)]
        (article,) = store.articles.eligible()
    assert health.ok and health.last_warning == warning
    assert article.title == "Café reopens"  # 0xE9 is é in Windows-1252 as in Latin-1


def test_feed_without_a_declaration_is_utf8(tmp_path: Path) -> None:
    """Warn as well when an undeclared feed (so UTF-8 by XML's rule) is not UTF-8."""
    data = UTF8_FEED.replace(b'<?xml version="1.0" encoding="utf-8"?>', b"")
    result = read_feed(Document(where="/f.xml", data=data))
    assert [w.split(" (")[0] for w in result.warnings] == ["no encoding declared"]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (UTF8_FEED.replace(b"utf-8", b"iso-8859-1"), ""),
        (UTF8_FEED.replace(b"utf-8", b"iso-8859-1"), "text/xml"),
        (UTF8_FEED.replace(b"utf-8", b"iso-8859-1"), "application/rss+xml; charset=utf-8"),
        (UTF8_FEED.replace(b"\xe9", "é".encode()), "text/xml"),
        (UTF8_FEED.decode("latin-1").encode("utf-16"), ""),
    ],
)
def test_honest_encodings_are_no_warning(data: bytes, content_type: str) -> None:
    """Read feeds in the encoding they declare, or UTF-8 over text/xml, without warning."""
    result = read_feed(Document(where="/f.xml", data=data, content_type=content_type))
    assert result.warnings == []
    assert [a.title for a in result.articles] == ["Café reopens"]


BIDI = "".join(sorted(BIDI_CONTROLS))


def text_fields(article: Article) -> list[str]:
    """Return every text a reader sees of article: title, body, highlights, names, HTML."""
    highlights = [part for h in article.highlights for part in (h.text, h.label or "")]
    return [
        article.title,
        article.summary,
        article.source_name,
        article.author or "",
        article.html,
        *article.paragraphs,
        *article.tags,
        *highlights,
    ]


def assert_no_bidi(articles: list[Article]) -> None:
    assert articles
    for article in articles:
        for text in text_fields(article):
            assert not BIDI_CONTROLS & set(text), f"{text!r} of '{article.title}'"


def test_bidi_controls_leave_feeds() -> None:
    """Strip bidi controls from RSS titles, text, HTML (entities too), authors and tags."""
    rss = (
        f'<rss version="2.0"><channel><title>Town {BIDI}news</title><item>'
        f"<title>Harbour \u202egnp.exe\u202c reopens</title>"
        f"<author>ann@example.org (Ann {BIDI})</author><category>to\u2066wn</category>"
        "<description><![CDATA[<p>Text &#x202e;reversed&#x202c; and "
        f"\u2067more\u2069.</p><img alt='\u202ea' src='https://x.org/a.jpg'>]]></description>"
        "</item></channel></rss>"
    )
    (article,) = read_feed(Document(where="/f.xml", data=rss.encode())).articles
    assert_no_bidi([article])
    assert article.title == "Harbour gnp.exe reopens"
    assert article.paragraphs == ("Text reversed and more.",)
    assert article.tags == ("town",)
    assert article.source_name == "Town news"


def test_bidi_controls_leave_json_feeds() -> None:
    """Strip bidi controls from JSON Feed titles, plain text, authors, tags and feed title."""
    item = {
        "id": "1",
        "title": "Bridge\u202e repainted",
        "summary": f"Blue{BIDI} again",
        "content_text": "The old\u200f bridge.\n\nPaint\u061c.",
        "authors": [{"name": "Pat\u2068 Painter\u2069"}],
        "tags": ["\u202atown\u202c", "\u200e"],
    }
    feed = {"version": VERSION, "title": "\u202bJSON Town", "items": [item]}
    (article,) = read_jsonfeed(Document(where="/f.json", data=json.dumps(feed).encode())).articles
    assert_no_bidi([article])
    assert (article.title, article.author, article.tags) == (
        "Bridge repainted",
        "Pat Painter",
        ("town",),
    )
    assert article.paragraphs == ("The old bridge.", "Paint.")
    assert article.source_name == "JSON Town"


def test_bidi_controls_leave_markdown_and_text(tmp_path: Path) -> None:
    """Strip bidi controls from Markdown and text files: front matter, body, highlights."""
    (tmp_path / "note.md").write_text(
        "---\ntitle: Market\u202e moves\nauthor: Ann\u200f\ntags: [to\u2066wn]\n"
        "summary: Sum\u061cmary\n---\nThe market\u202d moves.\n\n• Dates\u202a: Two days.\n"
    )
    (tmp_path / "seed.txt").write_text(
        "Library\u2067 extends its hours\n\nThe library opens\u202e later from Monday on.\n\n"
        "• Hours\u200e: Until nine in the evening.\n"
    )
    articles = [a for r in read_sources((str(tmp_path),)) for a in r.articles]
    assert_no_bidi(articles)
    note = next(a for a in articles if a.title == "Market moves")
    assert note.highlights == (Highlight(text="Two days.", label="Dates"),)
    assert "Library extends its hours" in [a.title for a in articles]


def test_right_to_left_text_itself_is_kept() -> None:
    """Keep Arabic and Hebrew letters: only the invisible controls go."""
    html = clean_html("<p>\u202bשלום עולם\u202c and مرحبا</p>")
    assert html == "<p>שלום עולם and مرحبا</p>"


# --- HTML nested too deeply for the sanitiser ------------------------------------------


def test_deeply_nested_html_skips_that_entry() -> None:
    """Skip an entry whose HTML nests 30,000 deep (nh3 is quadratic in it); keep the rest."""
    deep = "<div>" * 30_000 + "Deep text."
    rss = (
        '<rss version="2.0"><channel><title>T</title>'
        f"<item><title>Deep</title><description><![CDATA[{deep}]]></description></item>"
        "<item><title>Flat</title><description>Flat text.</description></item>"
        "</channel></rss>"
    )
    item = {"id": "deep", "title": "Deep", "content_html": deep}
    result = read_feed(Document(where="/f.xml", data=rss.encode()))
    json_result = read_jsonfeed(Document(where="/f.json", data=json_feed(item, GOOD_ITEM)))
    reason = f"HTML nested more than {MAX_DEPTH:,} elements deep"
    assert [a.title for a in result.articles] == ["Flat"]
    assert [(s.where, s.reason) for s in result.skipped] == [("/f.xml: entry 1", reason)]
    assert [a.title for a in json_result.articles] == ["Good item"]
    assert [s.reason for s in json_result.skipped] == [reason]


@pytest.mark.parametrize(
    "html",
    [
        "<div>" * 900 + "x" + "</div>" * 900,
        "<ul>" + "<li>item" * 3000 + "</ul>",
        "<p>para" * 3000,
        "<div></div>" * 3000 + "<br><img src='https://x.org/a.jpg'>" * 3000,
        "</span>" * 3000 + "<p>x</p>",
    ],
)
def test_long_or_sloppy_html_is_not_too_deep(html: str) -> None:
    """Accept many elements, unclosed <li> and <p>, and stray end tags: only depth counts."""
    assert clean_html(html)
