"""What the commands print about sends and times: the progress line, each edition's send
report, and the small formats they share ("2 items", "3 days", a local time)."""

from __future__ import annotations

import sys
import time
from datetime import datetime

import click

from digest.models import Progress, SendReport


class ProgressLine:
    """One line on stderr, redrawn in place: sent, failed, remaining and rate."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if not self.tty or (now - self.last < 0.2 and p.remaining):
            return
        self.last = now
        done = p.sent + p.failed
        width = 24
        filled = int(width * done / p.total) if p.total else width
        bar = "#" * filled + "-" * (width - filled)
        click.echo(
            f"\r[{bar}] {p.sent} sent, {p.failed} failed, {p.remaining} remaining, {p.rate:.1f}/s ",
            nl=False,
            err=True,
        )

    def done(self) -> None:
        if self.tty and self.last:
            click.echo("", err=True)


def print_send_report(report: SendReport) -> None:
    counts = report.counts
    parts = [f"{counts.get(s, 0)} {s}" for s in ("sent", "failed", "bounced", "skipped")]
    rate = (report.sent_now + report.failed_now) / report.elapsed if report.elapsed else 0.0
    click.echo(
        f"Edition {report.edition_id}: {', '.join(parts)}, {report.remaining} pending"
        f" ({report.sent_now} sent in this run, {report.elapsed:.1f} s, {rate:.1f}/s)."
    )
    if report.resumed_in_flight:
        click.echo(
            f"  {report.resumed_in_flight} rows were still held by a sender that stopped;"
            " the message it had in flight, if any, went again with the same Message-ID."
        )
    from digest.bounces.rates import send_warnings

    for warning in send_warnings(report):
        click.echo(f"  Warning: {warning}.")
    if report.paused:
        click.echo(f"  Paused: {report.paused}.")
    for line in report.held:
        click.echo(f"  Held back: {line}.")
    if report.stopped:
        click.echo(
            f"  Stopped: run `digest send {report.edition_id}` again to send the rest;"
            " nobody gets it twice."
        )
    elif report.remaining and report.next_attempt_at is not None:
        click.echo(
            f"  {report.remaining} still to send (temporary failures, or rows another"
            f" sender holds); the next are due at {local_time(report.next_attempt_at)}"
            " (`digest send`, `digest run` and the scheduler pick them up)."
        )


def local_time(when: datetime) -> str:
    return f"{when.astimezone():%Y-%m-%d %H:%M %Z}"


def print_send_reports(reports: list[SendReport]) -> None:
    if not reports:
        click.echo("Nothing is due to send.")
    for report in reports:
        print_send_report(report)


def days_text(days: float) -> str:
    """Return "1 day", "90 days", "0.5 days"."""
    return f"{days:g} {'day' if days == 1 else 'days'}"


def plural(count: int, word: str, words: str = "") -> str:
    """Return "1 item", "2 items": count and word in the number it takes."""
    return f"{count} {word if count == 1 else words or word + 's'}"
