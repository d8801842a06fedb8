"""Colours readable where they are used: links in the brand colour on light and dark."""

from __future__ import annotations

import re

_HEX = re.compile(r"#([0-9a-f]{3}|[0-9a-f]{6})", re.IGNORECASE)
# WCAG AA for normal text.
AA_CONTRAST = 4.5
LIGHT_BACKGROUND = "#ffffff"
DARK_BACKGROUND = "#111827"


def _rgb(color: str) -> tuple[int, int, int]:
    match = _HEX.fullmatch(color.strip())
    if match is None:
        raise ValueError(f"not a hex colour: {color!r}")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def luminance(color: str) -> float:
    """Return the relative luminance of color, as WCAG 2 defines it."""
    channels = []
    for value in _rgb(color):
        c = value / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]


def contrast(first: str, second: str) -> float:
    """Return the WCAG contrast ratio of two colours, from 1 to 21."""
    a, b = sorted((luminance(first), luminance(second)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def readable_on(color: str, background: str, minimum: float = AA_CONTRAST) -> str:
    """Return color, or the nearest shade of it that reads on background (WCAG AA).

    The shade moves towards black on a light background and towards white on a dark
    one, in small steps, so that a pale brand colour still looks like itself.
    """
    rgb = _rgb(color)
    target = (0, 0, 0) if luminance(background) > 0.18 else (255, 255, 255)
    for step in range(21):
        t = step / 20
        r, g, b = (round(c + (end - c) * t) for c, end in zip(rgb, target, strict=True))
        shade = _hex((r, g, b))
        if contrast(shade, background) >= minimum:
            return shade
    return _hex(target)
