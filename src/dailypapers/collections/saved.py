"""The saved list: each reader's default collection, "Saved", made on the first save; the Save button
toggles a paper in it (a new one goes on top)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from dailypapers.community import _now, _paper_pk, _visible, signals_changed
from dailypapers.store.backend import in_list
from dailypapers.store.schema import collection_items, collections, organizations, papers

SAVED = "Saved"  # the name of each reader's default collection


def default_collection(conn: Connection, user_pk: int, now: datetime) -> int:
    """The pk of the reader's saved list, made on first use."""
    pk = conn.execute(select(collections.c.pk).where(
        collections.c.user_pk == user_pk, collections.c.is_default)).scalar()
    if pk is None:
        pk = conn.execute(insert(collections).values(
            user_pk=user_pk, name=SAVED, is_public=False, is_default=True, created_at=now, updated_at=now,
        ).returning(collections.c.pk)).scalar_one()
    return pk


def toggle_saved(engine: Engine, user_pk: int, paper_id: str, *, now: datetime | None = None,
                 _retry: bool = True) -> bool:
    """Save the paper to the user's list (on top), or remove it; returns whether it is saved now."""
    now = _now(now)
    try:
        with engine.begin() as conn:
            paper_pk = _paper_pk(conn, paper_id)
            collection_pk = default_collection(conn, user_pk, now)
            here = (collection_items.c.collection_pk == collection_pk) & (collection_items.c.paper_pk == paper_pk)
            removed = conn.execute(delete(collection_items).where(here)).rowcount
            if not removed:
                top = conn.execute(select(func.min(collection_items.c.position))
                                   .where(collection_items.c.collection_pk == collection_pk)).scalar()
                conn.execute(insert(collection_items).values(
                    collection_pk=collection_pk, paper_pk=paper_pk, position=(top or 0) - 1, added_at=now))
            conn.execute(update(collections).where(collections.c.pk == collection_pk).values(updated_at=now))
            signals_changed(conn, user_pk)
            return not removed
    except IntegrityError:
        # A concurrent click saved it first (the paper is saved), or made the list: try once more.
        if saved_ids(engine, user_pk, [paper_id]):
            return True
        if not _retry:
            raise
        return toggle_saved(engine, user_pk, paper_id, now=now, _retry=False)


_SAVED_ROWS = (collection_items.join(collections, collections.c.pk == collection_items.c.collection_pk)
               .join(papers, papers.c.pk == collection_items.c.paper_pk))


def saved_ids(engine: Engine, user_pk: int | None, paper_ids: Iterable[str]) -> set[str]:
    """Which of these papers the user has saved."""
    ids = list(paper_ids)
    if user_pk is None or not ids:
        return set()
    query = (select(papers.c.id).select_from(_SAVED_ROWS)
             .where(collections.c.user_pk == bindparam("user"), collections.c.is_default,
                    in_list(papers.c.id, "ids")))
    with engine.connect() as conn:
        return set(conn.execute(query, {"user": user_pk, "ids": ids}).scalars())


def saved_papers(engine: Engine, user_pk: int) -> list[dict]:
    """The user's saved (visible) papers, last saved first: paper rows plus organization_name,
    organization_fullname and saved_at."""
    query = (
        select(papers, organizations.c.name.label("organization_name"),
               organizations.c.fullname.label("organization_fullname"),
               collection_items.c.added_at.label("saved_at"))
        .select_from(_SAVED_ROWS)
        .outerjoin(organizations, papers.c.organization_pk == organizations.c.pk)
        .where(collections.c.user_pk == user_pk, collections.c.is_default, _visible)
        .order_by(collection_items.c.position, papers.c.pk.desc())
    )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]
