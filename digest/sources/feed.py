"""RSS 0.9x/1.0/2.0 and Atom through feedparser, from bytes already read or fetched.

feedparser is only ever given bytes: it never opens a URL itself, so every request goes
through fetch.py with its deadline and size cap. Its own sanitiser and relative-link
rewriting are off because sanitize.py does both with nh3, once.
"""

from __future__ import annotations

import calendar
import codecs
import logging
import re
import time
from datetime import UTC, datetime
from html import escape
from typing import Any

import feedparser

from digest.errors import SourceError
from digest.models import Article, Skipped
from digest.sources.base import Document, SourceResult, entry_id, feed_name, to_utc
from digest.sources.sanitize import absolute_url, clean_html, html_paragraphs, html_text, plain

logger = logging.getLogger(__name__)

# Not a malformed feed: a server sent text/xml without a charset and the document's own
# declaration was used, as it should be. The same exception also says that a declared
# encoding did not fit and a guess was used: _encoding_problem tells that case apart.
_HARMLESS = (feedparser.CharacterEncodingOverride,)
# The encoding an XML declaration names; only read from ASCII-compatible documents.
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _date(entry: Any, key: str) -> datetime | None:
    # dict.get: feedparser's own get() maps a missing updated_parsed to published_parsed
    # with a DeprecationWarning; the fallback is done here, explicitly.
    parsed: time.struct_time | None = dict.get(entry, f"{key}_parsed")
    if not parsed:
        return None
    # feedparser normalises to UTC in a struct_time; timegm reads it as UTC.
    try:
        return to_utc(datetime.fromtimestamp(calendar.timegm(parsed), UTC))
    except (ValueError, OverflowError, OSError):
        # 9999-12-31T23:00-12:00 comes out of feedparser as the year 10000.
        raise ValueError(f"'{key}' is out of range once converted to UTC") from None


def _codec(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return name.lower()


def _declared(doc: Document) -> list[str]:
    """Return the encodings the document claims, the strongest claim first."""
    claims: list[str] = []
    charset = _CHARSET.search(doc.content_type)
    if charset:
        claims.append(charset.group(1))
    claims += [name for bom, name in _BOMS if doc.data.startswith(bom)][:1]
    declaration = _XML_ENCODING.match(doc.data[:1024])
    if declaration:
        claims.append(declaration.group(1).decode("ascii"))
    return claims


def _encoding_problem(doc: Document, parsed: Any) -> str | None:
    """Return why the text may be garbled: read in an encoding the feed does not claim."""
    used = parsed.get("encoding") or ""
    claims = _declared(doc)
    said = f"declared as {claims[0]}" if claims else "no encoding declared (so UTF-8)"
    # Without a declaration or a BOM, XML is UTF-8.
    claims = claims or ["utf-8"]
    if not used or _codec(used) in {_codec(c) for c in claims}:
        return None
    claimed = claims[0]
    position = ""
    try:
        doc.data.decode(_codec(claimed))
    except UnicodeDecodeError as err:
        line = doc.data[: err.start].count(b"\n") + 1
        position = f" (line {line}, byte {err.start})"
    except LookupError:
        pass
    return f"{said} but not valid {claimed}{position}; read as {used}, so some letters may be wrong"


def _looks_like_html(data: bytes) -> bool:
    head = data[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def parse(doc: Document) -> Any:
    """Run feedparser on the document's bytes with the HTTP headers it came with."""
    headers: dict[str, str] = {}
    if doc.content_type:
        headers["content-type"] = doc.content_type
    if doc.base_url:
        headers["content-location"] = doc.base_url
    return feedparser.parse(
        doc.data,
        response_headers=headers,
        resolve_relative_uris=False,
        sanitize_html=False,
    )


def _problem(parsed: Any) -> str:
    exc = parsed.get("bozo_exception")
    line = getattr(exc, "getLineNumber", None)
    where = f"line {line()}: " if callable(line) else ""
    message = getattr(exc, "getMessage", None)
    text = message() if callable(message) else str(exc)
    return f"{where}{text}"


def read(doc: Document) -> SourceResult:
    """Read an RSS or Atom document into articles; raise SourceError if it is no feed."""
    parsed = parse(doc)
    entries = parsed.get("entries") or []
    bozo = bool(parsed.get("bozo")) and not isinstance(parsed.get("bozo_exception"), _HARMLESS)
    if not entries and not parsed.get("version"):
        if _looks_like_html(doc.data) or "html" in doc.content_type.lower():
            raise SourceError(f"{doc.where}: not a feed: an HTML page where a feed was expected")
        if bozo:
            raise SourceError(f"{doc.where}: malformed feed: {_problem(parsed)}")
        raise SourceError(f"{doc.where}: not an RSS or Atom feed")
    result = SourceResult(where=doc.where)
    if bozo:
        warning = f"malformed feed, {len(entries)} entries read anyway: {_problem(parsed)}"
        logger.warning("%s: %s", doc.where, warning)
        result.warnings.append(warning)
    garbled = _encoding_problem(doc, parsed)
    if garbled:
        logger.warning("%s: %s", doc.where, garbled)
        result.warnings.append(garbled)
    channel = parsed.get("feed", {})
    base = doc.base_url or channel.get("link", "") or ""
    name = feed_name(html_text(channel.get("title", "")), doc.where)
    for position, entry in enumerate(entries):
        try:
            article = _article(doc, entry, base, name, position)
        except ValueError as err:
            result.skipped.append(Skipped(f"{doc.where}: entry {position + 1}", str(err)))
            continue
        result.articles.append(article)
    return result


def _content(entry: Any) -> tuple[str, str]:
    """Return the entry's fullest HTML and the base its relative links resolve against."""
    for detail in entry.get("content") or []:
        if detail.get("value"):
            return _as_html(detail), detail.get("base", "")
    detail = entry.get("summary_detail") or {}
    if entry.get("summary"):
        return _as_html({**detail, "value": entry["summary"]}), detail.get("base", "")
    return "", ""


def _as_html(detail: Any) -> str:
    value: str = detail.get("value", "")
    if detail.get("type", "text/html") == "text/plain":
        return "".join(f"<p>{escape(p)}</p>" for p in value.split("\n\n") if p.strip())
    return value


def _image(entry: Any, base: str, first_img: str | None) -> str | None:
    """Return the lead image: an image enclosure, media:content, media:thumbnail, <img>."""
    for link in entry.get("enclosures") or []:
        if str(link.get("type", "")).startswith("image/"):
            found = absolute_url(link.get("href"), base)
            if found:
                return found
    for media in entry.get("media_content") or []:
        kind = str(media.get("medium") or media.get("type") or "image")
        if kind.startswith("image"):
            found = absolute_url(media.get("url"), base)
            if found:
                return found
    for thumb in entry.get("media_thumbnail") or []:
        found = absolute_url(thumb.get("url"), base)
        if found:
            return found
    return first_img


def _article(doc: Document, entry: Any, feed_base: str, name: str, position: int) -> Article:
    raw_html, content_base = _content(entry)
    base = content_base or feed_base
    html = clean_html(raw_html, base)
    paragraphs, first_img = html_paragraphs(html)
    title = html_text(entry.get("title", ""))
    if not title and not paragraphs:
        raise ValueError("no title and no text")
    if not title:
        title = headline(paragraphs[0])
    link = entry.get("link")
    if entry.get("guidislink") and not absolute_url(link):
        # feedparser takes an RSS guid for the link (isPermaLink defaults to true); a bare
        # "42" is an id, not an address relative to the site.
        link = None
    link = absolute_url(link, base)
    summary = ""
    if entry.get("content") and entry.get("summary"):
        summary = html_text(clean_html(entry["summary"], base))
        if summary == " ".join(paragraphs):
            summary = ""
    published = _date(entry, "published")
    updated = _date(entry, "updated")
    terms = (plain(t.get("term") or "").strip() for t in entry.get("tags") or [])
    tags = tuple(dict.fromkeys(term for term in terms if term))
    return Article(
        id=entry_id(doc.where, entry.get("id"), link, title, "\n".join(paragraphs)),
        source=doc.where,
        title=title,
        paragraphs=paragraphs,
        url=link,
        source_name=name,
        author=html_text(entry.get("author", "")) or None,
        published=published or updated,
        updated=updated,
        tags=tags,
        summary=summary,
        image=_image(entry, base, first_img),
        position=position,
        html=html,
    )


def headline(text: str, limit: int = 80) -> str:
    """Make a title from an untitled entry's first words."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"
