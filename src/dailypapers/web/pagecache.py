"""Pages for readers who are not signed in, rendered once and kept, keyed by what they depend on.

A page is kept under (database, URL, pages version, minute). The pages version
(``queries.pages_version``) grows in the same transaction as every write that changes what such a
page shows, whichever process or machine writes, so every web process serves a kept page only while
it is current, and a write shows at once on the next view everywhere. The minute bounds what changes
with the clock alone (trending's decay by age, today's date on an empty feed) and what readers'
libraries change (a paper page's similar papers count what its readers also saved). A signed-in reader's
pages show their votes and saves: never kept. The CSRF token differs per visitor: a page is kept
with a placeholder, and each copy served carries its reader's token (and an ETag of it, so a browser
that has the page gets a 304).

Measured at 100k papers on PostgreSQL: `/` cost 7 ms of a worker's CPU rendered, ~1 ms kept
(docs/benchmarks.md, "Web at 100,000 papers").
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.engine import Engine

from dailypapers.store import queries
from dailypapers.web.deps import csrf_token, set_csrf_cookie

MAX_BYTES = 32 << 20  # kept per process, the least recently served dropped first
PLACEHOLDER = "dp-kept-page-csrf-token"
_PLACEHOLDER = PLACEHOLDER.encode()

_pages: OrderedDict[tuple, tuple[str, bytes]] = OrderedDict()  # key -> (media type, body)
_size = 0
_lock = threading.Lock()


def kept(route: Callable[..., Response]) -> Callable[..., Response]:
    """A page route (with parameters ``request``, ``engine`` and ``user``) whose pages are kept for
    readers who are not signed in. FastAPI sees the route's own signature."""

    @functools.wraps(route)
    def page(**kwargs) -> Response:  # noqa: ANN003
        return cached_page(kwargs["request"], kwargs["engine"], kwargs["user"], lambda: route(**kwargs))

    return page


def kept_copy(request: Request, engine: Engine) -> Response | None:
    """This page's kept copy for a reader who is not signed in, when a current one is kept (a route
    can serve it before queueing for the work of building it)."""
    key = _key(request, engine)
    found = _found(key)
    return None if found is None else _served(request, key, found)


def cached_page(request: Request, engine: Engine, user: dict | None, build: Callable[[], Response]) -> Response:
    """``build()``'s response, from the kept copy when there is a current one."""
    if user is not None:
        return build()
    key = _key(request, engine)
    found = _found(key)
    if found is None:
        request.state.page_token = PLACEHOLDER
        try:
            response = build()
        finally:
            request.state.page_token = None
        if response.status_code != 200 or not isinstance(response.body, bytes):
            return response
        found = (response.media_type, response.body)
        _keep(key, found)
    return _served(request, key, found)


def _found(key: tuple) -> tuple[str, bytes] | None:
    with _lock:
        found = _pages.get(key)
        if found is not None:
            _pages.move_to_end(key)
    return found


def _served(request: Request, key: tuple, found: tuple[str, bytes]) -> Response:
    """A kept page as this reader gets it: their CSRF token put in, with an ETag of it."""
    media_type, body = found
    if _PLACEHOLDER not in body:  # not a page with forms (a .bib, a .md)
        return Response(body, media_type=media_type)
    token = csrf_token(request)
    etag = 'W/"' + hashlib.blake2b(f"{key}{token}".encode(), digest_size=16).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}  # each reader's own; ask each time
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    response = Response(body.replace(_PLACEHOLDER, token.encode()), media_type=media_type, headers=headers)
    set_csrf_cookie(request, response)
    return response


def _key(request: Request, engine: Engine) -> tuple:
    return (str(engine.url), str(request.url), queries.pages_version(engine), _minute())


def _minute() -> int:
    return int(time.time() // 60)


def _keep(key: tuple, value: tuple[str, bytes]) -> None:
    global _size
    with _lock:
        if key not in _pages:
            _pages[key] = value
            _size += len(value[1])
        while _size > MAX_BYTES:
            _, (_, body) = _pages.popitem(last=False)
            _size -= len(body)
