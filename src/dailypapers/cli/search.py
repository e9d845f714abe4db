"""`dailypapers search`: the same search the site runs, for a terminal or a script."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dailypapers.cli.common import fail, open_store, parse_day, settings_or_fail
from dailypapers.search.filters import SORTS, Filters




def load_query_embedder():  # noqa: ANN201
    """The configured embedder, or None (text search only) with a warning when it cannot load."""
    from dailypapers.search.embedder import load_embedder

    settings = settings_or_fail()
    if settings.embedding_runtime == "off":
        return None
    try:
        return load_embedder(settings.embedding_model, settings.embedding_runtime, settings.embedding_device,
                             cache_dir=settings.data_dir / "models")
    except (ValueError, OSError, ImportError) as exc:
        typer.echo(f"warning: searching by text only: {exc}", err=True)
        return None


def result_json(hit) -> dict:  # noqa: ANN001
    p = hit.paper
    return {
        "id": p["id"], "title": p["title"], "score": round(hit.score, 6),
        "numAuthors": p["num_authors"], "organization": p.get("organization_fullname") or p.get("organization_name"),
        "publishedAt": p["published_at"].isoformat() if p["published_at"] else None,
        "upvotes": p["upvotes"], "githubRepo": p["github_repo"],
    }


def result_lines(n: int, hit) -> str:  # noqa: ANN001
    p = hit.paper
    names = [a["name"] for a in p["authors"]]
    if names:
        meta = [", ".join(names[:3]) + (" et al." if len(names) > 3 else "")]
    else:
        meta = [f"{p['num_authors']} author{'' if p['num_authors'] == 1 else 's'}"] if p["num_authors"] else []
    if p.get("organization_fullname") or p.get("organization_name"):
        meta.append(p.get("organization_fullname") or p.get("organization_name"))
    if p["published_at"]:
        meta.append(p["published_at"].strftime("%b %-d, %Y"))
    meta += [f"▲ {p['upvotes']}", p["id"]]
    return f"{n:>3}. {p['title']}\n     {' · '.join(meta)}"


def search(
    query: str = typer.Argument(None, help='Words, "a phrase", -excluded, author:name, cat:cs.LG, or an arXiv id.'),
    since: str | None = typer.Option(None, help="Published on or after (YYYY-MM-DD)."),
    until: str | None = typer.Option(None, help="Published on or before (YYYY-MM-DD)."),
    cat: list[str] = typer.Option([], "--cat", help="arXiv category (repeatable); 'cs' means every cs.* category."),
    org: str | None = typer.Option(None, help="Organization handle, e.g. facebook."),
    has_code: bool | None = typer.Option(None, "--has-code/--no-code", help="Only papers with (or without) code."),
    sort: str = typer.Option("relevance", help=f"One of: {', '.join(SORTS)}."),
    limit: int = typer.Option(10, min=1, max=1000, help="How many results."),
    as_json: bool = typer.Option(False, "--json", help='Print {"results": [...]}.'),
    queries: Path | None = typer.Option(None, help="Batch mode: a TSV of query_id<TAB>query; one JSON line each."),
    text_only: bool = typer.Option(False, "--text-only", help="Skip semantic search (no model loading)."),
) -> None:
    """Search papers by words and by meaning."""
    from dailypapers.search.backends import upkeep
    from dailypapers.search.hybrid import BLANK_QUERY
    from dailypapers.search.hybrid import search as run_search

    if sort not in SORTS:
        fail(f"--sort {sort!r}: use one of {', '.join(SORTS)}")
    if (query is None) == (queries is None):
        fail("give a query, or --queries FILE.tsv (not both)")
    filters = Filters(since=parse_day(since, "--since"), until=parse_day(until, "--until"), categories=tuple(cat),
                      organization=org, has_code=has_code)
    engine = open_store()
    upkeep(engine)  # this machine's indexes (PostgreSQL's text side lives per machine) catch up first
    embedder = None if text_only else load_query_embedder()
    if queries is not None:
        if not queries.is_file():
            fail(f"{queries}: no such file")
        for n, line in enumerate(queries.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            query_id, tab, text = line.partition("\t")
            if not tab:
                fail(f"{queries}: line {n}: expected query_id<TAB>query")
            page = run_search(engine, text, filters=filters, sort=sort, limit=limit, embedder=embedder)
            typer.echo(json.dumps({"query_id": query_id, **page_json(page)}))
        return
    page = run_search(engine, query, filters=filters, sort=sort, limit=limit, embedder=embedder)
    if page.blank:  # the same answer as the site's and the API's
        fail(BLANK_QUERY, code=2)
    if as_json:
        typer.echo(json.dumps({"query": query, "paper_id": page.paper_id, **page_json(page)}))
        return
    if page.missing_id:
        typer.echo(f"arXiv:{page.missing_id} is not stored here. Add it with: "
                   f"dailypapers ingest arxiv {page.missing_id}", err=True)
        return
    if not page.hits:
        typer.echo("No papers match. Try fewer words, or check the spelling.", err=True)
        if page.nearest:
            typer.echo("Nearest by meaning (not matches):")
            for n, hit in enumerate(page.nearest, 1):
                typer.echo(result_lines(n, hit))
        return
    typer.echo(f"{page.total}{'+' if page.more else ''} papers match", err=True)
    for n, hit in enumerate(page.hits, 1):
        typer.echo(result_lines(n, hit))


def page_json(page) -> dict:  # noqa: ANN001
    """What --json prints of a search page (besides the query)."""
    from dailypapers.search.hybrid import BLANK_QUERY

    out = {"total": page.total, "results": [result_json(h) for h in page.hits]}
    if page.blank:
        out["error"] = BLANK_QUERY
    if page.missing_id:
        out["missing_id"] = page.missing_id
    if page.nearest:
        out["nearest"] = [result_json(h) for h in page.nearest]
    return out
