"""Search backends: what differs between SQLite and PostgreSQL in finding papers.

``upkeep(engine)`` is the one core step that brings the engine's search indexes up to date with
the tables; every writer (ingest from the CLI, a submission, a harvest, an import, an embedding
run) calls it after it commits, so that searches only read.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine


def upkeep(engine: Engine) -> int:
    """Bring the search indexes up to date with the tables; returns how many papers were indexed."""
    from dailypapers.search import fulltext

    return fulltext.sync(engine)


__all__ = ["upkeep"]
