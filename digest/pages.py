"""What every web page shares: the brand, the site's links, the language and direction.

Each page of templates/web/ extends _page.html.j2, which needs the context built here;
render() adds it to a page's own context.
"""

from __future__ import annotations

from dataclasses import dataclass

from digest.brand import Palette, palette
from digest.config import Settings
from digest.render import render_page, safe_url, text_direction


@dataclass(frozen=True)
class Links:
    """Where the header and footer of every page point."""

    archive: str
    subscribe: str
    feed: str
    unsubscribe: str


def links(settings: Settings, static: bool = False, depth: int = 0) -> Links:
    """Return the site's links: root-relative when served; in the static archive,
    relative to a page depth folders below the archive's own, and absolute for sign-up.

    A served page links to the server it came from, whatever name it was reached by. The
    static archive may be hosted anywhere, so its links stay within it, and those to the
    sign-up pages, which only a server has, go to DIGEST_BASE_URL.
    """
    if not static:
        return Links("/archive/", "/subscribe", "/archive/feed.xml", "/unsubscribe/")
    base = settings.base_url.rstrip("/")
    up = "../" * depth
    return Links(up or "./", f"{base}/subscribe", f"{up}feed.xml", f"{base}/unsubscribe/")


def language_tag(language: str) -> str:
    """Return DIGEST_LANGUAGE as a BCP 47 tag for the lang attribute (pt_BR -> pt-BR)."""
    return language.strip().replace("_", "-") or "en"


def site_context(settings: Settings, static: bool = False, depth: int = 0) -> dict[str, object]:
    """Return the context the shared layout needs."""
    colours: Palette = palette(settings.brand_color)
    return {
        "language": language_tag(settings.language),
        "direction": text_direction(settings.language),
        "site": {
            "title": settings.title,
            "tagline": settings.tagline,
            "logo": {
                "url": safe_url(settings.logo_url),
                "width": settings.logo_width,
                "height": settings.logo_height,
            },
            "links": links(settings, static, depth),
        },
        "colors": colours,
    }


def render(
    settings: Settings,
    name: str,
    context: dict[str, object],
    static: bool = False,
    depth: int = 0,
) -> str:
    """Render the web page templates/web/<name> with the shared layout's context."""
    return render_page(settings, name, {**site_context(settings, static, depth), **context})
