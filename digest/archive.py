"""The public archive: past editions as pages and an Atom feed, served or written out."""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from digest.config import Settings
from digest.errors import DeliveryError
from digest.models import EditionRecord
from digest.outbox import write_atomic
from digest.render import public_links, render_page, without_greeting_placeholder
from digest.store import Store, store_exists

logger = logging.getLogger(__name__)

ATOM = "http://www.w3.org/2005/Atom"
# Edition ids are dates with an optional counter; anything else is not looked up.
EDITION_ID = re.compile(r"\d{4}-\d{2}-\d{2}(?:-\d+)?")


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
        records = store.editions.recent(limit=100_000)
        kept = store.editions.with_content()
    return [r for r in records if r.id in kept or _outbox_page(settings, r.id).is_file()]


def _outbox_page(settings: Settings, edition_id: str) -> Path:
    return settings.outbox / edition_id / "digest.html"


def edition_html(settings: Settings, edition_id: str) -> str | None:
    """Return the public page of one edition, or None if there is no such edition."""
    if not EDITION_ID.fullmatch(edition_id):
        return None
    content = None
    if store_exists(settings.db):
        with Store(settings.db, readonly=True) as store:
            content = store.editions.content(edition_id)
    if content is not None:
        html = content.html
    else:
        try:
            html = _outbox_page(settings, edition_id).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
    # The archive copy is public: no reader's own unsubscribe link, the general page
    # instead, and the greeting without a name in place of each reader's own.
    html = without_greeting_placeholder(html, settings.language)
    return public_links(html, settings.base_url)


def index_html(settings: Settings, records: list[EditionRecord] | None = None) -> str:
    """Return the archive's index page."""
    return render_page(
        settings,
        "archive.html.j2",
        {
            "language": settings.language,
            "page_title": f"{settings.title}: archive",
            "title": settings.title,
            "editions": editions(settings) if records is None else records,
        },
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
        html = edition_html(settings, record.id)
        if html is None:
            continue
        folder = out / record.id
        folder.mkdir(exist_ok=True)
        write_atomic(folder / "index.html", html.encode("utf-8"))
        written.append(folder / "index.html")
    write_atomic(out / "index.html", index_html(settings, records).encode("utf-8"))
    write_atomic(out / "feed.xml", feed_xml(settings, records).encode("utf-8"))
    written += [out / "index.html", out / "feed.xml"]
    return written
