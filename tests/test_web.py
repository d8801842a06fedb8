"""The web face over real HTTP: preview, archive, feed, health and the headers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from feedserver import FeedServer
from webserver import running

from digest import pipeline, web
from digest.archive import write_archive
from digest.check import is_loopback
from digest.config import Settings
from digest.httpserver import FD_RESERVE, connection_limit
from digest.render import GREETING_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER
from digest.tokens import make_token
from digest.web import App, preview_enabled

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


@pytest.fixture
def site(settings: Settings) -> Iterator[str]:
    """Serve the app for settings on a real port."""
    with running(App(replace(settings, base_url="https://news.example.org"))) as url:
        yield url


def get(url: str, data: bytes | None = None) -> tuple[int, dict[str, str], str]:
    """Fetch url; return status, headers and body, for errors too."""
    request = urllib.request.Request(url, data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def test_health(site: str, settings: Settings) -> None:
    """Answer a load balancer with 200 and JSON, before the first run too."""
    status, headers, body = get(f"{site}/health")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ok", "editions": False}
    pipeline.run_edition(settings, NOW)
    assert json.loads(get(f"{site}/health")[2]) == {"status": "ok", "editions": True}


def test_pages_that_only_read_create_no_store(settings: Settings) -> None:
    """Serve the archive, its feed and unsubscribe pages before any store exists."""
    secret = "a-test-secret-that-is-long-enough-to-sign"
    with running(App(replace(settings, secret_key=secret))) as site:
        assert get(f"{site}/archive/")[0] == 200
        assert get(f"{site}/archive/feed.xml")[0] == 200
        assert get(f"{site}/archive/2026-11-28/")[0] == 404
        assert get(f"{site}/unsubscribe/")[0] == 200
        token = make_token(secret, settings.list_id, 1)
        assert get(f"{site}/unsubscribe/{token}")[0] == 404
    assert isinstance(settings.db, Path) and not settings.db.exists()


def test_security_headers_on_every_page(site: str) -> None:
    """Send a content security policy and nosniff with every answer, errors included."""
    for path in ("/health", "/archive/", "/nowhere", "/preview"):
        _, headers, _ = get(site + path)
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"


def test_preview_shows_the_next_edition_without_recording_it(site: str, settings: Settings) -> None:
    """Show the next edition and its text part, and leave it for the real run."""
    status, _, page = get(f"{site}/preview?width=375")
    assert status == 200
    assert 'src="/preview/email.html?v=' in page
    assert UNSUBSCRIBE_PLACEHOLDER not in page and GREETING_PLACEHOLDER not in page
    assert "Hello," in page  # the text part greets nobody by name
    assert "width: 375px" in page
    assert "Richard and Judy choose top books" in page  # the text part beside the frame
    status, _, email = get(f"{site}/preview/email.html")
    assert status == 200
    assert "Iran and Armenia Strengthen Ties" in email
    assert UNSUBSCRIBE_PLACEHOLDER not in email and GREETING_PLACEHOLDER not in email
    assert '<td class="greeting"' in email and "Hello," in email
    status, _, text = get(f"{site}/preview/text.txt")
    assert status == 200 and "\nHello,\n" in text
    assert GREETING_PLACEHOLDER not in text and UNSUBSCRIBE_PLACEHOLDER not in text
    result = pipeline.run_edition(settings, NOW)
    assert result.edition is not None and len(result.edition.items) == 10


def test_preview_version_changes_with_a_template_or_source(
    settings: Settings, seeds_dir: Path, tmp_path: Path
) -> None:
    """Change the preview's fingerprint when a source or a user template changes."""
    templates = tmp_path / "tpl"
    templates.mkdir()
    app = App(replace(settings, templates_dir=templates))
    with running(app) as site:
        first = get(f"{site}/preview/version")[2]
        assert get(f"{site}/preview/version")[2] == first
        (seeds_dir / "new.txt").write_text("Breaking\n\nA new thing happened. Then more.\n")
        second = get(f"{site}/preview/version")[2]
        assert second != first
        assert "Breaking" in get(f"{site}/preview/email.html")[2]
        (templates / "_footer.html.j2").write_text("<tr><td>Custom footer</td></tr>\n")
        assert get(f"{site}/preview/version")[2] != second
        assert "Custom footer" in get(f"{site}/preview/email.html")[2]


def test_archive_lists_editions_newest_first_with_a_feed(
    settings: Settings, seeds_dir: Path
) -> None:
    """List past editions newest first, each on its own page, and in an Atom feed."""
    pipeline.run_edition(settings, NOW)
    (seeds_dir / "later.txt").write_text("Later story\n\nIt happened the next day. Indeed.\n")
    pipeline.run_edition(settings, NOW.replace(day=29))
    with running(App(replace(settings, base_url="https://news.example.org"))) as site:
        status, _, index = get(f"{site}/archive/")
        assert status == 200
        assert index.index('href="2026-11-29/"') < index.index('href="2026-11-28/"')
        status, _, page = get(f"{site}/archive/2026-11-29/")
        assert status == 200 and "Later story" in page
        assert UNSUBSCRIBE_PLACEHOLDER not in page and GREETING_PLACEHOLDER not in page
        assert "https://news.example.org/unsubscribe/" in page
        assert 'href="../2026-11-28/" rel="prev"' in page and 'href="../"' in page
        status, headers, feed = get(f"{site}/archive/feed.xml")
        assert status == 200 and headers["Content-Type"].startswith("application/atom+xml")
        assert "%%" not in feed
        root = ET.fromstring(feed)
        ns = {"a": "http://www.w3.org/2005/Atom"}
        links = [e.find("a:link", ns).get("href") for e in root.findall("a:entry", ns)]  # type: ignore[union-attr]
        assert links == [
            "https://news.example.org/archive/2026-11-29/",
            "https://news.example.org/archive/2026-11-28/",
        ]
        for bad in ("2026-13-99x", "../../etc/passwd", "2026-11-30"):
            assert get(f"{site}/archive/{bad}/")[0] == 404
        assert get(f"{site}/")[0] == 200  # redirected to the archive


def test_static_archive(settings: Settings, tmp_path: Path) -> None:
    """Write the same archive as static files."""
    pipeline.run_edition(settings, NOW)
    written = write_archive(settings, tmp_path / "public")
    names = sorted(str(p.relative_to(tmp_path / "public")) for p in written)
    assert names == ["2026-11-28/index.html", "feed.xml", "index.html"]
    for path in written:
        assert "%%" not in path.read_text(), path
    assert (
        "Ad sales boost Time Warner profit"
        in (tmp_path / "public/2026-11-28/index.html").read_text()
    )


def test_methods_and_body_cap(site: str) -> None:
    """Refuse other methods on pages, and bodies larger than a form of ours."""
    assert get(f"{site}/archive/", data=b"x=1")[0] == 405
    assert get(f"{site}/unsubscribe/abc", data=b"x" * 100_000)[0] in (400, 413)


PREVIEW_PATHS = ("/preview", "/preview/email.html", "/preview/text.txt", "/preview/version")


@pytest.mark.parametrize(
    ("preview", "host", "served"),
    [
        ("auto", "0.0.0.0", False),
        ("auto", "::", False),
        ("auto", "203.0.113.7", False),
        ("auto", "news.example.org", False),
        ("off", "127.0.0.1", False),
        ("on", "0.0.0.0", True),
    ],
)
def test_preview_kept_off_a_public_server(
    settings: Settings, preview: str, host: str, served: bool
) -> None:
    """Serve /preview on a loopback host (auto) or when on; else 404 saying how to turn it on."""
    with running(App(replace(settings, preview=preview, host=host))) as site:
        for path in PREVIEW_PATHS:
            status, headers, body = get(site + path)
            if served:
                assert status == 200, path
            else:
                assert status == 404, path
                assert "preview is off" in body and "DIGEST_PREVIEW=on" in body
                assert "default-src 'none'" in headers["Content-Security-Policy"]
        # The public pages are the same either way.
        assert get(f"{site}/health")[0] == 200
        assert get(f"{site}/archive/")[0] == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("192.168.1.10", False),
        ("localhost.example.org", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    """Tell loopback addresses from the wildcard and everything else."""
    assert is_loopback(host) is loopback
    assert preview_enabled(Settings(host=host)) is loopback


def test_serve_decides_the_preview_by_the_address_it_listens_on(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Turn the preview off when --host overrides a loopback DIGEST_HOST with 0.0.0.0."""
    made: list[App] = []

    class Server:
        def run(self) -> None:
            pass

    def fake(app: App, host: str, port: int, **options: object) -> Server:
        made.append(app)
        return Server()

    monkeypatch.setattr(web, "make_server", fake)
    monkeypatch.setattr(web, "raise_fd_limit", lambda: None)
    web.serve(settings, "0.0.0.0", 8081)
    web.serve(settings, "127.0.0.1", 8081)
    assert [a.preview_on for a in made] == [False, True]
    assert made[0].settings.host == "0.0.0.0" and made[0].settings.port == 8081


def test_connection_limit_fits_the_file_descriptors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Allow 1000 connections, or what the open-file limit leaves after a reserve."""
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _: (20_000, 20_000))
    assert connection_limit() == 1000
    monkeypatch.setattr(resource, "getrlimit", lambda _: (256, 4096))
    assert connection_limit() == 256 - FD_RESERVE
    monkeypatch.setattr(resource, "getrlimit", lambda _: (resource.RLIM_INFINITY,) * 2)
    assert connection_limit() == 1000


@pytest.mark.parametrize("case", ["in use", "out of range"])
def test_serve_on_a_bad_port_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    """Say in one line that the port is in use or out of range; never "Serving on"."""
    import os
    import socket
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "SMTP_"))}
    env |= {"DIGEST_SECRET_KEY": "s" * 8 + "-a-test-secret", "DIGEST_DB": str(tmp_path / "d.db")}
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1] if case == "in use" else 99999
        done = subprocess.run(
            [sys.executable, "-m", "digest", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Serving on" not in done.stdout
    (line,) = done.stderr.splitlines()
    expected = "already in use" if case == "in use" else "must be 1 to 65535"
    assert line.startswith("error: ") and str(port) in line and expected in line


def _rss(*titles: str) -> str:
    items = "".join(
        f"<item><title>{t}</title><link>https://news.digest-check.net/{n}</link>"
        f"<description>{t}: the council met on Friday and agreed on the plan.</description>"
        "<pubDate>Sat, 28 Nov 2026 06:00:00 GMT</pubDate></item>"
        for n, t in enumerate(titles)
    )
    head = '<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>'
    return f"{head}{items}</channel></rss>"


def test_preview_records_nothing_and_notices_new_items_in_url_feeds(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """Read the feeds into a throw-away copy, leaving the store as it was, and change the
    fingerprint when a URL feed gains an item."""
    from digest.config import load_settings
    from digest.store import Store, store_exists

    url = feed_server.add("/feed.xml", _rss("Council agrees on the bridge plan"))
    settings = load_settings(
        None,
        {
            "DIGEST_SOURCES": url,
            "DIGEST_DB": str(tmp_path / "digest.db"),
            "DIGEST_OUTBOX": str(tmp_path / "outbox"),
        },
    )
    app = App(settings)
    app.feeds.interval = 0.0
    with running(app) as site:

        def settled() -> str:
            # The feeds are checked in a thread: wait for the fingerprint to hold still.
            last = get(f"{site}/preview/version")[2]
            for _ in range(100):
                time.sleep(0.2)
                now = get(f"{site}/preview/version")[2]
                if now == last:
                    return now
                last = now
            raise AssertionError("the preview's version never settled")

        first = settled()
        assert "Council agrees on the bridge plan" in get(f"{site}/preview/email.html")[2]
        assert not store_exists(settings.db)
        pipeline.run_edition(settings, NOW)
        with Store(settings.db, readonly=True) as store:
            before = len(store.articles.eligible_with_first_seen())
        feed_server.add("/feed.xml", _rss("Council agrees on the bridge plan", "Storm closes port"))
        second = settled()
        assert second != first
        assert "Storm closes port" in get(f"{site}/preview/email.html")[2]
    with Store(settings.db, readonly=True) as store:
        assert len(store.articles.eligible_with_first_seen()) == before
