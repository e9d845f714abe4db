"""The ranking, chosen by bench/recommend.py (docs/recommend.md has the measurements).

1. Candidates, never a scan of every paper in Python: the vector index's nearest neighbours of the
   library as a whole and of its newest papers, the papers co-saved with the library by other
   readers, the newest papers of what the reader follows, and, for a thin library, the papers most
   readers saved.
2. Dense scores, each standardized against a sample of the corpus (so a paper's score does not
   depend on the other candidates, and new papers merge into a cached list): the cosine of each
   candidate to the mean of the library, both centred on the corpus's mean vector (every embedding
   shares that direction; removing it sharpens topics); and, for a library of several papers, its
   mean whitened by the corpus's covariance (a linear discriminant of the library against the
   corpus: what sets the reader's papers apart, not what all papers share); and the papers'
   keywords, where a source gives them (keywords.py).
3. A thin library says little: its mean is widened towards its nearest papers in the corpus sample
   (pseudo-relevance feedback), and what many readers saved counts (popularity); both fade as the
   library grows to ``FULL_LIBRARY`` papers, where they cost recall.
4. Readers: a walk from the library, and from its 50 best dense candidates, through the readers who
   saved them to the rest of their libraries (sources.co_saved) adds ``READERS_WEIGHT`` x its
   mass over the mass's root mean square; papers near a dismissed one lose ``DISMISSED_WEIGHT`` x
   that cosine; followed papers gain ``FOLLOWED_BONUS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Connection

from dailypapers.recommend.keywords import KeywordProfile, keyword_profile
from dailypapers.recommend.signals import Seed, Signals
from dailypapers.recommend.sources import Crowd, co_saved, corpus, crowd, followed
from dailypapers.search.backends import backend_for, vectors_version
from dailypapers.search.filters import Filters
from dailypapers.search.vector_index import current_model
from dailypapers.search.vectors import stored_vectors
from dailypapers.store.schema import papers

LIBRARY_CANDIDATES = 500  # nearest neighbours of the whole library (1,000 gave the same recall, 80 ms on PostgreSQL)
SEED_QUERIES = 20  # the newest library papers asked for their own neighbours ...
SEED_NEIGHBOURS = 50  # ... this many each (a second interest is not drowned by the first)
EXPANSION = 50  # best dense candidates that also start the readers' walk
EXPANSION_TEMPERATURE = 0.5  # their weights: softmax of the dense score at this temperature
# Weights, in standard deviations of each score over the corpus:
COSINE_WEIGHT = 0.5
WHITENED_WEIGHT = 1.0  # at FULL_LIBRARY papers and more, none for one paper (noise: it costs recall)
KEYWORDS_WEIGHT = 0.3
POPULARITY_WEIGHT = 0.2  # these two for one paper, none at FULL_LIBRARY papers, linear between
NEIGHBOURHOOD_WEIGHT = 1.0  # (x the mean of the NEIGHBOURHOOD sample papers nearest the library)
NEIGHBOURHOOD = 5
FULL_LIBRARY = 10
READERS_WEIGHT = 0.5
READERS_SPREAD = 1000  # the walk's mass is divided by its root mean square over this many papers
# In cosines (to the library's mean), as the cosine term counts them:
DISMISSED_WEIGHT = 0.5
FOLLOWED_BONUS = 0.1
SIMILAR_READERS_WEIGHT = 0.4  # similar papers: the walk's mass over its top, beside plain cosines


@dataclass(frozen=True)
class Ranked:
    paper_pk: int
    score: float
    reason: dict  # {"kind": saved|collection|upvoted, "paper_pk", "collection"?} | follow | readers


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1)


@dataclass(frozen=True)
class Profile:
    """A reader's library as vectors: what every candidate is scored against."""

    model: str
    mean: np.ndarray  # the corpus's mean vector (for centring)
    seeds: list[Seed]  # the library papers that have a stored vector, most recent first
    stored: dict[int, np.ndarray]  # their stored vectors
    library: np.ndarray  # the same, centred and normalized
    grown: float  # how far the library is from one paper to FULL_LIBRARY, 0-1
    query: np.ndarray  # the library's mean, widened towards its neighbourhood while it is thin
    whitened: np.ndarray  # the library's centred mean times the corpus's inverse covariance
    spreads: np.ndarray  # (2, 2): the mean and standard deviation of both scores over the corpus
    keywords: KeywordProfile | None  # the library's keywords, when it and the corpus have some
    crowd: Crowd | None  # how many readers saved each paper, while the library is thin
    popularity: tuple[float, float]  # the mean and standard deviation of popularity over the corpus

    def dense(self, centred: np.ndarray) -> np.ndarray:
        """Candidates' dense scores from their centred vectors, in standard deviations over the corpus."""
        scores = np.stack([_unit(centred) @ self.query, centred @ self.whitened], axis=1)
        standard = (scores - self.spreads[0]) / self.spreads[1]
        return standard @ np.array([COSINE_WEIGHT, WHITENED_WEIGHT * self.grown])


def profile(conn: Connection, signals: Signals) -> Profile | None:
    """The reader's library as vectors (None: no embedding model yet, or no library paper has a vector)."""
    model = current_model(conn)
    if model is None:
        return None
    stored = stored_vectors(conn, [s.paper_pk for s in signals.seeds], model=model)
    seeds = [s for s in signals.seeds if s.paper_pk in stored]
    the_corpus = corpus(conn, model, vectors_version(conn))
    if not seeds or the_corpus is None:
        return None
    centred = np.stack([stored[s.paper_pk] for s in seeds]) - the_corpus.mean
    library = _unit(centred)
    grown = min(1.0, (len(seeds) - 1) / (FULL_LIBRARY - 1))
    query, whitened = library.mean(axis=0), the_corpus.whitener @ centred.mean(axis=0)
    the_crowd, popularity = None, (0.0, 1.0)
    if grown < 1:
        near = the_corpus.sample_unit @ query
        near[np.isin(the_corpus.pks, [s.paper_pk for s in seeds])] = -np.inf
        nearest = np.argsort(-near, kind="stable")[:NEIGHBOURHOOD]
        query = query + NEIGHBOURHOOD_WEIGHT * (1 - grown) * the_corpus.sample_unit[nearest].mean(axis=0)
        the_crowd = crowd(conn)
        spread = the_crowd.popularity(the_corpus.pks)
        popularity = (float(spread.mean()), float(spread.std()) or 1.0)
    sample = np.stack([the_corpus.sample_unit @ query, the_corpus.sample @ whitened], axis=1)
    spreads = np.stack([sample.mean(axis=0), np.where(sample.std(axis=0) > 0, sample.std(axis=0), 1.0)])
    keywords = keyword_profile(conn, the_corpus.keywords, [s.paper_pk for s in seeds])
    return Profile(model, the_corpus.mean, seeds, stored, library, grown, query, whitened, spreads, keywords,
                   the_crowd, popularity)


def rank(conn: Connection, signals: Signals, limit: int | None) -> list[Ranked]:
    """The reader's best ``limit`` papers (None: every candidate), best first, none of ``signals.excluded``."""
    follows = followed(conn, signals.follows) if signals.follows else {}
    me = profile(conn, signals)
    if me is None:
        return _followed_only(follows, signals, limit)
    probes = np.stack([_unit(me.query), *(me.stored[s.paper_pk] for s in me.seeds[:SEED_QUERIES])])
    limits = [LIBRARY_CANDIDATES] + [SEED_NEIGHBOURS] * (len(probes) - 1)
    found = backend_for(conn.engine).nearest_each(conn, probes.astype(np.float32), limits, me.model)
    dense_found = {pk for each in found for pk, _ in each} - signals.excluded
    popular = set(me.crowd.popular) - dense_found - signals.excluded if me.crowd else set()
    pks, vectors = _vectors(conn, (dense_found | popular | set(follows)) - signals.excluded, me)
    dense = me.dense(vectors)

    # The readers' walk starts from the library and the best dense candidates.
    best = np.argsort(-dense, kind="stable")[:EXPANSION]
    weights = dict.fromkeys((s.paper_pk for s in me.seeds), 1.0 / len(me.seeds))
    if len(best):
        soft = np.exp((dense[best] - dense[best[0]]) / EXPANSION_TEMPERATURE)
        for i, w in zip(best, soft / soft.sum()):
            weights[int(pks[i])] = weights.get(int(pks[i]), 0.0) + float(w)
    mass = {pk: m for pk, m in co_saved(conn, signals.user_pk, weights).items() if pk not in signals.excluded}
    new = set(mass) - set(pks.tolist())
    if new:
        more_pks, more_vectors = _vectors(conn, new, me)
        pks, vectors = np.concatenate([pks, more_pks]), np.concatenate([vectors, more_vectors])
    if not len(pks):
        return []
    spread = np.sqrt(sum(m * m for m in mass.values()) / READERS_SPREAD) or 1.0
    readers = np.array([mass.get(int(pk), 0.0) / spread for pk in pks])
    only_readers = {pk for pk in mass if pk not in dense_found}
    return _scored(conn, signals, me, follows, pks, vectors, readers, only_readers, popular - only_readers, limit)


def rank_new(conn: Connection, signals: Signals, new: dict[int, np.ndarray]) -> list[Ranked] | None:
    """Papers embedded since the reader's list was ranked, scored as ``rank`` scores them (nobody has
    saved a new paper yet, so the readers' walk gives them nothing), best first; None when the reader
    has no library to compare them with."""
    me = profile(conn, signals)
    if me is None:
        return None
    wanted = sorted(set(new) - signals.excluded)
    if not wanted:
        return []
    follows = followed(conn, signals.follows) if signals.follows else {}
    pks = np.array(wanted, np.int64)
    vectors = np.stack([new[pk] for pk in wanted]) - me.mean
    return _scored(conn, signals, me, follows, pks, vectors, np.zeros(len(pks)), set(), set(), len(pks))


def _scored(conn: Connection, signals: Signals, me: Profile, follows: dict[int, tuple[str, str]],
            pks: np.ndarray, vectors: np.ndarray, readers: np.ndarray, only_readers: set[int],
            only_popular: set[int], limit: int | None) -> list[Ranked]:
    """The best ``limit`` candidates by score (dense + keywords + popularity + the readers' walk +
    follows - dismissed) with their reasons, best first."""
    scores = me.dense(vectors) + READERS_WEIGHT * readers
    if me.keywords is not None:
        scores += KEYWORDS_WEIGHT * me.keywords.scores(conn, pks)
    if me.crowd is not None:
        popularity = (me.crowd.popularity(pks) - me.popularity[0]) / me.popularity[1]
        scores += POPULARITY_WEIGHT * (1 - me.grown) * popularity
    in_cosines = COSINE_WEIGHT / me.spreads[1][0]
    if follows:
        scores += in_cosines * FOLLOWED_BONUS * np.isin(pks, list(follows))
    if signals.dismissed:
        gone = stored_vectors(conn, signals.dismissed, model=me.model)
        if gone:
            near = _unit(vectors) @ _unit(np.stack(list(gone.values())) - me.mean).T
            scores -= in_cosines * DISMISSED_WEIGHT * np.maximum(near.max(axis=1), 0)
    order = np.lexsort((pks, -scores))[:limit]
    closest = (_unit(vectors[order]) @ me.library.T).argmax(axis=1)
    out = []
    for i, nearest_seed in zip(order, closest):
        pk = int(pks[i])
        if pk in follows:
            reason = {"kind": "follow", "follow": follows[pk][0], "target": follows[pk][1]}
        elif pk in only_readers:
            reason = {"kind": "readers"}
        elif pk in only_popular:
            reason = {"kind": "popular"}
        else:
            reason = _seed_reason(me.seeds[nearest_seed])
        out.append(Ranked(pk, float(scores[i]), reason))
    return out


def _vectors(conn: Connection, pks: set[int], me: Profile) -> tuple[np.ndarray, np.ndarray]:
    """The candidates' stored vectors, centred (papers without one left out)."""
    found = stored_vectors(conn, sorted(pks), model=me.model)
    if not found:
        return np.zeros(0, np.int64), np.zeros((0, len(me.mean)), np.float32)
    return np.fromiter(found, np.int64, len(found)), np.stack(list(found.values())) - me.mean


def _followed_only(follows: dict[int, tuple[str, str]], signals: Signals, limit: int | None) -> list[Ranked]:
    """No library to compare with: the followed papers, newest first as they came."""
    kept = [pk for pk in follows if pk not in signals.excluded][:limit]
    return [Ranked(pk, FOLLOWED_BONUS * (1 - i / (len(kept) + 1)),
                   {"kind": "follow", "follow": follows[pk][0], "target": follows[pk][1]})
            for i, pk in enumerate(kept)]


def _seed_reason(seed) -> dict:  # noqa: ANN001
    reason = {"kind": seed.kind, "paper_pk": seed.paper_pk}
    if seed.collection:
        reason["collection"] = seed.collection
    return reason


def similar(conn: Connection, paper_pk: int, limit: int) -> list[int]:
    """Papers like this one, best first: its nearest by embedding (cosine), each raised by
    ``SIMILAR_READERS_WEIGHT`` x the normalized mass that a walk from the paper through the readers who saved
    it gives (what they also saved: a one-paper library's ranking, with the plain cosine of the
    vector index so that a paper nobody saved keeps its nearest neighbours)."""
    from dailypapers.search.vectors import vector_search

    model = current_model(conn)
    vector = stored_vectors(conn, [paper_pk], model=model).get(paper_pk) if model else None
    if vector is None:
        return []
    hits = dict(vector_search(conn.engine, vector, Filters(), max(4 * limit, 20) + 1, model=model))
    mass = co_saved(conn, -1, {paper_pk: 1.0})
    new = sorted(set(mass) - set(hits) - {paper_pk})
    if new:  # co-saved papers beyond the neighbours: the visible ones, with their cosines
        new = conn.execute(select(papers.c.pk).where(papers.c.pk.in_(new), papers.c.hidden.is_(False))).scalars()
        found = stored_vectors(conn, list(new), model=model)
        hits.update({pk: float(_unit(v) @ _unit(vector)) for pk, v in found.items()})
    hits.pop(paper_pk, None)
    top_mass = max(mass.values(), default=0.0) or 1.0
    scored = {pk: cos + SIMILAR_READERS_WEIGHT * mass.get(pk, 0.0) / top_mass for pk, cos in hits.items()}
    return sorted(scored, key=lambda pk: (-scored[pk], pk))[:limit]
