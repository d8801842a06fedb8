"""MIME building: headers, parts, stable Message-IDs and header injection."""

from __future__ import annotations

import email
from datetime import UTC, date, datetime
from email import policy

import pytest

from digest.errors import DeliveryError
from digest.mail import (
    MessageTemplate,
    build_message,
    check_header,
    format_address,
    message_id,
)
from digest.models import Article, Edition, Highlight, Item, RenderedEdition, Section
from digest.render import UNSUBSCRIBE_PLACEHOLDER
from digest.tokens import make_token, unsubscribe_url

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def rendered(subject: str = "Daily Digest: 28 Nov 2026") -> RenderedEdition:
    """Build a small rendered edition by hand."""
    article = Article(
        id="a", source="s", title="Title", paragraphs=("Body.",), highlights=(Highlight("Point."),)
    )
    edition = Edition(
        "2026-11-28",
        "Daily Digest",
        date(2026, 11, 28),
        NOW,
        (Section("", (Item(article, article.highlights),)),),
    )
    return RenderedEdition(
        edition, subject, "Title", "<html><body><p>Título</p></body></html>", "Título\n"
    )


def test_message_parses_back_without_defects() -> None:
    """Build a multipart/alternative message that parses back cleanly."""
    msg = build_message(rendered(), "Digest <digest@example.com>", "Reader <r@example.org>", NOW)
    parsed = email.message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed.defects == []
    assert parsed.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in parsed.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    for part in parsed.iter_parts():
        assert part.defects == []
        assert "Título" in part.get_content()
    assert parsed["From"] == "Digest <digest@example.com>"
    assert parsed["To"] == "Reader <r@example.org>"
    assert parsed["Subject"] == "Daily Digest: 28 Nov 2026"
    assert parsed["Date"].datetime == NOW
    assert parsed["Message-ID"].endswith("@example.com>")


def test_message_id_is_stable_per_edition_and_recipient() -> None:
    """Reuse the Message-ID for a retry; differ by recipient and edition."""
    a = message_id("2026-11-28", "r@example.org", "example.com")
    assert a == message_id("2026-11-28", "R@example.org", "example.com")
    assert a != message_id("2026-11-28", "s@example.org", "example.com")
    assert a != message_id("2026-11-29", "r@example.org", "example.com")
    assert a.startswith("<") and a.endswith("@example.com>")


@pytest.mark.parametrize("bad", ["x\r\nBcc: victim@example.org", "x\nBcc: v@e.org", "x\0y"])
def test_header_injection_is_refused(bad: str) -> None:
    """Refuse CR, LF and NUL in any header value."""
    with pytest.raises(DeliveryError, match="line break or NUL"):
        check_header("Subject", bad)
    with pytest.raises(DeliveryError):
        build_message(rendered(subject=bad), "d@example.com", "r@example.org", NOW)


def test_sender_must_be_an_address() -> None:
    """Refuse a From that is not an email address, naming the setting."""
    with pytest.raises(DeliveryError, match="DIGEST_FROM"):
        build_message(rendered(), "not an address", "r@example.org", NOW)


def test_format_address_quotes_names() -> None:
    """Quote a display name with special characters."""
    assert format_address("Doe, Jane", "jane@example.org") == '"Doe, Jane" <jane@example.org>'


def _template(subject: str = "Daily Digest: 28 Nov 2026") -> MessageTemplate:
    base = rendered(subject)
    content = RenderedEdition(
        base.edition,
        subject,
        "pre",
        f'<html><body><p>Título</p><a href="{UNSUBSCRIBE_PLACEHOLDER}">u</a></body></html>',
        f"Título\nUnsubscribe: {UNSUBSCRIBE_PLACEHOLDER}\n" + "é" * 300 + UNSUBSCRIBE_PLACEHOLDER,
    )
    return MessageTemplate(
        content,
        edition_id="2026-11-28",
        sender="Digest <digest@example.com>",
        list_id='"Daily Digest" <digest.example.com>',
        base_url="https://news.example.org",
        now=NOW,
    )


URL = unsubscribe_url("https://news.example.org", make_token("k", "digest.example.com", 9))


def test_template_substitutes_every_placeholder() -> None:
    """Put the subscriber's URL wherever the placeholder was, however the lines fall."""
    msg = email.message_from_bytes(
        _template().personalise("r@example.org", "Zoë Reader", URL), policy=policy.default
    )
    assert msg.defects == []
    assert msg["To"] == "Zoë Reader <r@example.org>"
    assert msg["List-Unsubscribe"] == f"<{URL}>, <mailto:digest@example.com?subject=unsubscribe>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Message-ID"] == message_id("2026-11-28", "r@example.org", "example.com")
    text, html = (p.get_content() for p in msg.iter_parts())
    assert text.count(URL) == 2 and html.count(URL) == 1
    assert "%%" not in text + html and text.endswith("é" * 300 + URL)


@pytest.mark.parametrize("bad", ["x\r\nBcc: victim@example.org", "x\nBcc: v@e.org", "x\0y"])
def test_template_refuses_header_injection(bad: str) -> None:
    """Refuse CR, LF and NUL in the subject, the name and the address."""
    with pytest.raises(DeliveryError, match="line break or NUL"):
        _template(subject=bad)
    template = _template()
    with pytest.raises(DeliveryError, match="line break or NUL"):
        template.personalise("r@example.org", bad, URL)
    with pytest.raises(DeliveryError, match="line break or NUL"):
        template.personalise(f"{bad}@example.org", "", URL)


def test_template_refuses_a_url_of_another_length() -> None:
    """Refuse a URL that would not fit the encoded template."""
    with pytest.raises(DeliveryError, match="unexpected length"):
        _template().personalise("r@example.org", "", URL + "x")
