"""State-changing requests from the pages: upvote, save, comment, submit, moderate.

Each works as a plain form post (then redirects back) and as a script request (then answers JSON).
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Form, HTTPException, Path, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from dailypapers import community, jobs, throttle
from dailypapers.collections import saved as saved_list
from dailypapers.sources.arxiv_api import ArxivApiError, fetch_papers
from dailypapers.store import queries
from dailypapers.web.deps import Admin, Csrf, Db, SignedIn, render
from dailypapers.web.inputs import NoNul

router = APIRouter(dependencies=[Csrf, NoNul])
CommentPk = Annotated[int, Path(ge=1, le=2**31 - 1)]  # what both databases' integer keys hold
COMMENT_LIMITS = ("5/minute", "100/day")  # comments and edits, per user
SUBMIT_LIMITS = ("5/minute", "50/day")  # submissions, per user
ARXIV_TIMEOUT = 10.0  # seconds for one answer from arXiv; one retry
ARXIV_MAX_WAIT = 6.0  # seconds a submission waits for its turn at arXiv (two others) before giving up
SUBMITS_AT_ONCE = 2  # submissions a worker process fetches at once; more are asked to come back
_submitting = threading.BoundedSemaphore(SUBMITS_AT_ONCE)


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def back(request: Request, fallback: str) -> RedirectResponse:
    """Redirect to the page the form was on (same site only)."""
    referer = urlparse(request.headers.get("referer", ""))
    target = referer.path + (f"?{referer.query}" if referer.query else "") if referer.path.startswith("/") and (
        not referer.netloc or referer.netloc == request.url.netloc) else fallback
    return RedirectResponse(target or fallback, status_code=303)


def _community_call(fn, *args):  # noqa: ANN001, ANN002, ANN202
    try:
        return fn(*args)
    except community.NotFound as exc:
        raise HTTPException(404, exc.message) from None
    except community.Forbidden as exc:
        raise HTTPException(403, exc.message) from None
    except community.CommunityError as exc:
        raise HTTPException(400, exc.message) from None


@router.post("/papers/{paper_id:path}/upvote")
def upvote(request: Request, paper_id: str, engine: Db, user: SignedIn) -> Response:
    voted, upvotes = _community_call(community.toggle_upvote, engine, user["pk"], paper_id)
    if wants_json(request):
        return JSONResponse({"voted": voted, "upvotes": upvotes})
    return back(request, f"/papers/{paper_id}")


@router.post("/papers/{paper_id:path}/save")
def save(request: Request, paper_id: str, engine: Db, user: SignedIn) -> Response:
    saved = _community_call(saved_list.toggle_saved, engine, user["pk"], paper_id)
    if wants_json(request):
        return JSONResponse({"saved": saved})
    return back(request, f"/papers/{paper_id}")


@router.post("/papers/{paper_id:path}/comments")
def comment(request: Request, paper_id: str, engine: Db, user: SignedIn, body: str = Form("")) -> Response:
    from dailypapers.web.pages import paper_context

    try:
        throttle.hit(engine, f"comment:user:{user['pk']}", *COMMENT_LIMITS)
        community.add_comment(engine, user["pk"], paper_id, body)
    except community.NotFound as exc:
        raise HTTPException(404, exc.message) from None
    except (community.CommunityError, throttle.Throttled) as exc:
        row = queries.paper(engine, paper_id)
        if row is None:
            raise HTTPException(404, f"There is no paper {paper_id[:80]!r} here.") from None
        context = paper_context(request, engine, user, row, community.comment_pages(
            community.comment_counts(engine, [paper_id])[paper_id]))
        status = 429 if isinstance(exc, throttle.Throttled) else 400
        context |= {"comment_error": exc.message, "comment_body": body}
        response = render(request, "paper.html", context, status_code=status)
        if status == 429:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    last = community.comment_pages(community.comment_counts(engine, [paper_id])[paper_id])
    return RedirectResponse(f"/papers/{paper_id}?comments={last}#comments", status_code=303)


@router.post("/comments/{comment_pk}/edit")
def edit_comment(request: Request, comment_pk: CommentPk, engine: Db, user: SignedIn,
                 body: str = Form("")) -> Response:
    throttle.hit(engine, f"comment:user:{user['pk']}", *COMMENT_LIMITS)  # each edit renders Markdown anew
    _community_call(community.edit_comment, engine, user["pk"], comment_pk, body)
    return back(request, "/")


@router.post("/comments/{comment_pk}/delete")
def delete_comment(request: Request, comment_pk: CommentPk, engine: Db, user: SignedIn) -> Response:
    _community_call(community.delete_comment, engine, user["pk"], comment_pk)
    return back(request, "/")


@router.post("/comments/{comment_pk}/hide")
def hide_comment(request: Request, comment_pk: CommentPk, engine: Db, admin: Admin) -> Response:
    _community_call(community.hide_comment, engine, comment_pk)
    return back(request, "/")


@router.post("/papers/{paper_id:path}/hide")
def hide_paper(request: Request, paper_id: str, engine: Db, admin: Admin, hidden: str = Form("1")) -> Response:
    _community_call(community.hide_paper, engine, paper_id, hidden == "1")
    return RedirectResponse(f"/papers/{paper_id}", status_code=303)


def _arxiv(engine, settings):  # noqa: ANN001, ANN202
    """``fetch_papers`` for a request: a short timeout, one retry, and arXiv's spacing kept by every
    worker and machine (the turns are taken in the database)."""
    def my_turn() -> None:
        wait = throttle.wait_turn(engine, "arxiv", settings.request_delay)
        if wait > ARXIV_MAX_WAIT:
            raise ArxivApiError("arXiv is busy with other requests from this site")
        time.sleep(wait)

    return partial(fetch_papers, base_url=settings.arxiv_api_url, timeout=ARXIV_TIMEOUT, max_retries=1,
                   delay=0, sleep=lambda _: None, before_request=my_turn)


@router.post("/submit")
def submit(request: Request, engine: Db, user: SignedIn, paper: str = Form("")) -> Response:
    def form(message: str, status: int) -> Response:
        return render(request, "submit.html", {"error": message, "value": paper}, status_code=status)

    try:
        throttle.hit(engine, f"submit:user:{user['pk']}", *SUBMIT_LIMITS)
    except throttle.Throttled as exc:
        response = form(exc.message, 429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if not _submitting.acquire(blocking=False):
        return form("Other submissions are being fetched from arXiv right now; try again in a minute.", 503)
    try:
        settings = request.app.state.settings
        done = community.submit_paper(engine, paper, user["pk"], fetch=_arxiv(engine, settings),
                                      after_ingest=partial(jobs.after_ingest, engine, settings, defer=True))
    except community.SubmissionError as exc:
        status = {community.ArxivUnavailable: 503, community.NotOnArxiv: 404}.get(type(exc), 400)
        return form(exc.message, status)
    finally:
        _submitting.release()
    outcome = "already" if done.already_on_feed else "fetched" if done.fetched else "added"
    return RedirectResponse(f"/papers/{done.paper_id}?submitted={outcome}", status_code=303)
