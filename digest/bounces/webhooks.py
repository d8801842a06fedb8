"""Email providers' webhooks on `digest serve`: dispatch, and the checks they share.

Each provider posts its bounce and complaint events to /webhooks/<provider>; the
provider's module (ses, postmark, mailgun, sendgrid) checks that the request is its own
and turns the events into DeliveryReports, which go to the report sink: by default the
recorder, which records each (source, reference) once, so a retried webhook changes
nothing the second time.

A request that fails its check gets 401 or 403 and nothing is recorded; a route whose
key is not set answers 404, as if it did not exist. Events that are not bounces or
complaints (deliveries, opens, delays the provider is still retrying) are acknowledged
with 200 and dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from digest.bounces.report import DeliveryReport
from digest.config import Settings
from digest.httpserver import WEBHOOK_MAX_BODY, Response, read_body

logger = logging.getLogger(__name__)

ReportSink = Callable[[Sequence[DeliveryReport]], object]
Clock = Callable[[], datetime]

# How far a signed timestamp may be from our clock (either way) before the request is
# refused as a replay of an old one; Stripe and Mailgun's own examples use five minutes.
TIMESTAMP_TOLERANCE = timedelta(minutes=5)
# An enhanced status code (RFC 3463) inside a provider's text: "smtp; 550 5.1.1 unknown".
_STATUS_IN_TEXT = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
# bounces+TOKEN@domain: the token of a per-message return path.
_VERP = re.compile(r"^[^@+\s]+\+([^@\s]+)@[^@\s]+$")
_MAX_FIELD = 500


class Refused(Exception):
    """The request is not the provider's: 401 (no credentials) or 403 (wrong ones)."""

    def __init__(self, status: int, reason: str, challenge: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        # A WWW-Authenticate value to send with a 401.
        self.challenge = challenge


class BadPayload(Exception):
    """The request passed its check (or has none yet) but cannot be read: 400."""


class Unavailable(Exception):
    """Something the check needs cannot be had now (the SNS certificate): 503, retried."""


@dataclass(frozen=True)
class WebhookRequest:
    """One POST to a webhook route: its headers (lower-case names) and raw body."""

    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str:
        """Return a header's value, or "" when the request has none."""
        return self.headers.get(name.lower(), "")


class Provider(Protocol):
    """What each provider's module offers the dispatcher."""

    name: str

    def handle(self, request: WebhookRequest, now: datetime) -> list[DeliveryReport]:
        """Check the request, then return its bounces and complaints (raise Refused)."""
        ...


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _reply(code: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    body = json.dumps({"status": message}).encode()
    return Response(f"{code} {_REASONS[code]}", body, "application/json", headers)


class Webhooks:
    """The webhook routes of one App: the providers whose key is set, and the sink."""

    def __init__(
        self,
        settings: Settings,
        sink: ReportSink,
        clock: Clock,
        *,
        sns_host: re.Pattern[str] | None = None,
    ) -> None:
        self.sink = sink
        self.clock = clock
        self.providers: dict[str, Provider] = {
            p.name: p for p in _configured(settings, clock, sns_host)
        }
        self._refusals = _RefusalLog()

    @property
    def body_cap(self) -> int:
        """Return the body cap the server must allow under /webhooks/ (0: none served)."""
        return WEBHOOK_MAX_BODY if self.providers else 0

    def answer(self, name: str, method: str, environ: Mapping[str, Any]) -> Response:
        """Answer one request to /webhooks/<name>."""
        provider = self.providers.get(name)
        if provider is None:
            return _reply(404, "not found")
        if method != "POST":
            return _reply(405, "POST only", (("Allow", "POST"),))
        body = read_body(environ, WEBHOOK_MAX_BODY)
        if body is None:
            return _reply(413, "too large")
        request = WebhookRequest(_headers(environ), body)
        try:
            reports = provider.handle(request, self.clock())
        except Refused as refused:
            self._refusals.add(name, refused)
            extra = (("WWW-Authenticate", refused.challenge),) if refused.challenge else ()
            return _reply(refused.status, "refused", extra)
        except BadPayload as err:
            logger.info("%s webhook: unreadable payload: %s", name, err)
            return _reply(400, "unreadable payload")
        except Unavailable as err:
            logger.warning("%s webhook: cannot check the request now: %s", name, err)
            return _reply(503, "try again later", (("Retry-After", "60"),))
        if reports:
            # A failure here is a 500: the provider retries, and the recorder records
            # each report once however often it comes.
            self.sink(reports)
        logger.info("%s webhook: %d report(s)", name, len(reports))
        return _reply(200, "ok")


def store_sink(settings: Settings, clock: Clock) -> ReportSink:
    """Return the sink that hands reports to the recorder, on the App's store and clock."""

    def record(reports: Sequence[DeliveryReport]) -> object:
        from digest.bounces.record import BouncePolicy, record_reports
        from digest.store import Store

        # Imported at the first report: the webhooks need nothing else of the recorder.
        policy = BouncePolicy.from_settings(settings)
        with Store(settings.db) as store:
            return record_reports(store, list(reports), clock(), policy=policy)

    return record


def _configured(
    settings: Settings, clock: Clock, sns_host: re.Pattern[str] | None
) -> Iterable[Provider]:
    """Build the providers whose key is set."""
    # Imported here: each provider's module uses the shared checks above.
    from digest.bounces import mailgun, postmark, sendgrid, ses

    if settings.webhook_ses_topics:
        yield ses.Ses(settings, clock, sns_host=sns_host)
    if settings.webhook_postmark_auth:
        yield postmark.Postmark(settings.webhook_postmark_auth)
    if settings.webhook_mailgun_key:
        yield mailgun.Mailgun(settings.webhook_mailgun_key)
    if settings.webhook_sendgrid_key:
        yield sendgrid.SendGrid(settings.webhook_sendgrid_key)


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    return headers


class _RefusalLog:
    """Log refused requests: each at INFO, and at WARNING at most once a minute per
    provider, since a wrong key refuses every request and needs the operator."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def add(self, name: str, refused: Refused) -> None:
        now = time.monotonic()
        with self._lock:
            self._count[name] = self._count.get(name, 0) + 1
            due = now >= self._next.get(name, 0.0)
            if due:
                count = self._count.pop(name)
                self._next[name] = now + 60
        if due:
            logger.warning(
                "%s webhook: refused %d request(s) in the last minute; latest: %s (%d)",
                name,
                count,
                refused.reason,
                refused.status,
            )
        else:
            logger.info("%s webhook: refused: %s (%d)", name, refused.reason, refused.status)


# Reading payloads: providers' JSON is untrusted until checked and loosely typed after.


def load_json(body: bytes) -> Any:
    """Parse a JSON body; BadPayload when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadPayload(f"not JSON: {err}") from None


def field(data: object, *path: str) -> object:
    """Return data[path[0]][path[1]]…, or None where a step is missing or not an object."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def text(value: object, limit: int = _MAX_FIELD) -> str:
    """Return value as one line of text when it is a string or a number, else ""."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    return " ".join(str(value).split())[:limit]


def address(value: object) -> str | None:
    """Return an email address as reported, or None when there is none."""
    found = text(value, 320).strip().strip("<>")
    return found if "@" in found else None


def message_id(value: object) -> str | None:
    """Return a Message-ID without its angle brackets, or None."""
    found = text(value, 998).strip().strip("<>").strip()
    return found or None


def enhanced_status(*texts: object) -> str:
    """Return the first enhanced status code given or found in texts ("5.1.1"), or ""."""
    for value in texts:
        match = _STATUS_IN_TEXT.search(text(value, 2000))
        if match:
            return match.group(1)
    return ""


def verp_token(return_path: object) -> str | None:
    """Return the token of a per-message return path (bounces+TOKEN@domain), or None."""
    match = _VERP.match(text(return_path, 320).strip().strip("<>"))
    return match.group(1) if match else None


def reference(*parts: object, event: object = None) -> str:
    """Return the report's reference: the provider's event id (and recipient), or when the
    provider gives no id, a digest of the event itself, which a retry repeats unchanged."""
    given = [text(p, 200) for p in parts]
    if given and given[0]:
        return " ".join(p for p in given if p)
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def check_fresh(timestamp: str, now: datetime, what: str) -> None:
    """Refuse (403) a signed Unix timestamp further than TIMESTAMP_TOLERANCE from now."""
    try:
        seconds = int(timestamp)
    except ValueError:
        raise Refused(403, f"{what} is not a Unix time") from None
    if abs(now.timestamp() - seconds) > TIMESTAMP_TOLERANCE.total_seconds():
        raise Refused(403, f"{what} is more than {TIMESTAMP_TOLERANCE} from now (a replay?)")
