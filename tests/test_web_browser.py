"""What a reader sees, in a real headless Chromium: the preview at phone and desktop width,
the site's pages on a phone in light and dark mode, the archive's navigation."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pytest
from browser import ARTIFACTS, chromium
from playwright.sync_api import Browser, Page, expect
from webserver import running

from digest import pipeline
from digest.brand import palette
from digest.config import Settings
from digest.web import App

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


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


def _rgb(color: str) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


@pytest.fixture
def site_settings(settings: Settings, seeds_dir: Path) -> Settings:
    """Return settings with a brand, a sign-up key and two editions made."""
    settings = replace(
        settings,
        secret_key="a-test-secret-that-is-long-enough-to-sign",
        brand_color="#fffbcc",
        tagline="The harbour's news, every morning",
        preview="on",
    )
    pipeline.run_edition(settings, NOW)
    (seeds_dir / "later.txt").write_text("Later story\n\nIt happened the next day. Indeed.\n")
    pipeline.run_edition(settings, NOW.replace(day=29))
    return settings


PAGES = (
    "/archive/",
    "/archive/2026-11-28/",
    "/subscribe",
    "/unsubscribe/",
    "/confirm/not-a-token",
    "/nowhere",
    "/preview",
)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_pages_fit_a_phone_in_light_and_dark_mode(
    browser: Browser, site_settings: Settings, scheme: Literal["light", "dark"]
) -> None:
    """Fit every page into 375 px and give it the colours of the reader's mode."""
    colours = palette(site_settings.brand_color)
    mode = colours.dark if scheme == "dark" else colours.light
    with running(App(site_settings)) as site:
        page = browser.new_page(viewport={"width": 375, "height": 800}, color_scheme=scheme)
        for path in PAGES:
            page.goto(site + path)
            assert horizontal_overflow(page) == 0, path
            style = "getComputedStyle(document.querySelector(%r)).%s"
            assert page.evaluate(style % ("body", "backgroundColor")) == _rgb(mode.background)
            assert page.evaluate(style % ("main a", "color")) == _rgb(mode.link), path
            assert page.evaluate(style % (".masthead", "backgroundColor")) == _rgb(colours.brand)
            assert page.evaluate(style % (".masthead a", "color")) == _rgb(colours.on_brand)
            expect(page.locator(".tagline")).to_have_text("The harbour's news, every morning")
            expect(page.locator("#subscribe-link")).to_be_visible()
        page.goto(f"{site}/archive/2026-11-28/")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"archive-edition-375-{scheme}.png"), full_page=True)
        # The first Tab shows the skip link, with a visible focus ring.
        page.keyboard.press("Tab")
        skip = page.locator(".skip")
        assert page.evaluate("document.activeElement.className") == "skip"
        box = skip.bounding_box()
        assert box is not None and box["y"] >= 0
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
        page.close()


def test_archive_navigation_between_two_editions(browser: Browser, site_settings: Settings) -> None:
    """Go from the archive to an edition, to the older and back to the newer one, and back
    to the archive, by the pages' own links."""
    with running(App(site_settings)) as site:
        page = browser.new_page(viewport={"width": 800, "height": 900})
        page.goto(f"{site}/archive/")
        page.get_by_role("link", name="Daily Digest: 29 Nov 2026").click()
        page.wait_for_url("**/archive/2026-11-29/")
        expect(page.locator("h1")).to_have_text("Daily Digest: 29 Nov 2026")
        expect(page.get_by_role("heading", name="Later story")).to_be_visible()
        nav = page.get_by_role("navigation", name="Older and newer editions")
        expect(nav.get_by_role("link", name="Newer edition")).to_have_count(0)
        nav.get_by_role("link", name="Older edition").click()
        page.wait_for_url("**/archive/2026-11-28/")
        expect(page.locator("h1")).to_have_text("Daily Digest: 28 Nov 2026")
        expect(nav.get_by_role("link", name="Older edition")).to_have_count(0)
        # "In this issue" leads to the item on the same page.
        page.get_by_role("navigation", name="In this issue").get_by_role(
            "link", name="Richard and Judy choose top books"
        ).click()
        assert "#item-" in page.url
        nav.get_by_role("link", name="Newer edition").click()
        page.wait_for_url("**/archive/2026-11-29/")
        page.get_by_role("link", name="All editions").first.click()
        page.wait_for_url("**/archive/")
        expect(page.locator("h1")).to_have_text("Past editions of Daily Digest")
        page.close()


def test_an_edition_page_is_served_after_the_outbox_was_deleted(
    browser: Browser, site_settings: Settings
) -> None:
    """Serve an edition's page from the store alone: the outbox folder is gone."""
    shutil.rmtree(site_settings.outbox)
    with running(App(site_settings)) as site:
        page = browser.new_page(viewport={"width": 375, "height": 800})
        response = page.goto(f"{site}/archive/2026-11-28/")
        assert response is not None and response.status == 200
        expect(page.locator("h1")).to_have_text("Daily Digest: 28 Nov 2026")
        expect(
            page.get_by_role("heading", name="Ad sales boost Time Warner profit")
        ).to_be_visible()
        expect(page.get_by_role("main")).to_contain_text("fourth quarter profits were slightly")
        assert horizontal_overflow(page) == 0
        page.close()
