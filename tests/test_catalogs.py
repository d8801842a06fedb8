"""The catalogs: every string of the templates and code translated in every language."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import catalogs

REFRESH = "run `.venv/bin/python scripts/catalogs.py` and translate what it lists"
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0 +-]*\d*(?:\.\d+)?[a-zA-Z%]")


def _catalog(language: str) -> Catalog:
    with catalogs.po_path(language).open("rb") as handle:
        return read_po(handle, locale=language, domain=catalogs.DOMAIN)


def _forms(value: str | tuple[str, ...] | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


@pytest.fixture(scope="module")
def extracted() -> Catalog:
    """Return every string the templates and the code mark for translation."""
    return catalogs.extract_template()


def test_strings_are_found_in_templates_and_code(extracted: Catalog) -> None:
    """Find the Python strings (N_) and the template strings (_ and ngettext)."""
    files = {path for m in extracted for path, _ in m.locations}
    assert "digest/render.py" in files and "digest/notices.py" in files
    assert "templates/confirm.html.j2" in files and "templates/confirm.txt.j2" in files
    assert "Hello %(name)s," in extracted


@pytest.mark.parametrize("language", catalogs.LANGUAGES)
def test_every_string_is_translated_in_every_catalog(extracted: Catalog, language: str) -> None:
    """Hold each extracted msgid, translated in every plural form and not fuzzy."""
    catalog = _catalog(language)
    problems = []
    for wanted in extracted:
        if not wanted.id:
            continue
        found = catalog.get(wanted.id, wanted.context)
        label = wanted.id if isinstance(wanted.id, str) else wanted.id[0]
        if found is None:
            problems.append(f"missing: {label!r}")
        elif found.fuzzy:
            problems.append(f"fuzzy: {label!r}")
        elif not catalogs.translated(found):
            problems.append(f"untranslated: {label!r}")
        elif isinstance(wanted.id, (list, tuple)) != isinstance(found.string, (list, tuple)):
            problems.append(f"plural forms: {label!r}")
    assert problems == [], f"{catalogs.po_path(language)}: {REFRESH}:\n" + "\n".join(problems)


@pytest.mark.parametrize("language", catalogs.LANGUAGES)
def test_placeholders_match_between_msgid_and_msgstr(language: str) -> None:
    """Keep every %(name)s of the msgid in each translation, and no other."""
    problems = []
    for message in _catalog(language):
        if not message.id:
            continue
        ids = _forms(message.id)
        wanted = sorted(set(_PLACEHOLDER.findall(ids[-1])) | set(_PLACEHOLDER.findall(ids[0])))
        for form in _forms(message.string):
            found = sorted(set(_PLACEHOLDER.findall(form)))
            # A singular may leave out %(num)s ("one story"); nothing else may differ.
            if found != wanted and not (set(found) <= set(wanted) and len(ids) > 1):
                problems.append(f"{ids[0]!r}: {wanted} but {form!r} has {found}")
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("language", catalogs.LANGUAGES)
def test_the_compiled_catalogs_match_their_sources(language: str) -> None:
    """Ship each .mo compiled from its .po as it is now."""
    mo = catalogs.po_path(language).with_suffix(".mo")
    assert mo.is_file(), f"{mo} is missing: {REFRESH}"
    assert mo.read_bytes() == catalogs.compiled(language), f"{mo} is stale: {REFRESH}"


def test_the_catalogs_are_up_to_date_and_a_refresh_changes_nothing() -> None:
    """Report nothing to do: files current, every string translated."""
    assert catalogs.refresh(check=True) == [], REFRESH


def test_a_string_that_returns_takes_its_old_translation() -> None:
    """Give a new msgid the translation kept for it as obsolete, and drop what left."""
    template = Catalog(domain=catalogs.DOMAIN)
    template.add("In this issue", locations=[("templates/digest.html.j2", 1)])
    template.add("A string nobody translated yet", locations=[("templates/x.j2", 2)])
    catalog = catalogs.updated(template, "de")
    assert catalog["In this issue"].string == "In dieser Ausgabe"
    assert catalog["A string nobody translated yet"].string == ""
    assert catalogs.missing(catalog) == ["A string nobody translated yet"]
    # What the code no longer uses is kept for its return, not shipped.
    assert "Hello %(name)s," in catalog.obsolete
    english = catalogs.updated(template, "en")
    assert english["A string nobody translated yet"].string == "A string nobody translated yet"


def test_english_plurals_are_filled_from_the_msgids() -> None:
    """Fill both English plural forms from the source."""
    template = Catalog(domain=catalogs.DOMAIN)
    template.add(("%(num)s day", "%(num)s days"), locations=[("templates/x.j2", 1)])
    found: Message = catalogs.updated(template, "en")["%(num)s day"]
    assert _forms(found.string) == ["%(num)s day", "%(num)s days"]
