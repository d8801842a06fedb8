"""The whole job once: ingest, select, render, deliver; idempotent per edition."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from digest import sources
from digest.config import Settings
from digest.mail import build_message
from digest.models import Edition, IngestReport, RenderedEdition, Skipped
from digest.outbox import write_edition
from digest.render import render_edition
from digest.select import select_edition
from digest.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """What a run did: what it read, and the edition it made or why it made none."""

    ingest: IngestReport
    edition: Edition | None = None
    rendered: RenderedEdition | None = None
    folder: Path | None = None
    reason: str = ""


def ingest(settings: Settings, store: Store, now: datetime) -> IngestReport:
    """Read every source into the store; broken sources are reported, not fatal."""
    counts = {"new": 0, "updated": 0, "unchanged": 0}
    skipped: list[Skipped] = []
    for result in sources.read_sources(settings.sources):
        skipped.extend(result.skipped)
        for article in result.articles:
            counts[store.upsert_article(article, now)] += 1
    report = IngestReport(skipped=tuple(skipped), **counts)
    logger.info(
        "ingested %d articles: %d new, %d updated, %d unchanged, %d skipped",
        report.total,
        report.new,
        report.updated,
        report.unchanged,
        len(skipped),
    )
    return report


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def run_edition(settings: Settings, now: datetime | None = None) -> RunResult:
    """Ingest, select, render, write the edition to the outbox and record it."""
    now = _now(now)
    with Store(settings.db) as store:
        report = ingest(settings, store, now)
        edition_id = store.next_edition_id(now.astimezone(settings.zone).date())
        edition = select_edition(settings, store.eligible_articles(), edition_id, now)
        if edition is None:
            return RunResult(report, reason="nothing new since the last edition")
        rendered = render_edition(settings, edition)
        sample = build_message(rendered, settings.sender, settings.sender, now)
        # Written before it is recorded: a crash in between rewrites the same folder
        # on the next run instead of losing the edition.
        folder = write_edition(rendered, settings.outbox / edition.id, sample)
        store.record_edition(edition, rendered.subject)
    logger.info("edition %s: %d items", edition.id, len(edition.items))
    return RunResult(report, edition, rendered, folder)


def preview(settings: Settings, out: Path | None = None, now: datetime | None = None) -> RunResult:
    """Render the next edition to out (default: the outbox's preview folder), recording nothing."""
    now = _now(now)
    with Store(settings.db) as store:
        report = ingest(settings, store, now)
        edition = select_edition(settings, store.eligible_articles(), "preview", now)
    if edition is None:
        return RunResult(report, reason="nothing new since the last edition")
    rendered = render_edition(settings, edition)
    sample = build_message(rendered, settings.sender, settings.sender, now)
    folder = write_edition(rendered, out or settings.outbox / "preview", sample)
    return RunResult(report, edition, rendered, folder)


def ingest_only(settings: Settings, now: datetime | None = None) -> IngestReport:
    """Read the sources into the store and report what was found."""
    with Store(settings.db) as store:
        return ingest(settings, store, _now(now))
