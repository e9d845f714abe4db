"""`dailypapers mcp`: the papers as tools for an AI assistant, over stdio (see dailypapers.assistants)."""

from __future__ import annotations

from functools import cache

import typer

from dailypapers.cli.common import fail, open_store, settings_or_fail


def mcp(
    token: str | None = typer.Option(None, envvar="DAILYPAPERS_API_TOKEN", show_default=False,
                                     help="Your personal API token (from /account): lets the assistant list "
                                          "your saved papers and upvote. Default: $DAILYPAPERS_API_TOKEN."),
) -> None:
    """Serve the MCP tools (search, papers, daily feed, similar papers) to an AI assistant over stdio."""
    from dailypapers import accounts
    from dailypapers.assistants import build
    from dailypapers.cli.search import load_query_embedder
    from dailypapers.jobs import IndexFollower, uses_queue
    from dailypapers.search.backends import upkeep

    settings = settings_or_fail()
    engine = open_store()
    token = (token or "").strip() or None
    if token and accounts.token_user(engine, token) is None:  # say so now, not at the first tool call
        fail("that API token is not valid (revoked or mistyped); make a new one at /account")
    server = build(engine, embedder=cache(load_query_embedder), base_url=settings.base_url, token=token)
    upkeep(engine)  # this process's search indexes, up to date before the first question
    follower = IndexFollower(engine) if uses_queue(engine) else None  # PostgreSQL: kept up, as serve does
    if follower:
        follower.start()
    try:
        server.run("stdio")  # stdout carries the protocol: our messages go to stderr
    finally:
        if follower:
            follower.stop()
