"""The message template's fast path against a message built whole for each subscriber.

MessageTemplate encodes an edition once and splices each subscriber's values into the
encoded bytes. The general path here substitutes the values into the rendered text and
HTML and builds the message through email.message, as one would without a template:
parsed back, the two must say the same thing, header by header and part by part.
"""

from __future__ import annotations

import email
import email.message
import unicodedata
from email import policy
from email.header import decode_header, make_header
from email.utils import format_datetime
from html import escape

import pytest
from _editions import NOW, edition

from digest.config import Settings
from digest.mail import GREETING_SLOT, MessageTemplate, encoded_address, list_id_header
from digest.models import RenderedEdition
from digest.render import (
    GREETING_PLACEHOLDER,
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    greeting,
    render_edition,
)
from digest.tokens import make_token, preferences_url, unsubscribe_url

SETTINGS = Settings(secret_key="k", base_url="https://news.example.org")
SENDER = "Digest <digest@example.com>"
NAMES = [
    "",
    "Ada",
    "Zoë Ångström",
    "李雷",
    "محمد العربي",  # right to left
    "שרה כהן",
    "O'Brien, Jr.",
    '"Quoted" <name>',
    "Ada\x1b[31m",
    "Bartholomew-Maximilian " * 5 + "Smith",  # too long for the greeting's slot: greeted without it
    "李" * 40,
]


@pytest.fixture(scope="module")
def content() -> RenderedEdition:
    """A real edition rendered with the real templates: every placeholder in it."""
    rendered = render_edition(SETTINGS, edition(3))
    assert GREETING_PLACEHOLDER in rendered.html and UNSUBSCRIBE_PLACEHOLDER in rendered.text
    return rendered


def _greeting(name: str, html: bool) -> str:
    """The greeting as the template promises it: control characters blanked, the name left
    out when it would not fit GREETING_SLOT, padded with spaces to the slot."""
    name = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in name)
    if len(escape(greeting(name)).encode()) > GREETING_SLOT:
        name = ""
    text = escape(greeting(name)) if html else greeting(name)
    return text + " " * (GREETING_SLOT - len(text.encode()))


def _general(
    content: RenderedEdition, email_address: str, name: str, urls: tuple[str, str]
) -> bytes:
    """Build the subscriber's message whole through email.message."""
    url, manage = urls

    def fill(body: str, html: bool) -> str:
        body = body.replace(UNSUBSCRIBE_PLACEHOLDER, url).replace(PREFERENCES_PLACEHOLDER, manage)
        return body.replace(GREETING_PLACEHOLDER, _greeting(name, html))

    msg = email.message.EmailMessage(policy=policy.SMTP)
    msg["From"] = SENDER
    msg["To"] = encoded_address(name, email_address) if name else email_address
    msg["Subject"] = content.subject
    msg["Date"] = format_datetime(NOW)
    msg["List-Id"] = list_id_header(SETTINGS.title, SETTINGS.list_id, SENDER)
    msg["List-Unsubscribe"] = f"<{url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["MIME-Version"] = "1.0"
    msg.set_content(fill(content.text, False), subtype="plain", charset="utf-8")
    msg.add_alternative(fill(content.html, True), subtype="html", charset="utf-8")
    return msg.as_bytes()


def _header(data: bytes, name: str) -> str:
    """Return a header as RFC 2047 decodes it, unfolded (the whitespace between two
    encoded words is dropped, which the address parser of email.headerregistry does not)."""
    raw = email.message_from_bytes(data, policy=policy.compat32)[name]
    return " ".join(str(make_header(decode_header(raw))).split())


@pytest.mark.parametrize("name", NAMES)
def test_fast_path_says_what_a_message_built_whole_says(
    content: RenderedEdition, name: str
) -> None:
    """Parse both messages back: the same headers and the same decoded parts."""
    template = MessageTemplate(
        content,
        edition_id=content.edition.id,
        sender=SENDER,
        list_id=list_id_header(SETTINGS.title, SETTINGS.list_id, SENDER),
        base_url=SETTINGS.base_url,
        now=NOW,
    )
    address = "reader@example.org"
    token = make_token("k", SETTINGS.list_id, 7)
    urls = (
        unsubscribe_url(SETTINGS.base_url, token),
        preferences_url(SETTINGS.base_url, make_token("k", SETTINGS.list_id, 7, "preferences")),
    )
    fast_bytes = template.personalise(address, name, *urls)
    general_bytes = _general(content, address, name, urls)
    fast = email.message_from_bytes(fast_bytes, policy=policy.default)
    general = email.message_from_bytes(general_bytes, policy=policy.default)
    assert fast.defects == [] and general.defects == []
    for header in (
        "From",
        "To",
        "Subject",
        "Date",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "MIME-Version",
    ):
        assert _header(fast_bytes, header) == _header(general_bytes, header), header
    assert fast["Message-ID"] == template.message_id(address)
    if name and name.isprintable():
        assert fast["To"].addresses[0].display_name == name
    assert fast.get_content_type() == general.get_content_type() == "multipart/alternative"
    fast_parts, general_parts = list(fast.iter_parts()), list(general.iter_parts())
    assert [p.get_content_type() for p in fast_parts] == ["text/plain", "text/html"]
    assert [p.get_content_type() for p in general_parts] == ["text/plain", "text/html"]
    for mine, theirs in zip(fast_parts, general_parts, strict=True):
        assert isinstance(mine, email.message.EmailMessage)
        assert isinstance(theirs, email.message.EmailMessage)
        assert mine.get_content_charset() == theirs.get_content_charset() == "utf-8"
        # Text is CRLF on the wire either way: compare the lines.
        assert mine.get_content().splitlines() == theirs.get_content().splitlines()
