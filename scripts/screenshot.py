"""Render the bundled seeds' edition and save screenshots of it for the README.

Run after the test setup (it needs Playwright and the system's Chromium):

    .venv/bin/python scripts/screenshot.py            # writes docs/digest-*.png

Nothing is recorded: the edition is rendered into a throw-away store, as `digest preview`
would, so the screenshots show exactly what a subscriber would receive.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The headless-browser helper is shared with the browser tests.
sys.path.insert(0, str(ROOT / "tests"))

from browser import chromium  # noqa: E402

from digest import pipeline  # noqa: E402
from digest.config import load_settings  # noqa: E402
from digest.render import generic_copy  # noqa: E402

WIDTHS = {"desktop": 800, "phone": 375}


def main() -> int:
    """Write one full-page screenshot per width into the output folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the PNGs")
    parser.add_argument("--sources", default=str(ROOT / "seeds"), help="DIGEST_SOURCES to render")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            environ={
                "DIGEST_SOURCES": args.sources,
                "DIGEST_DB": str(Path(tmp) / "digest.db"),
                "DIGEST_OUTBOX": str(Path(tmp) / "outbox"),
            }
        )
        _, rendered = pipeline.next_edition(settings, datetime.now(UTC))
        if rendered is None:
            sys.stderr.write(f"{args.sources}: no articles to render\n")
            return 1
        page_file = Path(tmp) / "email.html"
        page_file.write_text(generic_copy(rendered).html, encoding="utf-8")
        args.out.mkdir(parents=True, exist_ok=True)
        with chromium() as browser:
            for name, width in WIDTHS.items():
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(page_file.as_uri())
                target = args.out / f"digest-{name}.png"
                page.screenshot(path=str(target), full_page=True)
                page.close()
                sys.stdout.write(f"{_shown(target)}\n")
    return 0


def _shown(path: Path) -> Path:
    """Return path relative to the repository when it is inside it, else as given."""
    resolved = path.resolve()
    return resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else path


if __name__ == "__main__":
    raise SystemExit(main())
