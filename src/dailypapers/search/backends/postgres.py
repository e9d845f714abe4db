"""The PostgreSQL search backend: everything lives in the database, which several web hosts share.

Full text: the stored, weighted ``search_vector`` column (store/backend.py) and its GIN index.
PostgreSQL has no BM25, and plain ``ts_rank`` has no idea that "model" is common and "mamba"
rare; so each word's ``ts_rank`` (weighted by the A/B/C labels of the stored ``search_vector``)
is multiplied by the word's idf, read from the planner's statistics. Measured nDCG@10 on SciFact
(300 claims, 5,183 abstracts): ts_rank of the whole query 0.564, ts_rank_cd 0.36-0.40, per-word
ts_rank x idf 0.68 (0.55 before the table is first analyzed). Every word reaches PostgreSQL as a
bound parameter of ``plainto_tsquery`` / ``phraseto_tsquery``: never syntax.
Free words are OR-ed: recall matters more than precision here, since the hybrid fusion re-orders
with the semantic results.

Vectors: pgvector's HNSW index (``vector_cosine_ops``). The candidates come from a subquery that
orders by distance alone (``ORDER BY vector <=> :q LIMIT k`` with ``hnsw.ef_search = k``, k =
max(100, 4 * limit)); the filters apply to them, and while fewer than ``limit`` pass, k grows to
1,000 (pgvector's ceiling) and then the query runs exactly (an ORDER BY the index cannot serve,
narrowed by the filters' own indexes). With the filters in the same query as the HNSW ORDER BY the
planner often chose an exact scan instead. Measured at 100k (generated vectors, pgserver, loaded
2-core machine): top 10 unfiltered 24/35 ms p50/p95, recall 0.99 (ef_search 40 gave 0.91); top 10
with a 10% filter 38/126 ms, recall 0.99; top 100 with it 110/223 ms, recall 0.92 (HNSW's own
approximation among 1,000 candidates); a 0.5% filter goes exact: 91/105 ms, recall 1.0.

``nearest``'s ``exact`` and ``checked`` change nothing here: its cosines are always those of the
stored vectors, and the filters apply in the same query; ``exact()`` is the exhaustive answer
(tests and benchmarks). Upkeep has nothing to do: both indexes are kept by the database as rows are written.
"""

from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager
from functools import reduce

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import ColumnElement, Float, bindparam, func, literal, literal_column, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from dailypapers.search.filters import Filters
from dailypapers.search.query import Query
from dailypapers.store.schema import EMBEDDING_DIM, paper_embeddings, papers

# PostgreSQL: ts_rank's weights for the labels of search_vector (A title, B summary, C authors, D
# unused), each at most 1. ts_rank has no saturation: measured on SciFact, summary 0.33 -> 0.614,
# 0.5 -> 0.654, 0.7 -> 0.681, 1.0 -> 0.673.
PG_TITLE_WEIGHT = 1.0
PG_SUMMARY_WEIGHT = 0.7
PG_AUTHORS_WEIGHT = 0.2
PG_OTHER_WEIGHT = 0.1
_PG_WEIGHTS = "'{%s}'::float4[]" % ", ".join(
    f"{float(w):.4f}" for w in (PG_OTHER_WEIGHT, PG_AUTHORS_WEIGHT, PG_SUMMARY_WEIGHT, PG_TITLE_WEIGHT))
_PG_NORMALIZATION = 1  # ts_rank divides by 1 + log(document length): measured better than 0, 2, 32
_PG_CONFIG = "'english'::regconfig"
_MIN_FREQUENCY = 1e-7  # a document frequency is never taken as lower than this
_IDF_FLOOR = 0.05  # a word in every document still ranks a little
PG_MIN_EF_SEARCH = 100  # pgvector's default 40 gave recall@10 0.91 at 100k; 100 gives 0.99 at the same speed
PG_MAX_EF_SEARCH = 1000  # pgvector's upper bound
MIN_CANDIDATES = 100  # HNSW candidates, at least
CANDIDATE_FACTOR = 4  # ... or this many per wanted result

_emb = paper_embeddings


def vector_value(vector: np.ndarray) -> np.ndarray:
    """How ``paper_embeddings.vector`` stores a vector here: a pgvector ``vector`` (float32)."""
    return np.asarray(vector, dtype=np.float32)


# --- full text: tsvector / tsquery ------------------------------------------------------------------


def _tsquery(function: str, words: str) -> ColumnElement:
    return getattr(func, function)(literal_column(_PG_CONFIG), words)


def _not(tsquery: ColumnElement) -> ColumnElement:
    return UnaryExpression(tsquery, operator=operators.custom_op("!!"))


def _pg_idf(conn: Connection, terms: tuple[str, ...]) -> dict[str, float]:
    """Each free word's inverse document frequency; words the english configuration drops are left out.

    Document frequencies come from the planner's statistics on ``search_vector`` (ANALYZE keeps the
    fraction of rows holding each of its most common lexemes): no scan, one small query. A lexeme
    missing from that list is rarer than all of them. Without statistics (a database never
    analyzed) every word weighs 1.
    """
    lexemes = dict(conn.execute(
        text(f"SELECT t, tsvector_to_array(to_tsvector({_PG_CONFIG}, t)) "
             "FROM unnest(CAST(:terms AS text[])) AS t"),
        {"terms": list(terms)}).all())
    if not any(lexemes.values()):
        return {}
    stats = conn.execute(text(
        "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
        "WHERE schemaname = current_schema() AND tablename = 'papers' AND attname = 'search_vector'"
    )).first()
    if not stats or not stats[0] or not stats[1]:
        return {t: 1.0 for t in terms if lexemes.get(t)}
    elements, frequencies = stats
    frequency = dict(zip(elements, frequencies))  # the 3 extra frequencies (min, max, nulls) fall off
    unlisted = min(frequencies[: len(elements)]) / 2
    idf = {}
    for term in terms:
        if found := lexemes.get(term):
            f = min(max(max(frequency.get(lexeme, unlisted) for lexeme in found), _MIN_FREQUENCY), 1.0)
            idf[term] = math.log(1 + (1 - f) / f) + _IDF_FLOOR
    return idf


def text_top(conn: Connection, query: Query, filters: Filters, limit: int,
             checked=None) -> list[tuple[int, float]]:  # noqa: ANN001, ARG001
    """(pk, score) of the best matches under the filters, best first (``checked``: unused, the
    filters apply in the same query)."""
    vector = literal_column("papers.search_vector")
    idf = _pg_idf(conn, query.terms) if query.terms else {}
    terms = [t for t in query.terms if t in idf]  # stop words ("the") have no lexeme: left out
    required = [_tsquery("phraseto_tsquery", p) for p in (*query.phrases, *query.authors)]
    if not terms and not required:
        return []
    # The match: (any term) && every phrase and author && !! every exclusion. A phrase made of stop
    # words only is an empty tsquery, which && and !! ignore.
    term_queries = {t: _tsquery("plainto_tsquery", t) for t in terms}
    parts = []
    if terms:
        parts.append(reduce(lambda a, b: a.op("||")(b), term_queries.values()))
    parts += required
    parts += [_not(_tsquery("phraseto_tsquery", e)) for e in query.excluded]
    tsq = reduce(lambda a, b: a.op("&&")(b), parts)
    # Authors must match in the author names: the C-labelled part of the vector.
    author_names = func.ts_filter(vector, literal_column("'{c}'::\"char\"[]"))
    author_conditions = [author_names.op("@@")(_tsquery("phraseto_tsquery", a)) for a in query.authors]
    # BM25-like: each word's weighted, length-normalized ts_rank times its idf; phrases and
    # authors count once each. The vector is decompressed once per row (a LATERAL that the planner
    # may not flatten: OFFSET), not once per ts_rank call: measured 2x faster.
    row = select(vector.op("||")(literal_column("''::tsvector")).label("v")).offset(0).lateral("row_vector")

    def rank(q: ColumnElement) -> ColumnElement:
        return func.ts_rank(literal_column(_PG_WEIGHTS), row.c.v, q, _PG_NORMALIZATION)

    score = sum((idf[t] * rank(q) for t, q in term_queries.items()), start=literal_column("0.0"))
    for q in required:
        score = score + rank(q)
    statement = (
        select(papers.c.pk, score.label("score"))
        .select_from(papers.join(row, literal_column("true")))
        .where(vector.op("@@")(tsq), *author_conditions, *filters.conditions())
        .order_by(literal_column("score").desc(), papers.c.pk)
        .limit(limit)
    )
    return [(pk, float(s)) for pk, s in conn.execute(statement)]


# --- vectors: pgvector HNSW -------------------------------------------------------------------------


def nearest(conn: Connection, q: np.ndarray, filters: Filters, limit: int, model: str, *,
            exact: bool = True, checked=None) -> list[tuple[int, float]]:  # noqa: ANN001, ARG001
    """The papers nearest to the unit vector ``q`` by the HNSW index (cosines always exact)."""
    return _nearest(conn, q, filters, limit, model)


def _nearest(conn: Connection, q: np.ndarray, filters: Filters, limit: int, model: str, *,
             exhaustive: bool = False) -> list[tuple[int, float]]:
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
    while not exhaustive and k <= PG_MAX_EF_SEARCH:
        conn.execute(text(f"SET LOCAL hnsw.ef_search = {int(k)}"))
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


def exact(conn: Connection, q: np.ndarray, filters: Filters, limit: int,
          model: str) -> list[tuple[int, float]]:
    """Every allowed stored vector scored (an ORDER BY the HNSW index cannot serve)."""
    return _nearest(conn, q, filters, limit, model, exhaustive=True)


def similarities(conn: Connection, q: np.ndarray, pks: list[int], model: str, *,
                 present: bool = False) -> dict[int, float]:  # noqa: ARG001
    """The query's cosine to the stored vectors of these papers (those that have one)."""
    from dailypapers.search.vectors import stored_vectors

    return {pk: float(np.dot(v, q)) for pk, v in stored_vectors(conn, pks, model=model).items()}


# --- upkeep -----------------------------------------------------------------------------------------


class _Nothing(AbstractContextManager):
    def poke(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        return None


def following(engine: Engine) -> _Nothing:  # noqa: ARG001
    """Nothing to follow during a long write: the database indexes its rows as they are written."""
    return _Nothing()


def index_vectors(engine: Engine, model: str, *, fresh: bool = False) -> None:  # noqa: ARG001
    """Nothing to write: the HNSW index lives in the database (``rebuild`` rebuilds it)."""
    return None


def upkeep(engine: Engine) -> int:  # noqa: ARG001
    """Nothing to do: the GIN and HNSW indexes follow every write; returns 0 papers indexed."""
    return 0


def rebuild(engine: Engine) -> list[str]:
    """Rebuild the HNSW index without blocking searches or writes (``dailypapers reindex``)."""
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("REINDEX INDEX CONCURRENTLY ix_paper_embeddings_vector"))
    return [f"PostgreSQL HNSW index rebuilt in {time.perf_counter() - started:.1f} s"]
