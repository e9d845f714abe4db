"""The HTML pages: feeds by day, week and month, trending, search, a paper, an organization."""

from __future__ import annotations

import functools
from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from dailypapers import community, follows, recommend
from dailypapers.collections import saved as saved_list
from dailypapers.bibtex import bibtex
from dailypapers.search.filters import SORTS, Filters
from dailypapers.search.hybrid import BLANK_QUERY, MAX_RESULTS, search
from dailypapers.store import queries
from dailypapers.web import periods, shape
from dailypapers.web.deps import Db, User, one_search_at_a_time, render
from dailypapers.web.inputs import NoNul
from dailypapers.web.pagecache import cached_page, kept, kept_copy
from dailypapers.web.periods import Period, PeriodError

router = APIRouter(dependencies=[NoNul])
PAGE_SIZE = 30
MAX_CATEGORIES = 20  # cat= given more often is a 400 (each is one more condition in the query)
LAST_PAGE = MAX_RESULTS // PAGE_SIZE


def decorate(engine, user: dict | None, rows: list[dict]) -> list[dict]:  # noqa: ANN001
    """Add what a card shows beyond the row: comment count, and the viewer's vote and save."""
    ids = [r["id"] for r in rows]
    counts = community.comment_counts(engine, ids)
    voted = community.has_voted(engine, user["pk"] if user else None, ids)
    saved = saved_list.saved_ids(engine, user["pk"] if user else None, ids)
    dismissed = follows.dismissed_ids(engine, user["pk"] if user else None, ids)
    for r in rows:
        r |= {"num_comments": counts.get(r["id"], 0), "voted": r["id"] in voted, "saved": r["id"] in saved,
              "dismissed": r["id"] in dismissed}
    return rows


def _period(kind: str, value: str) -> Period:
    try:
        return {"date": periods.day, "week": periods.week, "month": periods.month}[kind](value)
    except PeriodError as exc:
        raise HTTPException(400, str(exc)) from None


def feed_page(request: Request, engine, user, period: Period | None) -> HTMLResponse:  # noqa: ANN001
    if period is None:
        latest = queries.latest_daily_date(engine)
        period = periods.day(latest or date.today())
    sort = request.query_params.get("sort", "upvotes")
    if sort not in ("upvotes", "publishedAt", "trending"):
        raise HTTPException(400, f"sort must be upvotes, publishedAt or trending, not {sort[:40]!r}")
    followed_only = request.query_params.get("followed") == "1"
    if followed_only and user is None:
        raise HTTPException(401, "Sign in to see only what you follow.")
    where = (follows.followed_condition(engine, user["pk"]),) if followed_only else ()
    rows, total = queries.feed(engine, period.start, period.end, sort=sort, limit=500, where=where)
    before = after = None
    if period.kind == "day":
        before, after = queries.neighbour_days(engine, period.start)
    return render(request, "feed.html", {
        "period": period, "papers": decorate(engine, user, rows), "total": total, "sort": sort,
        "before": before, "after": after, "previous": period.shifted(-1), "next": period.shifted(1),
        "followed_only": followed_only,
    })


@router.get("/", response_class=HTMLResponse)
@kept
def home(request: Request, engine: Db, user: User) -> HTMLResponse:
    """The For-you page for a signed-in reader who has signals; the latest day's feed otherwise."""
    if user is not None and not request.query_params and recommend.has_signals(engine, user["pk"]):
        from dailypapers.web.foryou import for_you_page

        return for_you_page(request, engine, user)
    return feed_page(request, engine, user, None)


@router.get("/daily", response_class=HTMLResponse)
@kept
def daily(request: Request, engine: Db, user: User) -> HTMLResponse:
    """The latest day's feed, for everyone (the daily tab)."""
    return feed_page(request, engine, user, None)


@router.get("/papers/date/{value}", response_class=HTMLResponse)
@kept
def by_day(request: Request, value: str, engine: Db, user: User) -> HTMLResponse:
    return feed_page(request, engine, user, _period("date", value))


@router.get("/papers/week/{value}", response_class=HTMLResponse)
@kept
def by_week(request: Request, value: str, engine: Db, user: User) -> HTMLResponse:
    return feed_page(request, engine, user, _period("week", value))


@router.get("/papers/month/{value}", response_class=HTMLResponse)
@kept
def by_month(request: Request, value: str, engine: Db, user: User) -> HTMLResponse:
    return feed_page(request, engine, user, _period("month", value))


@router.get("/trending", response_class=HTMLResponse)
@kept
def trending(request: Request, engine: Db, user: User) -> HTMLResponse:
    rows = queries.trending(engine, limit=PAGE_SIZE)
    return render(request, "trending.html", {"papers": decorate(engine, user, rows)})


def parse_filters(request: Request) -> Filters:
    """Filters from the query string; a bad value is a 400 that names it."""
    params = request.query_params

    def day_param(name: str) -> date | None:
        value = params.get(name) or None
        if value is None:
            return None
        try:
            return periods.day(value).start
        except PeriodError as exc:
            raise HTTPException(400, f"{name}: {exc}") from None

    has_code = params.get("has_code") or None
    if has_code not in (None, "1", "0", "true", "false"):
        raise HTTPException(400, "has_code must be 1 or 0")
    categories = tuple(c.strip() for c in params.getlist("cat") if c.strip())
    if len(categories) > MAX_CATEGORIES:
        raise HTTPException(400, f"cat: at most {MAX_CATEGORIES} categories, not {len(categories):,}")
    if any(len(c) > 50 for c in categories):
        raise HTTPException(400, "cat: a category has at most 50 characters")
    return Filters(since=day_param("since"), until=day_param("until"), categories=categories,
                   organization=(params.get("org") or None), has_code=None if has_code is None
                   else has_code in ("1", "true"))


@router.get("/search", response_class=HTMLResponse)
async def search_page(request: Request, engine: Db, user: User) -> Response:
    # Bad requests are answered, and the empty form is shown, without waiting behind searches.
    q = request.query_params.get("q", "")
    sort = request.query_params.get("sort", "relevance")
    if sort not in SORTS:
        raise HTTPException(400, f"sort must be one of {', '.join(SORTS)}")
    try:
        page_number = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        raise HTTPException(400, "page must be a number") from None
    if page_number > LAST_PAGE:
        raise HTTPException(400, f"page: search results go no further than page {LAST_PAGE}")
    filters = parse_filters(request)
    args = (request, engine, user, q, sort, page_number, filters)
    if not q.strip() and not filters.active:
        return await run_in_threadpool(_search_page, *args)
    # Readers who are not signed in share kept pages (web/pagecache.py): a search just made by
    # anyone is served without waiting for a turn.
    if user is None and (copy := await run_in_threadpool(kept_copy, request, engine)) is not None:
        return copy
    return await one_search_at_a_time(request, cached_page, request, engine, user,
                                      functools.partial(_search_page, *args))


def _search_page(request: Request, engine, user: dict | None, q: str, sort: str,  # noqa: ANN001
                 page_number: int, filters: Filters) -> Response:
    results = None
    # "q" given but with nothing to search for: say so, as the API and the CLI do.
    blank = "q" in request.query_params and not q.strip() and not filters.active
    if q.strip() or filters.active:
        results = search(engine, q, filters=filters, sort=sort, limit=PAGE_SIZE,
                         offset=(page_number - 1) * PAGE_SIZE, embedder=request.app.state.embedder())
        if results.paper_id:
            return RedirectResponse(f"/papers/{results.paper_id}", status_code=303)
        decorate(engine, user, [h.paper for h in results.hits + results.nearest])
        blank, results = (True, None) if results.blank else (False, results)

    def page_url(n: int) -> str:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"] + [("page", str(n))]
        return "/search?" + urlencode(params)

    more = results is not None and results.total > page_number * PAGE_SIZE
    return render(request, "search.html", {
        "q": q, "sort": sort, "sorts": SORTS, "filters": filters, "results": results,
        "blank_message": BLANK_QUERY if blank else None,
        "prev_url": page_url(page_number - 1) if results is not None and page_number > 1 else None,
        "next_url": page_url(page_number + 1) if more else None})


def similar_papers(request: Request, engine, row: dict, limit: int = 5) -> list[dict]:  # noqa: ANN001, ARG001
    """The papers most like this one: the recommender's, as for a one-paper library (its nearest
    by embedding and what its readers also saved), cached there per paper until a version moves."""
    return queries.papers_by_pk(engine, recommend.similar_to(engine, row["pk"], limit))


SUBMITTED = {"fetched": "Fetched from arXiv and put on today's feed. Thank you!",
             "added": "Put on today's feed. Thank you!",
             "already": "This paper was already on the feed; it stays on its first day."}


def comments_page_number(request: Request, count: int) -> int:
    """The ``comments`` page asked for (1 by default); a 400 for one that does not exist."""
    value = request.query_params.get("comments", "1")
    last = community.comment_pages(count)
    if not (value.isascii() and value.isdigit() and len(value) < 10 and 1 <= int(value) <= last):
        raise HTTPException(400, f"comments: a page from 1 to {last}, not {value[:40]!r}")
    return int(value)


def paper_context(request: Request, engine, user: dict | None, row: dict,  # noqa: ANN001
                  page: int = 1) -> dict:
    """What paper.html shows: the paper, one page of its comments, similar papers, BibTeX."""
    if "num_comments" not in row:  # the paper page has it already
        decorate(engine, user, [row])
    count = row["num_comments"]

    def page_url(n: int) -> str:
        return f"/papers/{row['id']}?comments={n}#comments"

    return {"paper": row, "comments": community.list_comments(engine, row["id"], page=page),
            "comment_count": count, "comment_page": page,
            "comments_prev": page_url(page - 1) if page > 1 else None,
            "comments_next": page_url(page + 1) if page < community.comment_pages(count) else None,
            "similar": similar_papers(request, engine, row), "bibtex": bibtex([row]),
            "page_url": f"{request.app.state.base_url(request)}/papers/{row['id']}",
            "submitted": SUBMITTED.get(request.query_params.get("submitted", ""))}


@router.get("/papers/{paper_id:path}", response_class=HTMLResponse)
@kept
def paper_page(request: Request, paper_id: str, engine: Db, user: User) -> Response:
    if paper_id.endswith((".bib", ".md")):
        stem, kind = paper_id.rsplit(".", 1)
        row = queries.paper(engine, stem)
        if row is None:
            raise HTTPException(404, f"There is no paper {stem[:80]!r} here.")
        if kind == "md":
            return PlainTextResponse(shape.markdown(row), media_type="text/markdown; charset=utf-8")
        return PlainTextResponse(bibtex([row]), media_type="application/x-bibtex")
    row = queries.paper(engine, paper_id, include_hidden=bool(user and user["is_admin"]))
    if row is None:
        raise HTTPException(404, f"There is no paper {paper_id[:80]!r} here. Submit it by its arXiv id?")
    decorate(engine, user, [row])
    return render(request, "paper.html",
                  paper_context(request, engine, user, row, comments_page_number(request, row["num_comments"])))


@router.get("/orgs/{name}", response_class=HTMLResponse)
@kept
def organization_page(request: Request, name: str, engine: Db, user: User) -> HTMLResponse:
    org = queries.organization(engine, name)
    if org is None:
        raise HTTPException(404, f"There is no organization {name[:80]!r} here.")
    rows = queries.organization_papers(engine, org["pk"], limit=100)
    return render(request, "org.html", {"org": org, "papers": decorate(engine, user, rows)})
