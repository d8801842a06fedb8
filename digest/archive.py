"""The public archive: past editions as pages of the site and an Atom feed, served or
written out as static files (the same pages)."""

from __future__ import annotations

import importlib
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import nh3
from markupsafe import Markup

from digest import pages
from digest.config import Settings
from digest.errors import DeliveryError
from digest.models import Edition, EditionRecord
from digest.outbox import write_atomic
from digest.render import public_links, without_greeting_placeholder
from digest.store import Store, store_exists

logger = logging.getLogger(__name__)

ATOM = "http://www.w3.org/2005/Atom"
# Edition ids are dates with an optional counter; anything else is not looked up.
EDITION_ID = re.compile(r"\d{4}-\d{2}-\d{2}(?:-\d+)?")
# What an email's body may keep when an edition has no stored document to build its
# page from: its text, headings, lists, links and images, no styles and no scripts.
_EMAIL_TAGS = {
    *("a", "p", "br", "hr", "div", "span", "strong", "b", "em", "i", "small", "blockquote"),
    *("h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "img"),
    *("table", "thead", "tbody", "tr", "td", "th"),
}
_EMAIL_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "table": {"role"},
}
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.DOTALL | re.IGNORECASE)
# The inbox preview line: hidden by the email's CSS, which the page does not carry.
_PREHEADER = re.compile(r'<div class="preheader"[^>]*>.*?</div>', re.DOTALL | re.IGNORECASE)
_HEADING = re.compile(r"<(/?)h([1-6])\b", re.IGNORECASE)


@dataclass(frozen=True)
class Entry:
    """One edition as the archive's index lists it."""

    id: str
    date: date
    subject: str
    item_count: int
    top_title: str = ""


def editions(settings: Settings) -> list[EditionRecord]:
    """Return every edition whose page the store keeps, newest first.

    The page comes from the database, so that a web server on one machine shows the
    editions made on another; an edition an earlier release recorded without its
    content is shown from this machine's outbox, where it has it.
    """
    # A fresh machine has no store yet: an empty archive, and a reader creates nothing.
    if not store_exists(settings.db):
        return []
    with Store(settings.db, readonly=True) as store:
        return _shown(settings, store)


def _shown(settings: Settings, store: Store) -> list[EditionRecord]:
    records = store.editions.recent(limit=100_000)
    kept = store.editions.with_content()
    return [r for r in records if r.id in kept or _outbox_page(settings, r.id).is_file()]


def _outbox_page(settings: Settings, edition_id: str) -> Path:
    return settings.outbox / edition_id / "digest.html"


def email_body(html: str, base_url: str, language: str) -> Markup:
    """Return the body of a stored email as a sanitised fragment for a page of the site.

    The general unsubscribe page stands for each reader's own link, the greeting has no
    name, the inbox preview line goes, and every heading steps down one level: the page
    has its own h1.
    """
    html = public_links(without_greeting_placeholder(html, language), base_url)
    found = _BODY.search(html)
    body = _PREHEADER.sub("", found.group(1) if found else html)
    cleaned = nh3.clean(
        body,
        tags=_EMAIL_TAGS,
        attributes=_EMAIL_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        clean_content_tags={"script", "style", "title"},
    )
    stepped = _HEADING.sub(lambda m: f"<{m.group(1)}h{min(int(m.group(2)) + 1, 6)}", cleaned)
    return Markup(stepped)  # noqa: S704 - cleaned by nh3 just above


def note_html(edition: Edition) -> Markup:
    """Return the edition's editor's note as sanitised HTML, empty where it has none.

    digest.note renders and cleans it (Markdown, nh3 with a short allow-list), as for the
    email; it is looked up when a note is there, so editions stored before notes existed
    need nothing of it.
    """
    note = str(getattr(edition, "note", "") or "")
    if not note.strip():
        return Markup()
    renderer = importlib.import_module("digest.note")
    return Markup(renderer.note_html(note))  # noqa: S704 - cleaned by digest.note


def _neighbours(
    records: list[EditionRecord], edition_id: str
) -> tuple[EditionRecord | None, EditionRecord | None]:
    """Return the older and the newer edition beside edition_id (records newest first)."""
    ids = [r.id for r in records]
    if edition_id not in ids:
        return None, None
    at = ids.index(edition_id)
    newer = records[at - 1] if at > 0 else None
    older = records[at + 1] if at + 1 < len(records) else None
    return older, newer


def edition_html(
    settings: Settings,
    edition_id: str,
    records: list[EditionRecord] | None = None,
    static: bool = False,
) -> str | None:
    """Return the page of one edition, or None if there is no such edition.

    The page is built from the edition the store kept (its sections, items and
    highlights); an edition stored without that document shows its stored email's body,
    and one an earlier release stored without content, its outbox copy.
    """
    if not EDITION_ID.fullmatch(edition_id) or not store_exists(settings.db):
        return None
    with Store(settings.db, readonly=True) as store:
        record = store.editions.get(edition_id)
        if record is None:
            return None
        edition: Edition | None = store.editions.model(edition_id)
        content = store.editions.content(edition_id) if edition is None else None
        # The neighbours come from the same store, read while it is open.
        records = _shown(settings, store) if records is None else records
    body: Markup | None = None
    if edition is None:
        if content is not None:
            html = content.html
        else:
            try:
                html = _outbox_page(settings, edition_id).read_text(encoding="utf-8")
            except FileNotFoundError:
                return None
        body = email_body(html, settings.base_url, settings.language)
    older, newer = _neighbours(records, edition_id)
    return pages.render(
        settings,
        "edition.html.j2",
        {
            "record": record,
            "edition": edition,
            "note_html": note_html(edition) if edition is not None else Markup(),
            "body": body,
            "older": older,
            "newer": newer,
            "unsubscribe_url": f"{settings.base_url.rstrip('/')}/unsubscribe/",
        },
        static=static,
        depth=1,
    )


def entries(settings: Settings, records: list[EditionRecord]) -> list[Entry]:
    """Return the index's entries for records: each with its first item's title."""
    tops: dict[str, str] = {}
    if records and store_exists(settings.db):
        with Store(settings.db, readonly=True) as store:
            tops = store.editions.top_titles()
    return [
        Entry(r.id, r.edition_date, r.subject, r.item_count, tops.get(r.id, "")) for r in records
    ]


def index_html(
    settings: Settings, records: list[EditionRecord] | None = None, static: bool = False
) -> str:
    """Return the archive's index page: every edition, newest first."""
    records = editions(settings) if records is None else records
    return pages.render(
        settings, "archive.html.j2", {"editions": entries(settings, records)}, static=static
    )


def feed_xml(settings: Settings, records: list[EditionRecord] | None = None) -> str:
    """Return an Atom feed of the editions, newest first."""
    records = editions(settings) if records is None else records
    base = f"{settings.base_url}/archive/"
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(feed, f"{{{ATOM}}}id").text = base
    ET.SubElement(feed, f"{{{ATOM}}}title").text = settings.title
    updated = records[0].created.isoformat() if records else "1970-01-01T00:00:00+00:00"
    ET.SubElement(feed, f"{{{ATOM}}}updated").text = updated
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="self", href=f"{base}feed.xml")
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="alternate", href=base)
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    ET.SubElement(author, f"{{{ATOM}}}name").text = settings.title
    for record in records:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        ET.SubElement(entry, f"{{{ATOM}}}id").text = f"{base}{record.id}/"
        ET.SubElement(entry, f"{{{ATOM}}}title").text = record.subject
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = record.created.isoformat()
        ET.SubElement(entry, f"{{{ATOM}}}link", rel="alternate", href=f"{base}{record.id}/")
        summary = ET.SubElement(entry, f"{{{ATOM}}}summary")
        summary.text = f"{record.item_count} stories"
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="unicode")


def write_archive(settings: Settings, out: Path) -> list[Path]:
    """Write the archive as static files into out; return the files written."""
    records = editions(settings)
    try:
        written = _write_files(settings, out, records)
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        raise DeliveryError(
            f"{out}: cannot write the archive: {where}{err.strerror or err}",
            hint="give --out a folder this user may write, on a disk with free space",
        ) from err
    logger.info("wrote the archive of %d editions to %s", len(records), out)
    return written


def _write_files(settings: Settings, out: Path, records: list[EditionRecord]) -> list[Path]:
    """Write each edition's page, the index and the feed into out."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for record in records:
        html = edition_html(settings, record.id, records, static=True)
        if html is None:
            continue
        folder = out / record.id
        folder.mkdir(exist_ok=True)
        write_atomic(folder / "index.html", html.encode("utf-8"))
        written.append(folder / "index.html")
    write_atomic(out / "index.html", index_html(settings, records, static=True).encode("utf-8"))
    write_atomic(out / "feed.xml", feed_xml(settings, records).encode("utf-8"))
    written += [out / "index.html", out / "feed.xml"]
    return written
