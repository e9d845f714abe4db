"""Where candidates come from besides the vector index: what readers with overlapping libraries
saved, what many readers saved, and the papers of what the reader follows; and a sample of the
corpus (for centring, whitening and standardizing the scores)."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from dailypapers.recommend.keywords import KeywordCorpus, keyword_corpus
from dailypapers.search.backends import backend_for
from dailypapers.search.filters import Filters
from dailypapers.search.query import Query
from dailypapers.search.vector_index import as_array
from dailypapers.store.backend import in_list
from dailypapers.store.schema import collection_items, collections, organizations, paper_embeddings, papers

CORPUS_SAMPLE = 5000  # stored vectors that stand for the corpus: its mean, its covariance, its score spread
SHRINKAGE = 0.1  # the covariance's ridge, a share of its mean variance (0.01-1 measured alike)
MAX_READERS = 400  # other readers whose libraries are read per recommendation, the most overlapping
FOLLOWED_PAPERS = 100  # newest papers taken per follow
POPULAR = 300  # the most saved papers, candidates for a thin library

# --- the corpus --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """A spread sample of the stored vectors, and what rank.py derives from it."""

    pks: np.ndarray  # the sample's papers
    mean: np.ndarray  # every embedding shares this direction; removing it sharpens topics
    sample: np.ndarray  # the sample, centred: what a reader's scores are standardized against
    sample_unit: np.ndarray  # the same, normalized
    whitener: np.ndarray  # the inverse of the sample's covariance (with a ridge)
    keywords: KeywordCorpus  # the sample's keywords


_corpora: dict[tuple[str, str], tuple[int, Corpus]] = {}
_corpora_lock = threading.Lock()


def corpus(conn: Connection, model: str, version: int) -> Corpus | None:
    """The corpus as a sample of ``CORPUS_SAMPLE`` stored vectors (None: no vector yet), kept per
    process until the vectors grew by a tenth (docs/recommend.md)."""
    key = (conn.engine.url.render_as_string(hide_password=True), model)
    with _corpora_lock:
        kept = _corpora.get(key)
    if kept is not None and version <= kept[0] * 1.1 + 100:
        return kept[1]
    emb = paper_embeddings
    count = conn.execute(select(func.count()).where(emb.c.model == model)).scalar_one()
    step = max(1, count // CORPUS_SAMPLE)
    rows = conn.execute(select(emb.c.paper_pk, emb.c.vector, papers.c.keywords).join(papers, papers.c.pk == emb.c.paper_pk)
                        .where(emb.c.model == model, emb.c.paper_pk % step == 0).limit(CORPUS_SAMPLE)).all()
    if not rows:
        return None
    vectors = np.stack([as_array(r.vector) for r in rows]).astype(np.float64)
    mean = vectors.mean(axis=0)
    sample = vectors - mean
    covariance = sample.T @ sample / len(sample)
    # A sample of fewer vectors than dimensions leaves directions it never saw: shrink harder.
    ridge = SHRINKAGE * max(1.0, len(mean) / len(sample)) * max(np.trace(covariance) / len(mean), 1e-6)
    unit = sample / np.maximum(np.linalg.norm(sample, axis=1, keepdims=True), 1e-12)
    found = Corpus(np.array([r.paper_pk for r in rows], np.int64), mean.astype(np.float32), sample.astype(np.float32), unit.astype(np.float32),
                   np.linalg.inv(covariance + ridge * np.eye(len(mean))).astype(np.float32),
                   keyword_corpus([r.keywords for r in rows]))
    with _corpora_lock:
        _corpora[key] = (version, found)
    return found


# --- the crowd ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crowd:
    """How many readers saved each paper (in any collection)."""

    savers: dict[int, int]
    popular: list[int]  # the ``POPULAR`` most saved, most first

    def popularity(self, pks: np.ndarray) -> np.ndarray:
        """The papers' popularity: the logarithm of one plus their savers."""
        return np.log1p(np.array([self.savers.get(int(pk), 0) for pk in pks], np.float64))


_SAVES = select(func.count()).select_from(collection_items)
_SAVERS = (select(collection_items.c.paper_pk, func.count(collections.c.user_pk.distinct()))
           .join(collections, collections.c.pk == collection_items.c.collection_pk)
           .group_by(collection_items.c.paper_pk))
_crowds: dict[str, tuple[int, Crowd]] = {}


def crowd(conn: Connection) -> Crowd:
    """Every saved paper's savers, kept per process until the saves changed by a tenth."""
    key = conn.engine.url.render_as_string(hide_password=True)
    saves = conn.execute(_SAVES).scalar_one()
    with _corpora_lock:
        kept = _crowds.get(key)
    if kept is not None and abs(saves - kept[0]) <= kept[0] // 10:
        return kept[1]
    savers = {pk: n for pk, n in conn.execute(_SAVERS)}
    found = Crowd(savers, sorted(savers, key=lambda pk: (-savers[pk], pk))[:POPULAR])
    with _corpora_lock:
        _crowds[key] = (saves, found)
    return found


# --- readers with overlapping libraries ---------------------------------------------------------------

_HOLDERS = (select(collections.c.user_pk, collection_items.c.paper_pk)
            .join(collections, collections.c.pk == collection_items.c.collection_pk)
            .where(in_list(collection_items.c.paper_pk, "pks"), collections.c.user_pk != bindparam("me")))
_LIBRARIES = (select(collections.c.user_pk, collection_items.c.paper_pk)
              .join(collections, collections.c.pk == collection_items.c.collection_pk)
              .where(in_list(collections.c.user_pk, "users")))


def co_saved(conn: Connection, user_pk: int, weights: dict[int, float]) -> dict[int, float]:
    """A walk from the weighted papers through the readers who saved them to the rest of their
    libraries: paper -> mass. A reader's library spreads each of its papers' mass evenly over its
    other papers, and each paper's mass is shared by the readers who hold it (item-to-item
    co-occurrence, normalized; "readers with libraries like yours")."""
    if not weights:
        return {}
    holders = conn.execute(_HOLDERS, {"pks": list(weights), "me": user_pk}).all()
    if not holders:
        return {}
    overlap: dict[int, float] = defaultdict(float)
    for reader, pk in holders:
        overlap[reader] += weights[pk]
    readers = sorted(overlap, key=lambda r: (-overlap[r], r))[:MAX_READERS]
    libraries: dict[int, set[int]] = defaultdict(set)
    for reader, pk in conn.execute(_LIBRARIES, {"users": readers}):
        libraries[reader].add(pk)
    # How much of each source paper's mass goes to each of its holders' other papers.
    out_degree: dict[int, float] = defaultdict(float)
    for reader, library in libraries.items():
        for pk in library & weights.keys():
            out_degree[pk] += (len(library) - 1) / len(library)
    mass: dict[int, float] = defaultdict(float)
    for reader, library in libraries.items():
        sources = library & weights.keys()
        if len(library) < 2 or not sources:
            continue
        share = sum(weights[pk] / out_degree[pk] for pk in sources if out_degree[pk]) / len(library)
        for pk in library:
            mass[pk] += share
    return dict(mass)


# --- follows ----------------------------------------------------------------------------------------


def followed(conn: Connection, follows: list[tuple[str, str]]) -> dict[int, tuple[str, str]]:
    """The newest papers of each followed category, author and organization: pk -> (kind, target)
    of the first follow that brings it."""
    found: dict[int, tuple[str, str]] = {}
    for kind, target in follows:
        if kind == "author":
            pks = [pk for pk, _ in backend_for(conn.engine).text_top(
                conn, Query(authors=(target,), raw=f'author:"{target}"'), Filters(), FOLLOWED_PAPERS)]
        else:
            if kind == "category":
                where = Filters(categories=(target,)).conditions()
            elif kind == "organization":
                where = [*Filters().conditions(), papers.c.organization_pk.in_(
                    select(organizations.c.pk).where(organizations.c.name == target))]
            else:
                continue
            pks = conn.execute(select(papers.c.pk).where(*where)
                               .order_by(papers.c.published_at.desc().nulls_last(), papers.c.pk.desc())
                               .limit(FOLLOWED_PAPERS)).scalars().all()
        for pk in pks:
            found.setdefault(pk, (kind, target))
    return found


__all__ = ["Corpus", "Crowd", "co_saved", "corpus", "crowd", "followed"]
