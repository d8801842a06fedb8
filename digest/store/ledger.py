"""The delivery ledger: one row per edition and subscriber, the only record of sending.

A row is `pending` until a sender claims it: the claim sets the row `sending`, names the
sender (`host:pid`), and gives it a token and a lease. The sender renews the lease while
it works and records outcomes in groups of a few messages per commit, only where its
token still holds, so a row is never recorded by two senders. A row whose lease ran out,
or whose sender is a process of this host that no longer exists, is pending again and
goes with the same Message-ID: only messages in flight (sent, not yet recorded) when a
sender died can go twice.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    text,
    update,
)

from digest.models import Delivery, DeliveryStatus, DueEdition
from digest.store.claims import Claim, ClaimedRow, Recorder
from digest.store.db import Database
from digest.store.notify import notify
from digest.store.schema import UtcDateTime, deliveries, editions, subscribers

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted while sending; sent again with the same Message-ID"

# Written as the open rows' partial index says it, so that SQLite sees it may use it.
OPEN_ROWS = text("deliveries.status IN ('pending', 'sending')")


def owner_name() -> str:
    """Return how this process names itself in the claims it holds."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _due(*terms: Any) -> Any:
    """Select an edition's due rows of active subscribers, in subscriber order.

    Built once, with parameters: a claim runs every few dozen messages, and building
    and keying a statement of this size costs as much as running it.
    """
    d, s = deliveries.c, subscribers.c
    return (
        select(
            d.subscriber_id,
            d.email,
            d.name,
            s.topics,
            d.deferrals,
            d.first_deferred_at,
            d.maybe_sent,
            d.status,
        )
        .join(subscribers, s.id == d.subscriber_id)
        .where(d.edition_id == bindparam("edition"), OPEN_ROWS, *terms, s.status == "active")
        .order_by(d.subscriber_id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True, of=deliveries)
    )


_NOW = bindparam("now", type_=UtcDateTime())
# Two walks of the open rows' index in subscriber order, not one over an OR.
_LAPSED = _due(deliveries.c.status == "sending", deliveries.c.lease_until < _NOW)
_PENDING = _due(
    deliveries.c.status == "pending",
    or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= _NOW),
)
_CLAIMED = and_(
    deliveries.c.edition_id == bindparam("edition"),
    deliveries.c.subscriber_id.in_(bindparam("ids", expanding=True)),
)
_TAKE = (
    update(deliveries)
    .where(_CLAIMED)
    .values(
        status="sending",
        claimed_by=bindparam("owner"),
        claim_token=bindparam("token"),
        lease_until=bindparam("until", type_=UtcDateTime()),
        updated=_NOW,
    )
)
_INTERRUPTED = (
    update(deliveries)
    .where(_CLAIMED)
    .values(last_error=INTERRUPTED, attempts=deliveries.c.attempts + 1)
)


@dataclass(frozen=True)
class Audience:
    """Who gets rows for an edition: the active subscribers, of some zones if given."""

    now: datetime
    zones: Collection[str] | None = None
    default_zone: str = "UTC"
    # Subscribers who joined after this get none (an edition that is old news to them).
    joined_before: datetime | None = None


def insert_rows(db: Database, conn: Connection, edition_id: str, audience: Audience) -> int:
    """Insert the pending rows of audience for edition_id on conn; return how many."""
    s = subscribers.c
    now = audience.now
    query = select(
        literal(edition_id),
        s.id,
        s.email,
        s.name,
        literal(now, UtcDateTime()),
        literal(now, UtcDateTime()),
    ).where(
        s.status == "active",
        # A reader's pause holds back the editions made while it lasts.
        or_(s.paused_until.is_(None), s.paused_until <= literal(now, UtcDateTime())),
    )
    if audience.zones is not None:
        zone = case((s.timezone == "", audience.default_zone), else_=s.timezone)
        query = query.where(zone.in_(sorted(audience.zones)))
    if audience.joined_before is not None:
        query = query.where(s.created <= audience.joined_before)
    insert = (
        db.insert(deliveries)
        .from_select(["edition_id", "subscriber_id", "email", "name", "created", "updated"], query)
        .on_conflict_do_nothing()
    )
    added = int(conn.execute(insert).rowcount)
    if added:
        notify(conn, edition_id)
    return added


class Ledger:
    """Who is to get which edition, who holds which row, and how each message ended."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # Adding rows

    def add(
        self,
        edition_id: str,
        now: datetime,
        zones: Collection[str] | None = None,
        default_zone: str = "UTC",
        joined_before: datetime | None = None,
    ) -> int:
        """Give active subscribers a pending row for edition_id; return how many were new.

        With zones, only subscribers whose time zone (default_zone when they have none) is
        one of them get a row: local delivery time adds each zone when its hour comes.
        With joined_before, subscribers who joined later get none (an old edition).
        """
        with self.db.write() as conn:
            return insert_rows(
                self.db, conn, edition_id, Audience(now, zones, default_zone, joined_before)
            )

    # Claims

    def due_editions(self, now: datetime) -> list[DueEdition]:
        """Return the editions with open rows, oldest first, and how many are due now."""
        d = deliveries.c
        due = or_(
            and_(d.status == "pending", or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now)),
            and_(d.status == "sending", d.lease_until < now),
        )
        waiting = case((d.status == "pending", d.next_attempt_at), else_=d.lease_until)
        query = (
            select(
                d.edition_id,
                editions.c.created,
                func.count(),
                func.sum(case((due, 1), else_=0)),
                func.min(waiting, type_=UtcDateTime()),
            )
            .join(editions, editions.c.id == d.edition_id)
            .where(OPEN_ROWS)
            .group_by(d.edition_id, editions.c.created)
            .order_by(editions.c.created, d.edition_id)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        result = []
        for edition_id, created, total, due_now, next_at in rows:
            result.append(
                DueEdition(str(edition_id), created, int(total), int(due_now or 0), next_at)
            )
        return result

    def claim(
        self,
        edition_id: str,
        now: datetime,
        lease: timedelta,
        limit: int,
        owner: str | None = None,
    ) -> Claim | None:
        """Claim up to limit due rows of active subscribers, in subscriber order.

        Rows whose claim lapsed come first (their sender died), then pending rows whose
        next attempt is due.
        """
        owner = owner or owner_name()
        token = secrets.token_hex(12)
        found: list[Any] = []
        with self.db.write() as conn:
            for query in (_LAPSED, _PENDING):
                if len(found) < limit:
                    wanted = {"edition": edition_id, "now": now, "limit": limit - len(found)}
                    found += conn.execute(query, wanted).all()
            if not found:
                return None
            taken = {"edition": edition_id, "token": token, "owner": owner, "now": now}
            ids = [row.subscriber_id for row in found]
            conn.execute(_TAKE, {**taken, "ids": ids, "until": now + lease})
            lapsed = [row.subscriber_id for row in found if row.status == "sending"]
            if lapsed:
                conn.execute(_INTERRUPTED, {"edition": edition_id, "ids": lapsed})
        rows = tuple(
            ClaimedRow(
                edition_id,
                int(row.subscriber_id),
                row.email,
                row.name,
                tuple(t for t in row.topics.split(",") if t),
                int(row.deferrals),
                row.first_deferred_at,
                bool(row.maybe_sent),
                row.status == "sending",
            )
            for row in found
        )
        return Claim(token, owner, rows)

    def renew(
        self, edition_id: str, tokens: Collection[str], now: datetime, lease: timedelta
    ) -> set[str]:
        """Extend the leases of edition_id's tokens; return the tokens still holding rows."""
        if not tokens:
            return set()
        d = deliveries.c
        held_by = and_(
            d.edition_id == edition_id,
            OPEN_ROWS,
            d.status == "sending",
            d.claim_token.in_(list(tokens)),
        )
        with self.db.write() as conn:
            conn.execute(update(deliveries).where(held_by).values(lease_until=now + lease))
            held = conn.execute(select(d.claim_token).where(held_by).distinct())
            return {str(token) for (token,) in held}

    def release(self, edition_id: str, token: str, now: datetime) -> int:
        """Put back to pending the rows of token not recorded yet (a stopped sender's)."""
        d = deliveries.c
        with self.db.write() as conn:
            count = int(
                conn.execute(
                    update(deliveries)
                    .where(
                        d.edition_id == edition_id,
                        OPEN_ROWS,
                        d.status == "sending",
                        d.claim_token == token,
                    )
                    .values(
                        status="pending",
                        claimed_by=None,
                        claim_token=None,
                        lease_until=None,
                        updated=now,
                    )
                ).rowcount
            )
            if count:
                notify(conn, edition_id)
            return count

    def release_dead(self, now: datetime, alive: Callable[[int], bool] = _process_alive) -> int:
        """Release at once the claims of processes of this host that no longer exist."""
        d = deliveries.c
        host = socket.gethostname()
        with self.db.read() as conn:
            owners = conn.execute(
                select(d.claimed_by).where(OPEN_ROWS, d.status == "sending").distinct()
            ).scalars()
            dead = []
            for owner in owners:
                owner_host, _, pid = str(owner).rpartition(":")
                if owner_host == host and pid.isdigit() and not alive(int(pid)):
                    dead.append(str(owner))
        if not dead:
            return 0
        with self.db.write() as conn:
            count = int(
                conn.execute(
                    update(deliveries)
                    .where(OPEN_ROWS, d.status == "sending", d.claimed_by.in_(dead))
                    .values(
                        status="pending",
                        claimed_by=None,
                        claim_token=None,
                        lease_until=None,
                        last_error=INTERRUPTED,
                        attempts=d.attempts + 1,
                        updated=now,
                    )
                ).rowcount
            )
        logger.warning(
            "%d messages were in flight when a sender on this host stopped (%s);"
            " they go again with the same Message-ID",
            count,
            ", ".join(sorted(dead)),
        )
        return count

    # Outcomes

    def recorder(self) -> Recorder:
        """Return a connection of one sending thread's own, for its outcomes."""
        return Recorder(self.db)

    def close_edition(self, edition_id: str, now: datetime) -> int:
        """Skip the open rows of subscribers who left before their turn, and clear the hard
        failures of everyone who was sent the edition; return how many were skipped."""
        s, d = subscribers.c, deliveries.c
        with self.db.write() as conn:
            conn.execute(
                update(subscribers)
                .where(
                    s.hard_failures > 0,
                    s.id.in_(
                        select(d.subscriber_id).where(
                            d.edition_id == edition_id, d.status == "sent"
                        )
                    ),
                )
                .values(hard_failures=0)
            )
            return int(
                conn.execute(
                    update(deliveries)
                    .where(
                        d.edition_id == edition_id,
                        d.status == "pending",
                        d.subscriber_id.in_(select(s.id).where(s.status != "active")),
                    )
                    .values(
                        status="skipped", updated=now, last_error="not active when its turn came"
                    )
                ).rowcount
            )

    # Reading

    def open_topics(self, edition_id: str) -> set[tuple[str, ...]]:
        """Return the distinct topic sets of the active subscribers with open rows."""
        d, s = deliveries.c, subscribers.c
        with self.db.read() as conn:
            found = conn.execute(
                select(s.topics)
                .join(deliveries, d.subscriber_id == s.id)
                .where(d.edition_id == edition_id, OPEN_ROWS, s.status == "active")
                .distinct()
            ).scalars()
            return {tuple(t for t in str(topics).split(",") if t) for topics in found}

    def counts(self, edition_id: str) -> dict[str, int]:
        """Return how many rows of edition_id have each status."""
        d = deliveries.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(d.status, func.count()).where(d.edition_id == edition_id).group_by(d.status)
            )
            return {str(status): int(n) for status, n in rows}

    def open_counts(self) -> dict[str, int]:
        """Return, per edition, how many rows are still pending or sending."""
        d = deliveries.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(d.edition_id, func.count())
                .where(OPEN_ROWS)
                .group_by(d.edition_id)
                .order_by(d.edition_id)
            )
            return {str(edition_id): int(n) for edition_id, n in rows}

    def rows(
        self, edition_id: str, statuses: tuple[DeliveryStatus, ...] | None = None
    ) -> Iterator[Delivery]:
        """Yield the rows of edition_id in subscriber order, optionally only some statuses.

        Read a page at a time, so that a long list is never held whole nor a read kept
        open while the caller works.
        """
        d = deliveries.c
        after = -1
        while True:
            query = (
                select(deliveries)
                .where(d.edition_id == edition_id, d.subscriber_id > after)
                .order_by(d.subscriber_id)
                .limit(1000)
            )
            if statuses:
                query = query.where(d.status.in_(statuses))
            with self.db.read() as conn:
                page = conn.execute(query).all()
            for row in page:
                yield Delivery(
                    edition_id=row.edition_id,
                    subscriber_id=int(row.subscriber_id),
                    email=row.email,
                    status=row.status,
                    attempts=int(row.attempts),
                    last_error=row.last_error,
                    message_id=row.message_id,
                    updated=row.updated,
                    next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
                    maybe_sent=bool(row.maybe_sent),
                    claimed_by=row.claimed_by if row.status == "sending" else None,
                )
            if len(page) < 1000:
                return
            after = int(page[-1].subscriber_id)
