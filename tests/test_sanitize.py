"""Feed HTML made safe with nh3, relative links resolved, plain text and first image."""

from __future__ import annotations

import pytest

from digest.sources.sanitize import absolute_url, clean_html, html_paragraphs, html_text

BASE = "https://news.example.org/2026/11/"


@pytest.mark.parametrize(
    ("dirty", "forbidden"),
    [
        ('<p>a</p><script>alert("x")</script>', "alert"),
        ("<style>p { color: red }</style><p>a</p>", "color"),
        ('<iframe src="https://evil.example.com/"></iframe><p>a</p>', "evil"),
        ('<p onclick="steal()">a</p>', "steal"),
        ('<img src="x.png" onerror="steal()">', "steal"),
        ('<a href="javascript:alert(1)">a</a>', "javascript"),
        ('<a href="data:text/html,hi">a</a>', "data:"),
        ('<img src="data:image/png;base64,AAAA">', "data:"),
        ('<a href="vbscript:msgbox">a</a>', "vbscript"),
        ('<object data="x.swf"></object><embed src="y.swf">', "swf"),
        ('<form action="https://evil.example.com/"><input name="p"></form>', "form"),
    ],
)
def test_dangerous_markup_is_removed(dirty: str, forbidden: str) -> None:
    """Drop scripts, styles, frames, event handlers and non-http(s)/mailto links."""
    assert forbidden not in clean_html(dirty, BASE).lower()


def test_safe_links_kept_and_relative_ones_resolved() -> None:
    """Keep http, https and mailto; resolve relative href and src against the base."""
    html = clean_html(
        '<a href="/boats">b</a> <a href="harbour">h</a> <a href="mailto:desk@example.org">m</a>'
        ' <a href="https://other.example.com/x">o</a> <img src="../img/a.png" alt="a">',
        BASE,
    )
    assert 'href="https://news.example.org/boats"' in html
    assert 'href="https://news.example.org/2026/11/harbour"' in html
    assert 'href="mailto:desk@example.org"' in html
    assert 'href="https://other.example.com/x"' in html
    assert 'src="https://news.example.org/2026/img/a.png"' in html


def test_relative_link_without_base_is_dropped() -> None:
    """Leave no relative link behind when there is nothing to resolve it against."""
    assert "href" not in clean_html('<a href="/boats">b</a>', "")


def test_paragraphs_and_first_image() -> None:
    """Split text at block elements, collapse spaces, skip scripts, find the first <img>."""
    paragraphs, image = html_paragraphs(
        "<h2>Head</h2><p>One  <b>bold</b>\nline.</p><ul><li>Item</li></ul>"
        '<script>no()</script><p>Two<br>Three</p><img src="https://a/1.png"><img src="https://a/2.png">'
    )
    assert paragraphs == ("Head", "One bold line.", "Item", "Two", "Three")
    assert image == "https://a/1.png"


def test_html_text_decodes_entities() -> None:
    """Turn titles with markup and entities into plain text."""
    assert html_text("Fish &amp; <em>chips</em> &quot;today&quot;") == 'Fish & chips "today"'
    assert html_text("  plain   title ") == "plain title"


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("/a", "https://x.org/b/", "https://x.org/a"),
        ("https://y.org/", "", "https://y.org/"),
        ("javascript:alert(1)", "https://x.org/", None),
        ("ftp://x.org/file", "", None),
        ("", "https://x.org/", None),
        (None, "https://x.org/", None),
    ],
)
def test_absolute_url(url: str | None, base: str, expected: str | None) -> None:
    """Resolve against the base and accept only http(s) and mailto."""
    assert absolute_url(url, base) == expected
