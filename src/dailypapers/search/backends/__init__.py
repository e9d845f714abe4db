"""Search backends: what differs between SQLite and PostgreSQL in finding papers.

``backend_for(engine)`` is the engine's backend module, picked by its database:

- ``sqlite.py``: a Tantivy full-text index and an int8 vector file beside the database file;
- ``postgres.py``: the same Tantivy index, one per machine fed from the database, and pgvector's HNSW index.

Each offers the same operations (``q`` a unit vector; ``checked(pks)`` keeps the pks that pass the
filters, when the caller has that answer already):

- ``text_top(conn, query, filters, limit, checked=None)`` -> [(pk, score)], best first;
- ``nearest(conn, q, filters, limit, model, *, exact=True, checked=None)`` -> [(pk, cosine)];
- ``nearest_each(conn, queries, limits, model)`` -> a [(pk, cosine)] per row of ``queries``, visible
  papers only, approximate, in one pass (the recommender's many probes);
- ``exact(conn, q, filters, limit, model)``: the exhaustive answer (tests, benchmarks);
- ``similarities(conn, q, pks, model, *, present=False)`` -> {pk: cosine};
- ``vector_value(vector)``: how ``paper_embeddings.vector`` stores a vector;
- ``following(engine)``: a context manager that keeps the text index up during a long ingest;
- ``index_vectors(engine, model, *, fresh=False)``: bring the vector index up (its size, or None);
- ``upkeep(engine)`` -> papers indexed; ``rebuild(engine)`` -> lines for the operator.

Searches only read. ``upkeep(engine)`` is the one core step that brings the engine's search indexes
up to date with the tables; every writer (ingest from the CLI, a submission, a harvest, an import,
an embedding run) calls it after it commits.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from dailypapers.store.schema import paper_embeddings

HIDDEN_MARGIN = 16  # nearest_each's spare neighbours per probe, for the hidden papers it leaves out
_MODULES = {"sqlite": "sqlite", "postgresql": "postgres"}
_chosen: dict[str, ModuleType] = {}


def backend_for(engine: Engine) -> ModuleType:
    """The search backend of the engine's database (its module, imported once)."""
    name = engine.dialect.name
    backend = _chosen.get(name)
    if backend is None:
        if name not in _MODULES:
            raise ValueError(f"no search backend for {name} databases (SQLite and PostgreSQL have one)")
        backend = _chosen[name] = import_module(f"{__name__}.{_MODULES[name]}")
    return backend


def upkeep(engine: Engine) -> int:
    """Bring the search indexes up to date with the tables; returns how many papers were indexed.

    Both index the Tantivy tail (on PostgreSQL, this machine's index); SQLite also rewrites the
    vector file when it is missing or too far behind (the HNSW index follows every write by itself).
    """
    return backend_for(engine).upkeep(engine)


_VERSION = select(func.coalesce(func.max(paper_embeddings.c.seq), 0))


def vectors_version(conn: Connection) -> int:
    """A number that grows whenever an embedding is written (one index probe): a key for caches of
    what depends on the stored vectors, such as a paper's similar papers."""
    return conn.execute(_VERSION).scalar_one()


__all__ = ["HIDDEN_MARGIN", "backend_for", "upkeep", "vectors_version"]
