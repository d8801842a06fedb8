"""`digest status`: what the store holds, what is due, when the next run is."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from digest.cli import Context, handle_errors, main, pass_context, shown
from digest.cli_report import days_text, local_time, plural


@main.command()
@pass_context
@handle_errors
def status(ctx: Context) -> None:
    """Show the last editions, the next scheduled run and whether a scheduler runs.

    \b
    Example:
      digest status
    """
    from digest.models import DueEdition, EditionRecord
    from digest.schedule import next_fire, scheduler_status
    from digest.store import Store, store_exists

    settings = ctx.settings()
    editions: list[EditionRecord] = []
    sends: dict[str, dict[str, int]] = {}
    still_open: dict[str, DueEdition] = {}
    size = None
    reports: dict[str, int] = {}
    # A fresh machine has no store yet: nothing made, nothing pending, and a status
    # command must not create one.
    if store_exists(settings.db):
        with Store(settings.db, readonly=True) as store:
            editions = store.editions.recent(limit=10)
            sends = {record.id: store.ledger.counts(record.id) for record in editions}
            still_open = {
                row.edition_id: row for row in store.ledger.due_editions(datetime.now(UTC))
            }
            size = store.retention.size()
            reports = store.bounces.counts()
    if editions:
        click.echo("Last editions:")
        # Columns: ids differ in length (2026-11-28, 2026-11-28-2), counts in width.
        width = max(len(record.id) for record in editions)
        order = ("sent", "failed", "bounced", "skipped", "pending", "sending")
        for record in editions:
            due = f"  due {record.due_date}" if record.due_date else ""
            counts = sends[record.id]
            states = sorted(counts, key=lambda s: order.index(s) if s in order else len(order))
            sent = ", ".join(f"{counts[state]} {state}" for state in states) or "not sent"
            click.echo(
                f"  {record.id:<{width}}  {plural(record.item_count, 'item'):>9}  made"
                f" {record.created:%Y-%m-%d %H:%M} UTC  {sent}{due}"
            )
    elif not store_exists(settings.db):
        click.echo(f"No edition made yet: there is no store at {shown(settings.db)}.")
    else:
        click.echo("No edition made yet.")
    if reports:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(reports.items()))
        click.echo(f"Delivery reports after the send: {kinds} (`digest bounces` lists them)")
    if still_open:
        click.echo("Pending deliveries (`digest send` sends what is due):")
        for row in still_open.values():
            later = row.open_rows - row.due_rows
            when = (
                f", {later} waiting until {local_time(row.next_attempt_at)}"
                if later and row.next_attempt_at is not None
                else ""
            )
            click.echo(f"  {row.edition_id}: {row.open_rows} open, {row.due_rows} due now{when}")
    else:
        click.echo("Pending deliveries: none")
    if size is not None:
        click.echo(
            f"Store: {plural(size.articles, 'article')} ({size.waiting} not in an edition),"
            f" {plural(size.files, 'source file')}, {plural(size.editions, 'edition')}"
        )
        pruned = size.last_pruned
        click.echo(
            f"Last pruned: {pruned.at:%Y-%m-%d %H:%M} UTC ({plural(pruned.articles, 'article')},"
            f" {plural(pruned.files, 'source file')} removed; DIGEST_RETENTION is"
            f" {days_text(settings.retention.total_seconds() / 86400)})"
            if pruned
            else "Last pruned: never"
        )
    upcoming = next_fire(settings, datetime.now(UTC))
    when = upcoming.isoformat(timespec="minutes") if upcoming else "never"
    click.echo(f"Next run: {when} ('{settings.schedule}' in {settings.timezone})")
    holder = scheduler_status(settings)
    if holder is None:
        click.echo("Scheduler: not running")
    else:
        click.echo(
            f"Scheduler: running (process {holder.get('pid', '?')} on"
            f" {holder.get('host', '?')}, since {holder.get('since', '?')})"
        )
