"""Read queries shared by the CLI, the web pages and the API (SQLAlchemy Core, both databases)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from dailypapers.store.schema import organizations, papers, users

visible = papers.c.hidden.is_(False)


def stats(engine: Engine) -> dict:
    with engine.connect() as conn:
        count = lambda q: conn.execute(q).scalar_one()  # noqa: E731
        latest = conn.execute(select(func.max(papers.c.submitted_on_daily_at)).where(visible)).scalar()
        return {
            "papers": count(select(func.count()).select_from(papers).where(visible)),
            "hidden": count(select(func.count()).select_from(papers).where(papers.c.hidden.is_(True))),
            "daily_papers": count(select(func.count()).select_from(papers).where(
                visible, papers.c.submitted_on_daily_at.is_not(None))),
            "latest_daily_date": latest.date().isoformat() if latest else None,
            "organizations": count(select(func.count()).select_from(organizations)),
            "users": count(select(func.count()).select_from(users)),
            "database": engine.url.render_as_string(hide_password=True),
        }


def latest_daily_date(engine: Engine) -> date | None:
    with engine.connect() as conn:
        latest = conn.execute(select(func.max(papers.c.submitted_on_daily_at)).where(visible)).scalar()
    return latest.date() if latest else None


def daily_papers(engine: Engine, day: date, days: int = 1) -> list[dict]:
    """Papers put on the feed from ``day`` for ``days`` days, most upvoted first."""
    start = datetime.combine(day, datetime.min.time())
    query = (
        select(papers, organizations.c.name.label("organization_name"),
               organizations.c.fullname.label("organization_fullname"))
        .outerjoin(organizations, papers.c.organization_pk == organizations.c.pk)
        .where(visible, papers.c.submitted_on_daily_at >= start,
               papers.c.submitted_on_daily_at < start + timedelta(days=days))
        .order_by(papers.c.upvotes.desc(), papers.c.published_at.desc(), papers.c.pk)
    )
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]
