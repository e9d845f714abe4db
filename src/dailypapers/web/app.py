"""The web application factory: every route, middleware and error handler wired in one place."""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from dailypapers import jobs
from dailypapers.config import Settings, get_settings
from dailypapers.mail import schedule as mail_schedule
from dailypapers.store import queries
from dailypapers.throttle import Throttled
from dailypapers.store.db import open_engine
from dailypapers.web import (actions, api, apidocs, assistants, auth, collections, feeds, foryou, pages,
                             security, subscriptions)
from dailypapers.web.deps import render

log = logging.getLogger("dailypapers.web")
STATIC = Path(__file__).with_name("static")


def create_app(settings: Settings | None = None, *, embedder=None) -> FastAPI:  # noqa: ANN001
    """A configured app. ``embedder`` overrides the configured model (tests pass a loaded one)."""
    settings = settings or get_settings()
    engine = open_engine(settings.db_url, serving=True, data_dir=settings.data_dir)
    app = FastAPI(title="dailypapers", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Daily papers, trending and search. The JSON API follows the Hugging Face "
                              "papers API: /api/daily_papers, /api/papers/{id}, /api/papers/search.")
    app.state.settings = settings
    app.state.engine = engine

    @cache
    def load_embedder():  # noqa: ANN202 - loaded on the first search, once per process
        if embedder is not None or settings.embedding_runtime == "off":
            return embedder
        from dailypapers.search.embedder import load_embedder as load

        try:
            return load(settings.embedding_model, settings.embedding_runtime, settings.embedding_device,
                        cache_dir=settings.data_dir / "models")
        except (ValueError, OSError, ImportError) as exc:
            log.warning("semantic search is off: %s", exc)
            return None

    app.state.embedder = load_embedder
    # Links in mail and feeds: the configured URL, else the request's Host (checked by security.Edge).
    app.state.base_url = lambda request: (settings.base_url or str(request.base_url)).rstrip("/")
    app.state.send_reset = lambda email, link: _send_reset(settings, email, link)
    app.state.send_verification = lambda email, link: auth.send_verification(settings, email, link)

    # The jobs: a thread on SQLite (with the mail and purge threads); on PostgreSQL the workers run them.
    jobs.install(app, settings, engine, load_embedder)
    # Close the pooled connections when the app stops (PostgreSQL counts every one).
    mail_schedule.run_during(app, SimpleNamespace(start=lambda: None, stop=engine.dispose))

    # Outermost first: the real client and scheme (trusted proxies only), then Host, Origin, headers.
    app.add_middleware(security.Edge, settings=settings, refuse=error_response)
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    security.redact_access_log()

    apidocs.install(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(api.router)
    app.include_router(feeds.router)
    app.include_router(auth.router)
    app.include_router(actions.router)
    app.include_router(foryou.router)
    app.include_router(subscriptions.router)
    app.include_router(collections.router)  # before pages: /papers/{id}.ris and .json
    app.include_router(pages.router)
    assistants.install(app, settings, engine, load_embedder)  # /mcp: the tools for AI assistants

    @app.get("/api/stats", include_in_schema=False)
    def stats() -> dict:
        return queries.stats(engine)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "request"
        return error_response(request, 400, f"{where}: {first['msg']}")

    @app.exception_handler(Throttled)
    async def throttled(request: Request, exc: Throttled) -> Response:
        response = error_response(request, 429, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, security.redact(request.url.path))
        response = error_response(request, 500, "Something went wrong on our side; it has been logged.")
        response.headers.update(security.headers(settings))  # sent from outside the middleware
        return response

    return app


def error_response(request: Request, status: int, message: str) -> Response:
    """One JSON shape for the API ({"error": ...}), one page for people; never a stack trace."""
    if request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"error": message}, status_code=status)
    titles = {400: "Bad request", 401: "Sign in needed", 403: "Not allowed", 404: "Not found",
              405: "Not allowed", 429: "Too many requests", 500: "Server error"}
    response = render(request, "error.html", {"status": status, "title": titles.get(status, "Error"),
                                              "message": message}, status_code=status)
    if status == 401:
        response.headers["X-Login"] = "/login?next=" + quote(request.url.path, safe="")
    return response


def _send_reset(settings: Settings, email: str, link: str) -> None:
    from dailypapers.mail.smtp import send_plain

    send_plain(settings, email, "Reset your dailypapers password",
               f"Someone asked to reset the password of this address on dailypapers.\n\n"
               f"Choose a new password here (the link works once, for one hour):\n{link}\n\n"
               f"If it was not you, ignore this message.\n")



