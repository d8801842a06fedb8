"""The outcomes of one send's messages, recorded in groups: one commit for many.

A commit per message was most of what a send cost the database (and, on a shared
PostgreSQL, what limited how many senders it could serve). Outcomes now wait here until
DIGEST_SEND_COMMIT_EVERY of them are in or a second has passed, and go in one commit;
every claim's rows are recorded before the claim is given back. What a killed sender
leaves unrecorded is at most that group, and those rows, still `sending` under its
lease, go again with the same Message-ID once the lease runs out.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from digest.store.claims import Done, Recorder, RetryPolicy
from digest.store.db import is_unreachable

logger = logging.getLogger(__name__)

# Outcomes wait at most this long (seconds) for a group to fill, so that a slow send
# (a rate limit, a slow server) does not keep many of them unrecorded.
GROUP_WAIT = 1.0
# Seconds between tries of a flush whose commit failed (a database restarting).
FLUSH_RETRY = 0.5


class Outcomes:
    """Outcomes of one send's threads, waiting for their group's commit."""

    def __init__(
        self,
        edition_id: str,
        every: int,
        policy: RetryPolicy,
        rng: random.Random,
        lose: Callable[[str], None],
        recording: threading.Lock,
    ) -> None:
        self.edition_id = edition_id
        self.every = every
        self.policy = policy
        self.rng = rng
        # Told the token of a claim whose rows were taken over: its sender stops using it.
        self.lose = lose
        self._pending: list[Done] = []
        self._since = 0.0
        self._lock = threading.Lock()
        # One group in the database at a time, so that a flush before a claim is given
        # back knows every outcome handed in before it is committed; the lease renewals
        # take it too, since they lock the same rows.
        self._recording = recording

    def add(self, recorder: Recorder, done: Done) -> None:
        """Hand in one outcome; record the group through recorder when it is due."""
        with self._lock:
            if not self._pending:
                self._since = time.monotonic()
            self._pending.append(done)
            due = len(self._pending) >= self.every or (time.monotonic() - self._since >= GROUP_WAIT)
        # A group already under way takes this outcome with it, or the next one will.
        if due and self._recording.acquire(blocking=False):
            try:
                self._record(recorder)
            finally:
                self._recording.release()

    def flush(self, recorder: Recorder, patience: float = 0.0) -> None:
        """Record every outcome handed in so far, waiting for a group under way.

        A commit that fails because the database server could not be reached is tried
        again for up to patience seconds: messages that went out while it was away for a
        moment (a restart, a fail-over) are then recorded rather than sent again once
        their lease runs out. Any other failure (a full disk) is raised at once.
        """
        deadline = time.monotonic() + patience
        while True:
            try:
                with self._recording:
                    self._record(recorder)
                return
            except Exception as err:
                if not is_unreachable(err) or time.monotonic() + FLUSH_RETRY > deadline:
                    raise
                logger.warning(
                    "edition %s: outcomes not recorded yet, trying again: %s",
                    self.edition_id,
                    err,
                )
                time.sleep(FLUSH_RETRY)

    def _record(self, recorder: Recorder) -> None:
        with self._lock:
            group, self._pending = self._pending, []
        if not group:
            return
        try:
            lost = recorder.record(group, self.policy, self.rng)
        except BaseException:
            # Not committed: the group waits for the next try, ahead of what came since.
            with self._lock:
                self._pending[:0] = group
            raise
        for token, count in lost.items():
            logger.warning(
                "edition %s: %d row(s) of a batch were taken over before their outcomes"
                " were recorded; the batch is left to its new owner",
                self.edition_id,
                count,
            )
            self.lose(token)
