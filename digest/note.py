"""The editor's note: a few paragraphs of Markdown shown under the greeting of one edition.

It comes from `digest run --note FILE.md`, or from the file DIGEST_NOTE_FILE names: that
one is used by the next edition made, recorded with it in the store (so that a section
variant, the archive and every sender show the same note) and then moved aside as
`NAME.used-EDITION.md`, so that the edition after it does not carry it again.

The Markdown is the editor's, but it is treated like article HTML: only http(s) and
mailto links are kept (any other becomes its text), images become their alt text, raw
HTML tags are left out (the text between them stays), and what markdown-it makes is
cleaned by nh3 with a short allow-list before it reaches the template.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

from digest.errors import ConfigError
from digest.sources.sanitize import LINK_SCHEMES, absolute_url, plain

logger = logging.getLogger(__name__)

# A note is a few paragraphs; anything this large is the wrong file.
MAX_NOTE_BYTES = 50_000
NOTE_KEY = "DIGEST_NOTE_FILE"
TEXT_WIDTH = 72
# What the note's HTML may hold: paragraphs, emphasis, links, lists, quotes, code. Its
# headings become bold paragraphs: the email's own headings (title, items) keep their order.
# The note is the editor's, so this is a second gate after parse(), not the only one.
_TAGS = frozenset({"p", "br", "a", "strong", "em", "code", "ul", "ol", "li", "blockquote", "hr"})
_DROPPED = frozenset({"script", "style", "iframe", "object", "embed", "noscript", "template"})
# Gives a link's text its footnote mark in the text part (render.Footnotes.cite).
Cite = Callable[[str, str | None], str]


@dataclass(frozen=True)
class NoteFile:
    """The note a run will carry, and where it came from."""

    text: str
    path: Path
    # From DIGEST_NOTE_FILE: moved aside once an edition carried it.
    archive: bool


def _markdown() -> MarkdownIt:
    # Raw HTML is parsed as such only to be left out (parse); every link is let through
    # the parser so that _safe_inline decides, the same way for both parts.
    md = MarkdownIt("commonmark", {"html": True})
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md


_MD = _markdown()


def read_note(path: Path, key: str | None = None) -> str:
    """Return the note's Markdown from path; a file that cannot be one is one clear error."""
    where = f"{path}" + (f" (named by {key})" if key else "")
    if path.is_dir():
        raise ConfigError(f"{where}: is a folder, not a note file")
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ConfigError(f"{where}: no such note file") from err
    except OSError as err:
        raise ConfigError(f"{where}: cannot read the note: {err.strerror or err}") from err
    if len(data) > MAX_NOTE_BYTES:
        raise ConfigError(
            f"{where}: the note is {len(data):,} bytes, more than {MAX_NOTE_BYTES:,}: "
            "is it the right file?"
        )
    data = data.removeprefix(b"\xef\xbb\xbf")  # a byte order mark, as some editors write
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(f"{where}: line {line}: not UTF-8 text") from err
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        raise ConfigError(f"{where}: line {line}: a NUL byte: not a text file")
    return plain(text.replace("\r\n", "\n")).strip()


def pending_note(
    given: Path | None,
    configured: Path | None,
    carried_by: Callable[[str], str | None],
    tidy: bool = True,
) -> NoteFile | None:
    """Return the note the next edition carries: --note's file, else DIGEST_NOTE_FILE's.

    A --note file must hold a note; a DIGEST_NOTE_FILE that is missing or blank means
    no note. One whose text an edition
    already carried (a crash came between recording the edition and moving the file) is
    moved aside now (unless tidy is false: a preview moves nothing) and not used again;
    carried_by returns that edition's id.
    """
    if given is not None:
        text = read_note(given)
        if not text:
            raise ConfigError(f"{given}: the note is empty")
        return NoteFile(text, given, archive=False)
    if configured is None or not configured.exists():
        return None
    text = read_note(configured, NOTE_KEY)
    if not text:
        logger.debug("%s is blank: no editor's note", configured)
        return None
    earlier = carried_by(text)
    if earlier is not None:
        logger.info("%s went out with edition %s already: not used again", configured, earlier)
        if tidy:
            archive_note(configured, earlier)
        return None
    return NoteFile(text, configured, archive=True)


def archive_note(path: Path, edition_id: str) -> Path | None:
    """Move a used note file aside as NAME.used-EDITION.md; return where it went.

    A failure is a warning, not an error: the edition is made and recorded already, and
    the store knows the note went out, so the next run does not use it again either.
    """
    target = path.with_name(f"{path.stem}.used-{edition_id}{path.suffix}")
    n = 2
    while target.exists():
        target = path.with_name(f"{path.stem}.used-{edition_id}-{n}{path.suffix}")
        n += 1
    try:
        path.rename(target)
    except OSError as err:
        logger.warning(
            "%s: the note went out with edition %s but could not be moved aside: %s",
            path,
            edition_id,
            err.strerror or err,
        )
        return None
    logger.info(
        "the editor's note %s went out with edition %s: moved to %s", path, edition_id, target
    )
    return target


def _safe_url(url: str) -> str | None:
    return absolute_url(url) if url and url.strip() else None


def _safe_inline(children: Sequence[Token]) -> list[Token]:
    """Return inline tokens with unsafe links turned into their text, images into alt text."""
    out: list[Token] = []
    for token in children:
        if token.type == "link_open":
            href = str(token.attrs.get("href", ""))
            safe = _safe_url(href)
            if safe is None:
                out.append(Token("link_dropped", "", 0))
                continue
            token.attrs = {"href": safe}
        elif token.type == "html_inline" or (token.type == "link_close" and _closes_dropped(out)):
            continue
        elif token.type == "image":
            text = Token("text", "", 0)
            text.content = token.content
            out.append(text)
            continue
        out.append(token)
    return [t for t in out if t.type != "link_dropped"]


def _closes_dropped(so_far: list[Token]) -> bool:
    """Tell whether the next link_close closes a dropped link (links do not nest)."""
    for token in reversed(so_far):
        if token.type == "link_dropped":
            return True
        if token.type == "link_open":
            return False
    return False


def parse(markdown: str) -> list[Token]:
    """Return the note's block tokens, links made safe, headings made bold paragraphs and
    code blocks paragraphs of code (a <pre> line wider than a phone scrolls sideways)."""
    tokens: list[Token] = []
    for token in _MD.parse(markdown):
        if token.type == "html_block":
            continue
        if token.type in ("fence", "code_block"):
            tokens.extend(_code_paragraph(token))
            continue
        if token.type in ("heading_open", "heading_close"):
            token.tag = "p"
        if token.type == "inline" and token.children is not None:
            token.children = _safe_inline(token.children)
            if tokens and tokens[-1].type == "heading_open":
                token.children = [
                    Token("strong_open", "strong", 1),
                    *token.children,
                    Token("strong_close", "strong", -1),
                ]
        tokens.append(token)
    return tokens


def _code_paragraph(block: Token) -> list[Token]:
    """Return a code block as a paragraph of code, one line after another."""
    children: list[Token] = []
    for n, line in enumerate(block.content.rstrip("\n").split("\n")):
        if n:
            children.append(Token("hardbreak", "br", 0))
        code = Token("code_inline", "code", 0)
        code.content = line
        children.append(code)
    inline = Token("inline", "", 0, children=children, level=block.level + 1)
    return [
        Token("paragraph_open", "p", 1, level=block.level),
        inline,
        Token("paragraph_close", "p", -1, level=block.level),
    ]


def unsafe_links(markdown: str) -> list[str]:
    """Return the note's links that are shown as their text only (not http(s) or mailto)."""
    found: list[str] = []
    for token in _MD.parse(markdown):
        for child in token.children or ():
            href = str(child.attrs.get("href", "")) if child.type == "link_open" else ""
            if href and _safe_url(href) is None:
                found.append(href)
    return found


def note_links(markdown: str) -> list[str]:
    """Return the note's links in reading order (they are numbered first in the text part)."""
    return [
        str(child.attrs["href"])
        for token in parse(markdown)
        if token.type == "inline"
        for child in token.children or ()
        if child.type == "link_open"
    ]


def note_html(markdown: str) -> str:
    """Return the note as sanitised HTML; empty for no note."""
    if not markdown.strip():
        return ""
    html = _MD.renderer.render(parse(markdown), _MD.options, {})
    cleaned = nh3.clean(
        html,
        tags=set(_TAGS),
        clean_content_tags=set(_DROPPED),
        attributes={"a": {"href"}},
        url_schemes=set(LINK_SCHEMES),
        link_rel=None,
    )
    return plain(cleaned).strip()


def note_text(markdown: str, cite: Cite, width: int = TEXT_WIDTH) -> str:
    """Return the note as plain text wrapped at width, each link's footnote mark after it."""
    blocks: list[tuple[str, str]] = []  # (separator before, text)
    quote = 0
    # Per open list: [number of the next item (0: bullets), items so far].
    lists: list[list[int]] = []
    prefix: str | None = None
    tight = False  # the paragraph being read is a tight list item's (no blank line)
    for token in parse(markdown):
        kind = token.type
        if kind == "blockquote_open":
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
        elif kind in ("bullet_list_open", "ordered_list_open"):
            start = int(token.attrs.get("start", 1)) if kind == "ordered_list_open" else 0
            lists.append([start, 0])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            counter = lists[-1]
            prefix = f"{counter[0]}. " if counter[0] else "- "
            if counter[0]:
                counter[0] += 1
            counter[1] += 1
        elif kind == "paragraph_open":
            tight = token.hidden and prefix is not None and lists[-1][1] > 1
        elif kind == "hr":
            blocks.append(("\n\n", "  " * quote + "* * *"))
        elif kind == "inline":
            indent = "  " * (quote + len(lists))
            first = indent + (prefix or "")
            rest = " " * len(first) if prefix else indent
            # A hard line break (two spaces, a backslash, a code block's lines) stays one.
            text = "\n".join(
                textwrap.fill(
                    line,
                    width=width,
                    initial_indent=first if n == 0 else rest,
                    subsequent_indent=rest,
                    break_long_words=False,
                    break_on_hyphens=False,
                )
                for n, line in enumerate(_inline_text(token.children or [], cite).split("\n"))
            )
            # The items of a tight list stay on consecutive lines, as they were written.
            blocks.append(("\n" if tight else "\n\n", text))
            prefix, tight = None, False
    parts = [(sep, text) for sep, text in blocks if text.strip()]
    return "".join(text if n == 0 else sep + text for n, (sep, text) in enumerate(parts))


def _inline_text(children: Sequence[Token], cite: Cite) -> str:
    """Return inline tokens as one line of text, a link's mark after its text."""
    parts: list[str] = []
    link: str | None = None
    start = 0
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "link_open":
            link, start = str(child.attrs["href"]), len(parts)
        elif child.type == "link_close" and link is not None:
            label = "".join(parts[start:])
            del parts[start:]
            parts.append(cite(label, link))
            link = None
    return "\n".join(" ".join(line.split()) for line in "".join(parts).split("\n"))
