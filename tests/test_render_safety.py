"""Rendering: templates, autoescape, inlined CSS, the text part, template errors."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from conftest import SEED_FILE

from digest.config import Settings
from digest.errors import RenderError
from digest.highlights import choose_highlights
from digest.models import Article, Edition, Highlight, Item, Section, article_id
from digest.render import render_edition, safe_url
from digest.sources.text import read_file

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def seed_edition(k: int = 3) -> Edition:
    """Build an edition of the seed's articles."""
    articles, _ = read_file(SEED_FILE)
    items = tuple(Item(a, choose_highlights(a, k)) for a in articles)
    return Edition("2026-11-28", "Daily Digest", date(2026, 11, 28), NOW, (Section("", items),))


def one_item_edition(article: Article) -> Edition:
    """Build an edition of a single article."""
    return Edition(
        "e",
        "Daily Digest",
        date(2026, 11, 28),
        NOW,
        (Section("", (Item(article, article.highlights),)),),
    )


def test_html_has_inline_styles_and_keeps_media_queries() -> None:
    """Inline the CSS into style attributes; keep @media rules in a style block."""
    rendered = render_edition(Settings(), seed_edition())
    html = rendered.html
    assert re.search(r'<h2 class="item-title" style="[^"]*font-size', html)
    assert re.search(r'<li class="highlight" style="[^"]*line-height', html)
    assert "@media" in html
    # Ordinary rules are inlined, so only the media query is left in <style>.
    (style,) = re.findall(r"<style[^>]*>(.*?)</style>", html, re.S)
    assert ".item-title {" not in style.replace("\n", " ").split("@media")[0]


def test_every_title_and_highlight_in_both_parts() -> None:
    """Carry every title and highlight in the HTML and in the text part."""
    edition = seed_edition()
    rendered = render_edition(Settings(), edition)
    text_flat = " ".join(rendered.text.split())
    for item in edition.items:
        assert item.article.title.replace("$", "$") in text_flat
        assert escape(item.article.title) in rendered.html
        for hl in item.highlights:
            assert hl.text in text_flat
            assert escape(hl.text) in rendered.html
            if hl.label:
                assert f"{hl.label}:" in text_flat
    assert rendered.subject == "Daily Digest: 28 Nov 2026"
    assert rendered.preheader.startswith("Iran and Armenia Strengthen Ties")


def escape(text: str) -> str:
    """Escape text the way the HTML part shows it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_text_part_is_wrapped_at_72_columns() -> None:
    """Keep every line of the text part within 72 columns (long URLs excepted)."""
    rendered = render_edition(Settings(), seed_edition())
    for line in rendered.text.splitlines():
        assert len(line) <= 72 or "://" in line, line


def test_script_in_title_is_escaped() -> None:
    """Escape a title containing markup instead of letting it run."""
    article = Article(
        id=article_id("x", "t"),
        source="x",
        title="<script>alert('x')</script> Big news",
        paragraphs=("Body.",),
        highlights=(Highlight("<b>bold</b> claim", "<i>L</i>"),),
    )
    rendered = render_edition(Settings(), one_item_edition(article))
    assert "<script>alert" not in rendered.html
    assert "&lt;script&gt;" in rendered.html
    assert "<b>bold</b>" not in rendered.html
    # The text part is not HTML: it shows the title as written, unescaped.
    assert "<script>alert('x')</script> Big news" in rendered.text


@pytest.mark.parametrize(
    ("url", "linked"),
    [
        ("https://example.org/a", True),
        ("http://example.org/a", True),
        ("javascript:alert(1)", False),
        (" JavaScript:alert(1)", False),
        ("data:text/html,<script>", False),
        ("", False),
    ],
)
def test_only_safe_links(url: str, linked: bool) -> None:
    """Link a title only to http(s) URLs: never javascript: or data:."""
    article = Article(id="i", source="x", title="Title", paragraphs=("Body.",), url=url or None)
    html = render_edition(Settings(), one_item_edition(article)).html
    assert ("<a href=" in html.split('class="footer"')[0]) is linked
    assert "javascript:" not in html.lower()
    assert bool(safe_url(url)) is linked


def test_user_template_folder_comes_first(tmp_path: Path) -> None:
    """Use a user's partial in place of the packaged one."""
    (tmp_path / "_footer.html.j2").write_text("<tr><td>My own footer</td></tr>\n")
    rendered = render_edition(Settings(templates_dir=tmp_path), seed_edition())
    assert "My own footer" in rendered.html
    assert "item-title" in rendered.html  # the rest still comes from the packaged templates


def test_template_error_names_template_and_line(tmp_path: Path) -> None:
    """Name the template and line of a syntax error."""
    (tmp_path / "_footer.html.j2").write_text("<tr>\n<td>{% if %}</td></tr>\n")
    with pytest.raises(RenderError, match=r"_footer\.html\.j2: line 2"):
        render_edition(Settings(templates_dir=tmp_path), seed_edition())


def test_undefined_variable_fails_loudly(tmp_path: Path) -> None:
    """Fail on a misspelt variable instead of rendering a blank."""
    (tmp_path / "_footer.html.j2").write_text("<tr><td>{{ edition.titel }}</td></tr>\n")
    with pytest.raises(RenderError, match="titel"):
        render_edition(Settings(templates_dir=tmp_path), seed_edition())


def test_no_network_while_rendering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave an external stylesheet alone instead of fetching it while inlining."""
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendering tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    (tmp_path / "_footer.html.j2").write_text(
        '<tr><td><link rel="stylesheet" href="http://127.0.0.1:9/x.css">Footer</td></tr>\n'
    )
    html = render_edition(Settings(templates_dir=tmp_path), seed_edition()).html
    assert "Footer" in html
