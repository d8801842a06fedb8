"""MIME messages: headers checked for injection, one multipart/alternative per edition."""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr

from digest.errors import DeliveryError
from digest.models import RenderedEdition

_FORBIDDEN = ("\r", "\n", "\0")


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
