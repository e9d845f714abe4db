"""Read queries shared by the CLI, the web pages and the API (SQLAlchemy Core, both databases)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from dailypapers.store.backend import has_author, in_list
from dailypapers.store.schema import counters, organizations, papers, users

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


# Both only grow: "pages" with every write to what a page shows (migration 0011), the embeddings' seq
# with every embedding written (similar papers). Their sum changes whenever either does.
_PAGES_VERSION = select(func.coalesce(func.sum(counters.c.value), 0)).where(
    counters.c.name.in_(("pages", "paper_embeddings.seq")))


def pages_version(engine: Engine) -> int:
    """A number that grows with every committed change to what a reader who is not signed in sees
    (one read of two rows by primary key): the key of cached pages."""
    with engine.connect() as conn:
        return conn.execute(_PAGES_VERSION).scalar_one()


def latest_daily_date(engine: Engine) -> date | None:
    with engine.connect() as conn:
        latest = conn.execute(select(func.max(papers.c.submitted_on_daily_at)).where(visible)).scalar()
    return latest.date() if latest else None


def _with_org(*columns):  # noqa: ANN002, ANN202
    return (select(papers, *columns, organizations.c.name.label("organization_name"),
                   organizations.c.fullname.label("organization_fullname"),
                   organizations.c.avatar.label("organization_avatar"),
                   users.c.username.label("submitter_username"), users.c.fullname.label("submitter_fullname"),
                   users.c.avatar_url.label("submitter_avatar"))
            .outerjoin(organizations, papers.c.organization_pk == organizations.c.pk)
            .outerjoin(users, papers.c.submitted_by_pk == users.c.pk))


def _day_start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


FEED_SORTS = {
    "upvotes": (papers.c.upvotes.desc(), papers.c.published_at.desc(), papers.c.pk),
    "publishedAt": (papers.c.published_at.desc(), papers.c.upvotes.desc(), papers.c.pk),
}


def feed(engine: Engine, start: date, end: date, *, sort: str = "upvotes", limit: int = 50, offset: int = 0,
         submitter: str | None = None, where: tuple = ()) -> tuple[list[dict], int]:
    """Papers put on the feed on days start <= day < end: a page of them, and how many in all.

    ``sort`` is upvotes, publishedAt or trending (upvotes decayed by age, see ranking.py); ``where``:
    more conditions (the "followed only" filter).
    """
    where = [visible, papers.c.submitted_on_daily_at >= _day_start(start),
             papers.c.submitted_on_daily_at < _day_start(end), *where]
    if submitter:
        where.append(users.c.username == submitter)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(
            papers.outerjoin(users, papers.c.submitted_by_pk == users.c.pk)).where(*where)).scalar_one()
        query = _with_org().where(*where)
        if sort == "trending":
            from dailypapers.ranking import trending_score

            rows = [dict(r) for r in conn.execute(query).mappings()]
            rows.sort(key=lambda r: (trending_score(r), r["pk"]), reverse=True)
            return rows[offset: offset + limit], total
        query = query.order_by(*FEED_SORTS[sort]).limit(limit).offset(offset)
        return [dict(r) for r in conn.execute(query).mappings()], total


def daily_papers(engine: Engine, day: date, days: int = 1) -> list[dict]:
    """Papers put on the feed from ``day`` for ``days`` days, most upvoted first."""
    return feed(engine, day, day + timedelta(days=days), limit=10_000)[0]


def trending(engine: Engine, *, days: int = 14, limit: int = 50, offset: int = 0) -> list[dict]:
    """The feed's papers of the last ``days`` days before its latest day, by trending score."""
    latest = latest_daily_date(engine)
    if latest is None:
        return []
    return feed(engine, latest - timedelta(days=days - 1), latest + timedelta(days=1), sort="trending",
                limit=limit, offset=offset)[0]


def neighbour_days(engine: Engine, day: date) -> tuple[date | None, date | None]:
    """The nearest earlier and later feed days that have papers."""
    start = _day_start(day)
    with engine.connect() as conn:
        before = conn.execute(select(func.max(papers.c.submitted_on_daily_at)).where(
            visible, papers.c.submitted_on_daily_at < start)).scalar()
        after = conn.execute(select(func.min(papers.c.submitted_on_daily_at)).where(
            visible, papers.c.submitted_on_daily_at >= start + timedelta(days=1))).scalar()
    return (before.date() if before else None), (after.date() if after else None)


def paper(engine: Engine, paper_id: str, *, include_hidden: bool = False) -> dict | None:
    query = _with_org().where(papers.c.id == paper_id)
    if not include_hidden:
        query = query.where(visible)
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row else None


_VISIBLE_BY_PK = _with_org().where(visible, in_list(papers.c.pk, "pks"))


def papers_by_pk(engine: Engine, pks: list[int]) -> list[dict]:
    """Rows in the order of ``pks`` (hidden ones left out)."""
    if not pks:
        return []
    with engine.connect() as conn:
        rows = {r["pk"]: dict(r) for r in conn.execute(_VISIBLE_BY_PK, {"pks": pks}).mappings()}
    return [rows[pk] for pk in pks if pk in rows]


def papers_after(engine: Engine, before_pk: int | None, limit: int) -> list[dict]:
    """Visible papers, the last arrived first, from just below ``before_pk`` (a listing's cursor)."""
    query = _with_org().where(visible).order_by(papers.c.pk.desc()).limit(limit)
    if before_pk is not None:
        query = query.where(papers.c.pk < before_pk)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


_VISIBLE_BY_ID = _with_org().where(visible, in_list(papers.c.id, "ids"))


def papers_by_id(engine: Engine, ids: list[str]) -> list[dict]:
    """Rows in the order of ``ids`` (hidden ones left out)."""
    if not ids:
        return []
    with engine.connect() as conn:
        rows = {r["id"]: dict(r) for r in conn.execute(_VISIBLE_BY_ID, {"ids": ids}).mappings()}
    return [rows[i] for i in ids if i in rows]


def organization(engine: Engine, name: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(organizations).where(organizations.c.name == name)).mappings().first()
    return dict(row) if row else None


def organization_papers(engine: Engine, org_pk: int, *, limit: int = 50, offset: int = 0) -> list[dict]:
    query = (_with_org().where(visible, papers.c.organization_pk == org_pk)
             .order_by(papers.c.published_at.desc(), papers.c.pk.desc()).limit(limit).offset(offset))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def author_papers(engine: Engine, name: str, *, limit: int = 50, offset: int = 0) -> list[dict]:
    """Papers with an author named exactly ``name``, newest first."""
    # ``hidden`` behind coalesce: no index serves it, so a planner without statistics starts from the
    # author's few papers instead of walking every visible one (SQLite did: 300 ms at 100k papers).
    unindexed_visible = func.coalesce(papers.c.hidden, False).is_(False)
    with engine.connect() as conn:
        query = (_with_org().where(unindexed_visible, has_author(conn, papers.c.authors, name))
                 .order_by(papers.c.published_at.desc().nulls_last(), papers.c.pk.desc())
                 .limit(limit).offset(offset))
        return [dict(r) for r in conn.execute(query).mappings()]
