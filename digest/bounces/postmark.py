"""Postmark's bounce and spam complaint webhooks, checked by HTTP basic auth.

Postmark signs nothing: the webhook URL carries a user and password
(https://user:password@host/webhooks/postmark), sent as basic auth on every request.
One request holds one record; its ID is Postmark's stable id for the bounce.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import datetime

from digest.bounces.report import DeliveryReport, Kind
from digest.bounces.webhooks import (
    BadPayload,
    Refused,
    WebhookRequest,
    address,
    enhanced_status,
    field,
    load_json,
    reference,
    text,
)

CHALLENGE = 'Basic realm="digest webhooks"'
# Postmark's bounce types (its Bounce API's "Type") by what they say about the address.
# Transient is a delay notice and Unsubscribe, AutoResponder, AddressChange and the like
# are no failure at all: those are acknowledged and dropped.
_KINDS: dict[str, Kind] = {
    "HardBounce": "hard",
    "BadEmailAddress": "hard",
    "SoftBounce": "soft",
    "DnsError": "soft",
    "Blocked": "policy",
    "SpamNotification": "policy",
    "VirusNotification": "policy",
    "DMARCPolicy": "policy",
    "SpamComplaint": "complaint",
}


class Postmark:
    """The /webhooks/postmark route."""

    name = "postmark"

    def __init__(self, auth: str) -> None:
        self._expected = auth.encode("utf-8")

    def handle(self, request: WebhookRequest, now: datetime) -> list[DeliveryReport]:
        """Check the basic auth, then map a Bounce or SpamComplaint record."""
        self._check(request.header("Authorization"))
        record = load_json(request.body)
        if not isinstance(record, dict):
            raise BadPayload("a Postmark webhook posts one JSON object")
        report = _report(record)
        return [report] if report is not None else []

    def _check(self, authorization: str) -> None:
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise Refused(401, "no basic auth", CHALLENGE)
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise Refused(401, "malformed basic auth", CHALLENGE) from None
        if not hmac.compare_digest(given, self._expected):
            raise Refused(401, "wrong user or password (DIGEST_WEBHOOK_POSTMARK_AUTH)", CHALLENGE)


def _report(record: dict[str, object]) -> DeliveryReport | None:
    """Map one Postmark record to a report, or None when it reports no failure."""
    record_type = text(record.get("RecordType"))
    if record_type not in ("Bounce", "SpamComplaint"):
        return None
    kind = _KINDS.get(text(record.get("Type")))
    if record_type == "SpamComplaint":
        kind = "complaint"
    if kind is None:
        return None
    details = record.get("Details")
    status = enhanced_status(details, record.get("Description"))
    if kind in ("hard", "soft") and status.startswith("5.7."):
        kind = "policy"
    return DeliveryReport(
        kind=kind,
        source="postmark",
        reference=reference(record.get("ID"), event=record),
        address=address(record.get("Email")),
        # Postmark's MessageID is its own, not our Message-ID; it passes no headers.
        message_id=None,
        status=status,
        diagnostic=text(details) or text(field(record, "Description")),
    )
