"""Refresh the translation catalogs: extract, update every .po, compile every .mo.

    .venv/bin/python scripts/catalogs.py           # refresh; lists what needs translating
    .venv/bin/python scripts/catalogs.py --check   # change nothing; exit 1 if anything is due

The strings come from the templates (Jinja's extractor: _(), ngettext(), {% trans %}) and
from digest/ (Python: _(), gettext(), ngettext(), N_()). Each language's catalog keeps its
translations; English is the source, so its catalog is filled from the msgids. A string
that leaves the code stays in the catalog as obsolete (#~), and a string that comes back
(or is written the way a translator anticipated) takes that translation again. Running it
twice changes nothing the second time.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from babel import Locale
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALE_DIR = ROOT / "digest" / "locale"
DOMAIN = "digest"
SOURCE_LANGUAGE = "en"
LANGUAGES = ("en", "de", "fr", "es")
# The same settings as render.make_environment, so that the extractor reads the
# templates as they render; silent off: a template that does not parse is an error.
JINJA_OPTIONS = {
    "extensions": "jinja2.ext.i18n",
    "trim_blocks": "true",
    "lstrip_blocks": "true",
    "keep_trailing_newline": "true",
    "newstyle_gettext": "true",
    "silent": "false",
}
# Headers carry no clock: a refresh with nothing new must leave the files as they were.
FIXED_DATE = datetime(2026, 1, 1, tzinfo=UTC)
Key = str | tuple[str, str]


def sources(root: Path = ROOT) -> Iterator[tuple[Path, str]]:
    """Yield every file strings are extracted from, with its extraction method."""
    for path in sorted((root / "templates").rglob("*.j2")):
        yield path, "jinja2.ext:babel_extract"
    for path in sorted((root / "digest").rglob("*.py")):
        if "migrations" not in path.parts:
            yield path, "python"


def extract_template(root: Path = ROOT) -> Catalog:
    """Return every translatable string of the templates and the code, as a catalog."""
    template = Catalog(domain=DOMAIN, project="digest", creation_date=FIXED_DATE, fuzzy=False)
    for path, method in sources(root):
        options = JINJA_OPTIONS if method != "python" else {}
        with path.open("rb") as handle:
            found = extract(
                method, handle, DEFAULT_KEYWORDS, comment_tags=("Translators:",), options=options
            )
            for lineno, message, comments, context in found:
                template.add(
                    message,
                    locations=[(path.relative_to(root).as_posix(), lineno)],
                    auto_comments=comments,
                    context=context,
                )
    return template


def po_path(language: str) -> Path:
    """Return the .po file of language."""
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def key_of(message: Message) -> Key:
    """Return message's key in a catalog: its (singular) msgid, with its context if any."""
    ident = message.id if isinstance(message.id, str) else message.id[0]
    return ident if message.context is None else (ident, message.context)


def translated(message: Message) -> bool:
    """Return whether every form of message has a translation."""
    strings = message.string if isinstance(message.string, (list, tuple)) else [message.string]
    return bool(strings) and all(strings)


def _read(language: str) -> Catalog:
    path = po_path(language)
    if not path.is_file():
        return Catalog(locale=language, domain=DOMAIN, project="digest", fuzzy=False)
    with path.open("rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


def updated(template: Catalog, language: str) -> Catalog:
    """Return language's catalog with exactly the template's strings, translations kept."""
    old = _read(language)
    known: dict[Key, Message] = dict(old.obsolete)
    known.update({key_of(m): m for m in old if m.id})
    new = Catalog(
        locale=language,
        domain=DOMAIN,
        project="digest",
        creation_date=FIXED_DATE,
        revision_date=FIXED_DATE,
        fuzzy=False,
    )
    new.header_comment = (
        f"# {Locale.parse(language).english_name} strings of digest's emails and pages.\n"
        "# Refreshed by scripts/catalogs.py; translate each empty msgstr by hand."
    )
    new.language_team = old.language_team
    new.last_translator = old.last_translator
    for message in template:
        if not message.id:
            continue
        previous = known.pop(key_of(message), None)
        plural = isinstance(message.id, (list, tuple))
        string: str | tuple[str, ...] = tuple([""] * new.num_plurals) if plural else ""
        flags: set[str] = set()
        user_comments: list[str] = []
        if previous is not None:
            flags = set(previous.flags) & {"fuzzy"}
            user_comments = list(previous.user_comments)
            if isinstance(previous.string, (list, tuple)):
                string = tuple(previous.string) if plural else string
            elif not plural:
                string = previous.string or ""
        if language == SOURCE_LANGUAGE:
            # The source's own words: singular, then the plural for every other form.
            ids = [message.id] if isinstance(message.id, str) else list(message.id)
            string = tuple(ids[:1] + ids[-1:] * (new.num_plurals - 1)) if plural else ids[0]
            flags = set()
        new.add(
            message.id,
            string,
            locations=message.locations,
            flags=flags,
            auto_comments=message.auto_comments,
            user_comments=user_comments,
            context=message.context,
        )
    for key, message in known.items():
        new.obsolete[key] = message
    return new


def po_bytes(catalog: Catalog) -> bytes:
    """Return catalog written as a .po file."""
    out = io.BytesIO()
    write_po(out, catalog, width=88, include_previous=False)
    return out.getvalue()


def mo_bytes(catalog: Catalog) -> bytes:
    """Return catalog compiled as a .mo file, fuzzy entries left out."""
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def compiled(language: str) -> bytes:
    """Return the .mo file language's .po file compiles to."""
    with po_path(language).open("rb") as handle:
        return mo_bytes(read_po(handle, locale=language, domain=DOMAIN))


def missing(catalog: Catalog) -> list[str]:
    """Return the msgids of catalog that are untranslated or fuzzy."""
    return [
        str(m.id if isinstance(m.id, str) else m.id[0])
        for m in catalog
        if m.id and (m.fuzzy or not translated(m))
    ]


def refresh(check: bool = False) -> list[str]:
    """Bring every catalog up to date (or, with check, only say what is not); return the
    problems: files out of date and strings to translate, one line each."""
    template = extract_template()
    problems: list[str] = []
    for language in LANGUAGES:
        catalog = updated(template, language)
        po, mo = po_path(language), po_path(language).with_suffix(".mo")
        text = po_bytes(catalog)
        binary = mo_bytes(catalog)
        for path, data in ((po, text), (mo, binary)):
            if path.is_file() and path.read_bytes() == data:
                continue
            if check:
                problems.append(f"{path.relative_to(ROOT)}: out of date")
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        problems += [f"{po.relative_to(ROOT)}: to translate: {m!r}" for m in missing(catalog)]
    return problems


def main() -> int:
    """Refresh the catalogs (or check them) and list what still needs translating."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="change nothing; report")
    problems = refresh(check=parser.parse_args().check)
    sys.stdout.write("".join(f"{line}\n" for line in problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
