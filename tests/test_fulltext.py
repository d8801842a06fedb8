"""Full text of thin feed items: pages on 127.0.0.1 shaped like real news pages."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from _sources import NOW, ingest, source_settings
from feedserver import FeedServer, serving

from digest.highlights import choose_highlights
from digest.models import Article
from digest.sources.connection import Pool
from digest.sources.fetch import FetchOptions
from digest.sources.fulltext import FullText, FullTextOptions, extract
from digest.store import Store

MAIN = [
    "The harbour council approved a new ferry timetable on Monday after a long debate.",
    "Boats will leave every twenty minutes at peak hours, the council said in a statement.",
    "Residents had asked for more frequent crossings since the bridge closed for repairs.",
    "The operator said it would hire twelve more crew members before the spring season.",
    "Fares stay the same for this year, though a review is planned for next autumn.",
    "Local shops near the pier welcomed the news and expect more visitors at weekends.",
]

PAGE = f"""<!doctype html><html><head><title>Ferry timetable approved</title></head><body>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience.
<button>Accept all cookies</button></div>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/weather">Weather</a></li></ul></nav></header>
<main><article><h1>Ferry timetable approved</h1>
{"".join(f"<p>{s}</p>" for s in MAIN)}
</article>
<aside class="related"><h2>Related stories</h2><ul>
<li><a href="/a">Bridge repairs to last until summer</a></li>
<li><a href="/b">Council budget rises by four per cent</a></li></ul></aside>
<section id="comments" class="comments"><h2>Comments</h2>
<div class="comment"><p>Commenter42: This is a disgrace, the ferries are always late!</p></div>
</section></main>
<footer><p>Copyright 2026 Harbour News. All rights reserved.</p></footer></body></html>"""

OPTIONS = FetchOptions(timeout=2.0, max_bytes=20_000, allow_private=True)


def thin(url: str) -> Article:
    return Article(id="a", source="feed", title="Ferry timetable", url=url, summary="Ferries.")


def reader(server: FeedServer, pool: Pool, **options: object) -> FullText:
    return FullText(FullTextOptions(**options), OPTIONS, pool, sleep=lambda s: None)  # type: ignore[arg-type]


def test_extract_keeps_the_article_and_drops_menus_banners_comments_and_related() -> None:
    text = extract(PAGE)
    # trafilatura keeps the headline inside the article element.
    assert text.splitlines() == ["Ferry timetable approved", *MAIN]


def test_a_thin_item_gets_its_pages_main_text() -> None:
    with serving() as server, Pool() as pool:
        url = server.add("/story.html", PAGE, content_type="text/html")
        article = reader(server, pool).enrich(thin(url), server.url + "/feed.xml")
    assert article.full_text.splitlines()[1:] == MAIN
    assert article.full_text_note == ""


def test_a_disallowing_robots_txt_is_respected() -> None:
    with serving() as server, Pool() as pool:
        server.add("/robots.txt", "User-agent: *\nDisallow: /news/\n", content_type="text/plain")
        url = server.add("/news/story.html", PAGE, content_type="text/html")
        article = reader(server, pool).enrich(thin(url), server.url + "/feed.xml")
        assert server.hits("/news/story.html") == []
    assert article.full_text == "" and "robots.txt" in article.full_text_note


def test_a_host_not_allowed_is_not_fetched() -> None:
    with serving() as server, Pool() as pool:
        url = server.add("/story.html", PAGE, content_type="text/html")
        article = reader(server, pool, hosts=("example.org",)).enrich(thin(url), server.url)
        assert server.hits("/story.html") == []
    assert "DIGEST_FULL_TEXT_HOSTS" in article.full_text_note


def test_a_page_over_the_cap_or_too_slow_leaves_the_feed_text() -> None:
    with serving() as server, Pool() as pool:
        big = server.add("/big.html", PAGE + "<p>x</p>" * 5000, content_type="text/html")
        slow = server.add("/slow.html", PAGE, content_type="text/html", delay=3.0)
        full = reader(server, pool)
        over = full.enrich(thin(big), server.url)
        late = full.enrich(thin(slow), server.url)
    assert over.full_text == "" and "larger than" in over.full_text_note
    assert late.full_text == "" and "timed out" in late.full_text_note


def feed(link: str) -> str:
    return f"""<?xml version="1.0"?><rss version="2.0"><channel><title>Harbour</title>
<link>http://example.org/</link><item><title>Ferry timetable</title><link>{link}</link>
<guid>urn:ferry</guid><pubDate>Fri, 27 Nov 2026 08:00:00 GMT</pubDate>
<description>Ferries every twenty minutes.</description></item></channel></rss>"""


def test_ingest_stores_the_page_text_once_and_highlights_read_it(tmp_path: Path) -> None:
    with serving() as server:
        page = server.add("/story.html", PAGE, content_type="text/html")
        url = server.add("/feed.xml", feed(page))
        settings = source_settings(
            tmp_path, url, DIGEST_FULL_TEXT="auto", DIGEST_FETCH_ALLOW_PRIVATE="true"
        )
        ingest(settings)
        ingest(settings, NOW + timedelta(hours=2))
        assert len(server.hits("/story.html")) == 1
    with Store(settings.db) as store:
        (stored,) = store.articles.eligible()
    assert stored.full_text.splitlines()[1:] == MAIN
    highlights = [h.text for h in choose_highlights(stored, 3)]
    assert len(highlights) == 3 and all(h in MAIN for h in highlights)
    assert highlights == sorted(highlights, key=MAIN.index)
