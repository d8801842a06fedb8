"""The layout as a reader's screen shows it, in a real Chromium: nothing wider than a
phone, a phone edition of ten items under half the height it had, a 20-item edition
that Gmail does not clip, and a text part that reads in 72 columns."""

from __future__ import annotations

import email
import json
import sys
import unicodedata
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from _editions import NOW, edition
from _site import PAGES, site_pages
from browser import chromium, chromium_path
from conftest import ROOT
from layout import (
    BASELINE,
    PHONE_WIDTH,
    email_html,
    horizontal_overflow,
    open_email,
    phone_height,
    themed,
)
from lxml import html as lxml_html
from offline import offline
from playwright.sync_api import Browser

from digest.config import Settings
from digest.mail import MessageTemplate, list_id_header
from digest.render import TEXT_WIDTH, render_edition
from digest.tokens import make_token, preferences_url, unsubscribe_url

# Gmail clips a message whose HTML passes 102 KB and hides the rest behind a link.
GMAIL_CLIP_BYTES = 102 * 1000
BASE_URL = "https://news.example.org"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Share one browser across the tests of this file."""
    try:
        chromium_path()
    except RuntimeError as err:
        pytest.skip(str(err))  # a failure under CI=true (strict_ci.py)
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Serve every page of the site once for the tests of this file."""
    with site_pages(tmp_path_factory.mktemp("site")) as urls:
        yield urls


# Sideways scrolling


@pytest.mark.parametrize("name", PAGES)
def test_no_page_scrolls_sideways_on_a_phone(
    browser: Browser, pages: dict[str, str], name: str
) -> None:
    """Fit every page, and the email the preview serves, into 375 px."""
    page = browser.new_page(viewport={"width": PHONE_WIDTH, "height": 800})
    offline(page)
    try:
        response = page.goto(pages[name], wait_until="load")
        assert response is not None and response.status == 200
        assert horizontal_overflow(page) == 0
    finally:
        page.close()


@pytest.mark.parametrize("items", [10, 20])
def test_an_edition_with_images_does_not_scroll_sideways_on_a_phone(
    browser: Browser, settings: Settings, items: int
) -> None:
    """Fit the phone edition, and 20 items with a logo and "Also in", into 375 px."""
    page = open_email(browser, email_html(themed(settings), items), PHONE_WIDTH)
    try:
        assert horizontal_overflow(page) == 0
    finally:
        page.close()


# Height


def baseline_height() -> int:
    """Return the phone edition's height with the templates before the compact layout."""
    data = json.loads(BASELINE.read_text(encoding="utf-8"))
    assert data["width_px"] == PHONE_WIDTH
    height: int = data["height_px"]
    return height


def test_the_phone_edition_is_under_half_its_old_height(
    browser: Browser, settings: Settings
) -> None:
    """Show the ten items with images in under half the height they took before."""
    height = phone_height(browser, settings)
    old = baseline_height()
    assert height < old / 2, f"{height} px at {PHONE_WIDTH} px wide; before: {old} px"


def test_the_phone_height_is_measured_on_what_a_reader_sees(
    browser: Browser, settings: Settings
) -> None:
    """Measure ten loaded images at the phone's width, each with its width and height."""
    html = email_html(settings, 10)
    images = lxml_html.document_fromstring(html).xpath("//img")
    assert len(images) >= 10
    page = open_email(browser, html, PHONE_WIDTH)
    try:
        widths = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    finally:
        page.close()
    assert all(w > 0 for w in widths)


# Size


def test_a_20_item_edition_with_thumbnails_stays_below_gmails_clipping_size(
    settings: Settings,
) -> None:
    """Keep the inlined HTML of 20 items, each with its image, under 102 KB."""
    html = render_edition(themed(settings), edition(20)).html
    pictures = {item.article.image for item in edition(20).items}
    shown = {img.get("src") for img in lxml_html.document_fromstring(html).xpath("//img")}
    assert pictures <= shown
    size = len(html.encode("utf-8"))
    assert size < GMAIL_CLIP_BYTES, f"{size} bytes"


# The text part


def columns(line: str) -> int:
    """Return how many columns line takes in a monospaced font (wide characters two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def personalised(settings: Settings, name: str) -> tuple[str, str]:
    """Return the text and HTML parts of a 20-item edition as a subscriber named name gets
    it: through MessageTemplate, their greeting and links filled in."""
    rendered = render_edition(themed(settings), edition(20))
    template = MessageTemplate(
        rendered,
        edition_id=rendered.edition.id,
        sender=settings.sender,
        list_id=list_id_header(settings.title, settings.list_id, settings.sender),
        base_url=BASE_URL,
        now=NOW,
    )
    raw = template.personalise(
        "reader@example.org",
        name,
        unsubscribe_url(BASE_URL, make_token("k", settings.list_id, 7)),
        preferences_url(BASE_URL, make_token("k", settings.list_id, 7, "preferences")),
    )
    message = email.message_from_bytes(raw, policy=policy.default)
    parts = []
    for kind in ("plain", "html"):
        part = message.get_body(preferencelist=(kind,))
        assert isinstance(part, EmailMessage)
        parts.append(str(part.get_content()))
    return parts[0], parts[1]


def long_lines(text: str) -> list[str]:
    """Return the lines of text wider than TEXT_WIDTH, but for one unbreakable URL.

    The greeting's slot is padded with spaces after it (digest/mail.py): they take no
    room at the end of a line, so a line is measured without them.
    """
    return [
        line
        for line in text.splitlines()
        if columns(line.rstrip(" ")) > TEXT_WIDTH and " " in line.rstrip(" ").split("] ", 1)[-1]
    ]


NAMES = [
    "",
    "Ada Lovelace",
    "Anne-Marie-Louise-Henriette-Charlotte de Montmorency-Laval",
    "Wolfeschlegelsteinhausenbergerdorff",
    "欧阳娜娜",
    "Ζωή Παπαδοπούλου",
]


def greeting_lines(text: str) -> list[str]:
    """Return the lines of text that greet the reader."""
    return [line for line in text.splitlines() if line.startswith("Hello")]


@pytest.mark.parametrize("name", NAMES)
def test_the_greeting_line_fits_72_columns(settings: Settings, name: str) -> None:
    """Greet each subscriber by first name within 72 columns, in Latin, CJK or Greek."""
    text, _ = personalised(settings, name)
    first = name.split()[0] if name else ""
    greeting = greeting_lines(text)
    assert [line.rstrip(" ") for line in greeting] == [f"Hello {first}," if first else "Hello,"]
    assert all(columns(line.rstrip(" ")) <= TEXT_WIDTH for line in greeting), greeting


def test_every_line_a_subscriber_gets_fits_72_columns(settings: Settings) -> None:
    """Wrap every line of a personalised text part within 72 columns, the links too."""
    text, _ = personalised(settings, "Ada Lovelace")
    assert not long_lines(text), "\n".join(long_lines(text))


def test_a_greeting_too_wide_for_72_columns_is_not_sent_so(settings: Settings) -> None:
    """Keep the greeting line within 72 columns even for a name that fills its slot."""
    text, _ = personalised(settings, "A" * 70)
    greeting = greeting_lines(text)
    assert all(columns(line.rstrip(" ")) <= TEXT_WIDTH for line in greeting), greeting


def test_the_text_part_carries_every_title_highlight_and_link(settings: Settings) -> None:
    """Give the text part every title, highlight and link the HTML part has."""
    text, html = personalised(settings, "Ada Lovelace")
    words = " ".join(text.split())
    for item in edition(20).items:
        for piece in (item.article.title, *(hl.text for hl in item.highlights)):
            assert piece in words, piece
        for label in (hl.label for hl in item.highlights if hl.label):
            assert f"{label}:" in words
    links = {a.get("href") for a in lxml_html.document_fromstring(html).xpath("//a[@href]")}
    assert len(links) > 20
    # "In this issue" jumps within the HTML part (#story-1): the text part lists the same
    # titles, and has no places to jump to.
    missing = sorted(link for link in links if link not in text and not link.startswith("#"))
    assert not missing, missing


# The README's screenshots


def test_the_screenshot_script_writes_every_image_the_readme_shows(
    browser: Browser, tmp_path: Path
) -> None:
    """Write each screenshot the README shows, as a PNG of its width, from the seeds."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import screenshot

    written = screenshot.make(tmp_path, browser)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for shot in screenshot.SHOTS:
        path = tmp_path / shot.file
        assert path in written
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(data[16:20], "big") == shot.width
        assert f"{screenshot.FOLDER}/{shot.file}" in readme, shot.file
        assert (ROOT / screenshot.FOLDER / shot.file).is_file(), shot.file
