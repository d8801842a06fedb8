"""`digest send` and `digest deliveries`: send an edition, and see what became of it."""

from __future__ import annotations

import threading

import click

from digest.cli import Context, _on_signal_stop, _preflight, handle_errors, main, pass_context
from digest.cli_report import (
    ProgressLine,
    local_time,
    plural,
    print_send_report,
    print_send_reports,
)
from digest.config import Settings
from digest.errors import DeliveryError


@main.command()
@click.argument("edition", required=False)
@click.option("--test", "test_address", metavar="ADDRESS", help="Send one copy to ADDRESS only.")
@click.option(
    "--worker",
    is_flag=True,
    help="Keep running: send whatever becomes due, on any number of machines at once.",
)
@click.option("--force", is_flag=True, help="Send even if the DKIM record does not match the key.")
@pass_context
@handle_errors
def send(
    ctx: Context, edition: str | None, test_address: str | None, worker: bool, force: bool
) -> None:
    """Send an edition (the newest by default) to every active subscriber over SMTP,
    then every older edition with rows due, oldest first.

    Each subscriber's delivery is recorded; running it again resumes a send that was
    stopped or killed, and nobody receives the edition twice. Several `digest send`
    processes on one store share the work. Addresses that failed temporarily are tried
    again once their next attempt is due. SIGTERM or Ctrl-C finishes the messages in
    flight and stops. With --worker it keeps running and sends every edition's rows as
    they become due (see "Running on several machines" in the README).

    \b
    Example:
      digest send 2026-11-28
    """
    from digest import pipeline

    settings = ctx.settings()
    if worker:
        # A worker sends to real people as `digest send` does: the same checks first.
        _preflight(settings, force)
        _send_worker(settings)
        return
    if test_address is not None:
        from digest.send import send_test
        from digest.store import Store
        from digest.subscribers import SubscriberError, normalise_email

        try:
            address = normalise_email(test_address)
        except SubscriberError as err:
            raise SubscriberError(f"{test_address.strip()}: {err}") from None
        with Store(settings.db) as store:
            edition = edition or store.editions.latest_sendable()
            if edition is None:
                raise DeliveryError("no edition to send yet", hint="run `digest run` first")
            result = send_test(settings, store, edition, address)
        if result.outcome != "sent":
            raise DeliveryError(f"{address}: {result.error}")
        click.echo(f"Sent a test copy of edition {edition} to {address}; the ledger is unchanged.")
        return
    _preflight(settings, force)
    stop = threading.Event()
    _on_signal_stop(stop)
    line = ProgressLine()
    try:
        reports = pipeline.send_edition(settings, edition, stop=stop, progress=line)
    finally:
        line.done()
    print_send_reports(reports)


def _send_worker(settings: Settings) -> None:
    from digest.worker import work

    stop = threading.Event()
    _on_signal_stop(stop)
    click.echo("Worker started; SIGTERM or Ctrl-C finishes the messages in flight and stops.")
    totals = work(settings, stop=stop, on_report=print_send_report)
    click.echo(f"Worker stopped: {totals.sent} sent, {totals.failed} failed.")


@main.command()
@click.argument("edition", required=False)
@click.option("--all", "show_all", is_flag=True, help="List every address, not only problems.")
@pass_context
@handle_errors
def deliveries(ctx: Context, edition: str | None, show_all: bool) -> None:
    """Show what happened to each address for an edition (the newest by default).

    \b
    Example:
      digest deliveries 2026-11-28
    """
    from digest.store import Store

    settings = ctx.settings()
    with Store(settings.db, readonly=True) as store:
        edition = edition or store.editions.latest_sendable()
        if edition is None or store.editions.get(edition) is None:
            raise DeliveryError(
                f"no edition {edition}" if edition else "no edition made yet",
                hint="`digest status` lists the editions",
            )
        counts = store.ledger.counts(edition)
        total = sum(counts.values())
        order = ("sent", "failed", "bounced", "skipped", "pending", "sending")
        summary = ", ".join(
            f"{counts.get(s, 0)} {s}" for s in order if counts.get(s) or s == "sent"
        )
        click.echo(f"Edition {edition}: {plural(total, 'subscriber')}: {summary}.")
        from digest.bounces.rates import edition_rates

        rates = edition_rates(store, edition)
        if rates.reports:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(rates.reports.items()))
            click.echo(f"Reports after the send: {kinds}.")
        for warning in rates.warnings():
            click.echo(f"Warning: {warning}.")
        statuses = None if show_all else ("failed", "bounced", "skipped", "pending", "sending")
        for row in store.ledger.rows(edition, statuses):  # type: ignore[arg-type]
            when = f"{row.updated:%Y-%m-%d %H:%M}" if row.updated else ""
            notes = []
            if row.next_attempt_at is not None:
                notes.append(f"next try {local_time(row.next_attempt_at)}")
            if row.maybe_sent:
                notes.append("maybe sent")
            if row.claimed_by:
                notes.append(f"held by {row.claimed_by}")
            note = f"  ({', '.join(notes)})" if notes else ""
            error = f"  {row.last_error}" if row.last_error else ""
            click.echo(f"  {row.status:8} {row.email}  tries {row.attempts}  {when}{note}{error}")
