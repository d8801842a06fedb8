"""Ingest throughput: Markdown articles and RSS feeds from disk, as ratios to a baseline.

Prints articles per second, then two ratios measured in this same run:
- feeds: our whole ingest (parse, sanitise, store) over `feedparser.parse` alone on the
  same files; the parse is the floor (target <= 1.5);
- unchanged: a second ingest of files that did not change over the first (target <= 0.1).

Usage: .venv/bin/python bench/ingest.py [--articles 10000] [--feeds 200] [--items 50]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import best_of, ratio

from digest import pipeline
from digest.config import Settings, load_settings
from digest.models import IngestReport
from digest.store import Store

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


def main() -> None:
    """Build the sample sources, time the passes and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_markdown(root / "md", args.articles)
        feed_paths = write_feeds(root / "feeds", args.feeds, args.items)
        total_items = args.feeds * args.items

        # Old mtimes, so an unchanged file is trusted on its size and mtime alone, as it
        # is in real use when files were written before the previous run.
        for path in [*(root / "md").iterdir(), *feed_paths]:
            os.utime(path, (1_700_000_000, 1_700_000_000))

        md = settings_for(root, root / "md", "md.db")
        md_first, report = best_of(lambda: run_ingest(md, NOW), repeat=1)
        assert report.new == args.articles, report
        md_second, report = best_of(lambda: run_ingest(md, NOW + timedelta(hours=1)), repeat=3)
        assert report.unchanged == args.articles and report.new == 0, report

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

    print(
        f"Markdown: {args.articles} articles, first ingest {md_first:.2f} s "
        f"({args.articles / md_first:,.0f} articles/s)"
    )
    print(
        f"Feeds: {args.feeds} x {args.items} items, first ingest {feeds_first:.2f} s "
        f"({total_items / feeds_first:,.0f} articles/s); feedparser.parse alone {parse_only:.2f} s"
    )
    print(
        f"ratio feeds ingest / feedparser.parse alone: {ratio(feeds_first, parse_only)} "
        "(target <= 1.5)"
    )
    print(
        f"ratio unchanged second ingest / first, Markdown: {ratio(md_second, md_first)}; "
        f"feeds: {ratio(feeds_second, feeds_first)} (target <= 0.1)"
    )


if __name__ == "__main__":
    main()
