"""The ranking, chosen by bench/recommend.py (docs/recommend.md has the measurements).

1. Candidates, never a scan of every paper in Python: the vector index's nearest neighbours of the
   library as a whole and of its newest papers, the papers co-saved with the library by other
   readers, and the newest papers of what the reader follows.
2. Dense score: the cosine of each candidate to the mean of the library's papers, both centred on
   the corpus's mean vector (every embedding shares that direction; removing it sharpens topics).
3. Readers: a walk from the library, and from its 50 best dense candidates, through the readers who
   saved them to the rest of their libraries (sources.co_saved) adds ``READERS_WEIGHT`` x its
   normalized mass; papers near a dismissed one lose ``DISMISSED_WEIGHT`` x that cosine; followed
   papers gain ``FOLLOWED_BONUS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Connection

from dailypapers.recommend.signals import Signals
from dailypapers.recommend.sources import co_saved, corpus_mean, followed
from dailypapers.search.backends import backend_for, vectors_version
from dailypapers.search.filters import Filters
from dailypapers.search.vector_index import current_model
from dailypapers.search.vectors import stored_vectors
from dailypapers.store.schema import papers

LIBRARY_CANDIDATES = 1000  # nearest neighbours of the whole library's query (pgvector's ef_search ceiling)
SEED_QUERIES = 20  # the newest library papers asked for their own neighbours ...
SEED_NEIGHBOURS = 50  # ... this many each (a second interest is not drowned by the first)
EXPANSION = 50  # best dense candidates that also start the readers' walk
EXPANSION_TEMPERATURE = 0.05  # their weights: softmax of the dense score at this temperature
READERS_WEIGHT = 0.4
DISMISSED_WEIGHT = 0.5
FOLLOWED_BONUS = 0.1


@dataclass(frozen=True)
class Ranked:
    paper_pk: int
    score: float
    reason: dict  # {"kind": saved|collection|upvoted, "paper_pk", "collection"?} | follow | readers


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1)


def rank(conn: Connection, signals: Signals, limit: int) -> list[Ranked]:
    """The reader's best ``limit`` papers, best first, none of ``signals.excluded``."""
    model = current_model(conn)
    follows = followed(conn, signals.follows) if signals.follows else {}
    if model is None:
        return _followed_only(follows, signals, limit)
    stored = stored_vectors(conn, [s.paper_pk for s in signals.seeds], model=model)
    seeds = [s for s in signals.seeds if s.paper_pk in stored]
    if not seeds:
        return _followed_only(follows, signals, limit)
    mean = corpus_mean(conn, model, vectors_version(conn))
    library = _unit(np.stack([stored[s.paper_pk] for s in seeds]) - mean)
    query = library.mean(axis=0)

    backend = backend_for(conn.engine)
    dense_found = {pk for pk, _ in backend.nearest(conn, _unit(query), Filters(), LIBRARY_CANDIDATES,
                                                   model, exact=False)}
    for seed in seeds[:SEED_QUERIES]:
        dense_found.update(pk for pk, _ in backend.nearest(conn, stored[seed.paper_pk], Filters(),
                                                           SEED_NEIGHBOURS, model, exact=False))
    dense_found -= signals.excluded
    pks, vectors = _vectors(conn, (dense_found | set(follows)) - signals.excluded, model, mean)
    dense = vectors @ query

    # The readers' walk starts from the library and the best dense candidates.
    best = np.argsort(-dense, kind="stable")[:EXPANSION]
    weights = dict.fromkeys((s.paper_pk for s in seeds), 1.0 / len(seeds))
    if len(best):
        soft = np.exp((dense[best] - dense[best[0]]) / EXPANSION_TEMPERATURE)
        for i, w in zip(best, soft / soft.sum()):
            weights[int(pks[i])] = weights.get(int(pks[i]), 0.0) + float(w)
    mass = {pk: m for pk, m in co_saved(conn, signals.user_pk, weights).items() if pk not in signals.excluded}
    new = set(mass) - set(pks.tolist())
    if new:
        more_pks, more_vectors = _vectors(conn, new, model, mean)
        pks, vectors = np.concatenate([pks, more_pks]), np.concatenate([vectors, more_vectors])
        dense = vectors @ query
    if not len(pks):
        return []
    top_mass = max(mass.values(), default=0.0) or 1.0
    readers = np.array([mass.get(int(pk), 0.0) / top_mass for pk in pks])
    scores = dense + READERS_WEIGHT * readers
    if follows:
        scores += FOLLOWED_BONUS * np.isin(pks, list(follows))
    if signals.dismissed:
        gone = stored_vectors(conn, signals.dismissed, model=model)
        if gone:
            near = vectors @ _unit(np.stack(list(gone.values())) - mean).T
            scores -= DISMISSED_WEIGHT * np.maximum(near.max(axis=1), 0)

    closest = (vectors @ library.T).argmax(axis=1)
    order = np.lexsort((pks, -scores))[:limit]
    out = []
    for i in order:
        pk = int(pks[i])
        if pk in follows:
            reason = {"kind": "follow", "follow": follows[pk][0], "target": follows[pk][1]}
        elif pk not in dense_found and mass.get(pk):
            reason = {"kind": "readers"}
        else:
            reason = _seed_reason(seeds[closest[i]])
        out.append(Ranked(pk, float(scores[i]), reason))
    return out


def _vectors(conn: Connection, pks: set[int], model: str, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The candidates' stored vectors, centred and normalized (papers without one left out)."""
    found = stored_vectors(conn, sorted(pks), model=model)
    if not found:
        return np.zeros(0, np.int64), np.zeros((0, len(mean)), np.float32)
    return np.fromiter(found, np.int64, len(found)), _unit(np.stack(list(found.values())) - mean)


def _followed_only(follows: dict[int, tuple[str, str]], signals: Signals, limit: int) -> list[Ranked]:
    """No library to compare with: the followed papers, newest first as they came."""
    kept = [pk for pk in follows if pk not in signals.excluded][:limit]
    return [Ranked(pk, FOLLOWED_BONUS * (1 - i / (len(kept) + 1)),
                   {"kind": "follow", "follow": follows[pk][0], "target": follows[pk][1]})
            for i, pk in enumerate(kept)]


def _seed_reason(seed) -> dict:  # noqa: ANN001
    reason = {"kind": seed.kind, "paper_pk": seed.paper_pk}
    if seed.collection:
        reason["collection"] = seed.collection
    return reason


def similar(conn: Connection, paper_pk: int, limit: int) -> list[int]:
    """Papers like this one, best first: its nearest by embedding (cosine), each raised by
    ``READERS_WEIGHT`` x the normalized mass that a walk from the paper through the readers who saved
    it gives (what they also saved: a one-paper library's ranking, with the plain cosine of the
    vector index so that a paper nobody saved keeps its nearest neighbours)."""
    from dailypapers.search.vectors import vector_search

    model = current_model(conn)
    vector = stored_vectors(conn, [paper_pk], model=model).get(paper_pk) if model else None
    if vector is None:
        return []
    hits = dict(vector_search(conn.engine, vector, Filters(), max(4 * limit, 20) + 1, model=model))
    mass = co_saved(conn, -1, {paper_pk: 1.0})
    new = sorted(set(mass) - set(hits) - {paper_pk})
    if new:  # co-saved papers beyond the neighbours: the visible ones, with their cosines
        new = conn.execute(select(papers.c.pk).where(papers.c.pk.in_(new), papers.c.hidden.is_(False))).scalars()
        found = stored_vectors(conn, list(new), model=model)
        hits.update({pk: float(_unit(v) @ _unit(vector)) for pk, v in found.items()})
    hits.pop(paper_pk, None)
    top_mass = max(mass.values(), default=0.0) or 1.0
    scored = {pk: cos + READERS_WEIGHT * mass.get(pk, 0.0) / top_mass for pk, cos in hits.items()}
    return sorted(scored, key=lambda pk: (-scored[pk], pk))[:limit]
