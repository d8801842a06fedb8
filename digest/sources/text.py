"""Read the seed format: a news page saved as text.

The first line is the title (often repeated as the first paragraph); paragraphs are
separated by blank lines; lines starting with `•` are the article's own highlights as
`Label: sentence`; a line `Similar Posts` starts a list of other articles, each a `•`
title line followed by an indented summary paragraph.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from digest.errors import SourceError
from digest.junk import junk_reason
from digest.models import Article, Highlight, Skipped, article_id
from digest.sources.base import MAX_FILE_BYTES, read_capped
from digest.sources.sanitize import plain

logger = logging.getLogger(__name__)

BULLET = "•"
RELATED_HEADING = "similar posts"
MAX_TITLE = 250
# A label is short and is not itself a sentence: "Emphasis on Bilateral Relations".
_LABEL = re.compile(r"^(?P<label>[^.:!?]{2,80}):\s+(?P<text>\S.*)$")


@dataclass
class _Block:
    """A run of non-blank lines, with the number of its first line."""

    line: int
    lines: list[str]

    @property
    def text(self) -> str:
        return " ".join(part.strip() for part in self.lines).strip()


def decode(path: Path, data: bytes) -> str:
    """Return the file's text, or raise SourceError saying why it is not text."""
    if not data.strip():
        raise SourceError(f"{path}: empty file")
    if b"\0" in data[:8192]:
        raise SourceError(f"{path}: binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise SourceError(f"{path}: line {line}: not valid UTF-8 (byte {err.start})") from None


def _blocks(lines: list[str], first_line: int) -> list[_Block]:
    """Split lines into blocks; every bullet line is a block of its own."""
    blocks: list[_Block] = []
    current: _Block | None = None
    for offset, line in enumerate(lines):
        number = first_line + offset
        stripped = line.strip()
        if not stripped:
            current = None
        elif stripped.startswith(BULLET):
            blocks.append(_Block(number, [stripped]))
            current = None
        elif current is None:
            current = _Block(number, [stripped])
            blocks.append(current)
        else:
            current.lines.append(stripped)
    return blocks


def _highlight(text: str) -> Highlight:
    match = _LABEL.match(text)
    if match:
        return Highlight(text=match.group("text").strip(), label=match.group("label").strip())
    return Highlight(text=text)


def _bullet_text(block: _Block) -> str:
    return block.text.removeprefix(BULLET).strip()


def read_text(path: Path, content: str) -> tuple[list[Article], list[Skipped]]:
    """Parse content (the text of path) into the main article and its related ones.

    The format carries no date, and the file's modification time is not one: a checkout
    or a copy sets it at random, and it would order the edition. These articles are
    dated when digest first sees them, like any other article without a date.
    """
    # Bidi controls go from the whole file: titles, paragraphs and highlights are all text.
    lines = plain(content).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip()), None)
    if start is None:
        raise SourceError(f"{path}: empty file")
    title = lines[start].strip()
    if title.startswith(BULLET) or title.lower() == RELATED_HEADING:
        raise SourceError(f"{path}: line {start + 1}: no title: the file starts with a list")
    if len(title) > MAX_TITLE:
        raise SourceError(
            f"{path}: line {start + 1}: no title: the first line is a {len(title)}-character "
            f"paragraph (a title is one line of at most {MAX_TITLE})"
        )
    blocks = _blocks(lines[start + 1 :], start + 2)
    split = next(
        (i for i, b in enumerate(blocks) if b.text.lower() == RELATED_HEADING), len(blocks)
    )
    main, related = blocks[:split], blocks[split + 1 :]
    if main and main[0].text == title:
        main = main[1:]  # the saved page repeats its title as the first paragraph

    source = str(path.resolve())
    name = plain(path.parent.name or path.stem)
    paragraphs = tuple(b.text for b in main if not b.text.startswith(BULLET))
    bullets = tuple(_highlight(_bullet_text(b)) for b in main if b.text.startswith(BULLET))
    articles: list[Article] = []
    skipped: list[Skipped] = []
    if not paragraphs and not bullets:
        raise SourceError(f"{path}: line {start + 1}: '{title}' has no text after its title")
    reason = junk_reason(title, " ".join(paragraphs))
    if reason:
        skipped.append(Skipped(f"{path}:{start + 1}", f"'{_short(title)}': {reason}"))
    else:
        articles.append(
            Article(
                id=article_id(source, title),
                source=source,
                title=title,
                paragraphs=paragraphs,
                highlights=bullets,
                source_name=name,
                position=0,
            )
        )

    entries: list[tuple[_Block, list[_Block]]] = []
    for block in related:
        if block.text.startswith(BULLET):
            entries.append((block, []))
        elif entries:
            entries[-1][1].append(block)
        else:
            skipped.append(
                Skipped(f"{path}:{block.line}", "text under 'Similar Posts' before any entry")
            )
    for position, (head, body) in enumerate(entries, start=1):
        entry_title = _bullet_text(head)
        summary = tuple(b.text for b in body)
        where = f"{path}:{head.line}"
        reason = junk_reason(entry_title, " ".join(summary))
        if reason is None and not summary:
            reason = "no summary under the title"
        if reason:
            skipped.append(Skipped(where, f"'{_short(entry_title)}': {reason}"))
            continue
        articles.append(
            Article(
                id=article_id(source, entry_title),
                source=source,
                title=entry_title,
                paragraphs=summary,
                summary=summary[0],
                source_name=name,
                position=position,
            )
        )
    return articles, skipped


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def read_file(path: Path, max_bytes: int = MAX_FILE_BYTES) -> tuple[list[Article], list[Skipped]]:
    """Read one seed-format file; raise SourceError if it is not a readable article."""
    try:
        stat = path.stat()
        data = read_capped(path, max_bytes, stat.st_size)
    except OSError as err:
        raise SourceError(f"{path}: cannot read: {err.strerror or err}") from err
    return read_text(path, decode(path, data))
