"""A sender's claim on ledger rows, and recording how each of its messages ended.

Each outcome is recorded in a commit of its own, where the claim's token still holds the
row, before the next message goes: a sender killed at any moment leaves at most its
message in flight unrecorded.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, update

from digest.models import Outcome
from digest.store.db import Database, failures_of_the_disk
from digest.store.schema import UtcDateTime, deliveries, subscribers, to_micros

logger = logging.getLogger(__name__)

# Hard failures in a row after which an address is marked bounced and left out.
BOUNCE_AFTER = 3


@dataclass(frozen=True)
class RetryPolicy:
    """How long a temporarily failing row waits before its next try, and for how long."""

    delay: timedelta = timedelta(minutes=5)
    limit: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(days=2)

    def wait(self, deferrals: int, rng: random.Random) -> timedelta:
        """Return the wait after the deferrals-th failure in a row: doubling, jittered."""
        base: timedelta = min(self.limit, self.delay * 2 ** min(deferrals - 1, 30))
        # Jitter downwards only, so that the limit holds and rows deferred together spread.
        return base * rng.uniform(0.75, 1.0)


@dataclass(frozen=True)
class ClaimedRow:
    """One row a sender holds: whom to send to, and what the row says of earlier tries."""

    edition_id: str
    subscriber_id: int
    email: str
    name: str
    topics: tuple[str, ...]
    deferrals: int
    first_deferred_at: datetime | None
    maybe_sent: bool
    # The row was `sending` under a claim that lapsed: perhaps sent already.
    interrupted: bool


@dataclass(frozen=True)
class Claim:
    """Rows claimed together under one token."""

    token: str
    owner: str
    rows: tuple[ClaimedRow, ...]


class Recorder:
    """One sending thread's connection: each outcome in a commit of its own.

    A plain success is nearly every outcome, and recording it is the one statement run
    per message. On SQLite it goes to the driver as SQLAlchemy compiled it, once: the
    execution layer around a statement costs three times the statement and its commit,
    which would make the ledger, not the network, the limit of a send.
    """

    def __init__(self, db: Database) -> None:
        d = deliveries.c
        mine = and_(
            d.edition_id == bindparam("e"),
            d.subscriber_id == bindparam("s"),
            d.claim_token == bindparam("token"),
            d.status == "sending",
        )
        # A plain success, the statement run once per message: built once.
        self._sent = (
            update(deliveries)
            .where(mine)
            .values(
                status="sent",
                attempts=d.attempts + bindparam("tries"),
                message_id=bindparam("msg_id"),
                last_error=bindparam("error"),
                updated=bindparam("when", type_=UtcDateTime()),
                next_attempt_at=None,
                claimed_by=None,
                claim_token=None,
                lease_until=None,
            )
        )
        self._mine = mine
        self._db = db
        self._conn = db.connect()
        self._conn.execution_options(digest_write=True)
        self._fast: _SqliteSent | None = None
        if db.dialect == "sqlite":
            self._fast = _SqliteSent(self._conn, self._sent)

    def close(self) -> None:
        """Give the connection back."""
        self._conn.close()

    def _record_sent(self, token: str, done: Outcome) -> bool:
        conn = self._conn
        with conn.begin():
            result = conn.execute(
                self._sent,
                _sent_values(token, done),
            )
        return bool(result.rowcount)

    def record(
        self, token: str, row: ClaimedRow, done: Outcome, policy: RetryPolicy, rng: random.Random
    ) -> bool:
        """Record how row's message ended, in its own commit; False if the row is no
        longer token's. A full or failing disk is a StoreError naming the store."""
        with failures_of_the_disk(self._db):
            return self._record(token, row, done, policy, rng)

    def _record(
        self, token: str, row: ClaimedRow, done: Outcome, policy: RetryPolicy, rng: random.Random
    ) -> bool:
        if done.kind == "sent" and not row.maybe_sent:
            if self._fast is not None:
                return self._fast.record(token, done)
            return self._record_sent(token, done)
        conn = self._conn
        values = self._values(row, done, policy, rng)
        with conn.begin():
            result = conn.execute(
                update(deliveries)
                .where(self._mine)
                .values(**values, attempts=deliveries.c.attempts + done.tries),
                {"e": done.edition_id, "s": done.subscriber_id, "token": token},
            )
            if not result.rowcount:
                return False
            if done.kind == "failed" and done.hard:
                self._count_hard_failure(conn, done)
        return True

    def _values(
        self, row: ClaimedRow, done: Outcome, policy: RetryPolicy, rng: random.Random
    ) -> dict[str, Any]:
        final: dict[str, Any] = {
            "updated": done.when,
            "claimed_by": None,
            "claim_token": None,
            "lease_until": None,
            "message_id": done.message_id,
            "last_error": done.error,
        }
        if done.kind in ("sent", "failed", "skipped"):
            return {**final, "status": done.kind, "next_attempt_at": None}
        if done.kind == "unsure":
            if row.maybe_sent:
                # Tried once more after a first silence: no third copy.
                note = f"{done.error}; no final reply twice: the server may have taken it"
                return {**final, "status": "sent", "last_error": note}
            return {
                **final,
                "status": "pending",
                "maybe_sent": True,
                "next_attempt_at": done.when + policy.delay,
            }
        first = row.first_deferred_at or done.when
        if done.when - first >= policy.give_up_after:
            note = f"gave up after {_short(done.when - first)} of temporary failures: {done.error}"
            return {**final, "status": "failed", "last_error": note, "next_attempt_at": None}
        deferrals = row.deferrals + 1
        return {
            **final,
            "status": "pending",
            "deferrals": deferrals,
            "first_deferred_at": first,
            "next_attempt_at": done.when + policy.wait(deferrals, rng),
        }

    def _count_hard_failure(self, conn: Connection, done: Outcome) -> None:
        """Count a hard failure against the subscriber, bouncing them at BOUNCE_AFTER.

        A success clears the count in `close_edition`, once for all, rather than with one
        more statement per message.
        """
        s, d = subscribers.c, deliveries.c
        failures = conn.execute(
            update(subscribers)
            .where(s.id == done.subscriber_id)
            .values(hard_failures=s.hard_failures + 1)
            .returning(s.hard_failures)
        ).scalar()
        if done.bounce_now or (failures is not None and failures >= BOUNCE_AFTER):
            conn.execute(
                update(subscribers)
                .where(s.id == done.subscriber_id, s.status == "active")
                .values(status="bounced", ended_by="bounce", updated=done.when)
            )
            conn.execute(
                update(deliveries)
                .where(d.edition_id == done.edition_id, d.subscriber_id == done.subscriber_id)
                .values(status="bounced")
            )


def _sent_values(token: str, done: Outcome) -> dict[str, Any]:
    """Return the parameters of the plain-success statement for done."""
    return {
        "e": done.edition_id,
        "s": done.subscriber_id,
        "token": token,
        "tries": done.tries,
        "msg_id": done.message_id,
        "error": done.error,
        "when": done.when,
    }


class _SqliteSent:
    """The plain-success UPDATE, compiled once, run on the driver in its own commit."""

    def __init__(self, conn: Connection, statement: Any) -> None:
        compiled = statement.compile(dialect=conn.dialect)
        self._sql = str(compiled)
        self._order = tuple(compiled.positiontup or ())
        # The literal values the statement carries (status, the NULLs).
        self._fixed = dict(compiled.params)
        self._raw: Any = conn.connection.driver_connection

    def record(self, token: str, done: Outcome) -> bool:
        """Record done as sent where token still holds the row; False if it does not."""
        values = _sent_values(token, done)
        values["when"] = to_micros(done.when)
        args = [values.get(name, self._fixed.get(name)) for name in self._order]
        self._raw.execute("BEGIN IMMEDIATE")
        try:
            changed = self._raw.execute(self._sql, args).rowcount
        except BaseException:
            self._raw.execute("ROLLBACK")
            raise
        self._raw.execute("COMMIT")
        return bool(changed)


def _short(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24}d{hours % 24:02d}h" if hours >= 24 else f"{hours}h"
