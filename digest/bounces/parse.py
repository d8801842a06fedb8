"""Turn one message from the bounce mailbox into the delivery reports it holds.

RFC 3464 delivery status notifications are read with the email package, field by
field; ARF complaint reports (RFC 5965) likewise; whatever else real servers send
(Exim's, Yahoo's, old Exchange's own formats) goes through flufl.bounce, the detectors
Mailman uses. A message that is none of these (an auto-reply, a person writing back)
gives no report.
"""

from __future__ import annotations

import email
import hashlib
import logging
import re
from email.message import Message
from email.utils import getaddresses

from flufl.bounce import all_failures

from digest.bounces.report import DeliveryReport, Kind, kind_of

logger = logging.getLogger(__name__)

_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_MESSAGE_ID = re.compile(r"^Message-ID:\s*<([^>\s]+)>", re.IGNORECASE | re.MULTILINE)
# The return path the report was sent back to: bounces+<token>@domain.
_VERP = re.compile(r"[^\s<>@+]+\+([0-9A-Za-z-]+)@")
# Where the original envelope recipient of the report (our return path) is found.
_RETURN_HEADERS = ("X-Original-To", "Delivered-To", "Envelope-To", "To")
# DSN actions that say the message was not delivered and will not be.
_FAILED = {"failed"}


def parse_report(raw: bytes, source: str) -> list[DeliveryReport]:
    """Return the delivery reports one message holds (none if it is not a report)."""
    msg = email.message_from_bytes(raw)
    base = _reference(msg, raw)
    token = _verp_token(msg)
    original_id = _original_message_id(msg)
    if msg.get_content_type() == "multipart/report":
        report_type = str(msg.get_param("report-type", "") or "").lower()
        if report_type == "feedback-report":
            return _arf(msg, source, base, token, original_id)
        if report_type == "delivery-status":
            found = _dsn(msg, source, base, token, original_id)
            if found:
                return found
    return _flufl(msg, source, base, token, original_id)


def _reference(msg: Message, raw: bytes) -> str:
    own = str(msg.get("Message-ID", "")).strip().strip("<>")
    return own or "sha256:" + hashlib.sha256(raw).hexdigest()[:32]


def _verp_token(msg: Message) -> str | None:
    for header in _RETURN_HEADERS:
        for value in msg.get_all(header, []):
            found = _VERP.search(str(value))
            if found:
                return found.group(1)
    return None


def _original_message_id(msg: Message) -> str | None:
    """Return the Message-ID of our message that the report quotes, if it does."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get("Message-ID"):
                return str(inner["Message-ID"]).strip().strip("<>")
        elif kind in ("text/rfc822-headers", "text/plain") and part is not msg:
            text = _text(part)
            found = _MESSAGE_ID.search(text)
            if found:
                return found.group(1)
    if not msg.is_multipart():
        found = _MESSAGE_ID.search(_text(msg))
        if found and found.group(1) != str(msg.get("Message-ID", "")).strip("<> "):
            return found.group(1)
    return None


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return str(part.get_payload())


def _address(value: str) -> str | None:
    """Return the address of a DSN address field ("rfc822; a@b"), or None."""
    _, _, address = value.partition(";")
    address = (address or value).strip().strip("<>").strip()
    return address if "@" in address else None


def _dsn(
    msg: Message, source: str, base: str, token: str | None, original_id: str | None
) -> list[DeliveryReport]:
    reports: list[DeliveryReport] = []
    for part in msg.walk():
        if part.get_content_type() not in (
            "message/delivery-status",
            "message/global-delivery-status",
        ):
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        # The first block is per message; each of the others is one recipient.
        for block in blocks[1:]:
            if not isinstance(block, Message):
                continue
            action = str(block.get("Action", "")).strip().lower()
            if action not in _FAILED:
                continue
            address = _address(
                str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
            )
            diagnostic = str(block.get("Diagnostic-Code", "")).partition(";")[2].strip() or str(
                block.get("Diagnostic-Code", "")
            )
            found = _STATUS.search(str(block.get("Status", "")))
            status = found.group(1) if found else ""
            if status.startswith("2."):
                continue
            kind: Kind = kind_of(status, diagnostic, permanent=True)
            reports.append(
                DeliveryReport(
                    kind,
                    source,
                    f"{base}/{address or len(reports)}",
                    address,
                    original_id,
                    token,
                    status,
                    diagnostic,
                )
            )
    return reports


def _arf(
    msg: Message, source: str, base: str, token: str | None, original_id: str | None
) -> list[DeliveryReport]:
    fields: Message | None = None
    original_to: str | None = None
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                fields = payload[0]
            else:
                fields = email.message_from_string(_text(part))
        elif kind in ("message/rfc822", "text/rfc822-headers"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if not isinstance(inner, Message):
                inner = email.message_from_string(_text(part))
            to = getaddresses(inner.get_all("To", []))
            original_to = to[0][1] if to else None
    if fields is None:
        return []
    address = _address(str(fields.get("Original-Rcpt-To", ""))) or original_to
    if address is None:
        removal = getaddresses(fields.get_all("Removal-Recipient", []))
        address = removal[0][1] if removal else None
    feedback = str(fields.get("Feedback-Type", "abuse")).strip()
    return [
        DeliveryReport(
            "complaint", source, base, address, original_id, token, "", f"feedback: {feedback}"
        )
    ]


def _flufl(
    msg: Message, source: str, base: str, token: str | None, original_id: str | None
) -> list[DeliveryReport]:
    # flufl's temporary failures are delay warnings: the message may yet arrive, so
    # they are not reports of a failure.
    _, permanent = all_failures(msg)
    text = "\n".join(_text(p) for p in msg.walk() if p.get_content_maintype() == "text")
    line = next((ln.strip() for ln in text.splitlines() if _STATUS.search(ln)), "")
    found = _STATUS.search(line)
    status = found.group(1) if found else ""
    reports = []
    for address_bytes in sorted(permanent):
        address = address_bytes.decode("ascii", "replace")
        kind = kind_of(status, line, permanent=True)
        reports.append(
            DeliveryReport(
                "hard" if kind == "soft" else kind,
                source,
                f"{base}/{address}",
                address,
                original_id,
                token,
                status,
                line,
            )
        )
    return reports
