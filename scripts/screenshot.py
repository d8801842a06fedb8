"""Render the bundled seeds' edition and save the README's screenshots of it.

Run after the test setup (it needs Playwright and the system's Chromium):

    .venv/bin/python scripts/screenshot.py            # writes docs/screenshots/*.png

The email at 375 and 800 px, in light and dark mode, and the archive's pages, as headless
Chromium shows them. The input is fixed: the seeds, dated and rendered at the README's
clock (28 November 2026, 07:30 UTC), in a throw-away store, with every request off this
machine answered locally (tests/offline.py); so the same templates give the same
pictures, and nothing is recorded. Run it again after changing a template.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Browser

ROOT = Path(__file__).resolve().parent.parent
# The headless-browser helpers and the test web server are shared with the browser tests.
sys.path.insert(0, str(ROOT / "tests"))

from browser import chromium  # noqa: E402
from offline import offline  # noqa: E402
from webserver import running  # noqa: E402

from digest import pipeline  # noqa: E402
from digest.config import Settings, load_settings  # noqa: E402
from digest.web import App  # noqa: E402

NOW = datetime(2026, 11, 28, 7, 30, tzinfo=UTC)
FOLDER = "docs/screenshots"


@dataclass(frozen=True)
class Shot:
    """One screenshot: which page, at what size, in which colour scheme."""

    file: str
    page: str  # a path on the server; /preview/email.html is the email a reader gets
    width: int
    height: int
    scheme: str


# The first screen of each, as a reader opens it: a phone's and a desktop window's.
SHOTS = (
    Shot("email-375-light.png", "/preview/email.html", 375, 812, "light"),
    Shot("email-375-dark.png", "/preview/email.html", 375, 812, "dark"),
    Shot("email-800-light.png", "/preview/email.html", 800, 1000, "light"),
    Shot("email-800-dark.png", "/preview/email.html", 800, 1000, "dark"),
    Shot("edition-page-light.png", f"/archive/{NOW:%Y-%m-%d}/", 1024, 900, "light"),
    Shot("edition-page-dark.png", f"/archive/{NOW:%Y-%m-%d}/", 1024, 900, "dark"),
    Shot("archive-375-light.png", "/archive/", 375, 812, "light"),
)


def _settings(folder: Path, sources: Path) -> Settings:
    return load_settings(
        None,
        {
            "DIGEST_SOURCES": str(sources),
            "DIGEST_DB": str(folder / "digest.db"),
            "DIGEST_OUTBOX": str(folder / "outbox"),
            "DIGEST_PREVIEW": "on",
        },
    )


@contextmanager
def _sites(folder: Path, sources: Path) -> Iterator[tuple[str, str]]:
    """Serve the seeds twice: a store with the edition in its archive, and an empty one
    whose preview shows the same edition as the next one. Yield both base URLs."""
    seeds = folder / "seeds"
    shutil.copytree(sources, seeds)
    for path in seeds.iterdir():
        os.utime(path, (NOW.timestamp(), NOW.timestamp()))
    archived = _settings(folder / "archived", seeds)
    if pipeline.run_edition(archived, NOW).edition is None:
        raise SystemExit(f"{sources}: no articles to render")
    with (
        running(App(archived, clock=lambda: NOW)) as archive,
        running(App(_settings(folder / "fresh", seeds), clock=lambda: NOW)) as preview,
    ):
        yield archive, preview


def make(out: Path, browser: Browser, sources: Path = ROOT / "seeds") -> list[Path]:
    """Write every screenshot of SHOTS into out; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp, _sites(Path(tmp), sources) as (archive, preview):
        for shot in SHOTS:
            base = preview if shot.page.startswith("/preview") else archive
            page = browser.new_page(
                viewport={"width": shot.width, "height": shot.height},
                color_scheme=shot.scheme,  # type: ignore[arg-type]
            )
            offline(page)
            response = page.goto(base + shot.page, wait_until="load")
            if response is None or response.status != 200:
                raise SystemExit(f"{shot.page}: answered {response and response.status}")
            target = out / shot.file
            page.screenshot(path=str(target))
            page.close()
            written.append(target)
    return written


def main() -> int:
    """Write the screenshots and list them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / FOLDER, help="folder for the PNGs")
    parser.add_argument("--sources", type=Path, default=ROOT / "seeds", help="folder to render")
    args = parser.parse_args()
    with chromium() as browser:
        for path in make(args.out, browser, args.sources):
            sys.stdout.write(f"{_shown(path)}\n")
    return 0


def _shown(path: Path) -> Path:
    """Return path relative to the repository when it is inside it, else as given."""
    resolved = path.resolve()
    return resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else path


if __name__ == "__main__":
    raise SystemExit(main())
