"""The subscriber list: addresses, their topics and time zones, and whether they get mail."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import Any, Literal

from sqlalchemy import Row, case, func, literal, select

from digest.models import Consent, EndedBy, Subscriber, SubscriberStatus
from digest.store.db import Database
from digest.store.schema import subscribers

logger = logging.getLogger(__name__)

# kept: left unsubscribed or bounced; own: left unsubscribed although re-activation was
# asked for, because the subscriber unsubscribed themselves.
SubscriberChange = Literal["new", "updated", "unchanged", "kept", "own"]

# Rows read per query while streaming the list: each page is its own short read, so a
# slow consumer never holds a cursor (and, on SQLite, a WAL snapshot) open.
PAGE = 1000

# Addresses inserted per statement by add_many: bounds the memory an import takes.
BATCH = 1000


class Subscribers:
    """Who is on the list, keyed by address case-insensitively."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def upsert(
        self,
        email: str,
        name: str,
        topics: tuple[str, ...],
        timezone: str,
        now: datetime,
        *,
        resubscribe: bool = False,
        consent: Consent | None = None,
    ) -> SubscriberChange:
        """Add or update a subscriber by address; an unsubscribed one stays so unless asked.

        consent is recorded for a new address, and for a pending one that an operator
        vouches for, which makes it active.
        """
        key = email.lower()
        topic_text = ",".join(topics)
        with self.db.write() as conn:
            row = conn.execute(select(subscribers).where(subscribers.c.email_key == key)).first()
            if row is None:
                conn.execute(
                    subscribers.insert().values(
                        email=email,
                        email_key=key,
                        name=name,
                        topics=topic_text,
                        timezone=timezone,
                        status="active",
                        created=now,
                        updated=now,
                        consent_source=consent.source if consent else None,
                        consent_note=consent.note if consent else "",
                    )
                )
                return "new"
            # Only an operator's removal or a bounce may be undone here: a subscriber who
            # left through their own link comes back only through their own opt-in.
            undo = resubscribe and _subscriber(row).operator_may_resubscribe
            vouched = row.status == "pending" and consent is not None
            status = "active" if undo or vouched else row.status
            left: SubscriberChange = "own" if resubscribe and status != "active" else "kept"
            wanted = (email, name, topic_text, timezone, status)
            if (row.email, row.name, row.topics, row.timezone, row.status) == wanted:
                return "unchanged" if status == "active" else left
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id == row.id)
                .values(
                    email=email,
                    name=name,
                    topics=topic_text,
                    timezone=timezone,
                    status=status,
                    ended_by=row.ended_by if status == row.status else None,
                    consent_source=consent.source if vouched and consent else row.consent_source,
                    consent_note=consent.note if vouched and consent else row.consent_note,
                    # A change of status starts the count of hard failures afresh.
                    hard_failures=case(
                        (subscribers.c.status == status, subscribers.c.hard_failures), else_=0
                    ),
                    updated=now,
                )
            )
            return "updated" if status == "active" else left

    def add_many(self, emails: Iterable[str], now: datetime) -> int:
        """Add many already-checked addresses in one transaction; known ones are left alone."""
        added = 0
        # RETURNING counts the rows really inserted: an executemany's rowcount is not
        # reliable on every driver.
        stmt = (
            self.db.insert(subscribers)
            .on_conflict_do_nothing(index_elements=[subscribers.c.email_key])
            .returning(subscribers.c.id)
        )
        rows = (
            {"email": e, "email_key": e.lower(), "created": now, "updated": now} for e in emails
        )
        with self.db.write() as conn:
            while batch := list(islice(rows, BATCH)):
                added += len(conn.execute(stmt, batch).all())
        return added

    def by_id(self, subscriber_id: int) -> Subscriber | None:
        """Return the subscriber with this id, or None."""
        with self.db.read() as conn:
            row = conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).first()
        return _subscriber(row) if row else None

    def by_email(self, email: str) -> Subscriber | None:
        """Return the subscriber with this address (any case), or None."""
        query = select(subscribers).where(subscribers.c.email_key == email.lower())
        with self.db.read() as conn:
            row = conn.execute(query).first()
        return _subscriber(row) if row else None

    def set_status(
        self,
        subscriber_id: int,
        status: SubscriberStatus,
        now: datetime,
        ended_by: EndedBy | None = None,
    ) -> bool:
        """Set a subscriber's status, and who ended it; return True if it changed."""
        stmt = (
            subscribers.update()
            .where(subscribers.c.id == subscriber_id, subscribers.c.status != status)
            .values(
                status=status,
                updated=now,
                hard_failures=0,
                ended_by=None if status == "active" else ended_by,
            )
        )
        with self.db.write() as conn:
            return conn.execute(stmt).rowcount > 0

    def delete(self, subscriber_id: int) -> bool:
        """Forget a subscriber and their delivery history; return True if there was one."""
        stmt = subscribers.delete().where(subscribers.c.id == subscriber_id)
        with self.db.write() as conn:
            return conn.execute(stmt).rowcount > 0

    def iter(self, status: SubscriberStatus | None = None) -> Iterator[Subscriber]:
        """Yield subscribers in id order, a page at a time rather than loaded whole."""
        query = select(subscribers).order_by(subscribers.c.id).limit(PAGE)
        if status is not None:
            query = query.where(subscribers.c.status == status)
        after: int | None = None
        while True:
            page = query if after is None else query.where(subscribers.c.id > after)
            with self.db.read() as conn:
                rows = conn.execute(page).all()
            for row in rows:
                yield _subscriber(row)
            if len(rows) < PAGE:
                return
            after = int(rows[-1].id)

    def counts(self) -> dict[str, int]:
        """Return how many subscribers have each status."""
        query = select(subscribers.c.status, func.count()).group_by(subscribers.c.status)
        with self.db.read() as conn:
            return {str(status): int(n) for status, n in conn.execute(query)}

    def zones(self, default_zone: str) -> set[str]:
        """Return the time zones of the active subscribers (default_zone for those with none)."""
        zone = case(
            (subscribers.c.timezone == "", literal(default_zone)), else_=subscribers.c.timezone
        )
        query = select(zone).distinct().where(subscribers.c.status == "active")
        with self.db.read() as conn:
            return {str(z) for z in conn.scalars(query)}


def _subscriber(row: Row[Any]) -> Subscriber:
    return Subscriber(
        id=int(row.id),
        email=row.email,
        name=row.name,
        topics=tuple(t for t in row.topics.split(",") if t),
        timezone=row.timezone,
        status=row.status,
        created=row.created,
        updated=row.updated,
        ended_by=row.ended_by,
        consent=Consent(
            source=row.consent_source,
            note=row.consent_note,
            signup_at=row.signup_at,
            signup_ip=row.signup_ip,
            signup_agent=row.signup_agent,
            confirmed_at=row.confirmed_at,
            confirm_ip=row.confirm_ip,
            confirm_agent=row.confirm_agent,
        ),
        paused_until=row.paused_until,
    )
