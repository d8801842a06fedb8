"""Mailgun's event webhooks: HMAC-SHA256 over timestamp and token, fresh and used once.

Mailgun signs each request with the account's webhook signing key: the signature is
the hex HMAC-SHA256 of timestamp + token. A timestamp far from our clock is refused, and
so is a token seen before within that window, so a captured request cannot be played
again. The token memory is this process's; the recorder's one record per event id is
what holds across processes and restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import datetime

from digest.bounces.report import DeliveryReport, Kind, kind_of
from digest.bounces.webhooks import (
    TIMESTAMP_TOLERANCE,
    BadPayload,
    Refused,
    WebhookRequest,
    address,
    check_fresh,
    enhanced_status,
    field,
    load_json,
    message_id,
    reference,
    text,
    verp_token,
)

# Why Mailgun did not deliver (event-data.reason) when that says more than the code.
# "old": Mailgun retried until the message expired, a temporary cause given up on.
_REASONS: dict[str, Kind | None] = {
    "suppress-bounce": "hard",
    "suppress-complaint": "complaint",
    "suppress-unsubscribe": None,
    "espblock": "policy",
    "old": "soft",
}


class Mailgun:
    """The /webhooks/mailgun route."""

    name = "mailgun"

    def __init__(self, key: str) -> None:
        self._key = key.encode("utf-8")
        self._lock = threading.Lock()
        # Tokens of accepted requests, with their timestamps, forgotten once stale.
        self._seen: dict[str, int] = {}

    def handle(self, request: WebhookRequest, now: datetime) -> list[DeliveryReport]:
        """Check signature, freshness and token, then map a failed or complained event."""
        payload = load_json(request.body)
        signature = field(payload, "signature")
        timestamp = text(field(signature, "timestamp"))
        token = text(field(signature, "token"), 200)
        given = text(field(signature, "signature"), 200)
        if not (timestamp and token and given):
            raise Refused(401, "no signature")
        expected = hmac.new(self._key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given.lower()):
            raise Refused(403, "signature does not match DIGEST_WEBHOOK_MAILGUN_KEY")
        check_fresh(timestamp, now, "the signature's timestamp")
        self._use_token(token, int(timestamp), now)
        event = field(payload, "event-data")
        if not isinstance(event, dict):
            raise BadPayload("no event-data")
        report = _report(event)
        return [report] if report is not None else []

    def _use_token(self, token: str, timestamp: int, now: datetime) -> None:
        """Refuse a token already used; remember it for as long as its timestamp is fresh."""
        oldest = now.timestamp() - TIMESTAMP_TOLERANCE.total_seconds()
        with self._lock:
            for seen, at in list(self._seen.items()):
                if at < oldest:
                    del self._seen[seen]
            if token in self._seen:
                raise Refused(403, "token already used (a replay)")
            self._seen[token] = timestamp


def _report(event: dict[str, object]) -> DeliveryReport | None:
    """Map one Mailgun event to a report, or None when it reports no failure."""
    name = text(event.get("event"))
    delivery = field(event, "delivery-status")
    status = enhanced_status(
        field(delivery, "enhanced-code"), field(delivery, "message"), field(delivery, "description")
    )
    kind: Kind | None
    if name == "complained":
        kind = "complaint"
    elif name == "failed":
        # A temporary failure is Mailgun saying it will try again: the final word comes as
        # a permanent failure (reason "old" when it gave up), and only that one counts.
        if text(event.get("severity")) != "permanent":
            return None
        reason = text(event.get("reason"))
        kind = _REASONS[reason] if reason in _REASONS else kind_of(status, permanent=True)
    else:
        return None
    if kind is None:
        return None
    diagnostic = text(field(delivery, "message")) or text(field(delivery, "description"))
    return DeliveryReport(
        kind=kind,
        source="mailgun",
        reference=reference(event.get("id"), event=event),
        address=address(event.get("recipient")),
        message_id=message_id(field(event, "message", "headers", "message-id")),
        verp_token=verp_token(field(event, "envelope", "sender")),
        status=status,
        diagnostic=diagnostic,
    )
