"""A sender's claim on ledger rows, and recording how each of its messages ended.

Outcomes are recorded in groups, one commit for several messages, and only where the
claim's token still holds the row. A message is in flight from its first SMTP command
until its outcome is committed: a sender killed at any moment leaves at most those
unrecorded, and their rows, still `sending`, go again with the same Message-ID once
their lease runs out.
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


@dataclass(frozen=True)
class Done:
    """How one claimed row's message ended, waiting to be recorded."""

    token: str
    row: ClaimedRow
    outcome: Outcome


class Recorder:
    """One sending thread's connection, for recording outcomes in groups.

    A plain success is nearly every outcome: those of a group go in one executemany per
    claim, so that each claim's count of rows still held tells whether it was taken over.
    On SQLite the statement goes to the driver as SQLAlchemy compiled it, once: the
    execution layer around a statement costs more than the statement itself, which
    would make the ledger, not the network, the limit of a send.
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

    def record(self, group: list[Done], policy: RetryPolicy, rng: random.Random) -> dict[str, int]:
        """Record a group of outcomes in one commit; return, for each claim token whose
        rows were not all still its own, how many it lost. A full or failing disk is a
        StoreError naming the store."""
        with failures_of_the_disk(self._db):
            plain: dict[str, list[Outcome]] = {}
            other: list[Done] = []
            for done in group:
                if done.outcome.kind == "sent" and not done.row.maybe_sent:
                    plain.setdefault(done.token, []).append(done.outcome)
                else:
                    other.append(done)
            if self._fast is not None and not other:
                return self._fast.record(plain)
            with self._conn.begin():
                lost = {
                    token: len(outcomes) - self._record_sent(token, outcomes)
                    for token, outcomes in plain.items()
                }
                for done in other:
                    if not self._record_other(done, policy, rng):
                        lost[done.token] = lost.get(done.token, 0) + 1
            return {token: count for token, count in lost.items() if count}

    def _record_sent(self, token: str, outcomes: list[Outcome]) -> int:
        result = self._conn.execute(self._sent, [_sent_values(token, done) for done in outcomes])
        return int(result.rowcount)

    def _record_other(self, item: Done, policy: RetryPolicy, rng: random.Random) -> bool:
        row, done = item.row, item.outcome
        conn = self._conn
        values = self._values(row, done, policy, rng)
        result = conn.execute(
            update(deliveries)
            .where(self._mine)
            .values(**values, attempts=deliveries.c.attempts + done.tries),
            {"e": done.edition_id, "s": done.subscriber_id, "token": item.token},
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
    """The plain-success UPDATE, compiled once, run on the driver in a commit per group."""

    def __init__(self, conn: Connection, statement: Any) -> None:
        compiled = statement.compile(dialect=conn.dialect)
        self._sql = str(compiled)
        self._order = tuple(compiled.positiontup or ())
        # The literal values the statement carries (status, the NULLs).
        self._fixed = dict(compiled.params)
        self._raw: Any = conn.connection.driver_connection

    def _args(self, token: str, done: Outcome) -> list[Any]:
        values = _sent_values(token, done)
        values["when"] = to_micros(done.when)
        return [values.get(name, self._fixed.get(name)) for name in self._order]

    def record(self, plain: dict[str, list[Outcome]]) -> dict[str, int]:
        """Record each token's outcomes as sent where it still holds the rows; return
        how many rows each token had lost."""
        lost: dict[str, int] = {}
        self._raw.execute("BEGIN IMMEDIATE")
        try:
            for token, outcomes in plain.items():
                args = [self._args(token, done) for done in outcomes]
                changed = self._raw.executemany(self._sql, args).rowcount
                if changed < len(outcomes):
                    lost[token] = len(outcomes) - changed
        except BaseException:
            self._raw.execute("ROLLBACK")
            raise
        self._raw.execute("COMMIT")
        return lost


def _short(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24}d{hours % 24:02d}h" if hours >= 24 else f"{hours}h"
