"""Sign-ups: pending addresses, confirmation, consent records, preferences and the
transactional mail (confirm, already subscribed, welcome) still to send.

Every decision about time takes `now` from the caller, so that the web and the tests
share one clock. Confirmation links name the instant they were issued for, stored here in
whole seconds: a link works once, and only the newest one works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, delete, or_, select, update

from digest.models import Consent, Subscriber
from digest.store.db import Database
from digest.store.schema import rate_buckets, subscribers
from digest.store.subscribers import _subscriber

# What a sign-up found: a new address, one awaiting confirmation, an active one, or one
# that left (unsubscribed or bounced). The web answers all four alike.
Found = Literal["new", "pending", "active", "left"]
Notice = Literal["confirm", "known", "welcome"]
# At most one confirmation (or "you are already subscribed") email an hour per address.
NOTICE_INTERVAL = timedelta(hours=1)
# Per-IP buckets idle this long are full again, and forgotten.
BUCKET_IDLE = timedelta(days=1)
SIGNUP_BUCKET = "signup:"


@dataclass(frozen=True)
class DueNotice:
    """One transactional email to send."""

    subscriber_id: int
    email: str
    name: str
    kind: Notice
    confirm_requested: datetime | None


def whole_seconds(value: datetime) -> datetime:
    """Return value without its microseconds: confirmation links carry whole seconds."""
    return value.replace(microsecond=0)


class Signups:
    """The sign-up side of the subscriber list."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def request(
        self,
        email: str,
        name: str,
        topics: tuple[str, ...],
        timezone: str,
        consent: Consent,
        now: datetime,
    ) -> Found:
        """Record a sign-up and queue the one email it calls for, at most one an hour.

        A new address becomes pending; a pending one takes the new details; an active one
        is left as it is and told it is subscribed already; one that left stays so until it
        confirms afresh. Which it was is returned, for the tests: callers answer alike.
        """
        s = subscribers.c
        key = email.lower()
        issued = whole_seconds(now)
        with self.db.write() as conn:
            conn.execute(
                self.db.insert(subscribers)
                .values(
                    email=email,
                    email_key=key,
                    name=name,
                    topics=",".join(topics),
                    timezone=timezone,
                    status="pending",
                    created=now,
                    updated=now,
                )
                .on_conflict_do_nothing(index_elements=[s.email_key])
            )
            query = select(subscribers).where(s.email_key == key).with_for_update()
            row = conn.execute(query).one()
            found: Found = (
                "new"
                if row.status == "pending" and row.signup_at is None
                else "pending"
                if row.status == "pending"
                else "active"
                if row.status == "active"
                else "left"
            )
            may_send = row.confirm_sent_at is None or row.confirm_sent_at <= now - NOTICE_INTERVAL
            values: dict[str, Any] = {}
            if found != "active":
                # Details of this sign-up; consent is on record only once it is confirmed.
                values = {
                    "name": name,
                    "topics": ",".join(topics),
                    "timezone": timezone,
                    "signup_at": consent.signup_at or now,
                    "signup_ip": consent.signup_ip,
                    "signup_agent": consent.signup_agent,
                    "updated": now,
                }
                if may_send:
                    values |= {"confirm_requested": issued, "notice_due": "confirm"}
            elif may_send:
                values = {"notice_due": "known"}
            if values:
                conn.execute(update(subscribers).where(s.id == row.id).values(**values))
            return found

    def current_confirmation(
        self, subscriber_id: int, issued: datetime, now: datetime, ttl: timedelta
    ) -> Subscriber | None:
        """Return the subscriber whose open confirmation link this is, or None."""
        s = subscribers.c
        with self.db.read() as conn:
            row = conn.execute(
                select(subscribers).where(s.id == subscriber_id, s.confirm_requested == issued)
            ).first()
        if row is None or issued <= now - ttl:
            return None
        return _subscriber(row)

    def confirm(
        self,
        subscriber_id: int,
        issued: datetime,
        ip: str,
        agent: str,
        now: datetime,
        ttl: timedelta,
        *,
        welcome: bool = False,
    ) -> bool:
        """Confirm the sign-up this link was issued for; return False if it is not open."""
        s = subscribers.c
        if issued <= now - ttl:
            return False
        values: dict[str, Any] = {
            "status": "active",
            "ended_by": None,
            "hard_failures": 0,
            "paused_until": None,
            "consent_source": "form",
            "consent_note": "",
            "confirmed_at": now,
            "confirm_ip": ip,
            "confirm_agent": agent,
            "confirm_requested": None,
            "updated": now,
        }
        if welcome:
            values["notice_due"] = "welcome"
        stmt = (
            update(subscribers)
            .where(s.id == subscriber_id, s.confirm_requested == issued)
            .values(**values)
        )
        with self.db.write() as conn:
            return conn.execute(stmt).rowcount > 0

    def reopen(self, subscriber_id: int, now: datetime) -> bool:
        """Ask a subscriber who left to confirm again (a fresh opt-in); at most hourly."""
        s = subscribers.c
        stmt = (
            update(subscribers)
            .where(
                s.id == subscriber_id,
                s.status.in_(("unsubscribed", "bounced")),
                or_(s.confirm_sent_at.is_(None), s.confirm_sent_at <= now - NOTICE_INTERVAL),
            )
            .values(confirm_requested=whole_seconds(now), notice_due="confirm", updated=now)
        )
        with self.db.write() as conn:
            return conn.execute(stmt).rowcount > 0

    def record_consent(self, subscriber_id: int, consent: Consent, now: datetime) -> None:
        """Put consent on record for a subscriber (an operator's or an import's)."""
        stmt = (
            update(subscribers)
            .where(subscribers.c.id == subscriber_id)
            .values(consent_source=consent.source, consent_note=consent.note, updated=now)
        )
        with self.db.write() as conn:
            conn.execute(stmt)

    def request_confirmation(self, subscriber_id: int, now: datetime) -> None:
        """Queue a confirmation email for an address an operator added as pending."""
        stmt = (
            update(subscribers)
            .where(subscribers.c.id == subscriber_id, subscribers.c.status != "active")
            .values(confirm_requested=whole_seconds(now), notice_due="confirm", updated=now)
        )
        with self.db.write() as conn:
            conn.execute(stmt)

    def set_preferences(
        self, subscriber_id: int, name: str, topics: tuple[str, ...], timezone: str, now: datetime
    ) -> None:
        """Change a subscriber's name, topics and time zone."""
        stmt = (
            update(subscribers)
            .where(subscribers.c.id == subscriber_id)
            .values(name=name, topics=",".join(topics), timezone=timezone, updated=now)
        )
        with self.db.write() as conn:
            conn.execute(stmt)

    def pause(self, subscriber_id: int, until: datetime | None, now: datetime) -> None:
        """Hold editions back until `until` (None: resume now)."""
        stmt = (
            update(subscribers)
            .where(subscribers.c.id == subscriber_id)
            .values(paused_until=until, updated=now)
        )
        with self.db.write() as conn:
            conn.execute(stmt)

    # The mail still to send

    def due_notices(self, limit: int = 100) -> list[DueNotice]:
        """Return the transactional emails waiting to be sent."""
        s = subscribers.c
        query = (
            select(s.id, s.email, s.name, s.notice_due, s.confirm_requested)
            .where(s.notice_due.is_not(None))
            .order_by(s.id)
            .limit(limit)
        )
        with self.db.read() as conn:
            return [
                DueNotice(int(r.id), r.email, r.name, r.notice_due, r.confirm_requested)
                for r in conn.execute(query)
            ]

    def claim_notice(self, notice: DueNotice, now: datetime) -> bool:
        """Take a notice for sending; False when another process took it first."""
        s = subscribers.c
        values: dict[str, Any] = {"notice_due": None}
        if notice.kind != "welcome":
            values["confirm_sent_at"] = now
        stmt = (
            update(subscribers)
            .where(s.id == notice.subscriber_id, s.notice_due == notice.kind)
            .values(**values)
        )
        with self.db.write() as conn:
            return conn.execute(stmt).rowcount > 0

    def release_notice(self, notice: DueNotice) -> None:
        """Put back a notice whose sending failed for now, unless a newer one is queued."""
        s = subscribers.c
        stmt = (
            update(subscribers)
            .where(s.id == notice.subscriber_id, s.notice_due.is_(None))
            .values(notice_due=notice.kind)
        )
        with self.db.write() as conn:
            conn.execute(stmt)

    # Limits and clean-up

    def take(self, key: str, per_hour: int, now: datetime) -> bool:
        """Take one token from a sign-up bucket holding per_hour; False when it is empty."""
        b = rate_buckets.c
        bucket = SIGNUP_BUCKET + key
        with self.db.write() as conn:
            conn.execute(
                self.db.insert(rate_buckets)
                .values(key=bucket, tokens=float(per_hour), updated=now)
                .on_conflict_do_nothing()
            )
            tokens, updated = conn.execute(
                select(b.tokens, b.updated).where(b.key == bucket).with_for_update()
            ).one()
            elapsed = max((now - updated).total_seconds(), 0.0)
            tokens = min(float(per_hour), float(tokens) + elapsed * per_hour / 3600)
            given = bool(math.floor(tokens) >= 1)
            conn.execute(
                update(rate_buckets)
                .where(b.key == bucket)
                .values(tokens=tokens - 1 if given else tokens, updated=now)
            )
        return given

    def expire(self, now: datetime, ttl: timedelta) -> int:
        """Delete pending addresses whose link ran out; close the links of the others.

        Return how many pending addresses were deleted.
        """
        s = subscribers.c
        cutoff = now - ttl
        stale = or_(
            s.confirm_requested < cutoff,
            and_(s.confirm_requested.is_(None), s.updated < cutoff),
        )
        with self.db.write() as conn:
            gone = conn.execute(delete(subscribers).where(s.status == "pending", stale)).rowcount
            conn.execute(
                update(subscribers)
                .where(s.status != "pending", s.confirm_requested < cutoff)
                .values(confirm_requested=None)
            )
            conn.execute(
                delete(rate_buckets).where(
                    rate_buckets.c.key.startswith(SIGNUP_BUCKET, autoescape=True),
                    rate_buckets.c.updated < now - BUCKET_IDLE,
                )
            )
        return int(gone)
