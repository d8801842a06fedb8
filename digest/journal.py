"""The send journal: each message's start and end, appended to a file beside the store.

A message must be on record as `sending` before it goes and as finished after the
server's reply, or a killed process could send it twice or not at all. A database commit
per message would keep that promise at several times the CPU cost of building the
message; an append to a file does it at the cost of one system call. The ledger in the
store is brought up to date from the journal in batches, and after a crash the next send
reads what a dead run's journals hold before it starts.

An append survives a killed process (the data is in the kernel once `write` returns) but
not a power cut, the same promise the store makes for its own commits.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from digest.models import DeliveryStatus
from digest.store import Outcome

logger = logging.getLogger(__name__)

_STATUSES: dict[str, DeliveryStatus] = {s: s for s in ("pending", "sent", "failed", "bounced")}


def journal_dir(db: Path) -> Path:
    """Return the folder holding the send journals of the store at db."""
    return db.with_name(db.name + "-sending")


class Journal:
    """One sending thread's journal: a file only that thread appends to.

    A message's end is written together with the next message's start, in one system
    call: a process killed in between leaves that message looking unfinished, so at most
    one message per thread goes twice, the same as a ledger that records one message's end
    in the commit that claims the next.
    """

    def __init__(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{name}.log"
        # O_APPEND with one write per record: a record is either whole or absent.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._ended = ""

    def sending(self, edition_id: str, subscriber_id: int) -> None:
        """Record that the message to subscriber_id is about to go."""
        line = f"{self._ended}S\t{edition_id}\t{subscriber_id}\n"
        self._ended = ""
        os.write(self._fd, line.encode())

    def finished(self, done: Outcome) -> None:
        """Note how the message to a subscriber ended; on file with the next start."""
        if done.status == "sent" and not done.error:
            # Nearly every record: kept short, since it is written once per message. A
            # recovered one is dated when its journal was last written.
            self._ended += (
                f"K\t{done.edition_id}\t{done.subscriber_id}\t{done.message_id}\t{done.tries}\n"
            )
            return
        self._ended += (
            f"D\t{done.edition_id}\t{done.subscriber_id}\t{done.status}\t"
            f"{done.when.isoformat()}\t{done.message_id}\t{done.tries}\t"
            f"{int(done.hard)}\t{int(done.bounce_now)}\t{json.dumps(done.error)}\n"
        )

    def clear(self) -> None:
        """Forget every record: the store now holds them all."""
        self._ended = ""
        os.ftruncate(self._fd, 0)

    def close(self, *, remove: bool) -> None:
        """Close the file, removing it when nothing in it is still needed."""
        if self._ended and not remove:
            os.write(self._fd, self._ended.encode())
        self._ended = ""
        os.close(self._fd)
        if remove:
            self.path.unlink(missing_ok=True)


@dataclass
class Recovered:
    """What the journals of dead runs hold for one edition."""

    # Messages that were started and never finished: perhaps sent, perhaps not.
    in_flight: set[int] = field(default_factory=set)
    # Messages whose end was recorded but not yet carried into the store.
    finished: list[Outcome] = field(default_factory=list)


def read_journals(folder: Path) -> tuple[dict[str, Recovered], list[Path]]:
    """Return, per edition, what every journal in folder holds, and the files read."""
    found: dict[str, Recovered] = {}
    files = sorted(folder.glob("*.log")) if folder.is_dir() else []
    for path in files:
        for edition_id, subscriber_id, done in _records(path):
            entry = found.setdefault(edition_id, Recovered())
            if done is None:
                entry.in_flight.add(subscriber_id)
            else:
                entry.in_flight.discard(subscriber_id)
                entry.finished.append(done)
    return found, files


def _records(path: Path) -> Iterator[tuple[str, int, Outcome | None]]:
    """Yield (edition, subscriber, outcome or None for a start) from one journal."""
    written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            try:
                kind, edition_id, subscriber, *rest = line.rstrip("\n").split("\t")
                subscriber_id = int(subscriber)
                if kind == "S" and not rest:
                    yield edition_id, subscriber_id, None
                    continue
                if kind == "K" and len(rest) == 2:
                    msg_id, tries = rest
                    sent = Outcome(
                        edition_id, subscriber_id, "sent", written, msg_id, tries=int(tries)
                    )
                    yield edition_id, subscriber_id, sent
                    continue
                if kind != "D" or len(rest) != 7:
                    raise ValueError(f"unknown record {kind!r} of {len(rest) + 3} fields")
                status, when, msg_id, tries, hard, bounce, error = rest
                if status not in _STATUSES:
                    raise ValueError(f"unknown status {status!r}")
                yield (
                    edition_id,
                    subscriber_id,
                    Outcome(
                        edition_id,
                        subscriber_id,
                        _STATUSES[status],
                        datetime.fromisoformat(when),
                        msg_id,
                        str(json.loads(error)),
                        int(tries),
                        hard == "1",
                        bounce == "1",
                    ),
                )
            except ValueError as err:
                # Only a cut-off last line is expected here (a full disk, a power cut);
                # the message it was about stays as the store last knew it.
                logger.warning("%s, line %d: unreadable record skipped: %s", path, number, err)
