"""The JSON API, shaped like the Hugging Face papers API: change the base URL and scripts work."""

from __future__ import annotations

import datetime

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from dailypapers import accounts, community, recommend
from dailypapers.search.hybrid import BLANK_QUERY, search
from dailypapers.search.query import parse_query
from dailypapers.store import queries
from dailypapers.store.schema import papers
from dailypapers.web import periods, shape
from dailypapers.web.deps import Db, one_search_at_a_time
from dailypapers.web.inputs import NoNul
from dailypapers.web.periods import PeriodError

class ApiError(BaseModel):
    error: str = Field(description="What was wrong, in a sentence.")


ERRORS = {status: {"model": ApiError, "description": text} for status, text in (
    (400, "A parameter is invalid; the message names it."), (401, "An API token is needed."),
    (404, "No such paper."), (429, "Too many requests; see Retry-After."))}
router = APIRouter(prefix="/api", tags=["papers"], responses=ERRORS, dependencies=[NoNul])


def _period(date: str | None, week: str | None, month: str | None, engine) -> periods.Period:  # noqa: ANN001
    given = [(name, value) for name, value in (("date", date), ("week", week), ("month", month)) if value]
    if len(given) > 1:
        raise HTTPException(400, "give only one of date, week and month")
    try:
        if not given:
            return periods.day(queries.latest_daily_date(engine) or datetime.date.today())
        name, value = given[0]
        return {"date": periods.day, "week": periods.week, "month": periods.month}[name](value)
    except PeriodError as exc:
        raise HTTPException(400, f"{given[0][0]}: {exc}") from None


@router.get("/daily_papers", summary="Papers on the daily feed of a day, week or month")
def daily_papers(
    engine: Db,
    date: str | None = Query(None, description="YYYY-MM-DD (years 1991 to 9998); default the latest day "
                                               "with papers"),
    week: str | None = Query(None, description="ISO week, e.g. 2025-W09"),
    month: str | None = Query(None, description="YYYY-MM"),
    submitter: str | None = Query(None, max_length=100, description="Username of who put papers on the feed"),
    sort: str = Query("publishedAt", pattern="^(publishedAt|trending)$"),
    p: int = Query(0, ge=0, le=100_000, description="Page, from 0"),
    limit: int = Query(50, ge=1, le=100),
) -> list[dict]:
    period = _period(date, week, month, engine)
    rows, _ = queries.feed(engine, period.start, period.end, sort=sort, limit=limit, offset=p * limit,
                           submitter=submitter)
    counts = community.comment_counts(engine, [r["id"] for r in rows])
    return [shape.daily_item(r, counts.get(r["id"], 0)) for r in rows]


@router.get("/papers/search", summary="Search papers by words and by meaning")
async def search_papers(request: Request, engine: Db, q: str = Query(..., max_length=10_000),
                        limit: int = Query(20, ge=1, le=100)) -> list[dict]:
    if (asked := parse_query(q)).empty and not asked.arxiv_id:  # as the site and the CLI answer
        raise HTTPException(400, f"q: {BLANK_QUERY}")

    def found() -> list[dict]:
        page = search(engine, q, limit=limit, embedder=request.app.state.embedder())
        rows = [h.paper for h in page.hits]
        counts = community.comment_counts(engine, [r["id"] for r in rows])
        return [shape.daily_item(r, counts.get(r["id"], 0)) for r in rows]

    return await one_search_at_a_time(request, found)


@router.get("/papers", summary="Every paper, the last arrived first, a page at a time")
def list_papers(request: Request, response: Response, engine: Db,
                cursor: str | None = Query(None, max_length=20, description="From a previous page's Link header"),
                limit: int = Query(50, ge=1, le=100)) -> list[dict]:
    before = None
    if cursor is not None:
        if not cursor.isdigit() or not 0 < int(cursor) < 2**63:
            raise HTTPException(400, "cursor: not one this site gave; start without it")
        before = int(cursor)
    rows = queries.papers_after(engine, before, limit)
    if len(rows) == limit:  # as the Hub paginates: the next page's URL in a Link header
        url = f"{request.app.state.base_url(request)}/api/papers?cursor={rows[-1]['pk']}&limit={limit}"
        response.headers["Link"] = f'<{url}>; rel="next"'
    counts = community.comment_counts(engine, [r["id"] for r in rows])
    return [shape.paper(r, counts.get(r["id"], 0)) for r in rows]


@router.get("/papers/{paper_id:path}", summary="One paper (the API equivalent of the paper page)")
def paper(paper_id: str, engine: Db) -> dict:
    row = queries.paper(engine, paper_id)
    if row is None:
        raise HTTPException(404, f"There is no paper {paper_id[:80]!r} here.")
    return shape.paper(row, community.comment_counts(engine, [paper_id]).get(paper_id, 0))


def _token_user(engine, authorization: str | None) -> dict:  # noqa: ANN001
    scheme, _, token = (authorization or "").partition(" ")
    user = accounts.token_user(engine, token.strip()) if scheme.lower() == "bearer" and token else None
    if user is None:
        raise HTTPException(401, "Send your personal API token: Authorization: Bearer <token> (see /account).")
    return user


@router.get("/recommendations", summary="Your recommendations, best first (with a followed paper in every "
                                        "five), each with its reason (Authorization: Bearer <API token>)")
def recommendations(engine: Db, authorization: str | None = Header(None),
                    limit: int = Query(50, ge=1, le=recommend.CACHED)) -> list[dict]:
    user = _token_user(engine, authorization)
    found = recommend.for_reader(engine, user["pk"], limit=limit)
    with engine.connect() as conn:
        pks = conn.execute(select(papers.c.pk).where(papers.c.id.in_([r.paper_id for r in found]))).scalars()
        rows = {r["id"]: r for r in queries.papers_by_pk(engine, list(pks))}
    counts = community.comment_counts(engine, list(rows))
    return [{"paper": shape.paper(rows[r.paper_id], counts.get(r.paper_id, 0)), "score": r.score,
             "because": r.because, "becausePaperId": r.because_paper_id}
            for r in found if r.paper_id in rows]


@router.post("/papers/{paper_id:path}/upvote", summary="Toggle your upvote (Authorization: Bearer <API token>)")
def upvote(paper_id: str, engine: Db, authorization: str | None = Header(None)) -> dict:
    user = _token_user(engine, authorization)
    try:
        voted, upvotes = community.toggle_upvote(engine, user["pk"], paper_id)
    except community.NotFound as exc:
        raise HTTPException(404, exc.message) from None
    return {"voted": voted, "upvotes": upvotes}
