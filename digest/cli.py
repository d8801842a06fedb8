"""The `digest` command: parse, build Settings, call one function, report."""

from __future__ import annotations

import logging
import signal
import sys
import threading
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
from digest.cli_report import ProgressLine, plural, print_send_report
from digest.config import Settings, load_settings
from digest.errors import ConfigError, DigestError
from digest.models import IngestReport

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


_NOTE_OPTION = click.option(
    "--note",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Markdown file with the editor's note for this edition (default: DIGEST_NOTE_FILE's).",
)


@main.command()
@click.option("--force", is_flag=True, help="Send even if the DKIM record does not match the key.")
@_NOTE_OPTION
@pass_context
@handle_errors
def run(ctx: Context, force: bool, note: Path | None) -> None:
    """Read the sources, make the next edition and write it to the outbox.

    Articles already carried by an earlier edition are not repeated; with nothing new,
    nothing is written.

    \b
    Example:
      digest run --note notes/this-week.md
    """
    from digest import pipeline

    settings = ctx.settings()
    stop = threading.Event()
    line = ProgressLine()
    if settings.delivery == "smtp":
        _preflight(settings, force)
        _on_signal_stop(stop)
    try:
        result = pipeline.run_edition(settings, stop=stop, progress=line, note=note)
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
        if note is not None:
            click.echo(f"  the note {shown(note)} was not used: give it again next time")
        for sent in result.deliveries:
            print_send_report(sent)
        return
    click.echo(
        f"Edition {result.edition.id}: {plural(len(result.edition.items), 'item')}, "
        f'subject "{result.rendered.subject if result.rendered else ""}"'
    )
    for name in ("digest.html", "digest.txt", "digest.eml"):
        click.echo(f"  wrote {shown(result.folder / name)}")
    if result.note is not None:
        moved = f", moved to {shown(result.note_moved_to)}" if result.note_moved_to else ""
        click.echo(f"  editor's note from {shown(result.note.path)}{moved}")
    for sent in result.deliveries:
        print_send_report(sent)


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write to (default: <outbox>/preview).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the HTML in a web browser.")
@_NOTE_OPTION
@pass_context
@handle_errors
def preview(ctx: Context, out: Path | None, open_browser: bool, note: Path | None) -> None:
    """Render the next edition without recording it, to look at before it goes.

    \b
    Example:
      digest preview --open
    """
    from digest import pipeline

    settings = ctx.settings()
    result = pipeline.preview(settings, out, note=note)
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


def _preflight(settings: Settings, force: bool = False) -> None:
    """Run `digest check`'s checks but the SMTP round trip; print warnings, stop on errors.

    force lets a DKIM record that does not match the key pass, with a warning."""
    from digest.check import before_send, has_errors

    findings = [f for f in before_send(settings, force=force) if f.level != "ok"]
    for finding in findings:
        click.echo(finding.line(), err=True)
    if has_errors(findings):
        raise ConfigError(
            "not safe to send to real people yet; nothing was made or sent",
            hint="fix the errors above; `digest check` tests the SMTP server too",
        )


@main.command()
@click.option("--new-secret", is_flag=True, help="Print a fresh DIGEST_SECRET_KEY and exit.")
@click.option("--records", is_flag=True, help="Print the SPF, DKIM and DMARC records to publish.")
@pass_context
@handle_errors
def check(ctx: Context, new_secret: bool, records: bool) -> None:
    """Say whether this configuration is ready to send to real people, line by line.

    Each line is ok, warning or error with the key to change; the SMTP server is asked
    to accept the sender (then RSET: nothing is sent). Exits 1 on any error.

    With --records it prints the SPF, DKIM and DMARC records to publish instead.

    \b
    Example:
      digest check
    """
    from digest import check as preflight

    if new_secret:
        click.echo(preflight.new_secret())
        return
    if records:
        _print_records(ctx.settings())
        return
    findings = preflight.run_checks(ctx.settings())
    for finding in findings:
        click.echo(finding.line())
    counts = {level: sum(f.level == level for f in findings) for level in ("error", "warning")}
    click.echo(f"{plural(counts['error'], 'error')}, {plural(counts['warning'], 'warning')}.")
    if counts["error"]:
        sys.exit(1)


def _print_records(settings: Settings) -> None:
    from digest.authcheck import records

    for record in records(settings):
        click.echo(f"{record.what}: {record.name}  TXT")
        click.echo(f"  {record.value}")
        if record.note:
            click.echo(f"  ({record.note})")


def _utcnow() -> datetime:
    return datetime.now(UTC)


# Command groups live in their own modules; importing them adds them to main.
import digest.cli_bounces  # noqa: E402
import digest.cli_db  # noqa: E402
import digest.cli_send  # noqa: E402
import digest.cli_signup  # noqa: E402
import digest.cli_status  # noqa: E402
import digest.cli_subscribers  # noqa: E402, F401
