"""The `digest` command: parse, build Settings, call one function, report."""

from __future__ import annotations

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

from digest import __version__
from digest.config import Settings, load_settings
from digest.errors import ConfigError, DeliveryError, DigestError
from digest.models import IngestReport, Progress, SendReport

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
    if isinstance(where, str) and "://" in where:
        from digest.store.db import describe

        return describe(where)
    text = str(where)
    cwd = str(Path.cwd())
    return text[len(cwd) + 1 :] if text.startswith(cwd + "/") else text


def _print_skipped(report: IngestReport) -> None:
    from digest.sources.fetch import redact

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
    from digest import pipeline

    settings = ctx.settings()
    stop = threading.Event()
    line = _ProgressLine()
    if settings.delivery == "smtp":
        _preflight(settings)
        _on_signal_stop(stop)
    try:
        result = pipeline.run_edition(settings, stop=stop, progress=line)
    finally:
        line.done()
    report = result.ingest
    click.echo(
        f"Read {plural(report.total, 'article')} ({report.new} new, {report.updated} updated), "
        f"{len(report.skipped)} skipped."
    )
    _print_skipped(report)
    if result.edition is None or result.folder is None:
        click.echo(f"Nothing to send: {result.reason}. Nothing was written.")
        for sent in result.deliveries:
            _print_send_report(sent)
        return
    click.echo(
        f"Edition {result.edition.id}: {plural(len(result.edition.items), 'item')}, "
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
    from digest import pipeline

    settings = ctx.settings()
    result = pipeline.preview(settings, out)
    if result.edition is None or result.folder is None:
        click.echo(f"Nothing to preview: {result.reason}.")
        return
    html = result.folder / "digest.html"
    click.echo(f"Preview of {plural(len(result.edition.items), 'item')}: {shown(html)}")
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
    from digest import pipeline

    settings = ctx.settings()
    report = pipeline.ingest_only(settings)
    click.echo(
        f"Read {plural(report.total, 'article')}: {report.new} new, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(report.skipped)} skipped."
    )
    _print_skipped(report)
    for item in report.junk:
        click.echo(f"  junk {shown(item.where)}: {item.reason}")
    if report.all_failed:
        click.echo("error: every source failed: nothing could be read (see above)", err=True)
        sys.exit(1)


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
    if settings.delivery == "smtp":
        # Every tick would send: refuse to start with settings not safe to send.
        _preflight(settings)
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
    from digest.store import Store, store_exists

    settings = ctx.settings()
    editions: list[EditionRecord] = []
    sends: dict[str, dict[str, int]] = {}
    still_open: dict[str, DueEdition] = {}
    size = None
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
    if size is not None:
        click.echo(
            f"Store: {plural(size.articles, 'article')} ({size.waiting} not in an edition),"
            f" {plural(size.files, 'source file')}, {plural(size.editions, 'edition')}"
        )
        pruned = size.last_pruned
        click.echo(
            f"Last pruned: {pruned.at:%Y-%m-%d %H:%M} UTC ({plural(pruned.articles, 'article')},"
            f" {plural(pruned.files, 'source file')} removed; DIGEST_RETENTION is"
            f" {_days(settings.retention.total_seconds() / 86400)})"
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
    # Said once the port is bound: a port in use is one error line, exit 2.
    serve_web(
        settings,
        host,
        port,
        lambda: click.echo(f"Serving on http://{host}:{port}: {pages} (Ctrl-C to stop)"),
    )


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
        f"Wrote {plural(len(written), 'file')} to {shown(out)}/ (index.html, feed.xml and"
        " one page per edition)"
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
@click.option(
    "--worker",
    is_flag=True,
    help="Keep running: send whatever becomes due, on any number of machines at once.",
)
@pass_context
@handle_errors
def send(ctx: Context, edition: str | None, test_address: str | None, worker: bool) -> None:
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
    _preflight(settings)
    stop = threading.Event()
    _on_signal_stop(stop)
    line = _ProgressLine()
    try:
        reports = pipeline.send_edition(settings, edition, stop=stop, progress=line)
    finally:
        line.done()
    _print_send_reports(reports)


def _send_worker(settings: Settings) -> None:
    from digest.worker import work

    stop = threading.Event()
    _on_signal_stop(stop)
    click.echo("Worker started; SIGTERM or Ctrl-C finishes the messages in flight and stops.")
    totals = work(settings, stop=stop, on_report=_print_send_report)
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


def _preflight(settings: Settings) -> None:
    """Run `digest check`'s checks but the SMTP round trip; print warnings, stop on errors."""
    from digest.check import before_send, has_errors

    findings = [f for f in before_send(settings) if f.level != "ok"]
    for finding in findings:
        click.echo(finding.line(), err=True)
    if has_errors(findings):
        raise ConfigError(
            "not safe to send to real people yet; nothing was made or sent",
            hint="fix the errors above; `digest check` tests the SMTP server too",
        )


@main.command()
@click.option("--new-secret", is_flag=True, help="Print a fresh DIGEST_SECRET_KEY and exit.")
@pass_context
@handle_errors
def check(ctx: Context, new_secret: bool) -> None:
    """Say whether this configuration is ready to send to real people, line by line.

    Each line is ok, warning or error with the key to change; the SMTP server is asked
    to accept the sender (then RSET: nothing is sent). Exits 1 on any error.

    \b
    Example:
      digest check
    """
    from digest import check as preflight

    if new_secret:
        click.echo(preflight.new_secret())
        return
    findings = preflight.run_checks(ctx.settings())
    for finding in findings:
        click.echo(finding.line())
    counts = {level: sum(f.level == level for f in findings) for level in ("error", "warning")}
    click.echo(f"{plural(counts['error'], 'error')}, {plural(counts['warning'], 'warning')}.")
    if counts["error"]:
        sys.exit(1)


def _days(days: float) -> str:
    """Return "1 day", "90 days", "0.5 days"."""
    return f"{days:g} {'day' if days == 1 else 'days'}"


def plural(count: int, word: str, words: str = "") -> str:
    """Return "1 item", "2 items": count and word in the number it takes."""
    return f"{count} {word if count == 1 else words or word + 's'}"


@main.group()
def db() -> None:
    """Look after the store's schema: see its version, bring it up to date.

    \b
    Example:
      digest db upgrade
    """


@db.command("copy")
@click.option("--to", "target", required=True, metavar="URL", help="The empty store to fill.")
@pass_context
@handle_errors
def db_copy(ctx: Context, target: str) -> None:
    """Copy this store (DIGEST_DB) with every article, edition, subscriber and delivery
    into a new, empty one, such as a PostgreSQL database, and check the counts.

    Then point DIGEST_DB at the new store. The copy is one transaction: on any failure
    the target is left as it was.

    \b
    Example:
      digest db copy --to postgresql://digest:secret@db.example.org/digest
    """
    from digest.store.copy import copy_store

    settings = ctx.settings()
    counts = copy_store(settings.db, target)
    for table, count in counts.items():
        click.echo(f"  {table}: {count} rows")
    click.echo(
        f"Copied {shown(settings.db)} to {shown(target)}: {sum(counts.values())} rows,"
        " every table's count checked."
    )


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


def _utcnow() -> datetime:
    return datetime.now(UTC)


# The subscriber commands live in their own module; importing it adds them to main.
import digest.cli_subscribers  # noqa: E402, F401
