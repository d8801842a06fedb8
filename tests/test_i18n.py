"""Languages: catalog choice, dates and numbers through Babel, greetings, notices, subjects."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from _editions import edition
from lxml import html as lxml_html
from test_render import with_env

from digest import i18n
from digest.config import Settings
from digest.errors import ConfigError
from digest.models import Item
from digest.render import (
    GREETING_PLACEHOLDER,
    generic_copy,
    greeting,
    render_edition,
    render_notice,
    subject_for,
)

DAY = date(2026, 12, 2)


@pytest.fixture(autouse=True)
def fresh_languages() -> Iterator[None]:
    """Resolve each tag anew, so that the warning of each test is its own."""
    i18n.language.cache_clear()
    yield
    i18n.language.cache_clear()


def test_the_four_catalogs_are_shipped() -> None:
    """Ship English, German, French and Spanish, compiled."""
    assert set(i18n.shipped()) >= {"en", "de", "fr", "es"}


@pytest.mark.parametrize(
    ("tag", "catalog"),
    [("de", "de"), ("de-AT", "de"), ("de_CH", "de"), ("DE-at", "de"), ("fr-CA", "fr"),
     ("es-419", "es"), ("en-US", "en"), ("pt-BR", "en"), ("he", "en")],
)  # fmt: skip
def test_a_language_tag_finds_its_best_catalog(tag: str, catalog: str) -> None:
    """Take the catalog of the primary language when no regional one exists."""
    assert i18n.language(tag).catalog == catalog


def test_a_language_without_catalog_reads_english_and_says_so_once(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Log one line naming DIGEST_LANGUAGE however often the edition is rendered."""
    pt = with_env(settings, DIGEST_LANGUAGE="pt-BR")
    with caplog.at_level(logging.INFO, logger="digest.i18n"):
        for _ in range(3):
            rendered = render_edition(pt, edition(2))
    lines = [r.getMessage() for r in caplog.records if r.name == "digest.i18n"]
    assert len(lines) == 1 and "DIGEST_LANGUAGE=pt-BR" in lines[0], lines
    assert "words stay English" in lines[0]
    assert "You receive this digest" in rendered.text
    # The words are English, the dates Brazilian Portuguese.
    assert "sábado, 28 de novembro de 2026" in rendered.text


def test_an_unknown_tag_falls_back_to_english_dates_too(caplog: pytest.LogCaptureFixture) -> None:
    """Name the key and say that dates stay English as well."""
    with caplog.at_level(logging.INFO, logger="digest.i18n"):
        found = i18n.language("klingon")
    assert found.catalog == "en" and found.full_date(DAY) == "Wednesday, 2 December 2026"
    assert "words and dates stay English" in caplog.text


@pytest.mark.parametrize(
    ("tag", "full", "short", "number"),
    [
        ("en", "Wednesday, 2 December 2026", "2 Dec 2026", "12,345"),
        ("en-US", "Wednesday, December 2, 2026", "Dec 2, 2026", "12,345"),
        ("de", "Mittwoch, 2. Dezember 2026", "2. Dez. 2026", "12.345"),
        ("fr", "mercredi 2 décembre 2026", "2 déc. 2026", "12\u202f345"),
        ("es", "miércoles, 2 de diciembre de 2026", "2 dic 2026", "12.345"),
    ],
)
def test_dates_and_numbers_are_written_in_the_language(
    tag: str, full: str, short: str, number: str
) -> None:
    """Write the masthead date, item dates and counts as the language does."""
    found = i18n.language(tag)
    assert found.full_date(DAY) == full
    assert found.short_date(datetime(2026, 12, 2, 23, 30, tzinfo=UTC)) == short
    assert found.number(12345) == number


def test_the_masthead_and_item_dates_follow_the_language(settings: Settings) -> None:
    """Show the German date in the masthead and on each item, in both parts."""
    rendered = render_edition(with_env(settings, DIGEST_LANGUAGE="de-AT"), edition(2))
    for part in (rendered.html, rendered.text):
        assert "Samstag, 28. November 2026" in part
        assert "28. Nov. 2026" in part
    assert lxml_html.document_fromstring(rendered.html).get("lang") == "de-AT"


def test_a_right_to_left_language_keeps_dir_and_gets_its_dates(settings: Settings) -> None:
    """Keep dir="rtl" for Hebrew and Arabic; their dates are their own."""
    for tag, month in (("he", "בנובמבר"), ("ar", "نوفمبر")):
        rendered = render_edition(with_env(settings, DIGEST_LANGUAGE=tag), edition(1))
        root = lxml_html.document_fromstring(rendered.html)
        assert root.get("dir") == "rtl" and root.get("lang") == tag
        assert month in rendered.html and month in rendered.text


@pytest.mark.parametrize(
    ("tag", "named", "anonymous"),
    [("en", "Hello Ada,", "Hello,"), ("de", "Hallo Ada,", "Hallo,"),
     ("fr", "Bonjour Ada,", "Bonjour,"), ("es-MX", "Hola, Ada:", "Hola:")],
)  # fmt: skip
def test_the_greeting_is_in_the_language(tag: str, named: str, anonymous: str) -> None:
    """Greet by first name in the language, and without a name the same way."""
    assert greeting("Ada Lovelace", tag) == named
    assert greeting("", tag) == anonymous
    # A name is a value, never part of the pattern.
    assert greeting("100%(name)s", tag) == named.replace("Ada", "100%(name)s")


def test_copies_without_a_reader_greet_in_the_edition_language(settings: Settings) -> None:
    """Put the language's greeting without a name in the outbox and archive copies."""
    rendered = render_edition(with_env(settings, DIGEST_LANGUAGE="fr"), edition(1))
    assert GREETING_PLACEHOLDER in rendered.text
    public = generic_copy(rendered)
    assert "Bonjour," in public.text and GREETING_PLACEHOLDER not in public.html


@pytest.mark.parametrize(
    ("tag", "words"),
    [("de", ("Hallo Ada,", "Abonnement bestätigen", "Der Link gilt 72 Stunden")),
     ("fr", ("Bonjour Ada,", "Confirmer mon abonnement", "Le lien est valable 72 heures")),
     ("es", ("Hola, Ada:", "Confirmar mi suscripción", "El enlace es válido durante 72 horas"))],
)  # fmt: skip
def test_the_confirmation_email_is_in_the_language(
    settings: Settings, tag: str, words: tuple[str, ...]
) -> None:
    """Translate every line of the confirmation, in both parts (the button in HTML)."""
    context: dict[str, object] = {
        "kind": "confirm", "name": "Ada", "confirm_url": "https://example.org/confirm/x",
        "preferences_url": "", "unsubscribe_url": "", "ttl_hours": 72, "latest_url": "",
        "subject": "s",
    }  # fmt: skip
    html, text = render_notice(with_env(settings, DIGEST_LANGUAGE=tag), context)
    greeting_line, button, validity = words
    assert button in html
    for word in (greeting_line, validity):
        assert word in html and word in " ".join(text.split()), word
    assert "Hello" not in text and "Confirm my" not in html


def test_notice_subjects_are_translated() -> None:
    """Word the three notice subjects in the language, with the list's title."""
    from digest.notices import SUBJECTS

    de = i18n.language("de")
    assert de.gettext(SUBJECTS["confirm"]) % {"title": "T"} == "Bestätigen Sie Ihr Abonnement von T"
    assert i18n.language("es").gettext(SUBJECTS["welcome"]) % {"title": "T"} == (
        "Te damos la bienvenida a T"
    )


# DIGEST_SUBJECT


def test_the_default_subject_is_todays(settings: Settings) -> None:
    """Reproduce the subject the digest always had: title and short date."""
    assert settings.subject == "{title}: {date}"
    assert render_edition(settings, edition(2)).subject == "Daily Digest: 28 Nov 2026"
    assert subject_for(edition(2)) == "Daily Digest: 28 Nov 2026"


def test_the_subject_pattern_fills_every_variable_in_the_language(settings: Settings) -> None:
    """Fill {title}, {date}, {long_date}, {top_title} and {count}, dates in German."""
    de = with_env(
        settings,
        DIGEST_LANGUAGE="de",
        DIGEST_SUBJECT="{top_title} | {title}, {date} ({long_date}), {count} {{x}}",
    )
    ed = edition(2)
    assert render_edition(de, ed).subject == (
        f"{ed.items[0].article.title} | Daily Digest, 28. Nov. 2026"
        " (Samstag, 28. November 2026), 2 {x}"
    )


@pytest.mark.parametrize(
    ("pattern", "why"),
    [("{titel}: {date}", "unknown variable {titel}"), ("{title: {date}", "DIGEST_SUBJECT"),
     ("{title}}", "Single '}'"), ("{}", "unknown variable {}"),
     ("{title.upper}", "unknown variable {title.upper}"), ("{date!r}", "no format")],
)  # fmt: skip
def test_a_bad_subject_pattern_is_one_clear_line(
    settings: Settings, pattern: str, why: str
) -> None:
    """Refuse an unknown variable or a brace error at load, naming DIGEST_SUBJECT."""
    with pytest.raises(ConfigError) as err:
        with_env(settings, DIGEST_SUBJECT=pattern)
    message = str(err.value).splitlines()[0]  # the line; the hint follows on its own
    assert "DIGEST_SUBJECT" in message and why in message and "\n" not in message


def test_no_line_break_reaches_the_subject(settings: Settings) -> None:
    """Refuse CR/LF in the pattern; fold a top title's line breaks into spaces."""
    with pytest.raises(ConfigError, match="DIGEST_SUBJECT"):
        with_env(settings, DIGEST_SUBJECT="{title}\r\nBcc: x@example.org")
    ed = edition(1)
    item = ed.items[0]
    title = "Two\r\nlines\tand\x00more"
    article = replace(item.article, title=title)
    broken = replace(
        ed,
        sections=(replace(ed.sections[0], items=(Item(article=article, highlights=()),)),),
    )
    subject = render_edition(with_env(settings, DIGEST_SUBJECT="{top_title}"), broken).subject
    assert subject == "Two lines and more"
