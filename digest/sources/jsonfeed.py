"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1)."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from html import escape
from typing import Any

from digest.errors import SourceError
from digest.models import Article, Skipped
from digest.sources.base import Document, SourceResult, entry_id, feed_name, parse_date
from digest.sources.feed import headline
from digest.sources.sanitize import absolute_url, clean_html, html_paragraphs, html_text, plain

logger = logging.getLogger(__name__)

VERSION_PREFIX = "https://jsonfeed.org/version/1"


def looks_like(data: bytes) -> bool:
    """Return whether data starts like a JSON document (for URLs without a suffix)."""
    return data[:64].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def _type_name(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def _string(item: dict[str, Any], key: str) -> str | None:
    """Return item[key] as a string, None if absent; ValueError if it is of a wrong type."""
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a string, not {_type_name(value)}")
    return value


def read(doc: Document) -> SourceResult:
    """Read a JSON Feed; raise SourceError if it is not one."""
    try:
        feed = json.loads(doc.data.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise SourceError(f"{doc.where}: not valid UTF-8 (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise SourceError(
            f"{doc.where}: line {err.lineno} column {err.colno}: not valid JSON: {err.msg}"
        ) from None
    except RecursionError:
        # json parses nested arrays and objects recursively: [[[[... 100,000 deep
        # exhausts the stack. No feed is built like that.
        raise SourceError(f"{doc.where}: not a JSON Feed: nested too deeply") from None
    if not isinstance(feed, dict):
        raise SourceError(f"{doc.where}: a JSON Feed is an object, not {_type_name(feed)}")
    version = feed.get("version")
    if not isinstance(version, str) or not version.startswith(VERSION_PREFIX):
        raise SourceError(f"{doc.where}: not a JSON Feed: 'version' is {version!r}")
    items = feed.get("items")
    if not isinstance(items, list):
        raise SourceError(f"{doc.where}: 'items' must be a list, not {_type_name(items)}")
    title = feed.get("title")
    name = feed_name(plain(title) if isinstance(title, str) else "", doc.where)
    base = doc.base_url or _base(feed)
    feed_author = _author(feed)
    result = SourceResult(where=doc.where)
    for position, item in enumerate(items):
        where = f"{doc.where}: item {position + 1}"
        if not isinstance(item, dict):
            result.skipped.append(Skipped(where, f"an item is an object, not {_type_name(item)}"))
            continue
        try:
            result.articles.append(_article(doc, item, base, name, feed_author, position))
        except ValueError as err:
            result.skipped.append(Skipped(where, str(err)))
    return result


def _base(feed: dict[str, Any]) -> str:
    for key in ("feed_url", "home_page_url"):
        value = feed.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _author(holder: dict[str, Any]) -> str | None:
    """Return the first author's name: 1.1 has 'authors', 1.0 had 'author'."""
    authors = holder.get("authors")
    candidates = authors if isinstance(authors, list) else [holder.get("author")]
    for author in candidates:
        if isinstance(author, dict) and isinstance(author.get("name"), str):
            return plain(author["name"]).strip() or None
    return None


def _date(item: dict[str, Any], key: str) -> datetime | None:
    text = _string(item, key)
    if text is None:
        return None
    try:
        parsed = parse_date(text)
    except ValueError as err:
        raise ValueError(f"'{key}' is {err}: {text!r}") from None
    if parsed is None:
        raise ValueError(f"'{key}' is not an RFC 3339 date: {text!r}")
    return parsed


def _article(
    doc: Document,
    item: dict[str, Any],
    base: str,
    name: str,
    feed_author: str | None,
    position: int,
) -> Article:
    raw_id = item.get("id")
    if isinstance(raw_id, int | float) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)  # 1.0 feeds in the wild use numbers; the spec says coerce
    if not isinstance(raw_id, str) or not raw_id.strip():
        raise ValueError("no 'id' (every JSON Feed item needs one)")
    content_html = _string(item, "content_html")
    content_text = _string(item, "content_text")
    if content_html:
        html = clean_html(content_html, base)
    elif content_text:
        paras = plain(content_text).split("\n\n")
        html = "".join(f"<p>{escape(p)}</p>" for p in paras if p.strip())
    else:
        html = ""
    paragraphs, first_img = html_paragraphs(html)
    summary = html_text(_string(item, "summary") or "")
    title = html_text(_string(item, "title") or "")
    if not title:
        title = headline(summary or (paragraphs[0] if paragraphs else ""))
    if not title:
        raise ValueError("no title and no text")
    if not paragraphs and summary:
        paragraphs = (summary,)
    url = absolute_url(_string(item, "url") or _string(item, "external_url"), base)
    tags = item.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("'tags' must be a list of strings")
    published = _date(item, "date_published")
    updated = _date(item, "date_modified")
    image = _string(item, "image") or _string(item, "banner_image")
    return Article(
        id=entry_id(doc.where, raw_id, url, title, "\n".join(paragraphs)),
        source=doc.where,
        title=title,
        paragraphs=paragraphs,
        url=url,
        source_name=name,
        author=_author(item) or feed_author,
        published=published or updated,
        updated=updated,
        tags=tuple(dict.fromkeys(t for t in (plain(t).strip() for t in tags) if t)),
        summary=summary,
        image=absolute_url(image, base) if image else absolute_url(first_img, base),
        position=position,
        html=html,
    )
