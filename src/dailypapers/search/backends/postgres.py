"""The PostgreSQL search backend: the papers and vectors in the database, which several machines
share; a full-text index on each machine that serves searches, fed from the database.

Full text: search/fulltext.py's Tantivy index (BM25, block-max WAND), as on SQLite, kept under the
data dir (``fulltext/<host>-<port>-<database>.v1``) and fed from ``papers.text_seq`` by ``upkeep``:
each web process runs it every few seconds (jobs/__init__.py), every writer after it commits. The
database's own full text (``ts_rank`` x idf over the ``search_vector`` column) scored every match:
3.3 s p95 at 100k for a sentence of common words, against 18 ms here, and 0.681 against 0.695
nDCG@10 on SciFact (docs/benchmarks.md, "PostgreSQL beside SQLite").

Vectors: pgvector's HNSW index (``vector_cosine_ops``). The candidates come from a subquery that
orders by distance alone (``ORDER BY vector <=> :q LIMIT k`` with ``hnsw.ef_search = k``, k =
max(200, 4 * limit)); the filters apply to them, and while fewer than ``limit`` pass, k grows to
1,000 (pgvector's ceiling) and then the query runs exactly (an ORDER BY the index cannot serve,
narrowed by the filters' own indexes). With the filters in the same query as the HNSW ORDER BY the
planner often chose an exact scan instead. Measured at 100k (generated vectors, pgserver, loaded
2-core machine): top 10 unfiltered 24/35 ms p50/p95, recall 0.99 (ef_search 40 gave 0.91); top 10
with a 10% filter 38/126 ms, recall 0.99; top 100 with it 110/223 ms, recall 0.92 (HNSW's own
approximation among 1,000 candidates); a 0.5% filter goes exact: 91/105 ms, recall 1.0. At 1M
(migration 0012's graph): top 10 recall 0.95 at ``ef_search`` 100, 1.0 at 200.

``nearest``'s ``exact`` and ``checked`` change nothing here: its cosines are always those of the
stored vectors, and the filters apply in the same query; ``exact()`` is the exhaustive answer
(tests and benchmarks). The HNSW index follows every write by itself.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
from pgvector import Vector as PgVector
from pgvector.sqlalchemy import Vector
from sqlalchemy import Float, bindparam, literal, select, text
from sqlalchemy.engine import Connection, Engine

from dailypapers.search import fulltext, fulltext_search
from dailypapers.search.backends import HIDDEN_MARGIN
from dailypapers.search.filters import Filters
from dailypapers.search.query import Query
from dailypapers.store.backend import in_list
from dailypapers.store.db import SEARCHES
from dailypapers.store.schema import EMBEDDING_DIM, paper_embeddings, papers

PG_MIN_EF_SEARCH = 200  # recall@10 at 1M papers (migration 0012's graph): 0.95 at 100, 1.0 at 200 (~6 ms)
PG_MAX_EF_SEARCH = 1000  # pgvector's upper bound
MIN_CANDIDATES = 100  # HNSW candidates, at least
CANDIDATE_FACTOR = 4  # ... or this many per wanted result

_emb = paper_embeddings


def vector_value(vector: np.ndarray) -> np.ndarray:
    """How ``paper_embeddings.vector`` stores a vector here: a pgvector ``vector`` (float32)."""
    return np.asarray(vector, dtype=np.float32)


# --- full text: a Tantivy index on each machine, fed from the database --------------------------------


def text_top(conn: Connection, query: Query, filters: Filters, limit: int,
             checked=None) -> list[tuple[int, float]]:  # noqa: ANN001
    """(pk, BM25 score) of the best matches under the filters, best first (search/fulltext.py)."""
    return fulltext_search.search(conn, query, filters, limit, checked)


# --- vectors: pgvector HNSW -------------------------------------------------------------------------


def nearest(conn: Connection, q: np.ndarray, filters: Filters, limit: int, model: str, *,
            exact: bool = True, checked=None) -> list[tuple[int, float]]:  # noqa: ANN001, ARG001
    """The papers nearest to the unit vector ``q`` by the HNSW index (cosines always exact). Not
    ``exact``: as many candidates as results (the hybrid search's 100 for its fusion), not 4x:
    ``ef_search`` 400 cost 33 of a 78 ms search at 100k papers."""
    return _nearest(conn, q, filters, limit, model, factor=CANDIDATE_FACTOR if exact else 1)


def _nearest(conn: Connection, q: np.ndarray, filters: Filters, limit: int, model: str, *,
             exhaustive: bool = False, factor: int = CANDIDATE_FACTOR) -> list[tuple[int, float]]:
    """HNSW candidates (``ef_search`` = their number), then the filters; exact when too few pass.

    The candidates come from a materialized subquery that orders by distance alone, so the HNSW
    index serves it whatever the filters: with the filters in the same query PostgreSQL's planner
    often prefers an exact scan (measured at 100k: ~100 ms for a 10%-selective filter, growing
    with the table) over the index (10-40 ms).
    """
    distance = _emb.c.vector.op("<=>", return_type=Float)(bindparam("q", q, type_=Vector(EMBEDDING_DIM)))
    conditions = filters.conditions()
    k = max(PG_MIN_EF_SEARCH, MIN_CANDIDATES, factor * limit)
    while not exhaustive and k <= PG_MAX_EF_SEARCH:
        _ef_search(conn, k)
        candidates = (select(_emb.c.paper_pk, distance.label("distance")).where(_emb.c.model == model)
                   .order_by(distance).limit(k).cte("nearest").prefix_with("MATERIALIZED"))
        rows = conn.execute(select(candidates.c.paper_pk, candidates.c.distance)
                            .join(papers, papers.c.pk == candidates.c.paper_pk).where(*conditions)
                            .order_by(candidates.c.distance, candidates.c.paper_pk).limit(limit)).all()
        if len(rows) >= limit:
            return [(pk, 1.0 - float(dist)) for pk, dist in rows]
        k = PG_MAX_EF_SEARCH if k < PG_MAX_EF_SEARCH else PG_MAX_EF_SEARCH + 1
    # Too few candidates pass the filters (or the caller wants the exact answer): an ORDER BY
    # the HNSW index cannot serve makes the planner scan what the filters allow.
    rows = conn.execute(select(_emb.c.paper_pk, distance).join(papers, papers.c.pk == _emb.c.paper_pk)
                        .where(_emb.c.model == model, *conditions)
                        .order_by(distance + literal(0.0), _emb.c.paper_pk).limit(limit)).all()
    return [(pk, 1.0 - float(dist)) for pk, dist in rows]


def _ef_search(conn: Connection, k: int) -> None:
    """``hnsw.ef_search = k`` for the statements that follow. A read (autocommit, store/backend.py)
    sets it for the pooled connection's session, only when it differs from what that session last
    set: a round trip fewer for nearly every search. In a transaction, ``SET LOCAL`` (a rollback
    would undo a session ``SET`` behind the record)."""
    if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        conn.execute(text(f"SET LOCAL hnsw.ef_search = {int(k)}"))
        return
    session = conn.connection.info  # kept with the driver's connection while the pool keeps it
    if session.get("hnsw.ef_search") != k:
        conn.execute(text(f"SET hnsw.ef_search = {int(k)}"))
        session["hnsw.ef_search"] = k


# Each query's HNSW neighbours in one statement: an index scan per row of the array, visible papers kept.
_NEAREST_EACH = text("""
    SELECT q.ord, n.paper_pk, 1 - n.distance AS cosine
    FROM unnest(CAST(:queries AS vector[])) WITH ORDINALITY AS q(v, ord)
    CROSS JOIN LATERAL (
        SELECT e.paper_pk, e.vector <=> q.v AS distance FROM paper_embeddings e
        WHERE e.model = :model ORDER BY e.vector <=> q.v LIMIT :take) AS n
    JOIN papers ON papers.pk = n.paper_pk AND NOT papers.hidden
    ORDER BY q.ord, n.distance, n.paper_pk""")


def nearest_each(conn: Connection, queries: np.ndarray, limits: list[int],
                 model: str) -> list[list[tuple[int, float]]]:
    """For each unit vector of ``queries``, its ``limits[i]`` nearest visible papers by the HNSW
    index (``HIDDEN_MARGIN`` more taken, then the hidden ones left out: a list comes short only when
    more of them are hidden): one statement per distinct limit, whose ``ef_search`` it sets."""
    found: list[list[tuple[int, float]]] = [[] for _ in queries]
    for k in sorted(set(limits)):
        rows = [i for i, limit in enumerate(limits) if limit == k]
        take = k + HIDDEN_MARGIN
        _ef_search(conn, min(take, PG_MAX_EF_SEARCH))
        vectors = [PgVector(queries[i]).to_text() for i in rows]
        for ord_, pk, cosine in conn.execute(_NEAREST_EACH, {"queries": vectors, "model": model, "take": take}):
            found[rows[ord_ - 1]].append((pk, float(cosine)))
    return [each[:k] for each, k in zip(found, limits)]


def exact(conn: Connection, q: np.ndarray, filters: Filters, limit: int,
          model: str) -> list[tuple[int, float]]:
    """Every allowed stored vector scored (an ORDER BY the HNSW index cannot serve)."""
    return _nearest(conn, q, filters, limit, model, exhaustive=True)


_COSINES = (select(_emb.c.paper_pk, (1.0 - _emb.c.vector.op("<=>", return_type=Float)(
    bindparam("q", type_=Vector(EMBEDDING_DIM)))).label("cosine"))
    .where(in_list(_emb.c.paper_pk, "pks"), _emb.c.model == bindparam("model")))


def similarities(conn: Connection, q: np.ndarray, pks: list[int], model: str, *,
                 present: bool = False) -> dict[int, float]:  # noqa: ARG001
    """The query's cosine to the stored vectors of these papers (those that have one), computed by
    the database: one statement, prepared once per connection, that sends back a number per paper
    rather than its 384 floats as text."""
    if not pks:
        return {}
    return {pk: float(c) for pk, c in conn.execute(_COSINES, {"q": vector_value(q), "pks": list(pks),
                                                                "model": model})}


# --- upkeep -----------------------------------------------------------------------------------------


def _searches(engine: Engine) -> bool:
    """False for a jobs worker's engine (store/db.py): the full-text index is for the processes that
    serve searches, each machine's own; a worker on a machine without them would build one for no one."""
    return engine.get_execution_options().get(SEARCHES, True)


def following(engine: Engine):  # noqa: ANN201 - a context manager with poke()
    """While a long write runs (an ingest), index what it commits from a thread; see fulltext.py."""
    if not _searches(engine):
        return nullcontext(SimpleNamespace(poke=lambda: None))
    return fulltext.Following(engine)


def index_vectors(engine: Engine, model: str, *, fresh: bool = False) -> None:  # noqa: ARG001
    """Nothing to write: the HNSW index lives in the database (``rebuild`` rebuilds it)."""
    return None


def upkeep(engine: Engine) -> int:
    """Index the papers whose text changed in this machine's Tantivy index (the HNSW index follows
    every write by itself); returns the papers indexed. Nothing in a jobs worker: the web
    processes' IndexFollower (jobs/__init__.py) catches up within seconds."""
    return fulltext.sync(engine) if _searches(engine) else 0


def rebuild(engine: Engine) -> list[str]:
    """This machine's full-text index afresh, and the HNSW index rebuilt without blocking searches or
    writes (``dailypapers reindex``): a line for the operator on each."""
    started = time.perf_counter()
    count = fulltext.sync(engine, rebuild=True, threads=fulltext.ALONE_THREADS)
    lines = [f"full-text index rebuilt: {count:,} papers in {time.perf_counter() - started:.1f} s"]
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("REINDEX INDEX CONCURRENTLY ix_paper_embeddings_vector"))
    return [*lines, f"PostgreSQL HNSW index rebuilt in {time.perf_counter() - started:.1f} s"]
