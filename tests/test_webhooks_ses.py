"""Amazon SES notifications through SNS over real HTTP, with a signing certificate served
over HTTPS by a local server whose certificate a throw-away CA (trustme) issued.

The SNS host rule is replaced, explicitly, by one that allows that local server; the
real rule is checked on its own below.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from feedserver import FeedServer, serving
from webhookclient import NOW, post
from webhookclient import serving as serving_app

from digest.bounces import ses
from digest.config import Settings

TOPIC = "arn:aws:sns:us-east-1:123456789012:digest-bounces"
# Only the local HTTPS server counts as an SNS host in these tests.
LOCAL_SNS = re.compile(r"localhost:\d+")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throw-away certificate authority for the local HTTPS server."""
    return trustme.CA()


@pytest.fixture
def trusted(ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every default TLS context trust the throw-away CA (and verify as usual)."""
    real = ssl.create_default_context

    def trusting(*args: object, **kwargs: object) -> ssl.SSLContext:
        context = real(*args, **kwargs)  # type: ignore[arg-type]
        ca.configure_trust(context)
        return context

    monkeypatch.setattr(ssl, "create_default_context", trusting)


@pytest.fixture
def sns(ca: trustme.CA, tmp_path: Path, trusted: None) -> Iterator[FeedServer]:
    """An HTTPS server standing in for sns.<region>.amazonaws.com."""
    issued = ca.issue_cert("localhost", "127.0.0.1")
    chain, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(chain))
    issued.private_key_pem.write_to_path(str(key))
    with serving((str(chain), str(key))) as server:
        server.url = server.url.replace("127.0.0.1", "localhost")
        yield server


class Signer:
    """A throw-away RSA key and certificate, playing SNS's signing key."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=365))
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def sign(self, message: dict[str, str], version: str = "1") -> dict[str, str]:
        """Sign message as SNS does; return it with its signature fields."""
        fields = ses._SIGNED[message["Type"]]
        lines = [f"{name}\n{message[name]}\n" for name in fields if name in message]
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign("".join(lines).encode(), padding.PKCS1v15(), digest)
        return {
            **message,
            "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode(),
        }


@pytest.fixture(scope="module")
def signer() -> Signer:
    """SNS's signing key for these tests."""
    return Signer()


@pytest.fixture
def cert_url(sns: FeedServer, signer: Signer) -> str:
    """Where the local SNS serves its signing certificate."""
    return sns.add("/SimpleNotificationService-0123.pem", signer.pem, content_type="text/plain")


@pytest.fixture
def hooks(settings: Settings) -> Settings:
    """Settings accepting TOPIC; the local server is on a loopback address."""
    return replace(settings, webhook_ses_topics=(TOPIC,), fetch_allow_private=True)


def bounce_event(bounce_type: str = "Permanent", sub_type: str = "General") -> dict[str, object]:
    """An SES Bounce notification with two recipients, as SES documents it."""
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": sub_type,
            "feedbackId": "0100017b-feedback-000000",
            "timestamp": "2026-11-28T06:59:00.000Z",
            "reportingMTA": "dsn; a8-1.smtp-out.amazonses.com",
            "bouncedRecipients": [
                {
                    "emailAddress": "gone@example.net",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                },
                {
                    "emailAddress": "full@example.org",
                    "action": "failed",
                    "diagnosticCode": "smtp; 552 5.2.2 mailbox full",
                },
            ],
        },
        "mail": {
            "timestamp": "2026-11-28T06:58:59.000Z",
            "messageId": "0100017b-ses-own-id-000000",
            "source": "bounces+e1s42.x7@news.example",
            "headersTruncated": False,
            "headers": [
                {"name": "From", "value": "Digest <digest@news.example>"},
                {"name": "Message-ID", "value": "<20261128070000.1.abc@news.example>"},
            ],
            "commonHeaders": {"messageId": "<20261128070000.1.abc@news.example>"},
        },
    }


def notification(cert_url: str, event: object, topic: str = TOPIC) -> dict[str, str]:
    """An unsigned SNS Notification carrying event."""
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": topic,
        "Message": json.dumps(event),
        "Timestamp": "2026-11-28T06:59:01.000Z",
        "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }


def send(url: str, message: dict[str, str]) -> int:
    """POST an SNS message as SNS does; return the status."""
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": message["Type"],
        "x-amz-sns-topic-arn": message["TopicArn"],
    }
    return post(f"{url}/webhooks/ses", json.dumps(message).encode(), headers)[0]


@pytest.mark.parametrize("version", ["1", "2"])
def test_bounce_notification_is_verified_and_recorded(
    hooks: Settings, sns: FeedServer, signer: Signer, cert_url: str, version: str
) -> None:
    """Record both recipients of a signed bounce; fetch the certificate once for two."""
    with serving_app(hooks, sns_host=LOCAL_SNS) as (url, collected):
        message = signer.sign(notification(cert_url, bounce_event()), version)
        assert send(url, message) == 200
        assert send(url, message) == 200  # SNS retries: the recorder records it once
    assert len(sns.hits("/SimpleNotificationService-0123.pem")) == 1
    first, second = collected.batches[0]
    assert (first.kind, first.address, first.status) == ("hard", "gone@example.net", "5.1.1")
    assert (second.kind, second.address, second.status) == ("hard", "full@example.org", "5.2.2")
    assert first.source == "ses"
    assert first.reference == "0100017b-feedback-000000 gone@example.net"
    assert first.reference != second.reference
    assert first.message_id == "20261128070000.1.abc@news.example"
    assert first.verp_token == "e1s42.x7"
    assert first.diagnostic == "smtp; 550 5.1.1 user unknown"
    assert collected.batches[1] == collected.batches[0]


@pytest.mark.parametrize(
    ("bounce_type", "sub_type", "expected"),
    [
        ("Permanent", "General", "hard"),
        ("Permanent", "NoEmail", "hard"),
        ("Permanent", "Suppressed", "hard"),
        ("Transient", "MailboxFull", "soft"),
        ("Transient", "General", "soft"),
        ("Transient", "ContentRejected", "policy"),
        ("Transient", "MessageTooLarge", "policy"),
        ("Undetermined", "Undetermined", "soft"),
    ],
)
def test_bounce_kinds(bounce_type: str, sub_type: str, expected: str) -> None:
    """Take SES's word on permanent or transient; blame the message for content."""
    event = bounce_event(bounce_type, sub_type)
    recipients = event["bounce"]["bouncedRecipients"]  # type: ignore[index]
    recipients[0]["status"] = ""
    recipients[0]["diagnosticCode"] = "smtp; 550 rejected"
    reports = ses._reports({"Message": json.dumps(event)})
    assert reports[0].kind == expected


def test_a_policy_code_is_never_the_address(hooks: Settings) -> None:
    """Treat a 5.7.1 bounce as the sender's problem even when SES says Permanent."""
    event = bounce_event()
    event["bounce"]["bouncedRecipients"][0]["status"] = "5.7.1"  # type: ignore[index]
    assert ses._reports({"Message": json.dumps(event)})[0].kind == "policy"


def test_complaint_notification(
    hooks: Settings, sns: FeedServer, signer: Signer, cert_url: str
) -> None:
    """Record a signed complaint as a complaint."""
    event = {
        "notificationType": "Complaint",
        "complaint": {
            "feedbackId": "0100017b-complaint-000000",
            "complainedRecipients": [{"emailAddress": "angry@example.net"}],
            "complaintFeedbackType": "abuse",
        },
        "mail": bounce_event()["mail"],
    }
    with serving_app(hooks, sns_host=LOCAL_SNS) as (url, collected):
        assert send(url, signer.sign(notification(cert_url, event))) == 200
    [report] = collected.reports
    assert (report.kind, report.address, report.diagnostic) == (
        "complaint",
        "angry@example.net",
        "abuse",
    )


@pytest.mark.parametrize("event_type", ["Delivery", "DeliveryDelay", "Send", "Open"])
def test_other_notifications_are_acknowledged(
    hooks: Settings, sns: FeedServer, signer: Signer, cert_url: str, event_type: str
) -> None:
    """Answer 200 to deliveries, delays and opens, and record nothing."""
    event = {"eventType": event_type, "mail": bounce_event()["mail"]}
    with serving_app(hooks, sns_host=LOCAL_SNS) as (url, collected):
        assert send(url, signer.sign(notification(cert_url, event))) == 200
    assert collected.batches == []


def test_tampered_message_is_refused(
    hooks: Settings, sns: FeedServer, signer: Signer, cert_url: str
) -> None:
    """Refuse a notification changed after signing."""
    message = signer.sign(notification(cert_url, bounce_event()))
    message["Message"] = message["Message"].replace("gone@", "victim@")
    with serving_app(hooks, sns_host=LOCAL_SNS) as (url, collected):
        assert send(url, message) == 403
    assert collected.batches == []


def test_wrong_signature_is_refused(hooks: Settings, sns: FeedServer, cert_url: str) -> None:
    """Refuse a notification signed by a key the certificate is not for, or unsigned."""
    forged = Signer().sign(notification(cert_url, bounce_event()))
    unknown = {**forged, "SignatureVersion": "3"}
    garbage = {**forged, "Signature": "***"}
    unsigned = notification(cert_url, bounce_event())
    with serving_app(hooks, sns_host=LOCAL_SNS) as (url, collected):
        for message in (forged, unknown, garbage, unsigned):
            assert send(url, message) == 403
    assert collected.batches == []


def test_certificate_from_a_wrong_host_is_refused_unfetched(
    hooks: Settings, sns: FeedServer, signer: Signer, cert_url: str
) -> None:
    """Refuse a SigningCertURL off the SNS hosts, or over http, without fetching it."""
    wrong_host = cert_url.replace("localhost", "127.0.0.1")
    plain_http = cert_url.replace("https://", "http://")
    not_pem = sns.add("/cert.txt", signer.pem)
    with serving_app(hooks, sns_host=LOCAL_SNS) as (url, collected):
        for where in (wrong_host, plain_http, not_pem):
            assert send(url, signer.sign(notification(where, bounce_event()))) == 403
    assert sns.requests == []
    assert collected.batches == []


def test_topic_not_configured_is_refused_unfetched(
    hooks: Settings, sns: FeedServer, signer: Signer, cert_url: str
) -> None:
    """Refuse a correctly signed message from another account's topic before any fetch."""
    other = "arn:aws:sns:us-east-1:999999999999:someone-else"
    with serving_app(hooks, sns_host=LOCAL_SNS) as (url, collected):
        assert send(url, signer.sign(notification(cert_url, bounce_event(), other))) == 403
    assert sns.requests == []
    assert collected.batches == []


def test_missing_or_expired_certificate(
    hooks: Settings, sns: FeedServer, signer: Signer, cert_url: str
) -> None:
    """Refuse a certificate URL that answers 404, and a certificate past its dates."""
    missing = sns.url + "/SimpleNotificationService-gone.pem"
    with serving_app(hooks, sns_host=LOCAL_SNS) as (url, _):
        assert send(url, signer.sign(notification(missing, bounce_event()))) == 403
    with serving_app(hooks, sns_host=LOCAL_SNS, now=NOW + timedelta(days=400)) as (url, got):
        assert send(url, signer.sign(notification(cert_url, bounce_event()))) == 403
    assert got.batches == []


def test_unreachable_certificate_is_a_503(hooks: Settings, signer: Signer) -> None:
    """Answer 503 (SNS retries) when the certificate cannot be fetched now."""
    with serving(None) as down:
        gone = down.url.replace("http://127.0.0.1", "https://localhost")
    message = signer.sign(notification(gone + "/cert.pem", bounce_event()))
    with serving_app(hooks, sns_host=LOCAL_SNS) as (url, collected):
        assert send(url, message) == 503
    assert collected.batches == []


def subscription(sns: FeedServer, subscribe_url: str) -> dict[str, str]:
    """An unsigned SubscriptionConfirmation for TOPIC."""
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd",
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
        "SubscribeURL": subscribe_url,
        "Timestamp": "2026-11-28T06:59:01.000Z",
        "SigningCertURL": sns.url + "/SimpleNotificationService-0123.pem",
    }


CONFIRM = "/?Action=ConfirmSubscription&TopicArn=digest-bounces&Token=2336412f37fb"


def test_subscription_confirmation_visits_the_subscribe_url(
    hooks: Settings, sns: FeedServer, signer: Signer, cert_url: str
) -> None:
    """Confirm a signed subscription to our topic by visiting its SubscribeURL once."""
    confirm = sns.add(CONFIRM, "<ConfirmSubscriptionResponse/>", content_type="text/xml")
    with serving_app(hooks, sns_host=LOCAL_SNS) as (url, collected):
        assert send(url, signer.sign(subscription(sns, confirm), "2")) == 200
    assert len(sns.hits(CONFIRM)) == 1
    assert collected.batches == []


def test_subscribe_url_off_the_sns_hosts_is_not_visited(
    hooks: Settings, sns: FeedServer, signer: Signer, cert_url: str
) -> None:
    """Refuse a signed confirmation whose SubscribeURL is elsewhere, and visit nothing."""
    elsewhere = sns.add(CONFIRM, "ok").replace("localhost", "127.0.0.1")
    with serving_app(hooks, sns_host=LOCAL_SNS) as (url, _):
        assert send(url, signer.sign(subscription(sns, elsewhere))) == 403
        tampered = signer.sign(subscription(sns, sns.url + CONFIRM))
        tampered["SubscribeURL"] = sns.url + "/?Action=ConfirmSubscription&Token=theirs"
        assert send(url, tampered) == 403
    assert sns.hits(CONFIRM) == []
    assert all(not r.path.startswith("/?") for r in sns.requests)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", True),
        ("https://sns.eu-west-3.amazonaws.com/?Action=ConfirmSubscription", True),
        ("https://SNS.US-EAST-1.AMAZONAWS.COM/x.pem", True),
        ("http://sns.us-east-1.amazonaws.com/x.pem", False),
        ("https://sns.us-east-1.amazonaws.com.evil.example/x.pem", False),
        ("https://evil.example/sns.us-east-1.amazonaws.com/x.pem", False),
        ("https://sns.us-east-1.amazonaws.com:8443/x.pem", False),
        ("https://user@sns.us-east-1.amazonaws.com/x.pem", False),
        ("https://sns.us-east-1.amazonaws.com@evil.example/x.pem", False),
        ("https://evilsns.us-east-1.amazonaws.com/x.pem", False),
        ("https://sns.amazonaws.com/x.pem", False),
        ("https://localhost:8443/x.pem", False),
        ("https://[::1/x.pem", False),
    ],
)
def test_the_sns_host_rule(settings: Settings, url: str, allowed: bool) -> None:
    """Allow only https://sns.<region>.amazonaws.com, no port, user or other host."""
    handler = ses.Ses(replace(settings, webhook_ses_topics=(TOPIC,)), lambda: NOW)
    assert handler.allowed(url) is allowed
