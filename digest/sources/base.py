"""What every reader shares: the document it reads, the result it returns, identity, dates."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from digest.errors import SourceError
from digest.models import Article, FileRecord, Skipped, canonical_url, site_name

# The default of DIGEST_MAX_ARTICLE_BYTES: the largest local file a reader is given.
MAX_FILE_BYTES = 2_000_000


@dataclass(frozen=True)
class Document:
    """The bytes of one source and where they came from."""

    # A file path or a URL: the articles' source, and the name in every message.
    where: str
    data: bytes
    # Relative links in the document resolve against this (the final URL after redirects).
    base_url: str = ""
    content_type: str = ""
    mtime: datetime | None = None
    path: Path | None = None


@dataclass
class SourceResult:
    """Articles a reader found in one source, and what it left out with reasons."""

    articles: list[Article] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # The DIGEST_SOURCES entry this result came from, and the file or URL read.
    spec: str = ""
    where: str = ""
    # Problems that did not stop the source (a feed that is malformed but readable).
    warnings: list[str] = field(default_factory=list)
    # Why the whole source failed; None when it was read.
    error: str | None = None
    # Articles known from an earlier run and not read again (unchanged file, HTTP 304).
    unchanged: int = 0
    # True when the source was not due yet (DIGEST_FETCH_INTERVAL) and was not touched.
    not_due: bool = False
    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    # The file's fingerprint, saved with its articles so it is not parsed again unchanged.
    record: FileRecord | None = None

    @property
    def ok(self) -> bool:
        """Return whether the source was read (or needed no reading)."""
        return self.error is None


def read_capped(path: Path, max_bytes: int = MAX_FILE_BYTES, size: int | None = None) -> bytes:
    """Return the bytes of path; raise SourceError if it holds more than max_bytes.

    size is the file's size if the caller has it from a stat already.
    """
    size = path.stat().st_size if size is None else size
    if size > max_bytes:
        # Refused before reading: a 50 MB file would cost a minute and gigabytes to parse.
        raise SourceError(
            f"{path}: file of {size:,} bytes, larger than {max_bytes:,}"
            " (DIGEST_MAX_ARTICLE_BYTES); not read"
        )
    with path.open("rb") as file:
        # One byte over the cap at most: a file growing since the stat is not read whole
        # either, nor one whose size the file system does not know (a pipe, /proc).
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SourceError(
            f"{path}: file larger than {max_bytes:,} bytes (DIGEST_MAX_ARTICLE_BYTES)"
            " as it was read; not read whole"
        )
    return data


def feed_name(title: str, where: str) -> str:
    """Return the name a reader knows a feed by: its own title, else its site's host.

    The name is shown beside every article ("Read at Harbourtown Daily"); a feed without
    a title is named after its host (without "www."), a local file after its path.
    """
    if title.strip():
        return title.strip()
    return site_name(where) or where


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:20]


def entry_id(source: str, guid: str | None, link: str | None, title: str, content: str) -> str:
    """Return an entry's id: its guid, else its link, else a hash of title and content.

    A guid that is a URI (http:, urn:, tag:) names the article wherever it appears, so
    the same article reached through two feeds gets one id. A bare guid such as "42" only
    means something inside its own feed, so it is qualified by the source.
    """
    if guid and guid.strip():
        guid = guid.strip()
        if ":" in guid:
            return _hash("guid", guid)
        return _hash("guid", source, guid)
    if link and link.strip():
        return _hash("url", canonical_url(link))
    return _hash("content", title, content)


def to_utc(value: datetime | date) -> datetime:
    """Return value as an aware UTC datetime; a naive one is taken to be UTC already.

    Raise ValueError for a date that leaves the calendar once moved to UTC, such as
    9999-12-31T23:00-12:00.
    """
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # A ValueError like any other bad date, so that readers skip just that entry.
        raise ValueError("out of range once converted to UTC") from None


def parse_date(text: str) -> datetime | None:
    """Parse an RFC 3339 / ISO 8601 date or datetime; None if it is not one.

    Raise ValueError for a well-formed date that is out of range in UTC.
    """
    text = text.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    return to_utc(parsed)
