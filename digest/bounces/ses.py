"""Amazon SES bounce and complaint notifications, delivered by SNS over HTTPS.

SNS signs every message with an RSA key whose certificate it names in SigningCertURL:
SHA1 for SignatureVersion 1, SHA256 for 2. The certificate is fetched, through the
feed fetcher's bounds (deadline, size cap, verified TLS, no private addresses), only from
an https://sns.<region>.amazonaws.com URL, and kept in memory for the process's
lifetime. Any AWS account can have SNS sign for its own topics, so a message from a
topic not in DIGEST_WEBHOOK_SES_TOPICS is refused before anything is fetched.

A SubscriptionConfirmation from one of those topics is confirmed by visiting its
SubscribeURL, which must be on the same kind of host.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from digest.bounces.report import DeliveryReport, Kind, kind_of
from digest.bounces.webhooks import (
    BadPayload,
    Refused,
    Unavailable,
    WebhookRequest,
    address,
    enhanced_status,
    field,
    load_json,
    message_id,
    reference,
    text,
    verp_token,
)
from digest.config import Settings
from digest.sources.fetch import FetchError, FetchOptions, FetchRefused, fetch_untrusted

logger = logging.getLogger(__name__)

# Where SNS certificates and subscription URLs may be: the host (and no port, user or
# password) of https://sns.us-east-1.amazonaws.com/…, matched against the URL's netloc.
SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com")
CERT_TIMEOUT = 10.0
CERT_MAX_BYTES = 64 * 1024
# Certificates kept; SNS uses one per region, rotated now and then.
CERT_CACHE = 32
# The fields each message type signs, in the order they are signed.
_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED["UnsubscribeConfirmation"] = _SIGNED["SubscriptionConfirmation"]
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
# SES bounce sub-types that blame the message, not the address.
_MESSAGE_PROBLEMS = frozenset({"ContentRejected", "AttachmentRejected", "MessageTooLarge"})


class Ses:
    """The /webhooks/ses route."""

    name = "ses"

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime],
        *,
        sns_host: re.Pattern[str] | None = None,
    ) -> None:
        self.topics = frozenset(settings.webhook_ses_topics)
        # Tests serve certificates from a local host and say so here; nothing else can.
        self.sns_host = sns_host or SNS_HOST
        self.options = FetchOptions(
            timeout=min(CERT_TIMEOUT, settings.fetch_timeout),
            max_bytes=CERT_MAX_BYTES,
            max_redirects=0,
            allow_private=settings.fetch_allow_private,
        )
        self.clock = clock
        self._lock = threading.Lock()
        self._certificates: dict[str, x509.Certificate] = {}

    def handle(self, request: WebhookRequest, now: datetime) -> list[DeliveryReport]:
        """Check the SNS signature, then confirm a subscription or map a notification."""
        message = load_json(request.body)
        if not isinstance(message, dict):
            raise BadPayload("an SNS message is a JSON object")
        kind = text(message.get("Type"))
        if kind not in _SIGNED:
            raise BadPayload(f"unknown SNS message type {kind!r}")
        header = request.header("x-amz-sns-message-type")
        if header and header != kind:
            raise BadPayload("x-amz-sns-message-type does not match Type")
        topic = text(message.get("TopicArn"), 300)
        if topic not in self.topics:
            raise Refused(403, "topic not in DIGEST_WEBHOOK_SES_TOPICS")
        self._verify(message, kind, now)
        if kind == "SubscriptionConfirmation":
            self._confirm(message, topic)
            return []
        if kind == "UnsubscribeConfirmation":
            logger.warning("SNS topic %s no longer sends to this server", topic)
            return []
        return _reports(message)

    def allowed(self, url: str) -> bool:
        """Return whether url is an https URL on an SNS host (the pattern, exactly)."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        return parts.scheme == "https" and bool(self.sns_host.fullmatch(parts.netloc.lower()))

    def _verify(self, message: dict[str, object], kind: str, now: datetime) -> None:
        version = text(message.get("SignatureVersion"))
        if version not in _HASHES:
            raise Refused(403, f"unknown SignatureVersion {version!r}")
        url = text(message.get("SigningCertURL"), 2000)
        if not self.allowed(url) or not urlsplit(url).path.endswith(".pem"):
            raise Refused(403, "SigningCertURL is not an https://sns.<region>.amazonaws.com .pem")
        try:
            signature = base64.b64decode(text(message.get("Signature"), 4000), validate=True)
        except (binascii.Error, ValueError):
            raise Refused(403, "Signature is not base64") from None
        signed = _string_to_sign(message, kind)
        key = self._certificate(url, now).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Refused(403, "the signing certificate's key is not RSA")
        try:
            key.verify(signature, signed, padding.PKCS1v15(), _HASHES[version]())
        except InvalidSignature:
            raise Refused(403, "signature does not verify") from None

    def _certificate(self, url: str, now: datetime) -> x509.Certificate:
        """Return the certificate at url, fetched once per process."""
        with self._lock:
            certificate = self._certificates.get(url)
        if certificate is None:
            try:
                data = fetch_untrusted(url, self.options).data
            except FetchRefused as err:
                raise Refused(403, f"signing certificate refused: {err}") from None
            except FetchError as err:
                if err.status is not None and 400 <= err.status < 500:
                    raise Refused(403, f"no signing certificate: {err}") from None
                raise Unavailable(f"cannot fetch the signing certificate: {err}") from None
            try:
                certificate = x509.load_pem_x509_certificate(data)
            except ValueError:
                raise Refused(403, "SigningCertURL holds no PEM certificate") from None
            with self._lock:
                if len(self._certificates) >= CERT_CACHE:
                    self._certificates.pop(next(iter(self._certificates)))
                self._certificates[url] = certificate
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise Refused(403, "the signing certificate is not valid now")
        return certificate

    def _confirm(self, message: dict[str, object], topic: str) -> None:
        """Visit the SubscribeURL of a verified confirmation from one of our topics."""
        url = text(message.get("SubscribeURL"), 2000)
        if not self.allowed(url):
            raise Refused(403, "SubscribeURL is not on an https://sns.<region>.amazonaws.com host")
        try:
            fetch_untrusted(url, self.options)
        except FetchError as err:
            raise Unavailable(f"cannot confirm the subscription to {topic}: {err}") from None
        logger.info("confirmed the SNS subscription to %s", topic)


def _string_to_sign(message: dict[str, object], kind: str) -> bytes:
    """Return what SNS signed: each signed field's name and value, a line each."""
    lines: list[str] = []
    for name in _SIGNED[kind]:
        value = message.get(name)
        if value is None and name == "Subject":
            continue  # a notification without a subject signs no Subject line
        if not isinstance(value, str):
            raise Refused(403, f"{name} is missing")
        lines += [name, value]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _reports(notification: dict[str, object]) -> list[DeliveryReport]:
    """Map the SES event a verified notification carries (Bounce, Complaint) to reports."""
    raw = notification.get("Message")
    try:
        event = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        logger.info("ses webhook: a notification whose Message is not JSON, ignored")
        return []
    # notificationType from SES feedback notifications, eventType from event publishing.
    event_type = text(field(event, "notificationType")) or text(field(event, "eventType"))
    mail = field(event, "mail")
    ours = _our_message_id(mail)
    token = verp_token(field(mail, "source")) or verp_token(_header(mail, "Return-Path"))
    fallback = text(notification.get("MessageId"), 200)
    reports: list[DeliveryReport] = []
    if event_type == "Bounce":
        bounce = field(event, "bounce")
        feedback = text(field(bounce, "feedbackId"), 200) or fallback
        bounce_type = text(field(bounce, "bounceType"))
        sub_type = text(field(bounce, "bounceSubType"))
        for recipient in _list(field(bounce, "bouncedRecipients")):
            diagnostic = text(field(recipient, "diagnosticCode"))
            status = enhanced_status(field(recipient, "status"), diagnostic)
            who = address(field(recipient, "emailAddress"))
            reports.append(
                DeliveryReport(
                    kind=_bounce_kind(bounce_type, sub_type, status),
                    source="ses",
                    reference=reference(feedback, who, event=[event, recipient]),
                    address=who,
                    status=status,
                    diagnostic=diagnostic or f"{bounce_type} {sub_type}".strip(),
                    message_id=ours,
                    verp_token=token,
                )
            )
    elif event_type == "Complaint":
        complaint = field(event, "complaint")
        feedback = text(field(complaint, "feedbackId"), 200) or fallback
        for recipient in _list(field(complaint, "complainedRecipients")):
            who = address(field(recipient, "emailAddress"))
            reports.append(
                DeliveryReport(
                    kind="complaint",
                    source="ses",
                    reference=reference(feedback, who, event=[event, recipient]),
                    address=who,
                    diagnostic=text(field(complaint, "complaintFeedbackType")),
                    message_id=ours,
                    verp_token=token,
                )
            )
    # Delivery, Send, Open, DeliveryDelay (SES still trying; a Bounce follows if it gives
    # up)…: no failure of the address.
    return reports


def _bounce_kind(bounce_type: str, sub_type: str, status: str) -> Kind:
    """SES says itself whether it gave up for good (Permanent) or on a temporary cause."""
    if status.startswith("5.7.") or sub_type in _MESSAGE_PROBLEMS:
        return "policy"
    if bounce_type == "Permanent":
        return "hard"
    if bounce_type == "Transient":
        return "soft"
    return kind_of(status)


def _our_message_id(mail: object) -> str | None:
    """Return the Message-ID we sent (mail.headers), not SES's own mail.messageId."""
    return message_id(_header(mail, "Message-ID")) or message_id(
        field(mail, "commonHeaders", "messageId")
    )


def _header(mail: object, name: str) -> str:
    wanted = name.lower()
    for header in _list(field(mail, "headers")):
        if text(field(header, "name")).lower() == wanted:
            return text(field(header, "value"), 998)
    return ""


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []
