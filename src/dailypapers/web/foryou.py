"""For you on the site: follows, "not interested", an author's papers, and the reader's recommendations.

The work is in dailypapers.follows and dailypapers.recommend. Like web/actions.py, every signal is a
plain form post (then a redirect back) or a script request (then JSON); a reader who is not signed
in is sent to the sign-in page (a script gets a 401).
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from dailypapers import follows, recommend
from dailypapers.store import queries
from dailypapers.web.actions import back, wants_json
from dailypapers.web.deps import TEMPLATES, Csrf, Db, User, current_user, render
from dailypapers.web.inputs import NoNul

router = APIRouter(dependencies=[NoNul])
PAGE_SIZE = 30
LAST_PAGE = 1000  # /authors pages: an offset further on is refused rather than scanned
RECOMMENDED = 50  # cards on /for-you
ONBOARDING_CATEGORIES = 40  # categories offered to a new reader, most papers first


def _sign_in_first(request: Request, page: str) -> Response:
    if wants_json(request):
        return JSONResponse({"error": "Sign in to do that."}, status_code=401)
    return RedirectResponse("/login?next=" + quote(page, safe="/"), status_code=303)


def _referer_path(request: Request, fallback: str) -> str:
    """The page the form was on (same site only), to come back to after signing in."""
    return back(request, fallback).headers["location"]


def _signal(fn, *args) -> object:  # noqa: ANN001, ANN002
    try:
        return fn(*args)
    except follows.NotFound as exc:
        raise HTTPException(404, exc.message) from None
    except follows.CommunityError as exc:
        raise HTTPException(400, exc.message) from None


def _follow_change(request: Request, engine, user, kind: str, target: str,  # noqa: ANN001
                   on: bool) -> Response:
    if user is None:
        return _sign_in_first(request, _referer_path(request, "/for-you"))
    _signal(follows.follow if on else follows.unfollow, engine, user["pk"], kind, target)
    if wants_json(request):
        return JSONResponse({"following": on, "kind": kind, "target": " ".join(target.split())})
    return back(request, "/for-you")


@router.post("/follow", dependencies=[Csrf])
def follow(request: Request, engine: Db, user: User, kind: str = Form(""),
           target: str = Form("")) -> Response:
    return _follow_change(request, engine, user, kind, target, True)


@router.post("/unfollow", dependencies=[Csrf])
def unfollow(request: Request, engine: Db, user: User, kind: str = Form(""),
             target: str = Form("")) -> Response:
    return _follow_change(request, engine, user, kind, target, False)


def _dismissal(request: Request, engine, user, paper_id: str, on: bool) -> Response:  # noqa: ANN001
    if user is None:
        return _sign_in_first(request, _referer_path(request, f"/papers/{paper_id}"))
    _signal(follows.dismiss if on else follows.undismiss, engine, user["pk"], paper_id)
    if wants_json(request):
        return JSONResponse({"dismissed": on})
    return back(request, f"/papers/{paper_id}")


@router.post("/papers/{paper_id:path}/dismiss", dependencies=[Csrf])
def dismiss(request: Request, paper_id: str, engine: Db, user: User) -> Response:
    return _dismissal(request, engine, user, paper_id, True)


@router.post("/papers/{paper_id:path}/undismiss", dependencies=[Csrf])
def undismiss(request: Request, paper_id: str, engine: Db, user: User) -> Response:
    return _dismissal(request, engine, user, paper_id, False)


def _page_number(request: Request) -> int:
    value = request.query_params.get("page", "1")
    if not (value.isascii() and value.isdigit() and len(value) < 6 and 1 <= int(value) <= LAST_PAGE):
        raise HTTPException(400, f"page: a number from 1 to {LAST_PAGE}, not {value[:40]!r}")
    return int(value)


@router.get("/authors/{name:path}", response_class=HTMLResponse)
def author_page(request: Request, name: str, engine: Db, user: User) -> HTMLResponse:
    from dailypapers.web.pages import decorate

    if follows.CONTROL.search(name):
        raise HTTPException(400, "An author's name cannot hold control characters.")
    name = " ".join(name.split())
    if not name or len(name) > follows.AUTHOR_MAX:
        raise HTTPException(400, f"An author's name has 1 to {follows.AUTHOR_MAX} characters.")
    page = _page_number(request)
    rows = queries.author_papers(engine, name, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    base = "/authors/" + quote(name, safe="")
    return render(request, "author.html", {
        "name": name, "papers": decorate(engine, user, rows[:PAGE_SIZE]), "page": page,
        "prev_url": f"{base}?page={page - 1}" if page > 1 else None,
        "next_url": f"{base}?page={page + 1}" if len(rows) > PAGE_SIZE else None})


def for_you_page(request: Request, engine, user: dict) -> HTMLResponse:  # noqa: ANN001
    """The reader's recommendations with their reasons; for a reader with no signals, where to start."""
    from dailypapers.web.pages import decorate

    started = recommend.has_signals(engine, user["pk"])
    found = recommend.for_reader(engine, user["pk"], limit=RECOMMENDED) if started else []
    rows = {r["id"]: r for r in queries.papers_by_id(engine, [r.paper_id for r in found])}
    cards = decorate(engine, user, [
        rows[r.paper_id] | {"because": r.because, "because_paper_id": r.because_paper_id}
        for r in found if r.paper_id in rows])
    followed = follows.following(engine, user["pk"])
    categories = follows.category_counts(engine)[:ONBOARDING_CATEGORIES]
    if cards:  # below the cards: the categories not followed yet, to widen what is picked
        categories = [(code, n) for code, n in categories if code not in followed.get("category", ())]
    return render(request, "foryou.html", {"papers": cards, "started": started, "categories": categories,
                                           "followed": followed})


@router.get("/for-you", response_class=HTMLResponse)
def for_you(request: Request, engine: Db, user: User) -> Response:
    if user is None:
        return _sign_in_first(request, "/for-you")
    return for_you_page(request, engine, user)


def _following(request: Request, kind: str, target: str) -> bool:
    """For templates: whether the signed-in reader follows this (looked up once per page)."""
    user = current_user(request)
    if user is None:
        return False
    if not hasattr(request.state, "follows"):
        request.state.follows = follows.following(request.app.state.engine, user["pk"])
    return target in request.state.follows.get(kind, ())


TEMPLATES.env.globals["is_following"] = _following
