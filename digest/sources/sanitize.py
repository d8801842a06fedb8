"""HTML from feeds made safe to keep, and the plain text and lead image taken from it.

Feed HTML is written by strangers: it is cleaned with nh3 (an allow-list, so anything
not named here goes) before it is stored, and the text used for highlights is taken from
the cleaned HTML, never from the raw one. Bidirectional control characters go from both:
they can make a title read differently from what it says (and spill over into the text
around it in a mail client).
"""

from __future__ import annotations

import re
from collections import Counter
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
# Elements that never hold others, so never add to the nesting.
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
# The HTML parser inside nh3 walks its stack of open elements at many start tags, so its
# time grows with the square of the nesting: 100,000 nested <div>s take a minute. Real
# articles nest a few dozen deep; this many is a hostile or broken document.
MAX_DEPTH = 1_000
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)")
# An unclosed <li> or <p> followed by another one: siblings, as every HTML parser has it.
_SIBLINGS = frozenset({"p", "li", "dt", "dd", "tr", "td", "th", "option"})
# Embeddings, overrides and isolates (U+202A..U+202E, U+2066..U+2069) and the invisible
# direction marks (LRM, RLM, ALM): the Unicode bidi algorithm orders plain text without them.
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
_NO_BIDI = str.maketrans(dict.fromkeys(BIDI_CONTROLS))


def plain(text: str) -> str:
    """Return text without bidirectional control characters."""
    return text.translate(_NO_BIDI)


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
    # Nesting cannot be deeper than the number of tags: most fragments need no check.
    if html.count("<") > MAX_DEPTH and _too_deep(html):
        raise ValueError(f"HTML nested more than {MAX_DEPTH:,} elements deep")

    def resolve(tag: str, attribute: str, value: str) -> str | None:
        if attribute in _URL_ATTRIBUTES:
            return absolute_url(value, base)
        return value

    cleaned = nh3.clean(
        html,
        clean_content_tags=set(_DROPPED),
        url_schemes=set(LINK_SCHEMES),
        attribute_filter=resolve,
    )
    # After cleaning: nh3 has turned &#x202e; and the like into the characters themselves.
    return plain(cleaned)


def _too_deep(html: str) -> bool:
    """Return whether html's elements nest more than MAX_DEPTH deep, counted generously."""
    stack: list[str] = []
    # How many of each are open: an end tag of nothing open is ignored, as HTML parsers
    # do, without a search of the whole stack.
    counts: Counter[str] = Counter()
    for match in _TAG.finditer(html):
        tag = match.group(2).lower()
        if match.group(1):
            while counts[tag]:
                closed = stack.pop()
                counts[closed] -= 1
                if closed == tag:
                    break
        elif tag not in _VOID and not (tag in _SIBLINGS and stack and stack[-1] == tag):
            stack.append(tag)
            counts[tag] += 1
            if len(stack) > MAX_DEPTH:
                return True
    return False


class _TextParser(HTMLParser):
    """Collect the text of an HTML fragment as paragraphs, and its first image."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self.current: list[str] = []
        self.image: str | None = None
        self.skip_depth = 0

    def _flush(self) -> None:
        # str.split() splits on the same whitespace as the pattern \s+, in a fraction of the time.
        text = " ".join(plain("".join(self.current)).split())
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
            # Bidi controls are stripped once per paragraph, in _flush.
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
        return _SPACE.sub(" ", plain(html)).strip()
    paragraphs, _ = html_paragraphs(html)
    return " ".join(paragraphs)
