"""The SQLite search backend: a Tantivy index and an int8 vector file beside the database.

Full text: the Tantivy index of fulltext.py (BM25, block-max WAND), its hits checked against the
filters in SQL. Vectors: the ``VectorIndex`` file of vector_index.py, scanned exactly in int8; the
best candidates are re-ranked by the exact float32 vectors read back from the table in the same
query that applies the filters, so stale or deleted entries of the file cannot surface. Filters: the
candidates are checked in rounds of 8x more (post-filtering) and only a filter that passes too few
of ~25k candidates makes the search ask SQL for every allowed pk (pre-filtering).

Searches only read: the Tantivy searcher reloads when another process commits, and the vector rows
newer than the file are read into memory and scored beside it. Writing both indexes is ``upkeep``'s
work (run by every writer after it commits) and ``rebuild``'s (``dailypapers reindex``).
"""

from __future__ import annotations

import json
import time

import numpy as np
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import Select
from sqlalchemy.sql.selectable import Join

from dailypapers.search import fulltext, fulltext_search
from dailypapers.search.backends import HIDDEN_MARGIN
from dailypapers.search.filters import Filters, statement_for
from dailypapers.search.query import Query
from dailypapers.search.scored import Scored
from dailypapers.search.vector_index import VectorIndex, as_array, current_model, open_index, to_blob
from dailypapers.store.backend import in_list
from dailypapers.store.schema import paper_embeddings, papers

MIN_CANDIDATES = 100  # int8 candidates re-ranked exactly, at least
CANDIDATE_FACTOR = 4  # ... or this many per wanted result
POST_FILTER_ROUNDS = 3  # candidate rounds (x8 each) checked against the filters before pre-filtering

_emb = paper_embeddings


def vector_value(vector: np.ndarray) -> bytes:
    """How ``paper_embeddings.vector`` stores a vector here: little-endian float32 bytes."""
    return to_blob(vector)


# --- full text --------------------------------------------------------------------------------------


def text_top(conn: Connection, query: Query, filters: Filters, limit: int,
             checked=None) -> list[tuple[int, float]]:  # noqa: ANN001
    """(pk, BM25 score) of the best matches under the filters, best first."""
    return fulltext_search.search(conn, query, filters, limit, checked)


# --- vectors ----------------------------------------------------------------------------------------


def nearest(conn: Connection, q: np.ndarray, filters: Filters, limit: int, model: str, *,
            exact: bool = True, checked=None) -> list[tuple[int, float]]:  # noqa: ANN001
    """The papers nearest to the unit vector ``q`` in the model's file (without building it)."""
    index = open_index(conn.engine, model=model, build=False)
    return search_file(conn, index, q, filters, limit, exact, checked)


def nearest_each(conn: Connection, queries: np.ndarray, limits: list[int],
                 model: str) -> list[list[tuple[int, float]]]:
    """For each unit vector of ``queries``, its ``limits[i]`` nearest visible papers (the int8
    codes' cosines): one scan of the file for all of them, their candidates checked in one query
    (``HIDDEN_MARGIN`` more than asked for, so that a hidden paper rarely leaves a list short)."""
    index = open_index(conn.engine, model=model, build=False)
    index.refresh(conn)
    found = [scored.best(k + HIDDEN_MARGIN) for scored, k in zip(index.score_many(queries), limits)]
    visible = statement_for(Filters(), _visible_candidates)
    kept = set(conn.execute(visible, {"pks": json.dumps(sorted(set().union(*found))), "model": model}).scalars())
    return [_ranked([(pk, score) for pk, score in each.items() if pk in kept], k)
            for each, k in zip(found, limits)]


def similarities(conn: Connection, q: np.ndarray, pks: list[int], model: str, *,
                 present: bool = False) -> dict[int, float]:
    """From the file's int8 codes (within ~0.005; no vectors read back), exact for rows newer than it."""
    index = open_index(conn.engine, model=model, build=False)
    index.refresh(conn)
    allowed = np.unique(np.asarray(pks, np.int64))
    found = index.score(q, allowed).best(len(allowed))
    if not present:
        kept = set(conn.execute(_PRESENT, {"pks": list(found), "model": model}).scalars())
        found = {pk: score for pk, score in found.items() if pk in kept}
    return found


_PRESENT = select(_emb.c.paper_pk).where(in_list(_emb.c.paper_pk, "pks"), _emb.c.model == bindparam("model"))


def exact(conn: Connection, q: np.ndarray, filters: Filters, limit: int,
          model: str) -> list[tuple[int, float]]:
    """Every allowed stored vector scored in float32."""
    rows = conn.execute(select(_emb.c.paper_pk, _emb.c.vector).join(papers, papers.c.pk == _emb.c.paper_pk)
                        .where(_emb.c.model == model, *filters.conditions())).all()
    return _ranked([(pk, float(as_array(vec) @ q)) for pk, vec in rows], limit)


def _ranked(scored: list[tuple[int, float]], limit: int) -> list[tuple[int, float]]:
    return sorted(scored, key=lambda item: (-item[1], item[0]))[:limit]


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


def search_file(conn: Connection, index: VectorIndex, q: np.ndarray, filters: Filters, limit: int,
                exact: bool = True, checked=None) -> list[tuple[int, float]]:  # noqa: ANN001
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


# --- keeping the indexes up to date -----------------------------------------------------------------


def index_vectors(engine: Engine, model: str, *, fresh: bool = False) -> int:
    """Write the model's vector file when it is missing or far behind the table (``fresh``: always);
    returns how many vectors it holds."""
    return len(open_index(engine, model=model, build=False).keep_up(fresh=fresh))


def following(engine: Engine) -> fulltext.Following:
    """While a long write runs (an ingest), index what it commits from a thread; see fulltext.py."""
    return fulltext.Following(engine)


def upkeep(engine: Engine) -> int:
    """Index the papers whose text changed in Tantivy, and rewrite the vector file of the current
    model when it is missing or more than ``REBUILD_AFTER`` rows behind; returns the papers indexed."""
    indexed = fulltext.sync(engine)
    with engine.connect() as conn:
        model = current_model(conn)
    if model is not None:
        index_vectors(engine, model)
    return indexed


def rebuild(engine: Engine) -> list[str]:
    """Both indexes afresh from the tables (``dailypapers reindex``): a line for the operator on each."""
    started = time.perf_counter()
    count = fulltext.sync(engine, rebuild=True, threads=fulltext.ALONE_THREADS)
    lines = [f"full-text index rebuilt: {count:,} papers in {time.perf_counter() - started:.1f} s"]
    started = time.perf_counter()
    with engine.connect() as conn:
        model = current_model(conn)
    if model is None:
        return [*lines, "no vector index: there are no embeddings yet (run `dailypapers embed`)"]
    index = open_index(engine, model=model, build=False).keep_up(fresh=True)
    seconds = time.perf_counter() - started
    return [*lines, f"vector index rebuilt: {len(index):,} vectors of {model} in {seconds:.1f} s "
                    f"-> {index.path}"]
