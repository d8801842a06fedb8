"""Record delivery reports: map each to its ledger row, record it once, score the address.

Scoring follows Mailman, not one strike: a hard bounce bounces the address on its first
report; soft ones count, one per edition, within DIGEST_BOUNCE_WINDOW, and the address
bounces when they reach DIGEST_BOUNCE_SCORE; a policy rejection never counts (it is the
sender's problem); a complaint unsubscribes at once, as the reader's own act.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from digest.bounces.report import DeliveryReport
from digest.config import Settings
from digest.store import Store
from digest.store.bounces import ReportRow
from digest.tokens import read_return_token

logger = logging.getLogger(__name__)

# Our Message-IDs: digest.<edition id>.<hash>@domain (digest/mail.py).
_OUR_MESSAGE_ID = re.compile(r"<?digest\.([0-9A-Za-z-]+)\.[0-9a-f]+@[^>\s]+>?")


@dataclass(frozen=True)
class BouncePolicy:
    """How reports count: the soft score that bounces, its window, the token secret."""

    threshold: int = 3
    window: timedelta = timedelta(days=14)
    # DIGEST_SECRET_KEY: without it, return-path tokens are not trusted.
    secret: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> BouncePolicy:
        """Return the policy the settings configure."""
        return cls(settings.bounce_score, settings.bounce_window, settings.secret_key)


@dataclass(frozen=True)
class RecordedReport:
    """One report and what recording it did."""

    report: DeliveryReport
    # False: this (source, reference) was recorded before, and nothing was done again.
    new: bool
    edition_id: str | None
    subscriber_id: int | None
    # bounced, scored n/N, unsubscribed, sender problem..., unmatched, none: not active.
    action: str


def edition_of_message_id(message_id: str) -> str | None:
    """Return the edition id one of our Message-IDs names, or None if it is not ours."""
    found = _OUR_MESSAGE_ID.fullmatch(message_id.strip())
    return found.group(1) if found else None


def record_reports(
    store: Store,
    reports: Sequence[DeliveryReport],
    now: datetime,
    *,
    policy: BouncePolicy | None = None,
) -> list[RecordedReport]:
    """Record reports in one transaction and return what each did, in order."""
    policy = policy or BouncePolicy()
    rows = [_row(report, policy) for report in reports]
    done = store.bounces.record(rows, now, policy.threshold, policy.window)
    results = []
    for report, rec in zip(reports, done, strict=True):
        if rec.new and rec.action.startswith("sender problem"):
            # The status only: a receiver's words often quote the subscriber's address.
            logger.warning(
                "a receiver refused our sender (%s): check the sending domain's reputation",
                report.status or "no status",
            )
        results.append(
            RecordedReport(report, rec.new, rec.edition_id, rec.subscriber_id, rec.action)
        )
    return results


def _row(report: DeliveryReport, policy: BouncePolicy) -> ReportRow:
    edition_id: str | None = None
    subscriber_id: int | None = None
    if report.verp_token:
        named = read_return_token(policy.secret, report.verp_token)
        if named is not None:
            edition_id, subscriber_id = named
        else:
            logger.info("a return-path token that is not ours was ignored")
    message_id = report.message_id.strip("<> ") if report.message_id else None
    if edition_id is None and message_id:
        edition_id = edition_of_message_id(message_id)
    return ReportRow(
        source=report.source,
        reference=report.reference,
        kind=report.kind,
        address=report.address,
        status=report.status,
        diagnostic=report.diagnostic,
        edition_id=edition_id,
        subscriber_id=subscriber_id,
        message_id=message_id,
    )
