"""The `digest` command: parse, build Settings, call one function, report."""

from __future__ import annotations

import logging
import sys
import traceback
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from digest import __version__, pipeline
from digest.config import Settings, load_settings
from digest.errors import ConfigError, DigestError
from digest.models import IngestReport
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
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s" if verbose < 2 else "%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if verbose < 2:
        # Third-party chatter (cssutils, premailer) is noise unless debugging.
        for name in ("cssutils", "premailer", "apscheduler"):
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
    result = pipeline.run_edition(settings)
    report = result.ingest
    click.echo(
        f"Read {report.total} articles ({report.new} new, {report.updated} updated), "
        f"{len(report.skipped)} skipped."
    )
    _print_skipped(report)
    if result.edition is None or result.folder is None:
        click.echo(f"Nothing to send: {result.reason}. Nothing was written.")
        return
    click.echo(
        f"Edition {result.edition.id}: {len(result.edition.items)} items, "
        f'subject "{result.rendered.subject if result.rendered else ""}"'
    )
    for name in ("digest.html", "digest.txt", "digest.eml"):
        click.echo(f"  wrote {shown(result.folder / name)}")


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
    from datetime import UTC, datetime

    from digest.schedule import next_fire, scheduler_status
    from digest.store import Store

    settings = ctx.settings()
    with Store(settings.db) as store:
        editions = store.editions(limit=10)
    if editions:
        click.echo("Last editions:")
        for record in editions:
            due = f", due {record.due_date}" if record.due_date else ""
            click.echo(
                f"  {record.id}  {record.item_count:3d} items  made"
                f" {record.created:%Y-%m-%d %H:%M} UTC{due}"
            )
    else:
        click.echo("No edition made yet.")
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
    from digest.web import serve as serve_web

    settings = ctx.settings()
    host = host or settings.host
    port = port or settings.port
    click.echo(f"Serving on http://{host}:{port}/preview and /archive/ (Ctrl-C to stop)")
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
