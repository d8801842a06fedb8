"""Postmark, Mailgun and SendGrid webhooks over real HTTP, signed with throw-away keys.

The requests go through the real waitress server `digest serve` runs; the App's report
sink collects what would be recorded, so a refused request is seen to record nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from webhookclient import NOW, declare, post, serving

from digest.bounces import mailgun, postmark, sendgrid
from digest.bounces.report import DeliveryReport
from digest.config import Settings, load_settings
from digest.errors import ConfigError
from digest.httpserver import MAX_BODY, WEBHOOK_MAX_BODY
from digest.store import Store

MAILGUN_KEY = "key-0123456789abcdef"
POSTMARK_AUTH = "postmark:s3cret-pass"


def basic(auth: str = POSTMARK_AUTH) -> dict[str, str]:
    """The Authorization header Postmark sends for a URL with user:password in it."""
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    """A throw-away P-256 key standing in for SendGrid's."""
    return ec.generate_private_key(ec.SECP256R1())


def public_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """Return the public half as SendGrid's dashboard shows it: base64 of the DER."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.fixture
def hooks(settings: Settings, sendgrid_key: ec.EllipticCurvePrivateKey) -> Settings:
    """Settings with the Postmark, Mailgun and SendGrid keys set."""
    return replace(
        settings,
        webhook_postmark_auth=POSTMARK_AUTH,
        webhook_mailgun_key=MAILGUN_KEY,
        webhook_sendgrid_key=public_b64(sendgrid_key),
    )


# Every route is off until its key is set.


def test_routes_answer_404_while_their_key_is_unset(settings: Settings) -> None:
    """Answer 404 on every webhook route of a server without keys, and record nothing."""
    with serving(settings) as (url, collected):
        for name in ("ses", "postmark", "mailgun", "sendgrid", "other"):
            assert post(f"{url}/webhooks/{name}", b"{}")[0] == 404
            assert post(f"{url}/webhooks/{name}", b"", method="GET")[0] == 404
    assert collected.batches == []


def test_a_server_without_webhooks_keeps_the_small_body_cap(settings: Settings) -> None:
    """Refuse a large body under /webhooks/ when no webhook is configured (waitress's 413)."""
    with serving(settings) as (url, _):
        assert declare(url, "/webhooks/sendgrid", 100_000) == 413


def test_only_webhook_routes_take_large_bodies(
    hooks: Settings, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    """Take a 600 KB batch on /webhooks/ while other routes keep the 4 KiB cap."""
    events = [sendgrid_event("bounce", n, status="5.1.1") for n in range(2500)]
    body = json.dumps(events).encode()
    assert MAX_BODY < len(body) < WEBHOOK_MAX_BODY
    with serving(hooks) as (url, collected):
        status, _, _ = post(f"{url}/webhooks/sendgrid", body, signed(sendgrid_key, body))
        assert status == 200
        assert len(collected.reports) == 2500
        assert post(f"{url}/unsubscribe/abc", b"x" * (MAX_BODY + 10))[0] == 413
        assert declare(url, "/webhooks/sendgrid", WEBHOOK_MAX_BODY + 1) == 413
        assert declare(url, "/archive/", MAX_BODY + 1) == 413
    assert len(collected.batches) == 1


def test_only_post_is_answered_on_a_configured_route(hooks: Settings) -> None:
    """Answer 405 to a GET on a configured webhook route."""
    with serving(hooks) as (url, collected):
        status, headers, _ = post(f"{url}/webhooks/mailgun", b"", method="GET")
    assert status == 405
    assert headers["allow"] == "POST"
    assert collected.batches == []


def test_a_failing_sink_is_a_500_so_the_provider_retries(hooks: Settings) -> None:
    """Answer 500 when the reports cannot be recorded: providers retry on any non-2xx."""

    def broken(reports: Sequence[DeliveryReport]) -> None:
        raise RuntimeError("the store is down")

    from webserver import running

    from digest.web import App

    app = App(hooks, clock=lambda: NOW, report_sink=broken)
    body = postmark_record("HardBounce")
    with running(app) as url:
        status, _, _ = post(f"{url}/webhooks/postmark", body, basic(POSTMARK_AUTH))
    assert status == 500


def test_the_default_sink_records_into_the_store(settings: Settings) -> None:
    """Without a sink given, a report goes to the recorder, into the App's own store,
    once however often the provider sends it."""
    from webserver import running

    from digest.web import App

    with Store(settings.db):
        pass  # made, so that the web server finds a store
    app = App(replace(settings, webhook_postmark_auth=POSTMARK_AUTH), clock=lambda: NOW)
    body = postmark_record("HardBounce")
    with running(app) as url:
        for _ in range(2):
            assert post(f"{url}/webhooks/postmark", body, basic(POSTMARK_AUTH))[0] == 200
    with Store(settings.db) as store:
        (view,) = store.bounces.recent()
    assert (view.source, view.kind, view.status) == ("postmark", "hard", "5.1.1")
    assert view.received == NOW


# Postmark: basic auth.


def postmark_record(kind: str, record_type: str = "Bounce", **extra: object) -> bytes:
    """A Postmark webhook body, shaped as Postmark's documentation shows it."""
    record: dict[str, object] = {
        "RecordType": record_type,
        "ID": 1234,
        "Type": kind,
        "TypeCode": 1,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
        "Email": "gone@example.net",
        "From": "digest@news.example",
        "BouncedAt": "2026-11-28T06:59:00Z",
        "Inactive": True,
        "MessageStream": "outbound",
        **extra,
    }
    return json.dumps(record).encode()


def test_postmark_bounce_with_basic_auth(hooks: Settings) -> None:
    """Record a Postmark hard bounce sent with the configured user and password."""
    with serving(hooks) as (url, collected):
        status, _, _ = post(f"{url}/webhooks/postmark", postmark_record("HardBounce"), basic())
    assert status == 200
    [report] = collected.reports
    assert report.source == "postmark"
    assert report.kind == "hard"
    assert report.reference == "1234"
    assert report.address == "gone@example.net"
    assert report.status == "5.1.1"
    assert "does not exist" in report.diagnostic


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(b"postmark:wrong").decode(),
        "Basic " + base64.b64encode(b"other:s3cret-pass").decode(),
        "Basic !!!not-base64",
        "Bearer s3cret-pass",
    ],
)
def test_postmark_wrong_basic_auth_is_refused(hooks: Settings, authorization: str | None) -> None:
    """Refuse a missing or wrong basic auth with 401 and a challenge; record nothing."""
    headers = {"Authorization": authorization} if authorization else {}
    with serving(hooks) as (url, collected):
        status, answer, _ = post(f"{url}/webhooks/postmark", postmark_record("HardBounce"), headers)
    assert status == 401
    assert answer["www-authenticate"].startswith("Basic")
    assert collected.batches == []


@pytest.mark.parametrize(
    ("record_type", "kind", "expected"),
    [
        ("Bounce", "HardBounce", "hard"),
        ("Bounce", "BadEmailAddress", "hard"),
        ("Bounce", "SoftBounce", "soft"),
        ("Bounce", "Blocked", "policy"),
        ("Bounce", "DMARCPolicy", "policy"),
        ("SpamComplaint", "SpamComplaint", "complaint"),
        ("Bounce", "Transient", None),
        ("Bounce", "AutoResponder", None),
        ("Bounce", "Unsubscribe", None),
        ("Delivery", "", None),
        ("Open", "", None),
    ],
)
def test_postmark_types(record_type: str, kind: str, expected: str | None) -> None:
    """Map Postmark's bounce types; drop delays, auto-replies and non-failures."""
    record = json.loads(postmark_record(kind, record_type, Details="mailbox full"))
    report = postmark._report(record)
    assert (report.kind if report else None) == expected


def test_postmark_events_that_are_no_failure_are_acknowledged(hooks: Settings) -> None:
    """Answer 200 to a delivery event and record nothing."""
    with serving(hooks) as (url, collected):
        body = postmark_record("", "Delivery")
        assert post(f"{url}/webhooks/postmark", body, basic())[0] == 200
    assert collected.batches == []


# Mailgun: HMAC-SHA256 over timestamp + token, fresh, used once.


def mailgun_body(
    event: dict[str, object],
    *,
    timestamp: datetime = NOW,
    token: str = "a" * 50,
    key: str = MAILGUN_KEY,
) -> bytes:
    """A Mailgun webhook body signed with key."""
    stamp = str(int(timestamp.timestamp()))
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {
            "signature": {"timestamp": stamp, "token": token, "signature": signature},
            "event-data": event,
        }
    ).encode()


def mailgun_failed(severity: str = "permanent", reason: str = "bounce") -> dict[str, object]:
    """A Mailgun failed event, shaped as Mailgun's documentation shows it."""
    return {
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "timestamp": NOW.timestamp(),
        "event": "failed",
        "severity": severity,
        "reason": reason,
        "recipient": "gone@example.net",
        "envelope": {"sender": "bounces+e1s42.x7@news.example", "targets": "gone@example.net"},
        "message": {
            "headers": {
                "to": "gone@example.net",
                "message-id": "20261128070000.1.abc@news.example",
                "from": "digest@news.example",
                "subject": "Daily Digest",
            }
        },
        "delivery-status": {
            "attempt-no": 1,
            "code": 550,
            "enhanced-code": "5.1.1",
            "message": "5.1.1 The email account that you tried to reach does not exist.",
            "description": "",
        },
    }


def test_mailgun_failed_permanent(hooks: Settings) -> None:
    """Record a signed permanent failure with our Message-ID and the return path's token."""
    with serving(hooks) as (url, collected):
        assert post(f"{url}/webhooks/mailgun", mailgun_body(mailgun_failed()))[0] == 200
    [report] = collected.reports
    assert report.kind == "hard"
    assert report.source == "mailgun"
    assert report.reference == "G9Bn5sl1TC6nu79C8C0bwg"
    assert report.message_id == "20261128070000.1.abc@news.example"
    assert report.verp_token == "e1s42.x7"
    assert report.status == "5.1.1"


def test_mailgun_wrong_signature_is_refused(hooks: Settings) -> None:
    """Refuse a body signed with another key (403) or not signed (401)."""
    unsigned = json.dumps({"event-data": mailgun_failed()}).encode()
    with serving(hooks) as (url, collected):
        forged = mailgun_body(mailgun_failed(), key="key-not-ours")
        assert post(f"{url}/webhooks/mailgun", forged)[0] == 403
        assert post(f"{url}/webhooks/mailgun", unsigned)[0] == 401
    assert collected.batches == []


def test_mailgun_replayed_token_is_refused(hooks: Settings) -> None:
    """Accept a signed request once; the same token again is refused and recorded nowhere."""
    body = mailgun_body(mailgun_failed())
    with serving(hooks) as (url, collected):
        assert post(f"{url}/webhooks/mailgun", body)[0] == 200
        assert post(f"{url}/webhooks/mailgun", body)[0] == 403
        again = mailgun_body(mailgun_failed(), token="b" * 50)
        assert post(f"{url}/webhooks/mailgun", again)[0] == 200
    assert len(collected.batches) == 2


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_mailgun_stale_timestamp_is_refused(hooks: Settings, offset: timedelta) -> None:
    """Refuse a correctly signed request whose timestamp is over five minutes off."""
    with serving(hooks) as (url, collected):
        body = mailgun_body(mailgun_failed(), timestamp=NOW + offset)
        assert post(f"{url}/webhooks/mailgun", body)[0] == 403
    assert collected.batches == []


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (mailgun_failed("permanent", "bounce"), "hard"),
        (mailgun_failed("permanent", "suppress-bounce"), "hard"),
        (mailgun_failed("permanent", "old"), "soft"),
        (mailgun_failed("permanent", "espblock"), "policy"),
        (mailgun_failed("permanent", "suppress-complaint"), "complaint"),
        (mailgun_failed("permanent", "suppress-unsubscribe"), None),
        (mailgun_failed("temporary", "generic"), None),
        ({**mailgun_failed(), "event": "complained", "severity": None}, "complaint"),
        ({**mailgun_failed(), "event": "delivered"}, None),
        ({**mailgun_failed(), "event": "opened"}, None),
    ],
)
def test_mailgun_events(event: dict[str, object], expected: str | None) -> None:
    """Map failed (permanent only: a temporary one is retried) and complained events."""
    report = mailgun._report(event)
    assert (report.kind if report else None) == expected


def test_mailgun_policy_code_wins() -> None:
    """Treat a permanent 5.7.x failure as the sender's problem, not the address's."""
    event = mailgun_failed()
    event["delivery-status"] = {"code": 550, "message": "5.7.1 Message rejected as spam"}
    report = mailgun._report(event)
    assert report is not None and report.kind == "policy" and report.status == "5.7.1"


# SendGrid: ECDSA over timestamp + payload.


def sendgrid_event(event: str, n: int = 0, **extra: object) -> dict[str, object]:
    """A SendGrid event, shaped as SendGrid's documentation shows it."""
    return {
        "email": f"reader{n}@example.net",
        "timestamp": int(NOW.timestamp()),
        "smtp-id": f"<20261128.{n}@news.example>",
        "event": event,
        "sg_event_id": f"sg-event-{event}-{n}",
        "sg_message_id": f"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.{n}",
        **extra,
    }


def signed(
    key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: datetime = NOW
) -> dict[str, str]:
    """The headers SendGrid signs a batch with."""
    stamp = str(int(timestamp.timestamp()))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        sendgrid.SIGNATURE_HEADER: base64.b64encode(signature).decode(),
        sendgrid.TIMESTAMP_HEADER: stamp,
    }


BATCH = [
    sendgrid_event(
        "bounce",
        0,
        type="bounce",
        status="5.1.1",
        reason="550 5.1.1 The email account does not exist",
        bounce_classification="Invalid Address",
    ),
    sendgrid_event("dropped", 1, reason="Bounced Address", status="5.0.0"),
    sendgrid_event("spamreport", 2),
    sendgrid_event("delivered", 3, response="250 OK"),
    sendgrid_event("deferred", 4, response="400 try again later", attempt="5"),
    sendgrid_event("bounce", 5, type="blocked", status="4.0.0", bounce_classification="Reputation"),
]


def test_sendgrid_batch(hooks: Settings, sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    """Record a signed batch's bounce, drop, complaint and block; skip the rest."""
    body = json.dumps(BATCH).encode()
    with serving(hooks) as (url, collected):
        assert post(f"{url}/webhooks/sendgrid", body, signed(sendgrid_key, body))[0] == 200
    assert len(collected.batches) == 1
    assert [(r.address, r.kind) for r in collected.reports] == [
        ("reader0@example.net", "hard"),
        ("reader1@example.net", "hard"),
        ("reader2@example.net", "complaint"),
        ("reader5@example.net", "policy"),
    ]
    first = collected.reports[0]
    assert first.reference == "sg-event-bounce-0"
    assert first.message_id == "20261128.0@news.example"
    assert first.status == "5.1.1"


def test_sendgrid_tampered_body_is_refused(
    hooks: Settings, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    """Refuse a batch changed after signing."""
    body = json.dumps(BATCH).encode()
    headers = signed(sendgrid_key, body)
    tampered = body.replace(b"reader0@", b"victim0@")
    with serving(hooks) as (url, collected):
        assert post(f"{url}/webhooks/sendgrid", tampered, headers)[0] == 403
    assert collected.batches == []


def test_sendgrid_wrong_key_missing_or_stale_signature_is_refused(
    hooks: Settings, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    """Refuse another key's signature, no signature, and a stale timestamp."""
    body = json.dumps(BATCH).encode()
    other = ec.generate_private_key(ec.SECP256R1())
    with serving(hooks) as (url, collected):
        assert post(f"{url}/webhooks/sendgrid", body, signed(other, body))[0] == 403
        assert post(f"{url}/webhooks/sendgrid", body)[0] == 401
        stale = signed(sendgrid_key, body, NOW - timedelta(hours=1))
        assert post(f"{url}/webhooks/sendgrid", body, stale)[0] == 403
        garbage = {**signed(sendgrid_key, body), sendgrid.SIGNATURE_HEADER: "not base64!"}
        assert post(f"{url}/webhooks/sendgrid", body, garbage)[0] == 403
    assert collected.batches == []


def test_refusals_log_without_secrets(
    hooks: Settings, caplog: pytest.LogCaptureFixture, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    """Warn about refused requests naming the key to check, never its value."""
    caplog.set_level(logging.INFO)
    with serving(hooks) as (url, _):
        post(f"{url}/webhooks/mailgun", mailgun_body(mailgun_failed(), key="key-not-ours"))
        post(f"{url}/webhooks/postmark", postmark_record("HardBounce"), basic("postmark:nope"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("DIGEST_WEBHOOK_MAILGUN_KEY" in w for w in warnings)
    assert any("DIGEST_WEBHOOK_POSTMARK_AUTH" in w for w in warnings)
    assert not any(MAILGUN_KEY in r.getMessage() for r in caplog.records)
    assert not any("s3cret" in r.getMessage() for r in caplog.records)
    assert not any("@example.net" in r.getMessage() for r in caplog.records)


# Settings.


def test_webhook_settings_load(sendgrid_key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> None:
    """Read every webhook key, and keep the secrets out of the settings' repr."""
    pem = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = load_settings(
        None,
        {
            "DIGEST_DB": str(tmp_path / "d.db"),
            "DIGEST_WEBHOOK_SES_TOPICS": "arn:aws:sns:us-east-1:123456789012:bounces,"
            " arn:aws:sns:eu-west-1:123456789012:complaints",
            "DIGEST_WEBHOOK_POSTMARK_AUTH": POSTMARK_AUTH,
            "DIGEST_WEBHOOK_MAILGUN_KEY": MAILGUN_KEY,
            # PEM armour on one line, as a setting must be.
            "DIGEST_WEBHOOK_SENDGRID_KEY": " ".join(pem.decode().split()),
        },
    )
    assert settings.webhook_ses_topics == (
        "arn:aws:sns:us-east-1:123456789012:bounces",
        "arn:aws:sns:eu-west-1:123456789012:complaints",
    )
    assert settings.webhook_postmark_auth == POSTMARK_AUTH
    assert settings.webhook_mailgun_key == MAILGUN_KEY
    assert sendgrid.load_key(public_b64(sendgrid_key)).public_numbers() == (
        sendgrid.load_key(settings.webhook_sendgrid_key).public_numbers()
    )
    assert MAILGUN_KEY not in repr(settings)
    assert "s3cret" not in repr(settings)
    assert load_settings(None, {}).webhook_mailgun_key == ""


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("DIGEST_WEBHOOK_SES_TOPICS", "my-topic", "is not an SNS topic ARN"),
        ("DIGEST_WEBHOOK_POSTMARK_AUTH", "hunter2", "must be user:password"),
        ("DIGEST_WEBHOOK_POSTMARK_AUTH", ":hunter2", "must be user:password"),
        ("DIGEST_WEBHOOK_SENDGRID_KEY", "bm90IGEga2V5", "is not a public key"),
    ],
)
def test_bad_webhook_settings(key: str, value: str, why: str) -> None:
    """Name the key and what is wrong; never show a password."""
    with pytest.raises(ConfigError, match=why) as raised:
        load_settings(None, {key: value})
    assert key in str(raised.value)
    if "PASSWORD" in key or "AUTH" in key:
        assert value not in str(raised.value)
