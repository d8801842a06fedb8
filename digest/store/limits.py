"""Token buckets in the database, so that a rate holds over every sender together.

A bucket refills at `per_minute` tokens a minute up to `capacity`; a sender takes
several tokens in one transaction (a chunk) and spends them on its own, so a bucket is
written once per chunk, not once per message. The refill is counted by the database
server's clock on PostgreSQL, so that senders on machines whose clocks differ agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update

from digest.store.db import Database
from digest.store.schema import UtcDateTime, rate_buckets


@dataclass(frozen=True)
class Taken:
    """What one take gave: whole tokens, and when the next one is there if none was."""

    tokens: int
    wait: float


class RateBuckets:
    """The shared buckets, by key ("all", "domain:gmail.com")."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def take(self, key: str, per_minute: float, capacity: float, want: int) -> Taken:
        """Take up to want whole tokens from key's bucket, refilled at per_minute."""
        b = rate_buckets.c
        with self.db.write() as conn:
            if self.db.dialect == "postgresql":
                now = conn.execute(select(func.clock_timestamp().cast(UtcDateTime()))).scalar_one()
            else:
                now = datetime.now(UTC)
            # A new bucket starts full; two senders creating it at once make one.
            conn.execute(
                self.db.insert(rate_buckets)
                .values(key=key, tokens=capacity, updated=now)
                .on_conflict_do_nothing()
            )
            tokens, updated = conn.execute(
                select(b.tokens, b.updated).where(b.key == key).with_for_update()
            ).one()
            elapsed = max((now - updated).total_seconds(), 0.0)
            tokens = min(capacity, float(tokens) + elapsed * per_minute / 60)
            given = min(want, math.floor(tokens))
            tokens -= given
            conn.execute(
                update(rate_buckets).where(b.key == key).values(tokens=tokens, updated=now)
            )
        wait = 0.0 if given else (1 - tokens) * 60 / per_minute
        return Taken(given, wait)
