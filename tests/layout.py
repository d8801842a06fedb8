"""The email as a phone shows it: the fixed editions the layout is measured on, and the
measures (height, sideways overflow) in a real Chromium.

The phone edition is tests/_editions.py's edition(10) (ten items in two sections, each
with a lead image, two with "Also in"), rendered with the default settings; every image
is answered with a 1200 x 630 PNG (tests/offline.py), so that the height is the one a
reader sees once the pictures have loaded, with nothing fetched from the network.

Run as a script, it prints the phone edition's height with the current templates: that
is how tests/data/phone_height_baseline.json was measured, before the layout changed.

    .venv/bin/python tests/layout.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, Page

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _editions import edition
from browser import chromium
from offline import offline

from digest.config import Settings, load_settings
from digest.render import generic_copy, public_links, render_edition

PHONE_WIDTH = 375
PHONE_ITEMS = 10
BASELINE = Path(__file__).resolve().parent / "data" / "phone_height_baseline.json"


def themed(settings: Settings) -> Settings:
    """Return settings with every optional part of the email switched on."""
    return load_settings(
        None,
        {
            "DIGEST_SOURCES": ",".join(settings.sources),
            "DIGEST_DB": str(settings.db),
            "DIGEST_OUTBOX": str(settings.outbox),
            "DIGEST_LOGO_URL": "https://example.org/logo.png",
            "DIGEST_POSTAL_ADDRESS": "Example Media Ltd, 1 Main Street, 12345 Springfield",
        },
    )


def plain_settings(folder: Path) -> Settings:
    """Return the default settings, with every path inside folder."""
    return load_settings(
        None,
        {
            "DIGEST_SOURCES": str(folder / "sources"),
            "DIGEST_DB": str(folder / "digest.db"),
            "DIGEST_OUTBOX": str(folder / "outbox"),
        },
    )


def email_html(settings: Settings, items: int) -> str:
    """Return the inlined HTML of edition(items) as a reader without a name gets it."""
    rendered = generic_copy(render_edition(settings, edition(items)))
    return public_links(rendered.html, "https://news.example.org")


def open_email(browser: Browser, html: str, width: int, color_scheme: str = "light") -> Page:
    """Open html in a new page width px wide, its images loaded; the caller closes it."""
    page = browser.new_page(
        viewport={"width": width, "height": 800},
        color_scheme=color_scheme,  # type: ignore[arg-type]
    )
    offline(page)
    page.set_content(html, wait_until="load")
    broken = page.evaluate(
        "Array.from(document.images).filter(i => !i.complete || !i.naturalWidth).length"
    )
    assert broken == 0, f"{broken} images did not load"
    return page


def page_height(page: Page) -> int:
    """Return the height of the whole document in CSS pixels."""
    return int(page.evaluate("document.documentElement.scrollHeight"))


def horizontal_overflow(page: Page) -> int:
    """Return how many pixels the page is wider than its viewport."""
    return int(
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )


def phone_height(browser: Browser, settings: Settings) -> int:
    """Return the height of the ten-item phone edition at PHONE_WIDTH px."""
    page = open_email(browser, email_html(settings, PHONE_ITEMS), PHONE_WIDTH)
    try:
        return page_height(page)
    finally:
        page.close()


def main() -> int:
    """Print the phone edition's height with the current templates, as JSON."""
    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        height = phone_height(browser, plain_settings(Path(tmp)))
        sys.stdout.write(
            json.dumps({"width_px": PHONE_WIDTH, "items": PHONE_ITEMS, "height_px": height}) + "\n"
        )
        sys.stdout.write(f"browser: Chromium {browser.version}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
