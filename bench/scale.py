"""A run costs what its new work costs: many new articles at once, and a day over history.

Two families of figures, each a ratio measured in this same run, every digest run in a
subprocess of its own so that its peak RSS is its own:

- new articles in one run (500 RSS files of 20 distinct 300-600-word items at the full
  size): the CPU of a whole `digest run` (import, ingest, select, render, outbox) against
  the CPU of `feedparser.parse` alone on the same files, also in a subprocess; and the
  run's peak RSS in MB;
- a day of 200 new articles over a store that already holds N articles ingested the day
  before (half of them already past DIGEST_MAX_AGE, half still waiting): the day's CPU
  against the same day on an empty store, and its peak RSS.

By default 1,000 and 10,000 new, and 20,000 stored; 50,000 new and 100,000 stored take
minutes each and are asked for by name. Usage:
.venv/bin/python bench/scale.py [--quick] [--new 1000,10000,50000] [--stored 20000,100000]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import accumulate
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _figures import Figure

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
ITEMS_PER_FILE = 20
DAY_NEW = 200
MAX_AGE = timedelta(days=7)

NEW_SIZES = (1_000, 10_000, 50_000)
STORED_SIZES = (0, 20_000, 100_000)
# Measured by default; the larger sizes are asked for by name (--new, --stored).
DEFAULT_NEW = (1_000, 10_000)
DEFAULT_STORED = (0, 20_000)
QUICK_NEW = (40,)
QUICK_STORED = (0, 200)
QUICK_DAY_NEW = 40

RSS_TARGET = 300.0


def _vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    """Return pronounceable made-up words, so that texts share a language but no stories."""
    consonants, vowels = "bcdfghklmnprstvwz", "aeiou"
    words: set[str] = set()
    while len(words) < size:
        length = rng.randint(1, 4)
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(length)))
    return sorted(words)


class Writer:
    """Writes distinct articles as RSS files; every article is new, none a duplicate."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.vocab = _vocabulary(self.rng)
        # A Zipf-like draw: a few words common, most rare, as in prose.
        self.cumulative = list(accumulate(1.0 / (rank + 1) for rank in range(len(self.vocab))))
        self.serial = 0

    def _sentence(self) -> str:
        words = self.rng.choices(self.vocab, cum_weights=self.cumulative, k=self.rng.randint(8, 22))
        return " ".join(words).capitalize() + "."

    def _body(self) -> str:
        target = self.rng.randint(300, 600)
        paragraphs: list[str] = []
        count = 0
        while count < target:
            sentences = [self._sentence() for _ in range(self.rng.randint(2, 5))]
            count += sum(len(s.split()) for s in sentences)
            paragraphs.append(" ".join(sentences))
        return "".join(f"<p>{escape(p)}</p>" for p in paragraphs)

    def feed(self, path: Path, when: datetime) -> None:
        """Write one RSS 2.0 file of ITEMS_PER_FILE new items published around when."""
        entries = []
        for i in range(ITEMS_PER_FILE):
            self.serial += 1
            n = self.serial
            title = " ".join(
                self.rng.choices(self.vocab, cum_weights=self.cumulative, k=6)
            ).capitalize()
            published = format_datetime(when - timedelta(minutes=7 * i))
            entries.append(
                f"<item><title>{escape(title)} {n}</title>"
                f"<link>https://news{n % 97}.example.org/story/{n}</link>"
                f"<guid>https://news{n % 97}.example.org/story/{n}</guid>"
                f"<pubDate>{published}</pubDate><category>topic{n % 11}</category>"
                f"<description><![CDATA[{self._body()}]]></description></item>"
            )
        path.write_text(
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{path.stem}</title><link>https://{path.stem}.example.org/</link>"
            f"{''.join(entries)}</channel></rss>",
            encoding="utf-8",
        )

    def feeds(self, folder: Path, articles: int, when: datetime, prefix: str = "f") -> None:
        """Write enough files in folder for articles new items."""
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(max(1, articles // ITEMS_PER_FILE)):
            self.feed(folder / f"{prefix}{f:05d}.xml", when)


_CHILD_RUN = """
import json, logging, resource, sys, time
from datetime import datetime
start = time.process_time()
from digest import pipeline
from digest.config import load_settings
logging.disable(logging.WARNING)
settings = load_settings(None, json.loads(sys.argv[1]))
result = pipeline.run_edition(settings, datetime.fromisoformat(sys.argv[2]))
print(json.dumps({
    "cpu": time.process_time() - start,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "new": result.ingest.new,
    "items": len(result.edition.items) if result.edition else 0,
}))
"""

_CHILD_PARSE = """
import json, resource, sys, time
from pathlib import Path
start = time.process_time()
import feedparser
for path in sorted(Path(sys.argv[1]).rglob("*.xml")):
    feedparser.parse(path.read_bytes())
print(json.dumps({
    "cpu": time.process_time() - start,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def _child(code: str, *args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _env(root: Path, sources: Path) -> dict[str, str]:
    return {
        "DIGEST_SOURCES": str(sources),
        "DIGEST_DB": str(root / "digest.db"),
        "DIGEST_OUTBOX": str(root / "outbox"),
        "DIGEST_MAX_AGE": "7d",
    }


def run_digest(root: Path, sources: Path, now: datetime) -> dict[str, float]:
    """Run one `digest run` over sources in a subprocess; return its CPU and peak RSS."""
    return _child(_CHILD_RUN, json.dumps(_env(root, sources)), now.isoformat())


def new_articles(tmp: Path, count: int, writer: Writer) -> list[Figure]:
    """Measure one run reading count new articles, against feedparser on the same files."""
    root = tmp / f"new{count}"
    sources = root / "feeds"
    writer.feeds(sources, count, NOW - timedelta(hours=2))
    parse = _child(_CHILD_PARSE, str(sources))
    run = run_digest(root, sources, NOW)
    assert run["new"] == count, run
    shutil.rmtree(root)
    return [
        Figure(
            f"{count:,} new articles: CPU against feedparser alone",
            run["cpu"] / parse["cpu"],
            # The target is set at 10,000 new articles; a smaller run's fixed costs
            # (imports, rendering the edition) weigh more and have none.
            target=2.0 if count >= 10_000 else None,
        ),
        Figure(f"{count:,} new articles: peak RSS", run["rss_mb"], " MB", target=RSS_TARGET),
    ]


def day_over(tmp: Path, stored: int, writer: Writer, new: int = DAY_NEW) -> dict[str, float]:
    """Run a day of new articles over a store holding stored articles from yesterday."""
    root = tmp / f"day{stored}"
    sources = root / "feeds"
    yesterday = NOW - timedelta(days=1)
    if stored:
        # Half already past DIGEST_MAX_AGE, half still waiting, all ingested yesterday.
        writer.feeds(sources / "old", stored // 2, yesterday - MAX_AGE - timedelta(days=2), "o")
        writer.feeds(sources / "recent", stored - stored // 2, yesterday, "r")
        before = run_digest(root, sources, yesterday)
        assert before["new"] == stored, before
    writer.feeds(sources / "today", new, NOW - timedelta(hours=1), "t")
    run = run_digest(root, sources, NOW)
    assert run["new"] == new, run
    shutil.rmtree(root)
    return run


def measure(
    quick: bool = False,
    new_sizes: tuple[int, ...] | None = None,
    stored_sizes: tuple[int, ...] | None = None,
) -> list[Figure]:
    """Build the corpora, run digest over them and return the figures."""
    new_sizes = new_sizes or (QUICK_NEW if quick else DEFAULT_NEW)
    stored_sizes = stored_sizes or (QUICK_STORED if quick else DEFAULT_STORED)
    day_new = QUICK_DAY_NEW if quick else DAY_NEW
    figures: list[Figure] = []
    writer = Writer()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for count in new_sizes:
            figures += new_articles(tmp, count, writer)
        empty = day_over(tmp, 0, writer, day_new)
        for stored in stored_sizes:
            if stored == 0:
                continue
            run = day_over(tmp, stored, writer, day_new)
            figures.append(
                Figure(
                    f"{day_new} new over {stored:,} stored: CPU against an empty store",
                    run["cpu"] / empty["cpu"],
                    target=1.5,
                )
            )
            figures.append(
                Figure(
                    f"{day_new} new over {stored:,} stored: peak RSS",
                    run["rss_mb"],
                    " MB",
                    target=RSS_TARGET,
                )
            )
    return figures


def _sizes(text: str | None) -> tuple[int, ...] | None:
    return tuple(int(s.replace("_", "")) for s in text.split(",")) if text else None


def main() -> None:
    """Print every figure, one a line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it run at all")
    parser.add_argument("--new", help=f"new-article sizes, comma-separated (of {NEW_SIZES})")
    parser.add_argument("--stored", help=f"stored sizes for the day (of {STORED_SIZES})")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    started = time.monotonic()
    for figure in measure(args.quick, _sizes(args.new), _sizes(args.stored)):
        print(figure.line())
    print(f"(measured in {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
