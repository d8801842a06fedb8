"""MIME messages: headers checked for injection, one multipart/alternative per edition."""

from __future__ import annotations

import binascii
import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from html import escape
from typing import Protocol

from digest.errors import DeliveryError
from digest.models import RenderedEdition
from digest.render import (
    GREETING_PLACEHOLDER,
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    greeting,
)
from digest.tokens import TOKEN_LENGTH, preferences_url, unsubscribe_url

logger = logging.getLogger(__name__)

_FORBIDDEN = ("\r", "\n", "\0")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")


class RenderedContent(Protocol):
    """What a message template needs from a rendered edition, stored or fresh."""

    @property
    def subject(self) -> str: ...
    @property
    def html(self) -> str: ...
    @property
    def text(self) -> str: ...


def check_header(name: str, value: str) -> str:
    """Return value if it is safe in a header; CR, LF or NUL would let it forge others."""
    if any(ch in value for ch in _FORBIDDEN):
        raise DeliveryError(f"header {name}: value contains a line break or NUL: {value!r}")
    return value


def address_domain(address: str) -> str:
    """Return the domain of an address like 'Name <user@example.com>'."""
    _, email = parseaddr(address)
    domain = email.rpartition("@")[2]
    if not domain or "@" not in email:
        raise DeliveryError(
            f"'{address}' is not an email address",
            hint="set DIGEST_FROM to an address such as Digest <digest@example.com>",
        )
    return domain


def message_id(edition_id: str, recipient: str, domain: str) -> str:
    """Return a Message-ID that is the same each time for this edition and recipient."""
    token = hashlib.sha256(f"{edition_id}\0{recipient.lower()}".encode()).hexdigest()[:24]
    return f"<digest.{edition_id}.{token}@{domain}>"


def build_message(
    rendered: RenderedEdition, sender: str, to: str, now: datetime, msg_id: str | None = None
) -> EmailMessage:
    """Build the multipart/alternative message: the text part first, the HTML preferred."""
    domain = address_domain(sender)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = check_header("From", sender)
    msg["To"] = check_header("To", to)
    msg["Subject"] = check_header("Subject", rendered.subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = check_header(
        "Message-ID", msg_id or message_id(rendered.edition.id, to, domain)
    )
    msg["MIME-Version"] = "1.0"
    msg.set_content(rendered.text, subtype="plain", charset="utf-8")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8")
    return msg


def format_address(name: str, email: str) -> str:
    """Return 'Name <email>' with the name quoted as needed."""
    user, _, domain = email.partition("@")
    return str(Address(display_name=name, username=user, domain=domain))


def ascii_address(email: str) -> str:
    """Return email with an internationalised domain in its IDNA (xn--) form.

    A non-ASCII local part could only go in a UTF-8 header over SMTPUTF8 (RFC 6531,
    6532), which digest does not send: such an address is refused, naming why.
    """
    if email.isascii():
        return email
    local, _, domain = email.rpartition("@")
    if not local.isascii():
        raise DeliveryError(
            f"{email!r}: a non-ASCII local part needs SMTPUTF8, which digest does not send"
        )
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError as err:
        raise DeliveryError(f"{email!r}: the domain is not a valid IDN: {err}") from err


def encoded_address(name: str, email: str) -> str:
    """Return 'Name <email>' ready for a header: quoted, and a non-ASCII name encoded."""
    check_header("To", name)
    check_header("To", email)
    if _PLAIN_NAME.fullmatch(name):
        # Letters, digits and spaces need no quoting: skip the header machinery.
        return f"{name} <{email}>"
    if name.isascii():
        return format_address(name, email)
    return formataddr((name, email), charset="utf-8")


def list_id_header(title: str, list_id: str, sender: str) -> str:
    """Return the List-Id value: the list's title and a domain-like id (RFC 2919)."""
    ident = list_id or f"digest.{address_domain(sender)}"
    if not all(c.isalnum() or c in ".-_" for c in ident):
        raise DeliveryError(
            f"list id {ident!r} must be a domain-like name", hint="check DIGEST_LIST_ID"
        )
    label = " ".join(title.replace('"', "").split())
    return check_header("List-Id", f'"{label}" <{ident}>' if label else f"<{ident}>")


# A run of raw lines holding per-message fields: the bytes between them, and in their
# places the number of the field whose value goes there.
_Window = tuple[bytes | int, ...]


@dataclass(frozen=True)
class _Part:
    """A body part encoded once, with the lines its per-message fields fall on kept raw."""

    header: bytes
    # Static base64 lines and, between them, the windows to fill in and encode.
    pieces: tuple[bytes | _Window, ...]


# base64 turns 57 bytes into one 76-character line; each field is spliced into the raw
# bytes of only the lines it touches, so each message re-encodes a few lines, not the part.
_LINE = 57
_CHARS = _LINE * 4 // 3
# Bytes (UTF-8) kept for the greeting: room for "Hello" and a name of 89 bytes (about 89
# Latin, 44 Greek or Cyrillic, 29 Chinese characters), HTML escaping included.
GREETING_SLOT = 96


def _encode_lines(raw: bytes) -> bytes:
    """Encode raw as base64 lines of 76 characters, each ended by CRLF."""
    # One call for the whole run: 57 bytes are a whole number of base64 groups, so the
    # encoding of the run is its lines' encodings end to end, cut every 76 characters.
    encoded = binascii.b2a_base64(raw, newline=False)
    return b"".join([encoded[at : at + _CHARS] + b"\r\n" for at in range(0, len(encoded), _CHARS)])


def _encode_part(subtype: str, body: str, marks: tuple[str, ...]) -> _Part:
    """Encode body once; marks are the fixed-length stand-ins of the fields, in order.

    Each value must later have exactly its mark's length in bytes.
    """
    # Text in MIME is canonically CRLF; encoding it so keeps base64 parts faithful.
    raw = body.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    found: list[tuple[int, int, int]] = []  # start, end, field
    for field, mark in enumerate(marks):
        mark_bytes = mark.encode("ascii")
        at = raw.find(mark_bytes)
        while at != -1:
            found.append((at, at + len(mark_bytes), field))
            at = raw.find(mark_bytes, at + len(mark_bytes))
    found.sort()
    # Windows: whole lines from the first touched by a field to the last, merged when
    # two fields share or border a line.
    windows: list[tuple[int, int, list[tuple[int, int, int]]]] = []
    for start, end, field in found:
        first, last = start // _LINE * _LINE, min(-(-end // _LINE) * _LINE, len(raw))
        if windows and first <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(last, windows[-1][1]), windows[-1][2])
        else:
            windows.append((first, last, []))
        windows[-1][2].append((start, end, field))
    pieces: list[bytes | _Window] = []
    done = 0
    for first, last, fields in windows:
        if first > done:
            pieces.append(_encode_lines(raw[done:first]))
        window: list[bytes | int] = []
        at = first
        for start, end, field in fields:
            window += [raw[at:start], field]
            at = end
        window.append(raw[at:last])
        pieces.append(tuple(window))
        done = last
    if done < len(raw):
        pieces.append(_encode_lines(raw[done:]))
    header = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode("ascii")
    return _Part(header, tuple(pieces))


def _fill(window: _Window, values: tuple[bytes, ...]) -> bytes:
    """Return the window's lines, base64-encoded, with each field's value in its place.

    A value may end mid-character at a line's end: base64 is decoded into one byte
    string, so the character comes out whole.
    """
    return _encode_lines(b"".join([values[s] if isinstance(s, int) else s for s in window]))


def _greetings(name: str, language: str = "en") -> tuple[bytes, bytes]:
    """Return the greeting for name as text and as HTML, each exactly GREETING_SLOT bytes.

    Trailing spaces fill the slot: invisible at the end of a line of text, and collapsed
    at the end of the HTML cell. A name too long for the slot, escaped, gets the greeting
    without a name rather than one cut short.
    """
    if not name.isprintable():
        # Control characters (a tab, an escape) would show as garbage or move the text.
        name = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in name)
    text = greeting(name, language)
    html = escape(text).encode("utf-8")
    if len(html) > GREETING_SLOT:
        logger.debug(
            "greeting of %d bytes (HTML) is over its slot of %d; sent without the name",
            len(html),
            GREETING_SLOT,
        )
        text = greeting("", language)
        html = escape(text).encode("utf-8")
    return text.encode("utf-8").ljust(GREETING_SLOT), html.ljust(GREETING_SLOT)


class MessageTemplate:
    """One edition's message, built once; `personalise` fills in one subscriber cheaply.

    The rendered HTML and text carry UNSUBSCRIBE_PLACEHOLDER and GREETING_PLACEHOLDER.
    Here each is swapped for a mark of fixed length: the unsubscribe one exactly as long
    as any subscriber's real URL (tokens have a fixed length), the greeting one
    GREETING_SLOT bytes. The parts are base64-encoded once, and each message re-encodes
    only the lines the fields fall on and formats a few header lines. Content stored
    before the greeting existed has no greeting placeholder and is sent without one.
    """

    def __init__(
        self,
        content: RenderedContent,
        *,
        edition_id: str,
        sender: str,
        list_id: str,
        base_url: str,
        now: datetime,
        unsubscribe_mailto: str = "",
        language: str = "en",
    ) -> None:
        self.edition_id = edition_id
        # The greeting is filled in per message, in the edition's language.
        self.language = language
        # Offered only when something reads that mailbox: a mailto: request sent into a
        # mailbox nobody reads unsubscribes nobody, while the reader believes it did.
        self.mailto = (
            f", <mailto:{check_header('List-Unsubscribe', unsubscribe_mailto)}?subject=unsubscribe>"
            if unsubscribe_mailto
            else ""
        )
        self.sender = check_header("From", sender)
        self.domain = address_domain(sender)
        _, self.sender_email = parseaddr(sender)
        self.base_url = base_url.rstrip("/")
        self.url_length = len(unsubscribe_url(self.base_url, "x" * TOKEN_LENGTH))
        url_mark = unsubscribe_url(self.base_url, "%" * TOKEN_LENGTH)
        greeting_mark = GREETING_PLACEHOLDER.ljust(GREETING_SLOT, "%")
        manage_mark = preferences_url(self.base_url, "%" * TOKEN_LENGTH)
        self.manage_length = len(manage_mark)
        # Where no subscriber's own page is given: a well-formed link that names nobody.
        self.no_manage = preferences_url(self.base_url, "A" * TOKEN_LENGTH)
        marks = (url_mark, greeting_mark, manage_mark)
        # Boundary and headers are fixed per edition; only To, Message-ID and the two
        # List-Unsubscribe lines differ between messages.
        boundary = "=_digest_" + hashlib.sha256(f"{edition_id}\0boundary".encode()).hexdigest()[:24]
        subject = check_header("Subject", content.subject)
        head = [
            ("From", self.sender),
            ("Subject", subject),
            ("Date", format_datetime(now)),
            ("List-Id", list_id),
            ("MIME-Version", "1.0"),
            ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
        ]
        policy = SMTP.clone(max_line_length=78)
        self._head = "".join(policy.fold(name, value) for name, value in head).encode("ascii")

        def marked(body: str) -> str:
            body = body.replace(UNSUBSCRIBE_PLACEHOLDER, url_mark)
            body = body.replace(PREFERENCES_PLACEHOLDER, manage_mark)
            return body.replace(GREETING_PLACEHOLDER, greeting_mark)

        # Each part with the index of its greeting in _greetings' pair: text, then HTML.
        self._parts = [
            (_encode_part("plain", marked(content.text), marks), 0),
            (_encode_part("html", marked(content.html), marks), 1),
        ]
        self._open = f"\r\n--{boundary}\r\n".encode("ascii")
        self._close = f"\r\n--{boundary}--\r\n".encode("ascii")
        self._preamble = b"\r\nThis is a multi-part message in MIME format.\r\n"

    def message_id(self, email: str) -> str:
        """Return the Message-ID this edition always uses for this address."""
        return message_id(self.edition_id, email, self.domain)

    def personalise(self, email: str, name: str, url: str, manage_url: str = "") -> bytes:
        """Return the whole message for one subscriber, ready for SMTP DATA; manage_url is
        their preference page."""
        if len(url) != self.url_length or not url.isascii():
            raise DeliveryError(f"unsubscribe URL of unexpected length: {url!r}")
        manage_url = manage_url or self.no_manage
        if len(manage_url) != self.manage_length or not manage_url.isascii():
            raise DeliveryError(f"preferences URL of unexpected length: {manage_url!r}")
        email = ascii_address(email)
        to = encoded_address(name, email) if name else check_header("To", email)
        check_header("List-Unsubscribe", url)
        mailto = f"\r\n {self.mailto.removeprefix(', ')}" if self.mailto else ""
        lines = (
            f"To: {to}\r\n"
            f"Message-ID: {self.message_id(email)}\r\n"
            f"List-Unsubscribe: <{url}>{',' if mailto else ''}{mailto}\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        )
        url_bytes = url.encode("ascii")
        greetings = _greetings(name, self.language)
        out = [self._head, _header_bytes(lines), self._preamble]
        for part, which in self._parts:
            values = (url_bytes, greetings[which], manage_url.encode("ascii"))
            out.append(self._open)
            out.append(part.header)
            for piece in part.pieces:
                out.append(piece if isinstance(piece, bytes) else _fill(piece, values))
        out.append(self._close)
        return b"".join(out)


def _header_bytes(lines: str) -> bytes:
    """Encode header lines; a non-ASCII name was already made an encoded word."""
    return lines.encode("ascii")


def notice_message(
    subject: str, html: str, text: str, *, sender: str, to: str, now: datetime, list_id: str
) -> bytes:
    """Return a one-off message (a sign-up's confirmation, say), ready for SMTP DATA."""
    domain = address_domain(sender)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = check_header("From", sender)
    msg["To"] = check_header("To", ascii_address(to))
    msg["Subject"] = check_header("Subject", subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid("signup", domain)
    msg["List-Id"] = list_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["MIME-Version"] = "1.0"
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    return msg.as_bytes()
