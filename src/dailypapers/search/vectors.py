"""Semantic search on both databases: embedding the backlog, nearest neighbours.

Embeddings live in ``paper_embeddings``, one row per paper, tagged with the model that made it. A
paper with no row for the current model needs embedding: ``embed_backlog`` finds those, embeds
them in batches of similar text length and commits once per batch, so an interrupted run loses at
most one batch and the next run carries on with what is still missing. The writer then calls
``search.backends.upkeep`` (SQLite: the vector file is rewritten when far behind).

Search (``vector_search``) returns (paper pk, cosine similarity), best first, under the filters
(hidden papers never). The similarity is the exact float32 cosine of the stored vector, except
with ``exact=False`` on SQLite: the int8 codes' cosine (within ~0.005), which the hybrid search's
fusion uses (reading 400 vectors back cost a third of a search). The database's backend
(search/backends/) finds them: pgvector's HNSW index on PostgreSQL, an int8 file beside the
database on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sqlalchemy import bindparam, case, cast, exists, func, select, update
from sqlalchemy.engine import Connection, Engine

from dailypapers.search.backends import backend_for
from dailypapers.search.filters import Filters
from dailypapers.search.vector_index import VectorIndex, as_array, current_model, open_index, to_blob
from dailypapers.store.schema import counters, paper_embeddings, papers

__all__ = ["as_array", "backlog_size", "current_model", "embed_backlog", "embedded_since", "exact_search", "nearest",
           "open_index", "similarities", "stored_vectors", "to_blob", "vector_search"]

_emb = paper_embeddings


# --- storage ----------------------------------------------------------------------------------------


def stored_vectors(conn: Connection, pks, model: str | None = None) -> dict[int, np.ndarray]:  # noqa: ANN001
    """The stored vectors of these papers (of ``model`` when given), by paper pk."""
    pks = list(pks)
    if not pks:
        return {}
    query = select(_emb.c.paper_pk, _emb.c.vector).where(_emb.c.paper_pk.in_(pks))
    if model is not None:
        query = query.where(_emb.c.model == model)
    return {pk: as_array(vec) for pk, vec in conn.execute(query)}


def embedded_since(conn: Connection, after: int, upto: int, at_most: int) -> dict[int, np.ndarray] | None:
    """The visible papers embedded by the current model with a seq in (``after``, ``upto``], their
    vectors by paper pk (None when there are more than ``at_most``)."""
    model = current_model(conn)
    if model is None:
        return {}
    rows = conn.execute(select(_emb.c.paper_pk, _emb.c.vector).join(papers, papers.c.pk == _emb.c.paper_pk)
                        .where(_emb.c.seq > after, _emb.c.seq <= upto, _emb.c.model == model,
                               papers.c.hidden.is_(False))
                        .limit(at_most + 1)).all()
    return None if len(rows) > at_most else {pk: as_array(vector) for pk, vector in rows}


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
    still_there = exists().where(papers.c.pk == bindparam("pk"), papers.c.hidden.is_(False),
                                 papers.c.changed_at == bindparam("changed_at"))
    taken = exists().where(_emb.c.paper_pk == bindparam("pk"))
    source = select(
        bindparam("pk", type_=_emb.c.paper_pk.type),
        bindparam("model", type_=_emb.c.model.type),
        cast(bindparam("vector", type_=_emb.c.vector.type), _emb.c.vector.type),
        bindparam("seq", type_=_emb.c.seq.type),
    ).where(still_there, ~taken)
    return (_emb.insert().from_select(["paper_pk", "model", "vector", "seq"], source)
            .execution_options(preserve_rowcount=True))  # an INSERT's rowcount is not kept otherwise


_SEQ = counters.c.name == "paper_embeddings.seq"
_HIGHEST = select(func.coalesce(func.max(_emb.c.seq), 0)).scalar_subquery()


def take_seqs(conn: Connection, count: int) -> int:
    """Reserve ``count`` embedding seqs, above every seq ever given; returns the first. The counter's
    row stays locked until the caller's transaction ends, so a later writer's seqs commit after
    these. Rows written around the counter (a benchmark's bulk load) are stepped over too."""
    last = case((counters.c.value >= _HIGHEST, counters.c.value), else_=_HIGHEST) + count
    statement = update(counters).where(_SEQ).values(value=last).returning(counters.c.value)
    return conn.execute(statement).scalar_one() - count + 1


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
    store_as = backend_for(engine).vector_value
    written = 0
    for start in range(0, len(todo), batch_size):
        pks = todo[start:start + batch_size].tolist()
        with engine.connect() as conn:
            rows = conn.execute(select(papers.c.pk, papers.c.title, papers.c.summary, papers.c.changed_at)
                                .where(papers.c.pk.in_(pks), papers.c.hidden.is_(False))).all()
        if rows:
            vectors = embedder.embed([paper_text(r.title, r.summary) for r in rows], batch_size=batch_size)
            with engine.begin() as conn:
                first = take_seqs(conn, len(rows))  # first: a writer waiting for the counter holds no other lock
                conn.execute(_emb.delete().where(_emb.c.paper_pk.in_([r.pk for r in rows]),
                                                 _emb.c.model != model))
                for seq, (row, vector) in enumerate(zip(rows, vectors), first):
                    result = conn.execute(insert, {"pk": row.pk, "model": model, "changed_at": row.changed_at,
                                                   "vector": store_as(vector), "seq": seq})
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
    ``index`` defaults to the process's cached index beside the database, and ``exact=False``
    skips the float re-rank: int8 order and cosines.
    """
    with engine.connect() as conn:
        return nearest(conn, vector, filters, limit, index=index, model=model, exact=exact)


Check = Callable[[list[int]], set[int]]


def nearest(conn: Connection, vector, filters: Filters, limit: int, *,  # noqa: ANN001
            index: VectorIndex | None = None, model: str | None = None, exact: bool = True,
            checked: Check | None = None) -> list[tuple[int, float]]:
    """``vector_search`` on a connection the caller holds. ``checked`` (SQLite, not exact): keeps
    the pks that pass the filters and have a current embedding, in place of the query this runs for
    that (the hybrid search answers it for both of its sides at once). ``index``: a SQLite vector
    file to search (tests, benchmarks)."""
    if limit <= 0:
        return []
    q = _unit(vector)
    if index is not None:
        from dailypapers.search.backends import sqlite

        return sqlite.search_file(conn, index, q, filters, limit, exact, checked)
    if model is None:
        model = current_model(conn)
        if model is None:
            return []
    return backend_for(conn.engine).nearest(conn, q, filters, limit, model, exact=exact, checked=checked)


def similarities(conn: Connection, vector, pks: list[int], model: str, *,  # noqa: ANN001
                 present: bool = False) -> dict[int, float]:
    """The query's cosine to each of these papers' stored vectors (those that have one).

    SQLite: from the index's int8 codes (within ~0.005; no vectors read back), exact for rows newer
    than the file; ``present``: the caller knows that each of these papers has a current embedding.
    PostgreSQL: the stored vectors."""
    return backend_for(conn.engine).similarities(conn, _unit(vector), pks, model, present=present)


def exact_search(engine: Engine, vector, filters: Filters = Filters(), limit: int = 10, *,  # noqa: ANN001
                 model: str | None = None) -> list[tuple[int, float]]:
    """The reference answer: every allowed stored vector scored in float32 (slow; for tests and benches)."""
    with engine.connect() as conn:
        model = model or current_model(conn)
        return backend_for(engine).exact(conn, _unit(vector), filters, limit, model) if model else []
