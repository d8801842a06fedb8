"""`digest subscribers`: import, add, remove, list and export the subscriber list."""

from __future__ import annotations

import io
import os
from pathlib import Path

import click

from digest.cli import Context, _utcnow, handle_errors, main, pass_context, shown
from digest.cli_report import plural
from digest.config import Settings


@main.group()
def subscribers() -> None:
    """Manage the subscriber list: import, add, remove, list, export.

    \b
    Example:
      digest subscribers import subscribers.csv
    """


def _section_names(settings: Settings) -> tuple[str, ...]:
    """Return the sections topics can name: none when no sections are configured."""
    if not settings.sections:
        return ()
    return (*settings.sections, settings.default_section)


@subscribers.command(name="import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--resubscribe",
    is_flag=True,
    help="Re-activate bounced addresses and those an operator removed (never those who"
    " unsubscribed themselves).",
)
@pass_context
@handle_errors
def subscribers_import(ctx: Context, file: Path, resubscribe: bool) -> None:
    """Import a CSV file with a header row: email, and optionally name, topics, timezone.

    Known addresses are updated, never duplicated; unsubscribed ones stay unsubscribed
    unless --resubscribe is given, and those who unsubscribed themselves stay so even
    then. Bad rows are listed by line number and left out.

    \b
    Example:
      digest subscribers import subscribers.csv
    """
    from digest.store import Store
    from digest.subscribers import import_csv

    settings = ctx.settings()
    with Store(settings.db) as store:
        report = import_csv(
            store, file, _utcnow(), resubscribe=resubscribe, sections=_section_names(settings)
        )
    click.echo(
        f"Imported {shown(file)}: {report.new} new, {report.updated} updated,"
        f" {report.unchanged} unchanged, {report.kept + report.own} left unsubscribed or bounced,"
        f" {len(report.rejected)} rejected."
    )
    if report.own:
        click.echo(
            f"  {plural(report.own, 'address', 'addresses')} left unsubscribed: they"
            " unsubscribed themselves, and only their own new sign-up brings them back."
        )
    for bad in report.rejected:
        click.echo(f"  line {bad.line}: {bad.email or '(empty)'}: {bad.reason}")


@subscribers.command(name="add")
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name.")
@click.option("--topics", default="", help="Comma-separated topics.")
@click.option("--timezone", default="", help="An IANA time zone such as Europe/Berlin.")
@click.option("--resubscribe", is_flag=True, help="Re-activate an unsubscribed address.")
@click.option(
    "--confirm",
    "send_confirmation",
    is_flag=True,
    help="Add the address as pending and send it the confirmation email (double opt-in).",
)
@click.option(
    "--consent-by",
    default="",
    help="Who vouches for the address's consent (default: this user); recorded with it.",
)
@pass_context
@handle_errors
def subscribers_add(
    ctx: Context,
    email: str,
    name: str,
    topics: str,
    timezone: str,
    resubscribe: bool,
    send_confirmation: bool,
    consent_by: str,
) -> None:
    """Add one subscriber, or update the one with this address.

    Without --confirm the address is active at once, with the operator on record as the
    source of its consent; with --confirm it is pending until the reader confirms
    (digest subscribers add grace@example.org --confirm).

    \b
    Example:
      digest subscribers add ada@example.org --name "Ada Lovelace" --topics science
    """
    from digest.signup import add_pending, operator_consent
    from digest.store import Store
    from digest.subscribers import add_subscriber, normalise_email

    settings = ctx.settings()
    if send_confirmation:
        with Store(settings.db) as store:
            sent = add_pending(
                settings, store, email, _utcnow(), name=name, topics=topics, timezone=timezone
            )
        how = "sent to" if sent == "sent" else "queued for"
        click.echo(f"Pending {normalise_email(email)}: confirmation email {how} the address.")
        return
    with Store(settings.db) as store:
        change = add_subscriber(
            store,
            email,
            _utcnow(),
            name=name,
            topics=topics,
            timezone=timezone,
            resubscribe=resubscribe,
            sections=_section_names(settings),
            consent=operator_consent(consent_by),
        )
    words = {
        "new": "Added",
        "updated": "Updated",
        "unchanged": "Already subscribed:",
        "kept": "Not re-activated (use --resubscribe):",
        "own": "Not re-activated (they unsubscribed themselves; only their own sign-up"
        " brings them back):",
    }
    # The stored form: an internationalised domain is kept in its xn-- form.
    click.echo(f"{words[change]} {normalise_email(email)}")


@subscribers.command(name="remove")
@click.argument("email")
@click.option("--forget", is_flag=True, help="Delete the address and its history instead.")
@pass_context
@handle_errors
def subscribers_remove(ctx: Context, email: str, forget: bool) -> None:
    """Unsubscribe an address (kept, so that an import does not add it back).

    \b
    Example:
      digest subscribers remove ada@example.org
    """
    from digest.store import Store
    from digest.subscribers import SubscriberError, normalise_email

    settings = ctx.settings()
    given = email.strip()
    try:
        stored = normalise_email(given)
    except SubscriberError:
        # An address an earlier release let in may fail today's checks: look it up as is.
        stored = given
    with Store(settings.db) as store:
        sub = store.subscribers.by_email(stored) or store.subscribers.by_email(given)
        if sub is None:
            raise SubscriberError(f"{given} is not on the list")
        if forget:
            store.subscribers.delete(sub.id)
            click.echo(f"Forgot {sub.email} and its delivery history.")
        elif store.subscribers.set_status(sub.id, "unsubscribed", _utcnow(), ended_by="operator"):
            click.echo(f"Unsubscribed {sub.email}.")
        else:
            click.echo(f"{sub.email} was already unsubscribed.")


@subscribers.command(name="list")
@click.option(
    "--status",
    type=click.Choice(["active", "pending", "unsubscribed", "bounced"]),
    help="Only subscribers with this status.",
)
@pass_context
@handle_errors
def subscribers_list(ctx: Context, status: str | None) -> None:
    """List subscribers with their status, name and topics.

    \b
    Example:
      digest subscribers list --status bounced
    """
    from digest.store import Store

    settings = ctx.settings()
    with Store(settings.db, readonly=True) as store:
        counts = store.subscribers.counts()
        for sub in store.subscribers.iter(status):  # type: ignore[arg-type]
            topics = f"  [{', '.join(sub.topics)}]" if sub.topics else ""
            name = f"  {sub.name}" if sub.name else ""
            click.echo(f"{sub.status:12} {sub.email}{name}{topics}")
    # Pending addresses are named only when there are some: most lists have none.
    pending = ("pending",) if counts.get("pending") else ()
    shown_statuses = ("active", *pending, "unsubscribed", "bounced")
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in shown_statuses)
    click.echo(f"{plural(sum(counts.values()), 'subscriber')}: {summary}.")


@subscribers.command(name="show")
@click.argument("email")
@pass_context
@handle_errors
def subscribers_show(ctx: Context, email: str) -> None:
    """Show one subscriber: status, topics, time zone and the record of their consent.

    \b
    Example:
      digest subscribers show ada@example.org
    """
    from digest.store import Store
    from digest.subscribers import SubscriberError, describe_subscriber

    settings = ctx.settings()
    with Store(settings.db, readonly=True) as store:
        sub = store.subscribers.by_email(email.strip())
    if sub is None:
        raise SubscriberError(f"{email.strip()} is not on the list")
    for label, value in describe_subscriber(sub):
        click.echo(f"{label + ':':14} {value}")


@subscribers.command(name="export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), default="-")
@pass_context
@handle_errors
def subscribers_export(ctx: Context, file: Path) -> None:
    """Write the whole list as CSV (the import's columns plus status and times).

    \b
    Example:
      digest subscribers export subscribers.csv
    """
    from digest.store import Store
    from digest.subscribers import SubscriberError, export_csv

    settings = ctx.settings()
    with Store(settings.db, readonly=True) as store:
        if str(file) == "-":
            buffer = io.StringIO()
            export_csv(store.subscribers.iter(), buffer)
            click.echo(buffer.getvalue(), nl=False)
            return
        try:
            # The list is personal data: readable by its owner only, like the store.
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)
            with open(fd, "w", encoding="utf-8", newline="") as handle:
                count = export_csv(store.subscribers.iter(), handle)
        except OSError as err:
            raise SubscriberError(
                f"{file}: cannot write the subscriber list: {err.strerror or err}",
                hint="name a file in a folder this user may write, on a disk with free space",
            ) from err
    click.echo(f"Wrote {plural(count, 'subscriber')} to {shown(file)}")
