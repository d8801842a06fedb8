"""An edition's permanent-failure and complaint rates, against the limits senders keep.

Mail providers (and Buttondown's own terms) block senders past about 1 % permanent
failures or 0.1 % complaints: past either, the run summary and `digest deliveries` warn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from digest.models import SendReport

if TYPE_CHECKING:
    from digest.store import Store

MAX_PERMANENT = 0.01
MAX_COMPLAINTS = 0.001


@dataclass(frozen=True)
class Rates:
    """One edition's messages that went out, and what came back."""

    attempted: int
    permanent: int
    complaints: int
    reports: dict[str, int]

    def warnings(self) -> list[str]:
        """Return a line for each rate past its limit."""
        found = []
        if self.attempted and self.permanent / self.attempted > MAX_PERMANENT:
            found.append(
                f"{self.permanent / self.attempted:.1%} of the messages failed permanently"
                f" ({self.permanent} of {self.attempted}), past the {MAX_PERMANENT:.0%} that"
                " gets a sender blocked: check the list's addresses"
            )
        if self.attempted and self.complaints / self.attempted > MAX_COMPLAINTS:
            found.append(
                f"{self.complaints / self.attempted:.2%} of the readers marked it as spam"
                f" ({self.complaints} of {self.attempted}), past the {MAX_COMPLAINTS:.1%}"
                " that gets a sender blocked"
            )
        return found


def edition_rates(store: Store, edition_id: str) -> Rates:
    """Return edition_id's rates: bounced rows (in the session or reported after) and
    complaints, over the rows that were sent or tried."""
    counts = store.ledger.counts(edition_id)
    attempted = sum(counts.get(s, 0) for s in ("sent", "failed", "bounced"))
    reports = store.bounces.counts(edition_id)
    return Rates(attempted, counts.get("bounced", 0), reports.get("complaint", 0), reports)


def send_warnings(report: SendReport) -> list[str]:
    """Return the run summary's warnings: the edition's bounces so far against the limit.

    Complaints and most bounces arrive after the send; `digest deliveries` counts those.
    """
    counts = report.counts
    attempted = sum(counts.get(s, 0) for s in ("sent", "failed", "bounced"))
    return Rates(attempted, counts.get("bounced", 0), 0, {}).warnings()
