"""Small parts of the web face: form bodies, and watching URL feeds for the live preview."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from email import policy
from email.parser import BytesParser
from urllib.parse import parse_qs

from digest.errors import SourceError
from digest.sources.fetch import FetchOptions, fetch

# Seconds between fetches of the URL feeds for the live preview's fingerprint: the page
# asks every second, and a feed should not be fetched that often.
FEED_CHECK_INTERVAL = 60.0


def parse_form(content_type: str, body: bytes) -> dict[str, list[str]]:
    """Return the fields of a form posted as application/x-www-form-urlencoded or as
    multipart/form-data (which RFC 8058 says one-click senders SHOULD use)."""
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        return parse_qs(body.decode("utf-8", "replace"))
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n"
    message = BytesParser(policy=policy.HTTP).parsebytes(head.encode("latin-1", "replace") + body)
    fields: dict[str, list[str]] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str) and part.get_filename() is None:
            payload = part.get_payload(decode=True)
            value = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            fields.setdefault(name, []).append(value)
    return fields


class FeedWatch:
    """A fingerprint of the URL feeds' bodies, so that the live preview notices their new
    items (local files are watched by their times).

    The feeds are fetched in a thread of their own, at most every `interval` seconds (the
    first time that long after the start: the first build reads them anyway), and never
    while a request waits: a request gets the fingerprint of the last check that finished.
    """

    def __init__(
        self, urls: Sequence[str], options: FetchOptions, interval: float = FEED_CHECK_INTERVAL
    ) -> None:
        self.urls = list(urls)
        self.options = options
        self.interval = interval
        self._state: tuple[float, str] = (time.monotonic(), "")
        self._lock = threading.Lock()

    def fingerprint(self) -> str:
        """Return the last fingerprint; start a check in the background when one is due."""
        due = time.monotonic() - self._state[0] >= self.interval
        if self.urls and due and self._lock.acquire(blocking=False):
            threading.Thread(target=self._check, name="preview-feeds", daemon=True).start()
        return self._state[1]

    def _check(self) -> None:
        try:
            h = hashlib.sha256()
            for url in self.urls:
                try:
                    body = fetch(url, self.options).data
                except SourceError as err:
                    body = str(err).encode()
                h.update(url.encode() + b"\0" + hashlib.sha256(body).digest())
            self._state = (time.monotonic(), h.hexdigest())
        finally:
            self._lock.release()
