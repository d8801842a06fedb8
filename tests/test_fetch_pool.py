"""One run's fetches share a TLS context and kept connections, and run a few at a time.

Everything runs against real servers on 127.0.0.1. Overlap is shown by what the server
sees (requests that wait for each other at a barrier, the most in flight at once), not
by timing anything; the certificates come from a throw-away CA made by trustme.
"""

from __future__ import annotations

import importlib
import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme
from _sources import ingest, source_settings
from feedserver import FakeDNS, FeedServer, serving

from digest.sources import SourceResult, read_sources
from digest.sources.connection import Pool
from digest.sources.fetch import FetchError, FetchOptions, FetchRefused, fetch, fetch_untrusted

fetch_module = importlib.import_module("digest.sources.fetch")

# Long enough that no test here ever meets it: a barrier that is not reached fails first.
OPTIONS = FetchOptions(timeout=20.0)
WAIT = 10.0  # how long a request waits at a barrier for the others before giving up


def rss(name: str) -> bytes:
    """Return a small RSS feed whose one item is named after the feed."""
    return f"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>{name}</title><link>http://example.org/</link>
<item><title>Story of {name}</title><link>http://example.org/{name}</link>
<guid>urn:{name}</guid><pubDate>Fri, 27 Nov 2026 08:00:00 GMT</pubDate>
<description>What happened at {name}.</description></item></channel></rss>""".encode()


@dataclass
class Seen:
    """What the test server saw, and how it answers."""

    # Called with the path before answering; returns the status to answer with.
    hold: Callable[[str], int] = lambda path: 200
    # Close the connection after each answer without saying so (no Connection: close).
    drop_after_answer: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[tuple[str, int]] = field(default_factory=list)  # path, client port
    in_flight: int = 0
    most_in_flight: int = 0
    url: str = ""

    def connections(self) -> int:
        """Return how many connections the requests came on."""
        with self.lock:
            return len({port for _, port in self.requests})


@contextmanager
def watched(seen: Seen) -> Iterator[Seen]:
    """Serve rss(path) for every path on 127.0.0.1, keeping connections alive."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with seen.lock:
                seen.requests.append((self.path, self.client_address[1]))
                seen.in_flight += 1
                seen.most_in_flight = max(seen.most_in_flight, seen.in_flight)
            try:
                status = seen.hold(self.path)
            finally:
                with seen.lock:
                    seen.in_flight -= 1
            name = self.path.strip("/").removesuffix(".xml")
            body = rss(name) if status == 200 else b"held too long"
            self.send_response(status)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            if seen.drop_after_answer:
                self.close_connection = True

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    seen.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def barrier(parties: int) -> Callable[[str], int]:
    """Hold every request until parties of them are in flight together; 503 if never."""
    gate = threading.Barrier(parties, timeout=WAIT)

    def hold(path: str) -> int:
        try:
            gate.wait()
        except threading.BrokenBarrierError:
            return 503
        return 200

    return hold


def read(urls: list[str], concurrency: int, per_host: int | None = None) -> list[SourceResult]:
    """Read urls as one run does; one server stands for many hosts here, so unless told
    otherwise as many requests may go to it at once as there are threads."""
    options = FetchOptions(
        timeout=OPTIONS.timeout, concurrency=concurrency, per_host=per_host or concurrency
    )
    return list(read_sources(urls, options=options))


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throw-away certificate authority."""
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA, tmp_path: Path) -> Iterator[FeedServer]:
    """An HTTPS feed server on 127.0.0.1 with a certificate from the throw-away CA."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    with serving((str(chain), str(key))) as server:
        yield server


@pytest.fixture
def contexts(ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> list[ssl.SSLContext]:
    """Every default TLS context made from now on, each trusting the throw-away CA."""
    made: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def counting(*args: object, **kwargs: object) -> ssl.SSLContext:
        context = real(*args, **kwargs)  # type: ignore[arg-type]
        ca.configure_trust(context)
        made.append(context)
        return context

    monkeypatch.setattr(ssl, "create_default_context", counting)
    return made


def test_one_tls_context_serves_every_fetch_of_a_run(
    tls_server: FeedServer, contexts: list[ssl.SSLContext]
) -> None:
    """Make one TLS context for a run of twelve https feeds fetched four at a time."""
    urls = [tls_server.add(f"/feed{n}.xml", rss(f"feed{n}")) for n in range(12)]
    results = read(urls, concurrency=4)
    assert [r.error for r in results] == [None] * 12
    assert [r.articles[0].title for r in results] == [f"Story of feed{n}" for n in range(12)]
    assert len(contexts) == 1
    assert sum(len(tls_server.hits(f"/feed{n}.xml")) for n in range(12)) == 12


def test_certificates_are_still_verified_with_the_shared_context(tls_server: FeedServer) -> None:
    """Refuse the https feed whose CA the system does not trust, and only that feed."""
    bad = tls_server.add("/feed.xml", rss("feed"))
    with serving() as plain:
        good = plain.add("/feed.xml", rss("plain"))
        first, second = read([bad, good], concurrency=2)
    assert first.error is not None and "TLS certificate not trusted" in first.error
    assert second.error is None


def test_a_run_without_https_loads_no_ca_store(
    feed_server: FeedServer, contexts: list[ssl.SSLContext], tmp_path: Path
) -> None:
    """Make no TLS context at all when every feed is plain http:// (or a file)."""
    (tmp_path / "note.txt").write_text("A title\n\nA title\n\nSome words.\n")
    urls = [feed_server.add(f"/feed{n}.xml", rss(f"feed{n}")) for n in range(3)]
    results = list(read_sources([*urls, str(tmp_path / "note.txt")], options=OPTIONS))
    assert [r.error for r in results] == [None] * 4
    assert contexts == []


def test_kept_connection_serves_the_next_fetches() -> None:
    """Fetch ten feeds of one server, one at a time, over a single connection."""
    with watched(Seen()) as seen:
        urls = [f"{seen.url}/feed{n}.xml" for n in range(10)]
        results = read(urls, concurrency=1)
    assert [r.error for r in results] == [None] * 10
    assert (len(seen.requests), seen.connections()) == (10, 1)


def test_one_pool_keeps_connections_across_fetches() -> None:
    """Reuse a connection for fetch() calls given the same pool, and not across pools."""
    with watched(Seen()) as seen:
        with Pool() as pool:
            for n in range(3):
                fetch(f"{seen.url}/a{n}.xml", OPTIONS, pool=pool)
        assert seen.connections() == 1
        fetch(f"{seen.url}/b.xml", OPTIONS)
        fetch(f"{seen.url}/c.xml", OPTIONS)
        assert seen.connections() == 3


def test_a_kept_connection_the_server_closed_is_replaced() -> None:
    """Fetch again on a new connection when the server dropped the kept one unannounced."""
    with watched(Seen(drop_after_answer=True)) as seen:
        urls = [f"{seen.url}/feed{n}.xml" for n in range(4)]
        results = read(urls, concurrency=1)
    assert [r.error for r in results] == [None] * 4
    assert seen.connections() == 4


def test_feeds_are_fetched_at_the_same_time() -> None:
    """Have four slow feeds in flight at once: each answers only when all four are waiting."""
    with watched(Seen(hold=barrier(4))) as seen:
        urls = [f"{seen.url}/feed{n}.xml" for n in range(4)]
        results = read(urls, concurrency=4)
    assert [r.error for r in results] == [None] * 4
    assert seen.most_in_flight == 4


def test_no_more_feeds_in_flight_than_the_concurrency() -> None:
    """Fetch nine feeds two at a time: pairs overlap, and never more than two are in flight."""
    with watched(Seen(hold=barrier(2))) as seen:
        urls = [f"{seen.url}/feed{n}.xml" for n in range(8)]
        results = read(urls, concurrency=2)
    assert [r.error for r in results] == [None] * 8
    assert seen.most_in_flight == 2


def test_one_request_at_a_time_per_host() -> None:
    """Ask one host one thing at a time, whatever the concurrency, while two host names
    (127.0.0.1 and localhost, the same server) are asked at the same time."""
    with watched(Seen()) as seen:
        urls = [f"{seen.url}/feed{n}.xml" for n in range(6)]
        results = read(urls, concurrency=4, per_host=1)
        assert [r.error for r in results] == [None] * 6
        assert seen.most_in_flight == 1
    with watched(Seen(hold=barrier(2))) as seen:
        other = seen.url.replace("127.0.0.1", "localhost")
        urls = [f"{base}/feed{n}.xml" for n in range(3) for base in (seen.url, other)]
        results = read(urls, concurrency=4, per_host=1)
    assert [r.error for r in results] == [None] * 6
    assert seen.most_in_flight == 2


def test_a_redirect_waits_for_its_hosts_turn_within_the_deadline() -> None:
    """Time a fetch out when its redirect's host stays busy past the deadline."""
    with serving() as server, Pool() as pool:
        target = server.add("/elsewhere.xml", rss("x"))
        start = server.add("/start.xml", status=302, location=target)
        options = FetchOptions(timeout=0.5, allow_private=True)
        with pool.host_turn("127.0.0.1", 1), pytest.raises(FetchError, match="timed out"):
            fetch(start.replace("127.0.0.1", "localhost"), options, pool=pool)
        assert len(server.hits("/start.xml")) == 1
        assert server.hits("/elsewhere.xml") == []


def test_results_come_in_source_order_whoever_answers_first() -> None:
    """Hand results out in DIGEST_SOURCES order although the first feed answers last, and
    go on fetching the others, two at a time, while it keeps everyone waiting."""
    last_asked = threading.Event()

    def hold(path: str) -> int:
        if path == "/feed0.xml":
            return 200 if last_asked.wait(WAIT) else 503
        if path == "/feed7.xml":
            last_asked.set()
        return 200

    with watched(Seen(hold=hold)) as seen:
        urls = [f"{seen.url}/feed{n}.xml" for n in range(8)]
        results = read(urls, concurrency=2)
    assert [r.where for r in results] == urls
    assert [r.articles[0].title for r in results] == [f"Story of feed{n}" for n in range(8)]


def test_a_broken_feed_fails_only_itself_among_concurrent_ones(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    """Skip the 500, the refused connection and the HTML page; store the other feeds."""
    with serving() as gone:
        refused = gone.url + "/feed.xml"
    urls = [
        feed_server.add("/a.xml", rss("a")),
        feed_server.add("/broken.xml", b"oops", status=500, content_type="text/plain"),
        refused,
        feed_server.add("/page.xml", b"<html><body>hi</body></html>", content_type="text/html"),
        feed_server.add("/b.xml", rss("b")),
    ]
    report = ingest(source_settings(tmp_path, *urls, DIGEST_FETCH_CONCURRENCY="4"))
    assert report.new == 2
    assert [s.where for s in report.skipped] == urls[1:4]
    assert "HTTP 500" in report.skipped[0].reason
    assert "connection refused" in report.skipped[1].reason


def test_a_kept_connection_is_reused_only_past_the_address_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Check every look-up before reuse; never reuse a connection for another address."""
    dns = FakeDNS()
    monkeypatch.setattr("socket.getaddrinfo", dns)

    def only_127_0_0_1_is_public(
        address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    ) -> str | None:
        return None if str(address) == "127.0.0.1" else "a private address"

    monkeypatch.setattr(fetch_module, "refusal", only_127_0_0_1_is_public)
    with watched(Seen()) as seen, Pool() as pool:
        port = seen.url.rsplit(":", 1)[1]
        url = f"http://feeds.test:{port}/feed.xml"
        dns.answers["feeds.test"] = ["127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.3"]
        fetch_untrusted(url, OPTIONS, pool=pool)  # kept, to 127.0.0.1
        with pytest.raises(FetchRefused, match=r"resolves to 127\.0\.0\.2, a private address"):
            fetch_untrusted(url, OPTIONS, pool=pool)
        fetch_untrusted(url, OPTIONS, pool=pool)  # 127.0.0.1 again: the kept connection
        assert (len(seen.requests), seen.connections()) == (2, 1)
        # Allowed now, but the kept connection goes to 127.0.0.1: a new one is made, to
        # 127.0.0.3, where nothing listens.
        monkeypatch.setattr(fetch_module, "refusal", lambda a: None)
        with pytest.raises(FetchError, match="connection refused"):
            fetch_untrusted(url, OPTIONS, pool=pool)
    assert len(seen.requests) == 2
    dns.release()
