"""What a reader sees, in a real headless Chromium: the preview at phone and desktop width."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from browser import ARTIFACTS, chromium
from playwright.sync_api import Browser, Page, expect
from webserver import running

from digest import pipeline
from digest.config import Settings
from digest.web import App


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Share one browser across the tests of this file."""
    with chromium() as b:
        yield b


def horizontal_overflow(page: Page) -> int:
    """Return how many pixels the page is wider than its viewport."""
    return int(
        page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    )


def assert_fully_visible(page: Page, selector: str, text: str, width: int) -> None:
    """Check that the element matching selector and showing text lies within the width."""
    locator = page.locator(selector, has_text=text)
    assert locator.count() == 1, text
    assert locator.is_visible(), text
    box = locator.bounding_box()
    assert box is not None and box["width"] > 0 and box["height"] > 0, text
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (text, box)


@pytest.mark.parametrize("width", [375, 800])
def test_email_reads_at_phone_and_desktop_width(
    browser: Browser, settings: Settings, width: int
) -> None:
    """Show every title and highlight without horizontal scrolling at 375 and 800 px."""
    _, rendered = pipeline.next_edition(settings)
    assert rendered is not None
    with running(App(settings)) as site:
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{site}/preview/email.html")
        assert horizontal_overflow(page) == 0
        for item in rendered.edition.items:
            assert_fully_visible(page, "h2", item.article.title, width)
            for hl in item.highlights:
                assert_fully_visible(page, "li", hl.text, width)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"email-{width}.png"), full_page=True)
        page.close()


def test_preview_page_switches_width_and_fits_a_phone(browser: Browser, settings: Settings) -> None:
    """Switch the frame between phone and desktop width; fit the page itself on a phone."""
    with running(App(settings)) as site:
        page = browser.new_page(viewport={"width": 375, "height": 800})
        page.goto(f"{site}/preview")
        assert horizontal_overflow(page) == 0
        page.get_by_role("link", name="Phone (375 px)").click()
        page.wait_for_url("**/preview?width=375")
        frame_width = page.evaluate(
            "document.getElementById('email').getBoundingClientRect().width"
        )
        assert frame_width <= 375
        assert horizontal_overflow(page) == 0
        page.set_viewport_size({"width": 1280, "height": 900})
        page.get_by_role("link", name="Desktop (800 px)").click()
        page.wait_for_url("**/preview?width=800")
        assert (
            page.evaluate("document.getElementById('email').getBoundingClientRect().width") == 800
        )
        frame = page.frame_locator("#email")
        expect(frame.locator("h2", has_text="Ad sales boost Time Warner profit")).to_be_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "preview-desktop.png"))
        page.close()


def test_preview_reloads_when_a_source_changes(
    browser: Browser, settings: Settings, seeds_dir: pytest.TempPathFactory
) -> None:
    """Reload the open preview by itself when a new article arrives."""
    settings = replace(settings)
    with running(App(settings)) as site:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{site}/preview")
        assert "Hot off the press" not in page.content()
        (seeds_dir / "hot.txt").write_text(  # type: ignore[operator]
            "Hot off the press\n\nSomething new arrived. It matters.\n"
        )
        # The page polls a fingerprint and reloads itself; nothing here reloads it.
        expect(page.locator("pre")).to_contain_text("Hot off the press", timeout=15_000)
        page.close()
