"""RSS and Atom: the daily list and any search, for feed readers."""

from __future__ import annotations

import datetime
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from feedgen.feed import FeedGenerator

from dailypapers import tex
from dailypapers.search.hybrid import search
from dailypapers.store import queries
from dailypapers.web import periods
from dailypapers.web.deps import one_search_at_a_time
from dailypapers.web.inputs import NoNul
from dailypapers.web.pages import parse_filters
from dailypapers.web.periods import PeriodError

TYPES = {"rss": "application/rss+xml", "atom": "application/atom+xml"}
FEED = {200: {"description": "The feed", "content": {media: {} for media in TYPES.values()}},
        400: {"description": "A parameter is invalid; the message names it."},
        404: {"description": "Feeds end in .rss or .atom."}}
router = APIRouter(prefix="/feeds", default_response_class=Response, responses=FEED, dependencies=[NoNul])


def _check_kind(kind: str) -> None:
    if kind not in TYPES:
        raise HTTPException(404, "Feeds end in .rss or .atom")


def _feed(request: Request, title: str, link: str, rows: list[dict], kind: str) -> Response:
    base = request.app.state.base_url(request)
    fg = FeedGenerator()
    fg.id(base + link)
    fg.title(title)
    fg.link(href=base + link, rel="alternate")
    fg.link(href=str(request.url), rel="self")
    fg.description("dailypapers: " + title)
    fg.language("en")
    for row in reversed(rows):  # feedgen puts the last added first
        entry = fg.add_entry()
        url = f"{base}/papers/{row['id']}"
        entry.id(url)
        entry.title(tex.to_text(row["title"]))
        entry.link(href=url)
        entry.description(tex.to_text(row["summary"]))
        for author in row["authors"][:20]:
            entry.author(name=author["name"])
        stamp = row.get("submitted_on_daily_at") or row.get("published_at")
        if stamp:
            entry.published(stamp.replace(tzinfo=datetime.timezone.utc))
            entry.updated(stamp.replace(tzinfo=datetime.timezone.utc))
    body = fg.rss_str(pretty=True) if kind == "rss" else fg.atom_str(pretty=True)
    return Response(body, media_type=TYPES[kind])


@router.get("/daily.{kind}", summary="The daily papers as RSS or Atom")
def daily(request: Request, kind: str, date: str | None = None) -> Response:
    _check_kind(kind)
    engine = request.app.state.engine
    try:
        period = periods.day(date or queries.latest_daily_date(engine) or datetime.date.today())
    except PeriodError as exc:
        raise HTTPException(400, f"date: {exc}") from None
    rows, _ = queries.feed(engine, period.start, period.end, limit=100)
    return _feed(request, f"Daily Papers — {period.label}", f"/papers/date/{period.slug}", rows, kind)


@router.get("/search.{kind}", summary="A search as RSS or Atom")
async def search_feed(request: Request, kind: str, q: str = "") -> Response:
    _check_kind(kind)  # bad requests are answered before the search queue
    if len(q) > 10_000:
        raise HTTPException(400, "q: a query has at most 10,000 characters")
    filters = parse_filters(request)

    def feed() -> Response:
        page = search(request.app.state.engine, q, filters=filters, sort="newest", limit=50,
                      embedder=request.app.state.embedder())
        link = "/search?" + urlencode({"q": q})
        return _feed(request, f"Papers matching {q!r}", link, [h.paper for h in page.hits], kind)

    return await one_search_at_a_time(request, feed)
