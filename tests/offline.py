"""Keep a browser page off the network, with stand-in pictures for the images it links.

The emails link their images on the publishers' hosts. A page that loads none of them
lays out differently from what a reader sees, and one that fetches them leaves the
machine; so every request off this machine is answered here: an image with a plain PNG
of the size such pictures usually have, anything else with nothing.
"""

from __future__ import annotations

import functools
import struct
import zlib
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Page, Route

# A feed's picture is usually made for social cards, 1200 x 630; a logo is a wide strip.
PICTURE = (1200, 630)
LOGO = (240, 60)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


@functools.cache
def png(width: int, height: int, rgb: tuple[int, int, int] = (176, 190, 197)) -> bytes:
    """Return a PNG of width x height pixels in one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width  # filter type 0, then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height, 9))
        + chunk(b"IEND", b"")
    )


def _answer(route: Route) -> None:
    url = route.request.url
    parts = urlsplit(url)
    if parts.scheme in ("file", "data", "about") or parts.hostname in ("127.0.0.1", "localhost"):
        route.continue_()
        return
    path = parts.path.lower()
    if route.request.resource_type == "image" or path.endswith(IMAGE_SUFFIXES):
        size = LOGO if "logo" in path else PICTURE
        route.fulfill(status=200, content_type="image/png", body=png(*size))
        return
    route.abort()


def offline(target: Page | BrowserContext) -> None:
    """Answer every request of target that would leave the machine (see the module)."""
    target.route("**/*", _answer)
