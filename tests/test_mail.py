"""MIME building: headers, parts, stable Message-IDs and header injection."""

from __future__ import annotations

import email
from datetime import UTC, date, datetime
from email import policy

import pytest

from digest.errors import DeliveryError
from digest.mail import build_message, check_header, format_address, message_id
from digest.models import Article, Edition, Highlight, Item, RenderedEdition, Section

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
