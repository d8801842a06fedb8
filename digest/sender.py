"""The threads of one edition's send: each claims a batch of due rows and sends; their
outcomes are recorded in groups (digest.outcomes); a heartbeat renews their leases.

Anything wrong with one message fails its own row; only a server that cannot be used
stops the threads, and the error is raised by the caller.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from email.utils import parseaddr

from digest.audience import Templates
from digest.bounces.verp import return_path
from digest.clock import Clock
from digest.config import Settings
from digest.dkim import load_signer
from digest.errors import DeliveryError
from digest.holds import DomainHolds
from digest.limits import DomainRates, overall
from digest.models import Outcome, Progress
from digest.outcomes import Outcomes
from digest.smtp import Connection, Result, SmtpSetupError, send_with_retries
from digest.store import Store
from digest.store.claims import Claim, ClaimedRow, Done, Recorder, RetryPolicy
from digest.store.ledger import owner_name
from digest.tokens import make_token, preferences_url, unsubscribe_url

logger = logging.getLogger(__name__)

TransportFactory = Callable[[Settings], Connection]

# Rows a sending thread claims at a time: a subscriber who leaves meanwhile is left out
# from the next batch on.
BATCH = 100
# How long a claim holds without renewal (DIGEST_SEND_LEASE's default); the heartbeat
# renews it three times as often.
LEASE = timedelta(minutes=2)
# The same temporary reply to this many messages in a row means the server, not the
# addresses: the send pauses instead of deferring the whole list one by one.
PAUSE_AFTER = 5


def retry_policy(settings: Settings) -> RetryPolicy:
    """Return how deferred rows back off, from the settings."""
    return RetryPolicy(delay=settings.smtp_retry_delay, give_up_after=settings.smtp_retry_for)


class SendRun:
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
        # Shared with every other sender on the store, through its buckets.
        self.limiter = overall(store, settings.smtp_rate)
        self.domains = DomainRates(store, settings.smtp_domain_rate)
        self.lock = threading.Lock()
        self.sent = self.failed = self.deferred = self.resumed = 0
        self.started = time.monotonic()
        self.error: BaseException | None = None
        self.paused = ""
        self._streak: tuple[int, int] = (0, 0)  # (reply code, how many in a row)
        self.envelope_from = parseaddr(settings.sender)[1]
        # Domains whose server refused the sender (5.7.x): their rows wait, unsent.
        self.holds = DomainHolds()
        # Loaded and checked once for the whole send; None when DKIM is not configured.
        self.signer = load_signer(settings)

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
        manage = preferences_url(
            s.base_url, make_token(s.secret_key, s.list_id, row.subscriber_id, "preferences")
        )
        data = template.personalise(row.email, row.name, url, manage)
        if self.signer is not None:
            data = self.signer.sign(data, self.clock())
        return data, template.message_id(row.email)

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


class Heartbeat:
    """Renews the leases of a send's claims while its threads work, and knows until when
    each claim holds by this process's own clock.

    A claim is used only while a quarter of its lease is left: a sender that was paused
    (SIGSTOP, a swapped-out machine) or cut off from the database past its lease finds
    its claim expired by its own count, and leaves the rows to whoever took them over
    rather than sending them again. What it records is fenced by the claim's token too.
    """

    def __init__(self, run: SendRun, lease: timedelta, ledger: threading.Lock) -> None:
        self.run = run
        self.lease = lease
        # Held while this process writes the ledger: a renewal and a group of outcomes
        # lock the same rows, and in one process they must take turns, not deadlock.
        self._ledger = ledger
        self.tokens: set[str] = set()
        self.lost: set[str] = set()
        # token -> time.monotonic() at which its lease runs out, as far as this
        # process knows (counted from before the claim or renewal was asked for).
        self.until: dict[str, float] = {}
        self.margin = lease.total_seconds() / 4
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="send-lease", daemon=True)
        self._thread.start()

    def hold(self, token: str, since: float) -> None:
        """Start renewing token, claimed at time.monotonic() since (or later)."""
        with self._lock:
            self.tokens.add(token)
            self.until[token] = since + self.lease.total_seconds()

    def lose(self, token: str) -> None:
        """Stop using token's rows: some were taken over."""
        with self._lock:
            self.lost.add(token)

    def drop(self, token: str) -> None:
        """Stop renewing token."""
        with self._lock:
            self.tokens.discard(token)
            self.until.pop(token, None)

    def holds(self, token: str) -> bool:
        """Tell whether token's rows are still this sender's to send."""
        with self._lock:
            if token in self.lost:
                return False
            return time.monotonic() < self.until.get(token, 0.0) - self.margin

    def _beat(self) -> None:
        while not self._done.wait(self.lease.total_seconds() / 3):
            with self._lock:
                tokens = set(self.tokens)
            asked = time.monotonic()
            try:
                with self._ledger:
                    held = self.run.store.ledger.renew(
                        self.run.edition_id, tokens, self.run.clock(), self.lease
                    )
            except Exception as err:  # a missed renewal is tried again at the next beat
                logger.warning("could not renew the send's claims: %s", err)
                continue
            with self._lock:
                # A claim with no row left may simply be done; a claim still worked on
                # but no longer held was taken over: its sender stops using it.
                self.lost |= (tokens - held) & self.tokens
                for token in held & self.tokens:
                    self.until[token] = asked + self.lease.total_seconds()

    def close(self) -> None:
        """Stop the heartbeat."""
        self._done.set()
        self._thread.join()


def _worker(
    run: SendRun,
    beat: Heartbeat,
    outcomes: Outcomes,
    factory: TransportFactory,
    lease: timedelta,
    quick: float,
) -> None:
    """Claim and send batches until none is due, the send halts, or it fails."""
    connection: Connection | None = None
    recorder = run.store.ledger.recorder()
    owner = owner_name()
    try:
        connection = factory(run.settings)
        while not run.halted():
            since = time.monotonic()
            claim = run.store.ledger.claim(run.edition_id, run.clock(), lease, BATCH, owner)
            if claim is None:
                # Rows a sender of this host that died meanwhile still holds are taken
                # over now rather than after their lease.
                if run.store.ledger.release_dead(run.clock()):
                    continue
                return
            beat.hold(claim.token, since)
            recorded = 0
            try:
                recorded = _send_claim(run, beat, outcomes, connection, recorder, claim, quick)
            finally:
                # Every outcome of the claim is committed before any of its rows goes back,
                # a database that went away given until the lease would run out to return.
                outcomes.flush(recorder, lease.total_seconds())
                beat.drop(claim.token)
                if recorded < len(claim.rows):
                    # Rows never started go back at once, for this or another sender.
                    run.store.ledger.release(run.edition_id, claim.token, run.clock())
    except BaseException as err:
        run.fail(err)
    finally:
        if connection is not None:
            connection.close()
        try:
            outcomes.flush(recorder, lease.total_seconds())
        except BaseException as err:
            run.fail(err)
        recorder.close()


def _send_claim(
    run: SendRun,
    beat: Heartbeat,
    outcomes: Outcomes,
    connection: Connection,
    recorder: Recorder,
    claim: Claim,
    quick: float,
) -> int:
    """Send the rows of claim in order; return how many outcomes were handed in."""
    recorded = 0
    for row in claim.rows:
        if run.halted():
            return recorded
        # Looked at before each message: never send a row whose lease may have run out.
        if not beat.holds(claim.token):
            logger.warning(
                "edition %s: a batch's lease ran out or was taken over; leaving its %d"
                " rows not yet sent to their new owner",
                run.edition_id,
                len(claim.rows) - recorded,
            )
            return recorded
        if row.interrupted:
            with run.lock:
                run.resumed += 1
        done, code = _one(run, connection, row, quick, lambda: beat.holds(claim.token))
        if done is None:
            # The server cannot be reached, or the claim ran out while this message was
            # under way: neither is the address's fault, so no deferral.
            return recorded
        outcomes.add(recorder, Done(claim.token, row, done))
        recorded += 1
        run.note(done, code)
    return recorded


def _one(
    run: SendRun,
    connection: Connection,
    row: ClaimedRow,
    quick: float,
    still_ours: Callable[[], bool],
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
    held = run.holds.reason(row.email)
    if held is not None:
        why = f"not tried: the domain refused the sender earlier in this send ({held})"
        return Outcome(edition_id, sid, "deferred", run.clock(), msg_id, why), 0
    s = run.settings
    run.domains.wait(row.email, run.halt)
    try:
        result, tries = send_with_retries(
            connection,
            return_path(s, edition_id, sid) or run.envelope_from,
            row.email,
            data,
            max_attempts=s.smtp_max_attempts,
            retry_delay=quick,
            limiter=run.limiter,
            stop=run.halt,
            still_ours=still_ours,
        )
    except SmtpSetupError:
        raise
    except (DeliveryError, ValueError, UnicodeError, LookupError) as err:
        # Something in this address that smtplib could not put on the wire.
        connection.drop()
        reason = f"could not be sent: {type(err).__name__}: {err}"
        return Outcome(edition_id, sid, "failed", run.clock(), msg_id, reason, 1), 0
    if result.outcome == "abandoned":
        logger.warning(
            "edition %s: a batch's lease ran out or was taken over while subscriber %d's"
            " message was under way; it was withdrawn before its end, and the row left to"
            " its new owner",
            edition_id,
            sid,
        )
        return None, 0
    return _outcome(run, connection, row, result, tries, msg_id), result.code


def _outcome(
    run: SendRun, connection: Connection, row: ClaimedRow, result: Result, tries: int, msg_id: str
) -> Outcome | None:
    now = run.clock()
    edition_id, sid = row.edition_id, row.subscriber_id
    if result.outcome == "sent":
        return Outcome(edition_id, sid, "sent", now, msg_id, tries=tries)
    if result.outcome == "permanent" and result.policy:
        logger.warning("subscriber %d: the sender was refused: %s", sid, result.error)
        run.holds.hold(row.email, result.error)
        return Outcome(edition_id, sid, "deferred", now, msg_id, result.error, tries)
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


def run_threads(run: SendRun, factory: TransportFactory, lease: timedelta, quick: float) -> None:
    """Send run's due rows over one thread per connection, a heartbeat renewing leases."""
    ledger = threading.Lock()
    beat = Heartbeat(run, lease, ledger)
    every = run.settings.send_commit_every
    outcomes = Outcomes(run.edition_id, every, run.policy, run.rng, beat.lose, ledger)
    threads = [
        threading.Thread(
            target=_worker,
            args=(run, beat, outcomes, factory, lease, quick),
            name=f"send-{n}",
            daemon=True,
        )
        for n in range(min(run.settings.smtp_connections, max(run.total, 1)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    beat.close()
