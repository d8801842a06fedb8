"""Send editions to the list through the ledger, the only record of sending.

A sender claims a batch of due rows under a lease, renews the lease from a heartbeat
while it works, and records each message's outcome in its own commit before the next
message goes, so a process killed at any moment leaves at most its message in flight
unrecorded; that one goes again, with the same Message-ID, once the claim is released.
Any number of senders share an edition's rows. A temporary failure does not hold the
send up: the row is given its next attempt time and the send moves on.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

from digest.audience import Templates
from digest.config import Settings
from digest.errors import ConfigError, DeliveryError
from digest.mail import MessageTemplate, RenderedContent, list_id_header
from digest.models import Outcome
from digest.smtp import Connection, RateLimiter, Result, SmtpSetupError, send_with_retries
from digest.store import Store
from digest.store.claims import Claim, ClaimedRow, Recorder, RetryPolicy
from digest.store.ledger import owner_name
from digest.tokens import make_token, unsubscribe_url

logger = logging.getLogger(__name__)

TransportFactory = Callable[[Settings], Connection]
Clock = Callable[[], datetime]

# Rows a sending thread claims at a time: a subscriber who leaves meanwhile is left out
# from the next batch on.
BATCH = 50
# How long a claim holds without renewal; the heartbeat renews it three times as often.
LEASE = timedelta(minutes=2)
# The same temporary reply to this many messages in a row means the server, not the
# addresses: the send pauses instead of deferring the whole list one by one.
PAUSE_AFTER = 5


def utc_now() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


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
    # Rows a killed sender left claimed: sent again, possibly a second time.
    resumed_in_flight: int
    stopped: bool
    elapsed: float
    deferred_now: int = 0
    # Why the send paused before the end, when the server refused everything alike.
    paused: str = ""
    # When the earliest deferred row is tried next.
    next_attempt_at: datetime | None = None

    @property
    def remaining(self) -> int:
        """Return the rows still open (deferred ones wait for their next attempt)."""
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


def retry_policy(settings: Settings) -> RetryPolicy:
    """Return how deferred rows back off, from the settings."""
    return RetryPolicy(delay=settings.smtp_retry_delay, give_up_after=settings.smtp_retry_for)


def build_template(
    settings: Settings, store: Store, edition_id: str, now: datetime
) -> MessageTemplate:
    """Return the message template of a recorded edition, from its stored content."""
    content = store.editions.content(edition_id)
    if content is None:
        known = store.editions.get(edition_id) is not None
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
    """State shared by the sending threads of one edition's send."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        edition_id: str,
        templates: Templates,
        stop: threading.Event,
        progress: Callable[[Progress], None] | None,
        total: int,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.store = store
        self.edition_id = edition_id
        self.templates = templates
        self.stop = stop
        # Set by stop, a pause or an error: the threads take no new message.
        self.halt = threading.Event()
        self.progress = progress
        self.total = total
        self.clock = clock
        self.policy = retry_policy(settings)
        self.rng = random.Random()
        self.limiter = RateLimiter(settings.smtp_rate)
        self.lock = threading.Lock()
        self.sent = self.failed = self.deferred = self.resumed = 0
        self.started = time.monotonic()
        self.error: BaseException | None = None
        self.paused = ""
        self._streak: tuple[int, int] = (0, 0)  # (reply code, how many in a row)
        self.envelope_from = parseaddr(settings.sender)[1]

    def halted(self) -> bool:
        """Return whether the threads should take no new message."""
        if self.stop.is_set():
            self.halt.set()
        return self.halt.is_set()

    def fail(self, err: BaseException) -> None:
        """Stop the send because of err, which the caller raises again."""
        with self.lock:
            self.error = self.error or err
        self.halt.set()

    def message(self, row: ClaimedRow) -> tuple[bytes, str] | None:
        """Return the message for one subscriber (the sections their topics pick, their own
        unsubscribe link) and its Message-ID; None when none of their topics is in it."""
        sections = self.templates.sections(row.topics)
        if sections == ():
            return None
        template = self.templates.get(self.store, sections)
        s = self.settings
        url = unsubscribe_url(s.base_url, make_token(s.secret_key, s.list_id, row.subscriber_id))
        return template.personalise(row.email, row.name, url), template.message_id(row.email)

    def note(self, done: Outcome, code: int) -> None:
        """Count an outcome; pause the send on a run of the same temporary reply."""
        with self.lock:
            if done.kind == "sent":
                self.sent += 1
            elif done.kind == "failed":
                self.failed += 1
            elif done.kind == "skipped":
                self.total -= 1
            else:
                self.deferred += 1
            if done.kind == "deferred" and code:
                same = self._streak[1] + 1 if self._streak[0] == code else 1
                self._streak = (code, same)
                if same >= PAUSE_AFTER and not self.paused:
                    s = self.settings
                    self.paused = (
                        f"{s.smtp_host}:{s.smtp_port} answered '{done.error}' to {same}"
                        " messages in a row; the send pauses, and later sends and ticks"
                        " try again"
                    )
                    self.halt.set()
            elif done.kind != "skipped":
                self._streak = (0, 0)
            if self.progress is not None:
                self.progress(
                    Progress(
                        self.edition_id,
                        self.total,
                        self.sent,
                        self.failed,
                        self.total - self.sent - self.failed,
                        time.monotonic() - self.started,
                    )
                )


class _Heartbeat:
    """Renews the leases of a send's claims while its threads work."""

    def __init__(self, run: _Run, lease: timedelta) -> None:
        self.run = run
        self.lease = lease
        self.tokens: set[str] = set()
        self.lost: set[str] = set()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="send-lease", daemon=True)
        self._thread.start()

    def hold(self, token: str) -> None:
        """Start renewing token."""
        with self._lock:
            self.tokens.add(token)

    def drop(self, token: str) -> None:
        """Stop renewing token."""
        with self._lock:
            self.tokens.discard(token)

    def _beat(self) -> None:
        while not self._done.wait(self.lease.total_seconds() / 3):
            with self._lock:
                tokens = set(self.tokens)
            try:
                held = self.run.store.ledger.renew(tokens, self.run.clock(), self.lease)
            except Exception as err:  # a missed renewal is tried again at the next beat
                logger.warning("could not renew the send's claims: %s", err)
                continue
            with self._lock:
                # A claim with no row left may simply be done; a claim still worked on
                # but no longer held was taken over: its sender stops using it.
                self.lost |= (tokens - held) & self.tokens

    def close(self) -> None:
        """Stop the heartbeat."""
        self._done.set()
        self._thread.join()


def _worker(
    run: _Run, beat: _Heartbeat, factory: TransportFactory, lease: timedelta, quick: float
) -> None:
    """Claim and send batches until none is due, the send halts, or it fails."""
    connection: Connection | None = None
    recorder = run.store.ledger.recorder()
    owner = owner_name()
    try:
        connection = factory(run.settings)
        while not run.halted():
            claim = run.store.ledger.claim(run.edition_id, run.clock(), lease, BATCH, owner)
            if claim is None:
                return
            beat.hold(claim.token)
            try:
                _send_claim(run, beat, connection, recorder, claim, quick)
            finally:
                beat.drop(claim.token)
                # Rows never started go back at once, for this or another sender.
                run.store.ledger.release(claim.token, run.clock())
    except BaseException as err:
        run.fail(err)
    finally:
        if connection is not None:
            connection.close()
        recorder.close()


def _send_claim(
    run: _Run,
    beat: _Heartbeat,
    connection: Connection,
    recorder: Recorder,
    claim: Claim,
    quick: float,
) -> None:
    for row in claim.rows:
        if run.halted() or claim.token in beat.lost:
            if claim.token in beat.lost:
                logger.warning("edition %s: a claim was taken over; leaving it", run.edition_id)
            return
        if row.interrupted:
            with run.lock:
                run.resumed += 1
        done, code = _one(run, connection, row, quick)
        if done is None:
            # The server cannot be reached: not the address's fault, so no deferral.
            return
        if not recorder.record(claim.token, row, done, run.policy, run.rng):
            logger.warning(
                "edition %s: subscriber %d's row was taken over before its outcome was recorded",
                run.edition_id,
                row.subscriber_id,
            )
            return
        run.note(done, code)


def _one(
    run: _Run, connection: Connection, row: ClaimedRow, quick: float
) -> tuple[Outcome | None, int]:
    """Build and send one subscriber's message; return its outcome and the reply code.

    Anything wrong with this one message fails its row and the send goes on; only the
    server being unusable (raised, or None when it cannot be reached) stops the send.
    """
    edition_id, sid = row.edition_id, row.subscriber_id
    try:
        made = run.message(row)
    except Exception as err:  # one address must not stop the list
        logger.warning("subscriber %d: no message could be built: %s", sid, err)
        logger.debug("subscriber %d is %s", sid, row.email)
        reason = f"no message could be built for this address: {err}"
        return Outcome(edition_id, sid, "failed", run.clock(), error=reason), 0
    if made is None:
        reason = f"none of their topics ({', '.join(row.topics)}) is in this edition"
        return Outcome(edition_id, sid, "skipped", run.clock(), error=reason), 0
    data, msg_id = made
    s = run.settings
    try:
        result, tries = send_with_retries(
            connection,
            run.envelope_from,
            row.email,
            data,
            max_attempts=s.smtp_max_attempts,
            retry_delay=quick,
            limiter=run.limiter,
            stop=run.halt,
        )
    except SmtpSetupError:
        raise
    except (DeliveryError, ValueError, UnicodeError, LookupError) as err:
        # Something in this address that smtplib could not put on the wire.
        connection.drop()
        reason = f"could not be sent: {type(err).__name__}: {err}"
        return Outcome(edition_id, sid, "failed", run.clock(), msg_id, reason, 1), 0
    return _outcome(run, connection, row, result, tries, msg_id), result.code


def _outcome(
    run: _Run, connection: Connection, row: ClaimedRow, result: Result, tries: int, msg_id: str
) -> Outcome | None:
    now = run.clock()
    edition_id, sid = row.edition_id, row.subscriber_id
    if result.outcome == "sent":
        return Outcome(edition_id, sid, "sent", now, msg_id, tries=tries)
    if result.outcome == "permanent":
        logger.warning("subscriber %d: refused: %s", sid, result.error)
        return Outcome(
            edition_id,
            sid,
            "failed",
            now,
            msg_id,
            result.error,
            tries,
            hard=True,
            bounce_now=result.no_such_mailbox,
        )
    if result.outcome == "unsure":
        logger.warning("subscriber %d: %s; tried once more later", sid, result.error)
        return Outcome(edition_id, sid, "unsure", now, msg_id, result.error, tries)
    if connection.unreachable:
        s = run.settings
        run.fail(
            DeliveryError(
                f"cannot reach {s.smtp_host}:{s.smtp_port}: {result.error}",
                hint="check SMTP_HOST, SMTP_PORT and SMTP_SECURITY; the rows wait in the"
                " ledger and the next send, run or scheduler tick resumes",
            )
        )
        return None
    logger.info("subscriber %d: %s; deferred", sid, result.error)
    return Outcome(edition_id, sid, "deferred", now, msg_id, result.error, tries)


def add_rows(
    settings: Settings,
    store: Store,
    edition_id: str,
    now: datetime,
    zones: Collection[str] | None = None,
) -> int:
    """Give the active subscribers (of zones, if given) their rows for edition_id.

    An edition older than DIGEST_MAX_AGE is not started for subscribers who joined after
    it was made: it is old news to them.
    """
    record = store.editions.get(edition_id)
    joined_before = None
    if record is not None and now - record.created > settings.max_age:
        joined_before = record.created
    added = store.ledger.add(edition_id, now, zones, settings.timezone, joined_before)
    logger.info("edition %s: %d new ledger rows", edition_id, added)
    return added


def deliver(
    settings: Settings,
    store: Store,
    edition_id: str,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    clock: Clock = utc_now,
    transport: TransportFactory | None = None,
    retry_delay: float = 1.0,
    zones: Collection[str] | None = None,
    add: bool = True,
    lease: timedelta = LEASE,
) -> SendReport:
    """Send edition_id's due rows; with add, first give active subscribers their rows.

    Other senders may work on the same edition at once: each claims its own rows. With
    stop set, each thread finishes its message in flight, records it, and the call
    returns. With zones, only subscribers in those time zones are added now (add_rows).
    retry_delay is the first wait of the quick reconnects after a dropped connection.
    """
    require_secret(settings)
    now = clock()
    stop = stop or threading.Event()
    whole = build_template(settings, store, edition_id, now)
    templates = Templates(
        settings,
        store,
        edition_id,
        whole,
        lambda content: _template(settings, edition_id, content, now),
    )
    resumed = store.ledger.release_dead(now)
    if add:
        add_rows(settings, store, edition_id, now, zones)
    store.ledger.close_edition(edition_id, now)
    # Every section set the open rows need is rendered before any is claimed.
    for topics in store.ledger.open_topics(edition_id):
        sections = templates.sections(topics)
        if sections:
            templates.get(store, sections)
    counts = store.ledger.counts(edition_id)
    total = counts.get("pending", 0) + counts.get("sending", 0)
    run = _Run(settings, store, edition_id, templates, stop, progress, total, clock)
    run.resumed = resumed
    factory: TransportFactory = transport or Connection
    if total:
        beat = _Heartbeat(run, lease)
        threads = [
            threading.Thread(
                target=_worker,
                args=(run, beat, factory, lease, retry_delay),
                name=f"send-{n}",
                daemon=True,
            )
            for n in range(min(settings.smtp_connections, total))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        beat.close()
    store.ledger.close_edition(edition_id, clock())
    if run.paused:
        logger.warning("edition %s: %s", edition_id, run.paused)
    due = [d for d in store.ledger.due_editions(clock()) if d.edition_id == edition_id]
    report = SendReport(
        edition_id,
        store.ledger.counts(edition_id),
        run.sent,
        run.failed,
        run.resumed,
        stopped=stop.is_set() and run.error is None,
        elapsed=time.monotonic() - run.started,
        deferred_now=run.deferred,
        paused=run.paused,
        next_attempt_at=due[0].next_attempt_at if due else None,
    )
    if run.error is not None:
        if isinstance(run.error, DeliveryError):
            raise run.error
        raise DeliveryError(f"sending stopped: {run.error}") from run.error
    return report


def drain(
    settings: Settings,
    store: Store,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    clock: Clock = utc_now,
    transport: TransportFactory | None = None,
    retry_delay: float = 1.0,
    skip: Collection[str] = (),
) -> list[SendReport]:
    """Send every edition that has due rows, oldest first; return what each send did.

    An edition that cannot be sent (its content was never kept) is reported and the
    others go on; a server that cannot be used stops the drain, raised.
    """
    stop = stop or threading.Event()
    reports: list[SendReport] = []
    for due in store.ledger.due_editions(clock()):
        if stop.is_set():
            break
        if due.due_rows == 0 or due.edition_id in skip:
            continue
        try:
            report = deliver(
                settings,
                store,
                due.edition_id,
                stop=stop,
                progress=progress,
                clock=clock,
                transport=transport,
                retry_delay=retry_delay,
                add=False,
            )
        except DeliveryError as err:
            if store.editions.content(due.edition_id) is not None:
                raise
            logger.warning("edition %s cannot be sent: %s", due.edition_id, err)
            continue
        reports.append(report)
        if report.paused:
            break
    return reports


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
