"""SendGrid's Signed Event Webhook: ECDSA (P-256, SHA-256) over timestamp + payload.

SendGrid signs each batch with its private key; the verification key it shows in the
dashboard (base64 of the DER public key) is DIGEST_WEBHOOK_SENDGRID_KEY. The signature
and its timestamp come in the X-Twilio-Email-Event-Webhook-Signature and -Timestamp
headers; a stale timestamp is refused. One request carries a batch of events, each with
its own sg_event_id.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from digest.bounces.report import DeliveryReport, Kind, kind_of
from digest.bounces.webhooks import (
    BadPayload,
    Refused,
    WebhookRequest,
    address,
    check_fresh,
    enhanced_status,
    load_json,
    message_id,
    reference,
    text,
)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
_ARMOUR = re.compile(r"-----(?:BEGIN|END) PUBLIC KEY-----")
# bounce_classification values that blame the sender or its message, not the address.
_SENDER_PROBLEMS = frozenset({"Content", "Reputation", "Frequency or Volume Too High"})
# Why SendGrid dropped a message without trying; the rest ("Unsubscribed Address",
# "Invalid SMTPAPI header"…) say nothing about the address and are dropped.
_DROPPED: dict[str, Kind] = {
    "Bounced Address": "hard",
    "Invalid": "hard",
    "Invalid Address": "hard",
    "Spam Reporting Address": "complaint",
    "Spam Content": "policy",
}


def load_key(value: str) -> ec.EllipticCurvePublicKey:
    """Load the verification key: base64 DER as SendGrid shows it, with or without the
    PEM armour (a setting is one line); ValueError says what is wrong."""
    encoded = "".join(_ARMOUR.sub("", value).split())
    try:
        key = load_der_public_key(base64.b64decode(encoded, validate=True))
    except (ValueError, binascii.Error):
        raise ValueError("is not a public key (base64 as SendGrid shows it, or PEM)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("is not an ECDSA public key")
    return key


class SendGrid:
    """The /webhooks/sendgrid route."""

    name = "sendgrid"

    def __init__(self, key: str) -> None:
        self._key = load_key(key)

    def handle(self, request: WebhookRequest, now: datetime) -> list[DeliveryReport]:
        """Check the signature and its timestamp, then map bounce, dropped, spamreport."""
        signature = request.header(SIGNATURE_HEADER)
        timestamp = request.header(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise Refused(401, "no signature")
        try:
            der = base64.b64decode(signature, validate=True)
            self._key.verify(der, timestamp.encode() + request.body, ec.ECDSA(hashes.SHA256()))
        except (binascii.Error, ValueError, InvalidSignature):
            raise Refused(403, "signature does not match DIGEST_WEBHOOK_SENDGRID_KEY") from None
        check_fresh(timestamp, now, "the signature's timestamp")
        events = load_json(request.body)
        if not isinstance(events, list):
            raise BadPayload("a SendGrid webhook posts a JSON array of events")
        reports = (_report(e) for e in events if isinstance(e, dict))
        return [r for r in reports if r is not None]


def _report(event: dict[str, object]) -> DeliveryReport | None:
    """Map one SendGrid event to a report, or None when it reports no failure."""
    name = text(event.get("event"))
    status = enhanced_status(event.get("status"), event.get("reason"))
    kind: Kind | None
    if name == "spamreport":
        kind = "complaint"
    elif name == "dropped":
        kind = _DROPPED.get(text(event.get("reason")))
    elif name == "bounce":
        kind = _bounce_kind(event, status)
    else:
        # deferred is SendGrid still trying; delivered, processed, open, click… no failure.
        return None
    if kind is None:
        return None
    return DeliveryReport(
        kind=kind,
        source="sendgrid",
        reference=reference(event.get("sg_event_id"), event=event),
        address=address(event.get("email")),
        message_id=message_id(event.get("smtp-id")),
        status=status,
        diagnostic=text(event.get("reason")),
    )


def _bounce_kind(event: dict[str, object], status: str) -> Kind:
    """A bounce ("type": "bounce") or a block ("type": "blocked"), by classification."""
    classification = text(event.get("bounce_classification"))
    if status.startswith("5.7.") or classification in _SENDER_PROBLEMS:
        return "policy"
    if classification == "Invalid Address":
        return "hard"
    if classification == "Mailbox Unavailable" or text(event.get("type")) == "blocked":
        return "soft"
    return kind_of(status, permanent=True)
