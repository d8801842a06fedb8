"""HTTP fetching against a real server on 127.0.0.1: headers, validators and every failure."""

from __future__ import annotations

import gzip
import socket
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from _sources import DATA, NOW, ingest, source_settings
from feedserver import FakeDNS, FeedServer, HeaderDrip, serving

from digest import __version__
from digest.config import load_settings
from digest.errors import ConfigError
from digest.sources import feed as feed_reader
from digest.sources import read_sources
from digest.sources.base import Document
from digest.sources.fetch import FetchError, FetchOptions, FetchRefused, fetch, redact
from digest.store import Store

RSS = (DATA / "rss2.xml").read_bytes()
FAST = FetchOptions(timeout=1.0, max_bytes=10_000_000)


def test_sends_user_agent_and_accepts_gzip(feed_server: FeedServer) -> None:
    """Name the program in User-Agent, ask for gzip and inflate the answer."""
    url = feed_server.add("/feed.xml", RSS, gzip=True)
    response = fetch(url, FAST)
    assert response.status == 200
    assert response.data == RSS
    (request,) = feed_server.hits("/feed.xml")
    assert request.headers["user-agent"].startswith(f"digest/{__version__}")
    assert "gzip" in request.headers["accept-encoding"]


def test_custom_user_agent(feed_server: FeedServer) -> None:
    """Send DIGEST_USER_AGENT when it is set."""
    url = feed_server.add("/feed.xml", RSS)
    fetch(url, FetchOptions(user_agent="TownDigest/2 (+https://town.example.org)"))
    assert feed_server.hits("/feed.xml")[0].headers["user-agent"] == (
        "TownDigest/2 (+https://town.example.org)"
    )


def test_conditional_get_sends_validators_and_304_is_not_modified(
    feed_server: FeedServer,
) -> None:
    """Send back ETag and Last-Modified; a 304 comes back as not modified, without a body."""
    stamp = "Fri, 27 Nov 2026 08:00:00 GMT"
    url = feed_server.add("/feed.xml", RSS, etag='"v1"', last_modified=stamp)
    first = fetch(url, FAST)
    assert (first.etag, first.last_modified) == ('"v1"', stamp)
    second = fetch(url, FAST, first.etag, first.last_modified)
    assert second.not_modified and second.data == b""
    request = feed_server.hits("/feed.xml")[1]
    assert request.headers["if-none-match"] == '"v1"'
    assert request.headers["if-modified-since"] == stamp
    assert request.status == 304


def test_second_ingest_is_conditional_and_a_304_parses_nothing(
    tmp_path: Path, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Store the validators per source, send them next run, and parse nothing on a 304."""
    url = feed_server.add("/feed.xml", RSS, etag='"v1"', last_modified="Fri, 27 Nov 2026")
    settings = source_settings(tmp_path, url)
    first = ingest(settings)
    assert first.new == 4

    calls: list[str] = []
    real_parse = feed_reader.parse

    def counting(doc: Document) -> Any:
        calls.append(doc.where)
        return real_parse(doc)

    monkeypatch.setattr(feed_reader, "parse", counting)
    second = ingest(settings, NOW + timedelta(hours=1))
    assert calls == []
    assert (second.new, second.updated, second.unchanged) == (0, 0, 4)
    assert feed_server.hits("/feed.xml")[1].headers.get("if-none-match") == '"v1"'
    with Store(settings.db) as store:
        health = store.articles.source_health()[url]
        assert store.articles.count() == 4
    assert health.http_status == 304 and health.item_count == 4


def test_not_fetched_again_within_the_interval(tmp_path: Path, feed_server: FeedServer) -> None:
    """Leave a feed alone until DIGEST_FETCH_INTERVAL has passed since the last attempt."""
    url = feed_server.add("/feed.xml", RSS)
    settings = source_settings(tmp_path, url, DIGEST_FETCH_INTERVAL="30m")
    ingest(settings)
    report = ingest(settings, NOW + timedelta(minutes=10))
    assert len(feed_server.hits("/feed.xml")) == 1
    assert report.unchanged == 4
    ingest(settings, NOW + timedelta(minutes=31))
    assert len(feed_server.hits("/feed.xml")) == 2


@pytest.mark.parametrize(("status", "reason"), [(404, "HTTP 404"), (500, "HTTP 500")])
def test_http_errors(feed_server: FeedServer, status: int, reason: str) -> None:
    """Fail with the status for 4xx and 5xx answers."""
    url = feed_server.add("/broken.xml", b"oops", status=status, content_type="text/plain")
    with pytest.raises(FetchError, match=reason) as caught:
        fetch(url, FAST)
    assert caught.value.status == status


def test_missing_path_is_404(feed_server: FeedServer) -> None:
    """Report a path the server does not have as HTTP 404."""
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(feed_server.url + "/nowhere.xml", FAST)


def test_timeout_waiting_for_the_answer(feed_server: FeedServer) -> None:
    """Give up after the timeout when the server does not answer.

    The server holds its answer until the test lets it go: a fetch that waited for it
    would succeed instead of timing out.
    """
    hold = threading.Event()
    url = feed_server.add("/slow.xml", RSS, hold=hold)
    try:
        with pytest.raises(FetchError, match="timed out"):
            fetch(url, FetchOptions(timeout=0.3))
    finally:
        hold.set()


def test_timeout_covers_a_body_that_trickles_in(feed_server: FeedServer) -> None:
    """Stop a response that keeps sending a few bytes at a time past the deadline.

    The server notices the client hanging up, and how much of the body it had sent by
    then: only part of it (the whole takes about 25 s, every read well within any
    per-read timeout).
    """
    url = feed_server.add("/drip.xml", RSS, drip=0.05)
    with pytest.raises(FetchError, match="timed out"):
        fetch(url, FetchOptions(timeout=0.5))
    route = feed_server.routes["/drip.xml"]
    assert route.cut_off.wait(30), "the server never saw the client hang up"
    assert 0 < route.sent < len(route.body)


def test_timeout_covers_headers_that_drip_in() -> None:
    """Give up at the deadline on a server sending its header a byte every 0.5 s.

    Each byte comes well within any per-read timeout; only a deadline for the whole
    exchange stops it. The server counts what it sent before the client hung up: far
    less than the 120 bytes (60 s) it would drip to a client that waited.
    """
    with HeaderDrip(interval=0.5, total=120) as drip:
        with pytest.raises(
            FetchError, match=r"timed out after 2 s \(DIGEST_FETCH_TIMEOUT\)"
        ) as caught:
            fetch(drip.url, FetchOptions(timeout=2))
        assert str(caught.value).startswith(f"{drip.url}: ")
        assert drip.hung_up.wait(10)
        assert 0 < drip.sent < 30


def test_dns_look_up_is_within_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give up on a DNS look-up that does not answer, like on any other slow step."""
    dns = FakeDNS()
    dns.slow.add("slow-dns.example")
    monkeypatch.setattr("socket.getaddrinfo", dns)
    try:
        with pytest.raises(FetchError, match=r"timed out after 0\.5 s"):
            fetch("http://slow-dns.example/feed.xml", FetchOptions(timeout=0.5))
        assert dns.looked_up("slow-dns.example") == 1
    finally:
        dns.release()


def test_password_in_a_configured_url_is_refused_without_a_look_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refuse user:password@ before resolving anything; never show the password."""
    dns = FakeDNS()
    dns.answers["feeds.example.org"] = ["127.0.0.1"]
    monkeypatch.setattr("socket.getaddrinfo", dns)
    with pytest.raises(FetchRefused, match="user name or password") as caught:
        fetch("https://me:hunter2@feeds.example.org/x.xml", FAST)
    assert str(caught.value).startswith("https://me:***@feeds.example.org/x.xml: refused: ")
    assert "hunter2" not in str(caught.value)
    assert dns.looked_up("feeds.example.org") == 0


def test_redirects_followed_to_the_final_url(feed_server: FeedServer) -> None:
    """Follow 301 and 302, and report the URL the feed finally came from."""
    final = feed_server.add("/new/feed.xml", RSS)
    feed_server.add("/middle", status=302, location="/new/feed.xml")
    start = feed_server.add("/old", status=301, location=feed_server.url + "/middle")
    response = fetch(start, FAST)
    assert response.url == final
    assert response.data == RSS


def test_redirect_loop_is_named(feed_server: FeedServer) -> None:
    """Detect a redirect loop instead of following it until a limit."""
    a = feed_server.add("/a", status=302, location="/b")
    feed_server.add("/b", status=302, location="/a")
    with pytest.raises(FetchError, match="redirect loop") as caught:
        fetch(a, FAST)
    assert "/a -> " in str(caught.value) and "/b" in str(caught.value)
    assert len(feed_server.hits("/a")) == 1


def test_too_many_redirects(feed_server: FeedServer) -> None:
    """Stop a chain of distinct redirects after max_redirects."""
    for n in range(10):
        feed_server.add(f"/r{n}", status=302, location=f"/r{n + 1}")
    with pytest.raises(FetchError, match="more than 3 redirects"):
        fetch(feed_server.url + "/r0", FetchOptions(max_redirects=3))


def test_redirect_to_another_scheme_refused(feed_server: FeedServer) -> None:
    """Refuse a redirect away from http(s), such as to a local file."""
    url = feed_server.add("/sneaky", status=302, location="file:///etc/passwd")
    with pytest.raises(FetchError, match="non-HTTP"):
        fetch(url, FAST)


def test_fifty_megabyte_response_is_capped(feed_server: FeedServer) -> None:
    """Stop reading a 50 MB body without a Content-Length at DIGEST_FETCH_MAX_BYTES."""
    url = feed_server.add("/huge.xml", stream_bytes=50_000_000)
    with pytest.raises(FetchError, match="larger than 10000000 bytes"):
        fetch(url, FetchOptions(timeout=10))


def test_declared_length_over_the_cap_is_refused(feed_server: FeedServer) -> None:
    """Refuse a response whose Content-Length is over the cap before reading it."""
    url = feed_server.add("/big.xml", b"x" * 300_000)
    with pytest.raises(FetchError, match="larger than 100000 bytes"):
        fetch(url, FetchOptions(max_bytes=100_000))


def test_gzip_bomb_is_capped_after_decompression(feed_server: FeedServer) -> None:
    """Count the inflated size: a small gzip body cannot expand past the cap."""
    bomb = b"\0" * 20_000_000
    url = feed_server.add("/bomb.xml", bomb, gzip=True)
    assert len(gzip.compress(bomb)) < 100_000
    with pytest.raises(FetchError, match="larger than 1000000 bytes"):
        fetch(url, FetchOptions(max_bytes=1_000_000))


def test_connection_refused(feed_server: FeedServer) -> None:
    """Report a closed port as a connection failure, not a crash."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError, match=r"connection refused|cannot connect"):
        fetch(f"http://127.0.0.1:{port}/feed.xml", FAST)


def test_only_http_urls(tmp_path: Path) -> None:
    """Refuse file:// and other schemes as feed URLs."""
    with pytest.raises(FetchError, match="only http"):
        fetch((tmp_path / "x.xml").as_uri(), FAST)
    (result,) = read_sources(("ftp://example.org/feed.xml",))
    assert result.error is not None and "only http" in result.error


def test_failures_reported_and_the_rest_goes_on(tmp_path: Path, feed_server: FeedServer) -> None:
    """Skip each broken URL with its reason; still store the good feed beside them."""
    good = feed_server.add("/good.xml", RSS)
    missing = feed_server.url + "/missing.xml"
    error = feed_server.add("/error.xml", b"boom", status=500, content_type="text/plain")
    slow = feed_server.add("/slow.xml", RSS, delay=2.0)
    a = feed_server.add("/loop-a", status=302, location="/loop-b")
    feed_server.add("/loop-b", status=302, location="/loop-a")
    settings = source_settings(tmp_path, missing, error, slow, a, good, DIGEST_FETCH_TIMEOUT="0.5")
    report = ingest(settings)
    assert report.new == 4
    reasons = {s.where: s.reason for s in report.skipped}
    assert reasons[missing].startswith("HTTP 404")
    assert reasons[error].startswith("HTTP 500")
    assert "timed out" in reasons[slow]
    assert "redirect loop" in reasons[a]


def test_untrusted_tls_certificate_is_refused(tmp_path: Path) -> None:
    """Verify certificates: one signed by a CA nobody trusts fails with the reason."""
    issued = trustme.CA().issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    with serving((str(cert), str(key))) as server:
        url = server.add("/feed.xml", RSS)
        assert url.startswith("https://")
        with pytest.raises(FetchError, match="TLS certificate not trusted"):
            fetch(url, FAST)
        assert server.hits("/feed.xml") == []


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("DIGEST_FETCH_TIMEOUT", "0", "must be at least 0.1"),
        ("DIGEST_FETCH_TIMEOUT", "soon", "must be a number"),
        ("DIGEST_FETCH_INTERVAL", "often", "must be a duration"),
        ("DIGEST_FETCH_MAX_BYTES", "10", "must be at least 1024"),
        ("DIGEST_SOURCE_FAILING_DAYS", "0", "must be at least 1"),
    ],
)
def test_fetch_settings_are_checked(key: str, value: str, why: str) -> None:
    """Reject a fetch setting out of range, naming the key."""
    with pytest.raises(ConfigError, match=f"{key}='{value}': {why}"):
        load_settings(None, {key: value})


def test_fetch_settings_defaults_and_values() -> None:
    """Read the fetch settings with safe defaults."""
    default = load_settings(None, {})
    assert (default.fetch_timeout, default.fetch_max_bytes) == (20.0, 10_000_000)
    assert default.fetch_interval == timedelta(minutes=30)
    assert default.source_failing_days == 3 and default.user_agent == ""
    custom = load_settings(
        None,
        {
            "DIGEST_FETCH_TIMEOUT": "2.5",
            "DIGEST_FETCH_INTERVAL": "2h",
            "DIGEST_FETCH_MAX_BYTES": "2048",
            "DIGEST_USER_AGENT": "Town/1",
        },
    )
    assert (custom.fetch_timeout, custom.fetch_max_bytes, custom.user_agent) == (
        2.5,
        2048,
        "Town/1",
    )
    assert custom.fetch_interval == timedelta(hours=2)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://me:hunter2@feeds.example.org/x.xml", "https://me:***@feeds.example.org/x.xml"),
        (
            "https://feeds.example.org/x.xml?token=abc123&page=2",
            "https://feeds.example.org/x.xml?token=***&page=2",
        ),
        ("https://feeds.example.org/x.xml?page=2", "https://feeds.example.org/x.xml?page=2"),
    ],
)
def test_redact_hides_credentials(url: str, shown: str) -> None:
    """Mask a URL's password and token-like query values before it is shown."""
    assert redact(url) == shown


def test_private_feed_url_is_not_logged_or_reported(
    tmp_path: Path, feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Keep a feed's access token out of the log, the skip reasons and stored articles."""
    url = feed_server.add("/private.xml?token=s3cr3t", b"no", status=403, content_type="text/plain")
    settings = source_settings(tmp_path, url)
    with caplog.at_level("DEBUG"):
        report = ingest(settings)
    assert "s3cr3t" not in caplog.text
    assert all("s3cr3t" not in f"{s.where} {s.reason}" for s in report.skipped)
    assert report.skipped[0].where.endswith("/private.xml?token=***")
    assert report.skipped[0].reason == "HTTP 403 Forbidden"
