"""The `digest` command: parse, build Settings, call one function, report."""

from __future__ import annotations

import io
import logging
import signal
import sys
import threading
import time
import traceback
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from digest import __version__, pipeline
from digest.config import Settings, load_settings
from digest.errors import ConfigError, DeliveryError, DigestError
from digest.models import IngestReport, Progress, SendReport
from digest.sources.fetch import redact

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    """What the group options leave for the commands."""

    env_file: Path | None
    verbose: int

    def settings(self) -> Settings:
        """Load the settings once per command."""
        return load_settings(self.env_file)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING and "%(levelname)" not in (self._fmt or ""):
            return f"{record.levelname.lower()}: {message}"
        return message


def _setup_logging(verbose: int, timestamps: bool = False) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(message)s" if verbose < 2 else "%(name)s: %(message)s"
    handler.setFormatter(_Formatter(f"%(asctime)s %(levelname)-7s {fmt}" if timestamps else fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if verbose < 2:
        # Third-party chatter (cssutils, premailer) is noise unless debugging.
        for name in ("cssutils", "premailer", "apscheduler", "alembic"):
            logging.getLogger(name).setLevel(logging.ERROR)


def handle_errors(func: F) -> F:
    """Turn a DigestError into a message and an exit code; a traceback only with -v."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DigestError as err:
            ctx = click.get_current_context().find_object(Context)
            if ctx is not None and ctx.verbose:
                traceback.print_exc()
            click.echo(f"error: {err}", err=True)
            sys.exit(2 if isinstance(err, ConfigError) else 1)

    return wrapper  # type: ignore[return-value]


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--env-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Settings file (default: .env in the current folder, if present).",
)
@click.option("-v", "--verbose", count=True, help="More detail: -v for progress, -vv for debug.")
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def main(ctx: click.Context, env_file: Path | None, verbose: int) -> None:
    """Turn published articles into a daily email digest.

    \b
    Example:
      digest --env-file config.env run
    """
    _setup_logging(verbose)
    ctx.obj = Context(env_file=env_file, verbose=verbose)


def shown(where: str | Path) -> str:
    """Return a path relative to the current folder when it lies below it."""
    text = str(where)
    cwd = str(Path.cwd())
    return text[len(cwd) + 1 :] if text.startswith(cwd + "/") else text


def _print_skipped(report: IngestReport) -> None:
    for item in report.skipped:
        click.echo(f"  skipped {shown(item.where)}: {item.reason}")
    for source in report.failing:
        since = f"{source.failing_since:%Y-%m-%d}" if source.failing_since else "?"
        name = shown(redact(source.key))
        click.echo(f"  FAILING since {since}: {name}: {source.last_error}")


@main.command()
@pass_context
@handle_errors
def run(ctx: Context) -> None:
    """Read the sources, make the next edition and write it to the outbox.

    Articles already carried by an earlier edition are not repeated; with nothing new,
    nothing is written.

    \b
    Example:
      digest run
    """
    settings = ctx.settings()
    stop = threading.Event()
    line = _ProgressLine()
    if settings.delivery == "smtp":
        _on_signal_stop(stop)
    try:
        result = pipeline.run_edition(settings, stop=stop, progress=line)
    finally:
        line.done()
    report = result.ingest
    click.echo(
        f"Read {report.total} articles ({report.new} new, {report.updated} updated), "
        f"{len(report.skipped)} skipped."
    )
    _print_skipped(report)
    if result.edition is None or result.folder is None:
        click.echo(f"Nothing to send: {result.reason}. Nothing was written.")
        for sent in result.deliveries:
            _print_send_report(sent)
        return
    click.echo(
        f"Edition {result.edition.id}: {len(result.edition.items)} items, "
        f'subject "{result.rendered.subject if result.rendered else ""}"'
    )
    for name in ("digest.html", "digest.txt", "digest.eml"):
        click.echo(f"  wrote {shown(result.folder / name)}")
    for sent in result.deliveries:
        _print_send_report(sent)


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write to (default: <outbox>/preview).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the HTML in a web browser.")
@pass_context
@handle_errors
def preview(ctx: Context, out: Path | None, open_browser: bool) -> None:
    """Render the next edition without recording it, to look at before it goes.

    \b
    Example:
      digest preview --open
    """
    settings = ctx.settings()
    result = pipeline.preview(settings, out)
    if result.edition is None or result.folder is None:
        click.echo(f"Nothing to preview: {result.reason}.")
        return
    html = result.folder / "digest.html"
    click.echo(f"Preview of {len(result.edition.items)} items: {shown(html)}")
    click.echo(f"  text part: {shown(result.folder / 'digest.txt')}")
    if open_browser:
        webbrowser.open(html.resolve().as_uri())


@main.command()
@pass_context
@handle_errors
def ingest(ctx: Context) -> None:
    """Read the sources into the store and list what was skipped and why.

    \b
    Example:
      digest ingest
    """
    settings = ctx.settings()
    report = pipeline.ingest_only(settings)
    click.echo(
        f"Read {report.total} articles: {report.new} new, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(report.skipped)} skipped."
    )
    _print_skipped(report)
    for item in report.junk:
        click.echo(f"  junk {shown(item.where)}: {item.reason}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per article, one a line.")
@pass_context
@handle_errors
def highlights(ctx: Context, paths: tuple[Path, ...], as_json: bool) -> None:
    """Print each article's title and the highlights chosen for it.

    The article's own bullets win; otherwise its best sentences, in article order.

    \b
    Example:
      digest highlights seeds/ --json
    """
    import json

    from digest.highlights import read_highlights

    settings = ctx.settings()
    found, skipped = read_highlights(paths, settings.highlights)
    for item in skipped:
        click.echo(f"skipped {shown(item.where)}: {item.reason}", err=True)
    for article, chosen in found:
        points = [f"{hl.label}: {hl.text}" if hl.label else hl.text for hl in chosen]
        if as_json:
            record = {"source": shown(article.source), "title": article.title, "highlights": points}
            click.echo(json.dumps(record, ensure_ascii=False))
            continue
        click.echo(article.title)
        for point in points:
            click.echo(f"  - {point}")
        click.echo()


@main.command()
@pass_context
@handle_errors
def schedule(ctx: Context) -> None:
    """Run in the foreground and make an edition each time DIGEST_SCHEDULE fires.

    A due date missed while it was not running is made on start if it is within
    DIGEST_CATCHUP; SIGTERM or Ctrl-C lets the run in progress finish, then exits.

    \b
    Example:
      digest --env-file /etc/digest/digest.env schedule
    """
    from digest.schedule import serve

    settings = ctx.settings()
    # A long-running service: its log says when each run happened and what it did.
    _setup_logging(max(ctx.verbose, 1), timestamps=True)
    click.echo(f"Scheduling '{settings.schedule}' in {settings.timezone}; Ctrl-C to stop.")
    serve(settings)
    click.echo("Scheduler stopped.")


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
    from digest.store import Store

    settings = ctx.settings()
    editions: list[EditionRecord] = []
    sends: dict[str, dict[str, int]] = {}
    still_open: dict[str, DueEdition] = {}
    # A fresh machine has no store yet: nothing made, nothing pending, and a status
    # command must not create one.
    if settings.db.exists():
        with Store(settings.db, readonly=True) as store:
            editions = store.editions.recent(limit=10)
            sends = {record.id: store.ledger.counts(record.id) for record in editions}
            still_open = {
                row.edition_id: row for row in store.ledger.due_editions(datetime.now(UTC))
            }
    if editions:
        click.echo("Last editions:")
        for record in editions:
            due = f", due {record.due_date}" if record.due_date else ""
            counts = sends[record.id]
            sent = (
                "  " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
                if counts
                else "  not sent"
            )
            click.echo(
                f"  {record.id}  {record.item_count:3d} items  made"
                f" {record.created:%Y-%m-%d %H:%M} UTC{due}{sent}"
            )
    else:
        click.echo("No edition made yet.")
    if still_open:
        click.echo("Pending deliveries (`digest send` sends what is due):")
        for row in still_open.values():
            later = row.open_rows - row.due_rows
            when = (
                f", {later} waiting until {_local(row.next_attempt_at)}"
                if later and row.next_attempt_at is not None
                else ""
            )
            click.echo(f"  {row.edition_id}: {row.open_rows} open, {row.due_rows} due now{when}")
    else:
        click.echo("Pending deliveries: none")
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


@main.command()
@click.option("--host", help="Address to listen on (default: DIGEST_HOST).")
@click.option("--port", type=int, help="Port to listen on (default: DIGEST_PORT).")
@pass_context
@handle_errors
def serve(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve the live preview, the archive and one-click unsubscribe over HTTP.

    Pages: /preview (the next edition, reloading when a template or source changes),
    /archive/ (past editions and an Atom feed), /unsubscribe/TOKEN and /health.

    \b
    Example:
      digest serve --port 8080
    """
    from dataclasses import replace

    from digest.send import require_secret
    from digest.web import preview_enabled
    from digest.web import serve as serve_web

    settings = ctx.settings()
    # Without it no unsubscribe link can be checked: every one would answer 404.
    require_secret(settings)
    host = host or settings.host
    port = port or settings.port
    on = preview_enabled(replace(settings, host=host))
    pages = "/preview and /archive/" if on else "/archive/ (the preview is off here)"
    click.echo(f"Serving on http://{host}:{port}: {pages} (Ctrl-C to stop)")
    serve_web(settings, host, port)


@main.command(name="archive")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder to write the archive to.",
)
@pass_context
@handle_errors
def archive_command(ctx: Context, out: Path) -> None:
    """Write every past edition and an Atom feed as static files.

    \b
    Example:
      digest archive --out public/archive
    """
    from digest.archive import write_archive

    written = write_archive(ctx.settings(), out)
    click.echo(
        f"Wrote {len(written)} files to {shown(out)}/ (index.html, feed.xml and one page"
        " per edition)"
    )


@main.command(name="sources")
@click.option("--json", "as_json", is_flag=True, help="Print the health as JSON.")
@pass_context
@handle_errors
def sources_command(ctx: Context, as_json: bool) -> None:
    """Show each source's health: last attempt, last success, HTTP status, items, error.

    Nothing is fetched: this shows what the last run recorded.

    \b
    Example:
      digest sources --json
    """
    import json

    from digest.sources.report import health_rows, health_table

    settings = ctx.settings()
    rows = health_rows(settings)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    click.echo(health_table(rows, shown))


# Sending


def _on_signal_stop(stop: threading.Event) -> None:
    """Let SIGTERM and Ctrl-C finish the messages in flight, record them and return."""

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        click.echo("\nStopping after the messages in flight…", err=True)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class _ProgressLine:
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


def _print_send_report(report: SendReport) -> None:
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
    if report.paused:
        click.echo(f"  Paused: {report.paused}.")
    if report.stopped:
        click.echo(
            f"  Stopped: run `digest send {report.edition_id}` again to send the rest;"
            " nobody gets it twice."
        )
    elif report.remaining and report.next_attempt_at is not None:
        click.echo(
            f"  {report.remaining} still to send (temporary failures, or rows another"
            f" sender holds); the next are due at {_local(report.next_attempt_at)}"
            " (`digest send`, `digest run` and the scheduler pick them up)."
        )


def _local(when: datetime) -> str:
    return f"{when.astimezone():%Y-%m-%d %H:%M %Z}"


def _print_send_reports(reports: list[SendReport]) -> None:
    if not reports:
        click.echo("Nothing is due to send.")
    for report in reports:
        _print_send_report(report)


@main.command()
@click.argument("edition", required=False)
@click.option("--test", "test_address", metavar="ADDRESS", help="Send one copy to ADDRESS only.")
@pass_context
@handle_errors
def send(ctx: Context, edition: str | None, test_address: str | None) -> None:
    """Send an edition (the newest by default) to every active subscriber over SMTP,
    then every older edition with rows due, oldest first.

    Each subscriber's delivery is recorded; running it again resumes a send that was
    stopped or killed, and nobody receives the edition twice. Several `digest send`
    processes on one store share the work. Addresses that failed temporarily are tried
    again once their next attempt is due. SIGTERM or Ctrl-C finishes the messages in
    flight and stops.

    \b
    Example:
      digest send 2026-11-28
    """
    settings = ctx.settings()
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
    stop = threading.Event()
    _on_signal_stop(stop)
    line = _ProgressLine()
    try:
        reports = pipeline.send_edition(settings, edition, stop=stop, progress=line)
    finally:
        line.done()
    _print_send_reports(reports)


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
        click.echo(f"Edition {edition}: {total} subscribers: {summary}.")
        statuses = None if show_all else ("failed", "bounced", "skipped", "pending", "sending")
        for row in store.ledger.rows(edition, statuses):  # type: ignore[arg-type]
            when = f"{row.updated:%Y-%m-%d %H:%M}" if row.updated else ""
            notes = []
            if row.next_attempt_at is not None:
                notes.append(f"next try {_local(row.next_attempt_at)}")
            if row.maybe_sent:
                notes.append("maybe sent")
            if row.claimed_by:
                notes.append(f"held by {row.claimed_by}")
            note = f"  ({', '.join(notes)})" if notes else ""
            error = f"  {row.last_error}" if row.last_error else ""
            click.echo(f"  {row.status:8} {row.email}  tries {row.attempts}  {when}{note}{error}")


@main.group()
def db() -> None:
    """Look after the store's schema: see its version, bring it up to date.

    \b
    Example:
      digest db upgrade
    """


@db.command("upgrade")
@pass_context
@handle_errors
def db_upgrade(ctx: Context) -> None:
    """Bring the store's schema up to date (commands that write do this themselves).

    A store made by an earlier release is converted in place, in one transaction.

    \b
    Example:
      digest db upgrade
    """
    from digest.store import upgrade_store

    settings = ctx.settings()
    before, after = upgrade_store(settings.db)
    if before == after:
        click.echo(f"{shown(settings.db)}: schema already at revision {after}.")
    else:
        click.echo(f"{shown(settings.db)}: schema upgraded from {before} to revision {after}.")


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
@click.option("--resubscribe", is_flag=True, help="Re-activate unsubscribed or bounced addresses.")
@pass_context
@handle_errors
def subscribers_import(ctx: Context, file: Path, resubscribe: bool) -> None:
    """Import a CSV file with a header row: email, and optionally name, topics, timezone.

    Known addresses are updated, never duplicated; unsubscribed ones stay unsubscribed
    unless --resubscribe is given. Bad rows are listed by line number and left out.

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
        f" {report.unchanged} unchanged, {report.kept} left unsubscribed or bounced,"
        f" {len(report.rejected)} rejected."
    )
    for bad in report.rejected:
        click.echo(f"  line {bad.line}: {bad.email or '(empty)'}: {bad.reason}")


@subscribers.command(name="add")
@click.argument("email")
@click.option("--name", default="", help="The subscriber's name.")
@click.option("--topics", default="", help="Comma-separated topics.")
@click.option("--timezone", default="", help="An IANA time zone such as Europe/Berlin.")
@click.option("--resubscribe", is_flag=True, help="Re-activate an unsubscribed address.")
@pass_context
@handle_errors
def subscribers_add(
    ctx: Context, email: str, name: str, topics: str, timezone: str, resubscribe: bool
) -> None:
    """Add one subscriber, or update the one with this address.

    \b
    Example:
      digest subscribers add ada@example.org --name "Ada Lovelace" --topics science
    """
    from digest.store import Store
    from digest.subscribers import add_subscriber, normalise_email

    settings = ctx.settings()
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
        )
    words = {
        "new": "Added",
        "updated": "Updated",
        "unchanged": "Already subscribed:",
        "kept": "Not re-activated (use --resubscribe):",
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
        elif store.subscribers.set_status(sub.id, "unsubscribed", _utcnow()):
            click.echo(f"Unsubscribed {sub.email}.")
        else:
            click.echo(f"{sub.email} was already unsubscribed.")


@subscribers.command(name="list")
@click.option(
    "--status",
    type=click.Choice(["active", "unsubscribed", "bounced"]),
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
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("active", "unsubscribed", "bounced"))
    click.echo(f"{sum(counts.values())} subscribers: {summary}.")


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
            with file.open("w", encoding="utf-8", newline="") as handle:
                count = export_csv(store.subscribers.iter(), handle)
        except OSError as err:
            raise SubscriberError(
                f"{file}: cannot write the subscriber list: {err.strerror or err}",
                hint="name a file in a folder this user may write, on a disk with free space",
            ) from err
    click.echo(f"Wrote {count} subscribers to {shown(file)}")


def _utcnow() -> datetime:
    return datetime.now(UTC)
