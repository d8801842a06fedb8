"""axe-core's WCAG 2 A and AA rules on the email and on every web page, light and dark.

The pages come from the real web server (tests/_site.py); the email both as the preview
serves the seed edition and as a 20-item edition with every optional part; the sign-up
emails too. Dark mode is
the browser's prefers-color-scheme, as a reader's system sets it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _editions import edition
from _site import PAGES, site_pages
from axe import AxeMissing, axe_source, violations
from browser import chromium, chromium_path
from layout import themed
from offline import offline
from playwright.sync_api import Browser, Page

from digest.config import Settings
from digest.notices import SUBJECTS
from digest.render import generic_copy, public_links, render_edition, render_notice

SCHEMES = ("light", "dark")
# Known violations, by page and scheme: none since the email and the pages were
# reworked (issue 19). A strict xfail goes here when one is found and not yet fixed.
KNOWN: dict[tuple[str, str], pytest.MarkDecorator] = {}


def cases(names: tuple[str, ...]) -> list[object]:
    """Return (name, scheme) for every name and scheme, with its known violation marked."""
    return [
        pytest.param(name, scheme, marks=[KNOWN[name, scheme]] if (name, scheme) in KNOWN else [])
        for name in names
        for scheme in SCHEMES
    ]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Share one browser, with axe at hand, across the tests of this file."""
    try:
        chromium_path()
        axe_source()
    except (RuntimeError, AxeMissing) as err:
        pytest.skip(str(err))  # a failure under CI=true (strict_ci.py)
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Serve every page of the site once for the tests of this file."""
    with site_pages(tmp_path_factory.mktemp("site")) as urls:
        yield urls


def open_page(
    browser: Browser, scheme: str, *, url: str = "", html: str = "", width: int = 375
) -> Page:
    """Open url (failing unless it answers 200), or html, in scheme (light or dark)."""
    page = browser.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme)  # type: ignore[arg-type]
    offline(page)
    if url:
        response = page.goto(url, wait_until="load")
        assert response is not None and response.status == 200, url
    else:
        page.set_content(html, wait_until="load")
    dark = page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches")
    assert dark == (scheme == "dark")
    return page


@pytest.mark.parametrize(("name", "scheme"), cases(PAGES))
def test_no_violations_on_the_page(
    browser: Browser, pages: dict[str, str], name: str, scheme: str
) -> None:
    """Find no WCAG 2 A or AA violation on the page (its email frame included)."""
    page = open_page(browser, scheme, url=pages[name])
    try:
        found = violations(page)
    finally:
        page.close()
    assert not found, "\n".join(found)


def test_each_page_is_the_one_meant(browser: Browser, pages: dict[str, str]) -> None:
    """Show the states checked above: an edition, an open confirmation, a reader's page."""
    expected = {
        "edition": "Ad sales boost Time Warner profit",
        "confirm": "#confirm",
        "preferences": "grace@example.org",
        "unsubscribe": "#unsubscribe",
        "preview": "#email",
        "email": "Ad sales boost Time Warner profit",
    }
    for name, mark in expected.items():
        page = open_page(browser, "light", url=pages[name])
        try:
            if mark.startswith("#"):
                assert page.locator(mark).count() == 1, name
            else:
                assert mark in page.content(), name
        finally:
            page.close()


@pytest.fixture
def full_email(settings: Settings) -> str:
    """Return a 20-item edition with a logo, a postal address and "Also in" lines."""
    rendered = generic_copy(render_edition(themed(settings), edition(20)))
    return public_links(rendered.html, "https://news.example.org")


@pytest.mark.parametrize("width", [375, 800])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_violations_in_a_full_email(
    browser: Browser, full_email: str, scheme: str, width: int
) -> None:
    """Find no violation in an email with every optional part, at both widths."""
    page = open_page(browser, scheme, html=full_email, width=width)
    try:
        found = violations(page)
    finally:
        page.close()
    assert not found, "\n".join(found)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("kind", sorted(SUBJECTS))
def test_no_violations_in_the_signup_emails(
    browser: Browser, settings: Settings, kind: str, scheme: str
) -> None:
    """Find no violation in the confirmation, already-subscribed and welcome emails."""
    base = "https://news.example.org"
    html, _ = render_notice(
        settings,
        {
            "kind": kind,
            "name": "Ada Lovelace",
            "confirm_url": f"{base}/confirm/{'A' * 40}",
            "preferences_url": f"{base}/preferences/{'A' * 32}",
            "unsubscribe_url": f"{base}/unsubscribe/{'A' * 32}",
            "ttl_hours": 48,
            "latest_url": f"{base}/archive/2026-11-28/",
            "subject": SUBJECTS[kind].format(title=settings.title),
        },
    )
    page = open_page(browser, scheme, html=html)
    try:
        found = violations(page)
    finally:
        page.close()
    assert not found, "\n".join(found)


def test_the_check_reports_what_it_finds(browser: Browser) -> None:
    """Name the rule, its impact and the element, for an image without alt and faint text."""
    page = browser.new_page()
    try:
        page.set_content(
            '<html lang="en"><head><title>Bad</title></head><body><main>'
            '<img src="data:," id="picture"><p style="color:#bbb" id="faint">Faint</p>'
            "</main></body></html>"
        )
        found = violations(page)
    finally:
        page.close()
    assert any(line.startswith("image-alt [critical] at #picture:") for line in found), found
    assert any(line.startswith("color-contrast [serious] at #faint:") for line in found), found
