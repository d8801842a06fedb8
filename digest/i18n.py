"""Languages: the gettext catalog, the dates and the numbers of DIGEST_LANGUAGE.

Words come from the catalogs shipped in digest/locale/ (refreshed by scripts/catalogs.py);
a language without one reads English. Dates and numbers come from Babel's CLDR data,
which knows far more languages than we have catalogs for, so a Hebrew digest shows Hebrew
dates even while its words are English.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

logger = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "digest"
# The language the strings are written in; its catalog is the msgids themselves.
SOURCE_LANGUAGE = "en"
# Bare "en" keeps the day-month-year dates the digest has always shown (28 Nov 2026);
# en-US and the other regions get their own.
_FORMAT_DEFAULTS = {"en": "en_GB"}


def N_(message: str) -> str:
    """Mark message for the catalogs without translating it here (module-level text)."""
    return message


def shipped() -> tuple[str, ...]:
    """Return the languages with a compiled catalog, such as ("de", "en", "es", "fr")."""
    if not LOCALE_DIR.is_dir():
        return ()
    return tuple(
        sorted(
            p.name for p in LOCALE_DIR.iterdir() if (p / "LC_MESSAGES" / f"{DOMAIN}.mo").is_file()
        )
    )


def _candidates(tag: str) -> list[str]:
    """Return catalog names to try for a BCP 47 tag, most specific first.

    "de-AT" gives de_AT then de; "zh-Hant-TW" gives zh_Hant_TW, zh_Hant, zh.
    """
    parts = [p for p in tag.replace("_", "-").split("-") if p]
    if not parts:
        return []
    parts[0] = parts[0].lower()
    for i, part in enumerate(parts[1:], start=1):
        # Scripts are title case (Hant), regions upper case (AT, 419).
        parts[i] = part.title() if len(part) == 4 else part.upper()
    return ["_".join(parts[:n]) for n in range(len(parts), 0, -1)]


def _locale(tag: str) -> Locale | None:
    """Return Babel's locale for tag (for dates and numbers), or None if it knows none."""
    for name in _candidates(tag):
        try:
            return Locale.parse(_FORMAT_DEFAULTS.get(name, name))
        except (UnknownLocaleError, ValueError):
            continue
    return None


@dataclass(frozen=True, eq=False)
class Language:
    """One DIGEST_LANGUAGE resolved: its catalog, and Babel's locale for its formats."""

    tag: str
    catalog: str
    locale: Locale
    translations: NullTranslations

    def gettext(self, message: str) -> str:
        """Return message in this language (as it is where the catalog has none)."""
        # The empty msgid is the catalog's header, never a text to show.
        return self.translations.gettext(message) if message else ""

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """Return the form of a message for the count n."""
        return self.translations.ngettext(singular, plural, n)

    def full_date(self, day: date | datetime) -> str:
        """Return day written out, as the masthead shows it: Wednesday, 2 December 2026."""
        return format_date(_day(day), "full", locale=self.locale)

    def long_date(self, day: date | datetime) -> str:
        """Return day without its weekday: 2 December 2026."""
        return format_date(_day(day), "long", locale=self.locale)

    def short_date(self, day: date | datetime) -> str:
        """Return day in short, as items and subjects show it: 2 Dec 2026."""
        return format_skeleton("yMMMd", _day(day), locale=self.locale)

    def number(self, value: float) -> str:
        """Return a count or number with this language's digit grouping: 12,345 or 12.345."""
        return format_decimal(value, locale=self.locale)


def _day(value: date | datetime) -> date:
    # The day as stored, without converting zones: what the digest has always shown.
    return value.date() if isinstance(value, datetime) else value


@cache
def language(tag: str) -> Language:
    """Return DIGEST_LANGUAGE's tag resolved, saying once per process what is missing."""
    available = shipped()
    catalog = next((c for c in _candidates(tag) if c in available), "")
    found = _locale(tag)
    if not catalog:
        missing = "words and dates stay English" if found is None else "words stay English"
        # Once per process (cached), not per render: the publisher needs to hear it once.
        logger.warning(
            "DIGEST_LANGUAGE=%s: no catalog for this language (shipped: %s); %s",
            tag,
            ", ".join(available) or "none",
            missing,
        )
    translations: NullTranslations = (
        Translations.load(str(LOCALE_DIR), [catalog], DOMAIN) if catalog else NullTranslations()
    )
    return Language(
        tag=tag,
        catalog=catalog or SOURCE_LANGUAGE,
        locale=found or Locale.parse(_FORMAT_DEFAULTS[SOURCE_LANGUAGE]),
        translations=translations,
    )
