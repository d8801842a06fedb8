"""Send an edition to the list: the per-subscriber ledger, resumable after a crash.

Each (edition, subscriber) has one ledger row: pending → sending → sent, failed or
bounced. A message is on record as `sending` before it goes and as sent after the
server's 250, so a process killed in between leaves at most one message per connection in
`sending`; the next run sends those again with the same Message-ID and everything still
pending. The two marks go to each thread's journal (journal.py), which is carried into the
store every few hundred messages and read back by the next run after a crash.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr

from digest.audience import Templates
from digest.config import Settings
from digest.errors import ConfigError, DeliveryError
from digest.journal import Journal, journal_dir, read_journals
from digest.mail import MessageTemplate, RenderedContent, list_id_header
from digest.smtp import Connection, RateLimiter, Result, send_with_retries
from digest.store import Outcome, Store
from digest.tokens import make_token, unsubscribe_url

logger = logging.getLogger(__name__)


TransportFactory = Callable[[Settings], Connection]


@dataclass(frozen=True)
class Progress:
    """Where a send stands, for a progress bar."""

    edition_id: str
    total: int
    sent: int
    failed: int
    remaining: int
    elapsed: float

    @property
    def rate(self) -> float:
        """Return messages handled per second so far in this run."""
        done = self.sent + self.failed
        return done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class SendReport:
    """What a send did and where the ledger of the edition stands after it."""

    edition_id: str
    counts: dict[str, int]
    sent_now: int
    failed_now: int
    # Rows a killed earlier run left in `sending`: sent again, possibly a second time.
    resumed_in_flight: int
    stopped: bool
    elapsed: float

    @property
    def remaining(self) -> int:
        """Return the rows still pending (temporary failures wait for the next run)."""
        return self.counts.get("pending", 0) + self.counts.get("sending", 0)

    @property
    def complete(self) -> bool:
        """Return whether every row has reached a final state."""
        return self.remaining == 0


def require_secret(settings: Settings) -> None:
    """Refuse to send without a secret: unsubscribe links would be forgeable."""
    if not settings.secret_key:
        raise ConfigError(
            "DIGEST_SECRET_KEY is not set: unsubscribe links cannot be signed",
            hint="set DIGEST_SECRET_KEY to a long random string, e.g. the output of"
            ' python3 -c "import secrets; print(secrets.token_urlsafe(32))"',
        )


def build_template(
    settings: Settings, store: Store, edition_id: str, now: datetime
) -> MessageTemplate:
    """Return the message template of a recorded edition, from its stored content."""
    content = store.edition_content(edition_id)
    if content is None:
        known = store.edition(edition_id) is not None
        raise DeliveryError(
            f"edition {edition_id}: "
            + ("its rendered content was not kept" if known else "no such edition"),
            hint="`digest status` lists the editions; make a new one with `digest run`",
        )
    return _template(settings, edition_id, content, now)


def _template(
    settings: Settings, edition_id: str, content: RenderedContent, now: datetime
) -> MessageTemplate:
    return MessageTemplate(
        content,
        edition_id=edition_id,
        sender=settings.sender,
        list_id=list_id_header(settings.title, settings.list_id, settings.sender),
        base_url=settings.base_url,
        now=now,
    )


class _Run:
    """State shared by the sending threads of one run."""

    def __init__(
        self,
        settings: Settings,
        now: datetime,
        edition_id: str,
        templates: Templates,
        stop: threading.Event,
        progress: Callable[[Progress], None] | None,
        total: int,
        retry_delay: float,
    ) -> None:
        self.settings = settings
        self.started_at = now
        self.edition_id = edition_id
        self.templates = templates
        self.stop = stop
        self.progress = progress
        self.total = total
        self.retry_delay = retry_delay
        self.limiter = RateLimiter(settings.smtp_rate)
        self.lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.started = time.monotonic()
        self.error: BaseException | None = None
        self.envelope_from = parseaddr(settings.sender)[1]

    def message(
        self, store: Store, subscriber_id: int, email: str, name: str, topics: tuple[str, ...]
    ) -> tuple[bytes, str] | None:
        """Return the message for one subscriber (the sections their topics pick, their own
        unsubscribe link) and its Message-ID; None when none of their topics is in it."""
        sections = self.templates.sections(topics)
        if sections == ():
            return None
        template = self.templates.get(store, sections)
        s = self.settings
        url = unsubscribe_url(s.base_url, make_token(s.secret_key, s.list_id, subscriber_id))
        return template.personalise(email, name, url), template.message_id(email)

    def tick(self, sent: int, failed: int, skipped: int = 0) -> None:
        with self.lock:
            self.sent += sent
            self.failed += failed
            # Left out by their topics: no longer counted among those to send.
            self.total -= skipped
            if self.progress is None:
                return
            snapshot = Progress(
                self.edition_id,
                self.total,
                self.sent,
                self.failed,
                self.total - self.sent - self.failed,
                time.monotonic() - self.started,
            )
            self.progress(snapshot)


class _Feed:
    """Hands out the rows to send, a few at a time, to all threads of a run.

    Rows are read a page at a time in subscriber order; nothing is marked in the store on
    the way out, since a row's start and end go to the sending thread's journal.
    """

    PAGE = 256

    def __init__(self, edition_id: str, run_started: datetime) -> None:
        self.edition_id = edition_id
        self.run_started = run_started
        self._rows: deque[tuple[int, str, str, tuple[str, ...]]] = deque()
        self._after = -1
        self._done = False
        self._lock = threading.Lock()

    def take(self, store: Store, count: int) -> list[tuple[int, str, str, tuple[str, ...]]]:
        """Return up to count (subscriber id, email, name, topics) to send; none when all
        are out."""
        with self._lock:
            if len(self._rows) < count and not self._done:
                page = store.pending_page(self.edition_id, self._after, self.run_started, self.PAGE)
                self._rows.extend(page)
                self._done = len(page) < self.PAGE
                if page:
                    self._after = page[-1][0]
            return [self._rows.popleft() for _ in range(min(count, len(self._rows)))]


# Messages a thread builds in one go: a tight loop costs a third of the same work done
# between one message's socket waits and the next.
_BATCH = 16
# Outcomes are carried from a thread's journal into the store this often, at the latest.
_FLUSH_EVERY = 200
_FLUSH_SECONDS = 1.0


def _worker(run: _Run, feed: _Feed, factory: TransportFactory, number: int) -> None:
    """Send rows until none is left, stop is set or the server is unusable."""
    connection: Connection | None = None
    sender: _Sender | None = None
    try:
        connection = factory(run.settings)
        journal = Journal(journal_dir(run.settings.db), f"{run.edition_id}-{os.getpid()}-{number}")
        with Store(run.settings.db) as store:
            sender = _Sender(run, connection, journal, store)
            try:
                while not run.stop.is_set() and sender.send_batch(feed.take(store, _BATCH)):
                    pass
            finally:
                sender.record()
    except BaseException as err:
        run.error = run.error or err
        run.stop.set()
    finally:
        if connection is not None:
            connection.close()
        if sender is not None:
            # Kept if its outcomes could not be recorded: the next run reads it.
            sender.journal.close(remove=not sender.unrecorded)


class _Sender:
    """One sending thread: its connection, its journal and the outcomes not yet recorded."""

    def __init__(self, run: _Run, connection: Connection, journal: Journal, store: Store) -> None:
        self.run = run
        self.connection = connection
        self.journal = journal
        self.store = store
        self.unrecorded: list[Outcome] = []
        self.recorded_at = time.monotonic()
        self.watch = store.commit_watch()

    def send_batch(self, rows: list[tuple[int, str, str, tuple[str, ...]]]) -> bool:
        """Send rows; return False when there were none."""
        run = self.run
        # Built in one go, before the first socket wait.
        batch = []
        for sid, email, name, topics in rows:
            made = run.message(self.store, sid, email, name, topics)
            if made is None:
                self.unrecorded.append(
                    Outcome(
                        run.edition_id,
                        sid,
                        "skipped",
                        datetime.now(UTC),
                        error=f"none of their topics ({', '.join(topics)}) is in this edition",
                    )
                )
                run.tick(0, 0, skipped=1)
            else:
                batch.append((sid, email, *made))
        ids = [row[0] for row in rows]
        active = self.store.active_among(ids)
        for subscriber_id, email, data, msg_id in batch:
            if run.stop.is_set():
                # The rest of the batch never started: still pending.
                break
            if self.watch.changed():
                # The store changed: look again at who is still in. Someone who left is
                # skipped when the run ends.
                active = self.store.active_among(ids)
            if subscriber_id in active:
                self.send(subscriber_id, email, data, msg_id)
                now = time.monotonic()
                if len(self.unrecorded) >= _FLUSH_EVERY or now - self.recorded_at >= _FLUSH_SECONDS:
                    self.record()
                    self.recorded_at = now
        return bool(rows)

    def send(self, subscriber_id: int, email: str, data: bytes, msg_id: str) -> None:
        """Send one message between its two journal records; keep its outcome to record."""
        run = self.run
        self.journal.sending(run.edition_id, subscriber_id)
        try:
            done = _send_one(run, self.connection, subscriber_id, email, data, msg_id)
        except BaseException:
            # Not sent as far as we know: still pending for the next run.
            done = Outcome(
                run.edition_id,
                subscriber_id,
                "pending",
                datetime.now(UTC),
                error="run stopped by an error before this message went",
            )
            raise
        finally:
            self.journal.finished(done)
            self.unrecorded.append(done)
        if done.status == "pending" and self.connection.unreachable:
            s = run.settings
            raise DeliveryError(
                f"cannot reach {s.smtp_host}:{s.smtp_port}: {done.error}",
                hint="check SMTP_HOST, SMTP_PORT and SMTP_SECURITY; run `digest"
                " send` again to resume where this run stopped",
            )

    def record(self) -> None:
        """Carry the outcomes from the journal into the store, then empty both."""
        if self.unrecorded:
            self.store.record_outcomes(self.unrecorded)
            self.unrecorded.clear()
            self.journal.clear()


def _send_one(
    run: _Run, connection: Connection, subscriber_id: int, email: str, data: bytes, msg_id: str
) -> Outcome:
    """Send one subscriber their message; return the outcome to record."""
    s = run.settings
    result, tries = send_with_retries(
        connection,
        run.envelope_from,
        email,
        data,
        max_attempts=s.smtp_max_attempts,
        retry_delay=run.retry_delay,
        limiter=run.limiter,
        stop=run.stop,
    )
    now = datetime.now(UTC)
    if result.outcome == "sent":
        run.tick(1, 0)
        return Outcome(run.edition_id, subscriber_id, "sent", now, msg_id, tries=tries)
    if result.outcome == "permanent":
        run.tick(0, 1)
        logger.warning("%s: %s", email, result.error)
        return Outcome(
            run.edition_id,
            subscriber_id,
            "failed",
            now,
            msg_id,
            result.error,
            tries=tries,
            hard=True,
            bounce_now=result.no_such_mailbox,
        )
    # Temporary trouble outlasted the tries: the row waits for the next run.
    logger.warning("%s: %s; left pending for the next run", email, result.error)
    return Outcome(run.edition_id, subscriber_id, "pending", now, msg_id, result.error, tries)


def _recover(settings: Settings, store: Store, edition_id: str, now: datetime) -> int:
    """Carry what dead runs left in their journals into the store; return how many of
    edition_id's messages were in flight when the run died.

    Only called under the run lock, so no journal read here belongs to a live run.
    """
    found, files = read_journals(journal_dir(settings.db))
    resumed = 0
    for edition, left in sorted(found.items()):
        store.record_outcomes(left.finished)
        released = store.release_interrupted(edition, now, left.in_flight)
        if edition == edition_id:
            resumed = released
        elif released:
            logger.warning(
                "edition %s: %d messages were in flight when an earlier run stopped;"
                " they go again with the same Message-ID when that edition is sent",
                edition,
                released,
            )
    if edition_id not in found:
        resumed = store.release_interrupted(edition_id, now)
    for path in files:
        path.unlink(missing_ok=True)
    return resumed


def deliver(
    settings: Settings,
    store: Store,
    edition_id: str,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    now: datetime | None = None,
    transport: TransportFactory | None = None,
    retry_delay: float = 1.0,
    zones: Collection[str] | None = None,
) -> SendReport:
    """Send edition_id to every active subscriber not yet served; resume a broken run.

    The caller holds the run lock (pipeline.one_run_at_a_time), so only one sender works
    on a store at a time. With stop set, each thread finishes its message in flight,
    records it, and the call returns. With zones, only subscribers in those time zones
    are added to the ledger now (rows added earlier are still sent).
    """
    require_secret(settings)
    # The ledger keeps real times (they order this run's retries after its claims);
    # `now` only dates the message.
    started = datetime.now(UTC)
    stop = stop or threading.Event()
    whole = build_template(settings, store, edition_id, now or started)
    templates = Templates(
        settings,
        store,
        edition_id,
        whole,
        lambda content: _template(settings, edition_id, content, now or started),
    )
    resumed = _recover(settings, store, edition_id, started)
    if resumed:
        logger.warning(
            "edition %s: %d messages were in flight when an earlier run stopped; sending"
            " them again with the same Message-ID",
            edition_id,
            resumed,
        )
    added = store.add_deliveries(edition_id, started, zones, settings.timezone)
    counts = store.delivery_counts(edition_id)
    pending = counts.get("pending", 0)
    logger.info("edition %s: %d new ledger rows, %d to send", edition_id, added, pending)
    run = _Run(settings, started, edition_id, templates, stop, progress, pending, retry_delay)
    factory: TransportFactory = transport or Connection
    feed = _Feed(edition_id, started)
    threads = [
        threading.Thread(
            target=_worker, args=(run, feed, factory, n), name=f"send-{n}", daemon=True
        )
        for n in range(min(settings.smtp_connections, max(pending, 1)))
    ]
    if pending:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    store.skip_inactive(edition_id, datetime.now(UTC))
    counts = store.delivery_counts(edition_id)
    report = SendReport(
        edition_id,
        counts,
        run.sent,
        run.failed,
        resumed,
        stopped=stop.is_set() and run.error is None,
        elapsed=time.monotonic() - run.started,
    )
    if run.error is not None:
        if isinstance(run.error, DeliveryError):
            raise run.error
        raise DeliveryError(f"sending stopped: {run.error}") from run.error
    return report


def send_test(settings: Settings, store: Store, edition_id: str, address: str) -> Result:
    """Send one copy of an edition to address, leaving the ledger alone."""
    require_secret(settings)
    now = datetime.now(UTC)
    template = build_template(settings, store, edition_id, now)
    # Subscriber 0 never exists, so the copy's unsubscribe link unsubscribes nobody.
    token = make_token(settings.secret_key, settings.list_id, 0)
    data = template.personalise(address, "", unsubscribe_url(settings.base_url, token))
    connection = Connection(settings)
    try:
        result, _ = send_with_retries(
            connection,
            parseaddr(settings.sender)[1],
            address,
            data,
            max_attempts=settings.smtp_max_attempts,
            retry_delay=1.0,
        )
    finally:
        connection.close()
    return result
