"""Slow and hostile clients against the real server: unsubscribe and /health still answer.

Every test here runs the server `digest serve` runs (tests/webserver.py) on 127.0.0.1.
Timeouts on our own requests are generous bounds, there so that a hang fails instead of
stalling the run, not latency targets.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from feedserver import FeedServer
from webserver import request, running

from digest.config import Settings, load_settings
from digest.httpserver import REQUEST_DEADLINE
from digest.store import Store
from digest.tokens import make_token
from digest.web import PREVIEW_RETRY_AFTER, App

SECRET = "a-test-secret-that-is-long-enough-to-sign"
ONE_CLICK = b"List-Unsubscribe=One-Click"
RSS = (Path(__file__).resolve().parent / "data" / "sources" / "rss2.xml").read_bytes()
# Seconds we give any one of our own requests.
ANSWER_WITHIN = 5.0

SLOW_SOCKETS = 150
# A slow socket sends a header line a second, at most this many; the attack lasts this long.
SLOW_LINES = 20
ATTACK_SECONDS = 20.0


def subscribe(settings: Settings, count: int) -> list[int]:
    """Subscribe count readers; return their ids."""
    now = datetime.now(UTC)
    with Store(settings.db) as store:
        for i in range(count):
            store.subscribers.upsert(f"reader{i}@example.org", "", (), "", now)
        found = [store.subscribers.by_email(f"reader{i}@example.org") for i in range(count)]
    return [s.id for s in found if s is not None]


def status_of(settings: Settings, subscriber_id: int) -> str:
    """Return a subscriber's status as the store has it."""
    with Store(settings.db) as store:
        sub = store.subscribers.by_id(subscriber_id)
    assert sub is not None
    return sub.status


def assert_health(url: str) -> None:
    """GET /health and check its answer."""
    status, _, body = request(f"{url}/health", timeout=ANSWER_WITHIN)
    assert status == 200
    assert json.loads(body)["status"] == "ok"


def assert_one_click(url: str, settings: Settings, subscriber_id: int) -> None:
    """POST an RFC 8058 one-click unsubscribe and check that it took."""
    token = make_token(SECRET, settings.list_id, subscriber_id)
    status, headers, page = request(f"{url}/unsubscribe/{token}", "POST", ONE_CLICK, ANSWER_WITHIN)
    assert status == 200 and "Location" not in headers
    assert "You are unsubscribed" in page
    assert status_of(settings, subscriber_id) == "unsubscribed"


def open_state(sock: socket.socket) -> str:
    """Return "open", "closed" once the server has closed it, or "answered"; never wait."""
    timeout = sock.gettimeout()
    # Non-blocking for the look: with a timeout, Python would wait for data to arrive.
    sock.settimeout(0)
    try:
        data = sock.recv(1024, socket.MSG_PEEK)
    except BlockingIOError:
        return "open"
    except OSError:
        return "closed"
    finally:
        sock.settimeout(timeout)
    return "closed" if data == b"" else "answered"


@dataclass
class SlowClients:
    """Sockets that each send a request line, then one header line a second, never the end.

    A socket the server closes is replaced by a new one, so that the pressure lasts the
    whole attack; each socket sends at most SLOW_LINES lines, and all are closed at the end.
    """

    port: int
    count: int = SLOW_SOCKETS
    seconds: float = ATTACK_SECONDS
    opened: int = 0
    cut: int = 0
    answered: int = 0
    cut_after: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SlowClients:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(ATTACK_SECONDS + 10)

    def wait(self) -> None:
        """Wait for the attack to run its course."""
        assert self._thread is not None
        self._thread.join(self.seconds + 10)

    def _connect(self) -> tuple[socket.socket, float, int]:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=ANSWER_WITHIN)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        self.opened += 1
        return sock, time.monotonic(), 1

    def _run(self) -> None:
        end = time.monotonic() + self.seconds
        sockets = [self._connect() for _ in range(self.count)]
        try:
            n = 0
            while not self._stop.wait(1.0) and time.monotonic() < end:
                n += 1
                kept = []
                for sock, since, lines in sockets:
                    state = open_state(sock)
                    if state != "open" or lines >= SLOW_LINES:
                        if state == "closed":
                            self.cut += 1
                            self.cut_after.append(time.monotonic() - since)
                        elif state == "answered":
                            self.answered += 1
                        sock.close()
                        kept.append(self._connect())
                        continue
                    try:
                        sock.sendall(f"X-Slow-{lines}: {n}\r\n".encode())
                    except OSError:
                        self.cut += 1
                        self.cut_after.append(time.monotonic() - since)
                        sock.close()
                        kept.append(self._connect())
                        continue
                    kept.append((sock, since, lines + 1))
                sockets = kept
        finally:
            for sock, _, _ in sockets:
                sock.close()


@pytest.fixture
def signed(settings: Settings) -> Settings:
    """Return settings that sign unsubscribe links."""
    return load_settings(
        None,
        {
            "DIGEST_SOURCES": ",".join(settings.sources),
            "DIGEST_DB": str(settings.db),
            "DIGEST_OUTBOX": str(settings.outbox),
            "DIGEST_SECRET_KEY": SECRET,
        },
    )


@pytest.fixture
def site(signed: Settings) -> Iterator[str]:
    """Serve the app on a real port, as `digest serve` does."""
    with running(App(signed)) as url:
        yield url


def test_slow_header_sockets_do_not_starve_unsubscribe(site: str, signed: Settings) -> None:
    """150 sockets dripping a header line a second: /health and one-click still answer.

    waitress's default of 100 connections was filled by 100 such sockets and nobody else
    was answered; here they are all accepted, cut at the request deadline, and replaced.
    """
    ids = subscribe(signed, 6)
    port = int(urlsplit(site).port or 0)
    with SlowClients(port) as attack:
        time.sleep(2)  # every slow socket is open and has sent its first lines
        assert attack.opened >= SLOW_SOCKETS
        for subscriber_id in ids:
            assert_health(site)
            assert_one_click(site, signed, subscriber_id)
            time.sleep(2)
        attack.wait()
    # Each of the first sockets would have dripped for the whole attack: the deadline
    # closed them, and never before it.
    assert attack.cut >= SLOW_SOCKETS, (attack.cut, attack.answered)
    assert min(attack.cut_after) >= REQUEST_DEADLINE - 1
    assert_health(site)


def drip(sock: socket.socket, line: bytes, every: float, limit: float) -> tuple[float, bytes]:
    """Send line every few seconds until the server closes; return the time and any answer."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        state = open_state(sock)
        if state != "open":
            return time.monotonic() - start, sock.recv(1024) if state == "answered" else b""
        try:
            sock.sendall(line)
        except OSError:
            return time.monotonic() - start, b""
        time.sleep(every)
    return time.monotonic() - start, b"(still open)"


@pytest.mark.parametrize(
    ("first", "line"),
    [
        (b"GET /health HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n"),
        (b"\r\n", b"\r\n"),  # blank lines between requests count too
        (b"POST /unsubscribe/abc HTTP/1.1\r\nContent-Length: 4000\r\n\r\n", b"x"),
        (b"", b""),  # connected, never a byte
    ],
    ids=["header-lines", "blank-lines", "body", "silent"],
)
def test_a_request_that_drips_is_closed_at_the_deadline(
    signed: Settings, first: bytes, line: bytes
) -> None:
    """Close a connection whose request is not complete a few seconds after it began."""
    deadline = 2.0
    with running(App(signed), request_deadline=deadline) as url:
        port = int(urlsplit(url).port or 0)
        with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN) as sock:
            sock.sendall(first)
            took, answer = drip(sock, line, 0.25, deadline + 10)
        assert answer == b""  # closed without an answer, and not kept open
        assert took >= deadline - 0.5
        assert_health(url)


def test_an_idle_keep_alive_connection_outlives_the_deadline(signed: Settings) -> None:
    """Leave a kept-alive connection that waits between requests to channel_timeout."""
    deadline = 1.0
    with running(App(signed), request_deadline=deadline) as url:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.netloc, timeout=ANSWER_WITHIN)
        try:
            for _ in range(2):
                conn.request("GET", "/health")
                response = conn.getresponse()
                assert response.status == 200 and b'"ok"' in response.read()
                time.sleep(deadline + 2)
            assert conn.sock is not None  # the same connection throughout
        finally:
            conn.close()


def test_slow_previews_leave_unsubscribe_answering(
    tmp_path: Path, seeds_dir: Path, feed_server: FeedServer
) -> None:
    """Five previews with a slow feed: one build, 503 for the rest, unsubscribe answers.

    The feed server holds its answer until the test lets it go, so the build is under
    way for as long as the test needs, whatever the machine's speed.
    """
    hold = threading.Event()
    feed = feed_server.add("/slow.xml", RSS, hold=hold)
    settings = load_settings(
        None,
        {
            "DIGEST_SOURCES": f"{seeds_dir},{feed}",
            "DIGEST_DB": str(tmp_path / "digest.db"),
            "DIGEST_OUTBOX": str(tmp_path / "outbox"),
            "DIGEST_SECRET_KEY": SECRET,
            "DIGEST_FETCH_INTERVAL": "0",
            "DIGEST_FETCH_TIMEOUT": "30",
            "DIGEST_FETCH_ALLOW_PRIVATE": "true",
        },
    )
    ids = subscribe(settings, 3)
    answers: list[tuple[int, dict[str, str]]] = []
    answered = threading.Condition()

    with running(App(settings)) as url:

        def preview() -> None:
            status, headers, _ = request(f"{url}/preview", timeout=90)
            with answered:
                answers.append((status, headers))
                answered.notify_all()

        previews = [threading.Thread(target=preview) for _ in range(5)]
        try:
            for thread in previews:
                thread.start()
            # Every request but the one building is refused: three at once, the one
            # waiting for the build after PREVIEW_WAIT.
            with answered:
                answered.wait_for(lambda: len(answers) >= 4, timeout=60)
            assert len(answers) == 4 and not feed_server.hits("/slow.xml"), answers
            for subscriber_id in ids:
                assert_one_click(url, settings, subscriber_id)
                assert_health(url)
            # Answered while the build was still reading the held feed.
            assert all(status == 503 for status, _ in answers)
        finally:
            hold.set()
        for thread in previews:
            thread.join(90)
        built = [status for status, _ in answers if status == 200]
        busy = [headers for status, headers in answers if status == 503]
        assert len(built) == 1 and len(busy) == 4, answers
        assert all(h["Retry-After"] == str(PREVIEW_RETRY_AFTER) for h in busy)
        assert len(feed_server.hits("/slow.xml")) == 1  # one build at a time
        # Built once, then served from memory.
        status, _, page = request(f"{url}/preview", timeout=ANSWER_WITHIN)
        assert status == 200 and "Hello," in page
        assert len(feed_server.hits("/slow.xml")) == 1
