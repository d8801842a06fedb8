"""Rendering: golden files of the seed edition, template craft, themes and the text part."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from _editions import NOW, article, edition
from lxml import html as lxml_html
from webserver import request, running

from digest.archive import write_archive
from digest.brand import contrast, readable_on
from digest.config import Settings, load_settings
from digest.errors import ConfigError, RenderError
from digest.links import edition_page_url
from digest.models import Edition, Highlight, Item, Section
from digest.pipeline import preview, run_edition
from digest.render import (
    GREETING_PLACEHOLDER,
    PREFERENCES_PLACEHOLDER,
    TEXT_WIDTH,
    UNSUBSCRIBE_PLACEHOLDER,
    Footnotes,
    render_edition,
    text_direction,
    text_on,
    trim_html,
)
from digest.web import App

GOLDEN = Path(__file__).parent / "data" / "golden"
WEB_SAFE_FONTS = {"helvetica", "arial", "georgia", "times new roman", "times", "verdana",
                  "tahoma", "trebuchet ms", "courier new", "courier", "sans-serif", "serif",
                  "monospace"}  # fmt: skip
_LONG_DATE = re.compile(
    r"\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), \d{1,2} [A-Z][a-z]+ \d{4}"
)
_SHORT_DATE = re.compile(r"\b\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}")
_EDITION_ID = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:-\d+)?\b")


def normalise(text: str) -> str:
    """Replace dates and edition ids, which change from run to run, with fixed marks."""
    text = _LONG_DATE.sub("<DATE>", text)
    text = _SHORT_DATE.sub("<DAY>", text)
    return _EDITION_ID.sub("<EDITION>", text)


def with_env(settings: Settings, **values: str) -> Settings:
    """Return settings like settings with extra keys set."""
    env = {
        "DIGEST_SOURCES": ",".join(settings.sources),
        "DIGEST_DB": str(settings.db),
        "DIGEST_OUTBOX": str(settings.outbox),
    }
    return load_settings(None, {**env, **values})


def doc(html: str) -> Any:
    """Parse html into an lxml document."""
    return lxml_html.document_fromstring(html)


@pytest.fixture
def seed_files(settings: Settings, seeds_dir: Path, tmp_path: Path) -> dict[str, str]:
    """Return the HTML and text written for the seed edition."""
    for path in seeds_dir.iterdir():
        os.utime(path, (NOW.timestamp(), NOW.timestamp()))
    result = preview(settings, tmp_path / "preview", NOW)
    assert result.folder is not None
    return {
        suffix: (result.folder / f"digest.{suffix}").read_text(encoding="utf-8")
        for suffix in ("html", "txt")
    }


@pytest.mark.parametrize("suffix", ["html", "txt"])
def test_the_seed_edition_matches_its_golden_file(seed_files: dict[str, str], suffix: str) -> None:
    """Render the seed edition as recorded; DIGEST_UPDATE_GOLDEN=1 records it anew."""
    golden = GOLDEN / f"seed.{suffix}"
    actual = normalise(seed_files[suffix])
    if os.environ.get("DIGEST_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual, encoding="utf-8")
    assert golden.is_file(), f"{golden} is missing: run with DIGEST_UPDATE_GOLDEN=1"
    assert actual == golden.read_text(encoding="utf-8")


def test_normalise_hides_dates_and_edition_ids() -> None:
    """Replace both date styles and an edition id."""
    text = "Saturday, 28 November 2026 · 3 Dec 2025 · edition 2026-11-28-2"
    assert normalise(text) == "<DATE> · <DAY> · edition <EDITION>"


def test_the_head_declares_charset_viewport_and_colour_schemes(settings: Settings) -> None:
    """Set charset, viewport and both colour-scheme metas, and lang and dir on the root."""
    root = doc(render_edition(settings, edition(2)).html)
    assert root.get("lang") == "en" and root.get("dir") == "ltr"
    assert root.xpath("//meta[@charset='utf-8']")
    assert root.xpath("//meta[@name='viewport']/@content") == [
        "width=device-width, initial-scale=1"
    ]
    assert root.xpath("//meta[@name='color-scheme']/@content") == ["light dark"]
    assert root.xpath("//meta[@name='supported-color-schemes']/@content") == ["light dark"]


def test_a_right_to_left_language_sets_dir_rtl(settings: Settings) -> None:
    """Write dir="rtl" for Arabic, Hebrew and Persian, "ltr" for the rest."""
    assert [text_direction(x) for x in ("ar", "he-IL", "fa_IR", "en", "de-CH")] == [
        "rtl", "rtl", "rtl", "ltr", "ltr",
    ]  # fmt: skip
    html = render_edition(with_env(settings, DIGEST_LANGUAGE="he"), edition(1)).html
    assert doc(html).get("dir") == "rtl" and doc(html).get("lang") == "he"


def test_the_preheader_is_hidden_and_holds_the_lead(settings: Settings) -> None:
    """Hide the preheader in every client, Outlook included, and start it with the lead."""
    rendered = render_edition(settings, edition(3))
    root = doc(rendered.html)
    (pre,) = root.xpath("//div[@class='preheader']")
    assert "display:none" in pre.get("style") and "mso-hide:all" in pre.get("style")
    # Gmail's mobile web client ignores display:none: these hide it there.
    for fallback in ("max-height:0", "overflow:hidden", "opacity:0", "color:transparent"):
        assert fallback in pre.get("style").replace(" ", "")
    assert pre.text_content() == rendered.preheader
    assert rendered.preheader.startswith(rendered.edition.items[0].article.title)
    # A body before the preheader would take its place in the inbox preview.
    assert root.xpath("//body")[0][0] == pre


def test_only_the_media_rules_stay_in_style_once(settings: Settings) -> None:
    """Inline every base rule; keep the @media rules, dark mode among them, exactly once."""
    html = render_edition(settings, edition(3)).html
    styles = doc(html).xpath("//style")
    assert len(styles) == 1
    css = styles[0].text
    assert css.count("@media (prefers-color-scheme:dark)") == 1
    assert css.count("@media only screen and (max-width:620px)") == 1
    outside_media = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*\s*\}", "", css)
    assert outside_media.strip() == ""
    assert "\n" not in css and "  " not in css


def test_whitespace_is_trimmed_but_inline_spacing_kept() -> None:
    """Drop indentation and blank lines; keep a break where words would otherwise join."""
    html = (
        "<p>\n    <strong>Label:</strong>\n    text</p>\n\n   <style>\n a { color: red; }\n</style>"
    )
    assert (
        trim_html(html) == "<p>\n<strong>Label:</strong>\ntext</p>\n<style>a{color:red}</style>\n"
    )


def test_the_column_is_at_most_600_pixels(settings: Settings) -> None:
    """Cap the container at 600 px, with Outlook's fixed-width table around it."""
    html = render_edition(settings, edition(3)).html
    (container,) = doc(html).xpath("//table[contains(@class, 'container')]")
    assert "max-width:600px" in container.get("style")
    widths = [int(w) for w in doc(html).xpath("//@width") if w.isdigit()]
    assert max(widths) <= 600
    assert '<!--[if mso]><table role="presentation" width="600"' in html


def test_fonts_are_web_safe_stacks(settings: Settings) -> None:
    """Use only web-safe font names, each stack ending in a generic family."""
    html = render_edition(settings, edition(3)).html
    stacks = set(re.findall(r"font-family:([^;\"]+)", html))
    assert stacks
    for stack in stacks:
        fonts = [f.strip().strip("'\"").lower() for f in stack.split(",")]
        assert set(fonts) <= WEB_SAFE_FONTS, stack
        assert fonts[-1] in {"sans-serif", "serif", "monospace"}, stack


def test_each_item_has_one_quiet_link_named_after_its_source(settings: Settings) -> None:
    """Link the story once as text, "Read at <source> →", in the brand colour, no button."""
    html = render_edition(settings, edition(1)).html
    first = edition(1).items[0].article
    (link,) = doc(html).xpath("//p[@class='read-at read-at-wide']/a")
    assert link.text_content() == f"Read at {first.source_name} →"
    assert link.get("href") == first.url
    assert "color:#1d4ed8" in link.get("style") and "background" not in link.get("style")
    assert not doc(html).xpath("//*[contains(@class, 'button')]")
    # A phone shows the same link in the meta line instead (the @media rules swap them);
    # elsewhere that copy is hidden, so that one link shows on any screen.
    (copy,) = doc(html).xpath("//p[@class='item-meta']/span[@class='read-at-phone']")
    assert "display:none" in copy.get("style") and "mso-hide:all" in copy.get("style")
    (phone_link,) = copy.xpath("a")
    assert (phone_link.text_content(), phone_link.get("href")) == (link.text_content(), first.url)
    (css,) = doc(html).xpath("//style/text()")
    phone = css[css.index("@media only screen") : css.index("@media (prefers-color-scheme")]
    assert ".read-at-phone{display:inline!important}" in phone
    assert ".meta-source,.read-at-wide{display:none!important}" in phone


def test_a_source_without_a_name_is_read_at_its_site(settings: Settings) -> None:
    """Name the link after the host when the source gave no name."""
    nameless = replace(article(1), source_name="", url="https://www.harbourtown.example/a")
    one = replace(edition(1), sections=(Section("", (Item(nameless, nameless.highlights),)),))
    rendered = render_edition(settings, one)
    (link,) = doc(rendered.html).xpath("//p[@class='read-at read-at-wide']/a")
    assert link.text_content() == "Read at harbourtown.example →"
    assert "  Read at harbourtown.example → [1]\n" in rendered.text


def test_titles_look_like_links(settings: Settings) -> None:
    """Colour each item's title link and underline it, so that it reads as a link."""
    html = render_edition(settings, edition(2)).html
    links = doc(html).xpath("//h2[@class='item-title']/a")
    assert len(links) == 2
    for link in links:
        style = link.get("style")
        assert "color:#1d4ed8" in style and "text-decoration:underline" in style


def test_the_meta_line_names_the_source_the_author_and_the_day(settings: Settings) -> None:
    """Show the source's own name, the author where known, and the day, in both parts."""
    signed = replace(article(1), source_name="Harbourtown Daily", author="Ada Lovelace")
    one = replace(edition(1), sections=(Section("", (Item(signed, signed.highlights),)),))
    rendered = render_edition(settings, one)
    (meta,) = doc(rendered.html).xpath("//p[@class='item-meta']")
    (source,) = meta.xpath("span[@class='meta-source']")
    (phone,) = meta.xpath("span[@class='read-at-phone']")
    assert source.text_content() + (source.tail or "") == (
        "Harbourtown Daily · by Ada Lovelace · 28 Nov 2026"
    )
    # On a phone the source's name gives way to the link, which names it too.
    assert phone.text_content() == " · Read at Harbourtown Daily →"
    assert "\nHarbourtown Daily · by Ada Lovelace · 28 Nov 2026\n" in rendered.text
    assert "  Read at Harbourtown Daily → [1]\n" in rendered.text


def test_a_thumbnail_sits_beside_the_highlights_and_shrinks_on_a_phone(settings: Settings) -> None:
    """Put a sized thumbnail with alt text in a fixed column; on a phone the highlights flow
    around it, smaller, at the end of their first lines."""
    html = render_edition(settings, edition(1)).html
    (img,) = doc(html).xpath("//img[@class='thumb']")
    title = edition(1).items[0].article.title
    assert (img.get("width"), img.get("height"), img.get("alt")) == ("160", "90", title)
    cell = img.getparent()
    assert cell.get("class") == "thumb-cell" and cell.get("width") == "174"
    assert cell.getnext().get("class") == "story-text"
    assert cell.getnext().xpath(".//li[@class='highlight']")
    (table,) = cell.xpath("ancestor::table[1]")
    assert table.get("role") == "presentation" and table.get("width") == "100%"
    (css,) = doc(html).xpath("//style/text()")
    phone = css[css.index("@media only screen") : css.index("@media (prefers-color-scheme")]
    assert ".story-text{display:block!important;width:auto!important" in phone
    assert ".thumb-cell{display:block!important;float:right!important;width:72px!important" in phone
    assert ".thumb{width:72px!important" in phone
    assert doc(html).xpath("//h2")[0].text_content() == title


def test_an_item_without_a_picture_has_no_picture_column(settings: Settings) -> None:
    """Give the highlights the whole width when the article has no image."""
    bare = replace(article(1), image=None)
    one = replace(edition(1), sections=(Section("", (Item(bare, bare.highlights),)),))
    root = doc(render_edition(settings, one).html)
    assert not root.xpath("//img") and not root.xpath("//td[@class='thumb-cell']")
    assert root.xpath("//td[@class='item']/ul[@class='highlights']")


def test_in_this_issue_lists_the_titles_by_section_from_five_items(settings: Settings) -> None:
    """Open an edition of five items or more with its titles by section, each a jump."""
    assert not doc(render_edition(settings, edition(4)).html).xpath("//td[@class='contents']")
    rendered = render_edition(settings, edition(6))
    root = doc(rendered.html)
    (contents,) = root.xpath("//td[@class='contents']")
    assert contents.xpath("h2")[0].text_content() == "In this issue"
    assert [p.text for p in contents.xpath("p[@class='contents-section']")] == [
        "World", "Business",
    ]  # fmt: skip
    links = contents.xpath(".//a")
    assert [a.text for a in links] == [i.article.title for i in rendered.edition.items]
    for link, item in zip(links, rendered.edition.items, strict=True):
        (target,) = root.xpath("//td[@id=$id]", id=link.get("href").removeprefix("#"))
        assert target.xpath("h2")[0].text_content() == item.article.title
    # Above the stories, below the greeting.
    assert contents.getparent().getprevious().xpath("td/@class") == ["greeting"]
    text = rendered.text
    listing = text[text.index("\nIN THIS ISSUE\n") : text.index("\nWORLD\n")]
    first = rendered.edition.items[0].article.title
    assert listing.startswith(f"\nIN THIS ISSUE\nWorld\n  - {first}\n")
    assert listing.count("  - ") == 6 and "[" not in listing


def test_brand_colour_and_logo_come_from_settings(settings: Settings) -> None:
    """Colour the accents with DIGEST_BRAND_COLOR and show DIGEST_LOGO_URL at its size."""
    themed = with_env(
        settings,
        DIGEST_BRAND_COLOR="#FFCC00",
        DIGEST_LOGO_URL="https://example.org/logo.png",
        DIGEST_LOGO_WIDTH="180",
        DIGEST_LOGO_HEIGHT="40",
    )
    html = render_edition(themed, edition(2)).html
    assert "#1d4ed8" not in html
    (rule,) = doc(html).xpath("//td[@class='masthead']/@style")
    assert "border-bottom:3px solid #fc0" in rule  # as premailer shortens it
    # Yellow text on white does not read: links take the nearest shade that does (AA).
    link = doc(html).xpath("//h2/a")[0].get("style")
    shade = re.search(r"color:(#[0-9a-f]{6})", link)
    assert shade and shade.group(1) != "#ffcc00" and contrast(shade.group(1), "#ffffff") >= 4.5
    (logo,) = doc(html).xpath("//h1/img")
    assert (logo.get("src"), logo.get("width"), logo.get("height"), logo.get("alt")) == (
        "https://example.org/logo.png", "180", "40", "Daily Digest",
    )  # fmt: skip


def test_text_on_the_brand_colour_contrasts_with_it() -> None:
    """Pick white text on dark colours and near-black on light ones (sign-up emails)."""
    assert text_on("#1d4ed8") == "#ffffff"
    assert text_on("#000") == "#ffffff"
    assert text_on("#ffcc00") == "#111111"
    assert text_on("#fff") == "#111111"


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("DIGEST_BRAND_COLOR", "blue", "must be a hex colour"),
        ("DIGEST_BRAND_COLOR", "#12345", "must be a hex colour"),
        ("DIGEST_LOGO_URL", "javascript:alert(1)", "must be an http(s) URL"),
        ("DIGEST_LOGO_WIDTH", "900", "at most 600"),
    ],
)
def test_a_bad_theme_setting_names_key_and_value(
    settings: Settings, key: str, value: str, why: str
) -> None:
    """Refuse a bad theme value with a message naming the key and the value."""
    with pytest.raises(ConfigError) as err:
        with_env(settings, **{key: value})
    assert key in str(err.value) and repr(value) in str(err.value) and why in str(err.value)


def test_the_footer_has_unsubscribe_and_postal_address(settings: Settings) -> None:
    """Show the unsubscribe and preference links and the postal address in both parts."""
    address = "Example Media Ltd, 1 Main Street, 12345 Springfield"
    rendered = render_edition(with_env(settings, DIGEST_POSTAL_ADDRESS=address), edition(1))
    (footer,) = doc(rendered.html).xpath("//td[@class='footer']")
    assert footer.xpath("p/a/@href") == [UNSUBSCRIBE_PLACEHOLDER, PREFERENCES_PLACEHOLDER]
    assert address in footer.text_content()
    assert address in rendered.text
    assert f"Unsubscribe:\n{UNSUBSCRIBE_PLACEHOLDER}" in rendered.text
    assert f"Manage your subscription:\n{PREFERENCES_PLACEHOLDER}" in rendered.text


def test_the_unsubscribe_placeholder_survives_escaping_and_inlining(settings: Settings) -> None:
    """Keep the placeholder byte for byte, so that delivery can substitute it."""
    rendered = render_edition(settings, edition(1))
    assert rendered.html.count(UNSUBSCRIBE_PLACEHOLDER) == 1
    assert rendered.text.count(UNSUBSCRIBE_PLACEHOLDER) == 1


def test_the_greeting_slot_opens_both_parts(settings: Settings) -> None:
    """Render the greeting placeholder once per part, intact, just below the masthead."""
    rendered = render_edition(settings, edition(2))
    assert rendered.html.count(GREETING_PLACEHOLDER) == 1
    assert rendered.text.count(GREETING_PLACEHOLDER) == 1
    (cell,) = doc(rendered.html).xpath("//td[@class='greeting']")
    # Alone in its cell: the padding that fills the slot must end a block to collapse.
    assert cell.text == GREETING_PLACEHOLDER and len(cell) == 0
    assert cell.getparent().getprevious().xpath("td/@class") == ["masthead"]
    lines = rendered.text.split("\n")
    assert lines[0] == "DAILY DIGEST" and lines[2:4] == ["", GREETING_PLACEHOLDER]


def test_section_titles_and_other_versions_appear(settings: Settings) -> None:
    """Title each non-empty section and list an item's other versions as links."""
    rendered = render_edition(settings, edition(5))
    root = doc(rendered.html)
    assert [td.text for td in root.xpath("//td[@class='section-title']")] == ["World", "Business"]
    (also,) = root.xpath("//p[@class='also-in']")
    assert " ".join(also.text_content().split()) == "Also in: Other Wire, Example News 1"
    assert also.xpath("a/@href") == ["https://news1.example.org/2026/11/28/story-105"]
    assert "\nWORLD\n=====\n" in rendered.text
    assert "  Also in: Other Wire [6], Example News 1\n" in rendered.text
    untitled = render_edition(settings, edition(5, sections=False))
    assert not doc(untitled.html).xpath("//td[@class='section-title']")


def test_the_text_part_has_titles_highlights_and_footnoted_links(settings: Settings) -> None:
    """Write each title with its link number, its highlights, and the links at the end."""
    text = render_edition(settings, edition(3, also_in=False)).text
    first = edition(1).items[0].article
    assert f"{first.title} [1]\n{first.source_name} · 28 Nov 2026\n" in text
    assert "  - Timetable: The agreement sets out a timetable for talks on trade,\n" in text
    links = text[text.index("\nLinks:\n") + 1 :]
    assert links.splitlines()[1:4] == [
        "[1] https://news1.example.org/2026/11/28/story-1",
        "[2] https://news2.example.org/2026/11/28/story-2",
        "[3] https://news3.example.org/2026/11/28/story-3",
    ]
    assert text.index("\nLinks:\n") < text.index("\n--\n")


def test_the_text_part_is_wrapped_at_72_columns(settings: Settings) -> None:
    """Keep every line within 72 columns unless it is one unbreakable URL."""
    long_title = replace(article(1), title="A headline " * 12, source_name="Source " * 15)
    one = Edition(
        id="x",
        title="Daily Digest",
        date=NOW.date(),
        created=NOW,
        sections=(Section("", (Item(long_title, long_title.highlights),)),),
    )
    for ed in (one, edition(20)):
        for line in render_edition(settings, ed).text.splitlines():
            assert len(line) <= TEXT_WIDTH or " " not in line.split("] ", 1)[-1], line


def test_footnotes_number_each_safe_url_once() -> None:
    """Number URLs in order, reuse a number for a repeat, skip unsafe or missing ones."""
    notes = Footnotes(["https://a.example/", None, "javascript:alert(1)", "https://b.example/"])
    assert notes.add("https://a.example/") == 1
    assert notes.links == [(1, "https://a.example/"), (2, "https://b.example/")]
    assert notes.cite("B", "https://b.example/") == "B [2]"
    assert notes.cite("C", "javascript:alert(1)") == "C"


def test_article_text_is_escaped_and_unsafe_links_dropped(settings: Settings) -> None:
    """Escape markup in article fields and never link a javascript: URL."""
    evil = replace(
        article(1),
        title='<script>alert("x")</script> Title',
        url="javascript:alert(1)",
        image="javascript:alert(2)",
    )
    ed = Edition(
        id="x",
        title="Daily Digest",
        date=NOW.date(),
        created=NOW,
        sections=(Section("", (Item(evil, (Highlight("<b>bold</b>"),)),)),),
    )
    rendered = render_edition(settings, ed)
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "<b>bold</b>" not in rendered.html
    assert "javascript:" not in rendered.html and "javascript:" not in rendered.text
    assert not doc(rendered.html).xpath("//*[contains(@class, 'read-at')]")


def test_a_user_template_folder_overrides_one_partial(settings: Settings, tmp_path: Path) -> None:
    """Use a partial from DIGEST_TEMPLATES_DIR and the built-in templates for the rest."""
    mine = tmp_path / "my-templates"
    mine.mkdir()
    (mine / "_footer.html.j2").write_text(
        '<tr><td class="footer"><p>Sent with care. '
        '<a href="{{ unsubscribe_url }}">Stop these emails</a></p></td></tr>\n',
        encoding="utf-8",
    )
    html = render_edition(with_env(settings, DIGEST_TEMPLATES_DIR=str(mine)), edition(2)).html
    footer = doc(html).xpath("//td[@class='footer']")[0]
    assert footer.text_content() == "Sent with care. Stop these emails"
    assert "font-size:12px" in footer.get("style")  # the built-in stylesheet still applies
    assert doc(html).xpath("//p[@class='read-at read-at-wide']")  # and the built-in item partial


def test_a_broken_user_template_names_the_file_and_line(settings: Settings, tmp_path: Path) -> None:
    """Report a template syntax error with the template's name and line."""
    mine = tmp_path / "my-templates"
    mine.mkdir()
    (mine / "_item.html.j2").write_text("<tr>\n<td>{% if %}</td></tr>\n", encoding="utf-8")
    with pytest.raises(RenderError, match=r"_item\.html\.j2: line 2"):
        render_edition(with_env(settings, DIGEST_TEMPLATES_DIR=str(mine)), edition(1))


def test_a_misspelt_variable_names_the_partial_and_line(settings: Settings, tmp_path: Path) -> None:
    """Name the included partial that holds an undefined variable, and its line."""
    mine = tmp_path / "my-templates"
    mine.mkdir()
    footer = '<tr>\n<td class="footer">\n<p>{{ edtion.title }}</p>\n</td>\n</tr>\n'
    (mine / "_footer.html.j2").write_text(footer, encoding="utf-8")
    with pytest.raises(RenderError) as info:
        render_edition(with_env(settings, DIGEST_TEMPLATES_DIR=str(mine)), edition(1))
    assert str(info.value).startswith(f"{mine / '_footer.html.j2'}: line 3: 'edtion' is undefined")


def test_links_keep_aa_contrast_on_light_and_dark() -> None:
    """Keep a brand colour that reads; shade one that does not until it reads (AA)."""
    assert readable_on("#1d4ed8", ("#ffffff",)) == "#1d4ed8"
    for colour in ("#ffcc00", "#fff", "#7dd3fc"):
        shade = readable_on(colour, ("#ffffff",))
        assert contrast(shade, "#ffffff") >= 4.5, (colour, shade)
    assert contrast(readable_on("#1d4ed8", ("#111827",)), "#111827") >= 4.5
    assert round(contrast("#000", "#fff"), 1) == 21.0


def test_dark_mode_gives_links_a_shade_that_reads_on_dark(settings: Settings) -> None:
    """Recolour titles and links in the dark palette with a shade readable on it."""
    (css,) = doc(render_edition(settings, edition(2)).html).xpath("//style/text()")
    dark = css[css.index("@media (prefers-color-scheme:dark)") :]
    shade = readable_on("#1d4ed8", ("#111827",))
    assert f".item-link,.read-link,.also-in a,.section-title{{color:{shade}!important}}" in dark


def test_the_masthead_shows_the_tagline_and_the_date(settings: Settings) -> None:
    """Put DIGEST_TAGLINE between the title and the date, in both parts."""
    tagged = with_env(settings, DIGEST_TAGLINE="The harbour's news, <every> morning")
    rendered = render_edition(tagged, edition(2))
    (masthead,) = doc(rendered.html).xpath("//td[@class='masthead']")
    assert [p.get("class") for p in masthead.xpath("p")] == ["masthead-tagline", "masthead-date"]
    assert masthead.xpath("p")[0].text == "The harbour's news, <every> morning"
    assert "&lt;every&gt;" in rendered.html
    assert rendered.text.split("\n")[:3] == [
        "DAILY DIGEST", "The harbour's news, <every> morning", "Saturday, 28 November 2026",
    ]  # fmt: skip


def test_view_in_browser_links_the_editions_archive_page(settings: Settings) -> None:
    """Link the edition's page at the top once the archive is public, in both parts."""
    local = render_edition(settings, edition(2))
    assert not doc(local.html).xpath("//td[@class='view-online']")
    assert "View in browser" not in local.text
    public = with_env(settings, DIGEST_BASE_URL="https://news.example.org/")
    rendered = render_edition(public, edition(2))
    page = "https://news.example.org/archive/2026-11-28/"
    root = doc(rendered.html)
    (link,) = root.xpath("//td[@class='view-online']/a")
    assert (link.text, link.get("href")) == ("View in browser", page)
    assert root.xpath("//table[contains(@class, 'container')]/tr[1]/td/@class") == ["view-online"]
    assert f"\nView in browser:\n{page}\n" in rendered.text
    assert doc(rendered.html).xpath("//td[@class='greeting']")[0].text == GREETING_PLACEHOLDER


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, None),
        ({"DIGEST_BASE_URL": "http://localhost:8080"}, None),
        ({"DIGEST_BASE_URL": "https://news.example.org"}, "https://news.example.org/archive/7/"),
        (
            {"DIGEST_ARCHIVE_URL": "https://static.example.net/digest/"},
            "https://static.example.net/digest/7/",
        ),
        (
            {
                "DIGEST_BASE_URL": "https://news.example.org",
                "DIGEST_ARCHIVE_URL": "https://static.example.net/digest",
            },
            "https://static.example.net/digest/7/",
        ),
    ],
)
def test_edition_page_url_follows_where_the_archive_is_published(
    settings: Settings, values: dict[str, str], expected: str | None
) -> None:
    """Use DIGEST_ARCHIVE_URL, else a public DIGEST_BASE_URL's /archive/, else nothing."""
    assert edition_page_url(with_env(settings, **values), "7") == expected


def test_the_edition_page_url_is_the_path_the_server_answers(
    settings: Settings, seeds_dir: Path, tmp_path: Path
) -> None:
    """Serve and write an edition's page at the path the email links to."""
    for path in seeds_dir.iterdir():
        os.utime(path, (NOW.timestamp(), NOW.timestamp()))
    public = with_env(settings, DIGEST_BASE_URL="https://news.example.org")
    result = run_edition(public, NOW)
    assert result.edition is not None
    url = edition_page_url(public, result.edition.id)
    assert url is not None
    with running(App(public)) as site:
        status, _, page = request(site + url.removeprefix(public.base_url))
    assert status == 200 and result.edition.items[0].article.title in page
    # `digest archive` writes the page where DIGEST_ARCHIVE_URL/<id>/ finds it.
    static = with_env(settings, DIGEST_ARCHIVE_URL="https://static.example.net/digest")
    written = write_archive(static, tmp_path / "site")
    url = edition_page_url(static, result.edition.id)
    assert url is not None
    where = url.removeprefix("https://static.example.net/digest/")
    assert tmp_path / "site" / where / "index.html" in written


def test_a_right_to_left_edition_mirrors_the_indents(settings: Settings) -> None:
    """Indent lists and space the thumbnail from the side text starts on."""
    html = render_edition(with_env(settings, DIGEST_LANGUAGE="ar"), edition(6)).html
    root = doc(html)
    assert "padding:0 18px 0 0" in root.xpath("//ul[@class='highlights']/@style")[0]
    assert "padding:2px 0 0 14px" in root.xpath("//td[@class='thumb-cell']/@style")[0]
