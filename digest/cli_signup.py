"""`digest form`: the sign-up form to paste into another site's page."""

from __future__ import annotations

import click

from digest.cli import Context, handle_errors, main, pass_context


@main.command(name="form")
@pass_context
@handle_errors
def form(ctx: Context) -> None:
    """Print an HTML sign-up form that posts to this server's /subscribe.

    Paste it into a page of your own site, and add that site's origin to
    DIGEST_SIGNUP_ORIGINS: sign-ups from other origins are refused.

    \b
    Example:
      digest form > signup-snippet.html
    """
    from digest.signup import embed_snippet

    settings = ctx.settings()
    click.echo(embed_snippet(settings), nl=False)
    if not settings.signup_origins:
        click.echo(
            "<!-- DIGEST_SIGNUP_ORIGINS is empty: list the origin of the page this form goes"
            " on, or its sign-ups are refused. -->"
        )
