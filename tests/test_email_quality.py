"""The rendered email against client support data, a spam filter, a size limit and a11y rules."""

from __future__ import annotations

import email
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import cssutils
import pytest
from _editions import NOW, edition
from browser import chromium
from conftest import ROOT
from layout import themed
from lxml import html as lxml_html

from digest.config import Settings
from digest.mail import MessageTemplate, build_message, list_id_header
from digest.pipeline import run_edition
from digest.render import UNSUBSCRIBE_PLACEHOLDER, render_edition
from digest.tokens import make_token, unsubscribe_url

cssutils.log.setLevel(logging.CRITICAL)

CANIEMAIL = ROOT / "tests" / ".caniemail" / "caniemail.json"
# The clients the email must work in, by their caniemail family names.
FAMILIES = ("gmail", "apple-mail", "outlook")
# Gmail clips a message whose HTML passes 102 KB and hides the rest behind a link.
GMAIL_CLIP_BYTES = 102 * 1000
SPAM_LIMIT = 1.0
# The ten-item edition of tests/_editions.py, pictures loaded, at 375 px in this headless
# Chromium (its fonts: DejaVu Sans for Helvetica/Arial) before the layout had thumbnails,
# "In this issue" and text links: each picture full width, a button under every item.
PHONE_HEIGHT_BEFORE = 7116

# Features some of those clients lack, used anyway because the email reads the same
# without them. Each needs a reason; the test fails when one is no longer used.
ALLOWED: dict[str, str] = {
    "css-at-media": "the phone layout only; without it a phone shows the wide one, narrower",
    "css-at-media-prefers-color-scheme": "the dark palette; without it the light one shows",
    "html-meta-color-scheme": "announces the dark palette to clients that have one; else ignored",
    "html-style": "holds only the @media rules above; every base style is inline",
    "css-selector-class": "only in the @media rules; inline styles need no selectors",
    "css-selector-grouping": "only in the @media rules; inline styles need no selectors",
    "css-selector-descendant": "only in the @media rules; inline styles need no selectors",
    "css-selector-type": "only in the @media rules; inline styles need no selectors",
    "css-display-none": "hides the preheader, and the phone's copy of each 'Read at' link and the"
    " dots of 'In this issue'; where ignored the headlines show once more on top, a link twice",
    "css-max-height": "a fall-back hiding the preheader where display:none is ignored",
    "css-overflow": "a fall-back hiding the preheader where display:none is ignored",
    "css-opacity": "a fall-back hiding the preheader where display:none is ignored",
    "html-role": "tells screen readers a table is layout; clients without it ignore it",
    "html-body": "Outlook for Mac drops <body> styles; the wrapper table repeats its background",
    "html-doctype": "Outlook for Windows ignores it; the table layout needs no standards mode",
    "css-float": "only in the phone's @media rules (the thumbnail, a section's name), which"
    " Outlook for Windows does not read: it keeps the fixed columns",
    "css-clear": "only in the phone's @media rules, beside the float it ends",
    "html-anchor-links": "'In this issue' jumps to each story; in Gmail for iOS it is a list",
}

# Used, but caniemail has no entry for them: basics every client supports, and
# Outlook-only properties (mso-*) that every other client ignores.
NO_DATA_CSS = {"color", "font-family"}
NO_DATA_TAGS = {"html", "head", "meta", "title", "tr", "td", "a", "br"}
NO_DATA_ATTRIBUTES = {
    "alt", "bgcolor", "border", "charset", "class", "content", "href", "id", "name", "src",
    "style",
}  # fmt: skip
ELEMENT_FEATURES = {
    "table": "html-table",
    "tbody": "html-table",
    "ul": "html-lists",
    "ol": "html-lists",
    "li": "html-lists",
    **{f"h{n}": "html-h1-h6" for n in range(1, 7)},
}
PROPERTY_FEATURES = {
    re.compile(r"border-(top|right|bottom|left)(-(width|style|color))?|border-(width|style|color)"):
        "css-border",
    re.compile(r"margin-(top|right|bottom|left)"): "css-margin",
    re.compile(r"padding-(top|right|bottom|left)"): "css-padding",
}  # fmt: skip
UNITS = {"px": "css-unit-px", "%": "css-unit-percent", "em": "css-unit-em", "rem": "css-unit-rem"}
IMAGE_FORMATS = {
    ".png": "image-png",
    ".jpg": "image-jpg",
    ".jpeg": "image-jpg",
    ".gif": "image-gif",
}


@dataclass
class Usage:
    """The caniemail features an email uses, each with an example of where."""

    features: dict[str, str] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)

    def add(self, feature: str, where: str) -> None:
        """Record feature, keeping the first place it was seen."""
        self.features.setdefault(feature, where)


@pytest.fixture(scope="session")
def caniemail() -> dict[str, dict[str, Any]]:
    """Return the caniemail features by slug, fetching the pinned package if needed."""
    if shutil.which("npm") is None and not CANIEMAIL.is_file():
        pytest.fail("npm is needed to fetch the caniemail data (see scripts/caniemail.sh)")
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "caniemail.sh")], check=True, timeout=300, cwd=ROOT
    )
    data = json.loads(CANIEMAIL.read_text(encoding="utf-8"))
    return {feature["slug"]: feature for feature in data["data"]}


def property_feature(name: str, value: str, data: dict[str, dict[str, Any]]) -> str | None:
    """Return the caniemail slug of a CSS declaration, or None if it has none."""
    if name == "display":
        kind = value.split("!")[0].strip()
        return {"none": "css-display-none", "flex": "css-display-flex"}.get(
            kind, "css-display-grid" if kind == "grid" else "css-display"
        )
    if f"css-{name}" in data:
        return f"css-{name}"
    for pattern, feature in PROPERTY_FEATURES.items():
        if pattern.fullmatch(name):
            return feature
    return None


def _declarations(usage: Usage, pairs: Iterator[tuple[str, str]], where: str, data: Any) -> None:
    for name, value in pairs:
        name = name.strip().lower()
        if not name or name.startswith("mso-"):
            continue
        feature = property_feature(name, value, data)
        if feature is None:
            if name not in NO_DATA_CSS:
                usage.unknown.add(f"CSS property {name} ({where})")
        else:
            usage.add(feature, f"{name}: {value.strip()} ({where})")
        for unit, slug in UNITS.items():
            if re.search(rf"\d{re.escape(unit)}(?![a-z])", value):
                usage.add(slug, f"{name}: {value.strip()} ({where})")
        if "!important" in value.replace(" ", ""):
            usage.add("css-important", f"{name} ({where})")
        if re.search(r"\brgba?\(", value):
            usage.add("css-rgb", f"{name} ({where})")


def _inline_pairs(style: str) -> Iterator[tuple[str, str]]:
    for part in style.split(";"):
        name, sep, value = part.partition(":")
        if sep:
            yield name, value


def _selectors(usage: Usage, selector: str) -> None:
    if "," in selector:
        usage.add("css-selector-grouping", selector)
    for single in selector.split(","):
        parts = single.split()
        if len(parts) > 1:
            usage.add("css-selector-descendant", single)
        for part in parts:
            if part.startswith("."):
                usage.add("css-selector-class", part)
            elif re.match(r"[a-z]", part):
                usage.add("css-selector-type", part)
            else:
                usage.unknown.add(f"selector {part!r} in {single!r}")


def _stylesheet(usage: Usage, css: str, data: Any) -> None:
    sheet = cssutils.parseString(css, validate=False)
    for rule in sheet.cssRules:
        if rule.type == rule.MEDIA_RULE:
            media = rule.media.mediaText
            usage.add("css-at-media", f"@media {media}")
            if "prefers-color-scheme" in media:
                usage.add("css-at-media-prefers-color-scheme", f"@media {media}")
            inner = list(rule.cssRules)
        elif rule.type == rule.STYLE_RULE:
            inner = [rule]
        else:
            usage.unknown.add(f"CSS rule {rule.cssText[:40]!r}")
            continue
        for style_rule in inner:
            _selectors(usage, style_rule.selectorText)
            pairs = ((p.name, p.propertyValue.cssText + (" !important" if p.priority else ""))
                     for p in style_rule.style)  # fmt: skip
            _declarations(usage, pairs, f"<style> {style_rule.selectorText}", data)


def features_used(document: str, data: dict[str, dict[str, Any]]) -> Usage:
    """Return the caniemail features an HTML email uses: elements, attributes, CSS."""
    usage = Usage()
    if document.lstrip().lower().startswith("<!doctype html>"):
        usage.add("html-doctype", "<!DOCTYPE html>")
    root = lxml_html.document_fromstring(document)
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # comments: Outlook's conditional ones hold only a table
        tag = element.tag.lower()
        feature = ELEMENT_FEATURES.get(tag) or (f"html-{tag}" if f"html-{tag}" in data else None)
        if feature:
            usage.add(feature, f"<{tag}>")
        elif tag not in NO_DATA_TAGS:
            usage.unknown.add(f"element <{tag}>")
        for name in element.attrib:
            if f"html-{name}" in data:
                usage.add(f"html-{name}", f"<{tag} {name}>")
            elif name not in NO_DATA_ATTRIBUTES:
                usage.unknown.add(f"attribute {name} on <{tag}>")
        if tag == "meta" and element.get("name") in ("color-scheme", "supported-color-schemes"):
            usage.add("html-meta-color-scheme", f'<meta name="{element.get("name")}">')
        if tag == "a":
            href = element.get("href", "")
            if href.startswith("#"):
                usage.add("html-anchor-links", href)
            elif href.startswith("mailto:"):
                usage.add("html-mailto-links", href)
        if tag == "img":
            suffix = Path(element.get("src", "")).suffix.lower()
            if suffix in IMAGE_FORMATS:
                usage.add(IMAGE_FORMATS[suffix], element.get("src", ""))
        if tag == "style":
            _stylesheet(usage, element.text or "", data)
        elif "style" in element.attrib:
            _declarations(usage, _inline_pairs(element.get("style", "")), f"<{tag}>", data)
    return usage


def unsupported(feature: dict[str, Any]) -> list[str]:
    """Return the clients (family/platform version) that do not support feature."""
    missing = []
    for family in FAMILIES:
        for platform, versions in feature["stats"].get(family, {}).items():
            # The newest test of each client is the one that counts.
            version, result = list(versions.items())[-1]
            if str(result).startswith("n"):
                missing.append(f"{family}/{platform} {version}")
    return missing


def client_report(document: str, data: dict[str, dict[str, Any]]) -> tuple[list[str], Usage]:
    """Return the problems of document against data, and what it uses."""
    usage = features_used(document, data)
    problems = [f"no caniemail data for {what}: add it to NO_DATA_* or avoid it"
                for what in sorted(usage.unknown)]  # fmt: skip
    for slug, where in sorted(usage.features.items()):
        missing = unsupported(data[slug])
        if missing and slug not in ALLOWED:
            problems.append(f"{slug} ({where}) is not supported by {', '.join(missing)}")
    return problems, usage


@pytest.fixture
def seed_eml(settings: Settings, seeds_dir: Path) -> Path:
    """Return the sample .eml the outbox holds after a run over the seeds."""
    for path in seeds_dir.iterdir():
        os.utime(path, (NOW.timestamp(), NOW.timestamp()))
    result = run_edition(settings, NOW)
    assert result.folder is not None
    return result.folder / "digest.eml"


@pytest.fixture
def full_html(settings: Settings) -> str:
    """Return the inlined HTML of a 20-item edition with every optional part."""
    return render_edition(themed(settings), edition(20)).html


def test_every_feature_used_is_supported_by_gmail_apple_mail_and_outlook(
    caniemail: dict[str, dict[str, Any]], full_html: str, seed_eml: Path
) -> None:
    """Check each element, attribute and CSS property against the caniemail data."""
    seed_html = (seed_eml.parent / "digest.html").read_text(encoding="utf-8")
    used: set[str] = set()
    for document in (full_html, seed_html):
        problems, usage = client_report(document, caniemail)
        assert not problems, "\n".join(problems)
        used |= set(usage.features)
    stale = sorted(set(ALLOWED) - used)
    assert not stale, f"ALLOWED lists features the email no longer uses: {stale}"


def test_the_client_check_catches_an_unsupported_property(
    caniemail: dict[str, dict[str, Any]], full_html: str
) -> None:
    """Fail on border-radius and flexbox, which Outlook for Windows does not support."""
    cell = 'class="masthead" style="'
    bad = full_html.replace(cell, cell + "border-radius:4px; display:flex; ", 1)
    problems, _ = client_report(bad, caniemail)
    assert any(p.startswith("css-border-radius") and "outlook/windows" in p for p in problems)
    assert any(p.startswith("css-display-flex") for p in problems)


def test_the_client_check_names_what_it_cannot_judge(
    caniemail: dict[str, dict[str, Any]], full_html: str
) -> None:
    """Report an element caniemail does not know instead of passing it silently."""
    bad = full_html.replace("<body", "<body><blink>new</blink", 1)
    problems, _ = client_report(bad, caniemail)
    assert "no caniemail data for element <blink>: add it to NO_DATA_* or avoid it" in problems


def spam_score(eml: Path, home: Path) -> tuple[float, str]:
    """Return SpamAssassin's score of eml with local rules only, and its report."""
    if shutil.which("spamassassin") is None:
        pytest.fail("spamassassin is not installed: run scripts/system-deps.sh as root")
    with eml.open("rb") as handle:
        done = subprocess.run(
            ["spamassassin", "-L", "-t"],
            stdin=handle,
            capture_output=True,
            timeout=120,
            check=True,
            env={**os.environ, "HOME": str(home)},  # its user state goes to a temporary home
        )
    report = done.stdout.decode("utf-8", "replace")
    match = re.search(r"^X-Spam-Status: \w+, score=(-?\d+(?:\.\d+)?)", report, re.MULTILINE)
    assert match, report[-2000:]
    return float(match.group(1)), report[report.find("Content analysis details") :]


def test_spamassassin_scores_the_seed_edition_below_one(seed_eml: Path, tmp_path: Path) -> None:
    """Score the sample .eml of the seed edition with SpamAssassin's local rules."""
    score, report = spam_score(seed_eml, tmp_path)
    assert score < SPAM_LIMIT, report


def test_spamassassin_scores_a_full_edition_below_one(settings: Settings, tmp_path: Path) -> None:
    """Score a 20-item edition with links, images, a logo and a footer address."""
    rendered = render_edition(themed(settings), edition(20))
    eml = tmp_path / "digest.eml"
    eml.write_bytes(build_message(rendered, settings.sender, settings.sender, NOW).as_bytes())
    score, report = spam_score(eml, tmp_path)
    assert score < SPAM_LIMIT, report


def test_spamassassin_scores_a_personalised_message_below_one(
    settings: Settings, tmp_path: Path
) -> None:
    """Score the bytes a subscriber gets: their name in the padded greeting, their link."""
    rendered = render_edition(themed(settings), edition(20))
    template = MessageTemplate(
        rendered,
        edition_id=rendered.edition.id,
        sender=settings.sender,
        list_id=list_id_header(settings.title, settings.list_id, settings.sender),
        base_url="https://news.example.org",
        now=NOW,
    )
    url = unsubscribe_url("https://news.example.org", make_token("k", settings.list_id, 7))
    eml = tmp_path / "personal.eml"
    eml.write_bytes(template.personalise("ada@example.org", "Ada Lovelace", url))
    message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    for part in message.iter_parts():
        assert isinstance(part, EmailMessage)
        assert "Hello Ada," in part.get_content()
    score, report = spam_score(eml, tmp_path)
    assert score < SPAM_LIMIT, report


def test_a_20_item_edition_stays_below_gmails_clipping_size(full_html: str) -> None:
    """Keep the inlined HTML of 20 items with every optional part under 102 KB."""
    size = len(full_html.encode("utf-8"))
    assert size < GMAIL_CLIP_BYTES, f"{size} bytes"


def _doc(html: str) -> Any:
    return lxml_html.document_fromstring(html)


def test_every_image_has_alt_width_and_height(full_html: str) -> None:
    """Give each image alt text (empty only when decorative) and its size."""
    images = _doc(full_html).xpath("//img")
    assert len(images) == 21  # the logo and one lead image per item
    for img in images:
        assert img.get("alt") is not None, lxml_html.tostring(img)
        assert img.get("width", "").isdigit() and img.get("height", "").isdigit()
    assert images[0].get("alt") == "Daily Digest"


def test_layout_tables_are_presentational(full_html: str, seed_eml: Path) -> None:
    """Mark every table role="presentation": they lay out, they hold no data."""
    seed_html = (seed_eml.parent / "digest.html").read_text(encoding="utf-8")
    for document in (full_html, seed_html):
        tables = _doc(document).xpath("//table")
        assert tables
        assert all(t.get("role") == "presentation" for t in tables)
        # Outlook's conditional table is markup in a comment; it must say so too.
        for comment in re.findall(r"<!--\[if mso\]>(.*?)<!\[endif\]-->", document):
            assert "<table" not in comment or 'role="presentation"' in comment


def test_the_language_and_direction_are_set(full_html: str) -> None:
    """Set lang and dir on the root element."""
    root = _doc(full_html)
    assert root.get("lang") == "en"
    assert root.get("dir") == "ltr"


def test_no_link_says_click_here(full_html: str) -> None:
    """Give every link text that says where it goes."""
    links = _doc(full_html).xpath("//a")
    assert links
    vague = {"click here", "here", "click", "link", "this link", "more"}
    for link in links:
        text = " ".join(link.text_content().split()).lower()
        assert text and text not in vague, lxml_html.tostring(link)


def test_the_unsubscribe_link_is_visible_in_both_parts(full_html: str, settings: Settings) -> None:
    """Show the unsubscribe link in the footer and its URL in the text part."""
    links = _doc(full_html).xpath("//a[@href=$url]", url=UNSUBSCRIBE_PLACEHOLDER)
    assert [" ".join(a.text_content().split()) for a in links] == ["Unsubscribe"]
    assert "display:none" not in (links[0].getparent().get("style") or "")
    text = render_edition(themed(settings), edition(3)).text
    assert f"Unsubscribe:\n{UNSUBSCRIBE_PLACEHOLDER}" in text


def test_the_seed_run_writes_a_well_formed_sample(seed_eml: Path) -> None:
    """Write a multipart/alternative .eml with both parts, a Message-ID and MIME-Version."""
    message = email.message_from_bytes(seed_eml.read_bytes(), policy=policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert message["MIME-Version"] == "1.0"
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", message["Message-ID"])
    kinds = [part.get_content_type() for part in message.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    subject = message["Subject"]
    assert subject != subject.upper()


def test_the_text_part_carries_what_the_html_part_shows(settings: Settings) -> None:
    """Give both parts every title, highlight and other version: spam filters compare them."""
    rendered = render_edition(themed(settings), edition(10))
    html_text = " ".join(_doc(rendered.html).text_content().split())
    text = " ".join(rendered.text.split())
    for item in rendered.edition.items:
        pieces = [item.article.title, item.article.source_name]
        pieces += [hl.text for hl in item.highlights]
        pieces += [other.source_name for other in item.also_in]
        for piece in pieces:
            assert piece in html_text and piece in text, piece


def _png(width: int, height: int) -> bytes:
    """Return a plain grey PNG of width x height pixels."""
    rows = b"".join(b"\0" + b"\x80\x90\xa0" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_a_ten_item_phone_edition_is_short_and_never_scrolls_sideways(settings: Settings) -> None:
    """Lay out ten items with pictures at 375 px: no sideways scroll, under half as tall."""
    html = render_edition(themed(settings), edition(10)).html
    picture = _png(1200, 630)  # a feed's usual 1.91:1 picture, served for every image URL

    def serve(route: Any) -> None:
        if route.request.url.endswith((".jpg", ".png")):
            route.fulfill(body=picture, content_type="image/png")
        else:
            route.abort()

    with chromium() as browser:
        sizes = {}
        for width in (375, 800):
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.route("**/*", serve)
            page.set_content(html, wait_until="load")
            sizes[width] = page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight,"
                " [...document.images].every(i => i.complete && i.naturalWidth > 0),"
                " document.querySelector('img.thumb').getBoundingClientRect().toJSON(),"
                " document.querySelector('ul.highlights').getBoundingClientRect().toJSON()]"
            )
            page.close()
    (phone_width, phone_height, loaded, thumb, _), desktop = sizes[375], sizes[800]
    assert loaded
    assert phone_width == 375, "the edition scrolls sideways on a phone"
    assert phone_height < 0.5 * PHONE_HEIGHT_BEFORE, phone_height
    # Beside the highlights on both: on a wide screen a column before them; on a phone
    # small, at the end of their first lines, the text flowing around it.
    highlights = sizes[375][4]
    assert desktop[3]["width"] == 160 and desktop[4]["left"] > desktop[3]["right"]
    assert thumb["width"] == 72 and thumb["right"] == highlights["right"]
    assert highlights["top"] <= thumb["top"] < thumb["bottom"] < highlights["bottom"]
