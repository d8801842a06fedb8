"""The web pages as a site: the brand on every page, the archive and its edition pages."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _pagecheck import check_page
from webserver import request, running

from digest import archive, pipeline
from digest.brand import palette
from digest.config import Settings
from digest.models import Article, Edition, Highlight, Item, RenderedEdition, Section
from digest.render import GREETING_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER
from digest.store import Store
from digest.tokens import make_token
from digest.web import App

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
SECRET = "a-test-secret-that-is-long-enough-to-sign"
BRAND = "#fffbcc"  # a very light yellow: links in it must be darkened


def _branded(settings: Settings, **changes: object) -> Settings:
    return replace(
        settings,
        secret_key=SECRET,
        brand_color=BRAND,
        tagline="The harbour's news, every morning",
        base_url="https://news.example.org",
        **changes,  # type: ignore[arg-type]
    )


def _two_editions(settings: Settings, seeds_dir: Path) -> None:
    pipeline.run_edition(settings, NOW)
    (seeds_dir / "later.txt").write_text("Later story\n\nIt happened the next day. Indeed.\n")
    pipeline.run_edition(settings, NOW.replace(day=29))


def test_every_page_carries_the_brand_the_layout_and_a_subscribe_link(
    settings: Settings, seeds_dir: Path
) -> None:
    """Show the brand colour, tagline and shared layout on every page, errors included."""
    settings = _branded(settings, preview="on")
    _two_editions(settings, seeds_dir)
    with Store(settings.db) as store:
        store.subscribers.upsert("ada@example.org", "Ada Lovelace", (), "", NOW)
        reader = store.subscribers.by_email("ada@example.org")
    assert reader is not None
    prefs = make_token(SECRET, settings.list_id, reader.id, "preferences")
    unsub = make_token(SECRET, settings.list_id, reader.id)
    colours = palette(BRAND)
    paths = {
        "/archive/": 200,
        "/archive/2026-11-28/": 200,
        "/archive/2026-11-29/": 200,
        "/subscribe": 200,
        "/confirm/not-a-token": 404,
        f"/preferences/{prefs}": 200,
        f"/unsubscribe/{unsub}": 200,
        "/unsubscribe/": 200,
        "/preview": 200,
        "/nowhere": 404,
        "/archive/2026-11-30/": 404,
    }
    with running(App(settings)) as site:
        for path, expected in paths.items():
            status, headers, html = request(site + path)
            assert status == expected, path
            assert headers["Content-Type"].startswith("text/html"), path
            check_page(html)
            assert f"--brand: {colours.brand}" in html, path
            assert f"--link: {colours.light.link}" in html and colours.dark.link in html, path
            assert f"--on-brand: {colours.on_brand}" in html, path
            assert "The harbour&#39;s news, every morning" in html, path
            assert "prefers-color-scheme: dark" in html, path
            assert 'href="/subscribe"' in html, path
        # The light yellow cannot be a link colour as it is: it was darkened.
        assert colours.light.link != BRAND


def test_logo_in_place_of_the_title(settings: Settings) -> None:
    """Show the logo, sized and named by the title, when DIGEST_LOGO_URL is set."""
    logo = "https://news.example.org/logo.png"
    settings = replace(settings, logo_url=logo, logo_width=180, logo_height=40)
    html = archive.index_html(settings)
    check_page(html)
    assert f'<img src="{logo}" width="180" height="40" alt="Daily Digest">' in html
    assert "javascript:" not in archive.index_html(replace(settings, logo_url="javascript:x"))


@pytest.mark.parametrize(
    ("language", "lang", "direction"),
    [
        ("en", "en", "ltr"),
        ("pt_BR", "pt-BR", "ltr"),
        ("ar", "ar", "rtl"),
        ("he-IL", "he-IL", "rtl"),
    ],
)
def test_language_and_direction_from_digest_language(
    settings: Settings, language: str, lang: str, direction: str
) -> None:
    """Set lang from DIGEST_LANGUAGE and dir for a language written right to left."""
    html = archive.index_html(replace(settings, language=language))
    assert f'<html lang="{lang}" dir="{direction}">' in html


def test_the_index_lists_date_subject_top_story_and_count(
    settings: Settings, seeds_dir: Path
) -> None:
    """List each edition newest first with its date, subject, first title and item count."""
    _two_editions(settings, seeds_dir)
    html = archive.index_html(settings)
    check_page(html)
    assert html.index("Daily Digest: 29 Nov 2026") < html.index("Daily Digest: 28 Nov 2026")
    assert '<time datetime="2026-11-29">29 Nov 2026</time> · 1 story' in html
    assert '<time datetime="2026-11-28">28 Nov 2026</time> · 10 stories' in html
    assert "Top story: Later story" in html
    assert "Top story: Ad sales boost Time Warner profit" in html


def test_an_edition_page_is_a_page_of_the_site_built_from_the_store(
    settings: Settings, seeds_dir: Path
) -> None:
    """Show the edition's items in the site's page, with a way back and to the next one,
    after the outbox folder was deleted."""
    _two_editions(settings, seeds_dir)
    shutil.rmtree(settings.outbox)
    older = archive.edition_html(settings, "2026-11-28")
    assert older is not None
    page = check_page(older)
    assert page.tags["article"] == 11  # the edition and its ten items
    assert '<h1 id="edition-title">Daily Digest: 28 Nov 2026</h1>' in older
    assert "In this issue" in older  # five items or more
    assert "Ad sales boost Time Warner profit" in older
    assert "fourth quarter profits were slightly better than" in older
    assert 'href="../2026-11-29/" rel="next"' in older and 'rel="prev"' not in older
    assert '<a href="../">All editions</a>' in older
    assert "<html" in older and "%%" not in older and "<table" not in older
    newer = archive.edition_html(settings, "2026-11-29")
    assert newer is not None and "In this issue" not in newer  # one item
    assert 'href="../2026-11-28/" rel="prev"' in newer and 'rel="next"' not in newer
    assert "https://unsubscribe.invalid" not in newer
    assert f"{settings.base_url}/unsubscribe/" in newer


def test_article_text_is_escaped_and_only_safe_links_kept(settings: Settings) -> None:
    """Escape a hostile title and drop a javascript: link or image."""
    hostile = Article(
        id="x1",
        source="s",
        title="<script>alert(1)</script> & more",
        url="javascript:alert(1)",
        image="javascript:alert(2)",
        author="<b>Eve</b>",
        highlights=(Highlight("<img src=x onerror=alert(3)>", label="<i>L</i>"),),
    )
    edition = Edition(
        "2026-11-28",
        "Daily Digest",
        NOW.date(),
        NOW,
        (Section("", (Item(hostile, hostile.highlights),)),),
    )
    with Store(settings.db) as store:
        store.articles.save_one(hostile, NOW)
        store.editions.record(
            edition, "Subject <x>", None, RenderedEdition(edition, "s", "p", "<p>x</p>", "x")
        )
    html = archive.edition_html(settings, "2026-11-28")
    assert html is not None
    check_page(html)
    assert (
        "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    )
    assert "javascript:" not in html and "<img src=x" not in html and "<b>Eve" not in html
    assert "Subject &lt;x&gt;" in html
    index = archive.index_html(settings)
    assert "<script>alert" not in index and "<x>" not in index


def _email(body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><title>T</title><style>p{color:red}</style>'
        f'</head><body><div class="preheader">Inbox line</div>{body}</body></html>'
    )


def test_an_edition_stored_without_its_document_shows_the_email_body_sanitised(
    settings: Settings,
) -> None:
    """Embed the stored email's body, cleaned, when the store has no edition document."""
    edition = Edition("2026-11-28", "Daily Digest", NOW.date(), NOW, ())
    body = (
        '<table role="presentation" width="600" style="width:600px"><tr><td>'
        '<h1 class="masthead-title">Daily Digest</h1>'
        f'<p>{GREETING_PLACEHOLDER}</p><h2><a href="https://example.org/a">Story A</a></h2>'
        '<script>alert(1)</script><p onclick="x()">Point one.</p>'
        f'<p><a href="{UNSUBSCRIBE_PLACEHOLDER}">Unsubscribe</a></p></td></tr></table>'
    )
    with Store(settings.db) as store:
        store.editions.record(
            edition, "Old one", None, RenderedEdition(edition, "Old one", "p", _email(body), "t")
        )
        # An earlier release kept no document beside the content.
        store.db.engine.dispose()
    import sqlite3

    with sqlite3.connect(settings.db) as conn:
        conn.execute("UPDATE edition_content SET edition = NULL")
    html = archive.edition_html(settings, "2026-11-28")
    assert html is not None
    check_page(html)  # the email's h1 stepped down: one h1
    assert '<h2 class="masthead-title">' not in html and "<h2>Daily Digest</h2>" in html
    assert '<h3><a href="https://example.org/a" rel="noopener noreferrer">Story A</a></h3>' in html
    assert "Point one." in html and "onclick" not in html and "<script>alert" not in html
    assert "Inbox line" not in html and "color:red" not in html and "width:600px" not in html
    assert "Hello," in html and "https://news.example.org/unsubscribe/" not in html
    assert f"{settings.base_url}/unsubscribe/" in html and "%%" not in html


def test_an_edition_stored_without_content_is_shown_from_the_outbox(settings: Settings) -> None:
    """Show an edition an earlier release stored without content from the outbox copy."""
    edition = Edition("2026-11-28", "Daily Digest", NOW.date(), NOW, ())
    with Store(settings.db) as store:
        store.editions.record(edition, "From the outbox")
    assert archive.edition_html(settings, "2026-11-28") is None
    folder = settings.outbox / "2026-11-28"
    folder.mkdir(parents=True)
    (folder / "digest.html").write_text(_email("<p>Kept on disk.</p>"))
    html = archive.edition_html(settings, "2026-11-28")
    assert html is not None and "Kept on disk." in html and "From the outbox" in html
    check_page(html)


def test_an_edition_without_the_trailing_slash_is_redirected(
    settings: Settings, seeds_dir: Path
) -> None:
    """Send /archive/<id> to /archive/<id>/, where the page's relative links work."""
    pipeline.run_edition(settings, NOW)
    with running(App(settings)) as site:
        status, headers, _ = request(f"{site}/archive/2026-11-28")
        assert status == 301 and headers["Location"] == "/archive/2026-11-28/"
        assert request(f"{site}/archive/2026-11-28/")[0] == 200
        assert request(f"{site}/archive/..%2Fetc")[0] == 404


def test_the_static_archive_writes_the_same_pages(
    settings: Settings, seeds_dir: Path, tmp_path: Path
) -> None:
    """Write the same pages, their links within the folder and sign-up on the server."""
    settings = replace(settings, base_url="https://news.example.org")
    _two_editions(settings, seeds_dir)
    out = tmp_path / "public"
    archive.write_archive(settings, out)
    index = (out / "index.html").read_text()
    check_page(index)
    assert 'href="2026-11-29/"' in index and 'href="feed.xml"' in index
    assert 'href="https://news.example.org/subscribe"' in index
    page = (out / "2026-11-28/index.html").read_text()
    check_page(page)
    assert page == archive.edition_html(settings, "2026-11-28", static=True)
    assert 'href="../2026-11-29/" rel="next"' in page and 'href="../feed.xml"' in page
    assert 'href="https://news.example.org/subscribe"' in page
    assert 'href="/' not in page  # nothing that only a server answers


def test_the_edition_page_shows_a_note_updated_and_link_only_items(settings: Settings) -> None:
    """Show the editor's note, an "Updated" item with the edition it went out in, and a
    link-only item as a compact row, where the stored edition carries them."""
    from types import SimpleNamespace

    from markupsafe import Markup

    from digest import pages
    from digest.models import EditionRecord

    plain = Article(id="p1", source="s", title="Plain story", url="https://example.org/p")
    link = SimpleNamespace(
        article=Article(
            id="l1",
            source="s",
            title="Only a link",
            url="https://example.org/l",
            image="https://example.org/i.jpg",
        ),
        highlights=(),
        also_in=(),
        link_only=True,
        update=None,
    )
    updated = SimpleNamespace(
        article=Article(id="u1", source="s", title="Edited story", source_name="Wire"),
        highlights=(Highlight("A new paragraph."),),
        also_in=(),
        link_only=False,
        update=SimpleNamespace(
            edition_id="2026-11-27", edition_date=NOW.date(), previous_title="Old title"
        ),
    )
    items = (Item(plain, ()), link, updated)
    edition = SimpleNamespace(items=items, sections=(SimpleNamespace(title="", items=items),))
    record = EditionRecord("2026-11-28", NOW.date(), "Daily Digest", "Subject", NOW, 3)
    html = pages.render(
        settings,
        "edition.html.j2",
        {
            "record": record,
            "edition": edition,
            "note_html": Markup("<p>Welcome, <strong>readers</strong>.</p>"),
            "body": None,
            "older": None,
            "newer": None,
            "unsubscribe_url": "https://news.example.org/unsubscribe/",
        },
        depth=1,
    )
    check_page(html)
    assert '<h2 id="note-title">From the editor</h2>' in html
    assert "<p>Welcome, <strong>readers</strong>.</p>" in html
    assert '<strong class="badge">Updated</strong>' in html
    assert "It went out as “Old title” in the edition of 28 Nov 2026." in html
    assert '<a href="../2026-11-27/">See that edition</a>' in html and "New since then:" in html
    compact = html[html.index('id="item-l1"') : html.index('id="item-u1"')]
    assert "item card compact" in html and "Read the article" not in compact
    assert "<img" not in compact
    assert "Read the article" in html[html.index('id="item-p1"') : html.index('id="item-l1"')]
