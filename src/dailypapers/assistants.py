"""The papers as tools for AI assistants: an MCP (Model Context Protocol) server.

One set of tools, two transports: `dailypapers mcp` speaks over stdio (cli/assistants.py), and the
site answers the same tools over streamable HTTP at /mcp (web/app.py). Like web/ and cli/, this is
a face over the core: search, queries and community do the work; here arguments are checked and
answers shaped as JSON with absolute links to the site.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timedelta
from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field
from sqlalchemy.engine import Engine

from dailypapers import accounts, community
from dailypapers.collections import saved as saved_list
from dailypapers.search.filters import Filters
from dailypapers.search.hybrid import search
from dailypapers.store import queries
from dailypapers.web import periods, shape
from dailypapers.web.periods import PeriodError

LOCAL_SITE = "http://127.0.0.1:8000"  # links on stdio without DAILYPAPERS_BASE_URL (serve's default)
MAX_LIMIT = 50
MAX_CATEGORIES = 20  # as the site's search (web/pages.py)
SUMMARY_CHARS = 300  # lists carry the start of each abstract; get_paper has all of it
READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description=f"How many papers (1 to {MAX_LIMIT}).")]
PaperId = Annotated[str, Field(min_length=1, max_length=100,
                               description="An arXiv id (e.g. 2510.00001) or the site's own id of a paper.")]
Day = Annotated[str | None, Field(max_length=10, description="YYYY-MM-DD")]


def build(engine: Engine, *, embedder: Callable[[], object] = lambda: None, base_url: str | None = None,
          token: str | None = None) -> MCPServer:
    """The server. ``embedder()`` gives the query embedder (or None: search by words only);
    ``base_url`` the site's address for links (default: the HTTP request's, else LOCAL_SITE);
    ``token`` the reader's API token on stdio (over HTTP each request's Authorization header counts)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    server = MCPServer("dailypapers", version="0.1.0", instructions=(
        "Research papers from the daily feed of this dailypapers site: search them (by words and by "
        "meaning, with filters), read one, list a day's feed, find similar papers. With the reader's API "
        "token, also their saved papers and upvoting."))
    root.handlers[:] = handlers  # the SDK configured the root logger: the site's logging stays its own
    root.setLevel(level)

    def site(ctx: Context) -> str:
        request = ctx.request_context.request
        if base_url or request is None or not hasattr(request, "base_url"):
            return (base_url or LOCAL_SITE).rstrip("/")
        return str(request.base_url).rstrip("/")  # the Host the site's edge has checked

    def reader(ctx: Context, tool: str) -> dict:
        given = token
        headers = ctx.headers
        if headers is not None:  # over HTTP: the token of this request, as the JSON API reads it
            scheme, _, value = headers.get("authorization", "").partition(" ")
            given = value.strip() if scheme.lower() == "bearer" else None
        how = (f"make one at {site(ctx)}/account, then start `dailypapers mcp --token <token>` (or set "
               "DAILYPAPERS_API_TOKEN), or over HTTP send the header Authorization: Bearer <token>")
        if not given:
            raise ToolError(f"{tool} needs your personal API token: {how}.")
        user = accounts.token_user(engine, given)
        if user is None:
            raise ToolError(f"That API token is not valid (revoked or mistyped): {how}.")
        return user

    def links(ctx: Context, paper_id: str) -> dict:
        page = f"{site(ctx)}/papers/{paper_id}"
        out = {"url": page, "markdown": f"{page}.md", "bibtex": f"{page}.bib"}
        if not paper_id.startswith("dp-"):  # the site's own ids are no arXiv ids
            out |= {"arxiv": f"https://arxiv.org/abs/{paper_id}", "pdf": f"https://arxiv.org/pdf/{paper_id}"}
        return out

    def brief(ctx: Context, row: dict) -> dict:
        """A paper in a list: enough to choose it, and its links."""
        summary = " ".join(row["summary"].split())
        if len(summary) > SUMMARY_CHARS:
            summary = summary[:SUMMARY_CHARS].rsplit(" ", 1)[0] + " …"
        out = {"id": row["id"], "title": " ".join(row["title"].split()),
               "authors": [a["name"] for a in row["authors"]], "numAuthors": row["num_authors"],
               "publishedAt": shape.iso(row["published_at"]),
               "submittedOnDailyAt": shape.iso(row["submitted_on_daily_at"]),
               "upvotes": row["upvotes"], "categories": row["categories"].split(),
               "organization": row.get("organization_name"), "githubRepo": row["github_repo"],
               "summary": summary} | links(ctx, row["id"])
        return {k: v for k, v in out.items() if v is not None}

    def paper_row(paper_id: str) -> dict:
        row = queries.paper(engine, paper_id.strip())
        if row is None:
            raise ToolError(f"There is no paper {paper_id[:80]!r} on this site; search_papers finds papers "
                            "by words.")
        return row

    def day(name: str, value: str | None) -> date | None:
        try:
            return periods.day(value).start if value else None
        except PeriodError as exc:
            raise ToolError(f"{name}: {exc}") from None

    @server.tool(annotations=READ_ONLY)
    def search_papers(
        ctx: Context,
        query: Annotated[str, Field(max_length=10_000, description=(
            'Words, "a phrase", -excluded, author:name, cat:cs.LG, or an arXiv id. May be empty when a '
            "filter is given."))] = "",
        limit: Limit = 10,
        sort: Literal["relevance", "trending", "newest", "upvotes"] = "relevance",
        categories: Annotated[list[str], Field(max_length=MAX_CATEGORIES, description=(
            "arXiv categories, any of them (cs.CL; 'cs' means every cs.* category)."))] = [],  # noqa: B006
        since: Day = None,
        until: Day = None,
        has_code: Annotated[bool | None, Field(description="Only papers with (true) or without (false) "
                                                           "a code repository.")] = None,
        organization: Annotated[str | None, Field(max_length=100, description=(
            "An organization's handle, e.g. facebook."))] = None,
    ) -> dict:
        """Search the site's papers by words and by meaning, as its search page does, with filters:
        categories, published since/until (YYYY-MM-DD), has_code, organization. Returns the total found
        and the best papers (title, authors, date, upvotes, the start of the abstract, links)."""
        cats = tuple(c.strip() for c in categories if c.strip())
        if any(len(c) > 50 for c in cats):
            raise ToolError("categories: a category has at most 50 characters")
        filters = Filters(since=day("since", since), until=day("until", until), categories=cats,
                          organization=(organization or "").strip() or None, has_code=has_code)
        if not query.strip() and not filters.active:
            raise ToolError("Give a query, or at least one filter (categories, since, until, has_code, "
                            "organization).")
        try:
            found = search(engine, query, filters=filters, sort=sort, limit=limit, embedder=embedder())
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        return {"total": found.total, "papers": [brief(ctx, hit.paper) for hit in found.hits]}

    @server.tool(annotations=READ_ONLY)
    def get_paper(ctx: Context, paper_id: PaperId) -> dict:
        """One paper: title, authors, dates, abstract, categories, upvotes, comments count and links
        (the site's page, Markdown, BibTeX, arXiv, PDF, code, project page)."""
        row = paper_row(paper_id)
        count = community.comment_counts(engine, [row["id"]]).get(row["id"], 0)
        return shape.paper(row, count) | {"links": links(ctx, row["id"])}

    @server.tool(annotations=READ_ONLY)
    def daily_papers(
        ctx: Context,
        date: Annotated[str | None, Field(max_length=10, description=(
            "The day, YYYY-MM-DD; default the latest day with papers."))] = None,
        sort: Literal["trending", "published"] = "trending",
        limit: Limit = 20,
    ) -> dict:
        """The papers put on the daily feed of one day: trending (most upvoted) or last published first.
        Also gives the days before and after that have papers."""
        start = day("date", date) or queries.latest_daily_date(engine)
        if start is None:
            return {"date": None, "total": 0, "papers": [], "note": "No papers are on the feed yet."}
        rows, total = queries.feed(engine, start, start + timedelta(days=1), limit=limit,
                                   sort={"trending": "trending", "published": "publishedAt"}[sort])
        before, after = queries.neighbour_days(engine, start)
        return {"date": start.isoformat(), "total": total, "papers": [brief(ctx, r) for r in rows],
                "previousDay": before and before.isoformat(), "nextDay": after and after.isoformat(),
                "url": f"{site(ctx)}/papers/date/{start.isoformat()}"}

    @server.tool(annotations=READ_ONLY)
    def similar_papers(ctx: Context, paper_id: PaperId,
                       limit: Annotated[int, Field(ge=1, le=20, description="How many (1 to 20).")] = 5,
                       ) -> dict:
        """The papers nearest in meaning to one paper (by their embeddings), as its page shows them."""
        from dailypapers.web.pages import similar_papers as nearest  # the page's, with its cache

        row = paper_row(paper_id)
        rows = nearest(None, engine, row, limit)
        out = {"paper": row["id"], "papers": [brief(ctx, r) for r in rows]}
        if not rows:
            out["note"] = ("No similar papers: this paper has no embedding yet (the site computes them with "
                           "`dailypapers embed`).")
        return out

    @server.tool()
    def my_saved_papers(ctx: Context, limit: Limit = 50) -> dict:
        """The reader's saved papers, last saved first (needs the reader's API token)."""
        user = reader(ctx, "my_saved_papers")
        rows = saved_list.saved_papers(engine, user["pk"])
        return {"user": user["username"], "total": len(rows),
                "papers": [brief(ctx, r) | {"savedAt": shape.iso(r["saved_at"])} for r in rows[:limit]]}

    @server.tool(annotations=ToolAnnotations(idempotentHint=True, openWorldHint=False))
    def upvote_paper(ctx: Context, paper_id: PaperId,
                     undo: Annotated[bool, Field(description="Take the upvote back instead.")] = False,
                     ) -> dict:
        """Upvote a paper as the reader (needs the reader's API token), or take the upvote back with
        undo. Upvoting twice keeps one vote. Returns whether the reader's vote is on, and the count."""
        user = reader(ctx, "upvote_paper")
        row = paper_row(paper_id)
        voted = row["id"] in community.has_voted(engine, user["pk"], [row["id"]])
        upvotes = row["upvotes"]
        if voted == undo:  # the toggle moves it the way asked
            try:
                voted, upvotes = community.toggle_upvote(engine, user["pk"], row["id"])
            except community.NotFound as exc:
                raise ToolError(exc.message) from None
        return {"paper": row["id"], "voted": voted, "upvotes": upvotes, "url": links(ctx, row["id"])["url"]}

    return server
