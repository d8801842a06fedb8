"""The brand colour's contrast on the web pages, computed by WCAG 2.x."""

from __future__ import annotations

import pytest

from digest.brand import (
    AA_TEXT,
    contrast,
    palette,
    parse_hex,
    readable_on,
    relative_luminance,
    text_on,
)

# A very light yellow, a mid grey, a dark navy and the default blue.
BRANDS = ("#fffbcc", "#777777", "#0a1f44", "#1d4ed8", "#ff0", "#808080", "#00ff00", "#ffffff")


def test_luminance_and_contrast_follow_wcag() -> None:
    """Give black and white their luminance and 21:1, and known pairs their ratios."""
    assert relative_luminance("#000000") == 0
    assert relative_luminance("#ffffff") == pytest.approx(1)
    assert contrast("#000", "#fff") == pytest.approx(21)
    assert contrast("#fff", "#fff") == pytest.approx(1)
    # Published figures: #767676 is the lightest grey with 4.5:1 on white.
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert contrast("#777777", "#ffffff") < AA_TEXT
    assert contrast("#1d4ed8", "#ffffff") == pytest.approx(6.70, abs=0.01)
    assert parse_hex("#abc") == (0xAA, 0xBB, 0xCC) and parse_hex("blue") is None


@pytest.mark.parametrize("brand", BRANDS)
def test_text_on_the_brand_colour_reaches_aa(brand: str) -> None:
    """Pick a text colour for the header and buttons with at least 4.5:1 on the brand."""
    assert contrast(text_on(brand), brand) >= AA_TEXT
    assert contrast(palette(brand).on_brand, palette(brand).brand) >= AA_TEXT


def test_near_black_gives_way_to_black_where_it_fails() -> None:
    """Use pure black on a mid colour where the preferred near-black falls short."""
    mid = "#777777"
    assert contrast("#111111", mid) < AA_TEXT and contrast("#ffffff", mid) < AA_TEXT
    assert text_on(mid) == "#000000"
    assert text_on("#0a1f44") == "#ffffff" and text_on("#fffbcc") == "#111111"


@pytest.mark.parametrize("brand", BRANDS)
def test_links_in_the_brand_colour_reach_aa_in_light_and_dark_mode(brand: str) -> None:
    """Darken or lighten the brand for links just enough for 4.5:1 on every background."""
    colours = palette(brand)
    for scheme in (colours.light, colours.dark):
        for ground in (scheme.background, scheme.surface):
            assert contrast(scheme.link, ground) >= AA_TEXT, (brand, scheme, ground)
            assert contrast(scheme.muted, ground) >= AA_TEXT
            assert contrast(scheme.text, ground) >= AA_TEXT


def test_a_brand_that_passes_is_kept_and_one_that_fails_moves_the_least() -> None:
    """Leave a dark navy as it is on white; darken a light yellow only as far as needed."""
    assert palette("#0a1f44").light.link == "#0a1f44"
    assert palette("#1d4ed8").light.link == "#1d4ed8"
    # Navy on a dark page is lightened, yellow on a white one darkened.
    navy_dark = palette("#0a1f44").dark.link
    assert relative_luminance(navy_dark) > relative_luminance("#0a1f44")
    yellow = palette("#fffbcc").light.link
    assert relative_luminance(yellow) < relative_luminance("#fffbcc")
    # The least: one step less would fail.
    ratio = contrast(yellow, "#f3f4f6")
    assert AA_TEXT <= ratio < AA_TEXT + 0.15
    # A colour that needs no change on dark grounds stays.
    assert readable_on("#fffbcc", ("#111827", "#1f2937")) == "#fffbcc"


def test_a_colour_that_is_not_hex_falls_back_to_the_default() -> None:
    """Render with the default blue rather than fail on a value that is not #rrggbb."""
    assert palette("not-a-colour").brand == "#1d4ed8"
