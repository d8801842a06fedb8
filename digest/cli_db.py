"""`digest db`: the store's schema, and moving the store to another database."""

from __future__ import annotations

import click

from digest.cli import Context, handle_errors, main, pass_context, shown


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
