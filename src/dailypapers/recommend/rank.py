"""The ranking: candidates from the vector index around the reader's library, scored in numpy.

No scan of every paper per reader: each seed (a library paper) asks the vector index for its
nearest neighbours, and only that union of candidates is scored, as a matrix product of their
vectors with the seeds'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy.engine import Connection

from dailypapers.recommend.signals import Signals
from dailypapers.search.backends import backend_for
from dailypapers.search.filters import Filters
from dailypapers.search.vector_index import current_model
from dailypapers.search.vectors import stored_vectors

NEIGHBOURS = 100  # candidates asked of the vector index per seed


@dataclass(frozen=True)
class Ranked:
    paper_pk: int
    score: float
    reason: dict  # {"kind": saved|collection|upvoted, "paper_pk", "collection"?} | {"kind": "follow", ...}


def rank(conn: Connection, signals: Signals, limit: int) -> list[Ranked]:
    """The reader's best ``limit`` papers, best first, none of ``signals.excluded``."""
    model = current_model(conn)
    if model is None or not signals.seeds:
        return []
    seeds = stored_vectors(conn, [s.paper_pk for s in signals.seeds], model=model)
    seed_list = [s for s in signals.seeds if s.paper_pk in seeds]
    if not seed_list:
        return []
    backend = backend_for(conn.engine)
    candidates: set[int] = set()
    for seed in seed_list:
        candidates.update(pk for pk, _ in backend.nearest(conn, seeds[seed.paper_pk], Filters(), NEIGHBOURS, model))
    candidates -= signals.excluded
    if not candidates:
        return []
    vectors = stored_vectors(conn, sorted(candidates), model=model)
    pks = np.fromiter(vectors, np.int64, len(vectors))
    matrix = np.stack(list(vectors.values()))
    library = np.stack([seeds[s.paper_pk] for s in seed_list])
    sims = matrix @ library.T  # candidates x seeds
    scores = sims.mean(axis=1)
    closest = sims.argmax(axis=1)
    order = np.lexsort((pks, -scores))[:limit]
    return [Ranked(int(pks[i]), float(scores[i]), _seed_reason(seed_list[closest[i]])) for i in order]


def _seed_reason(seed) -> dict:  # noqa: ANN001
    reason = {"kind": seed.kind, "paper_pk": seed.paper_pk}
    if seed.collection:
        reason["collection"] = seed.collection
    return reason
