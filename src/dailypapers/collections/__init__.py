"""Collections: a reader's named, ordered lists of papers, private or public, with a note per paper.

The saved list is each reader's default collection ("Saved", saved.py): it can
be described and made public but not renamed or deleted, and no other collection takes its name.
Import and export: references.py (BibTeX, RIS, CSL-JSON) and importing.py (matching, one transaction).

Errors are community's: ``NotFound`` (404) for a collection that does not exist or is another
reader's private one (its existence is not revealed), ``Forbidden`` (403) for changing another
reader's public one, ``CommunityError`` (400) for bad input, each with a sentence for the page.
Every write that adds or removes papers calls ``community.signals_changed`` in its transaction.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from dailypapers.collections.saved import SAVED, default_collection
from dailypapers.community import CommunityError, Forbidden, NotFound, _now, _paper_pk, signals_changed
from dailypapers.store.queries import _with_org
from dailypapers.store.schema import collection_items as items, collections as lists, papers

MAX_NAME = 200
MAX_DESCRIPTION = 2_000
MAX_NOTE = 2_000
MAX_COLLECTIONS = 200  # per reader, the default one included
MAX_PAPERS = 5_000  # per collection

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_visible = papers.c.hidden.is_(False)


def _text(value: object, what: str, limit: int, field: str) -> str:
    text = _CONTROL.sub("", value).strip() if isinstance(value, str) else ""
    if len(text) > limit:
        raise CommunityError(f"A {what} can be at most {limit:,} characters; this one has {len(text):,}.",
                             field=field)
    return text


def _name(conn: Connection, user_pk: int, value: object, keep_pk: int | None = None) -> str:
    name = " ".join(_text(value, "name", MAX_NAME, "name").split())
    if not name:
        raise CommunityError("A collection needs a name.", field="name")
    if name.casefold() == SAVED.casefold():
        raise CommunityError(f'"{SAVED}" is the name of your saved papers; choose another name.', field="name")
    mine = conn.execute(select(lists.c.pk, lists.c.name).where(lists.c.user_pk == user_pk)).all()
    if any(row.name.casefold() == name.casefold() and row.pk != keep_pk for row in mine):
        raise CommunityError(f"You already have a collection named {name!r}.", field="name")
    return name


def _collection(conn: Connection, pk: int, viewer_pk: int | None) -> dict:
    """The collection, if the viewer may see it: its owner, or anyone when it is public."""
    row = conn.execute(select(lists).where(lists.c.pk == pk)).mappings().first()
    if row is None or (not row["is_public"] and row["user_pk"] != viewer_pk):
        raise NotFound("There is no such collection (or it is private).")
    return dict(row)


def _owned(conn: Connection, user_pk: int, pk: int) -> dict:
    row = _collection(conn, pk, user_pk)
    if row["user_pk"] != user_pk:
        raise Forbidden("Only its owner can change this collection.")
    return row


def _touch(conn: Connection, pk: int, now: datetime) -> None:
    conn.execute(update(lists).where(lists.c.pk == pk).values(updated_at=now))


# --- collections --------------------------------------------------------------------------------


def create_in(conn: Connection, user_pk: int, name: str, description: str = "", is_public: bool = False,
              now: datetime | None = None) -> int:
    """Make a collection in the caller's transaction (importing.py makes one and fills it at once)."""
    now = _now(now)
    name = _name(conn, user_pk, name)
    description = _text(description, "description", MAX_DESCRIPTION, "description")
    count = conn.execute(select(func.count()).where(lists.c.user_pk == user_pk)).scalar_one()
    if count >= MAX_COLLECTIONS:
        raise CommunityError(f"You have {count:,} collections, the most a reader can have; "
                             "delete one to make another.", field="name")
    return conn.execute(insert(lists).values(
        user_pk=user_pk, name=name, description=description or None, is_public=bool(is_public),
        is_default=False, created_at=now, updated_at=now).returning(lists.c.pk)).scalar_one()


def create(engine: Engine, user_pk: int, name: str, description: str = "", is_public: bool = False, *,
           now: datetime | None = None) -> int:
    """A new, empty collection; returns its pk."""
    try:
        with engine.begin() as conn:
            return create_in(conn, user_pk, name, description, is_public, now)
    except IntegrityError:  # the same name made by a concurrent request
        raise CommunityError(f"You already have a collection named {name.strip()!r}.", field="name") from None


def update_collection(engine: Engine, user_pk: int, pk: int, *, name: str | None = None,
                      description: str | None = None, is_public: bool | None = None,
                      now: datetime | None = None) -> None:
    """Rename, describe, make public or private (the arguments left None stay as they are)."""
    now = _now(now)
    try:
        with engine.begin() as conn:
            row = _owned(conn, user_pk, pk)
            values: dict = {"updated_at": now}
            if name is not None and " ".join(str(name).split()) != row["name"]:
                if row["is_default"]:
                    raise CommunityError(f'Your saved papers keep the name "{SAVED}".', field="name")
                values["name"] = _name(conn, user_pk, name, keep_pk=pk)
            if description is not None:
                values["description"] = _text(description, "description", MAX_DESCRIPTION, "description") or None
            if is_public is not None:
                values["is_public"] = bool(is_public)
            conn.execute(update(lists).where(lists.c.pk == pk).values(**values))
    except IntegrityError:
        raise CommunityError(f"You already have a collection named {str(name).strip()!r}.", field="name") from None


def delete_collection(engine: Engine, user_pk: int, pk: int) -> None:
    """Delete a collection and its list (the papers stay on the site); not the saved papers."""
    with engine.begin() as conn:
        row = _owned(conn, user_pk, pk)
        if row["is_default"]:
            raise CommunityError(f'Your "{SAVED}" collection cannot be deleted; remove its papers instead.')
        had = conn.execute(delete(items).where(items.c.collection_pk == pk)).rowcount
        conn.execute(delete(lists).where(lists.c.pk == pk))
        if had:
            signals_changed(conn, user_pk)


def get(engine: Engine, pk: int, viewer_pk: int | None) -> dict:
    """A collection the viewer may see, with its paper count and owner's username."""
    from dailypapers.store.schema import users

    with engine.connect() as conn:
        row = _collection(conn, pk, viewer_pk)
        row["count"] = conn.execute(select(func.count()).select_from(items.join(papers))
                                    .where(items.c.collection_pk == pk, _visible)).scalar_one()
        row["owner"] = conn.execute(select(users.c.username).where(users.c.pk == row["user_pk"])).scalar_one()
    return row


def owned(engine: Engine, user_pk: int, pk: int) -> dict:
    """The collection, if the reader owns it (else NotFound or Forbidden, as for a change)."""
    with engine.connect() as conn:
        return _owned(conn, user_pk, pk)


def of_reader(engine: Engine, user_pk: int) -> list[dict]:
    """The reader's collections, Saved first then by name, each with its paper count."""
    count = (select(func.count()).select_from(items.join(papers))
             .where(items.c.collection_pk == lists.c.pk, _visible).scalar_subquery())
    query = (select(lists, count.label("count")).where(lists.c.user_pk == user_pk)
             .order_by(lists.c.is_default.desc(), func.lower(lists.c.name), lists.c.pk))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def ensure_default(engine: Engine, user_pk: int, *, now: datetime | None = None) -> int:
    """The reader's Saved collection, made now if they never saved anything."""
    try:
        with engine.begin() as conn:
            return default_collection(conn, user_pk, _now(now))
    except IntegrityError:  # made by a concurrent request
        with engine.begin() as conn:
            return default_collection(conn, user_pk, _now(now))


def papers_of(engine: Engine, pk: int, viewer_pk: int | None) -> list[dict]:
    """The collection's visible papers in order: paper rows (with organization and submitter) plus
    note, position and added_at."""
    query = (_with_org(items.c.note, items.c.position, items.c.added_at)
             .join(items, items.c.paper_pk == papers.c.pk)
             .where(items.c.collection_pk == pk, _visible)
             .order_by(items.c.position, items.c.added_at, papers.c.pk))
    with engine.connect() as conn:
        _collection(conn, pk, viewer_pk)
        return [dict(r) for r in conn.execute(query).mappings()]


# --- papers in a collection ---------------------------------------------------------------------


def _count(conn: Connection, pk: int) -> int:
    return conn.execute(select(func.count()).where(items.c.collection_pk == pk)).scalar_one()


def insert_papers(conn: Connection, row: dict, paper_pks: list[int], now: datetime,
                  notes: dict[int, str] | None = None) -> None:
    """Put new papers into the collection in the given order: on top of the saved papers (newest
    saved first), at the end of any other collection. The caller checked they are not there yet."""
    if not paper_pks:
        return
    total = _count(conn, row["pk"]) + len(paper_pks)
    if total > MAX_PAPERS:
        raise CommunityError(f"A collection holds at most {MAX_PAPERS:,} papers; this would make {total:,}.")
    where = items.c.collection_pk == row["pk"]
    if row["is_default"]:
        first = (conn.execute(select(func.min(items.c.position)).where(where)).scalar() or 0) - len(paper_pks)
    else:
        last = conn.execute(select(func.max(items.c.position)).where(where)).scalar()
        first = 0 if last is None else last + 1
    notes = notes or {}
    conn.execute(insert(items), [
        {"collection_pk": row["pk"], "paper_pk": paper_pk, "position": first + i, "note": notes.get(paper_pk),
         "added_at": now} for i, paper_pk in enumerate(paper_pks)])
    _touch(conn, row["pk"], now)
    signals_changed(conn, row["user_pk"])


def _item(conn: Connection, pk: int, paper_id: str) -> int:
    paper_pk = conn.execute(select(papers.c.pk).where(papers.c.id == paper_id)).scalar()
    found = paper_pk is not None and conn.execute(select(items.c.paper_pk).where(
        items.c.collection_pk == pk, items.c.paper_pk == paper_pk)).first()
    if not found:
        raise NotFound(f"{paper_id[:80]!r} is not in this collection.")
    return paper_pk


def add_paper(engine: Engine, user_pk: int, pk: int, paper_id: str, note: str = "", *,
              now: datetime | None = None) -> bool:
    """Add a visible paper; False when it was there already (nothing changes)."""
    now = _now(now)
    note = _text(note, "note", MAX_NOTE, "note")
    try:
        with engine.begin() as conn:
            row = _owned(conn, user_pk, pk)
            paper_pk = _paper_pk(conn, paper_id)
            if conn.execute(select(items.c.paper_pk).where(items.c.collection_pk == pk,
                                                           items.c.paper_pk == paper_pk)).first():
                return False
            insert_papers(conn, row, [paper_pk], now, {paper_pk: note} if note else None)
            return True
    except IntegrityError:  # added by a concurrent request
        return False


def remove_paper(engine: Engine, user_pk: int, pk: int, paper_id: str, *, now: datetime | None = None) -> None:
    with engine.begin() as conn:
        _owned(conn, user_pk, pk)
        paper_pk = _item(conn, pk, paper_id)
        conn.execute(delete(items).where(items.c.collection_pk == pk, items.c.paper_pk == paper_pk))
        _touch(conn, pk, _now(now))
        signals_changed(conn, user_pk)


def set_note(engine: Engine, user_pk: int, pk: int, paper_id: str, note: str, *,
             now: datetime | None = None) -> None:
    """The owner's note on one paper of the collection (empty: no note)."""
    note = _text(note, "note", MAX_NOTE, "note")
    with engine.begin() as conn:
        _owned(conn, user_pk, pk)
        paper_pk = _item(conn, pk, paper_id)
        conn.execute(update(items).where(items.c.collection_pk == pk, items.c.paper_pk == paper_pk)
                     .values(note=note or None))
        _touch(conn, pk, _now(now))


def move_paper(engine: Engine, user_pk: int, pk: int, paper_id: str, position: int, *,
               now: datetime | None = None) -> int:
    """Move a paper to ``position`` (1 = first; beyond the end = last); returns where it went.
    The positions are renumbered 0, 1, 2... (a collection holds at most MAX_PAPERS)."""
    with engine.begin() as conn:
        _owned(conn, user_pk, pk)
        paper_pk = _item(conn, pk, paper_id)
        rows = conn.execute(select(items.c.paper_pk, items.c.position).where(items.c.collection_pk == pk)
                            .order_by(items.c.position, items.c.added_at, items.c.paper_pk)).all()
        before = dict(rows)
        order = [row.paper_pk for row in rows if row.paper_pk != paper_pk]
        where = min(max(int(position), 1), len(order) + 1)
        order.insert(where - 1, paper_pk)
        changed = [{"p": each, "at": i} for i, each in enumerate(order) if before[each] != i]
        if changed:
            conn.execute(update(items).where(items.c.collection_pk == pk, items.c.paper_pk == bindparam("p"))
                         .values(position=bindparam("at")), changed)
        _touch(conn, pk, _now(now))
        return where
