"""The brand colour on the web pages: contrast computed from the configured colour.

WCAG 2.x defines the contrast of two colours from their relative luminance; AA asks 4.5:1
for body text. The configured colour can be anything, so nothing here assumes that it is
dark enough for links or that white text reads on it: each colour used is computed, and
moved towards black or white just as far as the ratio needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# WCAG 2.x, success criterion 1.4.3: body text.
AA_TEXT = 4.5
_HEX = re.compile(r"#([0-9a-f]{3}|[0-9a-f]{6})", re.IGNORECASE)
# What the pages fall back on when the configured value is not a hex colour
# (config.py validates it, but a page must render whatever it is given).
DEFAULT_BRAND = "#1d4ed8"
WHITE = "#ffffff"
BLACK = "#000000"
# The near-black text the pages prefer to pure black; pure black when it is not enough.
INK = "#111111"

Rgb = tuple[int, int, int]


@dataclass(frozen=True)
class Scheme:
    """The page colours of one mode (light or dark), brand colours included."""

    background: str
    surface: str
    text: str
    muted: str
    border: str
    link: str


@dataclass(frozen=True)
class Palette:
    """Every colour a page uses, computed once from the brand colour."""

    brand: str
    on_brand: str
    light: Scheme
    dark: Scheme


# The neutral colours around the brand. Muted text is checked like the links: its
# contrast on both the page background and the cards is at least AA.
_LIGHT = {"background": "#f3f4f6", "surface": "#ffffff", "text": "#1f2937", "border": "#d1d5db"}
_DARK = {"background": "#111827", "surface": "#1f2937", "text": "#f3f4f6", "border": "#4b5563"}
_LIGHT_MUTED = "#4b5563"
_DARK_MUTED = "#9ca3af"


def parse_hex(color: str) -> Rgb | None:
    """Return the red, green and blue channels (0-255) of a #rgb or #rrggbb colour."""
    match = _HEX.fullmatch(color.strip())
    if match is None:
        return None
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def to_hex(rgb: Rgb) -> str:
    """Return #rrggbb for red, green and blue channels."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _rgb(color: str) -> Rgb:
    parsed = parse_hex(color)
    if parsed is None:
        raise ValueError(f"not a hex colour: {color!r}")
    return parsed


def relative_luminance(color: str) -> float:
    """Return the WCAG 2.x relative luminance of color, 0 (black) to 1 (white)."""
    channels = []
    for value in _rgb(color):
        c = value / 255
        # The sRGB transfer function; WCAG 2.0 printed 0.03928 for the threshold, which
        # gives the same result for every 8-bit value.
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def contrast(a: str, b: str) -> float:
    """Return the WCAG contrast ratio of two colours, 1 to 21."""
    la, lb = relative_luminance(a), relative_luminance(b)
    lighter, darker = max(la, lb), min(la, lb)
    return (lighter + 0.05) / (darker + 0.05)


def text_on(background: str, minimum: float = AA_TEXT) -> str:
    """Return a text colour for background: white or near-black, pure black if needed.

    White or black always reaches 4.5:1 on any colour (the worst case, a mid grey, still
    gives 4.58:1), but the near-black the pages prefer does not on every mid colour.
    """
    for candidate in (WHITE, INK):
        if contrast(candidate, background) >= minimum:
            return candidate
    return max((WHITE, BLACK), key=lambda c: contrast(c, background))


def _mix(color: Rgb, target: Rgb, amount: float) -> Rgb:
    r, g, b = (round(c + (t - c) * amount) for c, t in zip(color, target, strict=True))
    return r, g, b


def readable_on(color: str, backgrounds: tuple[str, ...], minimum: float = AA_TEXT) -> str:
    """Return color, darkened or lightened as little as needed to reach minimum on every
    one of backgrounds (which should be all light or all dark).

    Moving towards black (or white) changes the luminance in one direction, so the
    smallest step that passes is found by bisection.
    """
    if min(contrast(color, bg) for bg in backgrounds) >= minimum:
        return to_hex(_rgb(color))
    target = max((BLACK, WHITE), key=lambda t: min(contrast(t, bg) for bg in backgrounds))
    start, end = _rgb(color), _rgb(target)
    low, high = 0.0, 1.0
    for _ in range(20):
        middle = (low + high) / 2
        if min(contrast(to_hex(_mix(start, end, middle)), bg) for bg in backgrounds) >= minimum:
            high = middle
        else:
            low = middle
    found = to_hex(_mix(start, end, high))
    # Rounding to 8-bit channels can land a hair short: step on until it passes.
    while min(contrast(found, bg) for bg in backgrounds) < minimum and found != target:
        high = min(1.0, high + 0.01)
        found = to_hex(_mix(start, end, high))
    return found


def _scheme(neutrals: dict[str, str], muted: str, brand: str) -> Scheme:
    grounds = (neutrals["background"], neutrals["surface"])
    return Scheme(
        background=neutrals["background"],
        surface=neutrals["surface"],
        text=neutrals["text"],
        muted=readable_on(muted, grounds),
        border=neutrals["border"],
        link=readable_on(brand, grounds),
    )


def palette(brand_color: str) -> Palette:
    """Return the page colours for a brand colour, in light and dark mode."""
    brand = to_hex(parse_hex(brand_color) or _rgb(DEFAULT_BRAND))
    return Palette(
        brand=brand,
        on_brand=text_on(brand),
        light=_scheme(_LIGHT, _LIGHT_MUTED, brand),
        dark=_scheme(_DARK, _DARK_MUTED, brand),
    )
