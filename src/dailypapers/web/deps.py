"""What every route needs: the engine, the signed-in user, cookies, CSRF checks, and page rendering."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine

from dailypapers import accounts, tex

TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
TEMPLATES.env.auto_reload = False  # read once per process, not checked on disk for every page
TEMPLATES.env.filters |= {"tex": tex.to_html, "tex_text": tex.to_text}
# Cookie names over http; over https (DAILYPAPERS_BASE_URL) they get the __Host- prefix, which
# browsers accept only Secure, for this host, path / (no subdomain or plain-http page can set them).
SESSION_COOKIE = "dp_session"
ANON_COOKIE = "dp_anon"  # a random id for visitors who are not signed in: their CSRF tokens derive from it
COOKIE_DAYS = 365


def engine(request: Request) -> Engine:
    return request.app.state.engine


def _https(request: Request) -> bool:
    base = request.app.state.settings.base_url or ""
    return base.startswith("https://")


def cookie_name(request: Request, name: str) -> str:
    return "__Host-" + name if _https(request) else name


def set_cookie(request: Request, response: Response, name: str, value: str, days: int) -> None:
    """HttpOnly, SameSite=Lax, path /; Secure and __Host- prefixed under https."""
    response.set_cookie(cookie_name(request, name), value, max_age=days * 24 * 3600, path="/", httponly=True,
                        samesite="lax", secure=_https(request))


def delete_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(cookie_name(request, name), path="/", httponly=True, samesite="lax",
                           secure=_https(request))


def session_token(request: Request) -> str | None:
    return request.cookies.get(cookie_name(request, SESSION_COOKIE))


def current_user(request: Request) -> dict | None:
    """The signed-in user (from the session cookie), looked up once per request."""
    if not hasattr(request.state, "user"):
        token = session_token(request)
        request.state.user = accounts.session_user(request.app.state.engine, token) if token else None
    return request.state.user


def require_user(request: Request) -> dict:
    user = current_user(request)
    if user is None:
        raise HTTPException(401, "Sign in to do that.")
    return user


def require_admin(request: Request) -> dict:
    user = require_user(request)
    if not user["is_admin"]:
        raise HTTPException(403, "Only an administrator can do that.")
    return user


# --- CSRF: the token is an HMAC of the session's secret (the session cookie when signed in, the
# anonymous cookie otherwise), so it changes at sign-in and sign-out and works in no other session.


def _derive(secret: str) -> str:
    return hmac.new(secret.encode(), b"dailypapers csrf", hashlib.sha256).hexdigest()


def _csrf_secret(request: Request) -> str | None:
    if current_user(request) is not None:
        return session_token(request)
    return request.cookies.get(cookie_name(request, ANON_COOKIE)) or getattr(request.state, "new_anon", None)


def csrf_token(request: Request) -> str:
    """The token forms and scripts send back (a new anonymous cookie is set with the page if needed)."""
    secret = _csrf_secret(request)
    if secret is None:
        secret = request.state.new_anon = secrets.token_urlsafe(32)
    return _derive(secret)


async def check_csrf(request: Request) -> None:
    """Every state-changing form or script request carries the token of its session."""
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = (await request.form()).get("csrf_token")
    secret = await run_in_threadpool(_csrf_secret, request)  # may look the session up in the database
    if not secret or not isinstance(sent, str) or not hmac.compare_digest(_derive(secret), sent):
        raise HTTPException(403, "This form has expired or did not come from this site; reload the page "
                                 "and try again.")


Db = Annotated[Engine, Depends(engine)]
User = Annotated[dict | None, Depends(current_user)]
SignedIn = Annotated[dict, Depends(require_user)]
Admin = Annotated[dict, Depends(require_admin)]
Csrf = Depends(check_csrf)


def render(request: Request, template: str, context: dict | None = None, status_code: int = 200) -> HTMLResponse:
    # A page rendered to be kept (web/pagecache.py) carries a placeholder, each copy served its reader's token.
    kept = getattr(request.state, "page_token", None)
    context = {"user": current_user(request), "csrf_token": kept or csrf_token(request), **(context or {})}
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)
    if kept is None:
        set_csrf_cookie(request, response)
    return response


def set_csrf_cookie(request: Request, response: Response) -> None:
    """Send the anonymous cookie a token of this page was derived from, if the browser lacks it."""
    new = getattr(request.state, "new_anon", None)
    if new is not None and current_user(request) is None:
        set_cookie(request, response, ANON_COOKIE, new, COOKIE_DAYS)


def start_session(request: Request, response: Response, user_pk: int) -> None:
    """Sign in on this response: a new session cookie (so a new CSRF token); the anonymous one goes."""
    token = accounts.create_session(request.app.state.engine, user_pk)
    set_cookie(request, response, SESSION_COOKIE, token, accounts.SESSION_DAYS)
    delete_cookie(request, response, ANON_COOKIE)


def end_session(request: Request, response: Response) -> None:
    """Sign out on this response: the session cookie goes, a fresh anonymous one comes (a new token)."""
    delete_cookie(request, response, SESSION_COOKIE)
    set_cookie(request, response, ANON_COOKIE, secrets.token_urlsafe(32), COOKIE_DAYS)


# Search pages a worker process works on at once; the others wait their turn, first come first
# served. A search page is ~10 ms of CPU in Python, SQLite and native code: side by side in threads
# they only fight over the GIL (measured, one worker, 8 clients: 12.3 ms of CPU a page instead of
# 10.1, and a threading semaphore let late arrivals jump the queue: p95 1.6 x p50).
SEARCHES_AT_ONCE = 1
T = TypeVar("T")


async def one_search_at_a_time(request: Request, page: Callable[..., T], *args: object) -> T:
    """``page(*args)`` in a worker thread, when this process's turn for searches comes."""
    loop = asyncio.get_running_loop()
    gate = getattr(request.app.state, "search_gate", None)
    if gate is None or gate[0] is not loop:  # one per event loop (tests run several)
        gate = request.app.state.search_gate = (loop, asyncio.Semaphore(SEARCHES_AT_ONCE))
    async with gate[1]:
        result = await run_in_threadpool(page, *args)
    _freeze_once()
    return result


_frozen = False


def _freeze_once() -> None:
    """After a process's first search: what it loaded to stay (the model, the indexes, compiled
    statements) is left out of the garbage collector's full passes, which walked it all every few
    seconds under load (measured at 100k papers: 78 ms a pass, then 2 ms; the pauses made the
    slowest 5% of search pages)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()  # what is garbage already must not be kept for good
        gc.freeze()
