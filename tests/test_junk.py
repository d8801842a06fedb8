"""Junk: placeholders and boilerplate are left out at selection, with a reason."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest import pipeline
from digest.cli import main
from digest.config import Settings
from digest.junk import article_junk_reason
from digest.models import Article
from digest.select import select

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
GOOD = (
    "The city council approved a new budget for road repairs on Monday evening. "
    "Work on the worst streets starts in the spring."
)


def make(title: str, *paragraphs: str) -> Article:
    """Return an article from the given title and paragraphs."""
    return Article(id=title or "x", source="/feed.txt", title=title, paragraphs=paragraphs)


@pytest.mark.parametrize(
    ("title", "paragraphs", "expected"),
    [
        ("Budget", ("This article will be expanded soon.",), "placeholder"),
        ("Budget", ("Coming soon: the full story.",), "placeholder"),
        ("Loop", ("Same words again. " * 6,), "repeats itself"),
        ("", (GOOD,), "no title"),
        ("Untitled", (GOOD,), "no real title"),
        ("https://example.org/a", (GOOD,), "no real title"),
        ("---", (GOOD,), "no real title"),
        ("Budget", ("Read more.",), "too short"),
        (
            "Welcome",
            ("We use cookies to improve your experience. Accept all cookies. Privacy policy.",),
            "cookie",
        ),
        ("Menu", ("Home | News | Sport | Sign in | Subscribe to our newsletter",), "navigation"),
    ],
)
def test_junk_is_recognised(title: str, paragraphs: tuple[str, ...], expected: str) -> None:
    """Name the reason an article is junk."""
    reason = article_junk_reason(make(title, *paragraphs))
    assert reason is not None and expected in reason


@pytest.mark.parametrize(
    "paragraphs",
    [
        (GOOD,),
        ("Something happened today. More later.",),
        ("The club said it would accept all offers for the striker before the deadline.",),
    ],
)
def test_real_articles_are_not_junk(paragraphs: tuple[str, ...]) -> None:
    """Keep short but real news, even when it mentions a junk word in passing."""
    assert article_junk_reason(make("Council approves road budget", *paragraphs)) is None


def test_junk_is_dropped_at_selection_with_a_logged_reason(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Leave a stored placeholder out of the edition and log why."""
    caplog.set_level(logging.INFO, logger="digest.select")
    articles = [make("Council approves road budget", GOOD), make("Later", "Coming soon.")]
    chosen = select(settings, articles, "e1", NOW)
    assert chosen.edition is not None
    assert [i.article.title for i in chosen.edition.items] == ["Council approves road budget"]
    assert any("Later" in s.reason and "placeholder" in s.reason for s in chosen.dropped)
    assert "'Later' left out: placeholder" in caplog.text


def test_the_seed_placeholder_is_gone(settings: Settings) -> None:
    """Carry no placeholder of the seed into the edition."""
    result = pipeline.run_edition(settings, NOW)
    assert result.edition is not None and result.rendered is not None
    assert "expanded soon" not in result.rendered.text
    assert all("expanded soon" not in i.article.body for i in result.edition.items)


def test_ingest_lists_junk(
    tmp_path: Path, seeds_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """List a stored article that selection will leave out, with its reason."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("DIGEST_", "SMTP_")):
            monkeypatch.delenv(key)
    (tmp_path / ".env").write_text("DIGEST_SOURCES=seeds/\n")
    (seeds_dir / "zz_cookies.txt").write_text(
        "Welcome\n\nWe use cookies on this site. Accept all cookies. Read our privacy policy.\n"
    )
    result = CliRunner().invoke(main, ["ingest"])
    assert result.exit_code == 0, result.output
    assert "junk seeds/zz_cookies.txt: 'Welcome': navigation or cookie text" in result.output
    assert "placeholder" in result.output


HN_FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Hacker News</title><link>https://news.ycombinator.com/</link>
<item><title>A new release of the Rust compiler speeds up builds</title>
<link>https://blog.rust-lang.org/2026/11/27/release.html</link>
<description><![CDATA[<a href="https://news.ycombinator.com/item?id=1">Comments</a>]]></description>
<pubDate>Fri, 27 Nov 2026 20:00:00 GMT</pubDate></item>
<item><title>digest 2.4.1</title><link>https://github.com/example/digest/releases/v2.4.1</link>
<pubDate>Fri, 27 Nov 2026 21:00:00 GMT</pubDate></item>
<item><title>Comments</title><description>Comments</description>
<pubDate>Fri, 27 Nov 2026 22:00:00 GMT</pubDate></item>
</channel></rss>
"""


def test_link_only_items_are_shown_as_title_and_link(tmp_path: Path) -> None:
    """Keep a real title with a link and no text (Hacker News, a releases feed) as title
    and link; drop an item with neither words nor a link."""
    from digest.config import load_settings
    from digest.render import render_edition

    feed = tmp_path / "hn.xml"
    feed.write_text(HN_FEED, encoding="utf-8")
    settings = load_settings(
        None, {"DIGEST_SOURCES": str(feed), "DIGEST_DB": str(tmp_path / "digest.db")}
    )
    _, rendered = pipeline.next_edition(settings, NOW)
    assert rendered is not None
    titles = [item.article.title for item in rendered.edition.items]
    assert sorted(titles) == ["A new release of the Rust compiler speeds up builds", "digest 2.4.1"]
    assert all(item.highlights == () for item in rendered.edition.items)
    assert "https://blog.rust-lang.org/2026/11/27/release.html" in rendered.html
    assert ">Comments<" not in rendered.html
    assert render_edition(settings, rendered.edition).text.count("https://github.com/") == 1
    assert article_junk_reason(make("Comments", "Comments")) == "too short to say anything"
