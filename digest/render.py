"""Render an edition once: Jinja2 templates, CSS inlined by premailer, and a text part."""

from __future__ import annotations

import logging
import textwrap
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup
from premailer import Premailer

from digest.config import Settings
from digest.errors import RenderError
from digest.models import Edition, RenderedEdition

logger = logging.getLogger(__name__)

HTML_TEMPLATE = "digest.html.j2"
TEXT_TEMPLATE = "digest.txt.j2"
CSS_FILE = "digest.css"
TEXT_WIDTH = 72
SAFE_SCHEMES = {"http", "https", "mailto"}


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


def format_day(value: date | datetime) -> str:
    """Format a date the way the digest shows it: 28 Nov 2026."""
    return f"{value.day} {value:%b %Y}"


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
    )
    env.filters["safe_url"] = safe_url
    env.filters["day"] = format_day
    env.filters["wrap"] = wrap
    return env


def _date_text(day: date) -> str:
    return f"{day:%A}, {day.day} {day:%B %Y}"


def subject_for(edition: Edition) -> str:
    """Return the subject line: the digest's title and the edition's date."""
    return f"{edition.title}: {format_day(edition.date)}"


def preheader_for(edition: Edition, limit: int = 140) -> str:
    """Return the inbox preview line: the leading headlines."""
    titles = [item.article.title for item in edition.items[:3]]
    text = " · ".join(titles)
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def inline_css(html: str) -> str:
    """Inline the CSS into style attributes; @media rules stay in a <style> block."""
    return str(
        Premailer(
            html,
            allow_network=False,  # rendering must never fetch anything
            keep_style_tags=False,
            remove_classes=False,
            strip_important=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
        ).transform()
    )


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
            f"{name}: {err.message}", hint="a template uses a variable the digest does not provide"
        ) from err


def render_edition(settings: Settings, edition: Edition) -> RenderedEdition:
    """Render edition to inlined HTML and plain text, once for every recipient."""
    env = make_environment(settings)
    folders = template_path(settings)
    try:
        css, _, _ = env.loader.get_source(env, CSS_FILE)  # type: ignore[union-attr]
    except jinja2.TemplateNotFound as err:
        searched = ", ".join(str(f) for f in folders)
        raise RenderError(f"{CSS_FILE} not found (searched: {searched})") from err
    subject = subject_for(edition)
    preheader = preheader_for(edition)
    context: dict[str, object] = {
        "edition": edition,
        "subject": subject,
        "preheader": preheader,
        "date_text": _date_text(edition.date),
        "language": settings.language,
        "base_url": settings.base_url,
        # The stylesheet is ours or the user's own file, never article content.
        "css": Markup(css),  # noqa: S704
    }
    html = inline_css(_render(env, HTML_TEMPLATE, context, folders))
    text = _render(env, TEXT_TEMPLATE, context, folders)
    logger.debug(
        "rendered edition %s: %d bytes of HTML, %d of text", edition.id, len(html), len(text)
    )
    return RenderedEdition(
        edition=edition, subject=subject, preheader=preheader, html=html, text=text
    )
