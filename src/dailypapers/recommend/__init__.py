"""Personal recommendations ("For you"): papers ranked for a reader from their signals, with a reason.

``for_reader`` answers from the reader's row of ``recommendations`` while it is fresh (made at the
reader's current ``users.signals_version``, and no embedding written since). When only new papers
were embedded since, they are scored and merged into the row (``MERGED_AT_MOST`` of them at most);
when the reader's signals changed, the list is ranked anew (rank.py). ``refresh`` brings the stale
rows up to date (a job runs it after new papers are embedded). A row is stored in the order it is
served: by score, mixed so that every ``FOLLOWED_EVERY`` cards hold a followed paper. The method
and its measurements:
docs/recommend.md.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from dailypapers.recommend import signals as _signals
from dailypapers.recommend.rank import rank, rank_new, similar
from dailypapers.search.backends import vectors_version
from dailypapers.search.vectors import embedded_since
from dailypapers.store.backend import in_list
from dailypapers.store.schema import collection_items, collections, papers, recommendations, users

CACHED = 300  # recommendations kept per reader: the most any caller gets
FOLLOWED_EVERY = 5  # at least one card in every five is a followed paper, while the list holds any
MERGED_AT_MOST = 5_000  # new embeddings merged into a cached list; more (a new model) rank it anew
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
        row = conn.execute(_ROW.where(recommendations.c.user_pk == user_pk)).first()
        fresh = row is not None and row.signals_version == row.now
        version = vectors_version(conn)
        items = row.items if fresh and row.embeddings_seq >= version else None
    if items is None and fresh:
        items = _merged(engine, row, version, {})
    if items is None:
        items = _compute(engine, user_pk)
    with engine.connect() as conn:
        return _explained(conn, items, limit)


def refresh(engine: Engine, user_pks: list[int] | None = None) -> int:
    """Bring the stale cached rows up to date (of these readers, else of every reader who has one; a
    reader of ``user_pks`` without a row gets one): new papers merged in where only they changed, the
    rest ranked anew. Returns how many rows changed."""
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
        rows = {r.user_pk: r for r in conn.execute(_ROW.where(in_list(recommendations.c.user_pk, "pks")),
                                                    {"pks": stale})}
    new_since: dict[int, dict | None] = {}  # the new papers' vectors, read once per starting seq
    for user_pk in stale:
        row = rows.get(user_pk)
        if row is None or row.signals_version != row.now or _merged(engine, row, version, new_since) is None:
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


_ROW = (select(recommendations.c.user_pk, recommendations.c["items"], recommendations.c.signals_version,
               recommendations.c.embeddings_seq, users.c.signals_version.label("now"))
        .join(users, users.c.pk == recommendations.c.user_pk))


def _merged(engine: Engine, row, version: int, new_since: dict[int, dict | None]) -> list[dict] | None:  # noqa: ANN001
    """The reader's cached list with the papers embedded after it and up to ``version`` (a
    ``vectors_version``) scored and merged in, and stored; None when it must be ranked anew (too many
    new papers, or no library to score them by). ``new_since`` keeps the new papers' vectors by
    starting seq, for the next reader's merge."""
    with engine.connect() as conn:
        if row.embeddings_seq not in new_since:
            new_since[row.embeddings_seq] = embedded_since(conn, row.embeddings_seq, version, MERGED_AT_MOST)
        new = new_since[row.embeddings_seq]
        found = _signals.read(conn, row.user_pk) if new is not None else None
        if found is None or found.version != row.signals_version:
            return None
        ranked = rank_new(conn, found, new)
    if ranked is None:
        return None
    kept = [i for i in row.items if i["paper_pk"] not in new]  # a paper embedded again is scored again
    ranked_items = [{"paper_pk": r.paper_pk, "score": round(r.score, 6), "reason": r.reason} for r in ranked]
    items = _kept(kept + ranked_items)
    _store(engine, row.user_pk, items, found.version, version)
    return items


def _compute(engine: Engine, user_pk: int) -> list[dict]:
    """Rank for the reader and store the row (with the versions read before ranking: a signal or an
    embedding written meanwhile leaves it stale, to be ranked again)."""
    with engine.connect() as conn:
        seq = vectors_version(conn)
        found = _signals.read(conn, user_pk)
        if found is None:
            return []
        items = _kept([{"paper_pk": r.paper_pk, "score": round(r.score, 6), "reason": r.reason}
                       for r in rank(conn, found, None)])
    _store(engine, user_pk, items, found.version, seq)
    return items


def _kept(items: list[dict]) -> list[dict]:
    """A reader's row in the order it is served: the best ``CACHED`` items by score, except that
    ``FOLLOWED_EVERY`` cards in a row always hold a followed paper while one is left (a follow is
    asked for explicitly, and a library of another field would otherwise bury it); followed papers
    beyond the best ``CACHED`` are kept to fill those places."""
    def best_first(item: dict) -> tuple[float, int]:
        return -item["score"], item["paper_pk"]

    items = sorted(items, key=best_first)
    followed = deque(i for i in items if i["reason"]["kind"] == "follow")
    others = deque(i for i in items[:CACHED] if i["reason"]["kind"] != "follow")
    out, since_followed = [], 0
    while others or (followed and len(out) < CACHED + CACHED // FOLLOWED_EVERY):
        due = since_followed == FOLLOWED_EVERY - 1
        if followed and (not others or due or best_first(followed[0]) < best_first(others[0])):
            out.append(followed.popleft())
            since_followed = 0
        else:
            out.append(others.popleft())
            since_followed += 1
    return out


def _store(engine: Engine, user_pk: int, items: list[dict], signals_version: int, seq: int) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    try:
        with engine.begin() as conn:
            conn.execute(delete(recommendations).where(recommendations.c.user_pk == user_pk))
            conn.execute(insert(recommendations).values(user_pk=user_pk, items=items,
                                                        signals_version=signals_version, embeddings_seq=seq,
                                                        computed_at=now))
    except IntegrityError:  # another process stored the same reader's row first: theirs serves
        pass


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
    if kind == "popular":
        return "saved by many readers", None
    paper = rows.get(reason.get("paper_pk"))
    if paper is None:
        return "from your library", None
    if kind == "upvoted":
        return f'because you upvoted "{paper.title}"', paper.id
    if kind == "collection":
        return f'because "{paper.title}" is in your collection "{reason.get("collection")}"', paper.id
    return f'because you saved "{paper.title}"', paper.id


__all__ = ["CACHED", "FOLLOWED_EVERY", "Recommendation", "for_reader", "has_signals", "refresh", "similar_to"]
