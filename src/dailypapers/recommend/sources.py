"""Where candidates come from besides the vector index: what readers with overlapping libraries
saved, and the papers of what the reader follows; and the corpus's mean vector (for centring)."""

from __future__ import annotations

import threading
from collections import defaultdict

import numpy as np
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from dailypapers.search.backends import backend_for
from dailypapers.search.filters import Filters
from dailypapers.search.query import Query
from dailypapers.search.vector_index import as_array
from dailypapers.store.backend import in_list
from dailypapers.store.schema import collection_items, collections, organizations, paper_embeddings, papers

MEAN_SAMPLE = 5000  # stored vectors averaged for the corpus mean
MAX_READERS = 400  # other readers whose libraries are read per recommendation, the most overlapping
FOLLOWED_PAPERS = 100  # newest papers taken per follow

# --- the corpus mean ---------------------------------------------------------------------------------

_means: dict[tuple[str, str], tuple[int, np.ndarray]] = {}
_means_lock = threading.Lock()


def corpus_mean(conn: Connection, model: str, version: int) -> np.ndarray:
    """The mean of (a spread sample of) the stored vectors, kept per process until the vectors grew
    by a tenth: every embedding shares this direction, and removing it sharpens cosines between
    topics (docs/recommend.md)."""
    key = (conn.engine.url.render_as_string(hide_password=True), model)
    with _means_lock:
        kept = _means.get(key)
    if kept is not None and version <= kept[0] * 1.1 + 100:
        return kept[1]
    emb = paper_embeddings
    count = conn.execute(select(func.count()).where(emb.c.model == model)).scalar_one()
    step = max(1, count // MEAN_SAMPLE)
    rows = conn.execute(select(emb.c.vector).where(emb.c.model == model, emb.c.paper_pk % step == 0)
                        .limit(MEAN_SAMPLE)).scalars().all()
    mean = np.mean([as_array(v) for v in rows], axis=0).astype(np.float32) if rows else None
    if mean is None:
        return np.zeros(0, np.float32)
    with _means_lock:
        _means[key] = (version, mean)
    return mean


# --- readers with overlapping libraries ---------------------------------------------------------------

_HOLDERS = (select(collections.c.user_pk, collection_items.c.paper_pk)
            .join(collections, collections.c.pk == collection_items.c.collection_pk)
            .where(in_list(collection_items.c.paper_pk, "pks"), collections.c.user_pk != bindparam("me")))
_LIBRARIES = (select(collections.c.user_pk, collection_items.c.paper_pk)
              .join(collections, collections.c.pk == collection_items.c.collection_pk)
              .where(in_list(collections.c.user_pk, "users")))


def co_saved(conn: Connection, user_pk: int, weights: dict[int, float]) -> dict[int, float]:
    """A walk from the weighted papers through the readers who saved them to the rest of their
    libraries: paper -> mass. A reader's library spreads each of its papers' mass evenly over its
    other papers, and each paper's mass is shared by the readers who hold it (item-to-item
    co-occurrence, normalized; "readers with libraries like yours")."""
    if not weights:
        return {}
    holders = conn.execute(_HOLDERS, {"pks": list(weights), "me": user_pk}).all()
    if not holders:
        return {}
    overlap: dict[int, float] = defaultdict(float)
    for reader, pk in holders:
        overlap[reader] += weights[pk]
    readers = sorted(overlap, key=lambda r: (-overlap[r], r))[:MAX_READERS]
    libraries: dict[int, set[int]] = defaultdict(set)
    for reader, pk in conn.execute(_LIBRARIES, {"users": readers}):
        libraries[reader].add(pk)
    # How much of each source paper's mass goes to each of its holders' other papers.
    out_degree: dict[int, float] = defaultdict(float)
    for reader, library in libraries.items():
        for pk in library & weights.keys():
            out_degree[pk] += (len(library) - 1) / len(library)
    mass: dict[int, float] = defaultdict(float)
    for reader, library in libraries.items():
        sources = library & weights.keys()
        if len(library) < 2 or not sources:
            continue
        share = sum(weights[pk] / out_degree[pk] for pk in sources if out_degree[pk]) / len(library)
        for pk in library:
            mass[pk] += share
    return dict(mass)


# --- follows ----------------------------------------------------------------------------------------


def followed(conn: Connection, follows: list[tuple[str, str]]) -> dict[int, tuple[str, str]]:
    """The newest papers of each followed category, author and organization: pk -> (kind, target)
    of the first follow that brings it."""
    found: dict[int, tuple[str, str]] = {}
    for kind, target in follows:
        if kind == "author":
            pks = [pk for pk, _ in backend_for(conn.engine).text_top(
                conn, Query(authors=(target,), raw=f'author:"{target}"'), Filters(), FOLLOWED_PAPERS)]
        else:
            if kind == "category":
                where = Filters(categories=(target,)).conditions()
            elif kind == "organization":
                where = [*Filters().conditions(), papers.c.organization_pk.in_(
                    select(organizations.c.pk).where(organizations.c.name == target))]
            else:
                continue
            pks = conn.execute(select(papers.c.pk).where(*where)
                               .order_by(papers.c.published_at.desc().nulls_last(), papers.c.pk.desc())
                               .limit(FOLLOWED_PAPERS)).scalars().all()
        for pk in pks:
            found.setdefault(pk, (kind, target))
    return found


__all__ = ["co_saved", "corpus_mean", "followed"]
