"""One search function for the web pages, the API and the CLI: full-text + semantic, fused.

Fusion: every candidate that either side found gets both scores — its BM25 score and its cosine
similarity to the query — each as a z-score over that side's best CANDIDATES (a candidate a side did not
find gets that side's lowest), combined as ``DENSE_WEIGHT * dense + (1 - DENSE_WEIGHT) * text`` plus a
bonus for the query's words side by side. Unlike reciprocal rank fusion, a confident hit of one side
keeps its margin (a paraphrase whose cosine stands far above the rest still wins); unlike min-max
scaling, a side whose scores are flat (a pasted abstract sharing words with everything) cannot
dominate, whatever the query's or the documents' length. One formula for every collection: tuned on
SciFact's train split and checked on every set and variant in bench/quality.py (docs/search.md).

A stored author's name typed as free words puts that author's papers first (search/understand.py),
ahead of every other result and in their fused order among themselves; the rest stay as they were.

A paper matches when the text side finds it or its cosine reaches SIMILARITY_FLOOR; ``total`` counts
those. Nothing matching leaves ``hits`` empty and puts the nearest by meaning in ``nearest``.

Only fusion lives here: both sides' candidates come from the database's search backend
(search/backends/, through text.py and vectors.py), which this module knows nothing about.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Literal

import numpy as np
from markupsafe import Markup
from sqlalchemy import and_, bindparam, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Select

from dailypapers.search.filters import SORTS, Filters, statement_for
from dailypapers.search.highlight import highlight
from dailypapers.search.query import Query, parse_query
from dailypapers.search.text import text_search
from dailypapers.search.understand import typed_authors
from dailypapers.store.backend import in_list
from dailypapers.store.schema import organizations, paper_embeddings, papers

Mode = Literal["hybrid", "text", "dense", "rrf"]
CANDIDATES = 300  # per side, before fusion: deep enough for recall@100 of the fused list
DEPTH = CANDIDATES
MAX_RESULTS = 1_000  # how deep results go (offset + limit): each side gathers that many candidates
DENSE_WEIGHT = 0.45
TEXT_SPREAD = 100  # the text side's z-scores are taken over its best 100 (the dense side's over all)
RRF_K = 60
PHRASE_BONUS = 3.0  # for papers with the query's words side by side, as the user typed them
MAX_PHRASE_WORDS = 6
NEAREST_SHOWN = 3  # when nothing matches, the closest papers by meaning, under their own heading
BLANK_QUERY = "Type some words, a phrase, an author or an arXiv id to search for."
# A paper found by meaning alone matches when its cosine to the query reaches this (calibrated on the
# benchmark sets, docs/search.md): below it, "No papers match" and the nearest shown apart.
SIMILARITY_FLOOR = 0.2
TRENDING_GRAVITY = 1.5  # see ranking.trending_score


@dataclass
class Hit:
    paper: dict
    score: float
    text_score: float = 0.0
    dense_score: float = 0.0
    title_html: Markup = field(default_factory=Markup)
    snippet_html: Markup = field(default_factory=Markup)


@dataclass
class SearchPage:
    query: Query
    filters: Filters
    hits: list[Hit]
    total: int  # papers that match: a lexical match, or a cosine at or above SIMILARITY_FLOOR
    paper_id: str | None = None  # the query was an arXiv id/URL of this stored paper: go straight there
    missing_id: str | None = None  # the query was an arXiv id/URL of a paper that is not stored
    nearest: list[Hit] = field(default_factory=list)  # nothing matches: the closest by meaning anyway
    more: bool = False  # a side's candidate list was full: more papers than ``total`` may match
    authors: tuple[str, ...] = ()  # authors named in the query (without author:), whose papers come first

    @property
    def blank(self) -> bool:
        """Nothing was asked: no words, no arXiv id, no filters (every face answers BLANK_QUERY)."""
        return self.query.empty and not self.query.arxiv_id and not self.filters.active


def _standardized(scores: dict[int, float], depth: int) -> tuple[dict[int, float], float]:
    """Each score in standard deviations from the mean of the side's best ``depth`` (a z-score), and
    the z-score of the weakest of them: where a candidate the side did not find is put."""
    best = np.sort(np.fromiter(scores.values(), float, len(scores)))[::-1][:depth]
    if not len(best):
        return {}, 0.0
    mean, sd = float(best.mean()), float(best.std()) or 1.0
    return {pk: (v - mean) / sd for pk, v in scores.items()}, (float(best[-1]) - mean) / sd


def fuse(c: "Candidates", mode: Mode, dense_weight: float = DENSE_WEIGHT,
         phrase_bonus: float = PHRASE_BONUS) -> dict[int, float]:
    """Combine per-candidate text and dense scores (see the module docstring)."""
    text, dense = c.text, c.dense
    if mode == "text":
        return dict(text)
    if mode == "dense":
        return dict(dense)
    if mode == "rrf":
        fused: dict[int, float] = {}
        for scores in (text, dense):
            for rank, pk in enumerate(sorted(scores, key=scores.get, reverse=True), 1):
                fused[pk] = fused.get(pk, 0.0) + 1.0 / (RRF_K + rank)
        return fused
    t, t_floor = _standardized(text, TEXT_SPREAD)
    d, d_floor = _standardized(dense, CANDIDATES)
    fused = {pk: dense_weight * d.get(pk, d_floor) + (1.0 - dense_weight) * t.get(pk, t_floor)
             + phrase_bonus * (pk in c.phrase) for pk in set(t) | set(d) | c.author}
    if c.author:  # a named author's papers first: lifted above every other score, in their order
        lift = max(fused.values()) - min(fused.values()) + 1.0
        for pk in c.author:
            fused[pk] += lift
    return fused


_WORD = re.compile(r"\w+")


def coverage(query: Query, title: str, summary: str) -> float:
    """The share of the query's words that appear (by prefix stem) in a paper's title and summary."""
    words = [w for w in query.terms if len(w) > 2] or list(query.terms)
    if not words:
        return 1.0
    present = {w.lower() for w in _WORD.findall(f"{title} {summary}")}
    stems = [w[: max(4, len(w) - 3)] for w in words]
    return sum(any(p.startswith(s) for p in present) for s in stems) / len(stems)


@dataclass
class Candidates:
    """What both sides found for a query, before fusion."""

    text: dict[int, float]  # pk -> BM25-style score
    dense: dict[int, float]  # pk -> cosine similarity
    rows: dict[int, dict]  # pk -> what sorting needs of the paper (see _sort_keys_query)
    pks: set[int]  # the candidates that match (a lexical match or a cosine above the floor)
    phrase: set[int] = field(default_factory=set)  # candidates with the query's words side by side
    more: bool = False  # a side's list was full: more papers may match than were gathered
    author: set[int] = field(default_factory=set)  # papers of an author the query names: they come first
    authors: tuple[str, ...] = ()  # those authors' names, as stored


@lru_cache(maxsize=1024)  # the next page, another sort or filter reuse the query's embedding
def query_vector(embedder, text: str) -> np.ndarray:  # noqa: ANN001
    """The query's embedding (4 ms of a search's CPU when it is computed)."""
    return embedder.embed([text])[0]


class _Rows:
    """The sort keys of the candidates that pass the filters, each read once: the text side's and the
    vector side's checks and the final sort share them (one query where there were four)."""

    def __init__(self, conn, filters: Filters, model: str | None, sort: str) -> None:  # noqa: ANN001
        self.conn, self.model = conn, model
        # By relevance, no sort key is needed: reading (and parsing) 400 dates cost ~0.8 ms.
        self.keys = _SORT_KEYS if sort != "relevance" else ("pk", "has_vector")
        self.statement = statement_for(filters, _sort_keys_query if sort != "relevance" else _passing_query)
        self.rows: dict[int, dict] = {}
        self._read: set[int] = set()

    def passing(self, pks: list[int] | set[int]) -> set[int]:
        if new := [pk for pk in pks if pk not in self._read]:
            self._read.update(new)
            for row in self.conn.execute(self.statement, {"pks": new, "model": self.model}):
                self.rows[row[0]] = dict(zip(self.keys, row))
        return {pk for pk in pks if pk in self.rows}

    def with_vector(self, pks: list[int] | set[int]) -> set[int]:
        return {pk for pk in self.passing(pks) if self.rows[pk]["has_vector"]}


def gather(engine: Engine, query: Query, filters: Filters, embedder, mode: Mode,  # noqa: ANN001
           wanted: int, sort: str = "relevance") -> Candidates:
    """Both sides' candidates, on one connection."""
    with engine.connect() as conn:
        return _gather(conn, query, filters, embedder, mode, wanted, sort)


def _gather(conn, query: Query, filters: Filters, embedder, mode: Mode, wanted: int,  # noqa: ANN001
            sort: str) -> Candidates:
    from dailypapers.search.vectors import nearest, similarities

    rows = _Rows(conn, filters, embedder.name if embedder is not None else None, sort)
    vector = None
    if embedder is not None and mode != "text" and (query.terms or query.phrases):
        vector = query_vector(embedder, query.meaning or query.raw)

    def dense_side(checked: Callable[[list[int]], set[int]]) -> dict[int, float]:
        if vector is None:
            return {}
        # int8 cosines (within ~0.005) are plenty for fusion, and skip reading 400 vectors back.
        return dict(nearest(conn, vector, filters, wanted, model=embedder.name, exact=False, checked=checked))

    def text_side(checked: Callable[[list[int]], set[int]]) -> dict[int, float]:
        return {} if mode == "dense" else {h.pk: h.score for h in text_search(conn, query, filters, wanted, checked)}

    if filters.active:
        dense, text = dense_side(rows.with_vector), text_side(rows.passing)
    else:
        # Nearly every candidate passes (hidden papers and dropped embeddings are rare): both sides'
        # candidates are checked in one query, and a side that lost one runs again, checked.
        dense, text = dense_side(set), text_side(set)
        rows.passing(set(dense) | set(text))
        if len(rows.with_vector(dense)) < len(dense):
            dense = dense_side(rows.with_vector)
        if len(rows.passing(text)) < len(text):
            text = text_side(rows.passing)
    near = dict(dense)  # the vector side's own list, before text-only candidates join it
    names, author = typed_authors(conn, query, filters, wanted, rows.passing) if mode == "hybrid" else ((), set())
    missing = [pk for pk in set(text) | author if pk not in dense]
    if vector is not None and missing:  # text-only candidates get their cosine too
        dense.update(similarities(conn, vector, sorted(rows.with_vector(missing)), embedder.name, present=True))
    if not query.terms and not query.phrases and not query.authors and not text:
        # Filters alone: browse what they select.
        browse = conn.execute(select(papers.c.pk).where(*filters.conditions())
                              .order_by(papers.c.published_at.desc()).limit(wanted)).scalars().all()
        text = {pk: 0.0 for pk in browse}
    # What matches: a lexical match, or a neighbour by meaning above the floor (the other modes are
    # the benchmarks' baselines: they rank every candidate).
    floor = SIMILARITY_FLOOR if mode == "hybrid" else float("-inf")
    pks = set(text) | author | {pk for pk, s in dense.items() if s >= floor}
    more = len(text) >= wanted or (len(near) >= wanted and min(near.values()) >= floor)
    sort_keys = {pk: rows.rows[pk] for pk in rows.passing(set(text) | set(dense) | author)}
    if query.phrases or query.authors or query.excluded:
        # Required words were asked for: only the text side's candidates qualify.
        dense = {pk: s for pk, s in dense.items() if pk in text}
        pks, author = set(text), author & set(text)
        more = len(text) >= wanted
    phrase: set[int] = set()
    if mode == "hybrid" and 2 <= len(query.terms) <= MAX_PHRASE_WORDS and not query.phrases:
        adjacent = replace(query, phrases=(" ".join(query.terms),), terms=())
        phrase = {h.pk for h in text_search(conn, adjacent, filters, wanted, rows.passing)} & pks
    return Candidates(text, dense, sort_keys, pks, phrase, more, author, names if author else ())


def search(
    engine: Engine,
    raw_query: str,
    *,
    filters: Filters = Filters(),
    sort: str = "relevance",
    limit: int = 20,
    offset: int = 0,
    embedder=None,  # noqa: ANN001 - an Embedder; None searches by text only
    mode: Mode = "hybrid",
    dense_weight: float = DENSE_WEIGHT,
) -> SearchPage:
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    if offset < 0 or limit < 0 or offset + limit > MAX_RESULTS:
        raise ValueError(f"results go no deeper than {MAX_RESULTS:,} (offset + limit)")
    query = parse_query(raw_query)
    if query.categories:
        filters = replace(filters, categories=tuple(filters.categories) + query.categories)
    if query.arxiv_id:
        with engine.connect() as conn:
            found = conn.execute(select(papers.c.pk).where(papers.c.id == query.arxiv_id,
                                                           papers.c.hidden.is_(False))).scalar()
            row = _papers(conn, {found})[found] if found else None
        if row:
            return SearchPage(query, filters, [Hit(row, 1.0, title_html=Markup.escape(row["title"]))], 1,
                              paper_id=row["id"])
        return SearchPage(query, filters, [], 0, missing_id=query.arxiv_id)
    page = SearchPage(query, filters, [], 0)
    if page.blank:
        return page
    with engine.connect() as conn:
        found = _gather(conn, query, filters, embedder, mode, max(CANDIDATES, offset + limit), sort)
        text, dense, rows, pks = found.text, found.dense, found.rows, found.pks
        scores = fuse(found, mode, dense_weight)
        ordered = _sorted(pks, scores, rows, sort)[offset: offset + limit]
        # Nothing matches: the closest by meaning, shown apart (never counted as results).
        near = [] if pks or offset else sorted((pk for pk in dense if pk in rows), key=dense.get,
                                                reverse=True)[:NEAREST_SHOWN]
        shown = _papers(conn, set(ordered) | set(near))

    def hit(pk: int) -> Hit:
        row = shown[pk]
        return Hit(row, scores.get(pk, 0.0), text.get(pk, 0.0), dense.get(pk, 0.0),
                   highlight(row["title"], query), highlight(row["summary"], query, max_chars=300))

    page.hits = [hit(pk) for pk in ordered if pk in shown]
    page.nearest = [hit(pk) for pk in near if pk in shown]
    page.total, page.more = len([pk for pk in pks if pk in rows]), found.more
    page.authors = found.authors
    return page


# Built once: a search runs these with different candidates (see backend.in_list).
_PAPERS = (select(papers, organizations.c.name.label("organization_name"),
                  organizations.c.fullname.label("organization_fullname"))
           .outerjoin(organizations, papers.c.organization_pk == organizations.c.pk)
           .where(in_list(papers.c.pk, "pks")))
_SORT_KEYS = ("pk", "id", "published_at", "upvotes", "submitted_on_daily_at", "has_vector")


def _sort_keys_query(filters: Filters, keys: tuple[str, ...] = _SORT_KEYS) -> Select:
    """What ordering the candidates needs, for those that pass the filters (the page's few get
    their whole rows afterwards), and whether each has an embedding of the model."""
    has_vector = paper_embeddings.c.paper_pk.is_not(None).label("has_vector")
    embedded = and_(paper_embeddings.c.paper_pk == papers.c.pk, paper_embeddings.c.model == bindparam("model"))
    return (select(*(papers.c[k] for k in keys[:-1]), has_vector)
            .select_from(papers.outerjoin(paper_embeddings, embedded))
            .where(in_list(papers.c.pk, "pks"), *filters.conditions()))


def _passing_query(filters: Filters) -> Select:
    return _sort_keys_query(filters, ("pk", "has_vector"))


def _papers(conn, pks: set[int]) -> dict[int, dict]:  # noqa: ANN001
    if not pks:
        return {}
    return {row["pk"]: dict(row) for row in conn.execute(_PAPERS, {"pks": pks}).mappings()}


def _sorted(pks: set[int], scores: dict[int, float], rows: dict[int, dict], sort: str) -> list[int]:
    present = [pk for pk in pks if pk in rows]
    if sort == "newest":
        return sorted(present, key=lambda pk: (rows[pk]["published_at"] is not None,
                                               rows[pk]["published_at"] or 0, scores.get(pk, 0)), reverse=True)
    if sort == "upvotes":
        return sorted(present, key=lambda pk: (rows[pk]["upvotes"], scores.get(pk, 0)), reverse=True)
    if sort == "trending":
        from dailypapers.ranking import trending_score

        return sorted(present, key=lambda pk: (trending_score(rows[pk]), scores.get(pk, 0)), reverse=True)
    return sorted(present, key=lambda pk: (scores.get(pk, 0.0), -pk), reverse=True)


__all__ = ["Hit", "SearchPage", "search", "fuse", "coverage"]
