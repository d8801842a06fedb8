"""Send editions to the list through the ledger, the only record of sending.

This module decides what is sent (which editions, which of their rows); digest.sender
runs the threads that send it. A sender claims a batch of due rows under a lease, renews
the lease from a heartbeat while it works, and records each message's outcome in its own
commit before the next message goes, so a process killed at any moment leaves at most its
message in flight unrecorded; that one goes again, with the same Message-ID, once the
claim is released. Any number of senders share an edition's rows. A temporary failure
does not hold the send up: the row is given its next attempt time and the send moves on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

from digest.audience import Templates
from digest.clock import Clock, utc_now
from digest.config import Settings
from digest.dkim import load_signer
from digest.errors import ConfigError, DeliveryError
from digest.mail import MessageTemplate, RenderedContent, list_id_header
from digest.models import Progress, SendReport
from digest.sender import SendRun, TransportFactory, run_threads
from digest.smtp import Connection, Result, send_with_retries
from digest.store import Store
from digest.tokens import make_token, unsubscribe_url

logger = logging.getLogger(__name__)


def require_secret(settings: Settings) -> None:
    """Refuse to send without a secret: unsubscribe links would be forgeable."""
    if not settings.secret_key:
        raise ConfigError(
            "DIGEST_SECRET_KEY is not set: unsubscribe links cannot be signed",
            hint="set DIGEST_SECRET_KEY to a long random string, e.g. the output of"
            " `digest check --new-secret`",
        )


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
        unsubscribe_mailto=settings.unsubscribe_mailto,
        language=settings.language,
    )


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
    lease: timedelta | None = None,
) -> SendReport:
    """Send edition_id's due rows; with add, first give active subscribers their rows.

    Other senders may work on the same edition at once: each claims its own rows. With
    stop set, each thread finishes its message in flight, records it, and the call
    returns. With zones, only subscribers in those time zones are added now (add_rows).
    retry_delay is the first wait of the quick reconnects after a dropped connection.
    lease is how long a claim holds without renewal (DIGEST_SEND_LEASE by default).
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
    run = SendRun(settings, store, edition_id, templates, stop, progress, total, clock)
    run.resumed = resumed
    if total:
        run_threads(run, transport or Connection, lease or settings.send_lease, retry_delay)
    store.ledger.close_edition(edition_id, clock())
    if run.paused:
        logger.warning("edition %s: %s", edition_id, run.paused)
    for hold in run.holds.holds():
        logger.warning("edition %s: %s", edition_id, hold.line())
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
        held=tuple(hold.line() for hold in run.holds.holds()),
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
    signer = load_signer(settings)
    now = datetime.now(UTC)
    template = build_template(settings, store, edition_id, now)
    # Subscriber 0 never exists, so the copy's unsubscribe link unsubscribes nobody.
    token = make_token(settings.secret_key, settings.list_id, 0)
    data = template.personalise(address, "", unsubscribe_url(settings.base_url, token))
    if signer is not None:
        data = signer.sign(data, now)
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
