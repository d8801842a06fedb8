"""Markdown articles with YAML front matter: title, date, url, author, source, tags, image,
summary.

```
---
title: Harbour reopens
date: 2026-11-27T08:00:00Z
url: https://example.org/harbour
source: Harbourtown Daily
tags: [town, boats]
---
The harbour reopened on Friday after ...
```

`source` is the publication's name, shown with every item ("Read at Harbourtown Daily");
without it the file's folder names it. The text is kept as plain paragraphs (markup
stripped) for highlights; lines starting with `•` are the article's own highlights, as
in the seed format.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from typing import Any

import yaml

from digest.errors import SourceError
from digest.models import Article, Highlight, article_id
from digest.sources.base import Document, SourceResult, entry_id, parse_date, to_utc
from digest.sources.sanitize import absolute_url, plain

logger = logging.getLogger(__name__)

_FENCE = "---"
_CLOSERS = ("---", "...")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
_LIST = re.compile(r"^(?:[-*+]|\d+[.)])\s+")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")
_LABEL = re.compile(r"^(?P<label>[^.:!?]{2,80}):\s+(?P<text>\S.*)$")
BULLET = "•"
# libyaml's safe loader when PyYAML was built with it: several times faster, same rules.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ALIASES_REFUSED = "front matter uses YAML aliases (&/*), which are not accepted"


def _load(where: str, source: str) -> Any:
    """Return the front matter's data, refusing aliases before anything is built from them."""
    # An alias is a reference: nine nested ones of nine items each are a few hundred
    # bytes of YAML and a list of 387 million strings once expanded (a "billion laughs").
    # Front matter has no use for them, so the events are checked before construction.
    for event in yaml.parse(source, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            mark = event.start_mark
            line = f"line {mark.line + 2}: " if mark is not None else ""
            raise SourceError(f"{where}: {line}{ALIASES_REFUSED}")
    return yaml.load(source, Loader=_LOADER)  # noqa: S506 (a safe loader)


def _split(where: str, text: str) -> tuple[dict[str, Any], list[str], int]:
    """Return the front matter, the body lines and the line number the body starts on."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != _FENCE:
        return {}, lines, 1
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in _CLOSERS), None)
    if end is None:
        raise SourceError(f"{where}: line 1: front matter opened with '---' is never closed")
    try:
        meta = _load(where, "\n".join(lines[1:end]))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"line {mark.line + 2}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SourceError(f"{where}: {line}broken front matter: {problem}") from None
    except ValueError as err:
        # Raised while building values, not parsing: 2026-02-30, a 5,000-digit number.
        raise SourceError(f"{where}: broken front matter: {err}") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise SourceError(
            f"{where}: line 2: front matter must be 'key: value' lines, not {type(meta).__name__}"
        )
    return meta, lines[end + 1 :], end + 2


def _text(where: str, meta: dict[str, Any], key: str) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool | dict | list):
        raise SourceError(f"{where}: front matter '{key}' must be text, not {type(value).__name__}")
    return str(value).strip() or None


def _date(where: str, meta: dict[str, Any], key: str) -> datetime | None:
    value = meta.get(key)
    if value is None:
        return None
    try:
        if isinstance(value, datetime | date):
            return to_utc(value)
        parsed = parse_date(str(value))
    except ValueError as err:
        # The file is one article: it is skipped with the reason, like any other bad
        # date, rather than dated by when it was first seen without its writer knowing.
        raise SourceError(f"{where}: front matter '{key}' is {err}: {str(value)!r}") from None
    if parsed is None:
        raise SourceError(f"{where}: front matter '{key}' is not a date: {value!r}")
    return parsed


def _tags(where: str, meta: dict[str, Any]) -> tuple[str, ...]:
    value = meta.get("tags")
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        kind = type(value).__name__
        raise SourceError(f"{where}: front matter 'tags' must be a list, not {kind}")
    return tuple(dict.fromkeys(str(t).strip() for t in value if str(t).strip()))


def _plain(line: str) -> str:
    line = _LINK.sub(r"\1", line)
    return _EMPHASIS.sub(r"\2", line)


def _highlight(text: str) -> Highlight:
    match = _LABEL.match(text)
    if match:
        return Highlight(text=match.group("text").strip(), label=match.group("label").strip())
    return Highlight(text=text)


def _body(lines: list[str]) -> tuple[str | None, tuple[str, ...], tuple[Highlight, ...]]:
    """Return the first heading, the plain paragraphs and the `•` highlights."""
    heading: str | None = None
    paragraphs: list[str] = []
    highlights: list[Highlight] = []
    current: list[str] = []
    fenced = False

    def flush() -> None:
        if current:
            paragraphs.append(" ".join(current))
            current.clear()

    for raw in lines:
        line = raw.strip()
        if line.startswith("```"):
            fenced = not fenced
            flush()
            continue
        if fenced:
            continue  # code is not prose to pick highlights from
        if not line:
            flush()
            continue
        match = _HEADING.match(line)
        if match:
            flush()
            if heading is None and not paragraphs:
                heading = _plain(match.group(1))
            continue
        if line.startswith(BULLET):
            flush()
            highlights.append(_highlight(_plain(line.removeprefix(BULLET).strip())))
            continue
        if _LIST.match(line):
            flush()
            line = _LIST.sub("", line)
        current.append(_plain(line.lstrip("> ")))
    flush()
    return heading, tuple(paragraphs), tuple(highlights)


def read(doc: Document) -> SourceResult:
    """Read one Markdown article; raise SourceError naming the line for broken input."""
    where = doc.where
    try:
        text = doc.data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = doc.data[: err.start].count(b"\n") + 1
        raise SourceError(f"{where}: line {line}: not valid UTF-8 (byte {err.start})") from None
    # Bidi controls go from the whole file: every field and paragraph is plain text.
    text = plain(text).replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise SourceError(f"{where}: empty file")
    meta, body, _ = _split(where, text)
    heading, paragraphs, highlights = _body(body)
    title = _text(where, meta, "title") or heading
    if not title:
        raise SourceError(f"{where}: no title: no 'title' in the front matter and no heading")
    if not paragraphs and not highlights and not _text(where, meta, "summary"):
        raise SourceError(f"{where}: '{title}' has no text")
    raw_url = _text(where, meta, "url")
    url = absolute_url(raw_url)
    if raw_url and url is None:
        raise SourceError(f"{where}: front matter 'url' must be an http(s) URL: {raw_url!r}")
    summary = _text(where, meta, "summary") or ""
    published = _date(where, meta, "date")
    updated = _date(where, meta, "updated")
    # The file is the article: its path is its identity unless it names its canonical URL,
    # so an edit updates the article instead of making a new one.
    ident = entry_id(where, None, url, title, "") if url else article_id(where, "")
    folder = plain(doc.path.parent.name) if doc.path else ""
    name = _text(where, meta, "source") or folder or where
    return SourceResult(
        articles=[
            Article(
                id=ident,
                source=where,
                title=title,
                paragraphs=paragraphs or ((summary,) if summary else ()),
                highlights=highlights,
                url=url,
                source_name=name,
                author=_text(where, meta, "author"),
                published=published or updated,
                updated=updated,
                tags=_tags(where, meta),
                summary=summary,
                image=absolute_url(_text(where, meta, "image"), url or ""),
                position=0,
            )
        ],
        where=where,
    )
