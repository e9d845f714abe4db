"""Personal recommendations ("For you"): papers ranked for a reader from their signals, with a reason.

``for_reader`` answers from the reader's row of ``recommendations`` while it is fresh (made at the
reader's current ``users.signals_version``, and no embedding written since), else ranks anew
(rank.py), stores and returns. ``refresh`` recomputes the stale rows (a job runs it after new papers
are embedded). The method and its measurements: docs/recommend.md.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from dailypapers.recommend import signals as _signals
from dailypapers.recommend.rank import rank, similar
from dailypapers.search.backends import vectors_version
from dailypapers.store.schema import collection_items, collections, papers, recommendations, users

CACHED = 300  # recommendations kept per reader: the most any caller gets
SIMILAR_CACHED = 10_000  # papers whose similar papers are kept per process, the most recently asked


@dataclass(frozen=True)
class Recommendation:
    paper_id: str
    score: float
    because: str  # 'because you saved "Attention is all you need"', 'from cs.RO, which you follow', ...
    because_paper_id: str | None  # the paper named in ``because``, for a link


def has_signals(engine: Engine, user_pk: int) -> bool:
    """Whether the reader has any positive signal: a paper saved or in a collection, an upvote, a follow."""
    with engine.connect() as conn:
        return _signals.has_signals(conn, user_pk)


def for_reader(engine: Engine, user_pk: int, *, limit: int = 50) -> list[Recommendation]:
    """The reader's recommendations, best first (at most ``CACHED``): from their cached row when it
    is fresh, else ranked, stored and returned. Never a paper they saved, voted or dismissed, nor a
    hidden one."""
    limit = max(0, min(limit, CACHED))
    with engine.connect() as conn:
        row = conn.execute(select(recommendations.c["items"], recommendations.c.signals_version,
                                  recommendations.c.embeddings_seq, users.c.signals_version.label("now"))
                           .join(users, users.c.pk == recommendations.c.user_pk)
                           .where(recommendations.c.user_pk == user_pk)).first()
        if row is not None and row.signals_version == row.now and row.embeddings_seq >= vectors_version(conn):
            items = row.items
        else:
            items = None
    if items is None:
        items = _compute(engine, user_pk)
    with engine.connect() as conn:
        return _explained(conn, items, limit)


def refresh(engine: Engine, user_pks: list[int] | None = None) -> int:
    """Recompute the stale cached rows (of these readers, else of every reader who has one; a reader
    of ``user_pks`` without a row gets one); returns how many were recomputed."""
    with engine.connect() as conn:
        version = vectors_version(conn)
        query = (select(users.c.pk).outerjoin(recommendations, recommendations.c.user_pk == users.c.pk)
                 .where(or_(recommendations.c.user_pk.is_(None),
                            recommendations.c.signals_version != users.c.signals_version,
                            recommendations.c.embeddings_seq < version)))
        if user_pks is None:
            query = query.where(recommendations.c.user_pk.is_not(None))
        else:
            query = query.where(users.c.pk.in_(list(user_pks)))
        stale = list(conn.execute(query.order_by(users.c.pk)).scalars())
    for user_pk in stale:
        _compute(engine, user_pk)
    return len(stale)


# (database, paper pk, how many) -> (versions, similar pks), least recently used first. Keyed by the
# database (one process may serve several: the tests do) and checked against the versions on every
# call, so a new embedding or a save by one of the paper's readers shows at once in every process.
_similar: OrderedDict[tuple[str, int, int], tuple[tuple, list[int]]] = OrderedDict()
_similar_lock = threading.Lock()


def similar_to(engine: Engine, paper_pk: int, limit: int = 5) -> list[int]:
    """The pks of the papers most like this one, best first: ranked as for a library of this one
    paper (its nearest by embedding, raised by what its readers also saved; rank.similar). A paper
    viewed again and again is answered from a per-process cache until an embedding is written or
    one of its readers changes their library."""
    key = (str(engine.url), paper_pk, limit)  # str() hides a password
    with engine.connect() as conn:
        holders = (select(collections.c.user_pk)
                   .join(collection_items, collection_items.c.collection_pk == collections.c.pk)
                   .where(collection_items.c.paper_pk == paper_pk))
        readers = conn.execute(select(func.count(), func.coalesce(func.sum(users.c.signals_version), 0))
                               .where(users.c.pk.in_(holders))).one()
        versions = (vectors_version(conn), *readers)
        with _similar_lock:
            cached = _similar.get(key)
        if cached is not None and cached[0] == versions:
            found = cached[1]
        else:
            found = similar(conn, paper_pk, limit)
    with _similar_lock:
        _similar[key] = (versions, found)
        _similar.move_to_end(key)
        while len(_similar) > SIMILAR_CACHED:
            _similar.popitem(last=False)
    return found


def _compute(engine: Engine, user_pk: int) -> list[dict]:
    """Rank for the reader and store the row (with the versions read before ranking: a signal or an
    embedding written meanwhile leaves it stale, to be ranked again)."""
    with engine.connect() as conn:
        seq = vectors_version(conn)
        found = _signals.read(conn, user_pk)
        if found is None:
            return []
        items = [{"paper_pk": r.paper_pk, "score": round(r.score, 6), "reason": r.reason}
                 for r in rank(conn, found, CACHED)]
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    try:
        with engine.begin() as conn:
            conn.execute(delete(recommendations).where(recommendations.c.user_pk == user_pk))
            conn.execute(insert(recommendations).values(user_pk=user_pk, items=items,
                                                        signals_version=found.version, embeddings_seq=seq,
                                                        computed_at=now))
    except IntegrityError:  # another process stored the same reader's row first: theirs serves
        pass
    return items


def _explained(conn: Connection, items: list[dict], limit: int) -> list[Recommendation]:
    """The cached items as Recommendations: paper ids and titles read now, hidden papers left out."""
    named = {i["reason"].get("paper_pk") for i in items} - {None}
    wanted = [i["paper_pk"] for i in items[:limit + 50]]  # a few spare for papers hidden since
    rows = {r.pk: r for r in conn.execute(select(papers.c.pk, papers.c.id, papers.c.title, papers.c.hidden)
                                          .where(papers.c.pk.in_(set(wanted) | named)))}
    found = []
    for item in items:
        row = rows.get(item["paper_pk"])
        if row is None or row.hidden:
            continue
        because, because_pk = _because(item["reason"], rows)
        found.append(Recommendation(row.id, item["score"], because, because_pk))
        if len(found) == limit:
            break
    return found


_FOLLOWED = {"category": "from {}, which you follow", "author": "by {}, whom you follow",
             "organization": "from {}, which you follow"}


def _because(reason: dict, rows: dict) -> tuple[str, str | None]:
    kind = reason.get("kind")
    if kind == "follow":
        return _FOLLOWED.get(reason.get("follow"), "from {}, which you follow").format(reason["target"]), None
    if kind == "readers":
        return "saved by readers with libraries like yours", None
    paper = rows.get(reason.get("paper_pk"))
    if paper is None:
        return "from your library", None
    if kind == "upvoted":
        return f'because you upvoted "{paper.title}"', paper.id
    if kind == "collection":
        return f'because "{paper.title}" is in your collection "{reason.get("collection")}"', paper.id
    return f'because you saved "{paper.title}"', paper.id


__all__ = ["CACHED", "Recommendation", "for_reader", "has_signals", "refresh", "similar_to"]
