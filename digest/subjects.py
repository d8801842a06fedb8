"""The subject line pattern (DIGEST_SUBJECT): checked when the settings load, filled per edition."""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digest.models import Edition

DEFAULT = "{title}: {date}"
# What a pattern may name; each is filled in the edition's language.
VARIABLES = {
    "title": "the digest's title (DIGEST_TITLE)",
    "date": "the edition's date, short, in DIGEST_LANGUAGE (2 Dec 2026)",
    "long_date": "the edition's date written out (Wednesday, 2 December 2026)",
    "top_title": "the first item's title",
    "count": "how many items the edition has",
}


def problem(pattern: str) -> str:
    """Return what is wrong with pattern in one phrase, or "" when it can be filled."""
    try:
        fields = list(string.Formatter().parse(pattern))
    except ValueError as err:
        return f"{err} (write {{{{ and }}}} for a literal brace)"
    names = ", ".join("{" + name + "}" for name in VARIABLES)
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in VARIABLES:
            shown = "{" + name + "}" if name else "{}"
            return f"unknown variable {shown}: use {names}"
        if spec or conversion:
            return f"{{{name}}} takes no format or conversion: write it bare"
    return ""


def fill(pattern: str, edition: Edition, language: str) -> str:
    """Return the subject for edition: pattern filled in, on one line."""
    # Imported here: the settings check patterns without loading Babel's data.
    from digest.i18n import language as resolve

    found = resolve(language)
    items = edition.items
    subject = pattern.format(
        title=edition.title,
        date=found.short_date(edition.date),
        long_date=found.full_date(edition.date),
        top_title=items[0].article.title if items else "",
        count=found.number(len(items)),
    )
    # A title from a feed may carry line breaks or tabs: a header must be one line.
    return " ".join("".join(c if c.isprintable() else " " for c in subject).split())
