"""Retention: what the store forgets after DIGEST_RETENTION, and how big it is.

Forgotten: the fingerprints of source files no run has found for the period, and
articles that appeared and were first seen longer ago than that and were never in an
edition. Never an article an edition holds in any version (its items, and with them any
ledger row waiting to send it, point at it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, false, func, select

from digest.store.db import Database
from digest.store.schema import articles, edition_items, editions, source_files, store_state

logger = logging.getLogger(__name__)

# How often a run prunes: the period is days long, so once a day is plenty.
PRUNE_EVERY = timedelta(days=1)
_PRUNED = "pruned"


@dataclass(frozen=True)
class Pruned:
    """What one pruning removed, and when."""

    at: datetime
    articles: int = 0
    files: int = 0


@dataclass(frozen=True)
class StoreSize:
    """How many rows the main tables hold, and the last pruning."""

    articles: int
    waiting: int
    files: int
    editions: int
    last_pruned: Pruned | None


class Retention:
    """Pruning by DIGEST_RETENTION and the row counts `digest status` shows."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def prune(self, now: datetime, period: timedelta, max_age: timedelta) -> Pruned:
        """Forget what is older than period (never sooner than max_age for an article)."""
        cutoff = now - max(period, max_age)
        in_edition = exists().where(edition_items.c.article_id == articles.c.id)
        old_articles = delete(articles).where(
            articles.c.carried == false(),
            articles.c.appeared < cutoff,
            articles.c.first_seen < cutoff,
            ~in_edition,
        )
        gone = delete(source_files).where(source_files.c.gone_since < now - period)
        with self.db.write() as conn:
            removed = Pruned(now, conn.execute(old_articles).rowcount, conn.execute(gone).rowcount)
            detail = json.dumps({"articles": removed.articles, "files": removed.files})
            stmt = self.db.insert(store_state).values(name=_PRUNED, at=now, detail=detail)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[store_state.c.name], set_={"at": now, "detail": detail}
                )
            )
        if removed.articles or removed.files:
            logger.info(
                "pruned %d articles and %d source files older than %s",
                removed.articles,
                removed.files,
                cutoff.date(),
            )
        return removed

    def prune_if_due(self, now: datetime, period: timedelta, max_age: timedelta) -> Pruned | None:
        """Prune when the last pruning is PRUNE_EVERY old or there was none."""
        last = self.last_pruned()
        if last is not None and now - last.at < PRUNE_EVERY:
            return None
        return self.prune(now, period, max_age)

    def last_pruned(self) -> Pruned | None:
        """Return the last pruning, if the store was ever pruned."""
        query = select(store_state.c.at, store_state.c.detail).where(store_state.c.name == _PRUNED)
        with self.db.read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        counts = json.loads(row.detail or "{}")
        return Pruned(row.at, int(counts.get("articles", 0)), int(counts.get("files", 0)))

    def size(self) -> StoreSize:
        """Return the row counts of the main tables and the last pruning."""
        count = func.count()
        waiting = select(count).select_from(articles).where(articles.c.carried == false())
        with self.db.read() as conn:
            found = [
                int(conn.scalar(select(count).select_from(table)) or 0)
                for table in (articles, source_files, editions)
            ]
            waiting_now = int(conn.scalar(waiting) or 0)
        return StoreSize(found[0], waiting_now, found[1], found[2], self.last_pruned())
