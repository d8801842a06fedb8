"""`digest bounces`: the delivery reports read after the send, and reading the mailbox."""

from __future__ import annotations

import click

from digest.cli import Context, _utcnow, handle_errors, main, pass_context
from digest.cli_report import local_time, plural


@main.group(invoke_without_command=True)
@click.option("--limit", default=30, show_default=True, help="How many reports to list.")
@pass_context
@handle_errors
def bounces(ctx: Context, limit: int) -> None:
    """List the latest bounces and complaints, with the action each one caused.

    \b
    Example:
      digest bounces --limit 10
    """
    if click.get_current_context().invoked_subcommand is not None:
        return
    from digest.store import Store

    settings = ctx.settings()
    with Store(settings.db, readonly=True) as store:
        found = store.bounces.recent(limit)
    if not found:
        click.echo("No delivery reports yet.")
        return
    for r in found:
        status = f" {r.status}" if r.status else ""
        click.echo(
            f"{local_time(r.received)}  {r.kind:9} {r.address or '?'}{status}  {r.action}"
            f"  {r.diagnostic[:100]}"
        )


@bounces.command("fetch")
@pass_context
@handle_errors
def bounces_fetch(ctx: Context) -> None:
    """Read DIGEST_BOUNCE_MAILBOX once: record each report, then put the message away.

    \b
    Example:
      digest bounces fetch
    """
    from digest.bounces.mailbox import fetch_reports
    from digest.store import Store

    settings = ctx.settings()
    with Store(settings.db) as store:
        result = fetch_reports(settings, store, _utcnow())
    new = [r for r in result.reports if r.new]
    click.echo(
        f"Read {plural(result.messages, 'message')}: {plural(len(new), 'new report')}"
        f" ({plural(len(result.reports) - len(new), 'seen before', 'seen before')})."
    )
    for r in new:
        click.echo(f"  {r.report.kind:9} {r.report.address or '?'}  {r.action}")
