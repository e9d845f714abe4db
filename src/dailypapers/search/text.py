"""Full-text matching on both databases: the papers matching a query, ranked BM25-style.

Ranking weighs the title above the abstract above the author names. Each database's backend does
the matching (search/backends/): SQLite a Tantivy index beside the file, BM25 per field with field
boosts; PostgreSQL the same Tantivy index, one per machine, fed from the database.
Free words are OR-ed: recall matters more than precision here, since the hybrid fusion re-orders
with the semantic results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from dailypapers.search.backends import backend_for
from dailypapers.search.filters import Filters
from dailypapers.search.query import Query


@dataclass(frozen=True)
class TextHit:
    pk: int
    score: float  # higher is better; comparable only within one result list


def text_search(conn: Connection, query: Query, filters: Filters, limit: int,
                checked: Callable[[list[int]], set[int]] | None = None) -> list[TextHit]:
    """Papers matching the query's text under the filters, best first ([] when there is no text).

    ``checked``: keeps the pks that pass the filters, in place of the query run for that (where the
    backend checks its hits apart from the ranking)."""
    if query.empty or limit <= 0:
        return []
    found = backend_for(conn.engine).text_top(conn, query, filters, limit, checked)
    return [TextHit(pk, score) for pk, score in found]
