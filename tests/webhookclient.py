"""What the webhook tests share: an App serving webhooks with a collecting sink, and a
client that posts a body with the headers a provider sends."""

from __future__ import annotations

import http.client
import re
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from webserver import running

from digest.bounces.report import DeliveryReport
from digest.config import Settings
from digest.web import App

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


@dataclass
class Collected:
    """The reports the App handed to its sink, one list per request that had any."""

    batches: list[list[DeliveryReport]] = field(default_factory=list)

    def __call__(self, reports: Sequence[DeliveryReport]) -> None:
        self.batches.append(list(reports))

    @property
    def reports(self) -> list[DeliveryReport]:
        return [r for batch in self.batches for r in batch]


@contextmanager
def serving(
    settings: Settings, *, now: datetime = NOW, sns_host: re.Pattern[str] | None = None
) -> Iterator[tuple[str, Collected]]:
    """Serve an App for settings on a real port; yield its URL and what it collected."""
    collected = Collected()
    app = App(settings, clock=lambda: now, report_sink=collected, sns_host=sns_host)
    with running(app) as url:
        yield url, collected


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    """Send body to url on a new connection; return status, headers (names in lower
    case) and body."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        conn.request(method, parts.path, body=body, headers=headers or {})
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        conn.close()


def declare(url: str, path: str, length: int) -> int:
    """Send a POST header declaring a body of length bytes and only a little of it; return
    the status the server answers with (it may answer before reading any body)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=30) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {length}\r\n"
        sock.sendall(head.encode() + b"Content-Type: application/json\r\n\r\n[")
        answer = sock.recv(4096).decode("latin-1")
    return int(answer.split()[1])
