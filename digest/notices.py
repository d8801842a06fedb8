"""The sign-up's own emails: confirm, already subscribed, welcome.

They are queued in the store (subscribers.notice_due) by the request that calls for
them and sent here, off that request: through SMTP when DIGEST_DELIVERY=smtp, else
written to the outbox's notices/ folder, like the editions. A notice is claimed before it
is sent, so two processes never send the same one; one that fails for now is put back.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime
from email.utils import parseaddr

from digest import i18n
from digest.config import Settings
from digest.errors import DeliveryError
from digest.i18n import N_
from digest.mail import notice_message
from digest.render import render_notice
from digest.store import Store
from digest.store.signups import DueNotice
from digest.tokens import (
    confirm_url,
    make_confirm_token,
    make_token,
    preferences_url,
    unsubscribe_url,
)

logger = logging.getLogger(__name__)

SUBJECTS = {
    "confirm": N_("Confirm your subscription to %(title)s"),
    "known": N_("You are subscribed to %(title)s"),
    "welcome": N_("Welcome to %(title)s"),
}


def _latest_edition_url(settings: Settings, store: Store) -> str:
    recent = store.editions.recent(limit=1)
    return f"{settings.base_url}/archive/{recent[0].id}/" if recent else ""


def compose(settings: Settings, store: Store, notice: DueNotice, now: datetime) -> bytes:
    """Return the message for one notice."""
    s = settings
    context: dict[str, object] = {
        "kind": notice.kind,
        "name": notice.name,
        "confirm_url": "",
        "preferences_url": preferences_url(
            s.base_url, make_token(s.secret_key, s.list_id, notice.subscriber_id, "preferences")
        ),
        "unsubscribe_url": unsubscribe_url(
            s.base_url, make_token(s.secret_key, s.list_id, notice.subscriber_id)
        ),
        "ttl_hours": int(s.confirm_ttl.total_seconds() // 3600),
        "latest_url": "",
        "subject": i18n.language(s.language).gettext(SUBJECTS[notice.kind]) % {"title": s.title},
    }
    if notice.kind == "confirm":
        if notice.confirm_requested is None:
            raise DeliveryError("a confirmation without an open sign-up")
        token = make_confirm_token(
            s.secret_key, s.list_id, notice.subscriber_id, notice.confirm_requested
        )
        context["confirm_url"] = confirm_url(s.base_url, token)
    if notice.kind == "welcome":
        context["latest_url"] = _latest_edition_url(s, store)
    html, text = render_notice(s, context)
    return notice_message(
        str(context["subject"]),
        html,
        text,
        sender=s.sender,
        to=notice.email,
        now=now,
        list_id=f"<{s.list_id}>",
    )


def _deliver(settings: Settings, notice: DueNotice, data: bytes, now: datetime) -> bool:
    """Send one message; return False when it failed for now (it is tried again)."""
    if settings.delivery != "smtp":
        folder = settings.outbox / "notices"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{now:%Y%m%dT%H%M%S%f}-{notice.subscriber_id}-{notice.kind}.eml"
        # It names a subscriber: readable by its owner only, like the store.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as handle:
            handle.write(data)
        return True
    from digest.smtp import Connection, send_with_retries

    connection = Connection(settings)
    try:
        result, _ = send_with_retries(
            connection,
            parseaddr(settings.sender)[1],
            notice.email,
            data,
            max_attempts=settings.smtp_max_attempts,
            retry_delay=1.0,
        )
    finally:
        connection.close()
    if result.outcome == "sent":
        return True
    logger.warning(
        "a %s email to subscriber %d was not sent: %s",
        notice.kind,
        notice.subscriber_id,
        result.error,
    )
    # A permanent refusal is not retried: the address is wrong, and nothing else waits.
    return result.outcome != "transient"


def send_notices(settings: Settings, store: Store, now: datetime) -> int:
    """Send every queued notice; return how many went."""
    sent = 0
    for notice in store.signups.due_notices():
        if not store.signups.claim_notice(notice, now):
            continue
        try:
            data = compose(settings, store, notice, now)
            done = _deliver(settings, notice, data, now)
        except (DeliveryError, OSError) as err:
            logger.warning(
                "a %s email to subscriber %d was not sent: %s",
                notice.kind,
                notice.subscriber_id,
                err,
            )
            done = False
        if done:
            sent += 1
        else:
            store.signups.release_notice(notice)
    return sent


class NoticeRunner:
    """Sends the queued notices in a thread of its own, woken by each request that queues
    one, and gone when the queue is empty: nothing lingers between sign-ups."""

    def __init__(self, settings: Callable[[], Settings], clock: Callable[[], datetime]) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._again = False
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Make sure a thread sends what is queued now."""
        with self._lock:
            self._again = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="notices", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._again:
                    self._thread = None
                    return
                self._again = False
            try:
                settings = self._settings()
                with Store(settings.db) as store:
                    send_notices(settings, store, self._clock())
            except Exception:
                logger.exception("sending the sign-up emails failed")

    def join(self, timeout: float = 30.0) -> None:
        """Wait for the thread to finish (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
