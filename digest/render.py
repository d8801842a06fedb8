"""Render an edition once: Jinja2 templates, CSS inlined by premailer, and a text part."""

from __future__ import annotations

import logging
import re
import textwrap
import unicodedata
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup

from digest import brand, i18n, subjects
from digest.config import Settings
from digest.errors import RenderError
from digest.i18n import N_
from digest.links import edition_page_url
from digest.models import Edition, Item, RenderedEdition, site_name
from digest.note import note_html, note_links, note_text

logger = logging.getLogger(__name__)

HTML_TEMPLATE = "digest.html.j2"
TEXT_TEMPLATE = "digest.txt.j2"
CSS_FILE = "digest.css"
TEXT_WIDTH = 72
# The email's page colours in light and dark mode (digest.css): links in the brand colour
# are shaded until they read on them.
EMAIL_LIGHT_BACKGROUND = "#ffffff"
EMAIL_DARK_BACKGROUND = "#111827"
# An edition of this many items or more opens with "In this issue", a list of its titles.
CONTENTS_FROM = 5
# The thumbnail beside an item's highlights: the size Outlook draws it at (elsewhere the
# width holds and the height follows the picture), and the space between it and the text;
# on a phone (the @media rules) the smaller size it takes at the end of the highlights.
THUMB = {"width": 160, "height": 90, "gap": 14, "phone_width": 72, "phone_gap": 10}
SAFE_SCHEMES = {"http", "https", "mailto"}
# Stands in for each subscriber's own unsubscribe link; delivery substitutes it per message.
# Letters, slashes and percent signs only, so autoescape and premailer leave it intact.
# A quoted-printable MIME part may break it across lines: substitute before encoding.
UNSUBSCRIBE_PLACEHOLDER = "https://unsubscribe.invalid/%%UNSUBSCRIBE%%"
# The same for each subscriber's own preference page ("Manage your subscription"); web
# copies of an edition link the sign-up page in its place.
PREFERENCES_PLACEHOLDER = "https://preferences.invalid/%%PREFERENCES%%"
NOTICE_HTML = "confirm.html.j2"
NOTICE_TEXT = "confirm.txt.j2"
# Stands in for the greeting at the top of both parts; delivery fills in each subscriber's
# name, every other output (outbox, preview, archive) the greeting without one. Same
# alphabet as above, so that it too passes autoescape and premailer unchanged.
GREETING_PLACEHOLDER = "%%GREETING%%"
GREETING = N_("Hello %(name)s,")
GREETING_WITHOUT_NAME = N_("Hello,")
# Languages written right to left, by their primary subtag.
RTL_LANGUAGES = {"ar", "arc", "ckb", "dv", "fa", "ha", "he", "khw", "ks", "ps", "sd", "ur", "yi"}
_STYLE_BLOCK = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.DOTALL | re.IGNORECASE)


def packaged_templates() -> Path:
    """Return the built-in template folder: inside the wheel, or beside an editable checkout."""
    inside = Path(__file__).parent / "templates"
    return inside if inside.is_dir() else Path(__file__).parent.parent / "templates"


def template_path(settings: Settings) -> list[Path]:
    """Return the folders searched for templates, the user's first."""
    folders = [packaged_templates()]
    if settings.templates_dir is not None:
        folders.insert(0, settings.templates_dir)
    return folders


def safe_url(value: str | None) -> str:
    """Return value if it is an http(s) or mailto URL, else an empty string."""
    if not value:
        return ""
    value = value.strip()
    try:
        scheme = urlsplit(value).scheme.lower()
    except ValueError:
        return ""
    return value if scheme in SAFE_SCHEMES else ""


def format_day(value: date | datetime, language: str = i18n.SOURCE_LANGUAGE) -> str:
    """Format a date the way the digest shows it, in language: 28 Nov 2026."""
    return i18n.language(language).short_date(value)


def wrap(value: str, width: int = TEXT_WIDTH, indent: str = "", subsequent: str = "") -> str:
    """Wrap text for the plain-text part without breaking words or URLs."""
    return textwrap.fill(
        value,
        width=width,
        initial_indent=indent,
        subsequent_indent=subsequent or " " * len(indent),
        break_long_words=False,
        break_on_hyphens=False,
    )


def text_direction(language: str) -> str:
    """Return "rtl" for a language written right to left, else "ltr"."""
    return "rtl" if language.split("-")[0].split("_")[0].lower() in RTL_LANGUAGES else "ltr"


def text_on(color: str) -> str:
    """Return the text colour readable on a background of color: near-white or near-black."""
    # brand.text_on computes it by WCAG 2.x and falls back to pure black where the
    # near-black misses 4.5:1 (a mid grey such as #777777 reaches it with neither).
    return brand.text_on(color) if brand.parse_hex(color) else "#ffffff"


class Footnotes:
    """Number the links of the plain-text part, each distinct URL once, in reading order."""

    def __init__(self, urls: Iterable[str | None] = ()) -> None:
        self._numbers: dict[str, int] = {}
        for url in urls:
            self.add(url)

    def add(self, url: str | None) -> int | None:
        """Give url a number if it is a safe link; return its number or None."""
        url = safe_url(url)
        if not url:
            return None
        return self._numbers.setdefault(url, len(self._numbers) + 1)

    def number(self, url: str | None) -> int | None:
        """Return the number of url, or None if it has none."""
        return self._numbers.get(safe_url(url))

    def cite(self, text: str, url: str | None) -> str:
        """Return text followed by the footnote mark of url, if url has a number."""
        number = self.number(url)
        return f"{text} [{number}]" if number else text

    @property
    def links(self) -> list[tuple[int, str]]:
        """Return every (number, URL) pair in order."""
        return [(n, url) for url, n in self._numbers.items()]


def footnotes_for(edition: Edition) -> Footnotes:
    """Number each item's link and the links to its other versions, in reading order."""
    # The editor's note comes first, under the greeting: its links are numbered first.
    urls: list[str | None] = [*note_links(edition.note)] if edition.note else []
    for item in edition.items:
        urls.append(item.article.url)
        urls.extend(other.url for other in item.also_in)
    return Footnotes(urls)


def make_environment(settings: Settings) -> jinja2.Environment:
    """Build the Jinja2 environment: user folder first, autoescape for HTML, strict."""
    folders = template_path(settings)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(f) for f in folders]),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2", "html", "xml.j2", "xml"),
            disabled_extensions=("txt.j2", "txt", "css"),
            default=True,
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    # Every string a reader sees goes through _() / ngettext() / {% trans %}: the catalog
    # of DIGEST_LANGUAGE (English where none is shipped), and its dates and numbers.
    language = i18n.language(settings.language)
    env.install_gettext_translations(  # type: ignore[attr-defined]
        language.translations, newstyle=True
    )
    env.filters["safe_url"] = safe_url
    env.filters["day"] = language.short_date
    env.filters["long_date"] = language.long_date
    env.filters["full_date"] = language.full_date
    env.filters["number"] = language.number
    env.filters["wrap"] = wrap
    env.filters["site_name"] = site_name
    env.filters["story_anchor"] = story_anchor
    return env


def story_anchor(item: Item, edition: Edition) -> str:
    """Return the id of an item's place in the email, which "In this issue" links to.

    Numbered by place rather than named by article id: the same edition renders the
    same ids wherever its sources were read from.
    """
    for number, other in enumerate(edition.items, start=1):
        if other is item:
            return f"story-{number}"
    return f"story-{item.article.id}"


def subject_for(edition: Edition, settings: Settings | None = None) -> str:
    """Return the subject line: DIGEST_SUBJECT filled in (by default title and date)."""
    pattern = settings.subject if settings is not None else subjects.DEFAULT
    language = settings.language if settings is not None else i18n.SOURCE_LANGUAGE
    return subjects.fill(pattern, edition, language)


def preheader_for(edition: Edition, limit: int = 140) -> str:
    """Return the inbox preview line: the leading headlines."""
    titles = [item.article.title for item in edition.items[:3]]
    text = " · ".join(titles)
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _squeeze_css(css: str) -> str:
    """Return css without comments and without the spaces a browser does not need."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    css = re.sub(r"\s+", " ", css)
    css = re.sub(r"\s*([{};,])\s*", r"\1", css)
    css = re.sub(r":\s+", ":", css).replace(" !important", "!important")
    return _merge_media(css.replace(";}", "}").strip())


def _merge_media(css: str) -> str:
    """Return squeezed css with the rules of each @media query in one block, in order.

    The stylesheet keeps separate parts in separate blocks (digest.css ends with the
    note's and the item shapes' own); the email carries each query once.
    """
    blocks: dict[str, list[str]] = {}
    pos = 0
    while pos < len(css):
        if not css.startswith("@media", pos):
            return css  # anything but @media blocks: left as it is
        open_at = css.find("{", pos)
        depth, end = 0, open_at
        for end in range(open_at, len(css)):
            depth += {"{": 1, "}": -1}.get(css[end], 0)
            if depth == 0:
                break
        if open_at < 0 or depth:
            return css
        blocks.setdefault(css[pos:open_at], []).append(css[open_at + 1 : end])
        pos = end + 1
    return "".join(f"{query}{{{''.join(rules)}}}" for query, rules in blocks.items())


def trim_html(html: str) -> str:
    """Drop indentation and blank lines, and squeeze the <style> blocks.

    Each line break stays, so the whitespace between inline elements keeps its meaning.
    Only ASCII blanks are dropped: a no-break space in article text is content. (A user
    template with <pre> would lose its indentation.)
    """
    html = _STYLE_BLOCK.sub(lambda m: m.group(1) + _squeeze_css(m.group(2)) + m.group(3), html)
    lines = (line.strip(" \t\r\f") for line in html.split("\n"))
    return "\n".join(line for line in lines if line) + "\n"


def inline_css(html: str) -> str:
    """Inline the CSS into style attributes; only the @media rules stay in a <style> block."""
    # Imported here: premailer brings lxml and cssutils, which commands that render
    # nothing (status, --help) should not pay for.
    from premailer import Premailer

    inlined = Premailer(
        html,
        allow_network=False,  # rendering must never fetch anything
        keep_style_tags=False,  # the rules inlined are not repeated in <style>
        remove_classes=False,  # the @media rules still need them
        strip_important=False,
        disable_validation=True,
        # The templates set width and height attributes themselves; premailer would
        # otherwise turn a CSS width: 100% into width="100%" on the 600 px table.
        disable_basic_attributes=["width", "height"],
        cssutils_logging_level=logging.CRITICAL,
    ).transform(pretty_print=False)
    return trim_html(str(inlined))


def _render(
    env: jinja2.Environment, name: str, context: dict[str, object], folders: list[Path]
) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound as err:
        searched = ", ".join(str(f) for f in folders)
        raise RenderError(f"template {err.name} not found (searched: {searched})") from err
    except jinja2.TemplateSyntaxError as err:
        raise RenderError(f"{err.filename or err.name}: line {err.lineno}: {err.message}") from err
    except jinja2.UndefinedError as err:
        raise RenderError(
            f"{_where_in_template(err, name)}: {err.message}",
            hint="a template uses a variable the digest does not provide",
        ) from err


def _where_in_template(err: BaseException, name: str) -> str:
    """Return the template file and line an error was raised in (an included partial, say).

    Jinja2 rewrites the traceback so that template frames carry the template's file name
    and line; the innermost such frame holds the mistake.
    """
    where = name
    tb = err.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".j2", ".css")):
            where = f"{filename}: line {tb.tb_lineno}"
        tb = tb.tb_next
    return where


def _note_context(edition: Edition, notes: Footnotes) -> dict[str, object]:
    """Return the editor's note for both parts: sanitised HTML, and text with footnotes."""
    # note_html's output is nh3-cleaned with a short allow-list (digest.note).
    html = Markup(note_html(edition.note)) if edition.note else Markup()  # noqa: S704
    text = note_text(edition.note, notes.cite) if edition.note else ""
    return {"note_html": html, "note_text": text}


def render_edition(settings: Settings, edition: Edition) -> RenderedEdition:
    """Render edition to inlined HTML and plain text, once for every recipient."""
    env = make_environment(settings)
    folders = template_path(settings)
    subject = subject_for(edition, settings)
    preheader = preheader_for(edition)
    notes = footnotes_for(edition)
    context: dict[str, object] = {
        "edition": edition,
        "subject": subject,
        "preheader": preheader,
        "date_text": i18n.language(settings.language).full_date(edition.date),
        "language": settings.language,
        "direction": text_direction(settings.language),
        "base_url": settings.base_url,
        "view_url": edition_page_url(settings, edition.id),
        "tagline": settings.tagline,
        "brand_color": settings.brand_color,
        "link_color": brand.readable_on(settings.brand_color, (EMAIL_LIGHT_BACKGROUND,)),
        "link_color_dark": brand.readable_on(settings.brand_color, (EMAIL_DARK_BACKGROUND,)),
        "contents_from": CONTENTS_FROM,
        "thumb": THUMB,
        "logo": {
            "url": settings.logo_url,
            "width": settings.logo_width,
            "height": settings.logo_height,
        },
        "postal_address": settings.postal_address,
        "unsubscribe_url": UNSUBSCRIBE_PLACEHOLDER,
        "preferences_url": PREFERENCES_PLACEHOLDER,
        "greeting": GREETING_PLACEHOLDER,
        "notes": notes,
    }
    context.update(_note_context(edition, notes))
    # The stylesheet is ours or the user's own file, never article content; it is a
    # template too, so that the brand colour reaches it.
    context["css"] = Markup(_render(env, CSS_FILE, context, folders))  # noqa: S704
    html = inline_css(_render(env, HTML_TEMPLATE, context, folders))
    text = _render(env, TEXT_TEMPLATE, context, folders)
    logger.debug(
        "rendered edition %s: %d bytes of HTML, %d of text", edition.id, len(html), len(text)
    )
    return RenderedEdition(
        edition=edition,
        subject=subject,
        preheader=preheader,
        html=html,
        text=text,
        language=settings.language,
    )


def greeting(name: str, language: str = i18n.SOURCE_LANGUAGE) -> str:
    """Return the greeting for a subscriber's name as plain text; a blank name gets none.

    Only the first name: a letter is addressed "Hello Ada,", not "Hello Ada Lovelace,". A
    name written without spaces (as many East Asian names are) is kept whole.
    """
    words = name.split()
    found = i18n.language(language)
    if not words:
        return found.gettext(GREETING_WITHOUT_NAME)
    text: str = found.gettext(GREETING) % {"name": words[0]}
    # The greeting line is filled in after the text part was wrapped: a first name too
    # long for one line of it is left out rather than break the 72 columns.
    if columns(text) > TEXT_WIDTH:
        return str(found.gettext(GREETING_WITHOUT_NAME))
    return text


def columns(text: str) -> int:
    """Return how many columns text takes in a fixed-width font: East Asian wide and
    full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def without_greeting_placeholder(text: str, language: str = i18n.SOURCE_LANGUAGE) -> str:
    """Return text (HTML or plain) with the greeting any reader of the list may see."""
    return text.replace(GREETING_PLACEHOLDER, greeting("", language))


def generic_copy(rendered: RenderedEdition) -> RenderedEdition:
    """Return rendered as it is shown outside a subscriber's own message.

    The unsubscribe placeholder stays: the outbox keeps it and the archive swaps it for
    the general unsubscribe page when it serves the page.
    """
    return replace(
        rendered,
        html=without_greeting_placeholder(rendered.html, rendered.language),
        text=without_greeting_placeholder(rendered.text, rendered.language),
    )


def with_general_unsubscribe(rendered: RenderedEdition, base_url: str) -> RenderedEdition:
    """Return rendered with its unsubscribe link going to the general page, which explains
    itself: for the sample message, opened in a mail program outside any subscriber's."""
    return replace(
        rendered,
        html=public_links(rendered.html, base_url),
        text=public_links(rendered.text, base_url),
    )


def render_notice(settings: Settings, context: dict[str, object]) -> tuple[str, str]:
    """Render a sign-up email (confirm, already subscribed, welcome): inlined HTML, text."""
    env = make_environment(settings)
    folders = template_path(settings)
    context = {
        "language": settings.language,
        "direction": text_direction(settings.language),
        "brand_color": settings.brand_color,
        "on_brand_color": text_on(settings.brand_color),
        "postal_address": settings.postal_address,
        "list_title": settings.title,
        **context,
    }
    html = inline_css(_render(env, NOTICE_HTML, context, folders))
    return html, _render(env, NOTICE_TEXT, context, folders)


def public_links(text: str, base_url: str) -> str:
    """Return text with the general pages where a reader's own links would go."""
    base = base_url.rstrip("/")
    text = text.replace(UNSUBSCRIBE_PLACEHOLDER, f"{base}/unsubscribe/")
    return text.replace(PREFERENCES_PLACEHOLDER, f"{base}/subscribe")


def render_page(settings: Settings, name: str, context: dict[str, object]) -> str:
    """Render one of the web pages (templates/web/), autoescaped like the email."""
    env = make_environment(settings)
    return _render(env, f"web/{name}", context, template_path(settings))
