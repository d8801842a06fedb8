"""HTML from feeds made safe to keep, and the plain text and lead image taken from it.

Feed HTML is written by strangers: it is cleaned with nh3 (an allow-list, so anything
not named here goes) before it is stored, and the text used for highlights is taken from
the cleaned HTML, never from the raw one.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import nh3

LINK_SCHEMES = frozenset({"http", "https", "mailto"})
# Attributes that hold a URL and so must be resolved and scheme-checked.
_URL_ATTRIBUTES = frozenset({"href", "src", "cite"})
_BLOCKS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "td",
        "th",
        "tr",
        "ul",
    }
)
# Removed with everything inside them, not just the tags.
_DROPPED = frozenset({"script", "style", "iframe", "object", "embed", "noscript", "template"})
_SPACE = re.compile(r"\s+")


def absolute_url(url: str | None, base: str = "") -> str | None:
    """Resolve url against base; return None unless it is an http(s) or mailto URL."""
    if not url or not url.strip():
        return None
    resolved = urljoin(base, url.strip()) if base else url.strip()
    if urlsplit(resolved).scheme.lower() not in LINK_SCHEMES:
        return None
    return resolved


def clean_html(html: str, base: str = "") -> str:
    """Return html with only safe tags and attributes, every link absolute and http(s)."""
    if not html:
        return ""

    def resolve(tag: str, attribute: str, value: str) -> str | None:
        if attribute in _URL_ATTRIBUTES:
            return absolute_url(value, base)
        return value

    return nh3.clean(
        html,
        clean_content_tags=set(_DROPPED),
        url_schemes=set(LINK_SCHEMES),
        attribute_filter=resolve,
    )


class _TextParser(HTMLParser):
    """Collect the text of an HTML fragment as paragraphs, and its first image."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self.current: list[str] = []
        self.image: str | None = None
        self.skip_depth = 0

    def _flush(self) -> None:
        text = _SPACE.sub(" ", "".join(self.current)).strip()
        if text:
            self.paragraphs.append(text)
        self.current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            self.skip_depth += 1
        elif tag in _BLOCKS:
            self._flush()
        elif tag == "img" and self.image is None:
            self.image = dict(attrs).get("src") or None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            self.current.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_paragraphs(html: str) -> tuple[tuple[str, ...], str | None]:
    """Return the plain-text paragraphs of html and the src of its first image."""
    if not html:
        return (), None
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    return tuple(parser.paragraphs), parser.image


def html_text(html: str) -> str:
    """Return html as one line of plain text (titles, summaries)."""
    if "<" not in html and "&" not in html:
        return _SPACE.sub(" ", html).strip()
    paragraphs, _ = html_paragraphs(html)
    return " ".join(paragraphs)
