"""Where an edition can be read on the web."""

from __future__ import annotations

from urllib.parse import urlsplit

from digest.check import is_loopback
from digest.config import Settings

# The path of an edition's page under the archive: `digest serve` answers it
# (digest/web.py) and `digest archive` writes it (digest/archive.py).
EDITION_PATH = "{archive}/{edition_id}/"


def archive_url(settings: Settings) -> str | None:
    """Return the public address of the archive, or None if it is not published.

    DIGEST_ARCHIVE_URL names it; without it the archive `digest serve` serves under
    DIGEST_BASE_URL counts once that is a public address. The loopback default is a
    server nobody else can reach, and a link to it in an email would be a broken one.
    """
    if settings.archive_url:
        return settings.archive_url.rstrip("/")
    host = urlsplit(settings.base_url).hostname or ""
    if is_loopback(host):
        return None
    return f"{settings.base_url.rstrip('/')}/archive"


def edition_page_url(settings: Settings, edition_id: str) -> str | None:
    """Return the address of an edition's archive page, or None if there is none."""
    base = archive_url(settings)
    return EDITION_PATH.format(archive=base, edition_id=edition_id) if base else None
