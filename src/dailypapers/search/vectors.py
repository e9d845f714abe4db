"""Semantic search storage: embedding the backlog, and nearest-neighbour search on both databases.

Embeddings live in ``paper_embeddings``, one row per paper, tagged with the model that made it. A
paper with no row for the current model needs embedding: ``embed_backlog`` finds those, embeds
them in batches of similar text length and commits once per batch, so an interrupted run loses at
most one batch and the next run carries on with what is still missing.

Search (``vector_search``) returns (paper pk, cosine similarity), best first, under the filters
(hidden papers never). The similarity is the exact float32 cosine of the stored vector, except
with ``exact=False`` on SQLite: the int8 codes' cosine (within ~0.005), which the hybrid search's
fusion uses (reading 400 vectors back cost a third of a search).

PostgreSQL: pgvector's HNSW index (``vector_cosine_ops``). The candidates come from a subquery that
orders by distance alone (``ORDER BY vector <=> :q LIMIT k`` with ``hnsw.ef_search = k``, k =
max(100, 4 * limit)); the filters apply to them, and while fewer than ``limit`` pass, k grows to
1,000 (pgvector's ceiling) and then the query runs exactly (an ORDER BY the index cannot serve,
narrowed by the filters' own indexes). With the filters in the same query as the HNSW ORDER BY the
planner often chose an exact scan instead. Measured at 100k (generated vectors, pgserver, loaded
2-core machine): top 10 unfiltered 24/35 ms p50/p95, recall 0.99 (ef_search 40 gave 0.91); top 10
with a 10% filter 38/126 ms, recall 0.99; top 100 with it 110/223 ms, recall 0.92 (HNSW's own
approximation among 1,000 candidates); a 0.5% filter goes exact: 91/105 ms, recall 1.0.

SQLite: a ``VectorIndex`` file per model beside the database (vector_index.py), scanned exactly in
int8; the best candidates are re-ranked by the exact float32 vectors read back from the table in the
same query that applies the filters, so stale or deleted entries of the file cannot surface.
Filters: the candidates are checked in rounds of 8x more (post-filtering) and only a filter that
passes too few of ~25k candidates makes the search ask SQL for every allowed pk (pre-filtering).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import Float, bindparam, cast, exists, func, literal, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import Select
from sqlalchemy.sql.selectable import Join

from dailypapers.search.filters import Filters, statement_for
from dailypapers.search.vector_index import Scored, VectorIndex, as_array, current_model, open_index
from dailypapers.store.backend import in_list
from dailypapers.store.schema import EMBEDDING_DIM, paper_embeddings, papers

try:  # the int8 kernel; without it the scan falls back to numpy (correct, several times slower)
    import numkong as _nk
except ImportError:  # pragma: no cover - numkong is a dependency
    _nk = None

PG_MIN_EF_SEARCH = 100  # pgvector's default 40 gave recall@10 0.91 at 100k; 100 gives 0.99 at the same speed
PG_MAX_EF_SEARCH = 1000  # pgvector's upper bound
MIN_CANDIDATES = 100  # int8 candidates re-ranked exactly, at least
CANDIDATE_FACTOR = 4  # ... or this many per wanted result
POST_FILTER_ROUNDS = 3  # candidate rounds (x8 each) checked against the filters before pre-filtering

_emb = paper_embeddings


# --- storage ----------------------------------------------------------------------------------------


def to_blob(vector: np.ndarray) -> bytes:
    """SQLite's form of a vector: little-endian float32 bytes."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def _vector_value(conn: Connection, vector: np.ndarray):  # noqa: ANN202
    return to_blob(vector) if conn.dialect.name == "sqlite" else np.asarray(vector, dtype=np.float32)


def stored_vectors(conn: Connection, pks, model: str | None = None) -> dict[int, np.ndarray]:  # noqa: ANN001
    """The stored vectors of these papers (of ``model`` when given), by paper pk."""
    pks = list(pks)
    if not pks:
        return {}
    query = select(_emb.c.paper_pk, _emb.c.vector).where(_emb.c.paper_pk.in_(pks))
    if model is not None:
        query = query.where(_emb.c.model == model)
    return {pk: as_array(vec) for pk, vec in conn.execute(query)}


def _missing_query(model: str):  # noqa: ANN202
    has_one = exists().where(_emb.c.paper_pk == papers.c.pk, _emb.c.model == model)
    return papers.c.hidden.is_(False), ~has_one


def backlog_size(engine: Engine, model: str) -> int:
    """How many visible papers have no embedding by ``model``."""
    with engine.connect() as conn:
        query = select(func.count()).select_from(papers).where(*_missing_query(model))
        return conn.execute(query).scalar_one()


def _insert_statement():  # noqa: ANN202
    """One embedding row, written only if the paper is still as it was read and has no row yet."""
    next_seq = select(func.coalesce(func.max(_emb.c.seq), 0) + 1).scalar_subquery()
    still_there = exists().where(papers.c.pk == bindparam("pk"), papers.c.hidden.is_(False),
                                 papers.c.changed_at == bindparam("changed_at"))
    taken = exists().where(_emb.c.paper_pk == bindparam("pk"))
    source = select(
        bindparam("pk", type_=_emb.c.paper_pk.type),
        bindparam("model", type_=_emb.c.model.type),
        cast(bindparam("vector", type_=_emb.c.vector.type), _emb.c.vector.type),
        next_seq,
    ).where(still_there, ~taken)
    return (_emb.insert().from_select(["paper_pk", "model", "vector", "seq"], source)
            .execution_options(preserve_rowcount=True))  # an INSERT's rowcount is not kept otherwise


def embed_backlog(
    engine: Engine,
    embedder,  # noqa: ANN001 - an Embedder: .name, .dim, .embed(texts, batch_size)
    *,
    batch_size: int = 64,
    on_progress: Callable[[int], None] | None = None,
    only: list[int] | None = None,
) -> int:
    """Embed every visible paper without an embedding by this embedder (or those of them whose pk is
    in ``only``: a paper just submitted); returns how many were written.

    Batches hold papers of similar text length (less padding for the model) and are committed one
    by one: interrupted, a rerun continues with what is missing. A paper that changed or was hidden
    while its batch was embedded is left for the next run; one embedded by another model is
    replaced. ``on_progress`` gets each batch's size after its commit.
    """
    from dailypapers.search.embedder import paper_text

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    model = embedder.name
    with engine.connect() as conn:
        size = func.length(papers.c.title) + func.length(papers.c.summary)
        missing = select(papers.c.pk, size).where(*_missing_query(model))
        found = conn.execute(missing if only is None else missing.where(papers.c.pk.in_(only))).all()
    pks_todo = np.fromiter((pk for pk, _ in found), np.int64, len(found))
    sizes = np.fromiter((n for _, n in found), np.int64, len(found))
    del found
    todo = pks_todo[np.lexsort((pks_todo, -sizes))]  # longest first: a memory problem shows at once
    insert = _insert_statement()
    written = 0
    for start in range(0, len(todo), batch_size):
        pks = todo[start:start + batch_size].tolist()
        with engine.connect() as conn:
            rows = conn.execute(select(papers.c.pk, papers.c.title, papers.c.summary, papers.c.changed_at)
                                .where(papers.c.pk.in_(pks), papers.c.hidden.is_(False))).all()
        if rows:
            vectors = embedder.embed([paper_text(r.title, r.summary) for r in rows], batch_size=batch_size)
            with engine.begin() as conn:
                conn.execute(_emb.delete().where(_emb.c.paper_pk.in_([r.pk for r in rows]),
                                                 _emb.c.model != model))
                for row, vector in zip(rows, vectors):
                    result = conn.execute(insert, {"pk": row.pk, "model": model, "changed_at": row.changed_at,
                                                   "vector": _vector_value(conn, vector)})
                    written += max(result.rowcount, 0)
        if on_progress:
            on_progress(len(pks))
    return written


# --- search -----------------------------------------------------------------------------------------


def _unit(vector) -> np.ndarray:  # noqa: ANN001
    q = np.asarray(vector, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(q))
    return q / norm if norm > 0 else q


def vector_search(
    engine: Engine,
    vector,  # noqa: ANN001 - the query's embedding
    filters: Filters = Filters(),
    limit: int = 10,
    *,
    index: VectorIndex | None = None,
    model: str | None = None,
    exact: bool = True,
) -> list[tuple[int, float]]:
    """The ``limit`` papers nearest to ``vector`` under ``filters``: (pk, cosine similarity), best first.

    ``model`` picks whose embeddings to search (default: the model written last). On SQLite,
    ``index`` defaults to the process's cached index beside the database (built when missing), and
    ``exact=False`` skips the float re-rank: int8 order and cosines (see ``_search_sqlite``).
    """
    with engine.connect() as conn:
        return nearest(conn, vector, filters, limit, index=index, model=model, exact=exact)


Check = Callable[[list[int]], set[int]]


def nearest(conn: Connection, vector, filters: Filters, limit: int, *,  # noqa: ANN001
            index: VectorIndex | None = None, model: str | None = None, exact: bool = True,
            checked: Check | None = None) -> list[tuple[int, float]]:
    """``vector_search`` on a connection the caller holds. ``checked`` (SQLite, not exact): keeps
    the pks that pass the filters and have a current embedding, in place of the query this runs for
    that (the hybrid search answers it for both of its sides at once)."""
    if limit <= 0:
        return []
    q = _unit(vector)
    if index is not None:
        model = index.model
    if model is None:
        model = current_model(conn)
        if model is None:
            return []
    if conn.dialect.name == "postgresql":
        return _search_postgresql(conn, q, filters, limit, model)
    if index is None:
        index = open_index(conn.engine, model=model)
    return _search_sqlite(conn, index, q, filters, limit, exact, checked)


def similarities(conn: Connection, vector, pks: list[int], model: str, *,  # noqa: ANN001
                 present: bool = False) -> dict[int, float]:
    """The query's cosine to each of these papers' stored vectors (those that have one).

    SQLite: from the index's int8 codes (within ~0.005; no vectors read back), exact for rows newer
    than the file; ``present``: the caller knows that each of these papers has a current embedding.
    PostgreSQL: the stored vectors."""
    q = _unit(vector)
    if conn.dialect.name != "sqlite":
        return {pk: float(np.dot(v, q)) for pk, v in stored_vectors(conn, pks, model=model).items()}
    index = open_index(conn.engine, model=model)
    allowed = np.unique(np.asarray(pks, np.int64))
    found = index.score(q, allowed).best(len(allowed))
    if not present:
        kept = set(conn.execute(_PRESENT, {"pks": list(found), "model": model}).scalars())
        found = {pk: score for pk, score in found.items() if pk in kept}
    return found


_PRESENT = select(_emb.c.paper_pk).where(in_list(_emb.c.paper_pk, "pks"), _emb.c.model == bindparam("model"))


def exact_search(engine: Engine, vector, filters: Filters = Filters(), limit: int = 10, *,  # noqa: ANN001
                 model: str | None = None) -> list[tuple[int, float]]:
    """The reference answer: every allowed stored vector scored in float32 (slow; for tests and benches)."""
    q = _unit(vector)
    with engine.connect() as conn:
        model = model or current_model(conn)
        if engine.dialect.name == "postgresql":
            return _search_postgresql(conn, q, filters, limit, model, exact=True) if model else []
        rows = conn.execute(select(_emb.c.paper_pk, _emb.c.vector)
                            .join(papers, papers.c.pk == _emb.c.paper_pk)
                            .where(_emb.c.model == model, *filters.conditions())).all()
    return _ranked([(pk, float(as_array(vec) @ q)) for pk, vec in rows], limit)


def _ranked(scored: list[tuple[int, float]], limit: int) -> list[tuple[int, float]]:
    return sorted(scored, key=lambda item: (-item[1], item[0]))[:limit]


# PostgreSQL: pgvector HNSW -----------------------------------------------------------------------


def _search_postgresql(conn: Connection, q: np.ndarray, filters: Filters, limit: int,
                       model: str, *, exact: bool = False) -> list[tuple[int, float]]:
    """HNSW candidates (``ef_search`` = their number), then the filters; exact when too few pass.

    The candidates come from a materialized subquery that orders by distance alone, so the HNSW
    index serves it whatever the filters: with the filters in the same query PostgreSQL's planner
    often prefers an exact scan (measured at 100k: ~100 ms for a 10%-selective filter, growing
    with the table) over the index (10-40 ms).
    """
    distance = _emb.c.vector.op("<=>", return_type=Float)(bindparam("q", q, type_=Vector(EMBEDDING_DIM)))
    conditions = filters.conditions()
    # SET LOCAL: until the end of the connection's transaction (begun by its first statement).
    k = max(PG_MIN_EF_SEARCH, MIN_CANDIDATES, CANDIDATE_FACTOR * limit)
    while not exact and k <= PG_MAX_EF_SEARCH:
        conn.execute(text(f"SET LOCAL hnsw.ef_search = {int(k)}"))
        nearest = (select(_emb.c.paper_pk, distance.label("distance")).where(_emb.c.model == model)
                   .order_by(distance).limit(k).cte("nearest").prefix_with("MATERIALIZED"))
        rows = conn.execute(select(nearest.c.paper_pk, nearest.c.distance)
                            .join(papers, papers.c.pk == nearest.c.paper_pk).where(*conditions)
                            .order_by(nearest.c.distance, nearest.c.paper_pk).limit(limit)).all()
        if len(rows) >= limit:
            return [(pk, 1.0 - float(dist)) for pk, dist in rows]
        k = PG_MAX_EF_SEARCH if k < PG_MAX_EF_SEARCH else PG_MAX_EF_SEARCH + 1
    # Too few candidates pass the filters (or the caller wants the exact answer): an ORDER BY
    # the HNSW index cannot serve makes the planner scan what the filters allow.
    rows = conn.execute(select(_emb.c.paper_pk, distance).join(papers, papers.c.pk == _emb.c.paper_pk)
                        .where(_emb.c.model == model, *conditions)
                        .order_by(distance + literal(0.0), _emb.c.paper_pk).limit(limit)).all()
    return [(pk, 1.0 - float(dist)) for pk, dist in rows]


def reindex_postgresql(engine: Engine) -> None:
    """Rebuild the HNSW index without blocking searches or writes (for ``dailypapers reindex``)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("REINDEX INDEX CONCURRENTLY ix_paper_embeddings_vector"))


class _OrderedJoin(Join):
    """A join whose left side SQLite must loop over first (its CROSS JOIN).

    Without statistics SQLite's planner would drive the re-rank query from ``ix_papers_daily_feed``
    (``hidden = 0`` looks selective), visiting every visible paper instead of the candidates.
    """

    inherit_cache = True


@compiles(_OrderedJoin, "sqlite")
def _compile_ordered_join(join: _OrderedJoin, compiler, **kw) -> str:  # noqa: ANN001
    kw["asfrom"] = True
    return (f"{compiler.process(join.left, **kw)} CROSS JOIN "
            f"{compiler.process(join.right, **kw)} ON {compiler.process(join.onclause, **kw)}")


def _checked(filters: Filters) -> tuple:
    """Candidates -> papers (the filters) -> their embeddings, in that order (SQLite's CROSS JOIN),
    the candidates passed as one JSON array (no limit on their number, one cached statement)."""
    candidates = func.json_each(bindparam("pks")).table_valued("value").alias("candidates")
    checked = _OrderedJoin(_OrderedJoin(candidates, papers, papers.c.pk == candidates.c.value),
                           _emb, _emb.c.paper_pk == papers.c.pk)
    return checked, (_emb.c.model == bindparam("model"), *filters.conditions())


def _candidate_vectors(filters: Filters) -> Select:
    checked, conditions = _checked(filters)
    return select(_emb.c.paper_pk, _emb.c.vector).select_from(checked).where(*conditions)


def _visible_candidates(filters: Filters) -> Select:
    """The same checks without reading the vectors (a paper whose embedding was dropped, its text
    having changed, is not found by the old codes still in the file)."""
    checked, conditions = _checked(filters)
    return select(papers.c.pk).select_from(checked).where(*conditions)


def _search_sqlite(conn: Connection, index: VectorIndex, q: np.ndarray, filters: Filters,
                   limit: int, exact: bool = True, checked: Check | None = None) -> list[tuple[int, float]]:
    """Candidates by int8 score, then the exact float re-rank under the filters, in one query.

    Not ``exact``: the int8 scores themselves (cosine within ~0.005), the filters checked on the
    papers alone (by ``checked`` when given), no vectors read back (for the hybrid search's fusion,
    which needs no more)."""
    want = max(MIN_CANDIDATES, CANDIDATE_FACTOR * limit) if exact else limit
    index.refresh(conn)
    if checked is None:
        visible = statement_for(filters, _visible_candidates)

        def checked(pks: list[int]) -> set[int]:
            return set(conn.execute(visible, {"pks": json.dumps(pks), "model": index.model}).scalars())

    def rerank(scored: Scored, k: int) -> list[tuple[int, float]]:
        if not exact:
            approximate = scored.best(k)
            kept = checked(list(approximate))
            return _ranked([(pk, score) for pk, score in approximate.items() if pk in kept], len(kept))
        pks = scored.top(k)
        if not len(pks):
            return []
        rows = conn.execute(statement_for(filters, _candidate_vectors),
                            {"pks": json.dumps(pks.tolist()), "model": index.model}).all()
        if not rows:
            return []
        matrix = np.frombuffer(b"".join(vec for _, vec in rows), dtype="<f4").reshape(len(rows), -1)
        return _ranked(list(zip((pk for pk, _ in rows), (matrix @ q).tolist())), len(rows))

    # Post-filter: the best candidates overall, widened while too few pass (a filter that
    # passes ~1 in 1,000 papers still finds its ten in the last round). Before the last round
    # twice the results wanted must pass, so that the last one taken is well inside the
    # candidates: near their int8 boundary the order is approximate (and less so far down).
    scored = index.score(q)
    k = want
    for round_ in range(1, POST_FILTER_ROUNDS + 1):
        found = rerank(scored, k)
        enough = limit if round_ == POST_FILTER_ROUNDS or not exact else 2 * limit
        if len(found) >= enough or k >= len(scored):
            return found[:limit]
        k *= 8
    # Pre-filter: a selective filter; score only the papers it allows.
    allowed = np.fromiter(conn.execute(select(papers.c.pk).join(_emb, _emb.c.paper_pk == papers.c.pk)
                                       .where(_emb.c.model == index.model, *filters.conditions())
                                       .order_by(papers.c.pk)).scalars(), np.int64)
    return rerank(index.score(q, allowed), want)[:limit]
