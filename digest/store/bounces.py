"""Delivery reports: each recorded once against its ledger row, and what it did.

A batch of reports is one transaction: the reports' rows, the ledger rows they mark and
the subscribers they end are committed together or not at all, so a reader that deletes
a report only after the commit never loses one nor records one twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, select, update

from digest.store.db import Database
from digest.store.schema import deliveries, delivery_reports, subscribers


@dataclass(frozen=True)
class ReportRow:
    """One report to record, with the ledger row its reader could name, if any."""

    source: str
    reference: str
    kind: str
    address: str | None
    status: str
    diagnostic: str
    # From the return-path token: the row itself.
    edition_id: str | None = None
    subscriber_id: int | None = None
    # From the quoted Message-ID: the edition and the id to find the row by.
    message_id: str | None = None


@dataclass(frozen=True)
class Recorded:
    """What recording one report did."""

    id: int | None
    new: bool
    edition_id: str | None
    subscriber_id: int | None
    action: str
    score: int = 0


@dataclass(frozen=True)
class ReportView:
    """A recorded report, as `digest bounces` lists it."""

    received: datetime
    source: str
    kind: str
    address: str | None
    status: str
    diagnostic: str
    edition_id: str | None
    action: str


class Bounces:
    """The delivery reports read after the send."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self, rows: Sequence[ReportRow], now: datetime, threshold: int, window: timedelta
    ) -> list[Recorded]:
        """Record every row in one transaction; a (source, reference) seen before is left."""
        done: list[Recorded] = []
        with self.db.write() as conn:
            for row in rows:
                done.append(self._record(conn, row, now, threshold, window))
        return done

    def _record(
        self, conn: Connection, row: ReportRow, now: datetime, threshold: int, window: timedelta
    ) -> Recorded:
        r = delivery_reports.c
        seen = conn.execute(
            select(r.id, r.edition_id, r.subscriber_id, r.action).where(
                r.source == row.source, r.reference == row.reference
            )
        ).first()
        if seen is not None:
            sid = None if seen.subscriber_id is None else int(seen.subscriber_id)
            return Recorded(int(seen.id), False, seen.edition_id, sid, str(seen.action))
        edition_id, subscriber_id = _find_row(conn, row)
        inserted = conn.execute(
            self.db.insert(delivery_reports)
            .values(
                source=row.source,
                reference=row.reference,
                received=now,
                kind=row.kind,
                address=row.address,
                status=row.status,
                diagnostic=row.diagnostic,
                edition_id=edition_id,
                subscriber_id=subscriber_id,
            )
            .on_conflict_do_nothing(index_elements=[r.source, r.reference])
            .returning(r.id)
        ).scalar()
        if inserted is None:  # another reader recorded it between our look and our insert
            return Recorded(None, False, edition_id, subscriber_id, "already recorded")
        score = 0
        if edition_id is None or subscriber_id is None:
            action = "unmatched"
        else:
            action, score = _act(conn, row, edition_id, subscriber_id, now, threshold, window)
        conn.execute(update(delivery_reports).where(r.id == inserted).values(action=action))
        return Recorded(int(inserted), True, edition_id, subscriber_id, action, score)

    def recent(self, limit: int = 50) -> list[ReportView]:
        """Return the latest reports, newest first."""
        r = delivery_reports.c
        query = select(delivery_reports).order_by(r.received.desc(), r.id.desc()).limit(limit)
        with self.db.read() as conn:
            found = conn.execute(query).all()
        return [
            ReportView(
                x.received,
                x.source,
                x.kind,
                x.address,
                x.status,
                x.diagnostic,
                x.edition_id,
                x.action,
            )
            for x in found
        ]

    def counts(self, edition_id: str | None = None) -> dict[str, int]:
        """Return how many reports of each kind there are, for one edition or all."""
        r = delivery_reports.c
        query = select(r.kind, func.count()).group_by(r.kind)
        if edition_id is not None:
            query = query.where(r.edition_id == edition_id)
        with self.db.read() as conn:
            return {str(kind): int(n) for kind, n in conn.execute(query)}


def _find_row(conn: Connection, row: ReportRow) -> tuple[str | None, int | None]:
    """Return the ledger row a report names: by its token, else by its Message-ID."""
    d = deliveries.c
    if row.edition_id is not None and row.subscriber_id is not None:
        found = conn.execute(
            select(d.edition_id, d.subscriber_id).where(
                d.edition_id == row.edition_id, d.subscriber_id == row.subscriber_id
            )
        ).first()
        if found is not None:
            return str(found.edition_id), int(found.subscriber_id)
    if row.edition_id is not None and row.message_id:
        # The ledger keeps the Message-ID as sent, in angle brackets.
        ids = [f"<{row.message_id}>", row.message_id]
        query = select(d.edition_id, d.subscriber_id).where(
            d.edition_id == row.edition_id, d.message_id.in_(ids)
        )
        found = conn.execute(query.limit(1)).first()
        if found is not None:
            return str(found.edition_id), int(found.subscriber_id)
    return None, None


def _act(
    conn: Connection,
    row: ReportRow,
    edition_id: str,
    subscriber_id: int,
    now: datetime,
    threshold: int,
    window: timedelta,
) -> tuple[str, int]:
    """Score the address for one new report; return the action taken and the score."""
    s, d, r = subscribers.c, deliveries.c, delivery_reports.c
    if row.kind == "policy":
        return "sender problem: the receiver refused the sender, not the address", 0
    if row.kind == "complaint":
        # The reader's own act, as if they had used the unsubscribe link.
        ended = conn.execute(
            update(subscribers)
            .where(s.id == subscriber_id, s.status == "active")
            .values(status="unsubscribed", ended_by="subscriber", hard_failures=0, updated=now)
        ).rowcount
        return ("unsubscribed" if ended else "none: not active"), 0
    score = 1
    if row.kind == "soft":
        # One per edition within the window: several reports on one message count once,
        # and a report older than the window no longer counts (the score decays).
        score = int(
            conn.execute(
                select(func.count(func.distinct(r.edition_id))).where(
                    r.subscriber_id == subscriber_id,
                    r.kind == "soft",
                    r.received > now - window,
                )
            ).scalar_one()
        )
        if score < threshold:
            return f"scored {score}/{threshold}", score
    conn.execute(
        update(deliveries)
        .where(and_(d.edition_id == edition_id, d.subscriber_id == subscriber_id))
        .values(status="bounced", last_error=row.diagnostic or row.status, updated=now)
    )
    ended = conn.execute(
        update(subscribers)
        .where(s.id == subscriber_id, s.status == "active")
        .values(status="bounced", ended_by="bounce", updated=now)
    ).rowcount
    if not ended:
        return "none: not active", score
    return ("bounced" if row.kind == "hard" else f"bounced (score {score}/{threshold})"), score
