"""State-changing requests from the pages: upvote, save, comment, submit, moderate.

Each works as a plain form post (then redirects back) and as a script request (then answers JSON).
"""

from __future__ import annotations

from urllib.parse import urlparse

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from dailypapers import community
from dailypapers.bibtex import bibtex
from dailypapers.sources.arxiv_api import fetch_papers
from dailypapers.store import queries
from dailypapers.web.deps import Admin, Csrf, Db, SignedIn, render

router = APIRouter(dependencies=[Csrf])


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
    saved = _community_call(community.toggle_saved, engine, user["pk"], paper_id)
    if wants_json(request):
        return JSONResponse({"saved": saved})
    return back(request, f"/papers/{paper_id}")


@router.post("/papers/{paper_id:path}/comments")
def comment(request: Request, paper_id: str, engine: Db, user: SignedIn, body: str = Form("")) -> Response:
    try:
        community.add_comment(engine, user["pk"], paper_id, body)
    except community.NotFound as exc:
        raise HTTPException(404, exc.message) from None
    except community.CommunityError as exc:
        from dailypapers.web.pages import decorate, similar_papers

        row = queries.paper(engine, paper_id)
        decorate(engine, user, [row])
        return render(request, "paper.html", {
            "paper": row, "comments": community.list_comments(engine, paper_id), "similar": similar_papers(
                request, engine, row), "bibtex": bibtex([row]), "comment_error": exc.message,
            "comment_body": body}, status_code=400)
    return RedirectResponse(f"/papers/{paper_id}#comments", status_code=303)


@router.post("/comments/{comment_pk}/edit")
def edit_comment(request: Request, comment_pk: int, engine: Db, user: SignedIn, body: str = Form("")) -> Response:
    _community_call(community.edit_comment, engine, user["pk"], comment_pk, body)
    return back(request, "/")


@router.post("/comments/{comment_pk}/delete")
def delete_comment(request: Request, comment_pk: int, engine: Db, user: SignedIn) -> Response:
    _community_call(community.delete_comment, engine, user["pk"], comment_pk)
    return back(request, "/")


@router.post("/comments/{comment_pk}/hide")
def hide_comment(request: Request, comment_pk: int, engine: Db, admin: Admin) -> Response:
    _community_call(community.hide_comment, engine, comment_pk)
    return back(request, "/")


@router.post("/papers/{paper_id:path}/hide")
def hide_paper(request: Request, paper_id: str, engine: Db, admin: Admin, hidden: str = Form("1")) -> Response:
    _community_call(community.hide_paper, engine, paper_id, hidden == "1")
    return RedirectResponse(f"/papers/{paper_id}", status_code=303)


@router.post("/submit")
def submit(request: Request, engine: Db, user: SignedIn, paper: str = Form("")) -> Response:
    settings = request.app.state.settings
    fetch = lambda ids: fetch_papers(ids, base_url=settings.arxiv_api_url, delay=0)  # noqa: E731
    try:
        paper_id, _ = community.submit_paper(engine, paper, user["pk"], fetch=fetch)
    except community.CommunityError as exc:
        return render(request, "submit.html", {"error": exc.message, "value": paper}, status_code=400)
    return RedirectResponse(f"/papers/{paper_id}", status_code=303)
