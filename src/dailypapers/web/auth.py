"""Accounts on the site: sign up, sign in and out, password reset, saved papers, API token."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from dailypapers import accounts, community
from dailypapers.accounts import AccountError
from dailypapers.bibtex import bibtex
from dailypapers.web.deps import SESSION_COOKIE, Csrf, Db, SignedIn, User, render
from dailypapers.web.inputs import NoNul

router = APIRouter(dependencies=[NoNul])  # (sign-in fields go to PostgreSQL as they are)
NEXT_DEFAULT = "/"


def _safe_next(value: str | None) -> str:
    """Only same-site paths: never redirect a sign-in to another site."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return NEXT_DEFAULT


def _signed_in(request: Request, engine, user_pk: int, target: str) -> RedirectResponse:  # noqa: ANN001
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, accounts.create_session(engine, user_pk), httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", max_age=accounts.SESSION_DAYS * 24 * 3600)
    return response


@router.get("/signup", response_class=HTMLResponse)
def signup_form(request: Request) -> HTMLResponse:
    return render(request, "signup.html", {"values": {}, "errors": {}})


@router.post("/signup", dependencies=[Csrf])
def signup(request: Request, engine: Db, email: str = Form(""), username: str = Form(""),
           password: str = Form("")) -> Response:
    try:
        user_pk = accounts.sign_up(engine, email, password, username)
    except AccountError as exc:
        return render(request, "signup.html", {"values": {"email": email, "username": username},
                                               "errors": {exc.field: exc.message}}, status_code=400)
    return _signed_in(request, engine, user_pk, "/")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", {"values": {}, "errors": {}, "next": _safe_next(next)})


@router.post("/login", dependencies=[Csrf])
def login(request: Request, engine: Db, email: str = Form(""), password: str = Form(""),
          next: str = Form("/")) -> Response:
    client = request.client.host if request.client else "unknown"
    try:
        user_pk = accounts.authenticate(engine, email, password, key=f"{email.strip().lower()} {client}")
    except AccountError as exc:
        return render(request, "login.html", {"values": {"email": email}, "errors": {exc.field: exc.message},
                                              "next": _safe_next(next)}, status_code=400)
    return _signed_in(request, engine, user_pk, _safe_next(next))


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request, engine: Db) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        accounts.end_session(engine, token)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/reset", response_class=HTMLResponse)
def reset_form(request: Request) -> HTMLResponse:
    return render(request, "reset.html", {"values": {}, "errors": {}, "sent": False})


@router.post("/reset", dependencies=[Csrf])
def reset(request: Request, engine: Db, email: str = Form("")) -> Response:
    token = accounts.start_password_reset(engine, email)
    if token:
        request.app.state.send_reset(email.strip(), f"{request.app.state.base_url(request)}/reset/{token}")
    # The same answer for known and unknown addresses: the form tells nobody who has an account.
    return render(request, "reset.html", {"values": {"email": email}, "errors": {}, "sent": True})


@router.get("/reset/{token}", response_class=HTMLResponse)
def new_password_form(request: Request, token: str) -> HTMLResponse:
    return render(request, "new_password.html", {"token": token, "errors": {}})


@router.post("/reset/{token}", dependencies=[Csrf])
def new_password(request: Request, token: str, engine: Db, password: str = Form("")) -> Response:
    try:
        user_pk = accounts.finish_password_reset(engine, token, password)
    except AccountError as exc:
        return render(request, "new_password.html", {"token": token, "errors": {exc.field: exc.message}},
                      status_code=400)
    return _signed_in(request, engine, user_pk, "/")


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, engine: Db, user: SignedIn) -> HTMLResponse:
    return render(request, "account.html", {"saved": community.saved_papers(engine, user["pk"]),
                                            "api_token": None})


@router.post("/account/token", dependencies=[Csrf])
def new_token(request: Request, engine: Db, user: SignedIn) -> HTMLResponse:
    token = accounts.create_api_token(engine, user["pk"])
    return render(request, "account.html", {"saved": community.saved_papers(engine, user["pk"]), "api_token": token})


@router.get("/saved.bib")
def saved_bibtex(engine: Db, user: SignedIn) -> PlainTextResponse:
    return PlainTextResponse(bibtex(community.saved_papers(engine, user["pk"])),
                             media_type="application/x-bibtex",
                             headers={"Content-Disposition": 'attachment; filename="saved-papers.bib"'})


@router.get("/submit", response_class=HTMLResponse)
def submit_form(request: Request, user: User) -> Response:
    if user is None:
        return RedirectResponse("/login?next=/submit", status_code=303)
    return render(request, "submit.html", {"error": None, "value": ""})


