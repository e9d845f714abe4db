"""What every route needs: the engine, the signed-in user, CSRF checks, and page rendering."""

from __future__ import annotations

import asyncio
import gc
import hmac
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine

from dailypapers import accounts

TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
TEMPLATES.env.auto_reload = False  # read once per process, not checked on disk for every page
SESSION_COOKIE = "dp_session"
CSRF_COOKIE = "dp_csrf"


def engine(request: Request) -> Engine:
    return request.app.state.engine


def current_user(request: Request) -> dict | None:
    """The signed-in user (from the session cookie), looked up once per request."""
    if not hasattr(request.state, "user"):
        token = request.cookies.get(SESSION_COOKIE)
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


def csrf_token(request: Request) -> str:
    """The token forms and scripts send back; the same value lives in a cookie (double submit)."""
    if not hasattr(request.state, "csrf"):
        request.state.csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    return request.state.csrf


async def check_csrf(request: Request) -> None:
    """Every state-changing form or script request carries the token of its page."""
    cookie = request.cookies.get(CSRF_COOKIE)
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        sent = (await request.form()).get("csrf_token")
    if not cookie or not sent or not hmac.compare_digest(str(cookie), str(sent)):
        raise HTTPException(403, "This form has expired or did not come from this site; reload the page "
                                 "and try again.")


Db = Annotated[Engine, Depends(engine)]
User = Annotated[dict | None, Depends(current_user)]
SignedIn = Annotated[dict, Depends(require_user)]
Admin = Annotated[dict, Depends(require_admin)]
Csrf = Depends(check_csrf)


def render(request: Request, template: str, context: dict | None = None, status_code: int = 200) -> HTMLResponse:
    context = {"user": current_user(request), "csrf_token": csrf_token(request), **(context or {})}
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)
    set_csrf_cookie(request, response)
    return response


def set_csrf_cookie(request: Request, response) -> None:  # noqa: ANN001
    if request.cookies.get(CSRF_COOKIE) != csrf_token(request):
        response.set_cookie(CSRF_COOKIE, csrf_token(request), httponly=True, samesite="lax",
                            secure=request.url.scheme == "https", max_age=60 * 60 * 24 * 365)


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
