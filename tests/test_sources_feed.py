"""RSS 0.9x/1.0/2.0 and Atom through feedparser, from files and from a real HTTP server."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _sources import DATA, NOW, ingest, source_settings
from feedserver import FeedServer

from digest.errors import SourceError
from digest.sources import read_path, read_sources
from digest.sources.base import Document, entry_id
from digest.sources.feed import read
from digest.store import Store

RSS = (DATA / "rss2.xml").read_bytes()


@pytest.mark.parametrize(
    ("name", "titles"),
    [
        (
            "rss2.xml",
            [
                'Harbour reopens after "storm" repairs',
                "Market moves to the square",
                "Library extends its hours",
                "An untitled note about the ferry timetable changing in spring.",
            ],
        ),
        ("atom.xml", ["Winter garden notes", "Undated entry"]),
        ("rss1.rdf", ["First RDF item"]),
        ("rss091.xml", ["Ninety-one"]),
        ("latin1.xml", ["Crème brûlée à la carte"]),
        ("cp1251.xml", ["Привет, мир"]),
    ],
)
def test_formats_and_encodings(name: str, titles: list[str]) -> None:
    """Read every RSS version, Atom, and feeds declared ISO-8859-1 or Windows-1251."""
    result = read_path(DATA / name)
    assert [a.title for a in result.articles] == titles
    assert result.warnings == []
    assert all(a.paragraphs for a in result.articles)


def test_encoded_feeds_keep_their_letters() -> None:
    """Decode the body and the feed title by the declared encoding, not as UTF-8."""
    (latin,) = read_path(DATA / "latin1.xml").articles
    assert latin.paragraphs == ("Le café sert une crème brûlée dès lundi.",)
    assert latin.source_name == "Café du Port"
    (cyrillic,) = read_path(DATA / "cp1251.xml").articles
    assert cyrillic.paragraphs == ("Городской парк открыт снова.",)
    assert cyrillic.source_name == "Новости города"


def test_rss2_entry_fields() -> None:
    """Take guid, link, dates in UTC, author, tags, entities and CDATA from RSS 2.0."""
    first, market, library, untitled = read_path(DATA / "rss2.xml").articles
    assert first.source_name == "Harbour News & Notes"
    assert first.url == "https://news.example.org/2026/11/harbour"  # relative, resolved
    assert first.published == datetime(2026, 11, 27, 7, 30, tzinfo=UTC)
    assert first.author == "Ann Reporter"
    assert first.tags == ("Town", "Boats")
    assert first.paragraphs == (
        "The harbour reopened on Friday.",
        "Boats were back by noon. Boats bad desk",
        "Fishing resumes next week.",
    )
    assert first.id == entry_id("", "tag:news.example.org,2026:harbour", None, "", "")
    assert market.published == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    # A bare guid is no address: no link is made up from it.
    assert library.url is None
    assert untitled.published is None and untitled.url is None


def test_rss2_html_is_sanitised() -> None:
    """Keep no script, style, iframe, event handler or javascript: link in stored HTML."""
    first = read_path(DATA / "rss2.xml").articles[0]
    for bad in ("<script", "<style", "<iframe", "onclick", "javascript:", "steal"):
        assert bad not in first.html
    assert 'href="https://news.example.org/boats"' in first.html
    assert 'href="mailto:desk@example.org"' in first.html
    assert "alert" not in first.body and "color" not in first.body


def test_lead_images() -> None:
    """Take the lead image from the enclosure, media:content, media:thumbnail or <img>."""
    first, market, library, untitled = read_path(DATA / "rss2.xml").articles
    assert first.image == "https://cdn.example.org/harbour.jpg"
    assert market.image == "https://cdn.example.org/market.jpg"
    assert library.image == "https://cdn.example.org/library-thumb.jpg"
    assert untitled.image is None
    garden, _ = read_path(DATA / "atom.xml").articles
    assert garden.image == "https://blog.example.net/img/roses.jpg"


def test_atom_base_dates_and_summary() -> None:
    """Resolve against xml:base, fall back from published to updated, keep the summary."""
    garden, undated = read_path(DATA / "atom.xml").articles
    assert garden.url == "https://blog.example.net/posts/winter-garden"
    assert 'href="https://blog.example.net/posts/frost"' in garden.html
    assert garden.published == garden.updated == datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert garden.author == "Sam Gardener"
    assert garden.summary == "Short notes on the winter garden."
    assert garden.source_name == "The Example Blog"
    assert undated.published is None and undated.updated is None


def test_undated_entry_is_ingested_and_dated_by_first_seen(tmp_path: Path) -> None:
    """Store an entry without any date; the store orders it by when it was first seen."""
    settings = source_settings(tmp_path, DATA / "atom.xml")
    assert ingest(settings).new == 2
    with Store(settings.db) as store:
        undated = next(a for a in store.articles.eligible() if a.title == "Undated entry")
        assert store.articles.first_seen(undated.id) == NOW


def test_relative_links_resolve_against_the_final_url(feed_server: FeedServer) -> None:
    """Resolve relative links in a fetched feed against where it was finally served from."""
    body = RSS.replace(b"<link>https://news.example.org/</link>", b"")
    feed_server.add("/feeds/news.xml", body)
    start = feed_server.add("/news", status=301, location="/feeds/news.xml")
    (result,) = read_sources((start,))
    assert result.ok, result.error
    assert result.articles[0].url == feed_server.url + "/2026/11/harbour"
    assert f'href="{feed_server.url}/boats"' in result.articles[0].html


@pytest.mark.parametrize("name", ["latin1.xml", "cp1251.xml"])
def test_encoded_feed_over_http(feed_server: FeedServer, name: str) -> None:
    """Decode a fetched feed by its XML declaration when the header names no charset."""
    url = feed_server.add(f"/{name}", (DATA / name).read_bytes(), content_type="application/xml")
    (result,) = read_sources((url,))
    expected = read_path(DATA / name).articles[0].title
    assert [a.title for a in result.articles] == [expected]


def test_malformed_xml_is_reported() -> None:
    """Name the file, the line and the parser's complaint for XML that is no feed."""
    with pytest.raises(SourceError, match=r"not-a-feed.xml: malformed feed: line \d+"):
        read_path(DATA / "not-a-feed.xml")


def test_html_page_where_a_feed_was_expected(feed_server: FeedServer) -> None:
    """Say the URL served an HTML page, with the HTTP status kept for the health table."""
    url = feed_server.add("/blog", (DATA / "page.html").read_bytes(), content_type="text/html")
    (result,) = read_sources((url,))
    assert result.error == "not a feed: an HTML page where a feed was expected"
    assert result.http_status == 200
    assert result.skipped[0].where == url


def test_bozo_feed_is_ingested_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Ingest the entries of a malformed but readable feed, and warn with the reason."""
    result = read_path(DATA / "bozo.xml")
    assert [a.title for a in result.articles] == [
        "Still readable despite the entity",
        "Second sloppy item",
    ]
    assert result.warnings and "undefined entity" in result.warnings[0]
    settings = source_settings(tmp_path, DATA / "bozo.xml")
    with caplog.at_level("WARNING"):
        report = ingest(settings)
    assert report.new == 2
    assert "bozo.xml: malformed feed, 2 entries read anyway" in caplog.text
    with Store(settings.db) as store:
        health = store.articles.source_health()[str(DATA / "bozo.xml")]
    assert health.ok and "undefined entity" in (health.last_warning or "")


def test_same_guid_through_two_feeds_is_stored_once(tmp_path: Path) -> None:
    """Store an article reached through two feeds (same guid) once."""
    for name in ("a", "b"):
        shutil.copy(DATA / "rss2.xml", tmp_path / f"{name}.xml")
    settings = source_settings(tmp_path, tmp_path / "a.xml", tmp_path / "b.xml")
    report = ingest(settings)
    # The guid "42" means something only inside its own feed; everything else is shared.
    assert (report.new, report.unchanged) == (5, 3)
    with Store(settings.db) as store:
        assert store.articles.count() == 5


def test_same_canonical_link_through_two_feeds_is_stored_once(tmp_path: Path) -> None:
    """Match two entries without a common guid by their link, tracking parameters aside."""
    (tmp_path / "a.xml").write_text(
        '<rss version="2.0"><channel><title>A</title><item><title>Story</title>'
        "<link>https://Example.org/story?utm_source=a#top</link><guid>a-1</guid>"
        "<description>Text.</description></item></channel></rss>"
    )
    (tmp_path / "b.xml").write_text(
        '<rss version="2.0"><channel><title>B</title><item><title>Story (B)</title>'
        "<link>https://example.org:443/story</link><guid>b-9</guid>"
        "<description>Other text.</description></item></channel></rss>"
    )
    settings = source_settings(tmp_path, tmp_path / "a.xml", tmp_path / "b.xml")
    report = ingest(settings)
    assert (report.new, report.unchanged) == (1, 1)
    with Store(settings.db) as store:
        (article,) = store.articles.eligible()
    assert article.title == "Story"  # kept from the source that brought it first


def test_entries_of_one_feed_sharing_a_link_stay_apart(tmp_path: Path) -> None:
    """Keep two entries with their own guids but one link as two, stable across runs."""
    (tmp_path / "live.xml").write_text(
        '<rss version="2.0"><channel><title>Live</title>'
        "<item><title>Update 1</title><link>https://x.org/live</link><guid>u1</guid>"
        "<description>First.</description></item>"
        "<item><title>Update 2</title><link>https://x.org/live</link><guid>u2</guid>"
        "<description>Second.</description></item></channel></rss>"
    )
    settings = source_settings(tmp_path, tmp_path / "live.xml")
    assert ingest(settings).new == 2
    with (tmp_path / "live.xml").open("a") as changed:
        changed.write("\n")  # parsed again, entries the same
    again = ingest(settings, NOW + timedelta(hours=1))
    assert (again.new, again.updated, again.unchanged) == (0, 0, 2)


def test_changed_entry_keeps_its_identity(tmp_path: Path, feed_server: FeedServer) -> None:
    """Update an entry whose text changed under the same guid, not add it again."""
    url = feed_server.add("/feed.xml", RSS)
    settings = source_settings(tmp_path, url)
    assert ingest(settings).new == 4
    feed_server.add("/feed.xml", RSS.replace(b"reopened on Friday", b"reopened on Saturday"))
    report = ingest(settings, NOW + timedelta(hours=1))
    assert (report.new, report.updated, report.unchanged) == (0, 1, 3)
    with Store(settings.db) as store:
        assert store.articles.count() == 4
        first = store.articles.get(entry_id("", "tag:news.example.org,2026:harbour", None, "", ""))
    assert first is not None and "Saturday" in first.body


def test_entry_without_guid_or_link_is_known_by_its_content() -> None:
    """Give an entry with neither guid nor link a hash of its title and content."""
    doc = Document(
        where="/feeds/x.xml",
        data=b'<rss version="2.0"><channel><title>X</title><item><title>T</title>'
        b"<description>Body.</description></item></channel></rss>",
    )
    (article,) = read(doc).articles
    assert article.id == entry_id("/feeds/x.xml", None, None, "T", "Body.")
    assert article.id != entry_id("/feeds/x.xml", None, None, "T", "Other body.")


def test_entry_with_neither_title_nor_text_is_skipped() -> None:
    """Leave out an empty entry with its position and reason, keep the others."""
    doc = Document(
        where="/feeds/x.xml",
        data=b'<rss version="2.0"><channel><title>X</title><item><link>https://x.org/1</link>'
        b"</item><item><title>Kept</title></item></channel></rss>",
    )
    result = read(doc)
    assert [a.title for a in result.articles] == ["Kept"]
    assert [(s.where, s.reason) for s in result.skipped] == [
        ("/feeds/x.xml: entry 1", "no title and no text")
    ]


def test_nothing_stored_is_lost_when_a_feed_breaks(tmp_path: Path, feed_server: FeedServer) -> None:
    """Keep every stored article when the feed later fails or turns into garbage."""
    url = feed_server.add("/feed.xml", RSS)
    settings = source_settings(tmp_path, url)
    ingest(settings)
    feed_server.add("/feed.xml", b"<<<garbage", content_type="application/xml")
    broken = ingest(settings, NOW + timedelta(hours=1))
    assert broken.skipped and "malformed feed" in broken.skipped[0].reason
    feed_server.add("/feed.xml", b"gone", status=500, content_type="text/plain")
    ingest(settings, NOW + timedelta(hours=2))
    with Store(settings.db) as store:
        assert store.articles.count() == 4
        assert len(store.articles.eligible()) == 4
