"""The note and the item shapes in a real headless Chromium: they fit a phone, and the
dark palette reaches them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser import ARTIFACTS, chromium
from playwright.sync_api import Browser
from test_item_shapes import shaped_edition

from digest.config import Settings
from digest.render import render_edition


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Share one browser across the tests of this file."""
    with chromium() as b:
        yield b


@pytest.mark.parametrize("width", [375, 800])
def test_the_shapes_fit_without_sideways_scrolling(
    browser: Browser, settings: Settings, width: int
) -> None:
    """Show the note, compact rows and update marks within the width, nothing scrolling."""
    rendered = render_edition(settings, shaped_edition())
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_content(rendered.html)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow == 0
    boxes = [page.locator(".note").bounding_box()]
    boxes += [row.bounding_box() for row in page.locator(".item-compact").all()]
    boxes += [mark.bounding_box() for mark in page.locator(".item-update").all()]
    assert len(boxes) == 1 + 3 + 2
    for box in boxes:
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5
    # A compact row is a row: far lower than a usual item.
    compact = page.locator(".item-compact").first.bounding_box()
    usual = page.locator("td.item:not(.item-compact)").first.bounding_box()
    assert compact is not None and usual is not None and compact["height"] < usual["height"] / 3
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"shapes-{width}.png"), full_page=True)
    page.close()


def test_the_dark_palette_reaches_the_note_and_the_rows(
    browser: Browser, settings: Settings
) -> None:
    """Give the note's text and the compact titles light colours in dark mode."""
    rendered = render_edition(settings, shaped_edition())
    page = browser.new_page(viewport={"width": 800, "height": 900}, color_scheme="dark")
    page.set_content(rendered.html)

    def color(selector: str) -> str:
        return str(page.locator(selector).first.evaluate("e => getComputedStyle(e).color"))

    assert color(".note-body p") == "rgb(249, 250, 251)"
    assert color(".item-compact-title a") == "rgb(249, 250, 251)"
    assert color(".item-compact-meta") == "rgb(156, 163, 175)"
    assert color(".updated-badge") == "rgb(251, 191, 36)"
    page.close()
