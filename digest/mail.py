"""MIME messages: headers checked for injection, one multipart/alternative per edition."""

from __future__ import annotations

import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, parseaddr
from typing import Protocol

from digest.errors import DeliveryError
from digest.models import RenderedEdition
from digest.render import UNSUBSCRIBE_PLACEHOLDER
from digest.tokens import TOKEN_LENGTH, unsubscribe_url

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


@dataclass(frozen=True)
class _Part:
    """A body part encoded once, with the lines the unsubscribe URL falls on kept raw."""

    header: bytes
    # Static base64 lines and, between them, the raw bytes of lines to re-encode.
    pieces: tuple[bytes | tuple[bytes, tuple[int, ...]], ...]


# base64 turns 57 bytes into one 76-character line; the URL is spliced into the raw bytes
# of only the lines it touches, so each message re-encodes a few lines, not the part.
_LINE = 57


def _encode_part(subtype: str, body: str, mark: str) -> _Part:
    # Text in MIME is canonically CRLF; encoding it so keeps base64 parts faithful.
    raw = body.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    mark_bytes = mark.encode("ascii")
    starts = []
    at = raw.find(mark_bytes)
    while at != -1:
        starts.append(at)
        at = raw.find(mark_bytes, at + len(mark_bytes))
    touched: dict[int, list[int]] = {}
    for start in starts:
        for line in range(start // _LINE, (start + len(mark_bytes) - 1) // _LINE + 1):
            touched.setdefault(line, []).append(start - line * _LINE)
    pieces: list[bytes | tuple[bytes, tuple[int, ...]]] = []
    static: list[bytes] = []
    for line in range(0, (len(raw) + _LINE - 1) // _LINE):
        chunk = raw[line * _LINE : (line + 1) * _LINE]
        if line in touched:
            if static:
                pieces.append(b"".join(static))
                static = []
            pieces.append((chunk, tuple(touched[line])))
        else:
            static.append(binascii.b2a_base64(chunk).replace(b"\n", b"\r\n"))
    if static:
        pieces.append(b"".join(static))
    header = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode("ascii")
    return _Part(header, tuple(pieces))


def _splice(chunk: bytes, offsets: tuple[int, ...], url: bytes) -> bytes:
    """Write url into chunk at each offset (which may start before or run past it)."""
    out = bytearray(chunk)
    for offset in offsets:
        lo = max(offset, 0)
        hi = min(offset + len(url), len(out))
        out[lo:hi] = url[lo - offset : hi - offset]
    return bytes(out)


class MessageTemplate:
    """One edition's message, built once; `personalise` fills in one subscriber cheaply.

    The rendered HTML and text carry UNSUBSCRIBE_PLACEHOLDER. Here it is swapped for a
    mark exactly as long as any subscriber's real unsubscribe URL (tokens have a fixed
    length), the parts are base64-encoded once, and each message re-encodes only the
    lines the URL falls on and formats a few header lines.
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
    ) -> None:
        self.edition_id = edition_id
        self.sender = check_header("From", sender)
        self.domain = address_domain(sender)
        _, self.sender_email = parseaddr(sender)
        self.base_url = base_url.rstrip("/")
        self.url_length = len(unsubscribe_url(self.base_url, "x" * TOKEN_LENGTH))
        mark = unsubscribe_url(self.base_url, "%" * TOKEN_LENGTH)
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
        self._parts = [
            _encode_part("plain", content.text.replace(UNSUBSCRIBE_PLACEHOLDER, mark), mark),
            _encode_part("html", content.html.replace(UNSUBSCRIBE_PLACEHOLDER, mark), mark),
        ]
        self._open = f"\r\n--{boundary}\r\n".encode("ascii")
        self._close = f"\r\n--{boundary}--\r\n".encode("ascii")
        self._preamble = b"\r\nThis is a multi-part message in MIME format.\r\n"

    def message_id(self, email: str) -> str:
        """Return the Message-ID this edition always uses for this address."""
        return message_id(self.edition_id, email, self.domain)

    def personalise(self, email: str, name: str, url: str) -> bytes:
        """Return the whole message for one subscriber, ready for SMTP DATA."""
        if len(url) != self.url_length or not url.isascii():
            raise DeliveryError(f"unsubscribe URL of unexpected length: {url!r}")
        to = encoded_address(name, email) if name else check_header("To", email)
        check_header("List-Unsubscribe", url)
        mailto = f"mailto:{self.sender_email}?subject=unsubscribe"
        lines = (
            f"To: {to}\r\n"
            f"Message-ID: {self.message_id(email)}\r\n"
            f"List-Unsubscribe: <{url}>,\r\n <{mailto}>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        )
        url_bytes = url.encode("ascii")
        out = [self._head, _header_bytes(lines), self._preamble]
        for part in self._parts:
            out.append(self._open)
            out.append(part.header)
            for piece in part.pieces:
                if isinstance(piece, bytes):
                    out.append(piece)
                else:
                    chunk, offsets = piece
                    spliced = _splice(chunk, offsets, url_bytes)
                    out.append(binascii.b2a_base64(spliced).replace(b"\n", b"\r\n"))
        out.append(self._close)
        return b"".join(out)


def _header_bytes(lines: str) -> bytes:
    """Encode header lines; a non-ASCII name was already made an encoded word."""
    return lines.encode("ascii")
