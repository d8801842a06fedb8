"""Where a fetch may go: redirects and feed-content URLs cannot reach private addresses.

Everything runs against servers on 127.0.0.1. A URL written in DIGEST_SOURCES is the
operator's and may be private; a redirect off its origin, or a URL from feed content, is
resolved, checked and connected to at the address that was checked. Names other than
localhost are made up and answered by FakeDNS, so no test leaves the machine.
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from _sources import DATA, ingest, source_settings
from feedserver import FakeDNS, FeedServer, serving
from smtpserver import Certificates, make_certificates

from digest.sources.addresses import refusal
from digest.sources.fetch import (
    FetchError,
    FetchOptions,
    FetchRefused,
    fetch,
    fetch_untrusted,
)
from digest.store import Store

# The module itself: digest.sources exports a function of the same name.
fetch_module = importlib.import_module("digest.sources.fetch")
RSS = (DATA / "rss2.xml").read_bytes()
FAST = FetchOptions(timeout=2.0)
OPEN = FetchOptions(timeout=2.0, allow_private=True)


@pytest.fixture
def other_server() -> Iterator[FeedServer]:
    """A second server on 127.0.0.1: another origin, as an internal service would be."""
    with serving() as server:
        yield server


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDNS]:
    """Answer made-up names without leaving the machine; log every look-up."""
    fake = FakeDNS()
    monkeypatch.setattr("socket.getaddrinfo", fake)
    yield fake
    fake.release()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A throw-away CA and a certificate for feeds.test, localhost and 127.0.0.1."""
    return make_certificates(
        tmp_path_factory.mktemp("certs"), ("feeds.test", "localhost", "127.0.0.1")
    )


@pytest.fixture
def trusted_ca(certs: Certificates, monkeypatch: pytest.MonkeyPatch) -> Certificates:
    """Make the default TLS context, which fetch uses, trust the throw-away CA."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return certs


def _port(server: FeedServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def test_redirect_to_loopback_on_another_port_is_refused(
    feed_server: FeedServer, other_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Refuse a redirect from the configured feed to another loopback service."""
    secret = other_server.add("/admin/secret.xml", RSS)
    url = feed_server.add("/feed.xml?token=s3cr3t", status=302, location=secret)
    with caplog.at_level(logging.WARNING), pytest.raises(FetchRefused) as caught:
        fetch(url, FAST)
    message = str(caught.value)
    assert message.startswith(feed_server.url + "/feed.xml?token=***: redirect to ")
    assert "127.0.0.1 is a loopback address" in message
    assert "DIGEST_FETCH_ALLOW_PRIVATE" in message and "\n" not in message
    assert other_server.hits("/admin/secret.xml") == []
    (record,) = [r for r in caplog.records if r.name == "digest.sources.fetch"]
    assert record.levelno == logging.WARNING
    assert "token=***" in record.getMessage() and "s3cr3t" not in caplog.text


def test_redirect_to_localhost_is_refused(feed_server: FeedServer) -> None:
    """Refuse a redirect to localhost: a name is resolved and its address checked."""
    feed_server.add("/secret.xml", RSS)
    target = f"http://localhost:{_port(feed_server)}/secret.xml"
    url = feed_server.add("/feed.xml", status=301, location=target)
    with pytest.raises(FetchRefused, match=r"localhost resolves to \S+, a loopback address"):
        fetch(url, FAST)
    assert feed_server.hits("/secret.xml") == []


@pytest.mark.parametrize("host", ["[::1]", "[::ffff:127.0.0.1]", "127.1", "2130706433"])
def test_redirect_to_other_spellings_of_loopback_is_refused(
    feed_server: FeedServer, other_server: FeedServer, host: str
) -> None:
    """Refuse IPv6 loopback, IPv4-mapped IPv6 and the short and decimal IPv4 forms."""
    other_server.add("/secret.xml", RSS)
    target = f"http://{host}:{_port(other_server)}/secret.xml"
    url = feed_server.add("/feed.xml", status=302, location=target)
    with pytest.raises(FetchRefused, match="a loopback address"):
        fetch(url, FAST)
    assert other_server.hits("/secret.xml") == []


def test_redirect_to_a_name_with_a_private_address_is_refused(
    feed_server: FeedServer, other_server: FeedServer, dns: FakeDNS
) -> None:
    """Refuse a public-looking name whose DNS answer is a private address."""
    dns.answers["intranet.example.org"] = ["127.0.0.1"]
    other_server.add("/secret.xml", RSS)
    target = f"http://intranet.example.org:{_port(other_server)}/secret.xml"
    url = feed_server.add("/feed.xml", status=302, location=target)
    with pytest.raises(FetchRefused, match=r"intranet\.example\.org resolves to 127\.0\.0\.1"):
        fetch(url, FAST)
    assert other_server.hits("/secret.xml") == []


def test_redirect_on_the_configured_origin_is_followed(feed_server: FeedServer) -> None:
    """Follow redirects that stay on the origin the operator configured, private or not."""
    final = feed_server.add("/2/feed.xml", RSS)
    start = feed_server.add("/feed.xml", status=308, location=final)
    assert fetch(start, FAST).url == final


def test_allow_private_lets_a_redirect_reach_a_private_address(
    feed_server: FeedServer, other_server: FeedServer
) -> None:
    """Follow a redirect to another private origin when DIGEST_FETCH_ALLOW_PRIVATE is on."""
    final = other_server.add("/feed.xml", RSS)
    url = feed_server.add("/feed.xml", status=302, location=final)
    response = fetch(url, OPEN)
    assert (response.url, response.data) == (final, RSS)


def test_ingest_stores_nothing_from_a_refused_redirect(
    tmp_path: Path, feed_server: FeedServer, other_server: FeedServer
) -> None:
    """Skip the source with the reason and store nothing; the setting opens the way."""
    final = other_server.add("/feed.xml", RSS)
    url = feed_server.add("/feed.xml", status=302, location=final)
    report = ingest(source_settings(tmp_path / "closed", url))
    assert report.new == 0
    (skipped,) = report.skipped
    assert skipped.where == url
    assert skipped.reason.startswith(f"redirect to {final} refused: 127.0.0.1 is a loopback")
    with Store(tmp_path / "closed" / "digest.db") as store:
        assert store.articles.count() == 0
    assert other_server.hits("/feed.xml") == []

    opened = source_settings(tmp_path / "open", url, DIGEST_FETCH_ALLOW_PRIVATE="true")
    assert ingest(opened).new == 4


def test_https_to_http_redirect_is_refused(
    trusted_ca: Certificates, other_server: FeedServer
) -> None:
    """Refuse a downgrade from https:// to plain http://, even to an allowed address."""
    plain = other_server.add("/feed.xml", RSS)
    with serving((str(trusted_ca.cert_file), str(trusted_ca.key_file))) as tls:
        fine = tls.add("/fine.xml", RSS)
        assert fetch(fine, FAST).data == RSS  # the CA is trusted: TLS itself works
        url = tls.add("/feed.xml", status=301, location=plain)
        with pytest.raises(FetchRefused, match=r"from https:// down to plain http://"):
            fetch(url, OPEN)
    assert other_server.hits("/feed.xml") == []


def test_password_in_a_redirect_is_refused_without_a_look_up(
    feed_server: FeedServer, dns: FakeDNS
) -> None:
    """Refuse user:password@ in a redirect before resolving it, and never show the password."""
    dns.answers["feeds.example.org"] = ["127.0.0.1"]
    url = feed_server.add(
        "/feed.xml", status=302, location="http://me:hunter2@feeds.example.org/feed.xml"
    )
    with pytest.raises(FetchRefused, match="user name or password") as caught:
        fetch(url, OPEN)
    assert "hunter2" not in str(caught.value) and "me:***@" in str(caught.value)
    assert dns.looked_up("feeds.example.org") == 0


def test_a_host_hidden_behind_userinfo_is_refused(feed_server: FeedServer, dns: FakeDNS) -> None:
    """Refuse http://allowed@elsewhere/, where the real host is after the @."""
    dns.answers["elsewhere.example"] = ["127.0.0.1"]
    location = f"http://127.0.0.1:{_port(feed_server)}@elsewhere.example/x.xml"
    url = feed_server.add("/feed.xml", status=302, location=location)
    with pytest.raises(FetchRefused, match="user name or password"):
        fetch(url, OPEN)
    assert dns.looked_up("elsewhere.example") == 0


def test_connects_to_the_address_that_was_checked(
    feed_server: FeedServer,
    other_server: FeedServer,
    dns: FakeDNS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Resolve once: a name that answers differently the second time is never asked again.

    For this test 127.0.0.1 counts as public and 127.0.0.2 (where nothing listens) as the
    internal address a rebinding server would switch to after the check.
    """
    real_refusal = refusal

    def only_127_0_0_1_is_public(
        address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    ) -> str | None:
        return None if str(address) == "127.0.0.1" else real_refusal(address)

    monkeypatch.setattr(fetch_module, "refusal", only_127_0_0_1_is_public)
    dns.answers["rebind.example"] = ["127.0.0.1", "127.0.0.2"]
    final = other_server.add("/feed.xml", RSS)
    target = f"http://rebind.example:{_port(other_server)}/feed.xml"
    url = feed_server.add("/feed.xml", status=302, location=target)
    response = fetch(url, FAST)
    assert (response.url, response.data) == (target, RSS)
    assert dns.looked_up("rebind.example") == 1
    (request,) = other_server.hits("/feed.xml")
    assert request.headers["host"] == f"rebind.example:{_port(other_server)}"
    assert final.endswith(request.path)

    # The same check refuses the address once the name answers with it.
    dns.answers["rebind2.example"] = ["127.0.0.2"]
    url = feed_server.add(
        "/again.xml", status=302, location=f"http://rebind2.example:{_port(other_server)}/x"
    )
    with pytest.raises(FetchRefused, match=r"resolves to 127\.0\.0\.2, a loopback address"):
        fetch(url, FAST)


def test_tls_verifies_the_host_name_while_connecting_to_the_address(
    dns: FakeDNS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Check the certificate against the URL's host name, not the address connected to.

    A certificate for feeds.test alone is accepted at 127.0.0.1; one for 127.0.0.1 alone,
    from a CA trusted as well, is not, because the URL says feeds.test.
    """
    (tmp_path / "name").mkdir()
    (tmp_path / "address").mkdir()
    by_name = make_certificates(tmp_path / "name", ("feeds.test",))
    by_address = make_certificates(tmp_path / "address", ("127.0.0.1",))
    bundle = tmp_path / "cas.pem"
    bundle.write_bytes(by_name.ca_file.read_bytes() + by_address.ca_file.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    dns.answers["feeds.test"] = ["127.0.0.1"]
    with serving((str(by_name.cert_file), str(by_name.key_file))) as tls:
        tls.add("/feed.xml", RSS)
        url = f"https://feeds.test:{_port(tls)}/feed.xml"
        assert fetch(url, FAST).data == RSS
        assert tls.hits("/feed.xml")[0].headers["host"] == f"feeds.test:{_port(tls)}"
    with serving((str(by_address.cert_file), str(by_address.key_file))) as tls:
        tls.add("/feed.xml", RSS)
        assert fetch(f"https://127.0.0.1:{_port(tls)}/feed.xml", FAST).data == RSS
        url = f"https://feeds.test:{_port(tls)}/feed.xml"
        with pytest.raises(FetchError, match="TLS certificate not trusted"):
            fetch(url, FAST)
    assert dns.looked_up("feeds.test") == 2


def test_fetch_untrusted_checks_the_first_url(
    feed_server: FeedServer, other_server: FeedServer
) -> None:
    """Check a URL from feed content from the start; its redirects are checked too."""
    page = feed_server.add("/article.html", b"<p>text</p>", content_type="text/html")
    with pytest.raises(FetchRefused, match=r": refused: 127\.0\.0\.1 is a loopback address"):
        fetch_untrusted(page, FAST)
    assert feed_server.hits("/article.html") == []
    assert fetch_untrusted(page, OPEN).data == b"<p>text</p>"

    # Same origin is no exception for content URLs: every hop is checked.
    moved = feed_server.add("/moved", status=302, location="/article.html")
    with pytest.raises(FetchRefused):
        fetch_untrusted(moved, FAST)
    assert feed_server.hits("/moved") == []


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("::ffff:192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("100.100.100.200", "shared"),
    ],
)
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    """Name each kind of address that is refused, IPv4-mapped IPv6 included."""
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None and why in reason


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    """Let public addresses through, IPv4-mapped ones too."""
    assert refusal(ipaddress.ip_address(address)) is None
