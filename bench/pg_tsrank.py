"""PostgreSQL's text side before issue 13: every word's ``ts_rank`` x idf over every match.

Kept here, out of the product, as the baseline bench/pg_text.py measures the remedies against (the
product now ranks text with a Tantivy index fed from the database: search/backends/postgres.py).
Measured nDCG@10 on SciFact (300 claims, 5,183 abstracts): ts_rank of the whole query 0.564,
ts_rank_cd 0.36-0.40, per-word ts_rank x idf 0.68 (0.55 before the table is first analyzed).
"""

from __future__ import annotations

import math
from functools import reduce

from sqlalchemy import ColumnElement, func, literal_column, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from dailypapers.search.filters import Filters
from dailypapers.search.query import Query
from dailypapers.search.text import TextHit
from dailypapers.store.schema import papers

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


def _search_postgresql(conn: Connection, query: Query, filters: Filters, limit: int) -> list[TextHit]:
    """(pk, score) of the best matches under the filters, best first."""
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
    return [TextHit(pk, float(s)) for pk, s in conn.execute(statement)]
