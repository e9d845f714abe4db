"""The web application factory: every route wired in one place. Routes stay thin over the core."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from dailypapers.config import Settings, get_settings
from dailypapers.store import queries
from dailypapers.store.db import open_engine

TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = open_engine(settings.db_url)
    app = FastAPI(title="dailypapers", version="0.1.0")

    def feed_page(request: Request, day: date | None) -> HTMLResponse:
        day = day or queries.latest_daily_date(engine)
        papers = queries.daily_papers(engine, day) if day else []
        return TEMPLATES.TemplateResponse(request, "daily.html", {"day": day, "papers": papers})

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        return feed_page(request, None)

    @app.get("/papers/date/{day}", response_class=HTMLResponse)
    def by_date(request: Request, day: str) -> HTMLResponse:
        try:
            parsed = date.fromisoformat(day)
        except ValueError:
            raise HTTPException(400, f"{day!r} is not a date like 2025-10-10") from None
        return feed_page(request, parsed)

    @app.get("/api/stats")
    def api_stats() -> dict:
        return queries.stats(engine)

    return app
