"""The `dailypapers` command: a thin face over the core. Errors are one line and a non-zero exit."""

from __future__ import annotations

import json
import os
import sys

import typer

from dailypapers.cli import assistants as assistant_commands
from dailypapers.cli import embed as embed_commands
from dailypapers.cli import ingest as ingest_commands
from dailypapers.cli import jobs as jobs_commands
from dailypapers.cli import mail as mail_commands
from dailypapers.cli import search as search_commands
from dailypapers.cli.common import fail, open_store, settings_or_fail
from dailypapers.store import queries
from dailypapers.store.db import migrate, open_engine

app = typer.Typer(
    help="dailypapers: a self-hostable Daily Papers — feeds, trending, search and digests of research papers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(ingest_commands.app, name="ingest")
app.command()(search_commands.search)
app.command()(embed_commands.embed)
app.command()(embed_commands.reindex)
app.add_typer(mail_commands.digest_app, name="digest")
app.add_typer(mail_commands.alerts_app, name="alerts")
app.command()(mail_commands.subscribe)
app.command()(mail_commands.unsubscribe)
app.command()(mail_commands.subscriptions)
app.command()(jobs_commands.worker)
app.add_typer(jobs_commands.jobs_app, name="jobs")
app.command()(assistant_commands.mcp)


admin_app = typer.Typer(help="Administrators (who may hide papers and comments) and verified addresses.",
                        no_args_is_help=True)
app.add_typer(admin_app, name="admin")


@admin_app.command("grant")
def admin_grant(email: str = typer.Argument(..., help="The account's email address.")) -> None:
    """Make an account an administrator."""
    from dailypapers.accounts import AccountError, grant_admin

    try:
        grant_admin(open_store(), email)
    except AccountError as exc:
        fail(exc.message)
    typer.echo(f"{email} is now an administrator")


@admin_app.command("revoke")
def admin_revoke(email: str = typer.Argument(..., help="The account's email address.")) -> None:
    """Take administrator rights away from an account."""
    from dailypapers.accounts import AccountError, grant_admin

    try:
        grant_admin(open_store(), email, admin=False)
    except AccountError as exc:
        fail(exc.message)
    typer.echo(f"{email} is no longer an administrator")


@admin_app.command("verify")
def admin_verify(email: str = typer.Argument(..., help="The account's email address.")) -> None:
    """Mark an account's address verified (a site without mail cannot send the link)."""
    from dailypapers.accounts import AccountError
    from dailypapers.accounts.verification import mark_verified

    try:
        mark_verified(open_store(), email)
    except AccountError as exc:
        fail(exc.message)
    typer.echo(f"{email} is now verified")


@app.command()
def init() -> None:
    """Create the database (or bring its schema up to date). Safe to run again."""
    settings = settings_or_fail()
    engine = open_engine(settings.db_url, data_dir=settings.data_dir)
    migrate(engine)
    typer.echo(f"database ready: {engine.url.render_as_string(hide_password=True)}")


@app.command()
def stats(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """How many papers (and embedded ones), feed days, organizations and users the database holds."""
    from dailypapers.jobs.work import embedded

    engine = open_store()
    figures = queries.stats(engine)
    figures["embedded"] = embedded(engine)  # papers with a current embedding, found by meaning
    if as_json:
        typer.echo(json.dumps(figures))
    else:
        for key, value in figures.items():
            typer.echo(f"{key:>18}: {value}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, min=1,
                                help="Worker processes (each is stateless; the database is shared)."),
) -> None:
    """Serve the web site and the JSON API."""
    from dailypapers.web.serve import CannotServe, serve as run

    settings = settings_or_fail()
    if settings.smtp_url and not settings.base_url:
        fail("DAILYPAPERS_SMTP_URL is set but DAILYPAPERS_BASE_URL is not: set it to the site's public URL "
             "(e.g. https://papers.example.org), the only host mail links may point to")
    open_store()  # migrate once here, not in every worker
    try:
        run(host, port, workers)
    except CannotServe as exc:
        fail(str(exc))


def main() -> None:
    """Console entry point: known failures print one line; nothing prints a traceback to a user."""
    try:
        app()
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except Exception as exc:  # the last line of defence: one line, and the traceback only on request
        if os.environ.get("DAILYPAPERS_DEBUG"):
            raise
        fail(f"{type(exc).__name__}: {exc} (set DAILYPAPERS_DEBUG=1 to see where)")


if __name__ == "__main__":
    sys.exit(main())
