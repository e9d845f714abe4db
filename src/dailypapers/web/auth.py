"""Accounts on the site: sign up and verify the address, sign in and out, password reset and change,
sessions, saved papers, API token.

Forms that could be abused (guessing, sign-up and mail floods) are throttled through
dailypapers.throttle; a throttled form comes back with the message and status 429.
"""

from __future__ import annotations

import logging
import smtplib

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from dailypapers import accounts, throttle
from dailypapers.collections import saved as saved_list
from dailypapers.accounts import verification
from dailypapers.accounts import AccountError
from dailypapers.bibtex import bibtex
from dailypapers.mail.smtp import MailError
from dailypapers.throttle import Throttled
from dailypapers.web.deps import Csrf, Db, SignedIn, User, end_session, render, session_token, start_session
from dailypapers.web.inputs import NoNul

log = logging.getLogger("dailypapers.web")
router = APIRouter(dependencies=[NoNul])  # (sign-in fields go to PostgreSQL as they are)
NEXT_DEFAULT = "/"
SIGNUPS_PER_CLIENT = ("10/hour", "50/day")
RESETS_PER_CLIENT = ("10/hour",)
RESETS_PER_ADDRESS = ("3/hour", "10/day")
VERIFY_MAILS_PER_ACCOUNT = ("1/minute", "5/day")


def _safe_next(value: str | None) -> str:
    """Only same-site paths: never redirect a sign-in to another site."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return NEXT_DEFAULT


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _signed_in(request: Request, user_pk: int, target: str) -> RedirectResponse:
    response = RedirectResponse(target, status_code=303)
    start_session(request, response, user_pk)
    return response


def _throttled(request: Request, template: str, context: dict, exc: Throttled) -> HTMLResponse:
    """The form again, with when to retry beside it (429, Retry-After)."""
    context = {"values": {}, "errors": {}, **context}
    context["errors"] = {**context["errors"], "throttled": exc.message}
    response = render(request, template, context, status_code=429)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def send_verification(settings, email: str, link: str) -> None:  # noqa: ANN001 - app.state.send_verification
    from dailypapers.mail.smtp import send_plain

    send_plain(settings, email, "Confirm your address for dailypapers",
               f"Someone signed up on dailypapers with this address.\n\n"
               f"If it was you, confirm the address here (the link works once, for 48 hours):\n{link}\n\n"
               f"Until then the account can vote and save papers but manages no mail subscriptions.\n"
               f"If it was not you, ignore this message: nothing will be sent to you.\n")


def _mail_verification(request: Request, engine, user_pk: int) -> bool:  # noqa: ANN001
    """Mail a verification link to the account's address (throttled per account: raises Throttled);
    False when the mail server could not take it (the account page offers to send it again)."""
    throttle.hit(engine, f"verify:user:{user_pk}", *VERIFY_MAILS_PER_ACCOUNT)
    token, email = verification.start_verification(engine, user_pk)
    try:
        request.app.state.send_verification(email, f"{request.app.state.base_url(request)}/verify/{token}")
    except (OSError, smtplib.SMTPException, MailError) as exc:
        log.warning("verification mail for user %s not sent: %s", user_pk, type(exc).__name__)
        return False
    return True


@router.get("/signup", response_class=HTMLResponse)
def signup_form(request: Request) -> HTMLResponse:
    return render(request, "signup.html", {"values": {}, "errors": {}})


@router.post("/signup", dependencies=[Csrf])
def signup(request: Request, engine: Db, email: str = Form(""), username: str = Form(""),
           password: str = Form("")) -> Response:
    values = {"email": email, "username": username}
    try:
        throttle.hit(engine, f"signup:ip:{_client(request)}", *SIGNUPS_PER_CLIENT)
        user_pk = accounts.sign_up(engine, email, password, username)
    except Throttled as exc:
        return _throttled(request, "signup.html", {"values": values}, exc)
    except AccountError as exc:
        return render(request, "signup.html", {"values": values, "errors": {exc.field: exc.message}},
                      status_code=400)
    _mail_verification(request, engine, user_pk)  # the account's first: never throttled
    return _signed_in(request, user_pk, "/account")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", {"values": {}, "errors": {}, "next": _safe_next(next)})


@router.post("/login", dependencies=[Csrf])
def login(request: Request, engine: Db, email: str = Form(""), password: str = Form(""),
          next: str = Form("/")) -> Response:
    context = {"values": {"email": email}, "next": _safe_next(next)}
    try:
        user_pk = accounts.authenticate(engine, email, password, client=_client(request))
    except Throttled as exc:
        return _throttled(request, "login.html", context, exc)
    except AccountError as exc:
        return render(request, "login.html", {**context, "errors": {exc.field: exc.message}}, status_code=400)
    return _signed_in(request, user_pk, _safe_next(next))


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request, engine: Db) -> Response:
    accounts.end_session(engine, session_token(request))
    response = RedirectResponse("/", status_code=303)
    end_session(request, response)
    return response


@router.get("/reset", response_class=HTMLResponse)
def reset_form(request: Request) -> HTMLResponse:
    return render(request, "reset.html", {"values": {}, "errors": {}, "sent": False})


@router.post("/reset", dependencies=[Csrf])
def reset(request: Request, engine: Db, email: str = Form("")) -> Response:
    try:
        throttle.hit(engine, f"reset:ip:{_client(request)}", *RESETS_PER_CLIENT)
        throttle.hit(engine, f"reset:to:{accounts.normalize_email(email)[:accounts.EMAIL_MAX]}",
                     *RESETS_PER_ADDRESS)
        started = accounts.start_password_reset(engine, email)
        if started:
            token, stored = started  # mail goes to the address the account has, never to what was typed
            request.app.state.send_reset(stored, f"{request.app.state.base_url(request)}/reset/{token}")
        elif (pending := verification.unverified_account(engine, email)) is not None:
            _resend_quietly(request, engine, pending)
    except Throttled as exc:
        return _throttled(request, "reset.html", {"values": {"email": email}, "sent": False}, exc)
    # The same answer for known and unknown addresses: the form tells nobody who has an account.
    return render(request, "reset.html", {"values": {"email": email}, "errors": {}, "sent": True})


def _resend_quietly(request: Request, engine, user_pk: int) -> None:  # noqa: ANN001
    """An unverified address gets no mail but the verification, sent again when its throttle allows
    (not saying when it does not: that would tell who has an account)."""
    try:
        _mail_verification(request, engine, user_pk)
    except Throttled:
        pass


@router.get("/reset/{token}", response_class=HTMLResponse)
def new_password_form(request: Request, token: str) -> HTMLResponse:
    return render(request, "new_password.html", {"token": token, "errors": {}})


@router.post("/reset/{token}", dependencies=[Csrf])
def new_password(request: Request, token: str, engine: Db, password: str = Form("")) -> Response:
    try:
        user_pk = accounts.finish_password_reset(engine, token, password)
    except Throttled as exc:
        return _throttled(request, "new_password.html", {"token": token}, exc)
    except AccountError as exc:
        return render(request, "new_password.html", {"token": token, "errors": {exc.field: exc.message}},
                      status_code=400)
    return _signed_in(request, user_pk, "/")


# --- verifying the address: the link from mail shows one button; only its POST verifies ------------


@router.get("/verify/{token}", response_class=HTMLResponse)
def verify_page(request: Request, engine: Db, token: str) -> HTMLResponse:
    if not verification.verification_open(engine, token):
        return render(request, "verify.html", {"token": token, "error": verification.VERIFY_EXPIRED},
                      status_code=410)
    return render(request, "verify.html", {"token": token})


@router.post("/verify/{token}", dependencies=[Csrf])
def verify(request: Request, engine: Db, token: str) -> HTMLResponse:
    try:
        verification.verify_email(engine, token)
    except AccountError as exc:
        return render(request, "verify.html", {"token": token, "error": exc.message}, status_code=410)
    return render(request, "verify.html", {"token": token, "done": True})


# --- the account page --------------------------------------------------------------------------------


def _account_page(request: Request, engine, user: dict, status_code: int = 200,  # noqa: ANN001
                  **context) -> HTMLResponse:  # noqa: ANN003
    context = {"saved": saved_list.saved_papers(engine, user["pk"]), "api_token": None, "notice": None,
               "errors": {}, **context}
    return render(request, "account.html", context, status_code=status_code)


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, engine: Db, user: SignedIn) -> HTMLResponse:
    return _account_page(request, engine, user)


@router.post("/account/verify", dependencies=[Csrf])
def resend_verification(request: Request, engine: Db, user: SignedIn) -> HTMLResponse:
    if user["email_verified_at"] is not None:
        return _account_page(request, engine, user, notice="Your address is already verified.")
    try:
        sent = _mail_verification(request, engine, user["pk"])
    except Throttled as exc:
        response = _account_page(request, engine, user, 429, errors={"verify": exc.message})
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if not sent:
        return _account_page(request, engine, user, 503, errors={
            "verify": "We could not send the mail just now; please try again in a few minutes."})
    return _account_page(request, engine, user,
                         notice=f"A new verification link is on its way to {user['email']}.")


@router.post("/account/password", dependencies=[Csrf])
def change_password(request: Request, engine: Db, user: SignedIn, current: str = Form(""),
                    password: str = Form("")) -> Response:
    try:
        accounts.change_password(engine, user["pk"], current, password)
    except Throttled as exc:
        response = _account_page(request, engine, user, 429, errors={"current": exc.message})
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except AccountError as exc:
        return _account_page(request, engine, user, 400, errors={exc.field: exc.message})
    # Every session ended (and the API token with them); this browser gets a new one.
    return _signed_in(request, user["pk"], "/account")


@router.post("/account/sessions/end", dependencies=[Csrf])
def sign_out_everywhere(request: Request, engine: Db, user: SignedIn) -> Response:
    accounts.end_all_sessions(engine, user["pk"])
    response = RedirectResponse("/", status_code=303)
    end_session(request, response)
    return response


@router.post("/account/token", dependencies=[Csrf])
def new_token(request: Request, engine: Db, user: SignedIn) -> HTMLResponse:
    return _account_page(request, engine, user, api_token=accounts.create_api_token(engine, user["pk"]))


@router.post("/account/token/revoke", dependencies=[Csrf])
def revoke_token(request: Request, engine: Db, user: SignedIn) -> HTMLResponse:
    accounts.revoke_api_token(engine, user["pk"])
    return _account_page(request, engine, user,
                         notice="Your API token is revoked: scripts using it stop working.")


@router.get("/saved.bib")
def saved_bibtex(engine: Db, user: SignedIn) -> PlainTextResponse:
    return PlainTextResponse(bibtex(saved_list.saved_papers(engine, user["pk"])),
                             media_type="application/x-bibtex",
                             headers={"Content-Disposition": 'attachment; filename="saved-papers.bib"'})


@router.get("/submit", response_class=HTMLResponse)
def submit_form(request: Request, user: User) -> Response:
    if user is None:
        return RedirectResponse("/login?next=/submit", status_code=303)
    return render(request, "submit.html", {"error": None, "value": ""})


