"""The whole job once: ingest, select, render, deliver; idempotent per edition."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from digest import sources
from digest.clock import Clock, utc_now
from digest.config import Settings
from digest.errors import DeliveryError
from digest.highlights import sentence_keys
from digest.locks import LockHeld, run_lock
from digest.mail import build_message
from digest.models import (
    Article,
    Edition,
    IngestReport,
    Progress,
    RenderedEdition,
    SendReport,
    Skipped,
)
from digest.note import NoteFile, archive_note, pending_note, unsafe_links
from digest.outbox import write_edition
from digest.render import generic_copy, render_edition, with_general_unsubscribe
from digest.select import Selection, assess, select, shown_texts
from digest.send import add_rows, deliver, drain, require_secret
from digest.sources.connection import Pool
from digest.sources.fetch import USER_AGENT, FetchOptions, redact
from digest.sources.fulltext import FullText, FullTextOptions
from digest.sources.health import HealthTracker, failing_for
from digest.store import Store
from digest.store.db import describe
from digest.store.ledger import Audience

logger = logging.getLogger(__name__)

# Results saved per transaction: big enough to be quick, small enough to lose little.
SAVE_BATCH = 500
# A send to a long list can hold the store for a while; a second run waits this long.
RUN_LOCK_TIMEOUT = 3600.0


@dataclass(frozen=True)
class RunResult:
    """What a run did: what it read, and the edition it made or why it made none."""

    ingest: IngestReport
    edition: Edition | None = None
    rendered: RenderedEdition | None = None
    folder: Path | None = None
    reason: str = ""
    # The id of an edition made earlier for the same due date, when that is why none was made.
    existing: str | None = None
    # With DIGEST_DELIVERY=smtp: what the send of each edition with due rows did.
    deliveries: tuple[SendReport, ...] = ()
    # The editor's note the edition carried, and where a DIGEST_NOTE_FILE was moved to.
    note: NoteFile | None = None
    note_moved_to: Path | None = None

    @property
    def delivery(self) -> SendReport | None:
        """Return what the send of this run's edition (made now or before) did."""
        wanted = self.edition.id if self.edition is not None else self.existing
        return next((r for r in self.deliveries if r.edition_id == wanted), None)


def ingest(settings: Settings, store: Store, now: datetime) -> IngestReport:
    """Read every source into the store; broken sources are reported, not fatal."""
    counts = {"new": 0, "updated": 0, "unchanged": 0}
    skipped: list[Skipped] = []
    junk: list[Skipped] = []
    memory = sources.SourceMemory(
        files=store.articles.file_records(), health=store.articles.source_health()
    )
    tracker = HealthTracker(settings.sources, memory.health, now)
    pending: list[sources.SourceResult] = []
    waiting = 0  # articles in pending

    seen: set[str] = set()

    def save() -> None:
        nonlocal waiting
        # A file's fingerprint is saved with its articles, in one transaction: a crash
        # in between cannot mark a file as read whose articles were never stored.
        articles = [a for r in pending for a in r.articles]
        files = [r.record for r in pending if r.record is not None]
        # Judged once per stored version, the verdict stored with it: a later run reads
        # it. Junk is stored all the same: an edit that fills in a placeholder counts.
        saved = store.articles.save_judged(articles, files, now, assess)
        for article, (change, reason) in zip(articles, saved, strict=True):
            counts[change] += 1
            if reason:
                junk.append(Skipped(article.source, f"'{article.title[:60]}': {reason}"))
                if change != "unchanged":
                    logger.info("%s: '%s' left out: %s", article.source, article.title, reason)
        seen.update(r.where for r in pending if r.where in memory.files or r.record)
        pending.clear()
        waiting = 0

    pages = Pool()
    full_text = (
        FullText(
            FullTextOptions(settings.full_text_min_words, settings.full_text_hosts),
            fetch_options(settings),
            pages,
        )
        if settings.full_text == "auto"
        else None
    )
    for result in sources.read_sources(
        settings.sources,
        memory,
        fetch_options(settings),
        now,
        settings.fetch_interval,
        max_file_bytes=settings.max_article_bytes,
    ):
        if full_text is not None and sources.is_url(result.spec):
            result.articles = [
                with_full_text(full_text, store, a, result.spec) for a in result.articles
            ]
        tracker.add(result)
        skipped.extend(result.skipped)
        counts["unchanged"] += result.unchanged
        pending.append(result)
        waiting += len(result.articles)
        if len(pending) >= SAVE_BATCH or waiting >= SAVE_BATCH:
            save()
    save()
    pages.close()
    store.articles.note_files(seen, memory.files.keys(), now)
    # Only a store older than stored verdicts has articles waiting to be judged.
    store.articles.judge_waiting(assess)
    store.retention.prune_if_due(now, settings.retention, settings.max_age)
    health = tracker.records()
    store.articles.record_health(health)
    failing = failing_for(health, now, settings.source_failing_days)
    for source in failing:
        logger.warning(
            "%s has failed since %s: %s",
            redact(source.key),
            source.failing_since.date() if source.failing_since else "?",
            source.last_error,
        )
    # A source not due yet (DIGEST_FETCH_INTERVAL) has no record this run, so it counts
    # as not failed.
    all_failed = bool(health) and len(health) == len(tracker.tallies)
    all_failed = all_failed and all(h.failing_since is not None for h in health)
    report = IngestReport(
        skipped=tuple(skipped), failing=failing, junk=tuple(junk), all_failed=all_failed, **counts
    )
    logger.info(
        "ingested %d articles: %d new, %d updated, %d unchanged, %d skipped",
        report.total,
        report.new,
        report.updated,
        report.unchanged,
        len(skipped),
    )
    return report


def with_full_text(full_text: FullText, store: Store, article: Article, feed_url: str) -> Article:
    """Return a thin article with its page's text: the stored one, or fetched once."""
    if not full_text.wants(article):
        return article
    known = store.articles.get(article.id)
    if known is not None and known.url == article.url and (known.full_text or known.full_text_note):
        return replace(article, full_text=known.full_text, full_text_note=known.full_text_note)
    return full_text.enrich(article, feed_url)


def fetch_options(settings: Settings) -> FetchOptions:
    """Return how feeds are fetched, from the settings."""
    return FetchOptions(
        timeout=settings.fetch_timeout,
        max_bytes=settings.fetch_max_bytes,
        user_agent=settings.user_agent or USER_AGENT,
        allow_private=settings.fetch_allow_private,
        concurrency=settings.fetch_concurrency,
        per_host=settings.fetch_per_host,
    )


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


@contextmanager
def one_run_at_a_time(settings: Settings, timeout: float = RUN_LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the store's run lock, so that two processes never make the same edition."""
    lock = run_lock(settings.db)
    if not lock.acquire(0):
        holder = lock.holder() or {}
        logger.info("waiting for the run of process %s to finish", holder.get("pid", "?"))
        if not lock.acquire(timeout):
            raise LockHeld(
                f"{describe(settings.db)}: another run (process {holder.get('pid', '?')})"
                f" has held the store for over {timeout:.0f} s",
                hint="wait for it to finish, then run again",
            )
    try:
        yield
    finally:
        lock.release()


def run_edition(
    settings: Settings,
    now: datetime | None = None,
    due_date: date | None = None,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    zones: Collection[str] | None = None,
    clock: Clock = utc_now,
    note: Path | None = None,
) -> RunResult:
    """Ingest, select, render, write the edition to the outbox and record it.

    With due_date (a scheduled run) at most one edition is ever made for that date: a
    second call finds it and makes nothing. With DIGEST_DELIVERY=smtp the edition's
    subscribers are then given their rows, and every edition with due rows is sent,
    oldest first: an older edition left unfinished by a crash, a stop or a temporary
    failure is finished too. With zones (local delivery time), only subscribers in those
    zones are added now, and a call for a date whose edition exists adds them to it.
    """
    now = _now(now)
    smtp = settings.delivery == "smtp"
    if smtp:
        # Before anything is made: an edition recorded but unsendable would wait forever.
        require_secret(settings)
    with Store(settings.db) as store:
        # Sent editions get their rows as they are recorded, in the same transaction.
        audience = Audience(clock(), zones, settings.timezone) if smtp else None
        with one_run_at_a_time(settings):
            result = _make(settings, store, now, due_date, audience, note)
        if not smtp:
            return result
        if result.existing is not None and zones is not None:
            # Local delivery time: a later zone joins the edition an earlier one made.
            add_rows(settings, store, result.existing, clock(), zones)
        reports = drain(settings, store, stop=stop, progress=progress, clock=clock)
    return replace(result, deliveries=tuple(reports))


def _make(
    settings: Settings,
    store: Store,
    now: datetime,
    due_date: date | None,
    audience: Audience | None = None,
    note_file: Path | None = None,
) -> RunResult:
    """Make and record the edition a run makes now, or say why none is made."""
    if due_date is not None:
        made = store.editions.for_due_date(due_date)
        if made is not None:
            return RunResult(
                IngestReport(),
                reason=f"the edition for {due_date} is already made ({made.id})",
                existing=made.id,
            )
    # Read before anything is made: a bad note stops the run, rather than an edition
    # going out without the note its editor wrote for it.
    note = _note(settings, store, note_file)
    report = ingest(settings, store, now)
    edition_id = store.editions.next_id(due_date or now.astimezone(settings.zone).date())
    selection = _select(settings, store, edition_id, now)
    edition = selection.edition
    if edition is None:
        # The note waits for the next edition that is made.
        return RunResult(report, reason=selection.reason)
    if note is not None:
        edition = replace(edition, note=note.text)
    rendered = render_edition(settings, edition)
    # The outbox copy greets nobody by name; the stored content keeps the placeholder
    # for each subscriber's own greeting.
    public = generic_copy(rendered)
    sample = build_message(
        with_general_unsubscribe(public, settings.base_url),
        settings.sender,
        settings.sender,
        now,
    )
    # Written before it is recorded: a crash in between rewrites the same folder
    # on the next run instead of losing the edition.
    folder = write_edition(public, settings.outbox / edition.id, sample)
    # The content is kept with the edition so that a resumed send sends the same bytes.
    store.editions.record(edition, rendered.subject, due_date, rendered, audience, sentence_keys)
    logger.info("edition %s: %d items", edition.id, len(edition.items))
    # Moved aside only once the store holds the note: a crash before this leaves the file,
    # which the next run finds the store has carried already (digest.note.pending_note).
    moved = archive_note(note.path, edition.id) if note is not None and note.archive else None
    return RunResult(report, edition, public, folder, note=note, note_moved_to=moved)


def _note(
    settings: Settings, store: Store, given: Path | None, tidy: bool = True
) -> NoteFile | None:
    """Return the editor's note the next edition carries, from --note or DIGEST_NOTE_FILE."""
    note = pending_note(given, settings.note_file, store.editions.carrying_note, tidy)
    if note is not None:
        for link in unsafe_links(note.text):
            logger.warning(
                "%s: the link %r is shown as text only: only http(s) and mailto links are kept",
                note.path,
                link[:80],
            )
    return note


def send_edition(
    settings: Settings,
    edition_id: str | None = None,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    retry_delay: float = 1.0,
    clock: Clock = utc_now,
) -> list[SendReport]:
    """Send an edition to the list, then every other edition with due rows, oldest first.

    Without edition_id the newest edition is given rows for everyone not yet served
    (with local delivery time the scheduler adds each zone at its hour instead). Other
    senders may work on the same store at once: they share the rows.
    """
    with Store(settings.db) as store:
        chosen = edition_id or store.editions.latest_sendable()
        if chosen is None and not store.ledger.due_editions(clock()):
            raise DeliveryError("no edition to send yet", hint="make one with `digest run` first")
        reports: list[SendReport] = []
        if chosen is not None and (edition_id is not None or not settings.local_time):
            reports.append(
                deliver(
                    settings,
                    store,
                    chosen,
                    stop=stop,
                    progress=progress,
                    clock=clock,
                    retry_delay=retry_delay,
                )
            )
        if not any(r.paused for r in reports):
            reports += drain(
                settings,
                store,
                stop=stop,
                progress=progress,
                clock=clock,
                retry_delay=retry_delay,
            )
        return reports


def _select(settings: Settings, store: Store, edition_id: str, now: datetime) -> Selection:
    """Choose what edition_id would carry, from what the store holds and has sent."""
    since = now - settings.max_age
    return select(
        settings,
        store.articles.candidates(since),
        edition_id,
        now,
        shown_texts(store.editions.last_highlights()),
        store.articles.sent_since(since),
        load=store.articles.load,
        carried=store.editions.carried,
    )


def _select_next(
    settings: Settings, now: datetime, note_file: Path | None = None
) -> tuple[IngestReport, Selection]:
    """Ingest into a throw-away copy of the store and select from it: a preview records
    nothing, needs no run lock, and reads every feed now rather than when it is due.
    The editor's note a run would carry is in it, and its file is left where it is."""
    from digest.store.snapshot import scratch_copy

    with scratch_copy(settings.db) as copy, Store(copy) as store:
        note = _note(settings, store, note_file, tidy=False)
        fresh = replace(settings, fetch_interval=timedelta(0))
        report = ingest(fresh, store, now)
        selection = _select(settings, store, "preview", now)
    if selection.edition is not None and note is not None:
        selection = replace(selection, edition=replace(selection.edition, note=note.text))
    return report, selection


def next_edition(
    settings: Settings, now: datetime | None = None
) -> tuple[IngestReport, RenderedEdition | None]:
    """Read the sources and render the edition a run would make now, recording nothing."""
    report, selection = _select_next(settings, _now(now))
    edition = selection.edition
    return report, render_edition(settings, edition) if edition is not None else None


def preview(
    settings: Settings,
    out: Path | None = None,
    now: datetime | None = None,
    note: Path | None = None,
) -> RunResult:
    """Render the next edition to out (default: the outbox's preview folder), recording nothing."""
    now = _now(now)
    report, selection = _select_next(settings, now, note)
    if selection.edition is None:
        # The same reason a run would give: nothing new, or fewer than DIGEST_MIN_ITEMS.
        return RunResult(report, reason=selection.reason)
    # Nothing of a preview is served as the archive: its links can be final.
    rendered = with_general_unsubscribe(
        generic_copy(render_edition(settings, selection.edition)), settings.base_url
    )
    sample = build_message(rendered, settings.sender, settings.sender, now)
    folder = write_edition(rendered, out or settings.outbox / "preview", sample)
    return RunResult(report, rendered.edition, rendered, folder)


def ingest_only(settings: Settings, now: datetime | None = None) -> IngestReport:
    """Read the sources into the store and report what was found."""
    with Store(settings.db) as store:
        return ingest(settings, store, _now(now))
