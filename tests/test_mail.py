"""MIME building: headers, parts, stable Message-IDs and header injection."""

from __future__ import annotations

import email
import email.message
from datetime import UTC, date, datetime
from email import policy

import pytest
from lxml import html as lxml_html

from digest.errors import DeliveryError
from digest.mail import (
    GREETING_SLOT,
    MessageTemplate,
    build_message,
    check_header,
    format_address,
    message_id,
)
from digest.models import Article, Edition, Highlight, Item, RenderedEdition, Section
from digest.render import GREETING_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER
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


def test_no_mailto_unless_a_mailbox_reads_it() -> None:
    """Offer only the one-click URL when DIGEST_UNSUBSCRIBE_MAILTO is not set."""
    html = f'<a href="{UNSUBSCRIBE_PLACEHOLDER}">u</a>'
    template = _template_of("S", html, UNSUBSCRIBE_PLACEHOLDER, mailto="")
    msg = email.message_from_bytes(template.personalise("r@example.org", "", URL))
    assert msg["List-Unsubscribe"] == f"<{URL}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


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
    return _template_of(
        subject,
        f'<html><body><p>Título</p><a href="{UNSUBSCRIBE_PLACEHOLDER}">u</a></body></html>',
        f"Título\nUnsubscribe: {UNSUBSCRIBE_PLACEHOLDER}\n" + "é" * 300 + UNSUBSCRIBE_PLACEHOLDER,
    )


def _template_of(
    subject: str, html: str, text: str, mailto: str = "unsubscribe@example.com"
) -> MessageTemplate:
    content = RenderedEdition(rendered(subject).edition, subject, "pre", html, text)
    return MessageTemplate(
        content,
        edition_id="2026-11-28",
        sender="Digest <digest@example.com>",
        list_id='"Daily Digest" <digest.example.com>',
        base_url="https://news.example.org",
        now=NOW,
        unsubscribe_mailto=mailto,
    )


URL = unsubscribe_url("https://news.example.org", make_token("k", "digest.example.com", 9))


def test_template_substitutes_every_placeholder() -> None:
    """Put the subscriber's URL wherever the placeholder was, however the lines fall."""
    msg = email.message_from_bytes(
        _template().personalise("r@example.org", "Zoë Reader", URL), policy=policy.default
    )
    assert msg.defects == []
    assert msg["To"] == "Zoë Reader <r@example.org>"
    assert msg["List-Unsubscribe"] == (
        f"<{URL}>, <mailto:unsubscribe@example.com?subject=unsubscribe>"
    )
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


def _greeting_template(
    text: str = f"Título\n\n{GREETING_PLACEHOLDER}\n\nUnsubscribe: {UNSUBSCRIBE_PLACEHOLDER}\n",
    html: str = (
        f'<html><body><table><tr><td class="greeting">{GREETING_PLACEHOLDER}</td></tr></table>'
        f'<p>Título</p><a href="{UNSUBSCRIBE_PLACEHOLDER}">u</a></body></html>'
    ),
) -> MessageTemplate:
    return _template_of("Daily Digest", html, text)


def _greeting_of(data: bytes) -> tuple[str, str, email.message.EmailMessage]:
    """Return the greeting as the text part shows it, as the HTML part shows it, and msg."""
    msg = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    assert msg.defects == []
    text, html = (p.get_content() for p in msg.iter_parts())
    (line,) = [line for line in text.splitlines() if line.startswith("Hello")]
    (cell,) = lxml_html.document_fromstring(html).xpath("//td[@class='greeting']")
    # Both parts carry the slot whole, whatever the name; the padding is spaces only.
    assert len(line.encode("utf-8")) == GREETING_SLOT
    return line.rstrip(" "), cell.text_content().rstrip(" "), msg


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("", "Hello,"),
        ("Ada", "Hello Ada,"),
        ("Ada Lovelace", "Hello Ada,"),
        ("  Ada \t Lovelace ", "Hello Ada,"),
        ('<b>x</b> & "q"', "Hello <b>x</b>,"),
        ("Zoë", "Hello Zoë,"),
        ("李雷", "Hello 李雷,"),
        ("   ", "Hello,"),
        ("Ada\x1b[31m", "Hello Ada,"),
        ("x" * 65, "Hello " + "x" * 65 + ","),  # 72 columns: the text part's width
        ("x" * 66, "Hello,"),  # fits the slot, not one line of the text part
        ("李" * 29, "Hello " + "李" * 29 + ","),
        ("李" * 30, "Hello,"),  # 90 bytes: too long, and never cut mid-character
        ("&" * 17, "Hello " + "&" * 17 + ","),  # escaped: 85 bytes of &amp;
        ("&" * 20, "Hello,"),  # fits as text, not escaped: both parts go without
    ],
)
def test_personalise_greets_the_subscriber_in_both_parts(name: str, expected: str) -> None:
    """Greet by name in both parts, escaped in HTML; a blank or too long name gets none."""
    data = _greeting_template().personalise("r@example.org", name, URL)
    text, html, msg = _greeting_of(data)
    assert text == expected and html == expected
    (part_html,) = (p.get_content() for p in msg.iter_parts() if p.get_content_subtype() == "html")
    assert "<b>" not in part_html  # the name's markup shows as text, never as markup
    assert msg["To"].addresses[0].addr_spec == "r@example.org"
    if name.strip() and name.isprintable():
        assert msg["To"].addresses[0].display_name == name
    for part in msg.iter_parts():
        assert isinstance(part, email.message.EmailMessage)
        body = part.get_content()
        assert body.count(URL) == 1 and "%%" not in body


@pytest.mark.parametrize("shift", range(0, 60, 7))
def test_personalise_fills_fields_wherever_the_base64_lines_break(shift: int) -> None:
    """Decode the greeting and URL whole, however they straddle the 57-byte lines."""
    text = ("é" * shift + f"\n{GREETING_PLACEHOLDER}\n{UNSUBSCRIBE_PLACEHOLDER}\n") * 3
    html = (
        "<html><body><table>"
        + f'<tr><td class="greeting">{"é" * shift}{GREETING_PLACEHOLDER}</td></tr>'
        + f'<tr><td><a href="{UNSUBSCRIBE_PLACEHOLDER}">u</a></td></tr>'
        + "</table></body></html>"
    )
    msg = email.message_from_bytes(
        _greeting_template(text, html).personalise("r@example.org", "Zoë 李雷", URL),
        policy=policy.default,
    )
    # The parts are sent with CRLF line ends, which base64 keeps.
    plain, markup = (p.get_content().replace("\r\n", "\n") for p in msg.iter_parts())
    pad = " " * (GREETING_SLOT - len("Hello Zoë,".encode()))
    assert plain == ("é" * shift + f"\nHello Zoë,{pad}\n{URL}\n") * 3
    assert f"{'é' * shift}Hello Zoë,{pad}</td>" in markup and URL in markup


def test_each_message_reencodes_only_the_lines_of_its_fields() -> None:
    """Keep all but a few base64 lines of a large part encoded once for every message."""
    body = "Words of an article. " * 3000
    template = _greeting_template(
        f"{body}\n{GREETING_PLACEHOLDER}\n{body}\n{UNSUBSCRIBE_PLACEHOLDER}\n",
        f'<td class="greeting">{GREETING_PLACEHOLDER}</td><p>{body}</p>'
        f'<a href="{UNSUBSCRIBE_PLACEHOLDER}">u</a>',
    )
    for part, _ in template._parts:
        raw = [p for p in part.pieces if not isinstance(p, bytes)]
        # One window per field; each at most the three lines 96 bytes can touch.
        assert len(raw) == 2
        assert all(sum(len(s) for s in w if isinstance(s, bytes)) < 3 * 57 for w in raw)


def test_content_stored_without_a_greeting_still_sends() -> None:
    """Send an edition stored before the greeting existed: unchanged, no greeting, no error."""
    msg = email.message_from_bytes(
        _template().personalise("r@example.org", "Ada", URL), policy=policy.default
    )
    text, html = (p.get_content().replace("\r\n", "\n") for p in msg.iter_parts())
    assert "Hello" not in text + html
    assert text == f"Título\nUnsubscribe: {URL}\n" + "é" * 300 + URL
