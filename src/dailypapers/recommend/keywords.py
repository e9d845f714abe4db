"""Keywords as a signal (a source's keywords: Hugging Face's ai_keywords; citeulike's tags in the
benchmark): each paper's keywords a tf-idf vector, the library's the mean of its papers', and a
candidate scored by its dot product with that mean, standardized against the corpus sample as the
dense scores are. Document frequencies come from the sample: a keyword it lacks counts as rare."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Connection

from dailypapers.store.backend import in_list
from dailypapers.store.schema import papers

_KEYWORDS = select(papers.c.pk, papers.c.keywords).where(in_list(papers.c.pk, "pks"), papers.c.keywords.is_not(None))


@dataclass(frozen=True)
class Weighted:
    """Papers' keywords as a sparse matrix: entry i is keyword ``keys[i]`` of paper ``rows[i]``,
    weighted by its idf, each paper's row of unit length."""

    rows: np.ndarray
    keys: list[str]
    weights: np.ndarray

    def dot(self, profile: dict[str, float], papers: int) -> np.ndarray:
        """Each paper's dot product with a profile (keyword -> weight)."""
        along = np.array([profile.get(k, 0.0) for k in self.keys])
        return np.bincount(self.rows, weights=self.weights * along, minlength=papers)


@dataclass(frozen=True)
class KeywordCorpus:
    """The sample's keywords: their idf, and the sample weighted by it."""

    idf: dict[str, float]  # the sample's keywords
    rare: float  # the idf of a keyword the sample lacks
    sample: Weighted
    place: dict[str, int]  # each of the sample's keywords: its column
    columns: np.ndarray  # each sample entry's keyword as its column
    papers: int

    def sample_dot(self, profile: dict[str, float]) -> np.ndarray:
        """Each sample paper's dot product with a profile."""
        along = np.zeros(len(self.place))
        for k, w in profile.items():
            if k in self.place:
                along[self.place[k]] = w
        return np.bincount(self.sample.rows, weights=self.sample.weights * along[self.columns], minlength=self.papers)

    def weighted(self, keyword_lists: list[list[str]]) -> Weighted:
        return _weighted(keyword_lists, self.idf, self.rare)


def _weighted(keyword_lists: list[list[str]], idf: dict[str, float], rare: float) -> Weighted:
    rows, keys = [], []
    for row, keywords in enumerate(keyword_lists):
        distinct = {k.casefold() for k in keywords}
        rows += [row] * len(distinct)
        keys += distinct
    rows = np.array(rows, np.int64)
    weights = np.array([idf.get(k, rare) for k in keys])
    norms = np.sqrt(np.bincount(rows, weights=weights * weights, minlength=len(keyword_lists)))
    return Weighted(rows, keys, weights / norms[rows] if len(rows) else weights)


def keyword_corpus(sample: list[list[str] | None]) -> KeywordCorpus:
    """The sample's keyword lists (None: a paper without) as a KeywordCorpus."""
    frequency = Counter(k for keywords in sample for k in {k.casefold() for k in keywords or ()})
    n = len(sample)
    idf = {k: math.log((1 + n) / (1 + f)) + 1 for k, f in frequency.items()}  # smoothed, as scikit-learn's
    rare = math.log(1 + n) + 1
    weighted = _weighted([k or [] for k in sample], idf, rare)
    place = {k: i for i, k in enumerate(idf)}
    return KeywordCorpus(idf, rare, weighted, place, np.array([place[k] for k in weighted.keys], np.int64), n)


def read_keywords(conn: Connection, pks: list[int]) -> dict[int, list[str]]:
    """The papers' keywords, for those that have some."""
    return {pk: keywords for pk, keywords in conn.execute(_KEYWORDS, {"pks": list(pks)}) if keywords}


@dataclass(frozen=True)
class KeywordProfile:
    """A library's keywords: the mean of its papers' vectors, and how its scores spread over the sample."""

    corpus: KeywordCorpus
    mean: dict[str, float]
    spread: tuple[float, float]  # the mean and standard deviation of the sample's scores

    def scores(self, conn: Connection, pks: np.ndarray) -> np.ndarray:
        """The candidates' scores, in standard deviations over the corpus (papers without keywords
        score as the corpus's papers without keywords do)."""
        found = read_keywords(conn, pks.tolist())
        raw = self.corpus.weighted([found.get(pk, []) for pk in pks.tolist()]).dot(self.mean, len(pks))
        return (raw - self.spread[0]) / self.spread[1]


def keyword_profile(conn: Connection, corpus: KeywordCorpus, library: list[int]) -> KeywordProfile | None:
    """The library's keyword profile; None when neither it nor the sample has keywords to compare."""
    found = read_keywords(conn, library)
    if not found or not corpus.idf:
        return None
    mine = corpus.weighted(list(found.values()))
    mean: dict[str, float] = {}
    for k, w in zip(mine.keys, mine.weights.tolist()):
        mean[k] = mean.get(k, 0.0) + w / len(library)
    sample = corpus.sample_dot(mean)
    if sample.std() == 0:
        return None
    return KeywordProfile(corpus, mean, (float(sample.mean()), float(sample.std())))


__all__ = ["KeywordCorpus", "KeywordProfile", "keyword_corpus", "keyword_profile", "read_keywords"]
