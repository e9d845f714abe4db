"""Searching the full-text index (fulltext.py): a parsed query as a Tantivy query, and its best
matches under the filters.

Free words go to BM25 over the title and abstract (authors' names count below them); stop words
are dropped; a long query keeps its most telling words; filters are checked on the best hits in
rounds of 8x more, then, for a selective filter, applied inside the index.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import tantivy
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from dailypapers.search.filters import Filters, statement_for
from dailypapers.search.fulltext import FIELDS, FullTextIndex, open_fulltext
from dailypapers.search.query import Query
from dailypapers.store import backend
from dailypapers.store.schema import papers

AUTHORS_BOOST = 0.5  # an author's name in a free-word query counts, below the text's words
# A long query (a pasted abstract: "more like this") is searched by its most telling words, as Lucene's
# MoreLikeThis does: each word weighed by how often the query has it, the 25 with the highest
# count x idf kept (docs/search.md, "Long queries").
MAX_QUERY_TERMS = 25
FILTER_ROUNDS = 3  # candidate rounds (x8 each) checked against the filters before pre-filtering

# Words too common to select anything: matching them would score nearly every paper and does not
# change what ranks first (PostgreSQL's english configuration drops the same kind).
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers him his how i if in into is it its itself just me more most my no nor not of off
on once only or other our ours out over own same she should so some such than that the their theirs them
then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours
""".split())

_Occur = tantivy.Occur


def _words_query(index: FullTextIndex, words: str, fields: tuple[str, ...]) -> tantivy.Query | None:
    """The words side by side (a phrase; one word: a term) in any of the fields; None if no token."""
    tokens = index.tokens(words)
    if not tokens:
        return None
    per_field = [tantivy.Query.phrase_query(index.schema, f, tokens) if len(tokens) > 1
                 else tantivy.Query.term_query(index.schema, f, tokens[0]) for f in fields]
    return per_field[0] if len(per_field) == 1 else tantivy.Query.boolean_query(
        [(_Occur.Should, q) for q in per_field])


def _weighted_tokens(index: FullTextIndex, query: Query) -> list[tuple[str, float]]:
    """The free words' tokens, each weighed by how often the query has it; of more than
    MAX_QUERY_TERMS, those with the highest count x idf (common English words left out)."""
    if not query.terms:
        return []
    counts = dict(query.counts) or dict.fromkeys(query.terms, 1)
    words = [w for w in counts if w not in STOP_WORDS] or list(counts)
    tf: dict[str, int] = {}
    for word in words:
        for token in index.tokens(word):
            tf[token] = tf.get(token, 0) + counts[word]
    if len(tf) > MAX_QUERY_TERMS:
        searcher = index._current()[0]
        n = searcher.num_docs
        idf = {t: math.log(1 + (n - (df := searcher.doc_freq("text", t)) + 0.5) / (df + 0.5)) for t in tf}
        tf = dict(sorted(tf.items(), key=lambda kv: kv[1] * idf[kv[0]], reverse=True)[:MAX_QUERY_TERMS])
    return [(token, float(n)) for token, n in tf.items()]


def build_query(index: FullTextIndex, query: Query) -> tantivy.Query | None:
    """(any free word) AND every phrase AND every author, NOT any exclusion; None: nothing to find.

    Queries are built from tokens, never parsed: nothing a user types is syntax here.
    """
    should = []
    for token, weight in _weighted_tokens(index, query):
        should.append((_Occur.Should, tantivy.Query.boost_query(
            tantivy.Query.term_query(index.schema, "text", token), weight)))
        should.append((_Occur.Should, tantivy.Query.boost_query(
            tantivy.Query.term_query(index.schema, "authors", token), AUTHORS_BOOST * weight)))
    must = [q for p in query.phrases if (q := _words_query(index, p, FIELDS))]
    must += [q for a in query.authors if (q := _words_query(index, a, ("authors",)))]
    if len(must) < len(query.phrases) + len(query.authors):
        return None  # a required phrase with no word in it can match nothing
    if not should and not must:
        return None
    clauses = [(_Occur.Must, q) for q in must]
    if should:
        clauses.append((_Occur.Must, tantivy.Query.boolean_query(should)))
    clauses += [(_Occur.MustNot, q) for e in query.excluded if (q := _words_query(index, e, FIELDS))]
    return tantivy.Query.boolean_query(clauses)


def search(conn: Connection, query: Query, filters: Filters, limit: int,
           checked: Callable[[list[int]], set[int]] | None = None) -> list[tuple[int, float]]:
    """(paper pk, BM25 score) of the best matches under the filters, best first. ``checked``: keeps
    the pks that pass the filters, in place of the query this runs for that."""
    index = open_fulltext(conn)  # as of the latest commit of any process: upkeep writes, not a search
    found = build_query(index, query)
    if found is None:
        return []
    k = max(limit, 100)
    for _ in range(FILTER_ROUNDS):
        hits = index.top(found, k)
        pks = [pk for pk, _ in hits]
        allowed = checked(pks) if checked else _allowed(conn, pks, filters)
        passed = [(pk, score) for pk, score in hits if pk in allowed]
        if len(passed) >= limit or len(hits) < k:
            return passed[:limit]
        k *= 8
    # A selective filter: search only among the papers it allows.
    allowed_pks = conn.execute(select(papers.c.pk).where(*filters.conditions())).scalars().all()
    if not allowed_pks:
        return []
    narrowed = tantivy.Query.boolean_query([
        (_Occur.Must, found), (_Occur.Must, tantivy.Query.term_set_query(index.schema, "pk", allowed_pks))])
    return index.top(narrowed, limit)


def _allowed_query(filters: Filters) -> Select:
    return select(papers.c.pk).where(backend.in_list(papers.c.pk, "pks"), *filters.conditions())


def _allowed(conn: Connection, pks: list[int], filters: Filters) -> set[int]:
    if not pks:
        return set()
    return set(conn.execute(statement_for(filters, _allowed_query), {"pks": pks}).scalars())
