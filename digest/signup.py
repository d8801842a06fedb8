"""Readers' own sign-up: double opt-in, consent on record, preferences, abuse limits.

A sign-up makes a pending subscriber and queues one confirmation email; the email is
sent off the request (notices.py), so that a new, pending, active or unsubscribed
address gets the same answer in the same time. Confirming records when, from which IP
and with which browser; pending addresses that never confirm are deleted after
DIGEST_CONFIRM_TTL. The web layer (web_signup.py) only parses and answers.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from zoneinfo import available_timezones

from digest.config import Settings
from digest.models import Consent, Subscriber
from digest.store import Store
from digest.store.signups import Found
from digest.subscribers import SubscriberError, check_fields, normalise_email
from digest.tokens import confirm_url, read_confirm_token, subscriber_from_token

logger = logging.getLogger(__name__)

# Kept of a user agent: enough to tell browsers apart, not a page of text.
MAX_AGENT = 300
MAX_PAUSE_WEEKS = 52


class SignupLimited(Exception):
    """Too many sign-ups from one IP address in the last hour."""


@dataclass(frozen=True)
class SignupForm:
    """What a sign-up posts, from any of the three doors (page, embedded form, JSON)."""

    email: str
    name: str = ""
    topics: tuple[str, ...] = ()
    timezone: str = ""


@dataclass(frozen=True)
class Visitor:
    """Who is asking: their IP address and user agent, kept with their consent."""

    ip: str
    agent: str

    @property
    def short_agent(self) -> str:
        """Return the user agent cut to MAX_AGENT characters, one line."""
        return " ".join(self.agent.split())[:MAX_AGENT]


def topic_choices(settings: Settings) -> tuple[str, ...]:
    """Return the topics a reader may pick: the configured sections, and the rest."""
    if not settings.sections:
        return ()
    return (*settings.sections, settings.default_section)


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_zone(zone: str) -> str:
    """Return zone if it is an IANA time zone name ("" for none), else raise."""
    zone = zone.strip()
    if zone and zone not in _zones():
        raise SubscriberError(
            f"unknown time zone {zone[:60]!r}: give an IANA name such as Europe/Paris"
        )
    return zone


def clean(settings: Settings, form: SignupForm) -> tuple[str, str, tuple[str, ...], str]:
    """Return the address, name, topics and zone of a form, or raise SubscriberError."""
    address = normalise_email(form.email)
    allowed = {t.casefold(): t for t in topic_choices(settings)}
    unknown = [t for t in form.topics if t.casefold() not in allowed]
    if unknown:
        raise SubscriberError(f"unknown topic {unknown[0][:60]!r}")
    name, topics, _ = check_fields(form.name, ",".join(form.topics), "")
    return address, name, topics, check_zone(form.timezone)


def _ip_key(settings: Settings, ip: str) -> str:
    """Return the bucket key of an IP: keyed by the secret, so the store keeps no IPs."""
    return hmac.new(settings.secret_key.encode(), f"ip\0{ip}".encode(), hashlib.sha256).hexdigest()[
        :32
    ]


def sign_up(
    settings: Settings, store: Store, form: SignupForm, visitor: Visitor, now: datetime
) -> Found:
    """Record a sign-up and queue its email; raise SignupLimited or SubscriberError.

    The per-IP limit is taken before the address is looked at, so that it answers alike
    for every address.
    """
    address, name, topics, zone = clean(settings, form)
    if settings.signup_rate and not store.signups.take(
        _ip_key(settings, visitor.ip), settings.signup_rate, now
    ):
        raise SignupLimited
    store.signups.expire(now, settings.confirm_ttl)
    consent = Consent(
        source="form", signup_at=now, signup_ip=visitor.ip, signup_agent=visitor.short_agent
    )
    found = store.signups.request(address, name, topics, zone, consent, now)
    logger.info("sign-up from the web: %s address", found)
    return found


def confirmation(
    settings: Settings, store: Store, token: str, now: datetime
) -> tuple[str, Subscriber | None]:
    """Return what a confirmation link is: open, done (already confirmed), expired or bad."""
    read = read_confirm_token(settings.secret_key, settings.list_id, token)
    if read is None:
        return "bad", None
    subscriber_id, issued = read
    current = store.signups.current_confirmation(subscriber_id, issued, now, settings.confirm_ttl)
    if current is not None:
        return "open", current
    found = store.subscribers.by_id(subscriber_id)
    if found is None:
        return ("expired" if issued <= now - settings.confirm_ttl else "bad"), None
    confirmed = found.consent.confirmed_at if found.consent else None
    if found.status == "active" and confirmed is not None and confirmed >= issued:
        return "done", found
    if issued <= now - settings.confirm_ttl:
        return "expired", None
    return "bad", None


def confirm(
    settings: Settings, store: Store, token: str, visitor: Visitor, now: datetime
) -> tuple[str, Subscriber | None]:
    """Confirm the sign-up a link names; return its state as confirmation() does."""
    state, found = confirmation(settings, store, token, now)
    if state != "open" or found is None:
        return state, found
    read = read_confirm_token(settings.secret_key, settings.list_id, token)
    assert read is not None
    if store.signups.confirm(
        found.id,
        read[1],
        visitor.ip,
        visitor.short_agent,
        now,
        settings.confirm_ttl,
        welcome=settings.welcome,
    ):
        logger.warning("subscriber %d confirmed their sign-up", found.id)
    return "done", store.subscribers.by_id(found.id)


def reader(settings: Settings, store: Store, token: str) -> Subscriber | None:
    """Return the subscriber a preferences token names, or None for any bad token."""
    subscriber_id = subscriber_from_token(
        settings.secret_key, settings.list_id, token, "preferences"
    )
    return None if subscriber_id is None else store.subscribers.by_id(subscriber_id)


def save_preferences(
    settings: Settings, store: Store, subscriber: Subscriber, form: SignupForm, now: datetime
) -> None:
    """Change a reader's name, topics and time zone; raise SubscriberError for bad ones."""
    _, name, topics, zone = clean(settings, SignupForm(subscriber.email, *_rest(form)))
    store.signups.set_preferences(subscriber.id, name, topics, zone, now)


def _rest(form: SignupForm) -> tuple[str, tuple[str, ...], str]:
    return form.name, form.topics, form.timezone


def pause(store: Store, subscriber: Subscriber, weeks: int, now: datetime) -> datetime | None:
    """Pause a reader's editions for weeks (0: resume now); return until when."""
    if not 0 <= weeks <= MAX_PAUSE_WEEKS:
        raise SubscriberError(f"a pause is 1 to {MAX_PAUSE_WEEKS} weeks")
    until = now + timedelta(weeks=weeks) if weeks else None
    store.signups.pause(subscriber.id, until, now)
    return until


def expire_pending(settings: Settings, store: Store, now: datetime) -> int:
    """Delete the pending addresses whose confirmation ran out; return how many."""
    gone = store.signups.expire(now, settings.confirm_ttl)
    if gone:
        logger.info("deleted %d unconfirmed sign-ups older than DIGEST_CONFIRM_TTL", gone)
    return gone


def embed_snippet(settings: Settings) -> str:
    """Return the HTML form a publisher pastes into their own site."""
    action = escape(f"{settings.base_url}/subscribe")
    topics = "".join(
        f'  <label><input type="checkbox" name="topics" value="{escape(t)}"> {escape(t)}</label>\n'
        for t in topic_choices(settings)
    )
    return (
        f'<form method="post" action="{action}" class="digest-signup">\n'
        f'  <label>Email <input type="email" name="email" required></label>\n'
        f'  <label>Name <input type="text" name="name"></label>\n'
        f"{topics}"
        '  <input type="hidden" name="timezone" value="">\n'
        "  <!-- Left empty by people; bots fill it in. -->\n"
        '  <input type="text" name="website" value="" tabindex="-1" autocomplete="off"'
        ' style="position:absolute;left:-9999px" aria-hidden="true">\n'
        f'  <button type="submit">Subscribe to {escape(settings.title)}</button>\n'
        "</form>\n"
        "<script>\n"
        "  document.querySelectorAll('form.digest-signup input[name=timezone]').forEach(\n"
        "    (f) => { f.value = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; });\n"
        "</script>\n"
    )


def link_for_confirmation(settings: Settings, token: str) -> str:
    """Return the confirmation URL for a token."""
    return confirm_url(settings.base_url, token)


def operator_consent(who: str = "") -> Consent:
    """Return the consent record of an operator vouching for an address."""
    if not who:
        try:
            who = getpass.getuser()
        except (KeyError, OSError):
            who = "an operator"
    who = " ".join(who.split())[:MAX_AGENT]
    return Consent(source="operator", note=f"added by {who} with `digest subscribers add`")


def add_pending(
    settings: Settings,
    store: Store,
    email: str,
    now: datetime,
    *,
    name: str = "",
    topics: str = "",
    timezone: str = "",
) -> str:
    """Add an address as pending and send its confirmation now (sent when the notice
    went, queued when sending failed for now, active when it is subscribed already)."""
    from digest.notices import send_notices

    try:
        address = normalise_email(email)
    except SubscriberError as err:
        raise SubscriberError(f"{email.strip()}: {err}") from None
    clean_name, parts, zone = check_fields(name, topics, timezone)
    consent = Consent(signup_at=now, signup_agent="digest subscribers add --confirm")
    found = store.signups.request(address, clean_name, parts, zone, consent, now)
    if found == "active":
        raise SubscriberError(f"{address} is subscribed already")
    return "sent" if send_notices(settings, store, now) else "queued"
