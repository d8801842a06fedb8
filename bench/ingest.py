"""Ingest throughput: Markdown articles and RSS feeds from disk, as ratios to a baseline.

Gives articles per second, then two ratios measured in this same run:
- feeds: our whole ingest (parse, sanitise, store) over `feedparser.parse` alone on the
  same files; the parse is the floor (target <= 1.5);
- unchanged: a second ingest of files that did not change over the first (target <= 0.1);
- URL feeds: 200 feeds served over HTTP on loopback with 50 ms latency per request, read
  one at a time over read at the default concurrency, one request at a time per host
  (25 hosts 127.0.0.1 to 127.0.0.25, 8 feeds each; target >= 5).

Usage: .venv/bin/python bench/ingest.py [--quick] [--articles 10000] [--feeds 200] [--items 50]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import feedparser

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _figures import Figure
from _timing import best_of

from digest import pipeline
from digest.config import Settings, load_settings
from digest.models import IngestReport
from digest.sources import read_sources
from digest.sources.fetch import FetchOptions
from digest.store import Store

# The URL feeds: how many, on how many loopback hosts, and each answer's latency.
URL_FEEDS = 200
URL_HOSTS = 25
LATENCY = 0.05

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
WORDS = [
    "harbour",
    "council",
    "market",
    "bridge",
    "library",
    "ferry",
    "festival",
    "weather",
    "school",
    "road",
    "budget",
    "museum",
    "garden",
    "station",
    "river",
    "concert",
    "hospital",
    "election",
    "football",
    "theatre",
]


def _sentence(n: int, length: int = 14) -> str:
    words = [WORDS[(n * 7 + i * 3) % len(WORDS)] for i in range(length)]
    return " ".join(words).capitalize() + "."


def write_markdown(folder: Path, count: int) -> None:
    """Write count Markdown articles with front matter."""
    folder.mkdir(parents=True)
    for n in range(count):
        body = "\n\n".join(" ".join(_sentence(n + p + s) for s in range(3)) for p in range(4))
        (folder / f"{n:05d}.md").write_text(
            f"---\ntitle: Article {n} on the {WORDS[n % len(WORDS)]}\n"
            f"date: 2026-11-{1 + n % 27:02d}T08:00:00Z\n"
            f"url: https://news.example.org/{n}\nauthor: Desk {n % 9}\n"
            f"tags: [{WORDS[n % 5]}, {WORDS[n % 7]}]\n---\n{body}\n",
            encoding="utf-8",
        )


def write_feeds(folder: Path, feeds: int, items: int) -> list[Path]:
    """Write feeds RSS 2.0 files of items entries each, with HTML descriptions."""
    folder.mkdir(parents=True)
    paths = []
    for f in range(feeds):
        entries = []
        for i in range(items):
            n = f * items + i
            html = "".join(
                f"<p>{_sentence(n + p)} <b>{_sentence(n + p + 1, 5)}</b></p>" for p in range(4)
            )
            entries.append(
                f"<item><title>Feed {f} item {i}: {WORDS[n % len(WORDS)]}</title>"
                f"<link>https://feed{f}.example.org/{i}</link>"
                f"<guid>https://feed{f}.example.org/{i}</guid>"
                f"<pubDate>Fri, {1 + i % 27:02d} Nov 2026 08:00:00 GMT</pubDate>"
                f"<category>{WORDS[i % 5]}</category>"
                f'<description><![CDATA[{html}<img src="/img/{i}.jpg">]]></description></item>'
            )
        path = folder / f"feed{f:03d}.xml"
        path.write_text(
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Feed {f}</title><link>https://feed{f}.example.org/</link>"
            f"{''.join(entries)}</channel></rss>",
            encoding="utf-8",
        )
        paths.append(path)
    return paths


def settings_for(root: Path, source: Path, db: str) -> Settings:
    """Return settings reading source into a database under root."""
    return load_settings(
        None,
        {
            "DIGEST_SOURCES": str(source),
            "DIGEST_DB": str(root / db),
            "DIGEST_OUTBOX": str(root / "outbox"),
        },
    )


def run_ingest(settings: Settings, now: datetime) -> IngestReport:
    """One ingest pass."""
    with Store(settings.db) as store:
        return pipeline.ingest(settings, store, now)


@contextmanager
def feed_hosts(hosts: int, body: bytes, latency: float) -> Iterator[list[str]]:
    """Serve body at every path from hosts loopback addresses, each answer latency late;
    yield each host's base URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(latency)
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    servers = [ThreadingHTTPServer((f"127.0.0.{n + 1}", 0), Handler) for n in range(hosts)]
    threads = []
    for httpd in servers:
        httpd.daemon_threads = True
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield [f"http://127.0.0.{n + 1}:{h.server_address[1]}" for n, h in enumerate(servers)]
    finally:
        for httpd, thread in zip(servers, threads, strict=True):
            httpd.shutdown()
            httpd.server_close()
            thread.join(5)


def url_feeds(body: bytes, feeds: int, hosts: int) -> tuple[float, float]:
    """Return the seconds to read feeds URL feeds (each body) one at a time, and at the
    default concurrency (one request at a time per host)."""
    with feed_hosts(hosts, body, LATENCY) as bases:
        urls = [f"{bases[n % hosts]}/feed{n}.xml" for n in range(feeds)]

        def read(concurrency: int) -> None:
            options = FetchOptions(timeout=10.0, concurrency=concurrency, per_host=1)
            results = list(read_sources(urls, options=options))
            assert all(r.error is None and len(r.articles) == 5 for r in results), results[0]

        serial, _ = best_of(lambda: read(1), repeat=1)
        pooled, _ = best_of(lambda: read(FetchOptions().concurrency), repeat=3)
    return serial, pooled


def measure(
    quick: bool = False,
    articles: int | None = None,
    feeds: int | None = None,
    items: int | None = None,
) -> list[Figure]:
    """One run: build the sample sources, time the passes, return the figures."""
    articles = articles or (200 if quick else 10_000)
    feeds = feeds or (4 if quick else 200)
    items = items or (10 if quick else 50)
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_markdown(root / "md", articles)
        feed_paths = write_feeds(root / "feeds", feeds, items)
        total_items = feeds * items

        # Old mtimes, so an unchanged file is trusted on its size and mtime alone, as it
        # is in real use when files were written before the previous run.
        for path in [*(root / "md").iterdir(), *feed_paths]:
            os.utime(path, (1_700_000_000, 1_700_000_000))

        md = settings_for(root, root / "md", "md.db")
        md_first, report = best_of(lambda: run_ingest(md, NOW), repeat=1)
        assert report.new == articles, report
        md_second, report = best_of(lambda: run_ingest(md, NOW + timedelta(hours=1)), repeat=3)
        assert report.unchanged == articles and report.new == 0, report

        datas = [p.read_bytes() for p in feed_paths]
        parse_only, _ = best_of(lambda: [feedparser.parse(d) for d in datas], repeat=3)
        fresh = iter(range(1000))

        def first_feed_pass() -> IngestReport:
            # Each repeat starts from an empty store: this is the first ingest each time.
            settings = settings_for(root, root / "feeds", f"feeds{next(fresh)}.db")
            return run_ingest(settings, NOW)

        feeds_first, report = best_of(first_feed_pass, repeat=3)
        assert report.new == total_items, report
        feeds_db = settings_for(root, root / "feeds", "feeds0.db")
        feeds_second, report = best_of(
            lambda: run_ingest(feeds_db, NOW + timedelta(hours=1)), repeat=3
        )
        assert report.unchanged == total_items and report.new == 0, report
        (small,) = write_feeds(root / "url", 1, 5)
        serial, pooled = url_feeds(
            small.read_bytes(), 20 if quick else URL_FEEDS, 5 if quick else URL_HOSTS
        )
    logging.disable(logging.NOTSET)
    per_second = " articles/s"
    return [
        Figure(
            f"Markdown first ingest, {articles:,} articles",
            articles / md_first,
            per_second,
            better="higher",
        ),
        Figure(
            f"RSS first ingest, {feeds} feeds x {items} items",
            total_items / feeds_first,
            per_second,
            better="higher",
        ),
        Figure(
            "feeds: whole ingest / feedparser.parse alone", feeds_first / parse_only, target=1.5
        ),
        Figure("unchanged second ingest / first, Markdown", md_second / md_first, target=0.1),
        Figure("unchanged second ingest / first, feeds", feeds_second / feeds_first, target=0.1),
        Figure(
            f"URL feeds ({20 if quick else URL_FEEDS}, {LATENCY * 1000:.0f} ms latency):"
            " one at a time / concurrent",
            serial / pooled,
            target=5.0,
            better="higher",
        ),
    ]


def main() -> None:
    """Print the figures of one run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check it runs")
    parser.add_argument("--articles", type=int)
    parser.add_argument("--feeds", type=int)
    parser.add_argument("--items", type=int)
    args = parser.parse_args()
    for figure in measure(args.quick, args.articles, args.feeds, args.items):
        print(figure.line())


if __name__ == "__main__":
    main()
